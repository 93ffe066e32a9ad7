// CrossbarJacobian: its M against the effective-matrix solver, its conductance gradient against
// central finite differences of L(g) = Σ S ⊙ M(g).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include "circuits/crossbar_adjoint.hpp"
#include "circuits/effective_solver.hpp"
#include "core/random.hpp"

using namespace xbar;
using circuits::CellModel;
using circuits::CrossbarJacobian;
using circuits::EffectiveSolver;
using core::WireOptions;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double log_uniform(core::RandomStream& rng, double lo, double hi) {
  return std::exp(rng.uniform(std::log(lo), std::log(hi)));
}

Eigen::MatrixXd random_conductances(int rows, int cols, core::RandomStream& rng, double lo, double hi) {
  Eigen::MatrixXd g(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) g(i, j) = log_uniform(rng, lo, hi);
  return g;
}

Eigen::MatrixXd random_signs(int rows, int cols, core::RandomStream& rng) {
  Eigen::MatrixXd s(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) s(i, j) = rng.uniform(-1.0, 1.0);
  return s;
}

// Wire resistances log-uniform over [lo, hi] ohm; `zero` (bits: wl, bl, source, sense) shorts some.
WireOptions random_wires(core::RandomStream& rng, int zero, double lo, double hi) {
  WireOptions w;
  w.r_wl_segment = (zero & 1) ? 0.0 : log_uniform(rng, lo, hi);
  w.r_bl_segment = (zero & 2) ? 0.0 : log_uniform(rng, lo, hi);
  w.r_source = (zero & 4) ? 0.0 : log_uniform(rng, lo, hi);
  w.r_sense = (zero & 8) ? 0.0 : log_uniform(rng, lo, hi);
  return w;
}

std::string describe(const WireOptions& w, double r_on) {
  char text[200];
  std::snprintf(text, sizeof text, "r_wl=%g r_bl=%g r_source=%g r_sense=%g r_on=%g", w.r_wl_segment, w.r_bl_segment,
                w.r_source, w.r_sense, r_on);
  return text;
}

double max_relative_error(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected) {
  const double scale = expected.cwiseAbs().maxCoeff();
  return (actual - expected).cwiseAbs().maxCoeff() / scale;
}

Eigen::MatrixXd effective_matrix(const Eigen::MatrixXd& g, const WireOptions& w, double r_on) {
  EffectiveSolver solver(static_cast<int>(g.rows()), static_cast<int>(g.cols()), w);
  const auto summary = solver.set_cells(g, CellModel{nullptr, r_on});
  EXPECT_TRUE(summary.ok()) << summary.message;
  return solver.matrix();
}

// L(g) = Σ S ⊙ M(g) for S of shape used_cols × used_rows.
double loss(CrossbarJacobian& jacobian, const Eigen::MatrixXd& g, const Eigen::MatrixXd& s) {
  const auto summary = jacobian.set_conductances(g, static_cast<int>(s.cols()), static_cast<int>(s.rows()));
  EXPECT_TRUE(summary.ok()) << summary.message;
  return (s.array() * jacobian.matrix().array()).sum();
}

// Central difference of L with respect to g(i, j), step 1e-4 g(i, j).
double finite_difference(CrossbarJacobian& jacobian, Eigen::MatrixXd g, const Eigen::MatrixXd& s, int i, int j) {
  const double g0 = g(i, j), h = 1e-4 * g0;
  g(i, j) = g0 + h;
  const double up = loss(jacobian, g, s);
  g(i, j) = g0 - h;
  const double down = loss(jacobian, g, s);
  return (up - down) / (2 * h);
}

// The gradient the ideal (wire-free) array would have: dL/dg = S[j, i] · dg_cell/dg, zero outside
// the used block.
Eigen::MatrixXd ideal_gradient(const Eigen::MatrixXd& g, const Eigen::MatrixXd& s, double r_on) {
  Eigen::MatrixXd ideal = Eigen::MatrixXd::Zero(g.rows(), g.cols());
  for (Eigen::Index i = 0; i < s.cols(); ++i)
    for (Eigen::Index j = 0; j < s.rows(); ++j) ideal(i, j) = s(j, i) / std::pow(1 + g(i, j) * r_on, 2);
  return ideal;
}

}  // namespace

