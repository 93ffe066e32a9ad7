// The effective-matrix solver against the direct (sparse Cholesky) reference solver.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "circuits/direct_solver.hpp"
#include "circuits/effective_solver.hpp"
#include "core/random.hpp"

using namespace xbar;
using circuits::CellModel;
using circuits::DirectSolver;
using circuits::EffectiveSolver;
using core::WireOptions;

namespace {

double log_uniform(core::RandomStream& rng, double lo, double hi) {
  return std::exp(rng.uniform(std::log(lo), std::log(hi)));
}

Eigen::MatrixXd random_conductances(int rows, int cols, core::RandomStream& rng, double lo = 1e-6, double hi = 25e-6) {
  Eigen::MatrixXd g(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) g(i, j) = log_uniform(rng, lo, hi);
  return g;
}

Eigen::MatrixXd random_voltages(int rows, int batch, core::RandomStream& rng) {
  Eigen::MatrixXd v(rows, batch);
  for (int i = 0; i < rows; ++i)
    for (int b = 0; b < batch; ++b) v(i, b) = rng.uniform(-0.3, 0.3);
  return v;
}

// Wire resistances log-uniform over 0.01-100 ohm; `zero` (bits: wl, bl, source, sense) sets some to 0.
WireOptions random_wires(core::RandomStream& rng, int zero = 0) {
  WireOptions w;
  w.r_wl_segment = (zero & 1) ? 0.0 : log_uniform(rng, 0.01, 100);
  w.r_bl_segment = (zero & 2) ? 0.0 : log_uniform(rng, 0.01, 100);
  w.r_source = (zero & 4) ? 0.0 : log_uniform(rng, 0.01, 100);
  w.r_sense = (zero & 8) ? 0.0 : log_uniform(rng, 0.01, 100);
  return w;
}

double max_relative_error(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected) {
  const double scale = expected.cwiseAbs().maxCoeff();
  return (actual - expected).cwiseAbs().maxCoeff() / scale;
}

Eigen::MatrixXd direct_currents(const Eigen::MatrixXd& g, const WireOptions& w, const Eigen::MatrixXd& v,
                                const CellModel& model = {}, Eigen::MatrixXd* v_cell = nullptr, int probe = 0) {
  DirectSolver solver(static_cast<int>(g.rows()), static_cast<int>(g.cols()), w);
  const auto factor = solver.set_cells(g, model);
  EXPECT_TRUE(factor.ok()) << factor.message;
  Eigen::MatrixXd i_out;
  const auto summary = solver.solve(v, i_out, v_cell, probe);
  EXPECT_TRUE(summary.ok()) << summary.message;
  return i_out;
}

Eigen::MatrixXd effective_currents(const Eigen::MatrixXd& g, const WireOptions& w, const Eigen::MatrixXd& v,
                                   const CellModel& model = {}) {
  EffectiveSolver solver(static_cast<int>(g.rows()), static_cast<int>(g.cols()), w);
  const auto build = solver.set_cells(g, model);
  EXPECT_TRUE(build.ok()) << build.message;
  EXPECT_LT(build.residual, 1e-10);
  Eigen::MatrixXd i_out;
  const auto summary = solver.solve(v, i_out);
  EXPECT_TRUE(summary.ok()) << summary.message;
  EXPECT_EQ(summary.method, "effective");
  return i_out;
}

std::string describe(const WireOptions& w) {
  char text[160];
  std::snprintf(text, sizeof text, "r_wl=%g r_bl=%g r_source=%g r_sense=%g", w.r_wl_segment, w.r_bl_segment,
                w.r_source, w.r_sense);
  return text;
}

}  // namespace

