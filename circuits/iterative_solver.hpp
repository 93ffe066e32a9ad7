// Batched iterative mode (solver.method: iterative), for conductances that change every step
// (training, Monte Carlo): no factorisation, a preconditioned conjugate-gradient solve of the
// nodal equations whose preconditioner solves every word line and every bit line exactly
// (tridiagonal), vectorised over the batch, parallel over lines (oneTBB), warm-started from the
// previous solution; it stops at the card's relative residual `tol` or after `max_iter`
// iterations and reports both. Nonlinear cells run the same damped Newton loop as the direct
// mode, each Newton step solved by this iteration with per-vector cell conductances.
// See iterative_solver.cpp for the formulation.
#pragma once

#include <memory>

#include "circuits/solver.hpp"

namespace xbar::circuits {

class IterativeSolver final : public Solver {
 public:
  // tol: relative residual; max_iter: CG budget per solve; newton_max_iter: Newton budget.
  IterativeSolver(int rows, int cols, const core::WireOptions& wires, double tol, int max_iter, bool warm_start,
                  int newton_max_iter = 50);
  ~IterativeSolver() override;
  const char* name() const override { return "iterative"; }
  SolveSummary set_cells(const Eigen::MatrixXd& g_device, const CellModel& model) override;
  SolveSummary solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell = nullptr,
                     int probe = 0) override;
  // Forgets the previous solution (the next solve starts cold).
  void reset_warm_start();
  // Line factors, cell conductances, saved solutions and the threads' scratch vectors.
  std::size_t memory_bytes() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xbar::circuits
