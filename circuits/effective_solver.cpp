// Effective-matrix solver: M (C×R) with i_out = M v_in exactly, for linear cells.
//
// The algorithm (exact to rounding):
//
//  * The nodal system is A x = S v_in (NodalSystem: n unknowns, zero resistances merged) and the
//    outputs are i_out = Cx x + Cv v_in. NodalSystem::column_currents writes i_out as the sum of
//    each bit line's cell currents, which touches every node. By Kirchhoff's current law the same
//    current is the one entering the virtual ground, i.e. flowing through the few elements that
//    touch the ground class: the sense resistor (r_sense > 0: one unknown per column), or with
//    r_sense = 0 the cells of the bit-line nodes shorted to ground and the bit-line segment just
//    above them. That "port form" (Cx', Cv') touches at most 2C unknowns; S touches at most 2R.
//    Their union is the set of P ports.
//  * Ports mode: the unknowns are ordered interior first, ports last (outputs-only ports, then the
//    ports the sources touch), and A is factorised once per programming state by CHOLMOD
//    (supernodal LL'; the symbolic analysis is done once per topology, in the constructor). With
//    A = [A_ii A_ip; A_pi A_pp] and L = [L_ii 0; L_pi L_pp], L_pp L_pp' = A_pp - A_pi A_ii^-1 A_ip
//    (the Schur complement onto the ports) and (A^-1)_pp = (L_pp L_pp')^-1. S and Cx' are zero in
//    the interior rows / columns, so exactly
//        M = Cx'_p (L_pp L_pp')^-1 S_p + Cv' = (L_pp^-1 Cx'_p')' (L_pp^-1 S_p) + Cv'.
//    S_p is zero above its last P_in rows, so L_pp^-1 S_p is too, and only the trailing P_in×P_in
//    triangle solves with it: M = U_in' W_in + Cv' with W_in = L_in^-1 S_in, U = L_pp^-1 Cx'_p'.
//  * The interior ordering is a nested dissection by the cells' grid coordinates (GridDissection
//    below), postordered by its elimination tree. Measured at 256×256 (ports last in every case):
//    it gives 6.0e8 flops / 3.2e6 nnz(L) in 0.03 s of ordering, METIS_NodeND on the interior
//    6.2e8 / 3.4e6 in 0.47 s, CAMD with the ports as the last constraint set 2.0e9 / 5.7e6; the
//    plain (unconstrained) factorisation's own AMD ordering has 7.7e8 flops. CHOLMOD's postorder
//    is switched off (it could move interior unknowns past ports; the interior is postordered
//    here) and the analysis checks that the ports are the factor's last P columns.
//  * Columns mode (fall-back): when the ports are many (the fully shorted cases: r_source = 0 and
//    r_wl = 0 make every word line a source, r_sense = 0 and r_bl = 0 make every bit line ground,
//    so P grows like R·C) or the dense port block would cost more than solving directly (long,
//    thin arrays), A is factorised with CHOLMOD's own (default, postordered) analysis and M is
//    built from one solve per input, M(:, i) = Cx' A^-1 S e_i + Cv' e_i, or, when cheaper, one
//    per output (A is symmetric), M(j, :) = (A^-1 Cx'' e_j)' S + e_j' Cv'. Each solve runs only on
//    the connected components of A's graph its right-hand side touches (each component is a
//    contiguous range of the postordered factor's columns): in the fully shorted cases every word
//    or bit line is its own component, so a solve costs O(R) or O(C), not O(R·C). The solves are
//    forward and back substitutions on CHOLMOD's factor (simplicial LDL' or supernodal LL', as its
//    analysis chose), spread over oneTBB tasks, each writing its own column (row) of M.
//    The choice between the modes and directions is made once per topology from the flop counts
//    of CHOLMOD's analyses.
//  * No unknowns (every node shorted to a source or the ground): M = column_currents(-, I).
//
// What `residual` means here: set_cells solves the nodal equations once for a fixed positive check
// vector v_c with the stored factorisation and reports
//     max( ||A x - S v_c|| / ||S v_c||,  ||M v_c - i(x)|| / ||i(x)|| ),
// the relative nodal residual of that solve and how far M v_c is from the currents it gives.
// solve() reports that build residual, or, with the v_cell probe, the same quantity for the probe
// column of the batch (whose node voltages come from one solve with the stored factorisation).
// set_cells' factorize_s is the wall time of the whole build: factorisation, port algebra, check.
//
// Threads: in the ports mode the two triangular solves and the check solve run as three oneTBB
// tasks; in the columns mode the solves are oneTBB tasks. Each task's arithmetic is fixed by
// itself (CHOLMOD and Eigen kernels, BLAS pinned to one thread) and writes its own output, so the
// result does not depend on the thread count. CHOLMOD's factorisation itself is serial.
#include "circuits/effective_solver.hpp"

#include <cholmod.h>
#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "circuits/cholmod_views.hpp"

