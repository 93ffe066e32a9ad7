// The exact reference solver: sparse Cholesky (CHOLMOD, through Eigen's CholmodSupport) of the
// nodal equations. The pattern is analysed once per topology, factorised once per programming
// state, and solved for a whole batch of right-hand sides at once.
#pragma once

#include <Eigen/CholmodSupport>

#include "circuits/solver.hpp"

namespace xbar::circuits {

class DirectSolver final : public Solver {
 public:
  DirectSolver(int rows, int cols, const core::WireOptions& wires);
  const char* name() const override { return "direct"; }
  SolveSummary set_conductances(const Eigen::MatrixXd& g_cell) override;
  SolveSummary solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell = nullptr,
                     int probe = 0) override;

  const NodalSystem& system() const { return system_; }

 private:
  NodalSystem system_;
  Eigen::CholmodDecomposition<Eigen::SparseMatrix<double>, Eigen::Lower> cholesky_;
  Eigen::MatrixXd g_cell_;
  SolveSummary state_;  // outcome of analysis and the last factorisation
};

}  // namespace xbar::circuits
