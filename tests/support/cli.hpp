// Test helpers for the tests that run the `xbar` executable as a user would (tests/tools): a
// fixture that runs it in a fresh folder with data folders passed by environment variables, and
// the comparison of two training checkpoints' states.
//
// The including test binary defines XBAR_EXECUTABLE, the path of the xbar executable
// (tests/tools/CMakeLists.txt does), and XBAR_SOURCE_DIR (every test binary has it).
#pragma once

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/trace.hpp"
#include "tests/support/files.hpp"

#ifndef XBAR_EXECUTABLE
#error "tests/support/cli.hpp needs XBAR_EXECUTABLE, the path of the xbar executable"
#endif

namespace xbar::testing_support {

// A TempDirTest that runs xbar from the repository root; its output goes to stdout.txt and
// stderr.txt in the test's folder.
class XbarCliTest : public TempDirTest {
 protected:
  void TearDown() override {
    for (const std::string& name : environment_) unsetenv(name.c_str());
    TempDirTest::TearDown();
  }

  // Sets the environment variable `name` (e.g. a data folder xbar reads) to `value` for the rest
  // of the test; it is unset when the test ends.
  void set_environment(const std::string& name, const std::filesystem::path& value) {
    setenv(name.c_str(), value.c_str(), 1);
    environment_.push_back(name);
  }

  // Runs `xbar ARGS` from the repository root.
  Outcome xbar(const std::string& args) const {
    return run_command(XBAR_EXECUTABLE, args, XBAR_SOURCE_DIR, dir_ / "stdout.txt", dir_ / "stderr.txt");
  }

  // The path of `name` in the test's folder, quoted for the command line.
  std::string out(const std::string& name) const { return "'" + (dir_ / name).string() + "'"; }

 private:
  std::vector<std::string> environment_;
};

// Every dataset of a training checkpoint under `groups` (those the file has, e.g. "/parameters",
// "/buffers"), named by their dataset name, then every dataset of /optimizer named
// "<group>/<name>", each read back as a matrix.
inline std::vector<std::pair<std::string, Eigen::MatrixXd>> checkpoint_state(
    const std::filesystem::path& file, std::initializer_list<std::string> groups) {
  const core::TraceReader trace(file);
  std::vector<std::pair<std::string, Eigen::MatrixXd>> state;
  for (const std::string& group : groups)
    if (trace.exists(group))
      for (const std::string& name : trace.list(group)) state.emplace_back(name, trace.read_matrix(group + "/" + name));
  for (const std::string& group : trace.list("/optimizer"))
    for (const std::string& name : trace.list("/optimizer/" + group))
      state.emplace_back(group + "/" + name, trace.read_matrix("/optimizer/" + group + "/" + name));
  return state;
}

// The checkpoints `a` and `b` hold the same checkpoint_state(groups), bit for bit, of at least
// `min_entries` datasets.
inline void expect_same_checkpoint_state(const std::filesystem::path& a, const std::filesystem::path& b,
                                         std::initializer_list<std::string> groups, std::size_t min_entries) {
  const auto sa = checkpoint_state(a, groups), sb = checkpoint_state(b, groups);
  ASSERT_EQ(sa.size(), sb.size());
  ASSERT_GE(sa.size(), min_entries);
  for (std::size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(sa[i].second == sb[i].second) << sa[i].first << " differs";
  }
}

}  // namespace xbar::testing_support
