#include "circuits/direct_solver.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

namespace xbar::circuits {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Eigen::MatrixXd ideal_currents(const Eigen::MatrixXd& g_cell, const Eigen::MatrixXd& v_in) {
  return g_cell.transpose() * v_in;
}

DirectSolver::DirectSolver(int rows, int cols, const core::WireOptions& wires) : system_(rows, cols, wires) {
  state_.method = name();
  // Quiet CHOLMOD: failures are reported through the summary.
  cholesky_.cholmod().print = 0;
  cholesky_.cholmod().error_handler = nullptr;
  const auto start = std::chrono::steady_clock::now();
  if (system_.unknowns() > 0) cholesky_.analyzePattern(system_.matrix());
  state_.analyse_s = seconds_since(start);
  state_.status = core::SolveStatus::singular;
  state_.message = "no conductances set";
}

SolveSummary DirectSolver::set_conductances(const Eigen::MatrixXd& g_cell) {
  state_.status = core::SolveStatus::ok;
  state_.message.clear();
  state_.factorize_s = 0;
  if (g_cell.rows() != system_.rows() || g_cell.cols() != system_.cols()) {
    state_.status = core::SolveStatus::singular;
    state_.message = fmt::format("conductance matrix is {}x{}, the array is {}x{}", g_cell.rows(), g_cell.cols(),
                                 system_.rows(), system_.cols());
    return state_;
  }
  for (Eigen::Index i = 0; i < g_cell.rows(); ++i)
    for (Eigen::Index j = 0; j < g_cell.cols(); ++j)
      if (!std::isfinite(g_cell(i, j)) || g_cell(i, j) < 0) {
        state_.status = core::SolveStatus::non_finite;
        state_.message = fmt::format("cell ({},{}) has conductance {} S; expected a finite value >= 0", i, j,
                                     g_cell(i, j));
        return state_;
      }
  g_cell_ = g_cell;
  system_.refill(g_cell);
  if (system_.unknowns() == 0) return state_;
  const std::string floating = system_.floating_node_description(g_cell);
  if (!floating.empty()) {
    state_.status = core::SolveStatus::singular;
    state_.message = "floating circuit: " + floating;
    return state_;
  }
  const auto start = std::chrono::steady_clock::now();
  cholesky_.factorize(system_.matrix());
  state_.factorize_s = seconds_since(start);
  if (cholesky_.info() != Eigen::Success) {
    state_.status = core::SolveStatus::singular;
    state_.message = "the nodal matrix is not positive definite (singular circuit)";
  }
  return state_;
}

SolveSummary DirectSolver::solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell,
                                 int probe) {
  SolveSummary summary = state_;
  summary.analyse_s = summary.factorize_s = 0;  // reported by the constructor and set_conductances()
  summary.iterations = 1;
  if (!summary.ok()) return summary;
  const int rows = system_.rows();
  if (v_in.rows() != rows || !v_in.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = v_in.rows() != rows ? fmt::format("v_in has {} rows, the array {}", v_in.rows(), rows)
                                          : "v_in holds a non-finite voltage";
    return summary;
  }
  const auto start = std::chrono::steady_clock::now();
  const Eigen::MatrixXd b = system_.rhs(v_in);
  Eigen::MatrixXd x(system_.unknowns(), v_in.cols());
  if (system_.unknowns() > 0) {
    x = cholesky_.solve(b);
    // Relative residual of the symmetric system, from its stored lower triangle.
    const Eigen::MatrixXd r = system_.matrix().selfadjointView<Eigen::Lower>() * x - b;
    for (Eigen::Index k = 0; k < x.cols(); ++k) {
      const double scale = b.col(k).norm();
      summary.residual = std::max(summary.residual, scale > 0 ? r.col(k).norm() / scale : r.col(k).norm());
    }
  }
  i_out = system_.column_currents(x, v_in, g_cell_, v_cell, probe);
  summary.solve_s = seconds_since(start);
  if (!i_out.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = "the solve produced non-finite currents";
  }
  return summary;
}

std::unique_ptr<Solver> make_solver(const core::SolverOptions& options, int rows, int cols,
                                    const core::WireOptions& wires) {
  if (options.method == "direct") return std::make_unique<DirectSolver>(rows, cols, wires);
  throw core::UserError("unknown solver method '" + options.method + "'");
}

}  // namespace xbar::circuits
