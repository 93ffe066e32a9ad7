// Nodal analysis of the canonical crossbar circuit (DESIGN.md, "The canonical crossbar circuit").
//
// Nodes: w(i,j) on word line i at cell (i,j), b(i,j) on bit line j at cell (i,j). Row i is driven
// by a source v_in[i] through r_source into w(i,0); word-line segments join w(i,j)-w(i,j+1);
// bit-line segments join b(i,j)-b(i+1,j); b(R-1,j) reaches the virtual ground through r_sense.
// Cell (i,j) joins w(i,j) and b(i,j) with the cell conductance (device in series with the access
// device's on-resistance).
//
// Zero resistances are exact shorts: the nodes they join are merged (a union-find over the
// nodes), and merged sets that touch a source or the ground are fixed potentials, not unknowns.
// The remaining unknowns satisfy A v = S v_in with A a grounded weighted Laplacian (symmetric
// positive definite when every unknown has a conducting path to a fixed node). An infinite
// resistance (or zero conductance) is an open circuit.
#pragma once

#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <string>
#include <vector>

#include "core/card.hpp"

namespace xbar::circuits {

// Effective conductance of a memory device g (S) in series with an access resistance r_access
// (ohm): 1 / (1/g + r_access); 0 for g = 0.
double series_conductance(double g, double r_access);
Eigen::MatrixXd series_conductance(const Eigen::MatrixXd& g, double r_access);

// The topology and the merged-node bookkeeping of one crossbar; values of A come with cells.
class NodalSystem {
 public:
  NodalSystem(int rows, int cols, const core::WireOptions& wires);

  int rows() const { return rows_; }
  int cols() const { return cols_; }
  const core::WireOptions& wires() const { return wires_; }
  int unknowns() const { return unknowns_; }

  // Physical node ids: w(i,j) = i*C + j, b(i,j) = R*C + i*C + j.
  int wl_node(int i, int j) const { return i * cols_ + j; }
  int bl_node(int i, int j) const { return rows_ * cols_ + i * cols_ + j; }

  // Where a physical node's voltage comes from: an unknown (index >= 0), a source row, or ground.
  struct NodeRef {
    enum Kind { unknown, source, ground } kind;
    int index;  // unknown index or source row
  };
  NodeRef node(int physical) const { return refs_[physical]; }

  // A for the given cell conductances (R×C, S, including the access device), lower triangle
  // stored (CHOLMOD's convention for symmetric matrices is honoured by the solver), with a
  // fixed sparsity pattern for this topology: refill() only overwrites values.
  const Eigen::SparseMatrix<double>& matrix() const { return a_; }
  // Overwrites A's values for new cell conductances. Throws nothing; non-finite or negative
  // conductances are reported by the solver.
  void refill(const Eigen::MatrixXd& g_cell);

  // Right-hand sides for a batch of input voltages (R×B): S·v_in, n×B.
  Eigen::MatrixXd rhs(const Eigen::MatrixXd& v_in) const;
  // S itself (n×R, rhs(v_in) = S·v_in) with the cell conductances of the last refill(). Its
  // pattern is fixed for this topology (one entry per element joining a source to an unknown,
  // kept even when its value is 0), so it shows which unknowns the sources touch. Used by the
  // effective-matrix solver, which needs S's few nonzeros rather than S·v_in for R unit vectors.
  Eigen::SparseMatrix<double> source_coupling() const;

  // Column currents (C×B) from the unknowns x (n×B): i_out[j] = sum_i g(i,j) (v_w(i,j) - v_b(i,j)).
  // By Kirchhoff's current law every bit line's cell currents leave through its sense resistor,
  // and this form stays exact when r_sense = 0. With `v_cell`, also the voltage across every cell
  // (R×C) for batch column `probe`.
  Eigen::MatrixXd column_currents(const Eigen::MatrixXd& x, const Eigen::MatrixXd& v_in, const Eigen::MatrixXd& g_cell,
                                  Eigen::MatrixXd* v_cell, int probe) const;

  // --- Nonlinear cells: the residual F(x) = A_w x - b_w + sum_k I_k (e_w(k) - e_b(k)), with A_w, b_w
  // the wires alone and I_k the current of cell k from its word-line to its bit-line node. ---
  // Voltage across every cell (R×C) for one vector of unknowns x and row voltages v_in.
  Eigen::MatrixXd cell_voltages(const Eigen::VectorXd& x, const Eigen::VectorXd& v_in) const;
  // F(x) for cell currents i_cell (R×C, A).
  Eigen::VectorXd residual(const Eigen::VectorXd& x, const Eigen::VectorXd& v_in, const Eigen::MatrixXd& i_cell) const;
  // ||b_w|| + the norm of the cell currents injected into unknown nodes: the scale of F.
  double residual_scale(const Eigen::VectorXd& v_in, const Eigen::MatrixXd& i_cell) const;

  // Describes an unknown that has no conducting path to a source or ground (for error messages),
  // or "" when every unknown is connected. Uses the current cell conductances.
  std::string floating_node_description(const Eigen::MatrixXd& g_cell) const;

  // Name of a physical node, "w(3,5)" / "b(0,2)".
  std::string node_name(int physical) const;

 private:
  // b[unknown] += g * v_in[row], g a wire's conductance or (cell >= 0) that cell's conductance.
  struct RhsTerm {
    int unknown;
    int row;
    double g;
    int cell;
  };

  int rows_, cols_;
  core::WireOptions wires_;
  int unknowns_ = 0;
  std::vector<NodeRef> refs_;          // per physical node 0..2RC-1
  Eigen::SparseMatrix<double> a_;      // lower triangle, fixed pattern
  std::vector<double> wire_values_;    // A's values from the wires alone
  Eigen::SparseMatrix<double> a_wire_; // A_w: the same pattern with the wires' values only
  // Per cell: positions in a_.valuePtr() of the diagonal entries of its two ends and of their
  // off-diagonal entry; -1 where an end is fixed or both ends are one node.
  std::vector<int> cell_diag_w_, cell_diag_b_, cell_offdiag_;
  std::vector<RhsTerm> rhs_terms_;
  Eigen::VectorXd cell_g_;             // current cell conductances, flattened i*C+j
  // For the floating-node check: conductance from each unknown to fixed nodes through wires,
  // and per cell the unknown it ties to a fixed node (-1 if none).
  std::vector<double> wire_leak_;
  std::vector<int> cell_leak_unknown_;
  std::vector<int> unknown_node_;      // a physical node of each unknown (for messages)

  Eigen::VectorXd wire_rhs(const Eigen::VectorXd& v_in) const;  // b_w
  // Adds sign * i_cell(k) at each cell's unknown word-line end and subtracts it at its bit-line end.
  void inject(const Eigen::MatrixXd& i_cell, double sign, Eigen::VectorXd& f) const;
};

}  // namespace xbar::circuits
