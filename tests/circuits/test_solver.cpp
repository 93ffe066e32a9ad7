// The direct solver against closed forms and an independent dense nodal analysis.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "circuits/direct_solver.hpp"
#include "core/random.hpp"

using namespace xbar;
using circuits::DirectSolver;
using core::WireOptions;

namespace {

// Dense reference: every physical node an unknown (all wire resistances must be > 0), stamped
// element by element, solved by LU. Independent of NodalSystem's merging and sparse storage.
Eigen::MatrixXd dense_reference(const Eigen::MatrixXd& g_cell, const WireOptions& w, const Eigen::MatrixXd& v_in) {
  const int rows = static_cast<int>(g_cell.rows()), cols = static_cast<int>(g_cell.cols());
  const int n = 2 * rows * cols;
  auto wl = [&](int i, int j) { return i * cols + j; };
  auto bl = [&](int i, int j) { return rows * cols + i * cols + j; };
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(n, n);
  Eigen::MatrixXd b = Eigen::MatrixXd::Zero(n, v_in.cols());
  auto between = [&](int p, int q, double g) {
    a(p, p) += g;
    a(q, q) += g;
    a(p, q) -= g;
    a(q, p) -= g;
  };
  for (int i = 0; i < rows; ++i) {
    a(wl(i, 0), wl(i, 0)) += 1 / w.r_source;
    b.row(wl(i, 0)) += v_in.row(i) / w.r_source;
    for (int j = 0; j + 1 < cols; ++j) between(wl(i, j), wl(i, j + 1), 1 / w.r_wl_segment);
  }
  for (int j = 0; j < cols; ++j) {
    for (int i = 0; i + 1 < rows; ++i) between(bl(i, j), bl(i + 1, j), 1 / w.r_bl_segment);
    a(bl(rows - 1, j), bl(rows - 1, j)) += 1 / w.r_sense;
  }
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) between(wl(i, j), bl(i, j), g_cell(i, j));
  const Eigen::MatrixXd v = a.partialPivLu().solve(b);
  Eigen::MatrixXd i_out(cols, v_in.cols());
  for (int j = 0; j < cols; ++j) i_out.row(j) = v.row(bl(rows - 1, j)) / w.r_sense;
  return i_out;
}

double log_uniform(core::RandomStream& rng, double lo, double hi) {
  return std::exp(rng.uniform(std::log(lo), std::log(hi)));
}

Eigen::MatrixXd random_conductances(int rows, int cols, double g_lo, double g_hi, core::RandomStream& rng) {
  Eigen::MatrixXd g(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) g(i, j) = log_uniform(rng, g_lo, g_hi);
  return g;
}

Eigen::MatrixXd random_voltages(int rows, int batch, core::RandomStream& rng) {
  Eigen::MatrixXd v(rows, batch);
  for (int i = 0; i < rows; ++i)
    for (int b = 0; b < batch; ++b) v(i, b) = rng.uniform(-0.3, 0.3);
  return v;
}

double max_relative_error(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected) {
  const double scale = expected.cwiseAbs().maxCoeff();
  return (actual - expected).cwiseAbs().maxCoeff() / scale;
}

Eigen::MatrixXd solve(const Eigen::MatrixXd& g, const WireOptions& w, const Eigen::MatrixXd& v) {
  DirectSolver solver(static_cast<int>(g.rows()), static_cast<int>(g.cols()), w);
  const auto factor = solver.set_conductances(g);
  EXPECT_TRUE(factor.ok()) << factor.message;
  Eigen::MatrixXd i_out;
  const auto summary = solver.solve(v, i_out);
  EXPECT_TRUE(summary.ok()) << summary.message;
  return i_out;
}

}  // namespace

TEST(DirectSolver, SingleCellMatchesSeriesResistances) {
  const WireOptions w{2.0, 3.0, 50.0, 20.0};  // segments do not matter for one cell
  Eigen::MatrixXd g(1, 1);
  g << 1e-4;
  Eigen::MatrixXd v(1, 2);
  v << 0.2, -0.1;
  const Eigen::MatrixXd i_out = solve(g, w, v);
  for (int b = 0; b < 2; ++b) EXPECT_NEAR(i_out(0, b), v(0, b) / (50.0 + 1e4 + 20.0), 1e-15);
}

