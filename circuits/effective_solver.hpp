// Effective-matrix mode (solver.method: effective). With linear cells the array is linear in the
// row voltages, i_out = M v_in exactly, with M (C×R) a function of conductances and wires only.
// set_cells() builds M once per programming state; solve() is then one dense product (GEMM) per
// batch of reads, the physical limit of a software MVM.
//
// How M is built (exact to rounding, faster than one solve per row): the unknowns that touch the
// sources and the outputs ("ports", at most 2(R + C) nodes) are ordered last (the interior by a
// nested dissection of the cell grid), the nodal matrix is factorised once (CHOLMOD, supernodal),
// and the trailing port block of the Cholesky factor is the Schur complement of the interior onto
// the ports; M follows from that small dense matrix. (See effective_solver.cpp for the details and
// the fall-back when the ports are many, e.g. zero bit-line and sense resistance.)
#pragma once

#include <memory>

#include "circuits/solver.hpp"

namespace xbar::circuits {

class EffectiveSolver final : public Solver {
 public:
  EffectiveSolver(int rows, int cols, const core::WireOptions& wires);
  ~EffectiveSolver() override;
  const char* name() const override { return "effective"; }
  // Linear cells only: a nonlinear cell model gives a status with a message (use direct or
  // iterative, which run Newton). The build time of M is reported as factorize_s.
  SolveSummary set_cells(const Eigen::MatrixXd& g_device, const CellModel& model) override;
  // i_out = M v_in (one GEMM). With v_cell, the cell voltages of batch column `probe` come from
  // one extra solve with the stored factorisation.
  SolveSummary solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell = nullptr,
                     int probe = 0) override;

  const Eigen::MatrixXd& matrix() const;  // M, C×R (A/V); valid after a successful set_cells()
  std::size_t memory_bytes() const override;  // the factor, the nodal matrix and M

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xbar::circuits
