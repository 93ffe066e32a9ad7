// Nonlinear cells: Newton-Raphson in the direct solver against an independent dense Newton.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <limits>

#include "circuits/direct_solver.hpp"
#include "core/random.hpp"
#include "tests/support/cell_ivs.hpp"

using namespace xbar;
using circuits::CellModel;
using circuits::DirectSolver;
using core::WireOptions;

using testing_support::OhmicIv;
using testing_support::SinhIv;

namespace {

// Dense reference: all nodes unknown (w, b, and the device/transistor midpoint m when r_access >
// 0), plain Newton with a dense LU, to 1e-15. Wire resistances must be > 0.
Eigen::VectorXd dense_newton(const Eigen::MatrixXd& g, const WireOptions& w, double r_access, const devices::CellIv& iv,
                             const Eigen::VectorXd& v_in) {
  const int rows = static_cast<int>(g.rows()), cols = static_cast<int>(g.cols()), rc = rows * cols;
  const bool mid = r_access > 0;
  const int n = (mid ? 3 : 2) * rc;
  auto wl = [&](int i, int j) { return i * cols + j; };
  auto bl = [&](int i, int j) { return rc + i * cols + j; };
  auto md = [&](int i, int j) { return 2 * rc + i * cols + j; };
  Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
  for (int iteration = 0; iteration < 100; ++iteration) {
    Eigen::MatrixXd jac = Eigen::MatrixXd::Zero(n, n);
    Eigen::VectorXd f = Eigen::VectorXd::Zero(n);
    auto resistor = [&](int p, int q, double conductance) {  // q < 0: ground
      const double v = x[p] - (q >= 0 ? x[q] : 0.0);
      f[p] += conductance * v;
      jac(p, p) += conductance;
      if (q >= 0) {
        f[q] -= conductance * v;
        jac(q, q) += conductance;
        jac(p, q) -= conductance;
        jac(q, p) -= conductance;
      }
    };
    for (int i = 0; i < rows; ++i) {
      f[wl(i, 0)] += (x[wl(i, 0)] - v_in[i]) / w.r_source;
      jac(wl(i, 0), wl(i, 0)) += 1 / w.r_source;
      for (int j = 0; j + 1 < cols; ++j) resistor(wl(i, j), wl(i, j + 1), 1 / w.r_wl_segment);
    }
    for (int j = 0; j < cols; ++j) {
      for (int i = 0; i + 1 < rows; ++i) resistor(bl(i, j), bl(i + 1, j), 1 / w.r_bl_segment);
      resistor(bl(rows - 1, j), -1, 1 / w.r_sense);
    }
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) {
        const int p = wl(i, j), q = mid ? md(i, j) : bl(i, j);
        double current = 0, derivative = 0;
        iv.current(g(i, j), x[p] - x[q], current, derivative);
        f[p] += current;
        f[q] -= current;
        jac(p, p) += derivative;
        jac(q, q) += derivative;
        jac(p, q) -= derivative;
        jac(q, p) -= derivative;
        if (mid) resistor(md(i, j), bl(i, j), 1 / r_access);
      }
    const Eigen::VectorXd step = jac.partialPivLu().solve(-f);
    x += step;
    if (step.cwiseAbs().maxCoeff() < 1e-15) break;
  }
  Eigen::VectorXd i_out(cols);
  for (int j = 0; j < cols; ++j) i_out[j] = x[bl(rows - 1, j)] / w.r_sense;
  return i_out;
}

Eigen::MatrixXd random_g(int rows, int cols, core::RandomStream& rng) {
  Eigen::MatrixXd g(rows, cols);
  for (int k = 0; k < rows * cols; ++k) g(k / cols, k % cols) = rng.uniform(5e-6, 2e-4);
  return g;
}

Eigen::MatrixXd random_v(int rows, int batch, double amplitude, core::RandomStream& rng) {
  Eigen::MatrixXd v(rows, batch);
  for (int k = 0; k < rows * batch; ++k) v(k / batch, k % batch) = rng.uniform(-amplitude, amplitude);
  return v;
}

}  // namespace

TEST(Newton, AgreesWithDenseNewtonOnSinhCellsWithAndWithoutAccessTransistor) {
  const SinhIv iv(0.25, 0.1);
  core::RandomStream rng(21, "newton");
  for (double r_access : {0.0, 3000.0}) {
    for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{4, 7}, {9, 3}, {6, 6}}) {
      const WireOptions w{rng.uniform(0.5, 20), rng.uniform(0.5, 20), rng.uniform(1, 50), rng.uniform(1, 50)};
      const Eigen::MatrixXd g = random_g(rows, cols, rng);
      const Eigen::MatrixXd v = random_v(rows, 3, 0.6, rng);  // well into the sinh's nonlinearity
      DirectSolver solver(rows, cols, w, 1e-13, 50);
      ASSERT_TRUE(solver.set_cells(g, CellModel{&iv, r_access}).ok());
      Eigen::MatrixXd i_out;
      const auto summary = solver.solve(v, i_out);
      ASSERT_TRUE(summary.ok()) << summary.message;
      EXPECT_GT(summary.iterations, 2);
      EXPECT_LT(summary.residual, 1e-13);
      for (int b = 0; b < 3; ++b) {
        const Eigen::VectorXd expected = dense_newton(g, w, r_access, iv, v.col(b));
        EXPECT_LT((i_out.col(b) - expected).cwiseAbs().maxCoeff() / expected.cwiseAbs().maxCoeff(), 1e-10)
            << rows << "x" << cols << " r_access " << r_access;
      }
    }
  }
}

