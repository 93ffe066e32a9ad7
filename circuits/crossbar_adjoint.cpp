// The crossbar's effective matrix and its exact gradient with respect to the device conductances
// (the math is in crossbar_adjoint.hpp).
#include "circuits/crossbar_adjoint.hpp"

#include <cholmod.h>
#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "circuits/cholmod_views.hpp"
#include "circuits/nodal.hpp"
#include "core/threading.hpp"

namespace xbar::circuits {
namespace {

using NodeRef = NodalSystem::NodeRef;

// Right-hand sides per CHOLMOD solve (one oneTBB task each) and cells per block of the gradient's
// product. Fixed, so that the results do not depend on the thread count.
constexpr int kRhsChunk = 32;
constexpr int kCellBlock = 512;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A CHOLMOD workspace with printing and the error handler off (failures become statuses).
class Workspace {
 public:
  Workspace() {
    cholmod_start(&common_);
    common_.print = 0;
    common_.error_handler = nullptr;
  }
  ~Workspace() { cholmod_finish(&common_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  cholmod_common* get() { return &common_; }

 private:
  cholmod_common common_;
};

// One task's reusable buffers for the chunked solves: its CHOLMOD workspace (a CHOLMOD common is
// not shared between threads; the factor is, read-only), the solution and cholmod_solve2's
// workspace, and the right-hand sides. Reused across chunks and calls (no page faults per chunk).
struct SolveScratch {
  SolveScratch() = default;
  SolveScratch(const SolveScratch&) = delete;
  SolveScratch& operator=(const SolveScratch&) = delete;
  ~SolveScratch() {
    for (cholmod_dense** dense : {&x, &y, &e})
      if (*dense) cholmod_free_dense(dense, workspace.get());
  }
  Workspace workspace;
  cholmod_dense *x = nullptr, *y = nullptr, *e = nullptr;
  Eigen::MatrixXd b, residual;
};

void check_wire(const char* name, double r) {
  if (std::isnan(r) || r < 0)
    throw std::invalid_argument(fmt::format("CrossbarJacobian: wires.{} is {} ohm; expected a value >= 0 "
                                            "(0 a short, +inf an open)",
                                            name, r));
}

}  // namespace

struct CrossbarJacobian::Impl {
  Impl(int rows, int cols, const core::WireOptions& wires, double r_access_on);
  ~Impl() {
    scratches.clear();
    if (factor) cholmod_free_factor(&factor, workspace.get());
  }

  // Where a physical node's potential comes from in a forward or adjoint state: an unknown, or a
  // fixed 1 V when it is shorted to the driven row (source_row = input) or to the virtual ground of
  // the excited column (ground_col = output), else 0 V. -1 where it does not apply.
  struct NodePotential {
    int unknown = -1;
    int source_row = -1;
    int ground_col = -1;
  };
  // An element joining terminal t_col to the node `end` (never itself on the terminal, else the
  // element would be shorted): a wire of conductance wire_g, or (cell >= 0, i*C + j) that cell.
  struct TerminalTerm {
    int col;
    NodePotential end;
    double wire_g;
    int cell;
  };

  NodalSystem system;
  double r_access_on;
  Workspace workspace;                 // the analysis and the factorisation
  cholmod_factor* factor = nullptr;    // null when there are no unknowns or the analysis failed
  tbb::enumerable_thread_specific<std::unique_ptr<SolveScratch>> scratches;
  std::vector<NodePotential> node_potential;  // per physical node: w(i,j) = i*C + j, b(i,j) = R*C + i*C + j
  std::vector<TerminalTerm> terminal_terms;
  std::vector<std::vector<int>> terms_of_col;  // indices into terminal_terms per column

  // State of the last set_conductances().
  SolveSummary state;
  bool valid = false;
  int used_rows = 0, used_cols = 0;
  Eigen::MatrixXd g_cell;              // R×C
  Eigen::VectorXd chain;               // dg_cell/dg per cell, flattened i*C + j
  Eigen::MatrixXd m;                   // used_cols × used_rows
  Eigen::MatrixXd u;                   // cells × used_rows
  Eigen::MatrixXd lambda;              // cells × used_cols

