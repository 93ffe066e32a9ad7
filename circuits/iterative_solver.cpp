// Batched iterative solver of the crossbar's nodal equations (solver.method: iterative). The
// formulation and every design decision: the block comment "How it works" below.
#include "circuits/iterative_solver.hpp"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include <sys/mman.h>

// Vectors of L doubles are passed between inline functions; their ABI is irrelevant here.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace xbar::circuits {
namespace {

// ---------------------------------------------------------------------------------------------
// How it works
//
// Unknowns. Every cell (i,j) has a word-line node w(i,j) and a bit-line node b(i,j), each with a
// slot in the vectors below (layout: "Memory"). A zero resistance is handled exactly, as in
// NodalSystem: r_source = 0 fixes w(i,0) at the row voltage and r_sense = 0 fixes b(R-1,j) at 0 V
// (the slot keeps an identity equation, its coupling moves to the right-hand side), and
// r_wl_segment = 0 or r_bl_segment = 0 merges each such line into one node (all its slots hold
// the node's value; its "line solve" is a sum and a broadcast, below). Infinite resistances are
// open wires (conductance 0); the floating-node check of NodalSystem runs only when a wire is open,
// because otherwise every node has a wire path to a source or the virtual ground.
//
// Block form. With D the cell conductances (access device included; for Newton steps dI/dV, per
// vector), K_W the word lines' matrix (per line tridiagonal: segments, the source conductance at
// position 0, D on the diagonal) and K_B the bit lines' (segments, the sense conductance at
// position R-1, D):
//        [ K_W  -D ] [w]   [f_w]
//        [ -D  K_B ] [b] = [f_b]
// The word lines are eliminated exactly, w = K_W^{-1}(f_w + D b), and the Schur complement
// S = K_B - D K_W^{-1} D (symmetric positive definite, as the nodal matrix is) is solved for b by
// conjugate gradients preconditioned with K_B^{-1}. Every iteration is one exact tridiagonal
// (Thomas) solve of every word line and one of every bit line; the factors (1/pivot and the
// back-substitution multipliers) depend on the conductances only and are computed once per
// set_cells() (per Newton step for Jacobians). A merged line's K^{-1} is P (Pᵀ K P)^{-1} Pᵀ with P
// the line's all-ones column: for bit lines this is CG restricted to the merged subspace, i.e.
// exactly CG on the merged system. The preconditioned operator I - K_B^{-1} D K_W^{-1} D differs
// from I by the IR-drop coupling (a line's wire resistance times its cells' conductance), so a
// few iterations suffice (256×256, 1 ohm, 1-25 uS: 4 from zero, 2 after a 1 % change, tol 1e-10).
//
// Residual and stopping. The word-line equations hold exactly by construction (w is the line solve
// of the current b), so the nodal residual ||A x - b|| (NodalSystem's unknowns) equals the norm of
// the Schur residual r = f_b + D w - K_B b over the bit-line unknowns (a merged line's entry is the
// sum over its slots). r is computed from the current iterate in every iteration, not updated
// recursively; a vector stops when ||r|| <= tol ||b||, ||b|| = the norm of NodalSystem::rhs(v_in),
// and the largest ||r|| / ||b|| of the batch is the reported residual. w itself is carried by the
// recursion w += alpha K_W^{-1} D p; after a round of more than kVerifyAfter iterations it is
// recomputed from b and the residual checked again (a new round of CG if it no longer passes).
// Not converged within max_iter (card solver.max_iter, counted over all rounds) is the status
// not_converged with the residual reached; clearly negative curvature is the status singular.
//
// One iteration is two passes over the vectors:
//   word-line pass: p = z + beta p;  w_p = K_W^{-1}(D p);  gamma = (D p)ᵀ w_p
//   bit-line pass:  b += alpha p;  w += alpha w_p;  r = f_b + D w - K_B b;  z = K_B^{-1} r;
//                   rho = rᵀ z;  ||r||²;  Σ_i r_i per line (for the column current)
// with alpha = rho / pᵀ S p and pᵀ S p = pᵀ K_B p - gamma. pᵀ K_B p needs no pass of its own: for
// p = z + beta p_old it is rho + beta² p_oldᵀ K_B p_old (K_B z = r and r ⊥ p_old in CG), a scalar
// recursion started at rho when p = z. rho is accumulated in the forward Thomas sweep as Σ ỹ_i y_i
// (r·K^{-1}r in LDLᵀ form: ỹ the forward-eliminated residual, y = ỹ / pivot). A round starts with a
// word-line pass w = K_W^{-1}(f_w + D b) and a bit-line pass that leaves z in p (the first
// direction). The column current Σ_i D (w - b) is taken by Kirchhoff from the same pass:
// g_sense b(R-1) + Σ_i r_i (what the cells inject beyond what leaves through r_sense), or, with
// r_sense = 0, the currents into the grounded node (its cell and the segment above it).
//
// Memory. The batch is cut into chunks of up to kChunk = 8 vectors; a chunk's vectors are stored
// node by node with the vector index innermost (8 contiguous doubles per node), so each step of a
// Thomas recurrence is SIMD over the chunk (explicit SSE2 two-lane vectors: the default x86-64
// target, no FMA, so the same bits on every x86-64 machine). Nodes are tiled in blocks of kTile = 8
// rows: slot(i,j) = (i / 8) · block_stride + 8 j + i % 8. A word line is a stride-8 walk within its
// row block; a bit line reads 8 consecutive slots per row block, and kBitLineBlock = 8 adjacent
// bit lines share one contiguous tile per row block (4 KB per vector), which the row-major layout
// (a 16 KB stride at 256 columns, the same cache sets for every row) made 3× slower. block_stride
// is padded so that consecutive row blocks do not map to the same cache sets. A chunk runs all its
// CG iterations before the next chunk starts; each vector stops independently (converged lanes
// keep alpha = beta = 0).
//
// Parallelism and reproducibility. Chunks run in parallel (oneTBB); a batch of one chunk runs the
// lines of each pass in parallel instead. Per-line partial sums are stored per line and added in
// line order; every vector's arithmetic is independent of the other vectors of its chunk; the
// chunking depends on the batch size only. The result is therefore bitwise the same for any thread
// count (tested with 1 and 2 threads). Nothing spins: TBB's scheduler is the only thread owner.
//
// Warm start. The last solution b of every chunk is kept (for the same batch size and cell kind)
// and is the next solve's starting point unless warm_start is off or reset_warm_start() was called.
// With unchanged conductances that start already passes (0 iterations).
//
// Nonlinear cells: the damped Newton of DirectSolver::newton, with one state per vector, vectorised
// over a chunk: iteration 1 is the small-signal linear solve (warm-started); each further step
// solves J δ = -F by the CG above with per-vector conductances dI/dV (J's line factors per vector),
// cut to 0.2 V per node, then halved until ||F|| decreases (Armijo, as the direct mode);
// converged at ||F|| <= tol · NodalSystem::residual_scale, evaluated here in the same layout. The
// CG of a step stops at ||J δ + F|| <= max(0.1 tol·scale, min(1e-4 ||F||, ||F||²/scale))
// (inexact Newton: tight enough that the last step reaches tol). The Newton budget is
// the card's solver.newton_max_iter. The reported iterations are Newton iterations (max over the batch), as for the direct
// mode, and the residual is ||F|| / scale.
// ---------------------------------------------------------------------------------------------

constexpr int kChunk = 8;             // vectors per chunk (lanes of the kernels)
constexpr int kTile = 8;              // rows per tile of the node layout
constexpr int kBitLineBlock = 8;      // adjacent bit lines per task (one tile column: contiguous memory)
constexpr int kPrefetchNodes = 12;    // word-line passes: software prefetch distance along the line
constexpr double kMaxNewtonStep = 0.2;  // V, as DirectSolver
constexpr int kVerifyAfter = 20;      // recompute w from b after a CG round longer than this

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A 64-byte aligned array of doubles that keeps its storage when shrunk.
class Buffer {
 public:
  // New storage (when growing) starts as zeros.
  void resize(std::size_t n) {
    if (n > capacity_) {
      // Large buffers on 2 MB boundaries, with transparent huge pages where the system offers
      // them on request: the bit-line passes touch many pages per step.
      const std::size_t align = n * sizeof(double) >= (std::size_t{1} << 21) ? std::size_t{1} << 21 : 64;
      const std::size_t bytes = (n * sizeof(double) + align - 1) / align * align;
      data_.reset(static_cast<double*>(std::aligned_alloc(align, bytes)));
      if (!data_) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
      if (align > 64) madvise(data_.get(), bytes, MADV_HUGEPAGE);
#endif
      std::fill_n(data_.get(), n, 0.0);
      capacity_ = n;
    }
    size_ = n;
  }
  void assign(std::size_t n, double value) {
    resize(n);
    std::fill_n(data(), n, value);
  }
  double* data() { return data_.get(); }
  const double* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return capacity_ * sizeof(double); }