namespace xbar::circuits {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Largest port count for which the dense P×P port block is considered (8·P² bytes).
constexpr int kMaxPorts = 16384;

// Owns a CHOLMOD factor (freed with the common it was made with).
class Factor {
 public:
  Factor() = default;
  Factor(cholmod_factor* factor, cholmod_common* common) : factor_(factor), common_(common) {}
  Factor(Factor&& other) noexcept : factor_(other.factor_), common_(other.common_) { other.factor_ = nullptr; }
  Factor& operator=(Factor&& other) noexcept {
    std::swap(factor_, other.factor_);
    std::swap(common_, other.common_);
    return *this;
  }
  Factor(const Factor&) = delete;
  Factor& operator=(const Factor&) = delete;
  ~Factor() {
    if (factor_) cholmod_free_factor(&factor_, common_);
  }
  cholmod_factor* get() const { return factor_; }
  cholmod_factor* operator->() const { return factor_; }
  explicit operator bool() const { return factor_ != nullptr; }

 private:
  cholmod_factor* factor_ = nullptr;
  cholmod_common* common_ = nullptr;
};

// CHOLMOD's workspace and settings, quiet (failures are reported through the summary).
struct CholmodCommon {
  CholmodCommon() {
    cholmod_start(&common);
    common.print = 0;
    common.error_handler = nullptr;
  }
  ~CholmodCommon() { cholmod_finish(&common); }
  CholmodCommon(const CholmodCommon&) = delete;
  CholmodCommon& operator=(const CholmodCommon&) = delete;
  cholmod_common common;
};

// Elimination tree of the symmetric pattern given by `lower[k]` (the neighbours i < k of node k),
// Liu's algorithm with path compression; -1 marks a root.
std::vector<int> elimination_tree(const std::vector<std::vector<int>>& lower) {
  const int n = static_cast<int>(lower.size());
  std::vector<int> parent(n, -1), ancestor(n, -1);
  for (int k = 0; k < n; ++k)
    for (int i : lower[k])
      while (i != -1 && i < k) {
        const int next = ancestor[i];
        ancestor[i] = k;
        if (next == -1) parent[i] = k;
        i = next;
      }
  return parent;
}

// A postorder of a forest (children before parents, every subtree contiguous).
std::vector<int> postorder(const std::vector<int>& parent) {
  const int n = static_cast<int>(parent.size());
  std::vector<int> head(n, -1), next(n, -1), order, stack;
  order.reserve(n);
  for (int k = n - 1; k >= 0; --k)
    if (parent[k] >= 0) {
      next[k] = head[parent[k]];
      head[parent[k]] = k;
    }
  for (int root = 0; root < n; ++root) {
    if (parent[root] >= 0) continue;
    stack.push_back(root);
    while (!stack.empty()) {
      const int top = stack.back();
      const int child = head[top];
      if (child == -1) {
        stack.pop_back();
        order.push_back(top);
      } else {
        head[top] = next[child];
        stack.push_back(child);
      }
    }
  }
  return order;
}

// Nested dissection of a graph whose vertices have coordinates on the crossbar's grid of cells
// (row, col): the vertices' bounding box is cut across its longer side, the cut edges are covered
// greedily by a vertex separator (vertices cutting the most edges first, e.g. a merged word or bit
// line), and the two sides are ordered recursively before the separator. On the crossbar's graph
// the separators are lines of the array (one node per word or bit line crossing the cut), the
// orderings METIS_NodeND finds, in a fraction of its time. Deterministic.
class GridDissection {
 public:
  GridDissection(const std::vector<std::vector<int>>& adjacency, const std::vector<int>& row,
                 const std::vector<int>& col)
      : adjacency_(adjacency), row_(row), col_(col), side_(adjacency.size(), 0), in_set_(adjacency.size(), 0),
        in_separator_(adjacency.size(), 0), cut_degree_(adjacency.size(), 0) {}

  std::vector<int> order() {
    std::vector<int> all(adjacency_.size());
    std::iota(all.begin(), all.end(), 0);
    order_.clear();
    order_.reserve(all.size());
    dissect(std::move(all));
    return order_;
  }

 private:
  static constexpr size_t kLeaf = 8;

  void dissect(std::vector<int> set) {
    if (set.size() <= kLeaf) {
      order_.insert(order_.end(), set.begin(), set.end());
      return;
    }
    int r0 = row_[set[0]], r1 = r0, c0 = col_[set[0]], c1 = c0;
    for (int v : set) {
      r0 = std::min(r0, row_[v]);
      r1 = std::max(r1, row_[v]);
      c0 = std::min(c0, col_[v]);
      c1 = std::max(c1, col_[v]);
    }
    if (r0 == r1 && c0 == c1) {  // one cell: at most its two nodes
      order_.insert(order_.end(), set.begin(), set.end());
      return;
    }
    const bool by_row = r1 - r0 >= c1 - c0;
    const int mid = by_row ? (r0 + r1 + 1) / 2 : (c0 + c1 + 1) / 2;
    for (int v : set) {
      in_set_[v] = 1;
      side_[v] = (by_row ? row_[v] : col_[v]) >= mid;
    }
    std::vector<int> candidates;
    for (int v : set) {
      int degree = 0;
      for (int u : adjacency_[v]) degree += in_set_[u] && side_[u] != side_[v];
      cut_degree_[v] = degree;
      if (degree > 0) candidates.push_back(v);
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](int a, int b) { return cut_degree_[a] > cut_degree_[b]; });
    std::vector<int> separator;
    for (int v : candidates) {
      bool uncovered = false;
      for (int u : adjacency_[v]) uncovered |= in_set_[u] && side_[u] != side_[v] && !in_separator_[u];
      if (uncovered) {
        in_separator_[v] = 1;
        separator.push_back(v);
      }
    }
    std::vector<int> first, second;
    for (int v : set)
      if (!in_separator_[v]) (side_[v] ? second : first).push_back(v);
    for (int v : set) in_set_[v] = 0;
    std::vector<int>().swap(set);
    dissect(std::move(first));
    dissect(std::move(second));
    order_.insert(order_.end(), separator.begin(), separator.end());
  }