TEST(EffectiveSolver, MatchesDirectSolverOnRandomNonSquareArrays) {
  core::RandomStream rng(11, "effective-random");
  const int shapes[][2] = {{1, 1}, {1, 9}, {9, 1}, {2, 3}, {5, 3}, {12, 9}, {17, 31}, {40, 70}};
  for (const auto& shape : shapes)
    for (int trial = 0; trial < 3; ++trial) {
      const int rows = shape[0], cols = shape[1];
      const WireOptions w = random_wires(rng);
      const Eigen::MatrixXd g = random_conductances(rows, cols, rng);
      const Eigen::MatrixXd v = random_voltages(rows, 5, rng);
      EXPECT_LT(max_relative_error(effective_currents(g, w, v), direct_currents(g, w, v)), 1e-9)
          << rows << "x" << cols << " " << describe(w);
    }
}

TEST(EffectiveSolver, ZeroResistancesInEveryCombinationMatchDirectSolver) {
  core::RandomStream rng(12, "effective-zeros");
  const int shapes[][2] = {{1, 1}, {1, 6}, {6, 1}, {7, 11}, {11, 7}, {24, 20}};
  for (int zero = 0; zero < 16; ++zero)
    for (const auto& shape : shapes) {
      const WireOptions w = random_wires(rng, zero);
      const Eigen::MatrixXd g = random_conductances(shape[0], shape[1], rng);
      const Eigen::MatrixXd v = random_voltages(shape[0], 4, rng);
      EXPECT_LT(max_relative_error(effective_currents(g, w, v), direct_currents(g, w, v)), 1e-9)
          << shape[0] << "x" << shape[1] << " " << describe(w);
    }
}

TEST(EffectiveSolver, AllZeroWiresGiveExactlyTheIdealProduct) {
  core::RandomStream rng(13, "effective-ideal");
  const Eigen::MatrixXd g = random_conductances(9, 14, rng);
  const Eigen::MatrixXd v = random_voltages(9, 6, rng);
  EffectiveSolver solver(9, 14, WireOptions{});
  ASSERT_TRUE(solver.set_conductances(g).ok());
  EXPECT_LT(max_relative_error(solver.matrix(), g.transpose()), 1e-15);
  Eigen::MatrixXd i_out;
  ASSERT_TRUE(solver.solve(v, i_out).ok());
  EXPECT_LT(max_relative_error(i_out, circuits::ideal_currents(g, v)), 1e-15);
}

TEST(EffectiveSolver, AccessResistanceIsInSeriesWithTheDevice) {
  core::RandomStream rng(14, "effective-1t1r");
  for (int zero : {0, 4, 8, 12, 15}) {
    const WireOptions w = random_wires(rng, zero);
    const Eigen::MatrixXd g = random_conductances(13, 8, rng, 1e-6, 1e-4);
    const Eigen::MatrixXd v = random_voltages(13, 3, rng);
    const CellModel model{nullptr, 5e3};
    const Eigen::MatrixXd expected = direct_currents(g, w, v, model);
    EXPECT_LT(max_relative_error(effective_currents(g, w, v, model), expected), 1e-9) << describe(w);
    // Not the 1R answer: the access resistance matters.
    EXPECT_GT(max_relative_error(effective_currents(g, w, v), expected), 1e-3);
  }
}

TEST(EffectiveSolver, MatrixColumnsAreDirectSolvesOfUnitInputs) {
  core::RandomStream rng(15, "effective-columns");
  for (int zero : {0, 1, 2, 4, 5, 8, 10, 15}) {
    const int rows = 10, cols = 7;
    const WireOptions w = random_wires(rng, zero);
    const Eigen::MatrixXd g = random_conductances(rows, cols, rng);
    EffectiveSolver solver(rows, cols, w);
    ASSERT_TRUE(solver.set_conductances(g).ok());
    ASSERT_EQ(solver.matrix().rows(), cols);
    ASSERT_EQ(solver.matrix().cols(), rows);
    const Eigen::MatrixXd unit = Eigen::MatrixXd::Identity(rows, rows);
    EXPECT_LT(max_relative_error(solver.matrix(), direct_currents(g, w, unit)), 1e-10) << describe(w);
    // A crossbar's M is entrywise non-negative: raising one row's voltage never lowers a current.
    EXPECT_GE(solver.matrix().minCoeff(), -1e-12 * solver.matrix().maxCoeff());
  }
}