  int rows() const { return system.rows(); }
  int cols() const { return system.cols(); }
  int n() const { return system.unknowns(); }
  double term_conductance(const TerminalTerm& term) const {
    return term.cell >= 0 ? g_cell(term.cell / cols(), term.cell % cols()) : term.wire_g;
  }
  // Solves right-hand sides first..first+width-1 (forward states, then adjoint states) and writes
  // their columns of U, Λ and M. Returns the largest relative nodal residual, NaN on failure.
  double solve_chunk(int first, int width, const Eigen::SparseMatrix<double>& source_coupling);
};

CrossbarJacobian::Impl::Impl(int rows, int cols, const core::WireOptions& wires, double r_access)
    : system(rows, cols, wires), r_access_on(r_access) {
  state.method = "adjoint";
  state.status = core::SolveStatus::singular;
  state.message = "no conductances set";
  const auto start = std::chrono::steady_clock::now();
  // The elements touching each column's terminal. Only bit-line nodes are ever merged with the
  // ground (word-line nodes merge with word-line nodes and drivers), so a grounded node's column
  // is its bit line's.
  const int r = rows, c = cols, rc = rows * cols;
  node_potential.resize(2 * rc);
  for (int p = 0; p < 2 * rc; ++p) {
    const NodeRef ref = system.node(p);
    NodePotential& potential = node_potential[p];
    if (ref.kind == NodeRef::unknown) potential.unknown = ref.index;
    if (ref.kind == NodeRef::source) potential.source_row = ref.index;
    if (ref.kind == NodeRef::ground) potential.ground_col = (p % rc) % c;
  }
  auto grounded = [&](int physical) { return system.node(physical).kind == NodeRef::ground; };
  for (int j = 0; j < c; ++j) {
    const int bottom = system.bl_node(r - 1, j);
    if (wires.r_sense > 0 && !std::isinf(wires.r_sense))
      terminal_terms.push_back({j, node_potential[bottom], 1.0 / wires.r_sense, -1});
    if (wires.r_bl_segment > 0 && !std::isinf(wires.r_bl_segment))
      for (int i = 0; i + 1 < r; ++i) {
        const int upper = system.bl_node(i, j), lower = system.bl_node(i + 1, j);
        if (grounded(upper) != grounded(lower))
          terminal_terms.push_back({j, node_potential[grounded(upper) ? lower : upper], 1.0 / wires.r_bl_segment, -1});
      }
    for (int i = 0; i < r; ++i)
      if (grounded(system.bl_node(i, j)))
        terminal_terms.push_back({j, node_potential[system.wl_node(i, j)], 0.0, i * c + j});
  }
  terms_of_col.assign(c, {});
  for (size_t t = 0; t < terminal_terms.size(); ++t) terms_of_col[terminal_terms[t].col].push_back(static_cast<int>(t));
  if (n() > 0) {
    // A nested-dissection ordering (METIS): at 256×64 with 10 ohm wires it has 25% fewer nonzeros
    // in L than CHOLMOD's default (AMD) choice (5.5e5 vs 7.4e5) and a third of the factorisation
    // flops, so the solves, which dominate, run ~25% faster; it costs ~0.1 s once per topology.
    // CHOLMOD's default analysis is the fall-back (e.g. a CHOLMOD built without METIS).
    cholmod_sparse view = lower_triangle_view(system.matrix());
    cholmod_common* common = workspace.get();
    const int saved_nmethods = common->nmethods, saved_ordering = common->method[0].ordering;
    common->nmethods = 1;
    common->method[0].ordering = CHOLMOD_METIS;
    factor = cholmod_analyze(&view, common);
    common->nmethods = saved_nmethods;
    common->method[0].ordering = saved_ordering;
    if (!factor) factor = cholmod_analyze(&view, common);
    if (!factor)
      state.message = fmt::format("CHOLMOD could not analyse the nodal matrix (status {})", workspace.get()->status);
  }
  state.analyse_s = seconds_since(start);
}

double CrossbarJacobian::Impl::solve_chunk(int first, int width, const Eigen::SparseMatrix<double>& source_coupling) {
  const int rc = rows() * cols();
  auto& local = scratches.local();
  if (!local) local = std::make_unique<SolveScratch>();
  SolveScratch& scratch = *local;
  Eigen::MatrixXd& b = scratch.b;
  b.setZero(n(), width);
  for (int t = 0; t < width; ++t) {
    const int k = first + t;
    if (k < used_rows) {
      for (Eigen::SparseMatrix<double>::InnerIterator it(source_coupling, k); it; ++it) b(it.row(), t) += it.value();
    } else {
      for (int term : terms_of_col[k - used_rows]) {
        const TerminalTerm& e = terminal_terms[term];
        if (e.end.unknown >= 0) b(e.end.unknown, t) += term_conductance(e);
      }
    }
  }
  double residual = 0;
  const double* solution = nullptr;
  if (n() > 0) {
    cholmod_dense rhs = dense_view(b);
    if (!cholmod_solve2(CHOLMOD_A, factor, &rhs, nullptr, &scratch.x, nullptr, &scratch.y, &scratch.e,
                        scratch.workspace.get()))
      return std::numeric_limits<double>::quiet_NaN();
    solution = static_cast<const double*>(scratch.x->x);
    const Eigen::Map<const Eigen::MatrixXd> x(solution, n(), width);
    scratch.residual.noalias() = system.matrix().selfadjointView<Eigen::Lower>() * x;
    scratch.residual -= b;
    for (int t = 0; t < width; ++t) {
      const double scale = b.col(t).norm(), norm = scratch.residual.col(t).norm();
      residual = std::max(residual, scale > 0 ? norm / scale : norm);
    }
  }
  const Eigen::Map<const Eigen::MatrixXd> x(solution, n(), width);
  for (int t = 0; t < width; ++t) {
    const int k = first + t;
    const bool forward = k < used_rows;
    // Forward state: the driven row (input) at 1 V; adjoint state: the excited column's virtual
    // ground (output) at 1 V. -2 never matches a NodePotential field.
    const int input = forward ? k : -2, output = forward ? -2 : k - used_rows;
    const double* x_col = x.col(t).data();
    auto potential = [&](const NodePotential& node) {
      if (node.unknown >= 0) return x_col[node.unknown];
      return node.source_row == input || node.ground_col == output ? 1.0 : 0.0;
    };
    double* delta = forward ? u.col(input).data() : lambda.col(output).data();
    const NodePotential* wl = node_potential.data();
    const NodePotential* bl = node_potential.data() + rc;
    for (int cell = 0; cell < rc; ++cell) delta[cell] = potential(wl[cell]) - potential(bl[cell]);
    if (forward)
      for (int j = 0; j < used_cols; ++j) {
        double current = 0;
        for (int term : terms_of_col[j]) current += term_conductance(terminal_terms[term]) * potential(terminal_terms[term].end);
        m(j, input) = current;
      }
  }
  return residual;
}

CrossbarJacobian::CrossbarJacobian(int rows, int cols, const core::WireOptions& wires, double r_access_on) {
  if (rows < 1 || cols < 1)
    throw std::invalid_argument(
        fmt::format("CrossbarJacobian: the array is {}x{}; expected at least 1 row and 1 column", rows, cols));
  check_wire("r_wl_segment", wires.r_wl_segment);
  check_wire("r_bl_segment", wires.r_bl_segment);
  check_wire("r_source", wires.r_source);
  check_wire("r_sense", wires.r_sense);
  if (!std::isfinite(r_access_on) || r_access_on < 0)
    throw std::invalid_argument(
        fmt::format("CrossbarJacobian: r_access_on is {} ohm; expected a finite value >= 0", r_access_on));
  core::pin_libraries_to_one_thread();
  impl_ = std::make_unique<Impl>(rows, cols, wires, r_access_on);
}

CrossbarJacobian::~CrossbarJacobian() = default;

int CrossbarJacobian::rows() const { return impl_->rows(); }
int CrossbarJacobian::cols() const { return impl_->cols(); }
int CrossbarJacobian::used_rows() const { return impl_->valid ? impl_->used_rows : 0; }
int CrossbarJacobian::used_cols() const { return impl_->valid ? impl_->used_cols : 0; }

SolveSummary CrossbarJacobian::set_conductances(const Eigen::MatrixXd& g_device, int used_rows, int used_cols) {
  Impl& s = *impl_;
  const int r = s.rows(), c = s.cols(), rc = r * c;
  if (g_device.rows() != r || g_device.cols() != c)
    throw std::invalid_argument(fmt::format("CrossbarJacobian::set_conductances: g_device is {}x{}; expected {}x{} "
                                            "(rows x cols of the array)",
                                            g_device.rows(), g_device.cols(), r, c));
  if (used_rows < 0 || used_rows > r || used_cols < 0 || used_cols > c)
    throw std::invalid_argument(fmt::format("CrossbarJacobian::set_conductances: used_rows = {}, used_cols = {}; "
                                            "expected 0..{} and 0..{}",
                                            used_rows, used_cols, r, c));
  SolveSummary& state = s.state;
  const double analyse_s = state.analyse_s;
  state = SolveSummary{};
  state.method = "adjoint";
  state.analyse_s = analyse_s;
  state.iterations = 1;
  s.valid = false;
  s.m.resize(0, 0);  // U and Λ keep their storage for the next success (same shapes: no reallocation)
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < c; ++j)
      if (!std::isfinite(g_device(i, j)) || g_device(i, j) < 0) {
        state.status = core::SolveStatus::non_finite;
        state.message =
            fmt::format("cell ({},{}) has conductance {} S; expected a finite value >= 0", i, j, g_device(i, j));
        return state;
      }
  if (s.n() > 0 && !s.factor) {
    state.status = core::SolveStatus::singular;
    state.message = "CHOLMOD could not analyse the nodal matrix";
    return state;
  }
  s.g_cell = series_conductance(g_device, s.r_access_on);
  s.chain.resize(rc);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < c; ++j) {
      const double stretch = 1.0 + g_device(i, j) * s.r_access_on;
      s.chain[i * c + j] = 1.0 / (stretch * stretch);
    }
  s.system.refill(s.g_cell);
  if (s.n() > 0) {
    const std::string floating = s.system.floating_node_description(s.g_cell);
    if (!floating.empty()) {
      state.status = core::SolveStatus::singular;
      state.message = "floating circuit: " + floating;
      return state;
    }
    const auto start = std::chrono::steady_clock::now();
    cholmod_sparse view = lower_triangle_view(s.system.matrix());
    cholmod_common* common = s.workspace.get();
    cholmod_factorize(&view, s.factor, common);
    state.factorize_s = seconds_since(start);
    if (common->status == CHOLMOD_NOT_POSDEF || s.factor->minor < s.factor->n) {
      state.status = core::SolveStatus::singular;
      state.message = "the nodal matrix is not positive definite (singular circuit)";
      return state;
    }
    if (common->status < CHOLMOD_OK) {
      state.status = core::SolveStatus::singular;
      state.message = fmt::format("CHOLMOD could not factorise the nodal matrix (status {})", common->status);
      return state;
    }
  }