TEST(Newton, OhmicCellsConvergeInOneIterationToTheLinearSolution) {
  const OhmicIv iv;
  core::RandomStream rng(22, "ohmic");
  const WireOptions w{2, 3, 10, 10};
  const Eigen::MatrixXd g = random_g(8, 5, rng);
  const Eigen::MatrixXd v = random_v(8, 4, 0.3, rng);
  DirectSolver newton(8, 5, w), linear(8, 5, w);
  ASSERT_TRUE(newton.set_cells(g, CellModel{&iv, 0.0}).ok());
  ASSERT_TRUE(linear.set_conductances(g).ok());
  Eigen::MatrixXd i_newton, i_linear;
  const auto summary = newton.solve(v, i_newton);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary.iterations, 1);
  ASSERT_TRUE(linear.solve(v, i_linear).ok());
  EXPECT_LT((i_newton - i_linear).cwiseAbs().maxCoeff() / i_linear.cwiseAbs().maxCoeff(), 1e-12);
}

TEST(Newton, ZeroWiresGiveTheCellCurrentsAtTheRowVoltages) {
  const SinhIv iv(0.25, 0.1);
  core::RandomStream rng(23, "zero");
  const Eigen::MatrixXd g = random_g(5, 4, rng);
  const Eigen::MatrixXd v = random_v(5, 2, 0.5, rng);
  DirectSolver solver(5, 4, WireOptions{0, 0, 0, 0});
  const CellModel model{&iv, 1000.0};
  ASSERT_TRUE(solver.set_cells(g, model).ok());
  Eigen::MatrixXd i_out;
  ASSERT_TRUE(solver.solve(v, i_out).ok());
  const Eigen::MatrixXd expected = circuits::ideal_currents(g, v, model);
  EXPECT_LT((i_out - expected).cwiseAbs().maxCoeff() / expected.cwiseAbs().maxCoeff(), 1e-14);
}

TEST(Newton, ReportsNonConvergenceInsteadOfAResult) {
  const SinhIv iv(0.05, 0.1);  // strongly nonlinear
  core::RandomStream rng(24, "budget");
  DirectSolver solver(6, 6, WireOptions{5, 5, 5, 5}, 1e-14, 2);
  ASSERT_TRUE(solver.set_cells(random_g(6, 6, rng), CellModel{&iv, 0.0}).ok());
  Eigen::MatrixXd i_out;
  const auto summary = solver.solve(random_v(6, 2, 0.8, rng), i_out);
  EXPECT_EQ(summary.status, core::SolveStatus::not_converged);
  EXPECT_THAT(summary.message, testing::HasSubstr("did not converge in 2 iterations"));
}

TEST(Newton, ResultDoesNotDependOnTheThreadCount) {
  const SinhIv iv(0.25, 0.1);
  core::RandomStream rng(25, "threads");
  const Eigen::MatrixXd g = random_g(10, 10, rng);
  const Eigen::MatrixXd v = random_v(10, 16, 0.5, rng);
  Eigen::MatrixXd one, two;
  for (int threads : {1, 2}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    DirectSolver solver(10, 10, WireOptions{3, 3, 5, 5});
    ASSERT_TRUE(solver.set_cells(g, CellModel{&iv, 2000.0}).ok());
    ASSERT_TRUE(solver.solve(v, threads == 1 ? one : two).ok());
  }
  EXPECT_TRUE(one == two);
}

TEST(CellCurrent, SeriesAccessResistanceSplitsTheVoltageExactly) {
  const SinhIv iv(0.25, 0.1);
  const CellModel model{&iv, 5000.0};
  for (double v : {-0.7, -0.1, 0.0, 0.05, 0.4, 1.2}) {
    double i = 0, di = 0;
    circuits::cell_current(1e-4, v, model, i, di);
    double device_i = 0, device_di = 0;
    iv.current(1e-4, v - i * 5000.0, device_i, device_di);
    EXPECT_NEAR(device_i, i, 1e-15 + 1e-12 * std::fabs(i)) << v;  // u + r I(u) = v
    const double h = 1e-6;
    double ip = 0, im = 0, unused = 0;
    circuits::cell_current(1e-4, v + h, model, ip, unused);
    circuits::cell_current(1e-4, v - h, model, im, unused);
    EXPECT_NEAR(di, (ip - im) / (2 * h), 1e-8 * std::fabs(di) + 1e-12) << v;
  }
}