TEST(EffectiveSolver, ProbeGivesTheDirectSolversCellVoltagesAndASmallResidual) {
  core::RandomStream rng(16, "effective-probe");
  for (int zero : {0, 3, 12}) {
    const WireOptions w = random_wires(rng, zero);
    const Eigen::MatrixXd g = random_conductances(8, 11, rng);
    const Eigen::MatrixXd v = random_voltages(8, 4, rng);
    Eigen::MatrixXd expected_cells;
    const Eigen::MatrixXd expected = direct_currents(g, w, v, {}, &expected_cells, 2);
    EffectiveSolver solver(8, 11, w);
    ASSERT_TRUE(solver.set_conductances(g).ok());
    Eigen::MatrixXd i_out, v_cell;
    const auto summary = solver.solve(v, i_out, &v_cell, 2);
    ASSERT_TRUE(summary.ok()) << summary.message;
    EXPECT_EQ(summary.iterations, 1);
    EXPECT_LT(summary.residual, 1e-10);
    EXPECT_LT(max_relative_error(i_out, expected), 1e-9);
    ASSERT_EQ(v_cell.rows(), 8);
    ASSERT_EQ(v_cell.cols(), 11);
    EXPECT_LT(max_relative_error(v_cell, expected_cells), 1e-9) << describe(w);
  }
}

TEST(EffectiveSolver, ExactAgainstDirectSolverAt256By256) {
  core::RandomStream rng(17, "effective-256");
  const WireOptions w{2.0, 1.5, 1.0, 2.5};
  const Eigen::MatrixXd g = random_conductances(256, 256, rng);
  const Eigen::MatrixXd v = random_voltages(256, 8, rng);
  EXPECT_LT(max_relative_error(effective_currents(g, w, v), direct_currents(g, w, v)), 1e-9);
}

TEST(EffectiveSolver, NonlinearCellModelIsAStatusNotACrash) {
  class Cubic final : public devices::CellIv {
   public:
    void current(double g, double v, double& i, double& di_dv) const override {
      i = g * (v + v * v * v);
      di_dv = g * (1 + 3 * v * v);
    }
    std::string spice_current(double, const std::string&) const override { return ""; }
  } cubic;
  EffectiveSolver solver(3, 4, WireOptions{1, 1, 1, 1});
  const auto summary = solver.set_cells(Eigen::MatrixXd::Constant(3, 4, 1e-5), CellModel{&cubic, 0.0});
  EXPECT_FALSE(summary.ok());
  EXPECT_THAT(summary.message, testing::HasSubstr("linear cells"));
  Eigen::MatrixXd i_out;
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(3, 1), i_out).ok());
}

TEST(EffectiveSolver, NonFiniteOrNegativeConductanceIsAnErrorNotNaN) {
  EffectiveSolver solver(2, 3, WireOptions{1, 1, 1, 1});
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(2, 3, 1e-5);
  g(1, 2) = std::numeric_limits<double>::quiet_NaN();
  auto summary = solver.set_conductances(g);
  EXPECT_EQ(summary.status, core::SolveStatus::non_finite);
  EXPECT_THAT(summary.message, testing::HasSubstr("cell (1,2)"));
  g(1, 2) = std::numeric_limits<double>::infinity();
  EXPECT_EQ(solver.set_conductances(g).status, core::SolveStatus::non_finite);
  g(1, 2) = -1e-6;
  EXPECT_EQ(solver.set_conductances(g).status, core::SolveStatus::non_finite);
  Eigen::MatrixXd i_out;
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(2, 1), i_out).ok());
  g(1, 2) = 1e-5;
  ASSERT_TRUE(solver.set_conductances(g).ok());
  Eigen::MatrixXd v = Eigen::MatrixXd::Ones(2, 1);
  v(0, 0) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(solver.solve(v, i_out).status, core::SolveStatus::non_finite);
  EXPECT_EQ(solver.solve(Eigen::MatrixXd::Ones(3, 1), i_out).status, core::SolveStatus::non_finite);
}