 private:
  struct Free {
    void operator()(double* p) const { std::free(p); }
  };
  std::unique_ptr<double, Free> data_;
  std::size_t size_ = 0, capacity_ = 0;
};

// Conductance of a wire: 0 for an open wire (infinite resistance). Zero resistances are merges
// or fixed nodes and never reach this.
double wire_conductance(double r) { return std::isinf(r) || !(r > 0) ? 0.0 : 1.0 / r; }

// The canonical circuit in line form, and the node layout: tiles of kTile rows, node (i, j) at
// slot (i / kTile) * block_stride + j * kTile + i % kTile (a vector's L lanes then follow each
// other). A word-line pass streams through one row block; a bit-line pass over kBitLineBlock
// columns reads one contiguous 4 KB piece (L = 8) per row block. block_stride is padded so that the
// row blocks of one column do not all map to the same cache sets (an odd number of 4 KB pages
// for L = 8).
struct Topology {
  int rows = 0, cols = 0;
  int row_blocks = 0;
  std::size_t block_stride = 0, slots = 0;
  bool wl_merged = false, bl_merged = false;  // zero segment resistance: one node per line
  bool w_first_fixed = false;                 // r_source = 0: w(i,0) is the source
  bool b_last_fixed = false;                  // r_sense = 0: b(R-1,j) is the virtual ground
  bool any_open = false;                      // an infinite resistance (a node may float)
  double g_source = 0, g_sense = 0, g_wl = 0, g_bl = 0;
  double src0 = 0, src1 = 0;        // word-line right-hand side per volt at positions 0 and 1
  double rhs_w_per_volt = 0;        // the nodal right-hand side a row voltage drives through a wire
  std::vector<double> e_w, e_b;     // off-diagonal between positions p-1 and p (0 at both ends)

  Topology(int rows_, int cols_, const core::WireOptions& wires) : rows(rows_), cols(cols_) {
    row_blocks = (rows + kTile - 1) / kTile;
    block_stride = static_cast<std::size_t>(cols) * kTile;
    if (block_stride >= 256) {
      block_stride = (block_stride + 63) / 64 * 64;
      if ((block_stride / 64) % 2 == 0) block_stride += 64;
    }
    slots = static_cast<std::size_t>(row_blocks) * block_stride;
    wl_merged = wires.r_wl_segment == 0;
    bl_merged = wires.r_bl_segment == 0;
    w_first_fixed = wires.r_source == 0;
    b_last_fixed = wires.r_sense == 0;
    any_open = std::isinf(wires.r_wl_segment) || std::isinf(wires.r_bl_segment) || std::isinf(wires.r_source) ||
               std::isinf(wires.r_sense);
    g_source = wire_conductance(wires.r_source);
    g_sense = wire_conductance(wires.r_sense);
    g_wl = wire_conductance(wires.r_wl_segment);
    g_bl = wire_conductance(wires.r_bl_segment);
    src0 = w_first_fixed ? 1.0 : g_source;
    src1 = w_first_fixed && !wl_merged && cols > 1 ? g_wl : 0.0;
    rhs_w_per_volt = w_first_fixed ? src1 : g_source;
    e_w.assign(cols + 1, 0.0);
    for (int j = 1; j < cols; ++j) e_w[j] = wl_merged || w_fixed(j - 1) || w_fixed(j) ? 0.0 : -g_wl;
    e_b.assign(rows + 1, 0.0);
    for (int i = 1; i < rows; ++i) e_b[i] = bl_merged || b_fixed(i - 1) || b_fixed(i) ? 0.0 : -g_bl;
  }
  int padded_rows() const { return row_blocks * kTile; }
  std::size_t row_offset(int i) const { return (i / kTile) * block_stride + i % kTile; }
  std::size_t node(int i, int j) const { return row_offset(i) + static_cast<std::size_t>(j) * kTile; }
  bool w_fixed(int j) const { return w_first_fixed && (j == 0 || wl_merged); }
  bool b_fixed(int i) const { return b_last_fixed && (i == rows - 1 || bl_merged); }
  // Diagonal of an unknown node's equation from the wires alone (the cell adds D).
  double w_wire_diag(int j) const {
    double a = j == 0 ? g_source : 0.0;
    if (!wl_merged) a += (j > 0 ? g_wl : 0.0) + (j + 1 < cols ? g_wl : 0.0);
    return a;
  }
  double b_wire_diag(int i) const {
    double a = i == rows - 1 ? g_sense : 0.0;
    if (!bl_merged) a += (i > 0 ? g_bl : 0.0) + (i + 1 < rows ? g_bl : 0.0);
    return a;
  }
};

// Line-solve coefficients for one set of cell conductances: one value per node slot (`lanes` = 1,
// shared by the batch) or one per slot and vector (`lanes` = the chunk's, Newton Jacobians).
// (The last row block's padding rows get identity lines; no pass visits them.)
struct Coefficients {
  int lanes = 1;
  Buffer cw, cb;              // D in the word-line (bit-line) equation; 0 where that end is fixed
  Buffer w_inv_m, w_cp;       // word lines, Thomas: 1/pivot, e_{p+1}/pivot
  Buffer w_inv_sum;           // merged word lines: 1/Σ diagonal, per line
  Buffer b_diag, b_inv_m, b_cp, b_inv_sum;
  std::size_t bytes() const {
    return cw.bytes() + cb.bytes() + w_inv_m.bytes() + w_cp.bytes() + w_inv_sum.bytes() + b_diag.bytes() +
           b_inv_m.bytes() + b_cp.bytes() + b_inv_sum.bytes();
  }
};