  const std::vector<std::vector<int>>& adjacency_;
  const std::vector<int>& row_;
  const std::vector<int>& col_;
  std::vector<char> side_, in_set_, in_separator_;
  std::vector<int> cut_degree_;
  std::vector<int> order_;
};

}  // namespace

struct EffectiveSolver::Impl {
  Impl(int rows, int cols, const core::WireOptions& wires);
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  enum class Mode { no_unknowns, ports, columns };

  // One term of the port form of the output currents: i_out[col] += coefficient · v(end), the
  // coefficient a wire's conductance or (cell >= 0) that cell's conductance.
  struct OutputTerm {
    int col;
    NodalSystem::NodeRef end;
    double wire_g;
    int cell;  // i*C + j, or -1
  };

  NodalSystem system;
  CholmodCommon workspace;          // declared before the factor, which is freed first
  cholmod_common& common = workspace.common;
  Factor factor;
  Mode mode = Mode::no_unknowns;
  std::vector<OutputTerm> output_terms;
  std::vector<int> ports;            // unknown of port t, which sits at factor position n - P + t
  std::vector<int> port_of_unknown;  // its port number, -1 for interior unknowns
  int input_ports = 0;               // the last input_ports ports are those the sources touch
  Eigen::MatrixXd g_cell;            // R×C linear cell conductances
  Eigen::MatrixXd m;                 // C×R
  SolveSummary state;

  // Columns mode: the connected components of A's graph, each a contiguous range of columns (and,
  // for a supernodal factor, of whole supernodes) of the postordered factor; a right-hand side is
  // solved on the components it touches only.
  struct Component {
    int first_column, end_column, first_super, end_super;
  };
  std::vector<int> position;                       // factor column of each unknown
  std::vector<int> component_of;                   // component of each unknown
  std::vector<Component> components;
  std::vector<std::vector<int>> terms_of_component;  // output terms whose end is an unknown there
  bool by_outputs = false;                         // one solve per output (else per input)

  int n() const { return system.unknowns(); }
  int rows() const { return system.rows(); }
  int cols() const { return system.cols(); }

  void find_output_terms();
  void find_ports();
  std::vector<int> interior_order() const;
  Factor analyse_ports(double& flops);
  // CHOLMOD's own ordering, and the columns mode's components; `cost`: its estimated flops.
  Factor analyse_plain(double& cost);
  bool factorize();
  void build_ports(const Eigen::VectorXd& v_check, Eigen::MatrixXd& x_check);
  void build_columns();
  void solve_component(const Component& k, double* y) const;  // y <- A^-1 y on one component
  Eigen::MatrixXd solve_nodes(const Eigen::MatrixXd& b);  // x = A^-1 b with the stored factor
  // For one input v (R): x_v (n×1, solved if `x` is null) -> the relative nodal residual, maxed
  // with the relative distance of i_m (M v) from the currents of x_v; the cell voltages with v_cell.
  double check(const Eigen::VectorXd& v, const Eigen::MatrixXd* x, const Eigen::VectorXd& i_m,
               Eigen::MatrixXd* v_cell);
};

EffectiveSolver::Impl::Impl(int rows, int cols, const core::WireOptions& wires) : system(rows, cols, wires) {
  state.method = "effective";
  state.status = core::SolveStatus::singular;
  state.message = "no conductances set";
  const auto start = std::chrono::steady_clock::now();
  find_output_terms();
  if (n() > 0) {
    find_ports();
    const int p = static_cast<int>(ports.size());
    double flops_ports = 0, cost_columns = 0;
    Factor constrained, plain;
    // Few ports (at most 2(R+C) unless a whole word line is a source or a whole bit line is
    // ground) and a dense port block that fits: try the ports-last ordering.
    if (p <= 2 * (rows + cols) && p <= kMaxPorts) constrained = analyse_ports(flops_ports);
    if (constrained) {
      // The dense port work dominates only for long thin arrays; then compare with the columns
      // mode (the plain factorisation and its per-input or per-output solves).
      const double pd = p, pin = input_ports;
      const double dense = pd * pd * pd / 3 + pin * pin * rows + pd * pd * cols + 2 * pin * rows * cols;
      if (dense > 0.5 * flops_ports) {
        plain = analyse_plain(cost_columns);
        if (plain && cost_columns < flops_ports + dense - pd * pd * pd / 3) constrained = Factor();
      }
    }
    if (constrained) {
      factor = std::move(constrained);
      mode = Mode::ports;
    } else {
      factor = plain ? std::move(plain) : analyse_plain(cost_columns);
      mode = Mode::columns;
    }
    if (!factor) state.message = fmt::format("CHOLMOD could not analyse the nodal matrix (status {})", common.status);
  }
  state.analyse_s = seconds_since(start);
}