TEST(EffectiveSolver, FloatingCircuitIsASingularStatusNamingANode) {
  // An open source resistance and a row of open cells leave that row's word line floating.
  const WireOptions w{1.0, 1.0, std::numeric_limits<double>::infinity(), 1.0};
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(3, 4, 1e-5);
  g.row(1).setZero();
  EffectiveSolver solver(3, 4, w);
  const auto summary = solver.set_conductances(g);
  EXPECT_EQ(summary.status, core::SolveStatus::singular);
  EXPECT_THAT(summary.message, testing::HasSubstr("w(1,"));
  EXPECT_THAT(summary.message, testing::HasSubstr("no conducting path"));
  Eigen::MatrixXd i_out;
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(3, 1), i_out).ok());
}

TEST(EffectiveSolver, ResultDoesNotDependOnTheThreadCount) {
  core::RandomStream rng(18, "effective-threads");
  const Eigen::MatrixXd g = random_conductances(30, 45, rng);
  const Eigen::MatrixXd v = random_voltages(30, 16, rng);
  for (int zero : {0, 5, 10}) {
    const WireOptions w = random_wires(rng, zero);
    Eigen::MatrixXd one, two, m_one, m_two;
    for (int threads : {1, 2}) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
      EffectiveSolver solver(30, 45, w);
      ASSERT_TRUE(solver.set_conductances(g).ok());
      ASSERT_TRUE(solver.solve(v, threads == 1 ? one : two).ok());
      (threads == 1 ? m_one : m_two) = solver.matrix();
    }
    EXPECT_TRUE(one == two) << describe(w);
    EXPECT_TRUE(m_one == m_two) << describe(w);
  }
}

// Long thin arrays take the columns mode (solves per input or per output, on a simplicial or, for
// 300x30 and 36x500, a supernodal factor) rather than the dense port block.
TEST(EffectiveSolver, LongThinArraysMatchDirectSolver) {
  core::RandomStream rng(19, "effective-thin");
  const int shapes[][2] = {{1, 400}, {400, 1}, {3, 300}, {300, 3}, {8, 160}, {160, 8}, {300, 30}, {36, 500}};
  for (const auto& shape : shapes)
    for (int zero : {0, 12}) {
      const WireOptions w = random_wires(rng, zero);
      const Eigen::MatrixXd g = random_conductances(shape[0], shape[1], rng);
      const Eigen::MatrixXd v = random_voltages(shape[0], 3, rng);
      EXPECT_LT(max_relative_error(effective_currents(g, w, v), direct_currents(g, w, v)), 1e-9)
          << shape[0] << "x" << shape[1] << " " << describe(w);
    }
}

