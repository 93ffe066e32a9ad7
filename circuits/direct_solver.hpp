// The exact reference solver: sparse Cholesky (CHOLMOD, through Eigen's CholmodSupport) of the
// nodal equations. The pattern is analysed once per topology, factorised once per programming
// state, and solved for a whole batch of right-hand sides at once.
//
// Nonlinear cells: damped Newton-Raphson on the same equations, one vector at a time (each has its
// own operating point). The Jacobian is the nodal matrix with every cell replaced by its
// differential conductance dI/dV (same sparsity pattern, so the symbolic analysis is reused); the
// first iterate solves with the cells' small-signal conductances at 0 V; each step is cut to at
// most 0.2 V per node and then halved until ||F|| decreases (Armijo). Converged when
// ||F|| <= tol · scale (NodalSystem::residual_scale); not converged after max_iter iterations is a
// status, never a silent result. Vectors are solved in parallel (oneTBB), each by itself, so the
// result does not depend on the thread count.
#pragma once

#include <Eigen/CholmodSupport>
#include <tbb/enumerable_thread_specific.h>

#include <memory>

#include "circuits/solver.hpp"

namespace xbar::circuits {

class DirectSolver final : public Solver {
 public:
  DirectSolver(int rows, int cols, const core::WireOptions& wires, double tol = 1e-10, int max_iter = 50);
  ~DirectSolver() override;
  const char* name() const override { return "direct"; }
  SolveSummary set_cells(const Eigen::MatrixXd& g_device, const CellModel& model) override;
  SolveSummary solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell = nullptr,
                     int probe = 0) override;

  const NodalSystem& system() const { return system_; }
  // The nodal matrix and the Cholesky factor (CHOLMOD's count of nnz(L), values and row indices).
  std::size_t memory_bytes() const override;

 private:
  using Cholesky = Eigen::CholmodDecomposition<Eigen::SparseMatrix<double>, Eigen::Lower>;
  // A private copy of the system and its factorisation for one thread's Newton solves.
  struct NewtonWorker;
  struct NewtonResult {
    Eigen::VectorXd x;
    Eigen::MatrixXd i_cell;  // R×C at the solution
    Eigen::MatrixXd v_cell;  // R×C at the solution
    SolveSummary summary;
  };
  NewtonResult newton(NewtonWorker& worker, const Eigen::VectorXd& v_in) const;
  SolveSummary solve_linear(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell, int probe);
  SolveSummary solve_nonlinear(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell,
                               int probe);

  NodalSystem system_;
  Cholesky cholesky_;
  double tol_;
  int max_iter_;
  Eigen::MatrixXd g_device_, g_cell_;  // device read conductances; linear cell conductances
  CellModel model_;
  SolveSummary state_;  // outcome of analysis and the last factorisation
  std::unique_ptr<tbb::enumerable_thread_specific<std::unique_ptr<NewtonWorker>>> workers_;
};

}  // namespace xbar::circuits
