// The exact gradient of a crossbar's linear map with respect to its device conductances, for
// training differentiated through the IR-drop circuit ("nat-full").
//
// The circuit is the canonical crossbar (DESIGN.md, nodal.hpp) with LINEAR cells: the device
// conductance g (S) in series with the access device's on-resistance r_on (ohm), so the cell
// conductance is g_cell = g / (1 + g·r_on) (g itself without an access device, r_on = 0). The
// column currents are i_out = M v_in with M (C×R, A/V) exactly EffectiveSolver::matrix(). Zero
// wire resistances are exact shorts (NodalSystem merges the nodes), infinite ones are opens.
//
// The math. See the array as a multiport whose terminals are the R row drivers s_r and the C
// virtual grounds t_c (column c's sense resistor's far end; with r_sense = 0, the bit-line nodes
// of column c shorted to ground). Let V^(p) be the node voltages with terminal p at 1 V and every
// other terminal at 0 V, and Δ_e^(p) = V_w^(p) − V_b^(p) the voltage across cell e (word-line end
// minus bit-line end) in that state. With L the Laplacian of the whole network (every element,
// terminals included), V^(q)'s currents vanish at internal nodes, so the short-circuit
// admittance (I_p = Σ_q Y_pq V_q, I_p the current into the network at terminal p) is
//     Y_pq = V^(p)ᵀ L V^(q) = Σ_elements g_e Δ_e^(p) Δ_e^(q).
// Differentiating, dV^(p) is zero on the terminals and L V^(q) is zero off them, so the terms in
// dV drop out:  ∂Y_pq/∂g_e = Δ_e^(p) Δ_e^(q). The current into virtual ground c for v_in = e_r
// is M[c, r] = −Y[t_c, s_r], hence
//     ∂M[c, r] / ∂g_cell,e = −Δ_e^(s_r) · Δ_e^(t_c).
// In NodalSystem's terms (unknowns x, A x = S v_in, A symmetric positive definite): the forward
// state u^(r) solves A u = S e_r and the adjoint state λ^(c) solves A λ = a_c, where a_c holds the
// conductances of the elements joining an unknown to terminal t_c (g_sense at b(R−1,c); with
// r_sense = 0 the cells and the bit-line segment touching column c's grounded nodes). Since A is
// symmetric, λ^(c) is also the adjoint of the output functional i_c = a_cᵀ u + (direct terms).
// Merged nodes take their fixed potential in each state: a word-line node shorted to driver r is
// 1 V in u^(r) and 0 V in every λ; a bit-line node shorted to ground in column j is 0 V in every
// u and 1 V in λ^(j) (0 V in the other λ). With
//     U (cells × used_rows), U[e, r] = Δ_e^(s_r),     Λ (cells × used_cols), Λ[e, c] = Δ_e^(t_c),
// and S = dL/dM (used_cols × used_rows):
//     dL/dg_cell,e = −Σ_{c,r} S[c, r] U[e, r] Λ[e, c] = −Σ_r U[e, r] (Λ S)[e, r],
//     dL/dg_e      = dL/dg_cell,e / (1 + g_e r_on)²        (dg_cell/dg; 1 at g = 0, the limit).
// With all wires 0 (no unknowns) U[(i,j), r] = [i = r], Λ[(i,j), c] = −[j = c], M = g_cellᵀ and
// dL/dg_cell[i, j] = S[j, i]. M itself is taken from the forward states in the port form,
// M[c, r] = Σ over the elements joining terminal t_c to a node o of g_element · V_o^(s_r), as
// EffectiveSolver writes it. Cells of rows >= used_rows (driven at 0 V) and of columns >= used_cols
// still load the circuit, so the gradient covers all R×C devices.
//
// How it is computed. CHOLMOD analyses A's pattern once (constructor) and factorises it once per
// set_conductances(); the used_rows + used_cols right-hand sides are solved as one batch, split
// into fixed chunks of 32 columns that run as oneTBB tasks (each with its own CHOLMOD workspace,
// sharing the factor), each writing its own columns of U, Λ and M; the node solutions are not
// kept. conductance_gradient() is one dense product Λ S per fixed block of 512 cells (oneTBB
// tasks, BLAS/Eigen single-threaded inside) and a row-wise dot product with U. The partitions do
// not depend on the thread count, so neither does any bit of the results.
//
// Cost, measured at 256×64 (R×C), used_rows = 256, used_cols = 64, all four wires 10 ohm, random
// g in 1-25 µS, with and without r_on = 5 kohm (no difference), one oneTBB thread, on the 2-core
// development machine while other builds ran (so CPU seconds, which the load disturbs least; wall
// time was 1.05-2x these):
//   constructor (METIS analysis, once per topology)   0.10 s
//   set_conductances                                  0.39-0.42 s: factorisation 0.027 s, the
//                                                     320 solves with U/Λ/M extraction the rest
//                                                     (EffectiveSolver::set_cells, for scale: 0.035 s)
//   conductance_gradient                              0.039 s
//   memory_bytes()                                    52.5 MB (U 33.6 MB, Λ 8.4 MB, the rest
//                                                     mostly the factor)
// The solves dominate; their count, used_rows + used_cols, is what this layout costs. (A layout
// storing only the smaller side and solving the other inside conductance_gradient, for inputs
// S[c, :]ᵀ, would need 2·min(used_rows, used_cols) solves per set + gradient, 128 instead of 320
// here, at the price of a gradient that solves rather than multiplies.)
#pragma once

