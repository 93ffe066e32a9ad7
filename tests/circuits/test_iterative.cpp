// The batched iterative solver against the exact direct solver: linear and nonlinear cells, every
// kind of zero or open wire, warm starts, budgets and failures, and thread-count independence.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <limits>
#include <vector>

#include "circuits/direct_solver.hpp"
#include "circuits/iterative_solver.hpp"
#include "core/random.hpp"
#include "tests/support/cell_ivs.hpp"

using namespace xbar;
using circuits::CellModel;
using circuits::DirectSolver;
using circuits::IterativeSolver;
using core::WireOptions;

using testing_support::SinhIv;

namespace {

// A device model that breaks down (NaN) beyond 0.3 V.
class BrokenIv final : public devices::CellIv {
 public:
  void current(double g, double v, double& i, double& di_dv) const override {
    const bool valid = std::fabs(v) < 0.3;
    i = valid ? g * v : std::numeric_limits<double>::quiet_NaN();
    di_dv = valid ? g : std::numeric_limits<double>::quiet_NaN();
  }
  std::string spice_current(double, const std::string&) const override { return ""; }
};

double log_uniform(core::RandomStream& rng, double lo, double hi) {
  return std::exp(rng.uniform(std::log(lo), std::log(hi)));
}

Eigen::MatrixXd random_conductances(int rows, int cols, double lo, double hi, core::RandomStream& rng) {
  Eigen::MatrixXd g(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) g(i, j) = log_uniform(rng, lo, hi);
  return g;
}

Eigen::MatrixXd random_voltages(int rows, int batch, double amplitude, core::RandomStream& rng) {
  Eigen::MatrixXd v(rows, batch);
  for (int i = 0; i < rows; ++i)
    for (int b = 0; b < batch; ++b) v(i, b) = rng.uniform(-amplitude, amplitude);
  return v;
}

WireOptions random_wires(core::RandomStream& rng) {
  return WireOptions{log_uniform(rng, 0.01, 100), log_uniform(rng, 0.01, 100), log_uniform(rng, 0.01, 100),
                     log_uniform(rng, 0.01, 100)};
}

double max_relative_error(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected) {
  const double scale = expected.cwiseAbs().maxCoeff();
  return scale > 0 ? (actual - expected).cwiseAbs().maxCoeff() / scale : actual.cwiseAbs().maxCoeff();
}

Eigen::MatrixXd direct_currents(const Eigen::MatrixXd& g, const WireOptions& w, const Eigen::MatrixXd& v,
                                const CellModel& model = {}, double tol = 1e-13) {
  DirectSolver solver(static_cast<int>(g.rows()), static_cast<int>(g.cols()), w, tol, 50);
  const auto factor = solver.set_cells(g, model);
  EXPECT_TRUE(factor.ok()) << factor.message;
  Eigen::MatrixXd i_out;
  const auto summary = solver.solve(v, i_out);
  EXPECT_TRUE(summary.ok()) << summary.message;
  return i_out;
}

struct IterativeResult {
  Eigen::MatrixXd i_out;
  circuits::SolveSummary summary;
};

IterativeResult iterative_currents(const Eigen::MatrixXd& g, const WireOptions& w, const Eigen::MatrixXd& v,
                                   double tol, const CellModel& model = {}, int max_iter = 10000) {
  IterativeSolver solver(static_cast<int>(g.rows()), static_cast<int>(g.cols()), w, tol, max_iter, true);
  const auto cells = solver.set_cells(g, model);
  EXPECT_TRUE(cells.ok()) << cells.message;
  IterativeResult result;
  result.summary = solver.solve(v, result.i_out);
  return result;
}

}  // namespace