  const auto start = std::chrono::steady_clock::now();
  s.used_rows = used_rows;
  s.used_cols = used_cols;
  s.m.resize(used_cols, used_rows);
  s.u.resize(rc, used_rows);
  s.lambda.resize(rc, used_cols);
  const Eigen::SparseMatrix<double> source_coupling = s.system.source_coupling();
  const int total = used_rows + used_cols, chunks = (total + kRhsChunk - 1) / kRhsChunk;
  std::vector<double> residuals(chunks, 0.0);
  tbb::parallel_for(tbb::blocked_range<int>(0, chunks, 1), [&](const tbb::blocked_range<int>& range) {
    for (int k = range.begin(); k != range.end(); ++k) {
      const int first = k * kRhsChunk;
      residuals[k] = s.solve_chunk(first, std::min(kRhsChunk, total - first), source_coupling);
    }
  });
  state.solve_s = seconds_since(start);
  for (double residual : residuals)
    state.residual = std::isnan(residual) || std::isnan(state.residual) ? std::numeric_limits<double>::quiet_NaN()
                                                                        : std::max(state.residual, residual);
  if (std::isnan(state.residual)) {
    state.status = core::SolveStatus::singular;
    state.message = "CHOLMOD could not solve with the nodal factor";
  } else if (!s.m.allFinite() || !s.u.allFinite() || !s.lambda.allFinite() || !std::isfinite(state.residual)) {
    state.status = core::SolveStatus::non_finite;
    state.message = "the solves produced non-finite node voltages";
  }
  if (!state.ok()) {
    s.m.resize(0, 0);
    s.u.resize(0, 0);
    s.lambda.resize(0, 0);
    return state;
  }
  s.valid = true;
  return state;
}

const Eigen::MatrixXd& CrossbarJacobian::matrix() const { return impl_->m; }

Eigen::MatrixXd CrossbarJacobian::conductance_gradient(const Eigen::MatrixXd& dL_dM) const {
  const Impl& s = *impl_;
  if (!s.valid)
    throw std::logic_error("CrossbarJacobian::conductance_gradient: no valid state; call set_conductances() and "
                           "check that it succeeded first");
  if (dL_dM.rows() != s.used_cols || dL_dM.cols() != s.used_rows)
    throw std::invalid_argument(fmt::format("CrossbarJacobian::conductance_gradient: dL_dM is {}x{}; expected {}x{} "
                                            "(used_cols x used_rows, the shape of matrix())",
                                            dL_dM.rows(), dL_dM.cols(), s.used_cols, s.used_rows));
  const int r = s.rows(), c = s.cols(), rc = r * c;
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> gradient(r, c);  // flat index i*C + j
  double* flat = gradient.data();
  const int blocks = (rc + kCellBlock - 1) / kCellBlock;
  tbb::parallel_for(tbb::blocked_range<int>(0, blocks, 1), [&](const tbb::blocked_range<int>& range) {
    Eigen::MatrixXd weighted;
    for (int block = range.begin(); block != range.end(); ++block) {
      const int first = block * kCellBlock, size = std::min(kCellBlock, rc - first);
      weighted.noalias() = s.lambda.middleRows(first, size) * dL_dM;  // (Λ S) for these cells
      for (int k = 0; k < size; ++k) flat[first + k] = 0.0;
      for (int t = 0; t < s.used_rows; ++t) {
        const double* u_col = s.u.col(t).data() + first;
        const double* w_col = weighted.col(t).data();
        for (int k = 0; k < size; ++k) flat[first + k] -= u_col[k] * w_col[k];
      }
      for (int k = 0; k < size; ++k) flat[first + k] *= s.chain[first + k];
    }
  });
  return gradient;
}

std::size_t CrossbarJacobian::memory_bytes() const {
  const Impl& s = *impl_;
  std::size_t bytes =
      static_cast<std::size_t>(s.u.size() + s.lambda.size() + s.m.size() + s.chain.size() + s.g_cell.size()) *
      sizeof(double);
  bytes += static_cast<std::size_t>(s.system.matrix().nonZeros()) * (sizeof(double) + sizeof(int));
  if (const cholmod_factor* f = s.factor) {
    const std::size_t values = f->is_super ? f->xsize : f->nzmax;
    const std::size_t indices = f->is_super ? f->ssize : f->nzmax;
    bytes += values * sizeof(double) + indices * sizeof(int);
  }
  return bytes;
}

}  // namespace xbar::circuits