// Wires of 0.1-100 ohm against cells of 1-100 µS: the two solvers agree to 1e-12 of max |M|. With
// 0.01 ohm wires the nodal matrix's conductances span 1e8 and both stay within ~3e-12 of a long
// double reference but differ from each other by up to ~1e-11 (measured): hence the wider bound.
TEST(CrossbarJacobian, MatrixEqualsEffectiveSolverForEveryShortAndAccessCombination) {
  core::RandomStream rng(31, "adjoint-matrix");
  const int shapes[][2] = {{1, 1}, {1, 6}, {6, 1}, {7, 11}, {11, 7}, {16, 9}};
  for (const auto& [lowest_wire, tolerance] : {std::pair{0.1, 1e-12}, std::pair{0.01, 3e-11}}) {
    double worst = 0;
    for (int zero = 0; zero < 16; ++zero)
      for (const auto& shape : shapes)
        for (double r_on : {0.0, 5e3}) {
          const int rows = shape[0], cols = shape[1];
          const WireOptions w = random_wires(rng, zero, lowest_wire, 100);
          const Eigen::MatrixXd g = random_conductances(rows, cols, rng, 1e-6, 1e-4);
          const Eigen::MatrixXd expected = effective_matrix(g, w, r_on);
          CrossbarJacobian jacobian(rows, cols, w, r_on);
          for (const auto& used : {std::pair{rows, cols}, std::pair{rows - rows / 3, cols - cols / 4}}) {
            const auto summary = jacobian.set_conductances(g, used.first, used.second);
            ASSERT_TRUE(summary.ok()) << summary.message;
            EXPECT_LT(summary.residual, 1e-10);
            ASSERT_EQ(jacobian.matrix().rows(), used.second);
            ASSERT_EQ(jacobian.matrix().cols(), used.first);
            const double error =
                max_relative_error(jacobian.matrix(), expected.topLeftCorner(used.second, used.first));
            worst = std::max(worst, error);
            EXPECT_LT(error, tolerance) << rows << "x" << cols << " used " << used.first << "x" << used.second << " "
                                        << describe(w, r_on);
          }
        }
    std::printf("wires >= %g ohm: worst relative difference from EffectiveSolver's M %.3g\n", lowest_wire, worst);
  }
}

TEST(CrossbarJacobian, MatrixEqualsEffectiveSolverWithOpenWires) {
  core::RandomStream rng(32, "adjoint-open");
  const Eigen::MatrixXd g = random_conductances(9, 7, rng, 1e-6, 1e-4);
  for (const WireOptions& w : {WireOptions{kInf, 2, 1, 3}, WireOptions{2, kInf, 1, 3}, WireOptions{2, 0, 1, kInf}}) {
    CrossbarJacobian jacobian(9, 7, w, 0);
    ASSERT_TRUE(jacobian.set_conductances(g, 9, 7).ok());
    const Eigen::MatrixXd expected = effective_matrix(g, w, 0);
    if (std::isinf(w.r_sense)) {
      EXPECT_EQ(jacobian.matrix().cwiseAbs().maxCoeff(), 0.0);  // no path to the virtual grounds
      EXPECT_EQ(jacobian.conductance_gradient(Eigen::MatrixXd::Ones(7, 9)).cwiseAbs().maxCoeff(), 0.0);
    } else {
      EXPECT_LT(max_relative_error(jacobian.matrix(), expected), 1e-12) << describe(w, 0);
    }
  }
}

TEST(CrossbarJacobian, GradientMatchesCentralDifferencesOnSmallArrays) {
  core::RandomStream rng(33, "adjoint-fd");
  const int shapes[][4] = {{6, 5, 6, 5}, {8, 8, 8, 8}, {6, 5, 4, 3}, {5, 7, 5, 2}};
  double worst = 0;
  for (int zero : {0, 1, 2, 4, 8, 3, 5, 10, 12, 15})
    for (const auto& shape : shapes)
      for (double r_on : {0.0, 2e3}) {
        const int rows = shape[0], cols = shape[1], used_rows = shape[2], used_cols = shape[3];
        const WireOptions w = random_wires(rng, zero, 1, 100);
        const Eigen::MatrixXd g = random_conductances(rows, cols, rng, 1e-5, 1e-3);
        const Eigen::MatrixXd s = random_signs(used_cols, used_rows, rng);
        CrossbarJacobian jacobian(rows, cols, w, r_on);
        ASSERT_TRUE(jacobian.set_conductances(g, used_rows, used_cols).ok());
        const Eigen::MatrixXd gradient = jacobian.conductance_gradient(s);
        ASSERT_EQ(gradient.rows(), rows);
        ASSERT_EQ(gradient.cols(), cols);
        Eigen::MatrixXd numeric(rows, cols);
        for (int i = 0; i < rows; ++i)
          for (int j = 0; j < cols; ++j) numeric(i, j) = finite_difference(jacobian, g, s, i, j);
        const double error = max_relative_error(gradient, numeric);
        worst = std::max(worst, error);
        EXPECT_LT(error, 1e-6) << rows << "x" << cols << " used " << used_rows << "x" << used_cols << " "
                               << describe(w, r_on);
        // The wires matter (so this test can tell the circuit's gradient from the ideal one).
        if (zero != 15) {
          EXPECT_GT(max_relative_error(gradient, ideal_gradient(g, s, r_on)), 1e-3) << describe(w, r_on);
        }
      }
  std::printf("worst relative difference from central differences: %.3g\n", worst);
}

