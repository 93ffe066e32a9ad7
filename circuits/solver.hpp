// Solvers of the crossbar's nodal equations. Every solver answers the same question — the column
// currents i_out (C×B) for a batch of row voltages v_in (R×B) — and returns a summary instead of
// throwing: a failure (a floating node, a non-positive-definite matrix, NaN) is a status with a
// message, never a silent NaN in the output.
#pragma once

#include <Eigen/Dense>
#include <memory>
#include <string>

#include "circuits/cell_model.hpp"
#include "circuits/nodal.hpp"
#include "core/card.hpp"
#include "core/error.hpp"

namespace xbar::circuits {

struct SolveSummary {
  std::string method;                            // "direct", ...
  core::SolveStatus status = core::SolveStatus::ok;
  std::string message;                           // why, when status is not ok
  std::string warning;                           // a result obtained outside a model's validity range
  int iterations = 0;                            // linear solves per vector (1 for linear cells; Newton: max over the batch)
  double residual = 0;                           // max over the batch of ||F(x)|| / ||b|| (A x - b for linear cells)
  double analyse_s = 0, factorize_s = 0, solve_s = 0;  // wall time of the last call of each stage
  bool ok() const { return status == core::SolveStatus::ok; }
};

class Solver {
 public:
  virtual ~Solver() = default;
  virtual const char* name() const = 0;
  // New cells: the devices' read conductances (R×C, S) and how they conduct (nonlinear I-V,
  // access resistance).
  virtual SolveSummary set_cells(const Eigen::MatrixXd& g_device, const CellModel& model) = 0;
  // Linear cells of the given conductances (access device included).
  SolveSummary set_conductances(const Eigen::MatrixXd& g_cell) { return set_cells(g_cell, CellModel{}); }
  // Column currents into the virtual grounds for a batch of row voltages; with `v_cell` the
  // voltage across every cell (w - b, R×C) for batch column `probe` as well.
  virtual SolveSummary solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell = nullptr,
                             int probe = 0) = 0;
  // Bytes the solver holds for the current conductances (factor, matrices, saved solutions).
  virtual std::size_t memory_bytes() const { return 0; }
};

// The method `auto` stands for, for one tile: nonlinear cells -> iterative (the same damped Newton
// as direct, each step solved by line-preconditioned CG instead of a factorisation: measured 11-24x
// faster at 64² to 256², same answer to the tolerance); otherwise many input vectors per
// conductance state (>= 8 vectors × DAC planes per read) -> effective (M built once per state,
// each batch one product); few -> iterative (no factorisation at all). Any other method is
// returned as it is.
std::string resolve_method(const core::SolverOptions& options, bool nonlinear_cells, int vectors_per_state);

// Builds the solver for a resolved method (solver.method; tol and iteration budgets).
std::unique_ptr<Solver> make_solver(const core::SolverOptions& options, int rows, int cols,
                                    const core::WireOptions& wires);

// The ideal product with zero wire resistance for linear cells: i = g_cellᵀ v_in (C×B).
Eigen::MatrixXd ideal_currents(const Eigen::MatrixXd& g_cell, const Eigen::MatrixXd& v_in);

}  // namespace xbar::circuits