TEST(IterativeSolver, MatchesDirectSolverOnRandomArrays) {
  core::RandomStream rng(31, "iterative");
  // Square, non-square, single cells, single lines, row counts that fill the 8-row tiles partly;
  // batches of 1, 2, 3, 8 and 13 vectors (chunks of 2, 4 and 8 lanes, some of them idle).
  const std::vector<std::pair<int, int>> shapes = {{1, 1}, {1, 9}, {11, 1}, {3, 8},  {9, 4},
                                                   {12, 12}, {5, 17}, {17, 5}, {20, 33}};
  const std::vector<int> batches = {1, 2, 3, 8, 13};
  int case_index = 0;
  for (const auto& [rows, cols] : shapes) {
    for (int trial = 0; trial < 2; ++trial, ++case_index) {
      const WireOptions w = random_wires(rng);
      const Eigen::MatrixXd g = random_conductances(rows, cols, 1e-7, 1e-3, rng);
      const Eigen::MatrixXd v = random_voltages(rows, batches[case_index % batches.size()], 0.3, rng);
      const Eigen::MatrixXd expected = direct_currents(g, w, v);
      // The residual is relative to ||b||, which the sources' conductance dominates (up to 100 S
      // here against mS cells): the currents' error is a few hundred times tol at worst.
      for (double tol : {1e-10, 1e-12}) {
        const IterativeResult r = iterative_currents(g, w, v, tol);
        ASSERT_TRUE(r.summary.ok()) << r.summary.message;
        EXPECT_EQ(r.summary.method, "iterative");
        EXPECT_LE(r.summary.residual, tol);
        EXPECT_LT(max_relative_error(r.i_out, expected), tol == 1e-10 ? 1e-6 : 1e-9)
            << rows << "x" << cols << " tol " << tol << " wires " << w.r_wl_segment << " " << w.r_bl_segment << " "
            << w.r_source << " " << w.r_sense;
      }
    }
  }
}

TEST(IterativeSolver, ZeroResistancesAreExactMergesAndFixedNodes) {
  core::RandomStream rng(32, "zero wires");
  // Every subset of the four wires set to zero, the others random.
  for (int mask = 1; mask < 16; ++mask) {
    for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{7, 5}, {1, 4}, {10, 1}}) {
      WireOptions w = random_wires(rng);
      if (mask & 1) w.r_wl_segment = 0;
      if (mask & 2) w.r_bl_segment = 0;
      if (mask & 4) w.r_source = 0;
      if (mask & 8) w.r_sense = 0;
      const Eigen::MatrixXd g = random_conductances(rows, cols, 1e-6, 1e-3, rng);
      const Eigen::MatrixXd v = random_voltages(rows, 3, 0.3, rng);
      const IterativeResult r = iterative_currents(g, w, v, 1e-12);
      ASSERT_TRUE(r.summary.ok()) << r.summary.message << " mask " << mask;
      EXPECT_LE(r.summary.residual, 1e-12);
      EXPECT_LT(max_relative_error(r.i_out, direct_currents(g, w, v)), 1e-9)
          << "mask " << mask << " " << rows << "x" << cols;
    }
  }
  // All four zero: the ideal product, with no unknowns at all.
  const Eigen::MatrixXd g = random_conductances(9, 6, 1e-7, 1e-3, rng);
  const Eigen::MatrixXd v = random_voltages(9, 4, 0.3, rng);
  const IterativeResult r = iterative_currents(g, WireOptions{0, 0, 0, 0}, v, 1e-10);
  ASSERT_TRUE(r.summary.ok()) << r.summary.message;
  EXPECT_EQ(r.summary.iterations, 0);
  EXPECT_LT(max_relative_error(r.i_out, circuits::ideal_currents(g, v)), 1e-15);
}

TEST(IterativeSolver, OpenWiresAndZeroCellsMatchTheDirectSolver) {
  core::RandomStream rng(33, "open wires");
  const double open = std::numeric_limits<double>::infinity();
  // An open word-line segment splits every word line into single nodes; an open bit-line segment
  // every bit line; an open sense resistor leaves the bit lines connected only through the cells
  // (all currents 0); open sources drive nothing (all currents exactly 0). A cell of conductance 0
  // is open.
  for (const WireOptions& w : {WireOptions{open, 2.0, 5.0, 5.0}, WireOptions{2.0, open, 5.0, 5.0},
                               WireOptions{3.0, 2.0, 0.0, open}, WireOptions{3.0, 2.0, open, 4.0}}) {
    Eigen::MatrixXd g = random_conductances(6, 7, 1e-6, 1e-3, rng);
    if (!std::isinf(w.r_wl_segment) && !std::isinf(w.r_bl_segment)) g(2, 3) = 0;
    const Eigen::MatrixXd v = random_voltages(6, 3, 0.3, rng);
    const IterativeResult r = iterative_currents(g, w, v, 1e-12);
    ASSERT_TRUE(r.summary.ok()) << r.summary.message;
    const Eigen::MatrixXd expected = direct_currents(g, w, v);
    if (std::isinf(w.r_sense))  // nothing reaches the virtual ground: currents at rounding level
      EXPECT_LT(r.i_out.cwiseAbs().maxCoeff(), 1e-9 * g.maxCoeff() * 0.3);
    else
      EXPECT_LT(max_relative_error(r.i_out, expected), 1e-9);
  }
}