TEST(CrossbarJacobian, IdealWiresGiveTheTransposedSensitivity) {
  core::RandomStream rng(34, "adjoint-ideal");
  for (double r_on : {0.0, 5e3}) {
    const Eigen::MatrixXd g = random_conductances(9, 14, rng, 1e-6, 1e-4);
    const Eigen::MatrixXd g_cell = circuits::series_conductance(g, r_on);
    CrossbarJacobian jacobian(9, 14, WireOptions{}, r_on);
    // M = g_cellᵀ and dL/dg_cell[i, j] = S[j, i]: every used cell has a nonzero gradient, the
    // others none.
    ASSERT_TRUE(jacobian.set_conductances(g, 9, 14).ok());
    EXPECT_LT(max_relative_error(jacobian.matrix(), g_cell.transpose()), 1e-15);
    const Eigen::MatrixXd s = random_signs(14, 9, rng);
    EXPECT_LT(max_relative_error(jacobian.conductance_gradient(s), ideal_gradient(g, s, r_on)), 1e-15);
    ASSERT_TRUE(jacobian.set_conductances(g, 6, 10).ok());
    EXPECT_LT(max_relative_error(jacobian.matrix(), g_cell.transpose().topLeftCorner(10, 6)), 1e-15);
    const Eigen::MatrixXd s_used = random_signs(10, 6, rng);
    const Eigen::MatrixXd gradient = jacobian.conductance_gradient(s_used);
    EXPECT_LT(max_relative_error(gradient, ideal_gradient(g, s_used, r_on)), 1e-15);
    EXPECT_EQ(gradient.bottomRows(3).cwiseAbs().maxCoeff(), 0.0);
    EXPECT_EQ(gradient.rightCols(4).cwiseAbs().maxCoeff(), 0.0);
    EXPECT_GT(gradient.topLeftCorner(6, 10).cwiseAbs().minCoeff(), 0.0);
  }
}

TEST(CrossbarJacobian, GradientMatchesCentralDifferencesAt64By32) {
  core::RandomStream rng(35, "adjoint-64x32");
  const int rows = 64, cols = 32, used_rows = 50, used_cols = 32;
  const WireOptions w{5.0, 4.0, 20.0, 30.0};
  const double r_on = 1e3;
  const Eigen::MatrixXd g = random_conductances(rows, cols, rng, 1e-5, 3e-4);
  const Eigen::MatrixXd s = random_signs(used_cols, used_rows, rng);
  CrossbarJacobian jacobian(rows, cols, w, r_on);
  ASSERT_TRUE(jacobian.set_conductances(g, used_rows, used_cols).ok());
  EXPECT_LT(max_relative_error(jacobian.matrix(), effective_matrix(g, w, r_on).topLeftCorner(used_cols, used_rows)),
            1e-12);
  const Eigen::MatrixXd gradient = jacobian.conductance_gradient(s);
  const double scale = gradient.cwiseAbs().maxCoeff();
  EXPECT_GT(max_relative_error(gradient, ideal_gradient(g, s, r_on)), 1e-2);
  double worst = 0;
  // A few random cells, an unused row's cell and the far corner.
  std::vector<std::pair<int, int>> cells = {{rows - 1, cols - 1}, {used_rows + 3, 5}, {0, 0}};
  for (int k = 0; k < 6; ++k)
    cells.emplace_back(static_cast<int>(rng.uniform() * rows), static_cast<int>(rng.uniform() * cols));
  for (const auto& [i, j] : cells) {
    const double numeric = finite_difference(jacobian, g, s, i, j);
    const double error = std::fabs(gradient(i, j) - numeric) / scale;
    worst = std::max(worst, error);
    EXPECT_LT(error, 1e-6) << "cell (" << i << "," << j << "): adjoint " << gradient(i, j) << ", numeric " << numeric;
  }
  std::printf("64x32: worst difference from central differences %.3g (of the largest gradient)\n", worst);
}

