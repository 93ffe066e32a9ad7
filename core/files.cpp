#include "core/files.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.hpp"

namespace xbar::core {

std::filesystem::path temporary_path_for(const std::filesystem::path& path) {
  return std::filesystem::path(path.string() + ".tmp" + std::to_string(::getpid()));
}

void write_text_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path temp = temporary_path_for(path);
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw UserError(fmt::format("{}: cannot write the output file ({})", path.string(), std::strerror(errno)));
    out << text;
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      throw UserError(fmt::format("{}: writing the output failed", path.string()));
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) {
    std::filesystem::remove(temp, error);
    throw UserError(fmt::format("{}: cannot rename the finished output into place", path.string()));
  }
}

}  // namespace xbar::core