// Fills `cf` for cell conductances d (node slots, `lanes` values per slot). ok[k] tells whether
// every pivot of lane k is positive and finite (false: a floating piece or a non-SPD Jacobian).
// Lines are independent; with `parallel` they are factorised in parallel (same result).
void factorize(const Topology& t, const double* d, int lanes, Coefficients& cf, bool* ok, bool parallel) {
  const int R = t.rows, C = t.cols, P = t.padded_rows();
  const std::size_t size = t.slots * lanes;
  cf.lanes = lanes;
  for (Buffer* b : {&cf.cw, &cf.cb, &cf.w_inv_m, &cf.w_cp, &cf.b_diag, &cf.b_inv_m, &cf.b_cp}) b->resize(size);
  cf.w_inv_sum.resize(static_cast<std::size_t>(P) * lanes);
  cf.b_inv_sum.resize(static_cast<std::size_t>(C) * lanes);
  // failed[line * lanes + k]: a pivot of that line and lane is not positive (word lines, then bit lines).
  std::vector<unsigned char> failed(static_cast<std::size_t>(P + C) * lanes, 0);
  auto word_lines = [&](int i0, int i1) {
    for (int i = i0; i < i1; ++i)
      for (int k = 0; k < lanes; ++k) {
        auto check = [&](double m) {
          if (!(m > 0) || !std::isfinite(m)) failed[static_cast<std::size_t>(i) * lanes + k] = 1;
        };
        double sum = 0, inv_prev = 0;
        for (int j = 0; j < C; ++j) {
          const std::size_t q = t.node(i, j) * lanes + k;
          if (i >= R) {  // padding rows: identity lines
            cf.cw.data()[q] = cf.cb.data()[q] = cf.w_cp.data()[q] = cf.b_cp.data()[q] = 0;
            cf.w_inv_m.data()[q] = cf.b_inv_m.data()[q] = cf.b_diag.data()[q] = 1;
            continue;
          }
          const bool fixed = t.w_fixed(j);
          cf.cw.data()[q] = fixed ? 0.0 : d[q];
          const double a = fixed ? 1.0 : t.w_wire_diag(j) + d[q];
          sum += a;
          if (!t.wl_merged) {
            const double m = a - t.e_w[j] * t.e_w[j] * inv_prev;
            check(m);
            inv_prev = 1.0 / m;
            cf.w_inv_m.data()[q] = inv_prev;
            cf.w_cp.data()[q] = t.e_w[j + 1] * inv_prev;
          }
        }
        if (t.wl_merged) {
          const double s = t.w_first_fixed || i >= R ? 1.0 : sum;
          check(s);
          cf.w_inv_sum.data()[static_cast<std::size_t>(i) * lanes + k] = 1.0 / s;
        }
      }
  };
  auto bit_lines = [&](int j0, int j1) {
    for (int j = j0; j < j1; ++j)
      for (int k = 0; k < lanes; ++k) {
        auto check = [&](double m) {
          if (!(m > 0) || !std::isfinite(m)) failed[static_cast<std::size_t>(P + j) * lanes + k] = 1;
        };
        double sum = 0, inv_prev = 0;
        for (int i = 0; i < R; ++i) {
          const std::size_t q = t.node(i, j) * lanes + k;
          const bool fixed = t.b_fixed(i);
          cf.cb.data()[q] = fixed ? 0.0 : d[q];
          const double a = fixed ? 1.0 : t.b_wire_diag(i) + d[q];
          cf.b_diag.data()[q] = a;
          sum += a;
          if (!t.bl_merged) {
            const double m = a - t.e_b[i] * t.e_b[i] * inv_prev;
            check(m);
            inv_prev = 1.0 / m;
            cf.b_inv_m.data()[q] = inv_prev;
            cf.b_cp.data()[q] = t.e_b[i + 1] * inv_prev;
          }
        }
        if (t.bl_merged) {
          const double s = t.b_last_fixed ? 1.0 : sum;
          check(s);
          cf.b_inv_sum.data()[static_cast<std::size_t>(j) * lanes + k] = 1.0 / s;
        }
      }
  };
  if (parallel && static_cast<std::size_t>(R) * C >= 4096) {
    tbb::parallel_for(tbb::blocked_range<int>(0, P, 16), [&](const tbb::blocked_range<int>& r) { word_lines(r.begin(), r.end()); });
    tbb::parallel_for(tbb::blocked_range<int>(0, C, 16), [&](const tbb::blocked_range<int>& r) { bit_lines(r.begin(), r.end()); });
  } else {
    word_lines(0, P);
    bit_lines(0, C);
  }
  for (int k = 0; k < lanes; ++k) ok[k] = true;
  for (std::size_t line = 0; line < failed.size() / lanes; ++line)
    for (int k = 0; k < lanes; ++k)
      if (failed[line * lanes + k]) ok[k] = false;
}

// L doubles (L even) as one SIMD value: L/2 native two-lane vectors (GCC/Clang vector
// extension; SSE2 on the default x86-64 target). Every operation is lane by lane, so a vector's
// result does not depend on which lanes share its chunk.
typedef double Native2 __attribute__((vector_size(16)));

template <int L>
struct Pack {
  static_assert(L % 2 == 0, "lanes come in pairs");
  using Part = Native2;
  static constexpr int kParts = L / 2;
  Part part[kParts];
};

#define XBAR_PACK_OP(op)                                                               \
  template <int L>                                                                     \
  inline Pack<L> operator op(const Pack<L>& a, const Pack<L>& b) {                     \
    Pack<L> r;                                                                         \
    _Pragma("GCC unroll 8") for (int h = 0; h < Pack<L>::kParts; ++h) r.part[h] = a.part[h] op b.part[h]; \
    return r;                                                                          \
  }                                                                                    \
  template <int L>                                                                     \
  inline Pack<L> operator op(double a, const Pack<L>& b) {                             \
    Pack<L> r;                                                                         \
    _Pragma("GCC unroll 8") for (int h = 0; h < Pack<L>::kParts; ++h) r.part[h] = a op b.part[h]; \
    return r;                                                                          \
  }                                                                                    \
  template <int L>                                                                     \
  inline Pack<L>& operator op##=(Pack<L>& a, const Pack<L>& b) {                       \
    _Pragma("GCC unroll 8") for (int h = 0; h < Pack<L>::kParts; ++h) a.part[h] = a.part[h] op b.part[h]; \
    return a;                                                                          \
  }
XBAR_PACK_OP(+)
XBAR_PACK_OP(-)
XBAR_PACK_OP(*)
#undef XBAR_PACK_OP

template <int L>
struct Simd {
  using V = Pack<L>;
  // Unaligned typed accesses (a double vector may only alias doubles).
  typedef typename V::Part PartU __attribute__((aligned(8)));
  static V load(const double* p) {
    V v;
    _Pragma("GCC unroll 8") for (int h = 0; h < V::kParts; ++h) v.part[h] =
        *reinterpret_cast<const PartU*>(p + 2 * h);
    return v;
  }
  static void store(double* p, const V& v) {
    _Pragma("GCC unroll 8") for (int h = 0; h < V::kParts; ++h)
        *reinterpret_cast<PartU*>(p + 2 * h) = v.part[h];
  }
  static V splat(double s) {
    V v;
    for (int h = 0; h < V::kParts; ++h) v.part[h] = typename V::Part{} + s;
    return v;
  }
  static V zero() { return splat(0.0); }
};

// A coefficient at a node slot as a vector: one value for all lanes, or one per lane.
template <int L, bool PerLane>
struct Coef {
  const double* p;
  typename Simd<L>::V operator()(std::size_t node) const {
    if constexpr (PerLane)
      return Simd<L>::load(p + node * L);
    else
      return Simd<L>::splat(p[node]);
  }
};

// One chunk's vectors (node slots × L lanes).
struct ChunkVectors {
  double* x;          // b (the CG unknowns); for Newton steps δb
  double* wx;         // w = K_W^{-1}(f_w + D b)
  double* p;          // search direction (the start of a round leaves z = K_B^{-1} r here)
  double* z;          // K_W^{-1} D p after a word-line pass, K_B^{-1} r after a bit-line pass
  const double* fw;   // Newton: right-hand side on word-line nodes (-F), else null
  const double* fb;   // Newton: on bit-line nodes
  const double* v;    // row voltages [i*L + k], padded rows 0 (linear right-hand side)
};

// Per-line partial sums of one pass (lines × L), added in line order afterwards.
struct Partials {
  std::vector<double> gamma, rho, rr, iout;
  void resize(int rows, int cols, int lanes) {
    gamma.resize(static_cast<std::size_t>(rows) * lanes);
    for (auto* v : {&rho, &rr, &iout}) v->resize(static_cast<std::size_t>(cols) * lanes);
  }
};

template <int L>
void add_in_order(const std::vector<double>& partial, int lines, double* total) {
  for (int k = 0; k < L; ++k) total[k] = 0;
  for (int line = 0; line < lines; ++line)
    for (int k = 0; k < L; ++k) total[k] += partial[static_cast<std::size_t>(line) * L + k];
}