TEST(IterativeSolver, AccessTransistorsAddTheirOnResistanceInSeries) {
  core::RandomStream rng(34, "1t1r");
  const WireOptions w{2.5, 2.5, 10, 10};
  const Eigen::MatrixXd g = random_conductances(16, 12, 1e-6, 2.5e-5, rng);
  const Eigen::MatrixXd v = random_voltages(16, 5, 0.2, rng);
  const CellModel transistor{nullptr, 2000.0};
  const IterativeResult r = iterative_currents(g, w, v, 1e-12, transistor);
  ASSERT_TRUE(r.summary.ok()) << r.summary.message;
  EXPECT_LT(max_relative_error(r.i_out, direct_currents(g, w, v, transistor)), 1e-9);
}

TEST(IterativeSolver, LargeWireResistanceStillConvergesToTheExactSolution) {
  // 100 ohm per segment and 1 mS cells: the lines are far from ideal and the preconditioner far
  // from exact.
  core::RandomStream rng(35, "hard");
  const WireOptions w{100, 100, 100, 100};
  const Eigen::MatrixXd g = random_conductances(40, 30, 1e-4, 1e-3, rng);
  const Eigen::MatrixXd v = random_voltages(40, 4, 0.3, rng);
  const IterativeResult r = iterative_currents(g, w, v, 1e-12);
  ASSERT_TRUE(r.summary.ok()) << r.summary.message;
  EXPECT_GT(r.summary.iterations, 5);
  EXPECT_LT(max_relative_error(r.i_out, direct_currents(g, w, v)), 1e-9);
}

TEST(IterativeSolver, CellVoltageProbeMatchesTheDirectSolverAndKirchhoff) {
  core::RandomStream rng(36, "probe");
  const WireOptions w{2, 3, 5, 4};
  const Eigen::MatrixXd g = random_conductances(11, 9, 1e-6, 1e-4, rng);
  const Eigen::MatrixXd v = random_voltages(11, 10, 0.3, rng);
  DirectSolver direct(11, 9, w);
  ASSERT_TRUE(direct.set_conductances(g).ok());
  Eigen::MatrixXd i_direct, v_direct;
  ASSERT_TRUE(direct.solve(v, i_direct, &v_direct, 9).ok());
  IterativeSolver solver(11, 9, w, 1e-12, 1000, true);
  ASSERT_TRUE(solver.set_conductances(g).ok());
  Eigen::MatrixXd i_out, v_cell;
  ASSERT_TRUE(solver.solve(v, i_out, &v_cell, 9).ok());
  ASSERT_EQ(v_cell.rows(), 11);
  ASSERT_EQ(v_cell.cols(), 9);
  EXPECT_LT(max_relative_error(v_cell, v_direct), 1e-9);
  for (int j = 0; j < 9; ++j)
    EXPECT_NEAR((g.col(j).array() * v_cell.col(j).array()).sum(), i_out(j, 9), 1e-9 * i_out.cwiseAbs().maxCoeff());
}

TEST(IterativeSolver, WarmStartAfterASmallChangeTakesFewerIterationsAndAgrees) {
  core::RandomStream rng(37, "warm");
  const WireOptions w{4, 4, 4, 4};
  const int n = 48;
  Eigen::MatrixXd g(n, n);
  for (int k = 0; k < n * n; ++k) g(k / n, k % n) = rng.uniform(1e-6, 25e-6);
  Eigen::MatrixXd changed = g;
  for (int k = 0; k < n * n; ++k) changed(k / n, k % n) *= 1 + 0.01 * rng.normal();
  const Eigen::MatrixXd v = random_voltages(n, 12, 0.2, rng);

  IterativeSolver solver(n, n, w, 1e-12, 1000, true);
  Eigen::MatrixXd i_first, i_warm, i_cold;
  ASSERT_TRUE(solver.set_conductances(g).ok());
  const auto first = solver.solve(v, i_first);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(solver.set_conductances(changed).ok());
  const auto warm = solver.solve(v, i_warm);
  ASSERT_TRUE(warm.ok());
  solver.reset_warm_start();
  const auto cold = solver.solve(v, i_cold);
  ASSERT_TRUE(cold.ok());
  EXPECT_LT(warm.iterations, cold.iterations);
  EXPECT_EQ(cold.iterations, first.iterations);
  EXPECT_LT(max_relative_error(i_warm, i_cold), 1e-10);
  EXPECT_LT(max_relative_error(i_warm, direct_currents(changed, w, v)), 1e-10);
  // Unchanged conductances: the previous solution already satisfies the tolerance.
  const auto again = solver.solve(v, i_warm);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.iterations, 0);
  // Without warm starts every solve is cold; a different batch size starts cold as well.
  IterativeSolver no_warm(n, n, w, 1e-12, 1000, false);
  ASSERT_TRUE(no_warm.set_conductances(changed).ok());
  EXPECT_EQ(no_warm.solve(v, i_warm).iterations, cold.iterations);
  EXPECT_EQ(no_warm.solve(v, i_warm).iterations, cold.iterations);
  EXPECT_GT(solver.solve(v.leftCols(5), i_warm).iterations, 0);
}

