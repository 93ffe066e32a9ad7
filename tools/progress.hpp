// Progress of a long loop on stderr: a bar redrawn in place on a terminal, plain log lines
// otherwise (one per completed tenth of the loop, so that log files stay short).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace xbar::tools {

class ProgressDisplay {
 public:
  // Draws a bar when stderr is a terminal.
  ProgressDisplay();

  // Starts a loop of `total` steps, named `title` in every line ("epoch 2/5", "charlm ste").
  void start(std::string title, std::size_t total);
  // After `done` (1..total) steps; `status` is appended, e.g. "loss 1.2345 acc 0.5000". On a
  // terminal: "TITLE [#####.....]  50% STATUS 1.2 s", at most every 0.1 s; otherwise
  // "TITLE:  50% (DONE/TOTAL steps) STATUS 1.2 s" at each tenth but the last.
  void update(std::size_t done, const std::string& status);
  // Clears the bar (on a terminal) and writes `text` and a newline.
  void print_line(const std::string& text);
  // Seconds since start().
  double elapsed_s() const;
  bool terminal() const { return terminal_; }

 private:
  using Clock = std::chrono::steady_clock;
  bool terminal_;
  std::string title_;
  std::size_t total_ = 0;
  Clock::time_point start_, last_draw_;
  int last_decile_ = 0;
};

}  // namespace xbar::tools