// Word-line pass at the start of a round, over row blocks [b0, b1): wx = K_W^{-1}(f_w + D x).
// One line at a time: its L lanes are independent recurrences, kept in registers.
template <int L, bool Jac, bool Merged>
void wl_init(const Topology& t, const Coefficients& cf, const ChunkVectors& c, int b0, int b1) {
  using S = Simd<L>;
  using V = typename S::V;
  const int R = t.rows, C = t.cols;
  const Coef<L, Jac> cw{cf.cw.data()}, inv_m{cf.w_inv_m.data()}, cp{cf.w_cp.data()}, inv_sum{cf.w_inv_sum.data()};
  constexpr std::size_t step = kTile;  // slots from w(i,j) to w(i,j+1)
  for (int blk = b0; blk < b1; ++blk)
    for (int ii = 0; ii < kTile && blk * kTile + ii < R; ++ii) {
      const int i = blk * kTile + ii;
      const std::size_t first = blk * t.block_stride + ii;
      const V vi = Jac ? S::zero() : S::load(c.v + static_cast<std::size_t>(i) * L);
      V y = S::zero();
      for (int j = 0; j < C; ++j) {
        const std::size_t node = first + j * step;
        if (j + kPrefetchNodes < C) {
          __builtin_prefetch(c.x + (node + kPrefetchNodes * step) * L);
          __builtin_prefetch(c.wx + (node + kPrefetchNodes * step) * L, 1);
        }
        V r = cw(node) * S::load(c.x + node * L);
        if constexpr (Jac)
          r += S::load(c.fw + node * L);
        else if (j < 2)
          r += (j == 0 ? t.src0 : t.src1) * vi;
        if constexpr (Merged) {
          y += r;
        } else {
          y = (r - t.e_w[j] * y) * inv_m(node);
          S::store(c.wx + node * L, y);
        }
      }
      if constexpr (Merged) {
        y = y * inv_sum(i);
        for (int j = 0; j < C; ++j) S::store(c.wx + (first + j * step) * L, y);
      } else {
        for (int j = C - 2; j >= 0; --j) {
          const std::size_t node = first + j * step;
          y = S::load(c.wx + node * L) - cp(node) * y;
          S::store(c.wx + node * L, y);
        }
      }
    }
}

// Word-line pass of an iteration: p = z + beta p (on the first, p already holds z), z <- K_W^{-1}(D p),
// and per line gamma = (D p)ᵀ K_W^{-1} (D p).
template <int L, bool Jac, bool Merged>
void wl_iterate(const Topology& t, const Coefficients& cf, const ChunkVectors& c, const double* beta, bool first,
                Partials& part, int b0, int b1) {
  using S = Simd<L>;
  using V = typename S::V;
  const int R = t.rows, C = t.cols;
  const Coef<L, Jac> cw{cf.cw.data()}, inv_m{cf.w_inv_m.data()}, cp{cf.w_cp.data()}, inv_sum{cf.w_inv_sum.data()};
  constexpr std::size_t step = kTile;
  const V b = first ? S::zero() : S::load(beta);
  for (int blk = b0; blk < b1; ++blk)
    for (int ii = 0; ii < kTile && blk * kTile + ii < R; ++ii) {
      const int i = blk * kTile + ii;
      const std::size_t line = blk * t.block_stride + ii;
      V y = S::zero(), gamma = S::zero();
      for (int j = 0; j < C; ++j) {
        const std::size_t node = line + j * step;
        if (j + kPrefetchNodes < C) {
          __builtin_prefetch(c.z + (node + kPrefetchNodes * step) * L, 1);
          __builtin_prefetch(c.p + (node + kPrefetchNodes * step) * L, 1);
        }
        V p = S::load(c.p + node * L);  // on the first iteration the bit-line pass left z in p
        if (!first) {
          p = S::load(c.z + node * L) + b * p;
          S::store(c.p + node * L, p);
        }
        const V r = cw(node) * p;
        if constexpr (Merged) {
          y += r;
        } else {
          const V yt = r - t.e_w[j] * y;
          y = yt * inv_m(node);
          gamma += yt * y;
          S::store(c.z + node * L, y);
        }
      }
      if constexpr (Merged) {
        const V w = y * inv_sum(i);
        gamma = y * w;
        for (int j = 0; j < C; ++j) S::store(c.z + (line + j * step) * L, w);
      } else {
        for (int j = C - 2; j >= 0; --j) {
          const std::size_t node = line + j * step;
          y = S::load(c.z + node * L) - cp(node) * y;
          S::store(c.z + node * L, y);
        }
      }
      S::store(part.gamma.data() + static_cast<std::size_t>(i) * L, gamma);
    }
}

// Bit-line pass over blocks [blk0, blk1) of kBitLineBlock adjacent bit lines, one line at a time
// (a block's tiles stay in cache for its other lines). Init: the start of a round. Otherwise
// x += alpha p and wx += alpha z (z holding K_W^{-1} D p) first. Then r = f_b + D wx - K_B x,
// z <- K_B^{-1} r, and per line rho = rᵀ K_B^{-1} r, ||r||² and (linear cells) the column
// current. The latter is Σ_i D (w - b) = g_sense b(R-1) + Σ_i r_i (Kirchhoff: the line's residual
// is what its cells inject beyond what leaves through the sense resistor), or, with r_sense = 0,
// the currents into the grounded node (its cell and the segment above).
template <int L, bool Jac, bool Merged, bool Init>
void bl_pass(const Topology& t, const Coefficients& cf, const double* d_cell, const ChunkVectors& c,
             const double* alpha, Partials& part, int blk0, int blk1) {
  using S = Simd<L>;
  using V = typename S::V;
  const int R = t.rows, C = t.cols;
  const Coef<L, Jac> cb{cf.cb.data()}, diag{cf.b_diag.data()}, inv_m{cf.b_inv_m.data()}, cp{cf.b_cp.data()},
      inv_sum{cf.b_inv_sum.data()};
  const V a = Init ? S::zero() : S::load(alpha);
  double* const out = Init ? c.p : c.z;  // K_B^{-1} r: the first search direction at the start of a round
  for (int blk = blk0; blk < blk1; ++blk) {
    const int j0 = blk * kBitLineBlock, nb = std::min(kBitLineBlock, C - j0);
    for (int l = 0; l < nb; ++l) {
      const int j = j0 + l;
      const std::size_t col = static_cast<std::size_t>(j) * kTile;  // slot of (i, j) = row_offset(i) + col
      V rho = S::zero(), rr = S::zero(), rs = S::zero(), y = S::zero();
      if constexpr (!Init) {
        double* x = c.x + col * L;
        S::store(x, S::load(x) + a * S::load(c.p + col * L));
      }
      for (int i = 0; i < R; ++i) {
        const double em = t.e_b[i], ep = t.e_b[i + 1];  // 0 past either end
        const std::size_t node = t.row_offset(i) + col;
        const std::size_t up = i > 0 ? t.row_offset(i - 1) + col : node;
        const std::size_t down = i + 1 < R ? t.row_offset(i + 1) + col : node;
        if (i + kTile < R) {  // the next row block's tile: a new piece of memory per vector
          const std::size_t ahead = (t.row_offset(i + kTile) + col) * L;
          __builtin_prefetch(c.x + ahead);
          __builtin_prefetch(c.wx + ahead);
          __builtin_prefetch(out + ahead, 1);
          if constexpr (!Init) __builtin_prefetch(c.z + ahead);
          if constexpr (!Init) __builtin_prefetch(c.p + ahead);
        }
        if constexpr (!Init)
          if (i + 1 < R) {
            double* x = c.x + down * L;
            S::store(x, S::load(x) + a * S::load(c.p + down * L));
          }
        V w = S::load(c.wx + node * L);
        if constexpr (!Init) {
          w += a * S::load(c.z + node * L);
          S::store(c.wx + node * L, w);
        }
        V r = cb(node) * w -
              (em * S::load(c.x + up * L) + diag(node) * S::load(c.x + node * L) + ep * S::load(c.x + down * L));
        if constexpr (Jac) r += S::load(c.fb + node * L);
        rs += r;
        if constexpr (!Merged) {
          rr += r * r;
          const V yt = r - em * y;
          y = yt * inv_m(node);
          rho += yt * y;
          S::store(out + node * L, y);
        }
      }
      if constexpr (Merged) {
        y = rs * inv_sum(j);
        rho = rs * y;
        rr = rs * rs;
        for (int i = 0; i < R; ++i) S::store(out + (t.row_offset(i) + col) * L, y);
      } else {
        for (int i = R - 2; i >= 0; --i) {
          const std::size_t node = t.row_offset(i) + col;
          y = S::load(out + node * L) - cp(node) * y;
          S::store(out + node * L, y);
        }
      }
      const std::size_t s = static_cast<std::size_t>(j) * L;
      S::store(part.rho.data() + s, rho);
      S::store(part.rr.data() + s, rr);
      if constexpr (!Jac) {
        const std::size_t last = t.node(R - 1, j);
        V io;
        if (!t.b_last_fixed) {
          io = rs + t.g_sense * S::load(c.x + last * L);
        } else if (!Merged) {
          io = rs + d_cell[last] * S::load(c.wx + last * L);
          if (R > 1) io += t.g_bl * S::load(c.x + t.node(R - 2, j) * L);
        } else {  // the whole bit line is the virtual ground
          io = S::zero();
          for (int i = 0; i < R; ++i) {
            const std::size_t q = t.node(i, j);
            io += d_cell[q] * S::load(c.wx + q * L);
          }
        }
        S::store(part.iout.data() + s, io);
      }
    }
  }
}