TEST(IterativeSolver, BatchEqualsColumnByColumn) {
  core::RandomStream rng(38, "columns");
  const WireOptions w{1.5, 2.5, 10, 10};
  const Eigen::MatrixXd g = random_conductances(10, 8, 1e-6, 1e-4, rng);
  const Eigen::MatrixXd v = random_voltages(10, 11, 0.3, rng);
  const Eigen::MatrixXd batch = iterative_currents(g, w, v, 1e-13).i_out;
  for (int b = 0; b < 11; ++b)
    EXPECT_LT(max_relative_error(iterative_currents(g, w, v.col(b), 1e-13).i_out, batch.col(b)), 1e-11);
  // A zero input gives zero currents, exactly.
  Eigen::MatrixXd zero = v;
  zero.col(3).setZero();
  const IterativeResult r = iterative_currents(g, w, zero, 1e-13);
  ASSERT_TRUE(r.summary.ok());
  EXPECT_TRUE(r.i_out.col(3).isZero(0));
}

TEST(IterativeSolver, TooSmallIterationBudgetIsAStatusNotASilentResult) {
  core::RandomStream rng(39, "budget");
  const WireOptions w{50, 50, 50, 50};
  const Eigen::MatrixXd g = random_conductances(20, 20, 1e-4, 1e-3, rng);
  const IterativeResult r = iterative_currents(g, w, random_voltages(20, 3, 0.3, rng), 1e-12, {}, 2);
  EXPECT_EQ(r.summary.status, core::SolveStatus::not_converged);
  EXPECT_THAT(r.summary.message, testing::HasSubstr("did not converge in 2 iterations"));
  EXPECT_EQ(r.summary.iterations, 2);
  EXPECT_GT(r.summary.residual, 1e-12);
}

TEST(IterativeSolver, BadInputsGiveStatusesWithMessages) {
  const WireOptions w{1, 1, 1, 1};
  IterativeSolver solver(2, 3, w, 1e-10, 100, true);
  Eigen::MatrixXd i_out;
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(2, 1), i_out).ok());  // no conductances yet
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(2, 3, 1e-5);
  g(1, 2) = std::numeric_limits<double>::quiet_NaN();
  auto summary = solver.set_conductances(g);
  EXPECT_EQ(summary.status, core::SolveStatus::non_finite);
  EXPECT_THAT(summary.message, testing::HasSubstr("cell (1,2)"));
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(2, 1), i_out).ok());
  g(1, 2) = -1e-6;
  EXPECT_EQ(solver.set_conductances(g).status, core::SolveStatus::non_finite);
  EXPECT_EQ(solver.set_conductances(Eigen::MatrixXd::Ones(3, 3)).status, core::SolveStatus::singular);
  g(1, 2) = 1e-5;
  ASSERT_TRUE(solver.set_conductances(g).ok());
  Eigen::MatrixXd v = Eigen::MatrixXd::Ones(2, 2);
  v(0, 1) = std::numeric_limits<double>::infinity();
  EXPECT_EQ(solver.solve(v, i_out).status, core::SolveStatus::non_finite);
  EXPECT_EQ(solver.solve(Eigen::MatrixXd::Ones(3, 1), i_out).status, core::SolveStatus::non_finite);
  Eigen::MatrixXd v_cell;
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(2, 2), i_out, &v_cell, 2).ok());  // probe outside the batch
  EXPECT_TRUE(solver.solve(Eigen::MatrixXd::Ones(2, 2), i_out).ok());
}

TEST(IterativeSolver, FloatingNodesGiveSingularStatusNamingANode) {
  const WireOptions w{1.0, 1.0, std::numeric_limits<double>::infinity(), 1.0};
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(3, 4, 1e-5);
  g.row(1).setZero();
  IterativeSolver solver(3, 4, w, 1e-10, 100, true);
  const auto summary = solver.set_conductances(g);
  EXPECT_EQ(summary.status, core::SolveStatus::singular);
  EXPECT_THAT(summary.message, testing::HasSubstr("w(1,"));
  Eigen::MatrixXd i_out;
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(3, 1), i_out).ok());
}