TEST(CrossbarJacobian, ResultsDoNotDependOnTheThreadCount) {
  core::RandomStream rng(36, "adjoint-threads");
  const int rows = 48, cols = 32;  // 1536 cells: 3 blocks; 48 + 32 right-hand sides: 3 chunks
  const WireOptions w{3.0, 2.0, 5.0, 7.0};
  const Eigen::MatrixXd g = random_conductances(rows, cols, rng, 1e-6, 1e-4);
  const Eigen::MatrixXd s = random_signs(cols, rows, rng);
  auto run = [&](int threads, Eigen::MatrixXd& m) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    CrossbarJacobian jacobian(rows, cols, w, 1e3);
    EXPECT_TRUE(jacobian.set_conductances(g, rows, cols).ok());
    m = jacobian.matrix();
    return jacobian.conductance_gradient(s);
  };
  Eigen::MatrixXd m1, m4;
  const Eigen::MatrixXd g1 = run(1, m1), g4 = run(4, m4);
  EXPECT_TRUE(m1 == m4);
  EXPECT_TRUE(g1 == g4);
}

TEST(CrossbarJacobian, BadShapesThrowNamingTheExpectedShape) {
  EXPECT_THAT([] { CrossbarJacobian(0, 3, WireOptions{}, 0); },
              testing::ThrowsMessage<std::invalid_argument>(testing::HasSubstr("at least 1 row")));
  EXPECT_THAT([] { CrossbarJacobian(2, 3, WireOptions{}, -1); },
              testing::ThrowsMessage<std::invalid_argument>(testing::HasSubstr("r_access_on")));
  EXPECT_THAT([] { CrossbarJacobian(2, 3, WireOptions{1, -1, 1, 1}, 0); },
              testing::ThrowsMessage<std::invalid_argument>(testing::HasSubstr("r_bl_segment")));
  CrossbarJacobian jacobian(4, 3, WireOptions{1, 1, 1, 1}, 0);
  const Eigen::MatrixXd g = Eigen::MatrixXd::Constant(4, 3, 1e-5);
  EXPECT_THAT([&] { jacobian.conductance_gradient(Eigen::MatrixXd::Zero(3, 4)); },
              testing::Throws<std::logic_error>());
  EXPECT_THAT([&] { jacobian.set_conductances(Eigen::MatrixXd::Constant(3, 4, 1e-5), 4, 3); },
              testing::ThrowsMessage<std::invalid_argument>(testing::HasSubstr("expected 4x3")));
  EXPECT_THAT([&] { jacobian.set_conductances(g, 5, 3); },
              testing::ThrowsMessage<std::invalid_argument>(testing::HasSubstr("expected 0..4 and 0..3")));
  ASSERT_TRUE(jacobian.set_conductances(g, 3, 2).ok());
  EXPECT_THAT([&] { jacobian.conductance_gradient(Eigen::MatrixXd::Zero(3, 2)); },
              testing::ThrowsMessage<std::invalid_argument>(testing::HasSubstr("expected 2x3")));
  EXPECT_EQ(jacobian.conductance_gradient(Eigen::MatrixXd::Zero(2, 3)).rows(), 4);
}

TEST(CrossbarJacobian, NumericalFailuresAreStatusesNotExceptions) {
  CrossbarJacobian jacobian(4, 3, WireOptions{1, 1, kInf, 1}, 0);
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(4, 3, 1e-5);
  g(1, 2) = -1e-6;
  auto summary = jacobian.set_conductances(g, 4, 3);
  EXPECT_EQ(summary.status, core::SolveStatus::non_finite);
  EXPECT_THAT(summary.message, testing::HasSubstr("cell (1,2)"));
  EXPECT_EQ(jacobian.matrix().size(), 0);
  EXPECT_THROW(jacobian.conductance_gradient(Eigen::MatrixXd::Zero(3, 4)), std::logic_error);
  // With open drivers, a row of zero conductances leaves its word line floating.
  g.setConstant(1e-5);
  g.row(2).setZero();
  summary = jacobian.set_conductances(g, 4, 3);
  EXPECT_EQ(summary.status, core::SolveStatus::singular);
  EXPECT_THAT(summary.message, testing::HasSubstr("floating"));
  g.setConstant(1e-5);
  summary = jacobian.set_conductances(g, 4, 3);
  EXPECT_TRUE(summary.ok()) << summary.message;
  EXPECT_GT(jacobian.memory_bytes(), 0u);
}