template <typename F>
void for_range(bool parallel, int count, int grain, const F& f) {
  if (!parallel || count <= grain) {
    f(0, count);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int>(0, count, grain),
                    [&](const tbb::blocked_range<int>& r) { f(r.begin(), r.end()); });
}

struct CgOutcome {
  std::array<int, kChunk> iterations{};
  std::array<double, kChunk> rr{};  // squared residual norm at the end
  std::array<bool, kChunk> converged{};
  std::array<bool, kChunk> indefinite{};  // a direction of clearly negative curvature: not SPD
};

// Preconditioned CG on the Schur complement for one chunk, from the b in c.x. Lanes with
// active[k] false are left as they are (they count as converged); thr[k] is the residual norm
// at which lane k stops. Partials (and the column currents, linear cells) of the last bit-line
// pass are left in `part`.
template <int L, bool Jac>
CgOutcome run_cg(const Topology& t, const Coefficients& cf, const double* d_cell, const ChunkVectors& c,
                 const double* thr, const bool* active, int max_iter, Partials& part, bool parallel) {
  const int R = t.rows, C = t.cols;
  const int bl_blocks = (C + kBitLineBlock - 1) / kBitLineBlock;
  auto wl_init_pass = [&] {
    for_range(parallel, t.row_blocks, 1, [&](int a, int b) {
      if (t.wl_merged)
        wl_init<L, Jac, true>(t, cf, c, a, b);
      else
        wl_init<L, Jac, false>(t, cf, c, a, b);
    });
  };
  auto wl_iterate_pass = [&](const double* beta, bool first) {
    for_range(parallel, t.row_blocks, 1, [&](int a, int b) {
      if (t.wl_merged)
        wl_iterate<L, Jac, true>(t, cf, c, beta, first, part, a, b);
      else
        wl_iterate<L, Jac, false>(t, cf, c, beta, first, part, a, b);
    });
  };
  auto bl_init_pass = [&] {
    for_range(parallel, bl_blocks, 1, [&](int a, int b) {
      if (t.bl_merged)
        bl_pass<L, Jac, true, true>(t, cf, d_cell, c, nullptr, part, a, b);
      else
        bl_pass<L, Jac, false, true>(t, cf, d_cell, c, nullptr, part, a, b);
    });
  };
  auto bl_update_pass = [&](const double* alpha) {
    for_range(parallel, bl_blocks, 1, [&](int a, int b) {
      if (t.bl_merged)
        bl_pass<L, Jac, true, false>(t, cf, d_cell, c, alpha, part, a, b);
      else
        bl_pass<L, Jac, false, false>(t, cf, d_cell, c, alpha, part, a, b);
    });
  };

  CgOutcome out;
  double rho[L], rr[L], gamma[L], pkp[L], alpha[L], beta[L], rho_new[L];
  bool conv[L], stalled[L];
  int iterations = 0;
  for (;;) {
    wl_init_pass();
    bl_init_pass();
    add_in_order<L>(part.rho, C, rho);
    add_in_order<L>(part.rr, C, rr);
    int running = 0;
    for (int k = 0; k < L; ++k) {
      stalled[k] = false;
      conv[k] = !active[k] || rr[k] <= thr[k] * thr[k];
      running += !conv[k];
      beta[k] = pkp[k] = 0;
    }
    int round = 0;
    bool first = true;
    while (running > 0 && iterations < max_iter) {
      wl_iterate_pass(beta, first);
      add_in_order<L>(part.gamma, R, gamma);
      for (int k = 0; k < L; ++k) {
        alpha[k] = 0;
        if (conv[k] || stalled[k]) continue;
        // pᵀ K_B p of p = z + beta p_old: rho + beta² p_oldᵀ K_B p_old (K_B z = r, r ⊥ p_old).
        pkp[k] = first ? rho[k] : rho[k] + beta[k] * beta[k] * pkp[k];
        const double den = pkp[k] - gamma[k];
        if (den > 0 && std::isfinite(den) && std::isfinite(rho[k])) {
          alpha[k] = rho[k] / den;
        } else {  // no descent possible: the rounding floor, or a matrix that is not SPD
          stalled[k] = true;
          if (den < -1e-8 * std::fabs(pkp[k]) || !(rho[k] >= 0)) out.indefinite[k] = true;
        }
      }
      bl_update_pass(alpha);
      ++iterations;
      ++round;
      add_in_order<L>(part.rho, C, rho_new);
      add_in_order<L>(part.rr, C, rr);
      running = 0;
      for (int k = 0; k < L; ++k) {
        if (!conv[k] && !stalled[k] && rr[k] <= thr[k] * thr[k]) {
          conv[k] = true;
          out.iterations[k] = iterations;
        }
        const bool go = !conv[k] && !stalled[k];
        beta[k] = go ? rho_new[k] / rho[k] : 0.0;
        rho[k] = rho_new[k];
        running += go;
      }
      first = false;
    }
    // A long round: w was carried by a recursion; recompute it from b and check again.
    if (round <= kVerifyAfter || iterations >= max_iter) break;
  }
  for (int k = 0; k < L; ++k) {
    out.rr[k] = rr[k];
    out.converged[k] = conv[k];
    if (!conv[k]) out.iterations[k] = iterations;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct IterativeSolver::Impl {
  Impl(int rows, int cols, const core::WireOptions& wires_, double tol_, int max_iter_, int newton_max_iter_,
       bool warm_start_)
      : topo(rows, cols, wires_),
        wires(wires_),
        tol(tol_),
        max_iter(max_iter_),
        newton_max_iter(newton_max_iter_),
        warm_start(warm_start_) {}

  // Per-thread scratch (a chunk runs on one thread at a time).
  struct Workspace {
    Buffer wx, p, z;
    Partials part;
    // Newton
    Buffer dx, w, b, fw, fb, cur, gd, wt, bt, fwt, fbt, curt, gdt;
    Coefficients jacobian;
    std::vector<double> v;
    // CG vectors for L lanes (every slot a pass reads was written earlier in the same solve).
    void prepare(const Topology& t, int L) {
      for (Buffer* buffer : {&wx, &p, &z}) buffer->resize(t.slots * L);
      part.resize(t.rows, t.cols, L);
    }
  };
  // Outcome of one chunk.
  struct ChunkResult {
    std::array<int, kChunk> iterations{};
    std::array<double, kChunk> residual{};
    std::array<core::SolveStatus, kChunk> status{};
    std::array<std::string, kChunk> message;
    double max_cell_voltage = 0;
  };

  Topology topo;
  core::WireOptions wires;
  double tol;
  int max_iter;
  int newton_max_iter;
  bool warm_start;
  SolveSummary state;
  Eigen::MatrixXd g_device, g_cell;
  CellModel model;
  Coefficients linear;  // of the (small-signal) cell conductances g_cell
  Buffer d_cell;        // g_cell at the node slots
  // Warm start: the last solution b per chunk, for a batch of warm_batch vectors and the given
  // kind (linear solution, or the small-signal start of Newton).
  int warm_batch = -1;
  bool warm_nonlinear = false;
  std::vector<Buffer> warm_x;
  tbb::enumerable_thread_specific<Workspace> workspaces;

  // Lanes of a chunk of `count` vectors: 2, 4 or 8 (a single vector runs in a pair with an idle
  // lane: SSE2 does two lanes for the price of one; its bits are those it would have alone).
  static int lanes_for(int count) { return count <= 2 ? 2 : count <= 4 ? 4 : 8; }

  SolveSummary set_cells(const Eigen::MatrixXd& g, const CellModel& m);
  SolveSummary solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell, int probe);

  template <int L>
  void linear_chunk(int chunk, const Eigen::MatrixXd& v_in, bool parallel, ChunkResult& res, Eigen::MatrixXd& i_out,
                    Eigen::MatrixXd* v_cell, int probe);
  template <int L>
  void newton_chunk(int chunk, const Eigen::MatrixXd& v_in, ChunkResult& res, Eigen::MatrixXd& i_out,
                    Eigen::MatrixXd* v_cell, int probe);
  // Row voltages of a chunk [i*L + k] (0 for lanes past the batch and padding rows) and ||b|| per
  // lane.
  template <int L>
  void chunk_inputs(int col0, int count, const Eigen::MatrixXd& v_in, std::vector<double>& v, double* b_norm) const;
  template <int L>
  void evaluate(const double* v, const double* w, const double* b, double* cur, double* gd, double* fw, double* fb,
                const bool* mask, double* norm, double* scale) const;
};

SolveSummary IterativeSolver::Impl::set_cells(const Eigen::MatrixXd& g, const CellModel& m) {
  state = SolveSummary{};
  state.method = "iterative";
  const int R = topo.rows, C = topo.cols;
  if (g.rows() != R || g.cols() != C) {
    state.status = core::SolveStatus::singular;
    state.message = fmt::format("conductance matrix is {}x{}, the array is {}x{}", g.rows(), g.cols(), R, C);
    return state;
  }
  for (Eigen::Index i = 0; i < g.rows(); ++i)
    for (Eigen::Index j = 0; j < g.cols(); ++j)
      if (!std::isfinite(g(i, j)) || g(i, j) < 0) {
        state.status = core::SolveStatus::non_finite;
        state.message =
            fmt::format("cell ({},{}) has conductance {} S; expected a finite value >= 0", i, j, g(i, j));
        return state;
      }
  const auto start = std::chrono::steady_clock::now();
  g_device = g;
  model = m;
  g_cell = small_signal_conductance(g, m);
  if (!g_cell.allFinite()) {
    state.status = core::SolveStatus::non_finite;
    state.message = "the cells' small-signal conductance at 0 V is not finite";
    return state;
  }
  if (topo.any_open) {  // only an open wire can leave a node without a path to a fixed potential
    NodalSystem system(R, C, wires);
    system.refill(g_cell);
    const std::string floating = system.floating_node_description(g_cell);
    if (!floating.empty()) {
      state.status = core::SolveStatus::singular;
      state.message = "floating circuit: " + floating;
      return state;
    }
  }
  d_cell.assign(topo.slots, 0.0);
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) d_cell.data()[topo.node(i, j)] = g_cell(i, j);
  bool ok = true;
  factorize(topo, d_cell.data(), 1, linear, &ok, true);
  state.factorize_s = seconds_since(start);
  if (!ok) {
    state.status = core::SolveStatus::singular;
    state.message = "a line of the nodal matrix is not positive definite (singular circuit)";
  }
  return state;
}

