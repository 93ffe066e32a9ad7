// Test helpers shared by the test binaries: file contents, expected user errors.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

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

}  // namespace xbar::testing_support