TEST(DirectSolver, OneRowMatchesLadderClosedForm) {
  // One word line: source -> r_source -> w0 -(r_wl)- w1 ... ; each w_j reaches ground through its
  // cell and r_sense. Equivalent impedances from the far end give every branch current.
  const int cols = 7;
  const WireOptions w{3.0, 1.0, 40.0, 15.0};
  core::RandomStream rng(3, "ladder");
  const Eigen::MatrixXd g = random_conductances(1, cols, 1e-5, 1e-3, rng);
  std::vector<double> branch(cols), z(cols);
  for (int j = 0; j < cols; ++j) branch[j] = 1 / g(0, j) + w.r_sense;
  z[cols - 1] = branch[cols - 1];
  for (int j = cols - 2; j >= 0; --j) {
    const double onward = w.r_wl_segment + z[j + 1];
    z[j] = branch[j] * onward / (branch[j] + onward);
  }
  const double v_source = 0.25;
  double node = v_source - v_source / (w.r_source + z[0]) * w.r_source;
  Eigen::VectorXd expected(cols);
  for (int j = 0; j < cols; ++j) {
    expected[j] = node / branch[j];
    if (j + 1 < cols) node -= node / (w.r_wl_segment + z[j + 1]) * w.r_wl_segment;
  }
  Eigen::MatrixXd v(1, 1);
  v << v_source;
  const Eigen::MatrixXd i_out = solve(g, w, v);
  EXPECT_LT(max_relative_error(i_out, expected), 1e-13);
}

TEST(DirectSolver, AgreesWithDenseNodalAnalysisOnRandomNonSquareArrays) {
  core::RandomStream rng(11, "dense");
  const std::vector<std::pair<int, int>> shapes = {{1, 5}, {6, 1}, {3, 8}, {9, 4}, {12, 12}, {5, 17}};
  for (const auto& [rows, cols] : shapes) {
    for (int trial = 0; trial < 3; ++trial) {
      const WireOptions w{log_uniform(rng, 0.01, 100), log_uniform(rng, 0.01, 100), log_uniform(rng, 0.01, 100),
                          log_uniform(rng, 0.01, 100)};
      const Eigen::MatrixXd g = random_conductances(rows, cols, 1e-7, 1e-3, rng);
      const Eigen::MatrixXd v = random_voltages(rows, 3, rng);
      EXPECT_LT(max_relative_error(solve(g, w, v), dense_reference(g, w, v)), 1e-9)
          << rows << "x" << cols << " wires " << w.r_wl_segment << " " << w.r_bl_segment;
    }
  }
}

TEST(DirectSolver, ZeroWireResistanceReducesExactlyToIdealProduct) {
  core::RandomStream rng(5, "zero");
  const Eigen::MatrixXd g = random_conductances(9, 6, 1e-7, 1e-3, rng);
  const Eigen::MatrixXd v = random_voltages(9, 4, rng);
  const Eigen::MatrixXd i_out = solve(g, WireOptions{0, 0, 0, 0}, v);
  const Eigen::MatrixXd ideal = circuits::ideal_currents(g, v);
  EXPECT_LT(max_relative_error(i_out, ideal), 1e-15);
}

TEST(DirectSolver, ZeroResistanceOnOneSideIsTheLimitOfSmallResistance) {
  core::RandomStream rng(6, "limit");
  const Eigen::MatrixXd g = random_conductances(6, 5, 1e-6, 1e-4, rng);
  const Eigen::MatrixXd v = random_voltages(6, 2, rng);
  for (int which = 0; which < 4; ++which) {
    WireOptions exact{2.0, 3.0, 10.0, 5.0};
    double* field[] = {&exact.r_wl_segment, &exact.r_bl_segment, &exact.r_source, &exact.r_sense};
    *field[which] = 0.0;
    // As the resistance goes to zero, the dense solution converges linearly to the merged one.
    std::vector<double> errors;
    for (double epsilon : {1e-2, 1e-3, 1e-4}) {
      WireOptions tiny = exact;
      double* tiny_field[] = {&tiny.r_wl_segment, &tiny.r_bl_segment, &tiny.r_source, &tiny.r_sense};
      *tiny_field[which] = epsilon;
      errors.push_back(max_relative_error(solve(g, exact, v), dense_reference(g, tiny, v)));
    }
    EXPECT_LT(errors[2], 1e-6) << "wire " << which;
    EXPECT_NEAR(errors[0] / errors[1], 10.0, 1.0) << "wire " << which;
    EXPECT_NEAR(errors[1] / errors[2], 10.0, 1.0) << "wire " << which;
  }
}