template <int L>
void IterativeSolver::Impl::chunk_inputs(int col0, int count, const Eigen::MatrixXd& v_in, std::vector<double>& v,
                                         double* b_norm) const {
  const int R = topo.rows, C = topo.cols;
  v.assign(static_cast<std::size_t>(topo.padded_rows()) * L, 0.0);
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < count; ++k) v[i * L + k] = v_in(i, col0 + k);
  // ||b||² of the nodal right-hand side: the wire a row voltage drives into its first unknown,
  // and, when the word line's start is the source, the cells from a source to an unknown bit-line
  // node (summed over a merged bit line).
  double s[L] = {};
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < L; ++k) {
      const double term = topo.rhs_w_per_volt * v[i * L + k];
      s[k] += term * term;
    }
  if (topo.w_first_fixed) {
    const int fixed_cols = topo.wl_merged ? C : 1;
    const double* cb = linear.cb.data();
    if (!topo.bl_merged) {
      for (int i = 0; i < R; ++i)
        for (int j = 0; j < fixed_cols; ++j)
          for (int k = 0; k < L; ++k) {
            const double term = cb[topo.node(i, j)] * v[i * L + k];
            s[k] += term * term;
          }
    } else {
      for (int j = 0; j < fixed_cols; ++j) {
        double line[L] = {};
        for (int i = 0; i < R; ++i)
          for (int k = 0; k < L; ++k) line[k] += cb[topo.node(i, j)] * v[i * L + k];
        for (int k = 0; k < L; ++k) s[k] += line[k] * line[k];
      }
    }
  }
  for (int k = 0; k < L; ++k) b_norm[k] = std::sqrt(s[k]);
}

template <int L>
void IterativeSolver::Impl::linear_chunk(int chunk, const Eigen::MatrixXd& v_in, bool parallel, ChunkResult& res,
                                         Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell, int probe) {
  const int R = topo.rows, C = topo.cols;
  const std::size_t n = topo.slots * L;
  const int col0 = chunk * kChunk, count = std::min<int>(kChunk, static_cast<int>(v_in.cols()) - col0);
  Workspace& ws = workspaces.local();
  ws.prepare(topo, L);
  double b_norm[L], thr[L];
  bool active[L];
  chunk_inputs<L>(col0, count, v_in, ws.v, b_norm);
  double* x = warm_x[chunk].data();
  for (int k = 0; k < L; ++k) {
    active[k] = k < count && b_norm[k] > 0;
    thr[k] = tol * b_norm[k];
    if (!active[k])  // no drive: the solution is 0
      for (std::size_t q = k; q < n; q += L) x[q] = 0;
  }
  const ChunkVectors c{x, ws.wx.data(), ws.p.data(), ws.z.data(), nullptr, nullptr, ws.v.data()};
  const CgOutcome cg = run_cg<L, false>(topo, linear, d_cell.data(), c, thr, active, max_iter, ws.part, parallel);
  for (int k = 0; k < count; ++k) {
    // (A vector that drives no unknown has the exact solution b = 0, but its currents through
    // cells between fixed nodes are still those of the last pass.)
    for (int j = 0; j < C; ++j) i_out(j, col0 + k) = ws.part.iout[static_cast<std::size_t>(j) * L + k];
    res.iterations[k] = cg.iterations[k];
    const double norm = std::sqrt(cg.rr[k]);
    res.residual[k] = !active[k] ? 0.0 : norm / b_norm[k];
    if (cg.indefinite[k]) {
      res.status[k] = core::SolveStatus::singular;
      res.message[k] = "the nodal matrix is not positive definite (conjugate gradients found negative curvature)";
    } else if (!cg.converged[k]) {
      res.status[k] = core::SolveStatus::not_converged;
      res.message[k] = fmt::format(
          "the iterative solver did not converge in {} iterations (relative residual {:.3g}, tol {:.3g})",
          cg.iterations[k], res.residual[k], tol);
    }
  }
  if (v_cell && probe >= col0 && probe < col0 + count) {
    const int k = probe - col0;
    v_cell->resize(R, C);
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j) {
        const std::size_t q = topo.node(i, j) * L + k;
        (*v_cell)(i, j) = active[k] ? ws.wx.data()[q] - x[q] : 0.0;
      }
  }
}

