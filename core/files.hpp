// Output files that are either complete or absent.
#pragma once

#include <filesystem>
#include <string>

namespace xbar::core {

// "<path>.tmp<pid>": the temporary name an output is written under before it is renamed.
std::filesystem::path temporary_path_for(const std::filesystem::path& path);

// Writes `text` to a temporary file beside `path`, then renames it to `path`. Throws UserError
// naming the path when the folder is missing or not writable; `path` is then untouched.
void write_text_file_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace xbar::core
