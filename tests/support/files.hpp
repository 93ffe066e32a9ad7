// Test helpers shared by the test binaries: file contents, expected user errors.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace xbar::testing_support {

// The bytes of a file ("" if it cannot be read).
inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The message of the UserError `action` throws ("" and a test failure if it throws none).
template <typename Action>
std::string user_error_message(Action&& action) {
  try {
    action();
  } catch (const core::UserError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a UserError";
  return "";
}

// A fresh folder per test, <tmp>/xbar-<suite>-<pid>-<test>, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("xbar-" + std::string(info->test_suite_name()) + "-" + std::to_string(::getpid()) + "-" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The names in the test's folder, sorted.
  std::vector<std::string> folder_listing() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::filesystem::path dir_;
};

struct Outcome {
  int exit_code;  // -1 when the command did not exit normally
  std::string out, err;
};

// Runs `executable args` in the folder `cwd`, its standard output and error written to `out` and
// `err` (left in place: the caller removes them if they must not stay).
inline Outcome run_command(const std::string& executable, const std::string& args, const std::filesystem::path& cwd,
                           const std::filesystem::path& out, const std::filesystem::path& err) {
  const std::string command = "cd '" + cwd.string() + "' && '" + executable + "' " + args + " >'" + out.string() +
                              "' 2>'" + err.string() + "'";
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace xbar::testing_support