template <int L>
void IterativeSolver::Impl::evaluate(const double* v, const double* w, const double* b, double* cur, double* gd,
                                     double* fw, double* fb, const bool* mask, double* norm, double* scale) const {
  const Topology& t = topo;
  const int R = t.rows, C = t.cols;
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) {
      const double g = g_device(i, j);
      const std::size_t q = t.node(i, j) * L;
      for (int k = 0; k < L; ++k)
        if (mask[k]) cell_current(g, w[q + k] - b[q + k], model, cur[q + k], gd[q + k]);
    }
  double f2[L] = {}, inj2[L] = {}, bw2[L] = {};
  // Word-line equations: F = the wire currents out of the node + the cell current.
  const std::size_t next = static_cast<std::size_t>(kTile) * L;  // slot distance of w(i,j+1)
  for (int i = 0; i < R; ++i) {
    double line_f[L] = {}, line_i[L] = {};
    for (int j = 0; j < C; ++j) {
      const std::size_t q = t.node(i, j) * L;
      const bool fixed = t.w_fixed(j);
      for (int k = 0; k < L; ++k) {
        if (!mask[k]) continue;
        if (fixed) {
          fw[q + k] = 0;
          continue;
        }
        double f = cur[q + k];
        if (j == 0) f += t.g_source * (w[q + k] - v[i * L + k]);
        if (!t.wl_merged) {
          if (j > 0) f += t.g_wl * (w[q + k] - w[q - next + k]);
          if (j + 1 < C) f += t.g_wl * (w[q + k] - w[q + next + k]);
          f2[k] += f * f;
          inj2[k] += cur[q + k] * cur[q + k];
        } else {
          line_f[k] += f;
          line_i[k] += std::fabs(cur[q + k]);
        }
        fw[q + k] = -f;
      }
    }
    if (t.wl_merged && !t.w_first_fixed)
      for (int k = 0; k < L; ++k) {
        f2[k] += line_f[k] * line_f[k];
        inj2[k] += line_i[k] * line_i[k];
      }
    for (int k = 0; k < L; ++k) {
      const double term = t.rhs_w_per_volt * v[i * L + k];
      bw2[k] += term * term;
    }
  }
  // Bit-line equations: F = the wire currents out of the node - the cell current.
  std::vector<double> line_f, line_i;
  if (t.bl_merged) {
    line_f.assign(static_cast<std::size_t>(C) * L, 0.0);
    line_i.assign(static_cast<std::size_t>(C) * L, 0.0);
  }
  for (int i = 0; i < R; ++i) {
    const bool fixed = t.b_fixed(i);
    for (int j = 0; j < C; ++j) {
      const std::size_t q = t.node(i, j) * L;
      const std::size_t up = i > 0 ? t.node(i - 1, j) * L : q, down = i + 1 < R ? t.node(i + 1, j) * L : q;
      for (int k = 0; k < L; ++k) {
        if (!mask[k]) continue;
        if (fixed) {
          fb[q + k] = 0;
          continue;
        }
        double f = -cur[q + k];
        if (i == R - 1) f += t.g_sense * b[q + k];
        if (!t.bl_merged) {
          if (i > 0) f += t.g_bl * (b[q + k] - b[up + k]);
          if (i + 1 < R) f += t.g_bl * (b[q + k] - b[down + k]);
          f2[k] += f * f;
          inj2[k] += cur[q + k] * cur[q + k];
        } else {
          line_f[j * L + k] += f;
          line_i[j * L + k] += std::fabs(cur[q + k]);
        }
        fb[q + k] = -f;
      }
    }
  }
  if (t.bl_merged && !t.b_last_fixed)
    for (int j = 0; j < C; ++j)
      for (int k = 0; k < L; ++k) {
        f2[k] += line_f[j * L + k] * line_f[j * L + k];
        inj2[k] += line_i[j * L + k] * line_i[j * L + k];
      }
  for (int k = 0; k < L; ++k)
    if (mask[k]) {
      norm[k] = std::sqrt(f2[k]);
      scale[k] = std::max(std::sqrt(bw2[k]) + std::sqrt(inj2[k]), 1e-300);
    }
}

template <int L>
void IterativeSolver::Impl::newton_chunk(int chunk, const Eigen::MatrixXd& v_in, ChunkResult& res,
                                         Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell, int probe) {
  const int R = topo.rows, C = topo.cols;
  const std::size_t n = topo.slots * L;
  const int col0 = chunk * kChunk, count = std::min<int>(kChunk, static_cast<int>(v_in.cols()) - col0);
  Workspace& ws = workspaces.local();
  ws.prepare(topo, L);
  for (Buffer* b : {&ws.dx, &ws.w, &ws.b, &ws.fw, &ws.fb, &ws.cur, &ws.gd, &ws.wt, &ws.bt, &ws.fwt, &ws.fbt,
                    &ws.curt, &ws.gdt})
    b->resize(n);
  double b_norm[L], thr[L];
  bool lane[L];
  chunk_inputs<L>(col0, count, v_in, ws.v, b_norm);
  const double* v = ws.v.data();
  // The nodes of the array, as slot offsets (the padding slots take no part in Newton).
  std::vector<std::size_t> nodes;
  nodes.reserve(static_cast<std::size_t>(R) * C);
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) nodes.push_back(topo.node(i, j) * L);

  // Iteration 1: the linear circuit of small-signal conductances (warm-started).
  double* x = warm_x[chunk].data();
  for (int k = 0; k < L; ++k) {
    lane[k] = k < count && b_norm[k] > 0;
    thr[k] = tol * b_norm[k];
    if (!lane[k])
      for (std::size_t q = k; q < n; q += L) x[q] = 0;
  }
  {
    const ChunkVectors c{x, ws.wx.data(), ws.p.data(), ws.z.data(), nullptr, nullptr, v};
    run_cg<L, false>(topo, linear, d_cell.data(), c, thr, lane, max_iter, ws.part, false);
  }
  std::copy_n(ws.wx.data(), n, ws.w.data());
  std::copy_n(x, n, ws.b.data());

  bool all[L], active[L], halve[L];
  double norm[L], scale[L], norm_t[L], scale_t[L], lambda[L], largest[L];
  int iterations[L];
  for (int k = 0; k < L; ++k) {
    all[k] = true;
    iterations[k] = k < count ? 1 : 0;
  }
  evaluate<L>(v, ws.w.data(), ws.b.data(), ws.cur.data(), ws.gd.data(), ws.fw.data(), ws.fb.data(), all, norm, scale);
  for (int k = 0; k < L; ++k) {
    active[k] = k < count && !(norm[k] <= tol * scale[k]);
    if (k < count && !std::isfinite(norm[k])) {
      active[k] = false;
      res.status[k] = core::SolveStatus::non_finite;
      res.message[k] = "the cell currents are not finite";
    }
  }
  for (;;) {
    int running = 0;
    for (int k = 0; k < L; ++k) {
      if (active[k] && iterations[k] >= newton_max_iter) {
        active[k] = false;
        res.status[k] = core::SolveStatus::not_converged;
        res.message[k] = fmt::format("Newton did not converge in {} iterations (relative residual {:.3g}, tol {:.3g})",
                                     newton_max_iter, norm[k] / scale[k], tol);
      }
      running += active[k];
    }
    if (running == 0) break;
    // Newton step J δ = -F with the cells' dI/dV, by CG from δ = 0.
    bool ok[L];
    factorize(topo, ws.gd.data(), L, ws.jacobian, ok, false);
    for (int k = 0; k < L; ++k) {
      if (active[k] && !ok[k]) {
        active[k] = false;
        res.status[k] = core::SolveStatus::singular;
        res.message[k] = "the Newton Jacobian is not positive definite (a cell has dI/dV <= 0?)";
      }
      thr[k] = std::max(0.1 * tol * scale[k], std::min(1e-4 * norm[k], norm[k] * norm[k] / scale[k]));
    }
    std::fill_n(ws.dx.data(), n, 0.0);
    {
      const ChunkVectors c{ws.dx.data(), ws.wx.data(), ws.p.data(), ws.z.data(), ws.fw.data(), ws.fb.data(), v};
      const CgOutcome cg = run_cg<L, true>(topo, ws.jacobian, nullptr, c, thr, active, max_iter, ws.part, false);
      for (int k = 0; k < L; ++k)
        if (active[k] && cg.indefinite[k]) {
          active[k] = false;
          res.status[k] = core::SolveStatus::singular;
          res.message[k] = "the Newton Jacobian is not positive definite (a cell has dI/dV <= 0?)";
        }
    }
    const double* dw = ws.wx.data();
    const double* db = ws.dx.data();
    for (int k = 0; k < L; ++k) largest[k] = 0;
    for (std::size_t q : nodes)
      for (int k = 0; k < L; ++k) largest[k] = std::max({largest[k], std::fabs(dw[q + k]), std::fabs(db[q + k])});
    for (int k = 0; k < L; ++k) {
      if (active[k]) ++iterations[k];
      lambda[k] = largest[k] > kMaxNewtonStep ? kMaxNewtonStep / largest[k] : 1.0;
      halve[k] = active[k];
    }
    auto trial = [&](const bool* mask) {
      for (std::size_t q : nodes)
        for (int k = 0; k < L; ++k)
          if (mask[k]) {
            ws.wt.data()[q + k] = ws.w.data()[q + k] + lambda[k] * dw[q + k];
            ws.bt.data()[q + k] = ws.b.data()[q + k] + lambda[k] * db[q + k];
          }
      evaluate<L>(v, ws.wt.data(), ws.bt.data(), ws.curt.data(), ws.gdt.data(), ws.fwt.data(), ws.fbt.data(), mask,
                  norm_t, scale_t);
    };
    trial(halve);
    for (int halving = 0; halving < 30; ++halving) {  // Armijo: halve until ||F|| decreases
      int again = 0;
      for (int k = 0; k < L; ++k) {
        halve[k] = halve[k] && !(norm_t[k] <= (1.0 - 1e-4 * lambda[k]) * norm[k]);
        if (halve[k]) lambda[k] *= 0.5;
        again += halve[k];
      }
      if (again == 0) break;
      trial(halve);
    }
    // Accept the trial points of the active lanes.
    for (std::size_t q : nodes)
      for (int k = 0; k < L; ++k)
        if (active[k]) {
          ws.w.data()[q + k] = ws.wt.data()[q + k];
          ws.b.data()[q + k] = ws.bt.data()[q + k];
          ws.cur.data()[q + k] = ws.curt.data()[q + k];
          ws.gd.data()[q + k] = ws.gdt.data()[q + k];
          ws.fw.data()[q + k] = ws.fwt.data()[q + k];
          ws.fb.data()[q + k] = ws.fbt.data()[q + k];
        }
    for (int k = 0; k < L; ++k)
      if (active[k]) {
        norm[k] = norm_t[k];
        scale[k] = scale_t[k];
        if (!std::isfinite(norm[k])) {
          active[k] = false;
          res.status[k] = core::SolveStatus::non_finite;
          res.message[k] = "the cell currents are not finite";
        } else if (norm[k] <= tol * scale[k]) {
          active[k] = false;
        }
      }
  }
  // Column currents: the cells' currents summed down each bit line (as DirectSolver).
  for (int k = 0; k < count; ++k) {
    res.iterations[k] = iterations[k];
    res.residual[k] = norm[k] / scale[k];
    for (int j = 0; j < C; ++j) {
      double sum = 0;
      for (int i = 0; i < R; ++i) sum += ws.cur.data()[topo.node(i, j) * L + k];
      i_out(j, col0 + k) = sum;
    }
    for (std::size_t q : nodes)
      res.max_cell_voltage = std::max(res.max_cell_voltage, std::fabs(ws.w.data()[q + k] - ws.b.data()[q + k]));
  }
  if (v_cell && probe >= col0 && probe < col0 + count) {
    const int k = probe - col0;
    v_cell->resize(R, C);
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j) {
        const std::size_t q = topo.node(i, j) * L + k;
        (*v_cell)(i, j) = ws.w.data()[q] - ws.b.data()[q];
      }
  }
}