void EffectiveSolver::Impl::find_output_terms() {
  const int r = rows(), c = cols();
  const core::WireOptions& w = system.wires();
  for (int j = 0; j < c; ++j) {
    if (w.r_sense > 0) {  // the sense resistor; an infinite one carries nothing
      if (!std::isinf(w.r_sense)) output_terms.push_back({j, system.node(system.bl_node(r - 1, j)), 1 / w.r_sense, -1});
      continue;
    }
    // r_sense = 0: bit-line nodes top..R-1 of this column are the virtual ground (shorted through
    // zero segments, as NodalSystem merges them); current enters them through their cells and
    // through the segment above `top`.
    int top = r - 1;
    while (top > 0 && w.r_bl_segment == 0) --top;
    for (int i = top; i < r; ++i) output_terms.push_back({j, system.node(system.wl_node(i, j)), 0.0, i * c + j});
    if (top > 0 && !std::isinf(w.r_bl_segment))
      output_terms.push_back({j, system.node(system.bl_node(top - 1, j)), 1 / w.r_bl_segment, -1});
  }
}

void EffectiveSolver::Impl::find_ports() {
  std::vector<char> is_input(n(), 0), is_output(n(), 0);
  const Eigen::SparseMatrix<double> s = system.source_coupling();  // its pattern is the topology's
  for (int k = 0; k < s.outerSize(); ++k)
    for (Eigen::SparseMatrix<double>::InnerIterator it(s, k); it; ++it) is_input[it.row()] = 1;
  for (const OutputTerm& term : output_terms)
    if (term.end.kind == NodalSystem::NodeRef::unknown) is_output[term.end.index] = 1;
  port_of_unknown.assign(n(), -1);
  for (int u = 0; u < n(); ++u)
    if (is_output[u] && !is_input[u]) {
      port_of_unknown[u] = static_cast<int>(ports.size());
      ports.push_back(u);
    }
  for (int u = 0; u < n(); ++u)
    if (is_input[u]) {
      port_of_unknown[u] = static_cast<int>(ports.size());
      ports.push_back(u);
      ++input_ports;
    }
}

// A fill-reducing order of the interior unknowns (the graph without the ports), postordered, as a
// list of unknown indices.
std::vector<int> EffectiveSolver::Impl::interior_order() const {
  const Eigen::SparseMatrix<double>& a = system.matrix();
  std::vector<int> interior, local(n(), -1);
  for (int u = 0; u < n(); ++u)
    if (port_of_unknown[u] < 0) {
      local[u] = static_cast<int>(interior.size());
      interior.push_back(u);
    }
  const int ni = static_cast<int>(interior.size());
  std::vector<std::vector<int>> adjacency(ni);
  for (int c = 0; c < a.outerSize(); ++c)
    for (Eigen::SparseMatrix<double>::InnerIterator it(a, c); it; ++it) {
      const int r = static_cast<int>(it.row());
      if (r == c || local[r] < 0 || local[c] < 0) continue;
      adjacency[local[r]].push_back(local[c]);
      adjacency[local[c]].push_back(local[r]);
    }
  // Coordinates: the first physical node (word-line nodes first) of each unknown.
  std::vector<int> row(ni, -1), col(ni, -1);
  const int rc = rows() * cols();
  for (int p = 0; p < 2 * rc; ++p) {
    const NodalSystem::NodeRef ref = system.node(p);
    if (ref.kind != NodalSystem::NodeRef::unknown || local[ref.index] < 0 || row[local[ref.index]] >= 0) continue;
    row[local[ref.index]] = (p % rc) / cols();
    col[local[ref.index]] = (p % rc) % cols();
  }
  const std::vector<int> perm = GridDissection(adjacency, row, col).order();
  // Postorder the interior's elimination tree (the restriction of the full tree to the interior)
  // so that CHOLMOD finds large supernodes without reordering, which could move interior unknowns
  // past ports.
  std::vector<int> rank(ni);
  for (int k = 0; k < ni; ++k) rank[perm[k]] = k;
  std::vector<std::vector<int>> lower(ni);
  for (int v = 0; v < ni; ++v)
    for (int u : adjacency[v])
      if (rank[u] < rank[v]) lower[rank[v]].push_back(rank[u]);
  const std::vector<int> post = postorder(elimination_tree(lower));
  std::vector<int> order(ni);
  for (int k = 0; k < ni; ++k) order[k] = interior[perm[post[k]]];
  return order;
}

