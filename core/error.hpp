// Errors at the user boundary (cards, files, command line) and status codes of numerical kernels.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace xbar::core {

// A mistake by the user (a bad file, a bad option): reported as it is and ends the command with a
// non-zero exit status. The message names the file, the line and the key where they are known.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One problem found in a card: where it is and what was expected.
struct CardIssue {
  std::string file;  // card file name, or "--set" for a command-line override
  int line = 0;      // 1-based; 0 when unknown (e.g. a missing key of an absent section)
  int column = 0;    // 1-based; 0 when unknown
  std::string key;   // dotted key path, e.g. "tile.wires.r_wl_segment"
  std::string message;

  std::string format() const;  // "card.yaml:12:5: tile.rows: expected ..."
};

// All problems of one card, reported together.
class CardError : public UserError {
 public:
  explicit CardError(std::vector<CardIssue> issues);
  const std::vector<CardIssue>& issues() const { return issues_; }

 private:
  std::vector<CardIssue> issues_;
};

// Outcome of a numerical kernel: kernels return this instead of throwing.
enum class SolveStatus { ok, singular, not_converged, non_finite };

const char* to_string(SolveStatus status);

}  // namespace xbar::core