TEST(DirectSolver, BatchEqualsColumnByColumnAndIsLinear) {
  core::RandomStream rng(8, "batch");
  const WireOptions w{1.5, 2.5, 10, 10};
  const Eigen::MatrixXd g = random_conductances(10, 8, 1e-6, 1e-4, rng);
  const Eigen::MatrixXd v = random_voltages(10, 5, rng);
  const Eigen::MatrixXd batch = solve(g, w, v);
  for (int b = 0; b < 5; ++b) EXPECT_LT(max_relative_error(solve(g, w, v.col(b)), batch.col(b)), 1e-13);
  const Eigen::MatrixXd sum = solve(g, w, v.col(0) + v.col(1));
  EXPECT_LT(max_relative_error(sum, batch.col(0) + batch.col(1)), 1e-12);
}

TEST(DirectSolver, ReportsSmallResidualAndCellVoltages) {
  core::RandomStream rng(9, "residual");
  const WireOptions w{2, 2, 5, 5};
  const Eigen::MatrixXd g = random_conductances(7, 6, 1e-6, 1e-4, rng);
  Eigen::MatrixXd v = random_voltages(7, 3, rng);
  v.col(2).setConstant(0.2);  // one voltage on every row: every node lies between 0 and 0.2 V
  DirectSolver solver(7, 6, w);
  ASSERT_TRUE(solver.set_conductances(g).ok());
  Eigen::MatrixXd i_out, v_cell;
  const auto summary = solver.solve(v, i_out, &v_cell, 2);
  EXPECT_TRUE(summary.ok());
  EXPECT_EQ(summary.method, "direct");
  EXPECT_LT(summary.residual, 1e-12);
  // The cell currents of a column add up to its output current (Kirchhoff).
  for (int j = 0; j < 6; ++j) EXPECT_NEAR((g.col(j).array() * v_cell.col(j).array()).sum(), i_out(j, 2), 1e-15);
  // With one voltage on every row, wires only lose voltage: every cell sees less than it.
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 6; ++j) EXPECT_LT(std::fabs(v_cell(i, j)), std::fabs(v(i, 2)));
}

TEST(DirectSolver, FloatingNodesGiveSingularStatusNamingANode) {
  // With an open source resistance and a row of open cells, that row's word line floats.
  const WireOptions w{1.0, 1.0, std::numeric_limits<double>::infinity(), 1.0};
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(3, 4, 1e-5);
  g.row(1).setZero();
  DirectSolver solver(3, 4, w);
  const auto summary = solver.set_conductances(g);
  EXPECT_EQ(summary.status, core::SolveStatus::singular);
  EXPECT_THAT(summary.message, testing::HasSubstr("w(1,"));
  EXPECT_THAT(summary.message, testing::HasSubstr("no conducting path"));
  Eigen::MatrixXd i_out;
  EXPECT_FALSE(solver.solve(Eigen::MatrixXd::Ones(3, 1), i_out).ok());
}

TEST(DirectSolver, NonFiniteOrNegativeConductanceIsAnErrorNotNaN) {
  const WireOptions w{1, 1, 1, 1};
  DirectSolver solver(2, 2, w);
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(2, 2, 1e-5);
  g(1, 0) = std::numeric_limits<double>::quiet_NaN();
  auto summary = solver.set_conductances(g);
  EXPECT_EQ(summary.status, core::SolveStatus::non_finite);
  EXPECT_THAT(summary.message, testing::HasSubstr("cell (1,0)"));
  g(1, 0) = -1e-6;
  EXPECT_EQ(solver.set_conductances(g).status, core::SolveStatus::non_finite);
  g(1, 0) = 1e-5;
  ASSERT_TRUE(solver.set_conductances(g).ok());
  Eigen::MatrixXd v = Eigen::MatrixXd::Ones(2, 1), i_out;
  v(0, 0) = std::numeric_limits<double>::infinity();
  EXPECT_EQ(solver.solve(v, i_out).status, core::SolveStatus::non_finite);
}

TEST(SeriesConductance, AccessResistanceAddsInSeries) {
  EXPECT_DOUBLE_EQ(circuits::series_conductance(1e-4, 0.0), 1e-4);
  EXPECT_NEAR(circuits::series_conductance(1e-4, 5e3), 1.0 / (1e4 + 5e3), 1e-18);
  EXPECT_EQ(circuits::series_conductance(0.0, 5e3), 0.0);
}