Factor EffectiveSolver::Impl::analyse_ports(double& flops) {
  std::vector<int> order = interior_order();
  order.insert(order.end(), ports.begin(), ports.end());
  cholmod_sparse view = lower_triangle_view(system.matrix());
  const int saved_nmethods = common.nmethods, saved_ordering = common.method[0].ordering;
  const int saved_postorder = common.postorder, saved_supernodal = common.supernodal;
  common.nmethods = 1;
  common.method[0].ordering = CHOLMOD_GIVEN;
  common.postorder = 0;  // done above, for the interior only: the ports must stay last
  common.supernodal = CHOLMOD_SUPERNODAL;
  Factor l(cholmod_analyze_p(&view, order.data(), nullptr, 0, &common), &common);
  flops = common.fl;
  common.nmethods = saved_nmethods;
  common.method[0].ordering = saved_ordering;
  common.postorder = saved_postorder;
  common.supernodal = saved_supernodal;
  if (!l || !l->is_super) return Factor();
  // The trailing P positions of the factor must be the ports, in our order.
  const int* perm = static_cast<const int*>(l->Perm);
  const int first = n() - static_cast<int>(ports.size());
  for (size_t t = 0; t < ports.size(); ++t)
    if (perm[first + t] != ports[t]) return Factor();
  return l;
}

Factor EffectiveSolver::Impl::analyse_plain(double& cost) {
  // CHOLMOD's default analysis: postordered, so each component's columns are contiguous; it picks a
  // simplicial LDL' factor when supernodes would be tiny (e.g. independent chains).
  cholmod_sparse view = lower_triangle_view(system.matrix());
  Factor l(cholmod_analyze(&view, &common), &common);
  cost = common.fl;
  if (!l) return Factor();
  const int nn = n();
  const int* perm = static_cast<const int*>(l->Perm);
  position.assign(nn, 0);
  for (int k = 0; k < nn; ++k) position[perm[k]] = k;
  // Connected components (union-find over A's pattern), numbered in factor order.
  std::vector<int> parent(nn);
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  const Eigen::SparseMatrix<double>& a = system.matrix();
  for (int c = 0; c < a.outerSize(); ++c)
    for (Eigen::SparseMatrix<double>::InnerIterator it(a, c); it; ++it) {
      const int x = find(static_cast<int>(it.row())), y = find(c);
      if (x != y) parent[std::max(x, y)] = std::min(x, y);
    }
  std::vector<int> number(nn, -1);
  component_of.assign(nn, 0);
  components.clear();
  for (int k = 0; k < nn; ++k) {
    const int root = find(perm[k]);
    if (number[root] < 0) {
      number[root] = static_cast<int>(components.size());
      components.push_back({k, k, 0, 0});
    }
    Component& component = components[number[root]];
    component.end_column = component.end_column == k ? k + 1 : -1;  // -1: not contiguous
    component_of[perm[k]] = number[root];
  }
  // Whole supernodes per component; any surprise falls back to one range over everything.
  const int* super = static_cast<const int*>(l->super);
  const int nsuper = l->is_super ? static_cast<int>(l->nsuper) : 0;
  std::vector<int> super_of_column(l->is_super ? nn : 0);
  for (int s = 0; s < nsuper; ++s)
    for (int k = super[s]; k < super[s + 1]; ++k) super_of_column[k] = s;
  bool aligned = true;
  for (Component& component : components) {
    if (component.end_column < 0) {
      aligned = false;
      break;
    }
    if (!l->is_super) continue;
    component.first_super = super_of_column[component.first_column];
    component.end_super = super_of_column[component.end_column - 1] + 1;
    aligned = aligned && super[component.first_super] == component.first_column &&
              super[component.end_super] == component.end_column;
  }
  if (!aligned) {
    components.assign(1, Component{0, nn, 0, nsuper});
    component_of.assign(nn, 0);
  }
  terms_of_component.assign(components.size(), {});
  for (size_t t = 0; t < output_terms.size(); ++t)
    if (output_terms[t].end.kind == NodalSystem::NodeRef::unknown)
      terms_of_component[component_of[output_terms[t].end.index]].push_back(static_cast<int>(t));
  // Solve cost per direction: the nonzeros of L on the components each right-hand side touches.
  const int* col_count = static_cast<const int*>(l->ColCount);
  std::vector<double> lnz(components.size(), 0.0);
  for (size_t k = 0; k < components.size(); ++k)
    for (int j = components[k].first_column; j < components[k].end_column; ++j) lnz[k] += col_count[j];
  auto touched_lnz = [&](std::vector<int>& touched) {
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    double sum = 0;
    for (int k : touched) sum += lnz[k];
    touched.clear();
    return sum;
  };
  double by_inputs_cost = 0, by_outputs_cost = 0;
  std::vector<int> touched;
  const Eigen::SparseMatrix<double> s = system.source_coupling();
  for (int k = 0; k < s.outerSize(); ++k) {
    for (Eigen::SparseMatrix<double>::InnerIterator it(s, k); it; ++it) touched.push_back(component_of[it.row()]);
    by_inputs_cost += touched_lnz(touched);
  }
  std::vector<std::vector<int>> output_components(cols());
  for (const OutputTerm& term : output_terms)
    if (term.end.kind == NodalSystem::NodeRef::unknown) output_components[term.col].push_back(component_of[term.end.index]);
  for (auto& list : output_components) by_outputs_cost += touched_lnz(list);
  by_outputs = by_outputs_cost < by_inputs_cost;
  cost += 4 * std::min(by_inputs_cost, by_outputs_cost);
  return l;
}