// The claims the ports mode rests on, checked with dense algebra on the nodal system itself:
// S is what rhs() applies; the output currents are the sense currents (Kirchhoff); with the ports
// ordered last, the trailing block of the Cholesky factor gives the Schur complement and the
// ports' block of A^-1; M = Cx_p (L_pp L_pp')^-1 S_p.
TEST(EffectiveSolver, PortBlockOfTheCholeskyFactorGivesTheEffectiveMatrix) {
  core::RandomStream rng(20, "effective-schur");
  const int rows = 6, cols = 5;
  const WireOptions w = random_wires(rng);
  const Eigen::MatrixXd g = random_conductances(rows, cols, rng);
  circuits::NodalSystem system(rows, cols, w);
  system.refill(g);
  const int n = system.unknowns();
  ASSERT_EQ(n, 2 * rows * cols);
  const Eigen::SparseMatrix<double> a_full = system.matrix().selfadjointView<Eigen::Lower>();
  const Eigen::MatrixXd a(a_full);
  const Eigen::MatrixXd s = Eigen::MatrixXd(system.source_coupling());
  const Eigen::MatrixXd v = random_voltages(rows, 3, rng);
  EXPECT_LT((s * v - system.rhs(v)).cwiseAbs().maxCoeff(), 1e-15 * system.rhs(v).cwiseAbs().maxCoeff());

  // Ports: the word-line nodes the sources drive, the bit-line nodes above the sense resistors.
  std::vector<int> ports, interior;
  std::vector<char> is_port(n, 0);
  for (int i = 0; i < rows; ++i) is_port[system.node(system.wl_node(i, 0)).index] = 1;
  for (int j = 0; j < cols; ++j) is_port[system.node(system.bl_node(rows - 1, j)).index] = 1;
  for (int u = 0; u < n; ++u) (is_port[u] ? ports : interior).push_back(u);
  const int p = static_cast<int>(ports.size()), ni = n - p;
  ASSERT_EQ(p, rows + cols);
  for (int u = 0; u < n; ++u) {
    if (!is_port[u]) {
      EXPECT_EQ(s.row(u).cwiseAbs().maxCoeff(), 0.0);  // S touches ports only
    }
  }

  // Kirchhoff: the column currents are the currents through the sense resistors.
  const Eigen::MatrixXd x = a.llt().solve(s * v);
  const Eigen::MatrixXd i_cells = system.column_currents(x, v, g, nullptr, 0);
  Eigen::MatrixXd cx = Eigen::MatrixXd::Zero(cols, n);
  for (int j = 0; j < cols; ++j) cx(j, system.node(system.bl_node(rows - 1, j)).index) = 1 / w.r_sense;
  EXPECT_LT(max_relative_error(cx * x, i_cells), 1e-12);

  std::vector<int> order = interior;
  order.insert(order.end(), ports.begin(), ports.end());
  Eigen::MatrixXd ap(n, n), sp(n, rows), cxp(cols, n);
  for (int k = 0; k < n; ++k) {
    for (int l = 0; l < n; ++l) ap(k, l) = a(order[k], order[l]);
    sp.row(k) = s.row(order[k]);
    cxp.col(k) = cx.col(order[k]);
  }
  const Eigen::MatrixXd l = ap.llt().matrixL();
  const Eigen::MatrixXd l_pp = l.bottomRightCorner(p, p);
  const Eigen::MatrixXd schur = ap.bottomRightCorner(p, p) - ap.bottomLeftCorner(p, ni) *
                                                                 ap.topLeftCorner(ni, ni).llt().solve(
                                                                     ap.topRightCorner(ni, p));
  EXPECT_LT(max_relative_error(l_pp * l_pp.transpose(), schur), 1e-12);
  const Eigen::MatrixXd inverse_pp = ap.inverse().bottomRightCorner(p, p);
  EXPECT_LT(max_relative_error((l_pp * l_pp.transpose()).inverse(), inverse_pp), 1e-10);
  const Eigen::MatrixXd m = cxp.rightCols(p) * (l_pp * l_pp.transpose()).llt().solve(sp.bottomRows(p));

  EffectiveSolver solver(rows, cols, w);
  ASSERT_TRUE(solver.set_conductances(g).ok());
  EXPECT_LT(max_relative_error(solver.matrix(), m), 1e-10);
  EXPECT_LT(max_relative_error(m * v, i_cells), 1e-10);
}

TEST(EffectiveSolver, SourceCouplingIsTheRightHandSideMapWithAFixedPattern) {
  core::RandomStream rng(21, "effective-coupling");
  for (int zero = 0; zero < 16; ++zero) {
    const WireOptions w = random_wires(rng, zero);
    circuits::NodalSystem system(5, 7, w);
    const Eigen::Index pattern = system.source_coupling().nonZeros();  // before any conductances
    system.refill(circuits::series_conductance(random_conductances(5, 7, rng), 2e3));
    const Eigen::SparseMatrix<double> s = system.source_coupling();
    EXPECT_EQ(s.nonZeros(), pattern) << describe(w);
    ASSERT_EQ(s.rows(), system.unknowns());
    ASSERT_EQ(s.cols(), 5);
    const Eigen::MatrixXd v = random_voltages(5, 3, rng);
    if (system.unknowns() > 0) {
      EXPECT_LT((s * v - system.rhs(v)).cwiseAbs().maxCoeff(), 1e-15 * system.rhs(v).cwiseAbs().maxCoeff())
          << describe(w);
    }
  }
}