SolveSummary IterativeSolver::Impl::solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out,
                                          Eigen::MatrixXd* v_cell, int probe) {
  SolveSummary summary = state;
  summary.analyse_s = summary.factorize_s = 0;  // reported by set_cells()
  if (!summary.ok()) return summary;
  const int R = topo.rows, C = topo.cols;
  if (v_in.rows() != R || !v_in.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = v_in.rows() != R ? fmt::format("v_in has {} rows, the array {}", v_in.rows(), R)
                                       : "v_in holds a non-finite voltage";
    return summary;
  }
  const int batch = static_cast<int>(v_in.cols());
  if (v_cell && batch > 0 && (probe < 0 || probe >= batch)) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = fmt::format("probe column {} is outside the batch of {}", probe, batch);
    return summary;
  }
  const auto start = std::chrono::steady_clock::now();
  const bool nonlinear = !model.linear();
  const int chunks = (batch + kChunk - 1) / kChunk;
  if (!(warm_start && warm_batch == batch && warm_nonlinear == nonlinear)) {
    warm_x.resize(chunks);
    for (int c = 0; c < chunks; ++c)
      warm_x[c].assign(topo.slots * lanes_for(std::min(kChunk, batch - c * kChunk)), 0.0);
  }
  warm_batch = -1;  // valid again once this solve has finished
  i_out.resize(C, batch);
  std::vector<ChunkResult> results(chunks);
  auto run = [&](int c, bool parallel) {
    const int lanes = lanes_for(std::min(kChunk, batch - c * kChunk));
    auto go = [&](auto lanes_tag) {
      constexpr int L = decltype(lanes_tag)::value;
      if (nonlinear)
        newton_chunk<L>(c, v_in, results[c], i_out, v_cell, probe);
      else
        linear_chunk<L>(c, v_in, parallel, results[c], i_out, v_cell, probe);
    };
    switch (lanes) {
      case 2: go(std::integral_constant<int, 2>{}); break;
      case 4: go(std::integral_constant<int, 4>{}); break;
      default: go(std::integral_constant<int, 8>{}); break;
    }
  };
  // Chunks in parallel; a single linear chunk parallel over its lines instead.
  if (chunks >= 2 || nonlinear)
    tbb::parallel_for(tbb::blocked_range<int>(0, chunks, 1), [&](const tbb::blocked_range<int>& r) {
      for (int c = r.begin(); c != r.end(); ++c) run(c, false);
    });
  else if (chunks == 1)
    run(0, true);
  if (v_cell && batch == 0) v_cell->setZero(R, C);

  summary.iterations = 0;
  summary.residual = 0;
  double max_voltage = 0;
  for (int c = 0; c < chunks; ++c) {
    const int count = std::min(kChunk, batch - c * kChunk);
    for (int k = 0; k < count; ++k) {
      const ChunkResult& r = results[c];
      summary.iterations = std::max(summary.iterations, r.iterations[k]);
      summary.residual = std::max(summary.residual, r.residual[k]);
      if (summary.ok() && r.status[k] != core::SolveStatus::ok) {
        summary.status = r.status[k];
        summary.message = fmt::format("input vector {}: {}", c * kChunk + k, r.message[k]);
      }
    }
    max_voltage = std::max(max_voltage, results[c].max_cell_voltage);
  }
  if (summary.ok() && !i_out.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = "the solve produced non-finite currents";
  }
  if (nonlinear && max_voltage > model.iv->max_voltage())
    summary.warning = fmt::format("cells see up to {:.3g} V, beyond the I-V model's validity ({:.3g} V)", max_voltage,
                                  model.iv->max_voltage());
  if (summary.status != core::SolveStatus::non_finite) {  // keep the solution to start the next solve from
    warm_batch = batch;
    warm_nonlinear = nonlinear;
  }
  summary.solve_s = seconds_since(start);
  return summary;
}

IterativeSolver::IterativeSolver(int rows, int cols, const core::WireOptions& wires, double tol, int max_iter,
                                 bool warm_start, int newton_max_iter)
    : impl_(std::make_unique<Impl>(rows, cols, wires, tol, max_iter, newton_max_iter, warm_start)) {
  impl_->state.method = "iterative";
  impl_->state.status = core::SolveStatus::singular;
  impl_->state.message = "no conductances set";
}

IterativeSolver::~IterativeSolver() = default;

SolveSummary IterativeSolver::set_cells(const Eigen::MatrixXd& g_device, const CellModel& model) {
  return impl_->set_cells(g_device, model);
}

SolveSummary IterativeSolver::solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell,
                                    int probe) {
  return impl_->solve(v_in, i_out, v_cell, probe);
}

void IterativeSolver::reset_warm_start() { impl_->warm_batch = -1; }

std::size_t IterativeSolver::memory_bytes() const {
  std::size_t bytes = impl_->linear.bytes() + impl_->d_cell.bytes();
  for (const Buffer& saved : impl_->warm_x) bytes += saved.bytes();
  for (const Impl::Workspace& ws : impl_->workspaces)  // per-thread scratch of the CG and Newton passes
    for (const Buffer* buffer : {&ws.wx, &ws.p, &ws.z, &ws.dx, &ws.w, &ws.b, &ws.fw, &ws.fb, &ws.cur, &ws.gd, &ws.wt,
                                 &ws.bt, &ws.fwt, &ws.fbt, &ws.curt, &ws.gdt})
      bytes += buffer->bytes();
  return bytes + static_cast<std::size_t>(impl_->g_device.size() + impl_->g_cell.size()) * sizeof(double);
}

}  // namespace xbar::circuits