bool EffectiveSolver::Impl::factorize() {
  cholmod_sparse view = lower_triangle_view(system.matrix());
  cholmod_factorize(&view, factor.get(), &common);
  if (common.status == CHOLMOD_NOT_POSDEF || factor->minor < factor->n) {
    state.status = core::SolveStatus::singular;
    state.message = "the nodal matrix is not positive definite (singular circuit)";
    return false;
  }
  if (common.status < CHOLMOD_OK) {
    state.status = core::SolveStatus::singular;
    state.message = fmt::format("CHOLMOD could not factorise the nodal matrix (status {})", common.status);
    return false;
  }
  return true;
}

Eigen::MatrixXd EffectiveSolver::Impl::solve_nodes(const Eigen::MatrixXd& b) {
  Eigen::MatrixXd rhs = b;
  cholmod_dense view = dense_view(rhs);
  cholmod_dense* x = cholmod_solve(CHOLMOD_A, factor.get(), &view, &common);
  if (!x) return Eigen::MatrixXd::Constant(b.rows(), b.cols(), std::numeric_limits<double>::quiet_NaN());
  struct Free {
    cholmod_dense*& x;
    cholmod_common* common;
    ~Free() { cholmod_free_dense(&x, common); }
  } free_x{x, &common};
  return Eigen::Map<const Eigen::MatrixXd>(static_cast<const double*>(x->x), b.rows(), b.cols());
}

void EffectiveSolver::Impl::build_ports(const Eigen::VectorXd& v_check, Eigen::MatrixXd& x_check) {
  const int r = rows(), c = cols(), p = static_cast<int>(ports.size()), first = n() - p;
  const int first_input = p - input_ports;
  // The trailing P×P block of the supernodal factor (lower triangle).
  Eigen::MatrixXd l_pp = Eigen::MatrixXd::Zero(p, p);
  const int* super = static_cast<const int*>(factor->super);
  const int* pi = static_cast<const int*>(factor->pi);
  const int* px = static_cast<const int*>(factor->px);
  const int* ls = static_cast<const int*>(factor->s);
  const double* lx = static_cast<const double*>(factor->x);
  for (size_t s = 0; s < factor->nsuper; ++s) {
    const int k1 = super[s], k2 = super[s + 1];
    if (k2 <= first) continue;
    const int nsrow = pi[s + 1] - pi[s];
    for (int k = std::max(k1, first); k < k2; ++k) {
      const int jj = k - k1;
      const double* column = lx + px[s] + static_cast<std::ptrdiff_t>(jj) * nsrow;
      for (int ii = jj; ii < nsrow; ++ii) l_pp(ls[pi[s] + ii] - first, k - first) = column[ii];
    }
  }
  // S_in (its rows are the last input_ports ports), Cx'_p' (P×C) and Cv' (C×R).
  Eigen::MatrixXd w_in = Eigen::MatrixXd::Zero(input_ports, r), u = Eigen::MatrixXd::Zero(p, c);
  m = Eigen::MatrixXd::Zero(c, r);
  const Eigen::SparseMatrix<double> s = system.source_coupling();
  for (int k = 0; k < s.outerSize(); ++k)
    for (Eigen::SparseMatrix<double>::InnerIterator it(s, k); it; ++it)
      w_in(port_of_unknown[it.row()] - first_input, k) += it.value();
  for (const OutputTerm& term : output_terms) {
    const double g = term.cell >= 0 ? g_cell(term.cell / c, term.cell % c) : term.wire_g;
    if (term.end.kind == NodalSystem::NodeRef::unknown) u(port_of_unknown[term.end.index], term.col) += g;
    else if (term.end.kind == NodalSystem::NodeRef::source) m(term.col, term.end.index) += g;
  }
  tbb::parallel_invoke(
      [&] { l_pp.bottomRightCorner(input_ports, input_ports).triangularView<Eigen::Lower>().solveInPlace(w_in); },
      [&] { l_pp.triangularView<Eigen::Lower>().solveInPlace(u); },
      [&] { x_check = solve_nodes(system.rhs(v_check)); });
  m.noalias() += u.bottomRows(input_ports).transpose() * w_in;
}

