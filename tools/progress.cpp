// Progress display; see progress.hpp.
#include "tools/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace xbar::tools {

ProgressDisplay::ProgressDisplay() : terminal_(isatty(STDERR_FILENO) == 1) {}

void ProgressDisplay::start(std::string title, std::size_t total) {
  title_ = std::move(title);
  total_ = total;
  start_ = Clock::now();
  last_draw_ = start_;
  last_decile_ = 0;
}

double ProgressDisplay::elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void ProgressDisplay::update(std::size_t done, const std::string& status) {
  if (total_ == 0) return;
  const double fraction = static_cast<double>(done) / static_cast<double>(total_);
  if (terminal_) {
    const auto now = Clock::now();
    if (done != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int width = 30;
    const int filled = static_cast<int>(fraction * width);
    std::fprintf(stderr, "\r\033[K%s [%s%s] %3.0f%% %s %.1f s", title_.c_str(), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), 100 * fraction, status.c_str(), elapsed_s());
    std::fflush(stderr);
    return;
  }
  const int decile = static_cast<int>(fraction * 10 + 1e-9);
  if (decile > last_decile_ && done != total_) {
    last_decile_ = decile;
    std::fprintf(stderr, "%s: %3.0f%% (%zu/%zu steps) %s %.1f s\n", title_.c_str(), 100 * fraction, done, total_,
                 status.c_str(), elapsed_s());
    std::fflush(stderr);
  }
}

void ProgressDisplay::print_line(const std::string& text) {
  if (terminal_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

}  // namespace xbar::tools
