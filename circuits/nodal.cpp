#include "circuits/nodal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <queue>

namespace xbar::circuits {

double series_conductance(double g, double r_access) {
  if (g <= 0) return 0.0;
  return r_access > 0 ? 1.0 / (1.0 / g + r_access) : g;
}

Eigen::MatrixXd series_conductance(const Eigen::MatrixXd& g, double r_access) {
  return g.unaryExpr([r_access](double value) { return series_conductance(value, r_access); });
}

namespace {

class UnionFind {
 public:
  explicit UnionFind(int n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }
  int find(int x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void unite(int a, int b) {
    a = find(a);
    b = find(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }

 private:
  std::vector<int> parent_;
};

// Conductance of a wire of resistance r: +inf for a short (merged instead), 0 for an open wire.
double wire_conductance(double r) { return std::isinf(r) ? 0.0 : 1.0 / r; }

}  // namespace

NodalSystem::NodalSystem(int rows, int cols, const core::WireOptions& wires)
    : rows_(rows), cols_(cols), wires_(wires) {
  const int rc = rows * cols;
  const int source0 = 2 * rc;          // extended ids: sources 2RC+i, ground 2RC+R
  const int ground = 2 * rc + rows;
  UnionFind merged(ground + 1);
  for (int i = 0; i < rows; ++i) {
    if (wires.r_source == 0) merged.unite(source0 + i, wl_node(i, 0));
    for (int j = 0; j + 1 < cols; ++j)
      if (wires.r_wl_segment == 0) merged.unite(wl_node(i, j), wl_node(i, j + 1));
  }
  for (int j = 0; j < cols; ++j) {
    for (int i = 0; i + 1 < rows; ++i)
      if (wires.r_bl_segment == 0) merged.unite(bl_node(i, j), bl_node(i + 1, j));
    if (wires.r_sense == 0) merged.unite(bl_node(rows - 1, j), ground);
  }

  // Fixed potential of each merged set, then unknown numbers in order of first appearance.
  std::vector<NodeRef> root_ref(ground + 1, NodeRef{NodeRef::unknown, -1});
  for (int i = 0; i < rows; ++i) root_ref[merged.find(source0 + i)] = {NodeRef::source, i};
  root_ref[merged.find(ground)] = {NodeRef::ground, 0};
  std::vector<NodeRef> ext_refs(ground + 1);
  for (int p = 0; p <= ground; ++p) {
    NodeRef& ref = root_ref[merged.find(p)];
    if (ref.kind == NodeRef::unknown && ref.index < 0) {
      ref.index = unknowns_++;
      unknown_node_.push_back(p);
    }
    ext_refs[p] = ref;
  }
  refs_.assign(ext_refs.begin(), ext_refs.begin() + 2 * rc);

  // Pattern of A (lower triangle) from every element that can carry current.
  std::vector<Eigen::Triplet<double>> triplets;
  struct Wire {
    int p, q;
    double g;
  };
  std::vector<Wire> wire_list;
  auto add_wire = [&](int p, int q, double r) {
    if (r == 0 || std::isinf(r)) return;  // shorts are merged, opens carry nothing
    wire_list.push_back({p, q, wire_conductance(r)});
  };
  for (int i = 0; i < rows; ++i) {
    add_wire(source0 + i, wl_node(i, 0), wires.r_source);
    for (int j = 0; j + 1 < cols; ++j) add_wire(wl_node(i, j), wl_node(i, j + 1), wires.r_wl_segment);
  }
  for (int j = 0; j < cols; ++j) {
    for (int i = 0; i + 1 < rows; ++i) add_wire(bl_node(i, j), bl_node(i + 1, j), wires.r_bl_segment);
    add_wire(bl_node(rows - 1, j), ground, wires.r_sense);
  }
  auto pattern = [&](int p, int q) {
    const NodeRef a = ext_refs[p], b = ext_refs[q];
    if (a.kind == NodeRef::unknown) triplets.emplace_back(a.index, a.index, 0.0);
    if (b.kind == NodeRef::unknown) triplets.emplace_back(b.index, b.index, 0.0);
    if (a.kind == NodeRef::unknown && b.kind == NodeRef::unknown && a.index != b.index)
      triplets.emplace_back(std::max(a.index, b.index), std::min(a.index, b.index), 0.0);
  };
  for (const Wire& wire : wire_list) pattern(wire.p, wire.q);
  for (int k = 0; k < rc; ++k) pattern(k, rc + k);
  a_.resize(unknowns_, unknowns_);
  a_.setFromTriplets(triplets.begin(), triplets.end());
  a_.makeCompressed();

  auto slot = [&](int r, int c) -> int {
    const int* begin = a_.innerIndexPtr() + a_.outerIndexPtr()[c];
    const int* end = a_.innerIndexPtr() + a_.outerIndexPtr()[c + 1];
    const int* found = std::lower_bound(begin, end, r);
    return static_cast<int>(found - a_.innerIndexPtr());
  };

  // Stamp the wires once; record where each cell stamps.
  wire_values_.assign(a_.nonZeros(), 0.0);
  wire_leak_.assign(unknowns_, 0.0);
  auto stamp_ends = [&](int p, int q, double g, int cell) {
    const NodeRef a = ext_refs[p], b = ext_refs[q];
    const bool ua = a.kind == NodeRef::unknown, ub = b.kind == NodeRef::unknown;
    int diag_a = -1, diag_b = -1, off = -1;
    if (ua && ub && a.index == b.index) return std::array<int, 3>{-1, -1, -1};
    if (ua) diag_a = slot(a.index, a.index);
    if (ub) diag_b = slot(b.index, b.index);
    if (ua && ub) off = slot(std::max(a.index, b.index), std::min(a.index, b.index));
    if (ua != ub) {  // one end fixed
      const NodeRef fixed = ua ? b : a;
      const int u = ua ? a.index : b.index;
      if (fixed.kind == NodeRef::source) rhs_terms_.push_back({u, fixed.index, g, cell});
      if (cell < 0) wire_leak_[u] += g;
    }
    return std::array<int, 3>{diag_a, diag_b, off};
  };
  for (const Wire& wire : wire_list) {
    const auto slots = stamp_ends(wire.p, wire.q, wire.g, -1);
    if (slots[0] >= 0) wire_values_[slots[0]] += wire.g;
    if (slots[1] >= 0) wire_values_[slots[1]] += wire.g;
    if (slots[2] >= 0) wire_values_[slots[2]] -= wire.g;
  }
  cell_diag_w_.resize(rc);
  cell_diag_b_.resize(rc);
  cell_offdiag_.resize(rc);
  cell_leak_unknown_.assign(rc, -1);
  for (int k = 0; k < rc; ++k) {
    const auto slots = stamp_ends(k, rc + k, 0.0, k);
    cell_diag_w_[k] = slots[0];
    cell_diag_b_[k] = slots[1];
    cell_offdiag_[k] = slots[2];
    const bool uw = refs_[k].kind == NodeRef::unknown, ub = refs_[rc + k].kind == NodeRef::unknown;
    if (uw != ub) cell_leak_unknown_[k] = uw ? refs_[k].index : refs_[rc + k].index;
  }
  cell_g_ = Eigen::VectorXd::Zero(rc);
  std::copy(wire_values_.begin(), wire_values_.end(), a_.valuePtr());
  a_wire_ = a_;
}

void NodalSystem::refill(const Eigen::MatrixXd& g_cell) {
  double* values = a_.valuePtr();
  std::copy(wire_values_.begin(), wire_values_.end(), values);
  for (int i = 0; i < rows_; ++i) {
    for (int j = 0; j < cols_; ++j) {
      const int k = i * cols_ + j;
      const double g = g_cell(i, j);
      cell_g_[k] = g;
      if (cell_diag_w_[k] >= 0) values[cell_diag_w_[k]] += g;
      if (cell_diag_b_[k] >= 0) values[cell_diag_b_[k]] += g;
      if (cell_offdiag_[k] >= 0) values[cell_offdiag_[k]] -= g;
    }
  }
}

Eigen::MatrixXd NodalSystem::rhs(const Eigen::MatrixXd& v_in) const {
  Eigen::MatrixXd b = Eigen::MatrixXd::Zero(unknowns_, v_in.cols());
  for (const RhsTerm& term : rhs_terms_) {
    const double g = term.cell >= 0 ? cell_g_[term.cell] : term.g;
    b.row(term.unknown) += g * v_in.row(term.row);
  }
  return b;
}

Eigen::SparseMatrix<double> NodalSystem::source_coupling() const {
  std::vector<Eigen::Triplet<double>> triplets;
  triplets.reserve(rhs_terms_.size());
  for (const RhsTerm& term : rhs_terms_)
    triplets.emplace_back(term.unknown, term.row, term.cell >= 0 ? cell_g_[term.cell] : term.g);
  Eigen::SparseMatrix<double> s(unknowns_, rows_);
  s.setFromTriplets(triplets.begin(), triplets.end());  // sums repeats, keeps explicit zeros
  s.makeCompressed();
  return s;
}

Eigen::MatrixXd NodalSystem::column_currents(const Eigen::MatrixXd& x, const Eigen::MatrixXd& v_in,
                                             const Eigen::MatrixXd& g_cell, Eigen::MatrixXd* v_cell, int probe) const {
  // Work on transposes so that each node's batch of voltages is one contiguous column.
  const Eigen::MatrixXd x_t = x.transpose(), v_t = v_in.transpose();
  const Eigen::Index batch = v_in.cols();
  const Eigen::VectorXd zero = Eigen::VectorXd::Zero(batch);
  auto voltages = [&](int physical) -> Eigen::Ref<const Eigen::VectorXd> {
    const NodeRef ref = refs_[physical];
    if (ref.kind == NodeRef::unknown) return x_t.col(ref.index);
    if (ref.kind == NodeRef::source) return v_t.col(ref.index);
    return zero;
  };
  const int rc = rows_ * cols_;
  Eigen::MatrixXd i_t = Eigen::MatrixXd::Zero(batch, cols_);
  if (v_cell) v_cell->resize(rows_, cols_);
  for (int i = 0; i < rows_; ++i)
    for (int j = 0; j < cols_; ++j) {
      const int k = i * cols_ + j;
      const auto v_w = voltages(k), v_b = voltages(rc + k);
      i_t.col(j) += g_cell(i, j) * (v_w - v_b);
      if (v_cell && batch > 0) (*v_cell)(i, j) = v_w[probe] - v_b[probe];
    }
  return i_t.transpose();
}

Eigen::MatrixXd NodalSystem::cell_voltages(const Eigen::VectorXd& x, const Eigen::VectorXd& v_in) const {
  auto voltage = [&](int physical) {
    const NodeRef ref = refs_[physical];
    return ref.kind == NodeRef::unknown ? x[ref.index] : ref.kind == NodeRef::source ? v_in[ref.index] : 0.0;
  };
  const int rc = rows_ * cols_;
  Eigen::MatrixXd v(rows_, cols_);
  for (int i = 0; i < rows_; ++i)
    for (int j = 0; j < cols_; ++j) v(i, j) = voltage(i * cols_ + j) - voltage(rc + i * cols_ + j);
  return v;
}

Eigen::VectorXd NodalSystem::wire_rhs(const Eigen::VectorXd& v_in) const {
  Eigen::VectorXd b = Eigen::VectorXd::Zero(unknowns_);
  for (const RhsTerm& term : rhs_terms_)
    if (term.cell < 0) b[term.unknown] += term.g * v_in[term.row];
  return b;
}

void NodalSystem::inject(const Eigen::MatrixXd& i_cell, double sign, Eigen::VectorXd& f) const {
  const int rc = rows_ * cols_;
  for (int i = 0; i < rows_; ++i)
    for (int j = 0; j < cols_; ++j) {
      const int k = i * cols_ + j;
      const double current = sign * i_cell(i, j);
      if (refs_[k].kind == NodeRef::unknown) f[refs_[k].index] += current;
      if (refs_[rc + k].kind == NodeRef::unknown) f[refs_[rc + k].index] -= current;
    }
}

Eigen::VectorXd NodalSystem::residual(const Eigen::VectorXd& x, const Eigen::VectorXd& v_in,
                                      const Eigen::MatrixXd& i_cell) const {
  Eigen::VectorXd f = a_wire_.selfadjointView<Eigen::Lower>() * x - wire_rhs(v_in);
  inject(i_cell, 1.0, f);
  return f;
}

double NodalSystem::residual_scale(const Eigen::VectorXd& v_in, const Eigen::MatrixXd& i_cell) const {
  Eigen::VectorXd injected = Eigen::VectorXd::Zero(unknowns_);
  inject(i_cell.cwiseAbs(), 1.0, injected);
  return wire_rhs(v_in).norm() + injected.norm();
}

std::string NodalSystem::node_name(int physical) const {
  const int rc = rows_ * cols_;
  const int k = physical % rc;
  return fmt::format("{}({},{})", physical < rc ? "w" : "b", k / cols_, k % cols_);
}

std::string NodalSystem::floating_node_description(const Eigen::MatrixXd& g_cell) const {
  // Unknowns tied to a fixed node seed a search over conducting off-diagonal entries.
  std::vector<double> leak = wire_leak_;
  const int rc = rows_ * cols_;
  for (int k = 0; k < rc; ++k)
    if (cell_leak_unknown_[k] >= 0 && g_cell(k / cols_, k % cols_) > 0) leak[cell_leak_unknown_[k]] += 1.0;
  std::vector<std::vector<int>> neighbours(unknowns_);
  for (int c = 0; c < a_.outerSize(); ++c)
    for (Eigen::SparseMatrix<double>::InnerIterator it(a_, c); it; ++it)
      if (it.row() != c && it.value() != 0) {
        neighbours[c].push_back(static_cast<int>(it.row()));
        neighbours[it.row()].push_back(c);
      }
  std::vector<char> reached(unknowns_, 0);
  std::queue<int> frontier;
  for (int u = 0; u < unknowns_; ++u)
    if (leak[u] > 0) {
      reached[u] = 1;
      frontier.push(u);
    }
  while (!frontier.empty()) {
    const int u = frontier.front();
    frontier.pop();
    for (int v : neighbours[u])
      if (!reached[v]) {
        reached[v] = 1;
        frontier.push(v);
      }
  }
  const int count = static_cast<int>(std::count(reached.begin(), reached.end(), 0));
  for (int u = 0; u < unknowns_; ++u)
    if (!reached[u])
      return fmt::format("node {} (and {} other unknown node{}) has no conducting path to a row driver or the "
                         "virtual ground",
                         node_name(unknown_node_[u]), count - 1, count == 2 ? "" : "s");
  return "";
}

}  // namespace xbar::circuits