#include <Eigen/Dense>

#include <cstddef>
#include <memory>

#include "circuits/solver.hpp"
#include "core/card.hpp"

namespace xbar::circuits {

class CrossbarJacobian {
 public:
  // A rows × cols crossbar with these wires (ohm; 0 a short, +inf an open) and access
  // on-resistance r_access_on (ohm; 0 for no access device). Throws std::invalid_argument for
  // rows or cols < 1, a negative or NaN wire resistance, or an r_access_on that is negative or
  // not finite.
  CrossbarJacobian(int rows, int cols, const core::WireOptions& wires, double r_access_on = 0);
  ~CrossbarJacobian();
  CrossbarJacobian(const CrossbarJacobian&) = delete;
  CrossbarJacobian& operator=(const CrossbarJacobian&) = delete;

  int rows() const;
  int cols() const;
  int used_rows() const;  // of the last successful set_conductances(); 0 before
  int used_cols() const;

  // Factorises the nodal system for device conductances g_device (R×C, S) and computes, for the
  // first `used_rows` row inputs and the first `used_cols` columns, M (used_cols × used_rows) and
  // the cell-voltage sensitivities U and Λ the gradient needs (stored). Throws
  // std::invalid_argument when g_device is not R×C or used_rows / used_cols are outside
  // 0..rows / 0..cols. A negative or non-finite conductance, a floating circuit or a failed
  // factorisation is a status with a message (and matrix() is then empty). The summary's
  // analyse_s is the constructor's analysis, factorize_s the factorisation, solve_s the batched
  // solves with the extraction of U, Λ and M; residual is the largest relative nodal residual
  // ||A x − b|| / ||b|| over the right-hand sides.
  SolveSummary set_conductances(const Eigen::MatrixXd& g_device, int used_rows, int used_cols);

  // M restricted to the used columns × used rows (A/V); empty unless the last set_conductances()
  // succeeded.
  const Eigen::MatrixXd& matrix() const;

  // dL/dg_device (R×C, per S of device conductance) for dL/dM = dL_dM (used_cols × used_rows).
  // Throws std::invalid_argument for another shape and std::logic_error when the last
  // set_conductances() did not succeed.
  Eigen::MatrixXd conductance_gradient(const Eigen::MatrixXd& dL_dM) const;

  // Bytes held between the two calls: U, Λ, M, the per-cell chain factors, the nodal matrix and
  // the Cholesky factor.
  std::size_t memory_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xbar::circuits
