// The card's workload: the weights to program and the input vectors to read with.
#pragma once

#include <Eigen/Dense>
#include <filesystem>

#include "core/card.hpp"
#include "core/random.hpp"

namespace xbar::circuits {

struct Workload {
  Eigen::MatrixXd weights;  // outputs × inputs (inputs = tile rows)
  Eigen::MatrixXd inputs;   // inputs × B, one input vector per column
};

// Weights from the card's weight source (stream "workload_weights") and inputs from its input
// source (stream "workload_inputs"). Throws UserError for a CSV file of the wrong shape.
Workload make_workload(const core::Card& card);

// Random matrix of the given distribution (uniform or normal), row-major draw order.
Eigen::MatrixXd random_matrix(Eigen::Index rows, Eigen::Index cols, const core::MatrixSource& source,
                              core::RandomStream& rng);

// Reads a CSV file of numbers (comma or whitespace separated, '#' starts a comment line).
// Throws UserError naming the file, line and column of the first bad value, or of a line whose
// field count differs from the first line's (or from `expected_cols` when >= 0).
Eigen::MatrixXd read_csv_matrix(const std::filesystem::path& file, Eigen::Index expected_cols = -1);

}  // namespace xbar::circuits