void EffectiveSolver::Impl::solve_component(const Component& k, double* y) const {
  if (!factor->is_super) {
    const int* p = static_cast<const int*>(factor->p);
    const int* nz = static_cast<const int*>(factor->nz);
    const int* li = static_cast<const int*>(factor->i);
    const double* lx = static_cast<const double*>(factor->x);
    // Simplicial: LDL' (the first entry of each column is D, L's unit diagonal is implicit) or LL'.
    const bool ll = factor->is_ll;
    for (int j = k.first_column; j < k.end_column; ++j) {  // L z = y
      if (ll) y[j] /= lx[p[j]];
      const double z = y[j];
      if (z != 0)
        for (int q = p[j] + 1; q < p[j] + nz[j]; ++q) y[li[q]] -= lx[q] * z;
    }
    if (!ll)
      for (int j = k.first_column; j < k.end_column; ++j) y[j] /= lx[p[j]];  // D w = z
    for (int j = k.end_column - 1; j >= k.first_column; --j) {  // L' y = w
      double sum = y[j];
      for (int q = p[j] + 1; q < p[j] + nz[j]; ++q) sum -= lx[q] * y[li[q]];
      y[j] = ll ? sum / lx[p[j]] : sum;
    }
    return;
  }
  const int* super = static_cast<const int*>(factor->super);
  const int* pi = static_cast<const int*>(factor->pi);
  const int* px = static_cast<const int*>(factor->px);
  const int* ls = static_cast<const int*>(factor->s);
  const double* lx = static_cast<const double*>(factor->x);
  for (int s = k.first_super; s < k.end_super; ++s) {  // L z = y
    const int first = super[s], width = super[s + 1] - first, height = pi[s + 1] - pi[s];
    const int* row = ls + pi[s];
    for (int jj = 0; jj < width; ++jj) {
      const double* column = lx + px[s] + static_cast<std::ptrdiff_t>(jj) * height;
      const double z = y[first + jj] /= column[jj];
      if (z != 0)
        for (int ii = jj + 1; ii < height; ++ii) y[row[ii]] -= column[ii] * z;
    }
  }
  for (int s = k.end_super - 1; s >= k.first_super; --s) {  // L' y = z
    const int first = super[s], width = super[s + 1] - first, height = pi[s + 1] - pi[s];
    const int* row = ls + pi[s];
    for (int jj = width - 1; jj >= 0; --jj) {
      const double* column = lx + px[s] + static_cast<std::ptrdiff_t>(jj) * height;
      double sum = y[first + jj];
      for (int ii = jj + 1; ii < height; ++ii) sum -= column[ii] * y[row[ii]];
      y[first + jj] = sum / column[jj];
    }
  }
}

void EffectiveSolver::Impl::build_columns() {
  const int r = rows(), c = cols();
  auto coefficient = [&](const OutputTerm& term) {
    return term.cell >= 0 ? g_cell(term.cell / c, term.cell % c) : term.wire_g;
  };
  m = Eigen::MatrixXd::Zero(c, r);
  for (const OutputTerm& term : output_terms)  // Cv'
    if (term.end.kind == NodalSystem::NodeRef::source) m(term.col, term.end.index) += coefficient(term);
  // Right-hand sides (S's columns, or the outputs' port form Cx'(j, :)') and, per component, the
  // other side's entries, all as (factor column, index, value).
  struct Entry {
    int column, index;
    double value;
  };
  const Eigen::SparseMatrix<double> s = system.source_coupling();
  const int count = by_outputs ? c : r;
  std::vector<std::vector<Entry>> rhs(count), s_of_component(by_outputs ? components.size() : 0);
  for (int k = 0; k < s.outerSize(); ++k)
    for (Eigen::SparseMatrix<double>::InnerIterator it(s, k); it; ++it) {
      const int u = static_cast<int>(it.row());
      if (by_outputs) s_of_component[component_of[u]].push_back({position[u], k, it.value()});
      else rhs[k].push_back({position[u], component_of[u], it.value()});
    }
  if (by_outputs)
    for (const OutputTerm& term : output_terms)
      if (term.end.kind == NodalSystem::NodeRef::unknown)
        rhs[term.col].push_back({position[term.end.index], component_of[term.end.index], coefficient(term)});
  // Each right-hand side is solved by one task into its own column (row) of M: the result does
  // not depend on how the range is split.
  tbb::enumerable_thread_specific<std::vector<double>> workspaces([&] { return std::vector<double>(n(), 0.0); });
  tbb::parallel_for(tbb::blocked_range<int>(0, count, 8), [&](const tbb::blocked_range<int>& range) {
    std::vector<double>& y = workspaces.local();
    std::vector<int> touched;
    for (int k = range.begin(); k != range.end(); ++k) {
      touched.clear();
      for (const Entry& e : rhs[k]) {
        y[e.column] += e.value;
        touched.push_back(e.index);
      }
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      for (int component : touched) solve_component(components[component], y.data());
      for (int component : touched) {
        if (by_outputs) {
          for (const Entry& e : s_of_component[component]) m(k, e.index) += e.value * y[e.column];
        } else {
          for (int t : terms_of_component[component]) {
            const OutputTerm& term = output_terms[t];
            m(term.col, k) += coefficient(term) * y[position[term.end.index]];
          }
        }
      }
      for (int component : touched)
        std::fill(y.begin() + components[component].first_column, y.begin() + components[component].end_column, 0.0);
    }
  });
}

double EffectiveSolver::Impl::check(const Eigen::VectorXd& v, const Eigen::MatrixXd* x, const Eigen::VectorXd& i_m,
                                    Eigen::MatrixXd* v_cell) {
  Eigen::MatrixXd x_v(n(), 1);
  double residual = 0;
  if (n() > 0) {
    const Eigen::MatrixXd b = system.rhs(v);
    x_v = x ? *x : solve_nodes(b);
    const double scale = b.norm();
    const double r = (system.matrix().selfadjointView<Eigen::Lower>() * x_v - b).norm();
    residual = scale > 0 ? r / scale : r;
  }
  const Eigen::VectorXd i_x = system.column_currents(x_v, v, g_cell, v_cell, 0).col(0);
  const double scale = i_x.norm(), mismatch = (i_m - i_x).norm();
  residual = std::max(residual, scale > 0 ? mismatch / scale : mismatch);
  return std::isfinite(residual) ? residual : std::numeric_limits<double>::infinity();
}

EffectiveSolver::EffectiveSolver(int rows, int cols, const core::WireOptions& wires)
    : impl_(std::make_unique<Impl>(rows, cols, wires)) {}

