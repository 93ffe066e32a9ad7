#include "core/error.hpp"

#include <fmt/format.h>

namespace xbar::core {

std::string CardIssue::format() const {
  std::string where = file;
  if (line > 0) {
    where += fmt::format(":{}", line);
    if (column > 0) where += fmt::format(":{}", column);
  }
  return fmt::format("{}: {}: {}", where, key.empty() ? "(card)" : key, message);
}

static std::string join_issues(const std::vector<CardIssue>& issues) {
  std::string text = fmt::format("the card has {} error{}:", issues.size(), issues.size() == 1 ? "" : "s");
  for (const auto& issue : issues) text += "\n  " + issue.format();
  return text;
}

CardError::CardError(std::vector<CardIssue> issues)
    : UserError(join_issues(issues)), issues_(std::move(issues)) {}

const char* to_string(SolveStatus status) {
  switch (status) {
    case SolveStatus::ok: return "ok";
    case SolveStatus::singular: return "singular";
    case SolveStatus::not_converged: return "not_converged";
    case SolveStatus::non_finite: return "non_finite";
  }
  return "unknown";
}

}  // namespace xbar::core