TEST(IterativeSolver, NonlinearCellsAgreeWithTheDirectNewton) {
  const SinhIv iv(0.25, 0.1);
  core::RandomStream rng(40, "newton");
  for (double r_access : {0.0, 3000.0}) {
    for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{4, 7}, {9, 3}, {12, 12}, {1, 1}}) {
      const WireOptions w{rng.uniform(0.5, 20), rng.uniform(0.5, 20), rng.uniform(1, 50), rng.uniform(1, 50)};
      const Eigen::MatrixXd g = random_conductances(rows, cols, 5e-6, 2e-4, rng);
      const Eigen::MatrixXd v = random_voltages(rows, 5, 0.6, rng);  // well into the sinh's nonlinearity
      const CellModel model{&iv, r_access};
      const IterativeResult r = iterative_currents(g, w, v, 1e-12, model);
      ASSERT_TRUE(r.summary.ok()) << r.summary.message;
      EXPECT_GT(r.summary.iterations, 2);
      EXPECT_LE(r.summary.residual, 1e-12);
      EXPECT_LT(max_relative_error(r.i_out, direct_currents(g, w, v, model, 1e-12)), 1e-8)
          << rows << "x" << cols << " r_access " << r_access;
    }
  }
}

TEST(IterativeSolver, NonlinearCellsWithZeroWiresMatchTheDirectNewton) {
  const SinhIv iv(0.25, 0.1);
  core::RandomStream rng(41, "newton zero");
  for (int mask : {1, 2, 4, 8, 5, 10, 15}) {
    WireOptions w{3, 4, 10, 8};
    if (mask & 1) w.r_wl_segment = 0;
    if (mask & 2) w.r_bl_segment = 0;
    if (mask & 4) w.r_source = 0;
    if (mask & 8) w.r_sense = 0;
    const Eigen::MatrixXd g = random_conductances(6, 5, 5e-6, 2e-4, rng);
    const Eigen::MatrixXd v = random_voltages(6, 3, 0.5, rng);
    const CellModel model{&iv, 1000.0};
    const IterativeResult r = iterative_currents(g, w, v, 1e-12, model);
    ASSERT_TRUE(r.summary.ok()) << r.summary.message << " mask " << mask;
    EXPECT_LT(max_relative_error(r.i_out, direct_currents(g, w, v, model, 1e-12)), 1e-8) << "mask " << mask;
  }
}

TEST(IterativeSolver, ANewtonFailureIsAStatusNotASilentResult) {
  // The second vector drives cells beyond the model's range: its status says so; the first is fine.
  const BrokenIv iv;
  core::RandomStream rng(42, "broken");
  IterativeSolver solver(4, 3, WireOptions{1, 1, 1, 1}, 1e-12, 1000, true);
  ASSERT_TRUE(solver.set_cells(random_conductances(4, 3, 1e-5, 1e-4, rng), CellModel{&iv, 0.0}).ok());
  Eigen::MatrixXd v(4, 2);
  v.col(0).setConstant(0.1);
  v.col(1).setConstant(0.5);
  Eigen::MatrixXd i_out;
  const auto summary = solver.solve(v, i_out);
  EXPECT_EQ(summary.status, core::SolveStatus::non_finite);
  EXPECT_THAT(summary.message, testing::HasSubstr("input vector 1"));
  EXPECT_TRUE(i_out.col(0).allFinite());
}

TEST(IterativeSolver, ResultIsBitwiseTheSameForAnyThreadCount) {
  const SinhIv iv(0.25, 0.1);
  core::RandomStream rng(43, "threads");
  const WireOptions w{1, 2, 3, 4};
  const Eigen::MatrixXd g = random_conductances(37, 29, 1e-6, 1e-4, rng);
  // 5 vectors: one chunk, parallel over its lines; 21 vectors: chunks in parallel.
  for (int batch : {5, 21}) {
    const Eigen::MatrixXd v = random_voltages(37, batch, 0.3, rng);
    for (const CellModel& model : {CellModel{}, CellModel{&iv, 500.0}}) {
      Eigen::MatrixXd results[2], probes[2];
      for (int threads : {1, 2}) {
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
        IterativeSolver solver(37, 29, w, 1e-11, 1000, true);
        ASSERT_TRUE(solver.set_cells(g, model).ok());
        ASSERT_TRUE(solver.solve(v, results[threads - 1], &probes[threads - 1], batch - 1).ok());
      }
      EXPECT_TRUE(results[0] == results[1]) << "batch " << batch << (model.linear() ? " linear" : " nonlinear");
      EXPECT_TRUE(probes[0] == probes[1]);
    }
  }
}