EffectiveSolver::~EffectiveSolver() = default;

SolveSummary EffectiveSolver::set_cells(const Eigen::MatrixXd& g_device, const CellModel& model) {
  Impl& s = *impl_;
  SolveSummary& state = s.state;
  state.status = core::SolveStatus::ok;
  state.message.clear();
  state.factorize_s = 0;
  state.residual = 0;
  state.iterations = 1;
  s.m.resize(0, 0);
  if (g_device.rows() != s.rows() || g_device.cols() != s.cols()) {
    state.status = core::SolveStatus::singular;
    state.message = fmt::format("conductance matrix is {}x{}, the array is {}x{}", g_device.rows(), g_device.cols(),
                                s.rows(), s.cols());
    return state;
  }
  for (Eigen::Index i = 0; i < g_device.rows(); ++i)
    for (Eigen::Index j = 0; j < g_device.cols(); ++j)
      if (!std::isfinite(g_device(i, j)) || g_device(i, j) < 0) {
        state.status = core::SolveStatus::non_finite;
        state.message = fmt::format("cell ({},{}) has conductance {} S; expected a finite value >= 0", i, j,
                                    g_device(i, j));
        return state;
      }
  if (!model.linear()) {
    state.status = core::SolveStatus::singular;
    state.message =
        "the effective-matrix solver needs linear cells (i_out = M v_in); use solver.method direct or iterative "
        "for a nonlinear I-V";
    return state;
  }
  if (s.n() > 0 && !s.factor) {
    state.status = core::SolveStatus::singular;
    state.message = "CHOLMOD could not analyse the nodal matrix";
    return state;
  }
  s.g_cell = small_signal_conductance(g_device, model);
  s.system.refill(s.g_cell);
  if (s.n() > 0) {
    const std::string floating = s.system.floating_node_description(s.g_cell);
    if (!floating.empty()) {
      state.status = core::SolveStatus::singular;
      state.message = "floating circuit: " + floating;
      return state;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  // The check input: fixed and positive (M is entrywise >= 0, so its currents do not cancel).
  Eigen::VectorXd v_check(s.rows());
  for (int i = 0; i < s.rows(); ++i) v_check[i] = 1.0 + 0.5 * std::sin(1.0 + i);
  Eigen::MatrixXd x_check;
  bool have_x = false;
  switch (s.mode) {
    case Impl::Mode::no_unknowns:
      s.m = s.system.column_currents(Eigen::MatrixXd(0, s.rows()), Eigen::MatrixXd::Identity(s.rows(), s.rows()),
                                     s.g_cell, nullptr, 0);
      break;
    case Impl::Mode::ports:
      if (!s.factorize()) return state;
      s.build_ports(v_check, x_check);
      have_x = true;
      break;
    case Impl::Mode::columns:
      if (!s.factorize()) return state;
      s.build_columns();
      break;
  }
  state.residual = s.check(v_check, have_x ? &x_check : nullptr, s.m * v_check, nullptr);
  state.factorize_s = seconds_since(start);
  if (!s.m.allFinite() || !std::isfinite(state.residual)) {
    state.status = core::SolveStatus::non_finite;
    state.message = "building the effective matrix produced non-finite values";
    s.m.resize(0, 0);
  }
  return state;
}

SolveSummary EffectiveSolver::solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell,
                                    int probe) {
  Impl& s = *impl_;
  SolveSummary summary = s.state;
  summary.analyse_s = summary.factorize_s = 0;  // reported by the constructor and set_cells()
  if (!summary.ok()) return summary;
  if (v_in.rows() != s.rows() || !v_in.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = v_in.rows() != s.rows() ? fmt::format("v_in has {} rows, the array {}", v_in.rows(), s.rows())
                                              : "v_in holds a non-finite voltage";
    return summary;
  }
  if (v_cell && v_in.cols() > 0 && (probe < 0 || probe >= v_in.cols())) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = fmt::format("probe column {} is outside the batch of {}", probe, v_in.cols());
    return summary;
  }
  const auto start = std::chrono::steady_clock::now();
  i_out.resize(s.cols(), v_in.cols());
  i_out.noalias() = s.m * v_in;
  if (v_cell) {
    if (v_in.cols() > 0) summary.residual = s.check(v_in.col(probe), nullptr, i_out.col(probe), v_cell);
    else v_cell->setZero(s.rows(), s.cols());
  }
  summary.solve_s = seconds_since(start);
  if (!i_out.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = "the product produced non-finite currents";
  }
  return summary;
}

std::size_t EffectiveSolver::memory_bytes() const {
  std::size_t bytes = static_cast<std::size_t>(impl_->m.size() + impl_->system.matrix().nonZeros()) * sizeof(double);
  if (const cholmod_factor* f = impl_->factor.get()) {
    const std::size_t values = f->is_super ? f->xsize : f->nzmax;
    const std::size_t indices = f->is_super ? f->ssize : f->nzmax;
    bytes += values * sizeof(double) + indices * sizeof(int);
  }
  return bytes;
}

const Eigen::MatrixXd& EffectiveSolver::matrix() const { return impl_->m; }

}  // namespace xbar::circuits
