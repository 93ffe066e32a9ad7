#include "circuits/workload.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "core/error.hpp"

namespace xbar::circuits {

Eigen::MatrixXd random_matrix(Eigen::Index rows, Eigen::Index cols, const core::MatrixSource& source,
                              core::RandomStream& rng) {
  Eigen::MatrixXd m(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r)
    for (Eigen::Index c = 0; c < cols; ++c)
      m(r, c) = source.distribution == core::Distribution::normal ? source.scale * rng.normal()
                                                                  : rng.uniform(-source.scale, source.scale);
  return m;
}

Eigen::MatrixXd read_csv_matrix(const std::filesystem::path& file, Eigen::Index expected_cols) {
  std::ifstream stream(file);
  if (!stream) throw core::UserError(fmt::format("{}: cannot read the file", file.string()));
  std::vector<std::vector<double>> rows;
  std::string line;
  int line_number = 0;
  while (std::getline(stream, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::vector<double> values;
    std::size_t pos = 0;
    int field = 0;
    while (pos < line.size()) {
      while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
      const std::size_t start = pos;
      while (pos < line.size() && line[pos] != ',' && line[pos] != ' ' && line[pos] != '\t') ++pos;
      const std::string token = line.substr(start, pos - start);
      ++field;
      errno = 0;
      char* end = nullptr;
      const double value = std::strtod(token.c_str(), &end);
      if (token.empty() || errno != 0 || end != token.c_str() + token.size() || !std::isfinite(value))
        throw core::UserError(fmt::format("{}:{}:{}: field {}: expected a finite number, got '{}'", file.string(),
                                          line_number, start + 1, field, token));
      values.push_back(value);
      while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
      if (pos < line.size() && line[pos] == ',') ++pos;
    }
    const auto want = expected_cols >= 0 ? static_cast<std::size_t>(expected_cols)
                                         : (rows.empty() ? values.size() : rows.front().size());
    if (values.size() != want)
      throw core::UserError(fmt::format("{}:{}: expected {} values on the line, got {}", file.string(), line_number,
                                        want, values.size()));
    rows.push_back(std::move(values));
  }
  if (rows.empty()) throw core::UserError(fmt::format("{}: no numbers in the file", file.string()));
  Eigen::MatrixXd m(rows.size(), rows.front().size());
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t c = 0; c < rows[r].size(); ++c) m(r, c) = rows[r][c];
  return m;
}

Workload make_workload(const core::Card& card) {
  Workload workload;
  const int inputs = card.tile.rows;
  const int fit = core::outputs_that_fit(card.mapping, card.tile.cols);
  if (card.workload.weights.distribution == core::Distribution::file) {
    workload.weights = read_csv_matrix(card.workload.weights.file, inputs);
    if (workload.weights.rows() > fit)
      throw core::UserError(fmt::format("{}: {} weight rows (outputs), but the tile's {} columns hold at most {}",
                                        card.workload.weights.file.string(), workload.weights.rows(), card.tile.cols,
                                        fit));
  } else {
    core::RandomStream rng(card.seed, "workload_weights");
    workload.weights = random_matrix(card.workload.outputs > 0 ? card.workload.outputs : fit, inputs,
                                     card.workload.weights, rng);
  }
  if (card.workload.inputs.distribution == core::Distribution::file) {
    workload.inputs = read_csv_matrix(card.workload.inputs.file, inputs).transpose();
  } else {
    core::RandomStream rng(card.seed, "workload_inputs");
    workload.inputs = random_matrix(card.workload.input_count, inputs, card.workload.inputs, rng).transpose();
  }
  return workload;
}

}  // namespace xbar::circuits
