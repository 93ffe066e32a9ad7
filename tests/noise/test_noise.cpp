// Tests of the stochastic processes in noise/noise.hpp. Statistical checks compare sample moments
// with their theoretical values, with a tolerance of 5 standard errors computed from the sample
// size (and, for correlated fields, from the field's correlation function), so they shrink as
// 1/sqrt(N). Structural checks pin the drawing order that makes results reproducible.
#include "noise/noise.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <vector>

namespace xbar::noise {
namespace {

using core::RandomStream;

// Correlation of two cells d = (dr, dc) apart, as a function of the lag.
using Correlation = std::function<double(int dr, int dc)>;

// The correlation of gaussian_field with length L: filtering white noise with the kernel
// exp(-d^2 / (2 L^2)) gives the autocorrelation exp(-|d|^2 / (4 L^2)); L = 0 is white noise.
Correlation gaussian_field_correlation(double length) {
  return [length](int dr, int dc) {
    if (length == 0) return dr == 0 && dc == 0 ? 1.0 : 0.0;
    return std::exp(-(dr * dr + dc * dc) / (4 * length * length));
  };
}

// Sum of f(d) over all lattice lags d with |dr|, |dc| <= extent.
double lattice_sum(const std::function<double(int, int)>& f, int extent) {
  double sum = 0;
  for (int dr = -extent; dr <= extent; ++dr)
    for (int dc = -extent; dc <= extent; ++dc) sum += f(dr, dc);
  return sum;
}

// Lags beyond which the Gaussian-kernel correlation is negligible (exp(-16)).
int correlation_extent(double length) { return static_cast<int>(std::ceil(8 * length)) + 1; }

// Standard error of the sample mean of n cells of a stationary field with unit variance and
// correlation rho: Var(mean) = sum_d rho(d) / n.
double mean_standard_error(const Correlation& rho, int extent, double n) {
  return std::sqrt(lattice_sum(rho, extent) / n);
}

// Standard error of the sample standard deviation of n cells of a stationary Gaussian field with
// unit variance: Var(sample variance) = 2 sum_d rho(d)^2 / n, and sd = sqrt(variance).
double std_standard_error(const Correlation& rho, int extent, double n) {
  const double variance_of_variance = 2 * lattice_sum([&](int r, int c) { return rho(r, c) * rho(r, c); }, extent) / n;
  return 0.5 * std::sqrt(variance_of_variance);
}

// Bartlett's formula for the standard error of the sample correlation at lag h of a stationary
// Gaussian field, estimated from n pairs:
// Var(r_h) = (1/n) sum_k [rho_k^2 + rho_{k+h} rho_{k-h} - 4 rho_h rho_k rho_{k+h} + 2 rho_h^2 rho_k^2].
double correlation_standard_error(const Correlation& rho, int extent, int hr, int hc, double n) {
  const double rho_h = rho(hr, hc);
  const double w = lattice_sum(
      [&](int r, int c) {
        const double rho_k = rho(r, c);
        return rho_k * rho_k + rho(r + hr, c + hc) * rho(r - hr, c - hc) -
               4 * rho_h * rho_k * rho(r + hr, c + hc) + 2 * rho_h * rho_h * rho_k * rho_k;
      },
      extent + std::abs(hr) + std::abs(hc));
  return std::sqrt(w / n);
}

double mean(const Eigen::MatrixXd& x) { return x.mean(); }

double standard_deviation(const Eigen::MatrixXd& x) {
  return std::sqrt((x.array() - x.mean()).square().mean());
}

// Pearson correlation between cells (i, j) and (i + lag_rows, j + lag_cols), lags >= 0.
double lag_correlation(const Eigen::MatrixXd& x, int lag_rows, int lag_cols) {
  const Eigen::Index rows = x.rows() - lag_rows, cols = x.cols() - lag_cols;
  const Eigen::ArrayXXd a = x.topLeftCorner(rows, cols).array();
  const Eigen::ArrayXXd b = x.bottomRightCorner(rows, cols).array();
  const Eigen::ArrayXXd da = a - a.mean(), db = b - b.mean();
  return (da * db).sum() / std::sqrt(da.square().sum() * db.square().sum());
}

double pair_count(const Eigen::MatrixXd& x, int lag_rows, int lag_cols) {
  return static_cast<double>(x.rows() - lag_rows) * static_cast<double>(x.cols() - lag_cols);
}

double fraction_equal(const MatrixI& map, int value) {
  return static_cast<double>((map.array() == value).count()) / static_cast<double>(map.size());
}

// Standard error of a fraction estimated from n Bernoulli(p) draws.
double binomial_standard_error(double p, double n) { return std::sqrt(p * (1 - p) / n); }

// ---------------------------------------------------------------------------------------------
// gaussian_field

TEST(GaussianField, DrawsScaledStandardNormalsInRowMajorOrderWithoutCorrelation) {
  RandomStream rng(11, "field"), replica(11, "field");
  const Eigen::MatrixXd field = gaussian_field(3, 5, 0.25, 0.0, rng);
  ASSERT_EQ(field.rows(), 3);
  ASSERT_EQ(field.cols(), 5);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_DOUBLE_EQ(field(i, j), 0.25 * replica.normal()) << i << "," << j;
}

TEST(GaussianField, HasTheRequestedMarginalMomentsWithoutCorrelation) {
  RandomStream rng(1, "field");
  const double sigma = 2.5;
  const Eigen::MatrixXd field = gaussian_field(400, 400, sigma, 0.0, rng);
  const double n = static_cast<double>(field.size());
  EXPECT_NEAR(mean(field), 0.0, 5 * sigma / std::sqrt(n));
  EXPECT_NEAR(standard_deviation(field), sigma, 5 * sigma / std::sqrt(2 * n));
}

TEST(GaussianField, NeighboursAreUncorrelatedWithoutCorrelation) {
  RandomStream rng(2, "field");
  const Eigen::MatrixXd field = gaussian_field(400, 400, 1.0, 0.0, rng);
  EXPECT_NEAR(lag_correlation(field, 0, 1), 0.0, 5 / std::sqrt(pair_count(field, 0, 1)));
  EXPECT_NEAR(lag_correlation(field, 1, 0), 0.0, 5 / std::sqrt(pair_count(field, 1, 0)));
}

TEST(GaussianField, HasTheRequestedMarginalMomentsWithCorrelation) {
  const double sigma = 0.7, length = 3;
  const int fields = 4;
  RandomStream rng(3, "field");
  double mean_sum = 0, std_sum = 0, n = 0;
  for (int f = 0; f < fields; ++f) {
    const Eigen::MatrixXd field = gaussian_field(400, 400, sigma, length, rng);
    mean_sum += mean(field);
    std_sum += standard_deviation(field);
    n += static_cast<double>(field.size());
  }
  const Correlation rho = gaussian_field_correlation(length);
  const int extent = correlation_extent(length);
  EXPECT_NEAR(mean_sum / fields, 0.0, 5 * sigma * mean_standard_error(rho, extent, n));
  EXPECT_NEAR(std_sum / fields, sigma, 5 * sigma * std_standard_error(rho, extent, n));
}

TEST(GaussianField, CorrelationMatchesTheGaussianKernelAndDecaysWithLag) {
  const double length = 3;
  const int fields = 4;
  struct Lag {
    int rows, cols;
  };
  const std::vector<Lag> lags = {{0, 1}, {1, 0}, {1, 1}, {0, 2}, {2, 0}, {0, 4}, {4, 0}, {0, 8}, {8, 0}};
  std::vector<double> correlation(lags.size(), 0.0);
  RandomStream rng(4, "field");
  Eigen::MatrixXd field;
  for (int f = 0; f < fields; ++f) {
    field = gaussian_field(400, 400, 1.3, length, rng);
    for (std::size_t k = 0; k < lags.size(); ++k)
      correlation[k] += lag_correlation(field, lags[k].rows, lags[k].cols) / fields;
  }
  const Correlation rho = gaussian_field_correlation(length);
  for (std::size_t k = 0; k < lags.size(); ++k) {
    const auto [dr, dc] = lags[k];
    const double tolerance =
        5 * correlation_standard_error(rho, correlation_extent(length), dr, dc, fields * pair_count(field, dr, dc));
    EXPECT_NEAR(correlation[k], rho(dr, dc), tolerance) << "lag " << dr << "," << dc;
  }
  // Along a row and along a column: lags 1, 2, 4, 8.
  EXPECT_GT(correlation[0], correlation[3]);
  EXPECT_GT(correlation[3], correlation[5]);
  EXPECT_GT(correlation[5], correlation[7]);
  EXPECT_GT(correlation[1], correlation[4]);
  EXPECT_GT(correlation[4], correlation[6]);
  EXPECT_GT(correlation[6], correlation[8]);
}

TEST(GaussianField, EdgesHaveTheSameVarianceAsTheCentre) {
  // Per-cell variance over many small fields whose edges are within the kernel width everywhere.
  // An estimate pooled over correlated cells is no noisier than one cell's, whose variance
  // estimate from n draws has standard error sigma^2 sqrt(2 / n).
  const int size = 12, fields = 4000;
  const double sigma = 1.5, length = 3;
  RandomStream rng(5, "field");
  Eigen::MatrixXd sum_squares = Eigen::MatrixXd::Zero(size, size);
  for (int f = 0; f < fields; ++f) sum_squares += gaussian_field(size, size, sigma, length, rng).array().square().matrix();
  const Eigen::MatrixXd variance = sum_squares / fields;
  const double tolerance = 5 * sigma * sigma * std::sqrt(2.0 / fields);
  EXPECT_NEAR(variance(0, 0), sigma * sigma, tolerance);
  EXPECT_NEAR(variance(size - 1, size - 1), sigma * sigma, tolerance);
  EXPECT_NEAR(variance.row(0).mean(), sigma * sigma, tolerance);
  EXPECT_NEAR(variance.col(size - 1).mean(), sigma * sigma, tolerance);
  EXPECT_NEAR(variance.block(size / 2 - 1, size / 2 - 1, 2, 2).mean(), sigma * sigma, tolerance);
}

TEST(GaussianField, SameSeedGivesSameFieldAndOtherSeedDiffers) {
  RandomStream a(6, "field"), b(6, "field"), c(7, "field");
  const Eigen::MatrixXd field = gaussian_field(30, 50, 1.0, 2.0, a);
  ASSERT_EQ(field.rows(), 30);
  ASSERT_EQ(field.cols(), 50);
  EXPECT_EQ(field, gaussian_field(30, 50, 1.0, 2.0, b));
  EXPECT_NE(field, gaussian_field(30, 50, 1.0, 2.0, c));
  EXPECT_NE(field, gaussian_field(30, 50, 1.0, 2.0, a)) << "the stream must advance";
}

TEST(GaussianField, InvalidArgumentsThrow) {
  RandomStream rng(8, "field");
  EXPECT_THROW(gaussian_field(-1, 4, 1.0, 0.0, rng), std::invalid_argument);
  EXPECT_THROW(gaussian_field(4, -1, 1.0, 0.0, rng), std::invalid_argument);
  EXPECT_THROW(gaussian_field(4, 4, -1.0, 0.0, rng), std::invalid_argument);
  EXPECT_THROW(gaussian_field(4, 4, NAN, 0.0, rng), std::invalid_argument);
  EXPECT_THROW(gaussian_field(4, 4, 1.0, -0.5, rng), std::invalid_argument);
  EXPECT_THROW(gaussian_field(4, 4, 1.0, INFINITY, rng), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// lognormal_field

TEST(LognormalField, IsTheExponentialOfAUnitGaussianFieldWithTheSameCorrelation) {
  const double s = 0.4, length = 2;
  RandomStream rng(20, "field"), replica(20, "field");
  const Eigen::MatrixXd field = lognormal_field(20, 30, s, length, rng);
  const Eigen::MatrixXd z = gaussian_field(20, 30, 1.0, length, replica);
  ASSERT_EQ(field.rows(), 20);
  ASSERT_EQ(field.cols(), 30);
  for (int i = 0; i < 20; ++i)
    for (int j = 0; j < 30; ++j) EXPECT_NEAR(field(i, j), std::exp(s * z(i, j) - s * s / 2), 1e-12 * field(i, j));
}

TEST(LognormalField, HasMeanOneAndTheRequestedLogStdWithoutCorrelation) {
  const double s = 0.4;
  RandomStream rng(21, "field");
  const Eigen::MatrixXd field = lognormal_field(400, 400, s, 0.0, rng);
  const double n = static_cast<double>(field.size());
  const Eigen::MatrixXd log_field = field.array().log().matrix();
  EXPECT_NEAR(mean(field), 1.0, 5 * std::sqrt((std::exp(s * s) - 1) / n));
  EXPECT_NEAR(mean(log_field), -s * s / 2, 5 * s / std::sqrt(n));
  EXPECT_NEAR(standard_deviation(log_field), s, 5 * s / std::sqrt(2 * n));
}

TEST(LognormalField, HasMeanOneAndTheRequestedLogStdWithCorrelation) {
  const double s = 0.5, length = 3;
  const int fields = 4;
  RandomStream rng(22, "field");
  double mean_sum = 0, log_std_sum = 0, n = 0;
  for (int f = 0; f < fields; ++f) {
    const Eigen::MatrixXd field = lognormal_field(400, 400, s, length, rng);
    mean_sum += mean(field);
    log_std_sum += standard_deviation(field.array().log().matrix());
    n += static_cast<double>(field.size());
  }
  // Cells d apart have covariance exp(s^2 rho(d)) - 1, which sets the standard error of the mean.
  const Correlation rho = gaussian_field_correlation(length);
  const int extent = correlation_extent(length);
  const Correlation covariance = [&](int dr, int dc) { return std::exp(s * s * rho(dr, dc)) - 1; };
  EXPECT_NEAR(mean_sum / fields, 1.0, 5 * mean_standard_error(covariance, extent, n));
  EXPECT_NEAR(log_std_sum / fields, s, 5 * s * std_standard_error(rho, extent, n));
}

TEST(LognormalField, NegativeLogStdThrows) {
  RandomStream rng(23, "field");
  EXPECT_THROW(lognormal_field(4, 4, -0.1, 0.0, rng), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// stuck_at_map, apply_stuck_at

TEST(StuckAtMap, FractionsMatchTheRates) {
  const double rate_low = 0.03, rate_high = 0.1;
  RandomStream rng(30, "faults");
  const MatrixI map = stuck_at_map(400, 400, rate_low, rate_high, rng);
  const double n = static_cast<double>(map.size());
  EXPECT_EQ((map.array() == -1).count() + (map.array() == 0).count() + (map.array() == 1).count(), map.size());
  EXPECT_NEAR(fraction_equal(map, -1), rate_low, 5 * binomial_standard_error(rate_low, n));
  EXPECT_NEAR(fraction_equal(map, 1), rate_high, 5 * binomial_standard_error(rate_high, n));
}

TEST(StuckAtMap, DrawsOneUniformPerCellInRowMajorOrder) {
  const double rate_low = 0.2, rate_high = 0.3;
  RandomStream rng(31, "faults"), replica(31, "faults");
  const MatrixI map = stuck_at_map(7, 9, rate_low, rate_high, rng);
  for (int i = 0; i < 7; ++i) {
    for (int j = 0; j < 9; ++j) {
      const double u = replica.uniform();
      EXPECT_EQ(map(i, j), u < rate_low ? -1 : (u < rate_low + rate_high ? 1 : 0)) << i << "," << j;
    }
  }
  EXPECT_EQ(rng.uniform(), replica.uniform()) << "exactly one draw per cell";
}

TEST(StuckAtMap, ExtremeRatesGiveUniformMaps) {
  RandomStream rng(32, "faults");
  EXPECT_TRUE((stuck_at_map(20, 20, 0.0, 0.0, rng).array() == 0).all());
  EXPECT_TRUE((stuck_at_map(20, 20, 1.0, 0.0, rng).array() == -1).all());
  EXPECT_TRUE((stuck_at_map(20, 20, 0.0, 1.0, rng).array() == 1).all());
}

TEST(StuckAtMap, InvalidRatesThrow) {
  RandomStream rng(33, "faults");
  EXPECT_THROW(stuck_at_map(4, 4, -0.01, 0.1, rng), std::invalid_argument);
  EXPECT_THROW(stuck_at_map(4, 4, 0.1, -0.01, rng), std::invalid_argument);
  EXPECT_THROW(stuck_at_map(4, 4, 0.6, 0.5, rng), std::invalid_argument);
  EXPECT_THROW(stuck_at_map(4, 4, NAN, 0.1, rng), std::invalid_argument);
  EXPECT_NO_THROW(stuck_at_map(4, 4, 0.4, 0.6, rng));
}

TEST(ApplyStuckAt, OverwritesExactlyTheStuckCells) {
  Eigen::MatrixXd g(2, 3);
  g << 1, 2, 3, 4, 5, 6;
  MatrixI map(2, 3);
  map << 0, -1, 1, 1, 0, -1;
  apply_stuck_at(g, map, 0.1, 9.0);
  Eigen::MatrixXd expected(2, 3);
  expected << 1, 0.1, 9.0, 9.0, 5, 0.1;
  EXPECT_EQ(g, expected);
}

TEST(ApplyStuckAt, MismatchedShapeOrInvalidCodeThrows) {
  Eigen::MatrixXd g = Eigen::MatrixXd::Ones(2, 3);
  EXPECT_THROW(apply_stuck_at(g, MatrixI::Zero(3, 2), 0.0, 1.0), std::invalid_argument);
  MatrixI map = MatrixI::Zero(2, 3);
  map(1, 1) = 2;
  EXPECT_THROW(apply_stuck_at(g, map, 0.0, 1.0), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Random telegraph noise

RtnOptions rtn_options(double fraction = 1.0) {
  RtnOptions options;
  options.fraction = fraction;
  options.amplitude_rel = 0.2;
  options.capture_rate = 1.0;   // Hz
  options.emission_rate = 3.0;  // Hz: occupancy 1/4, relaxation rate 4 Hz
  return options;
}

// Occupancy at read b among the cells occupied (or empty) at read a, with its standard error.
struct Conditional {
  double probability, standard_error;
};
Conditional occupancy_given(const MatrixI& a, const MatrixI& b, int state_at_a) {
  const double n = static_cast<double>((a.array() == state_at_a).count());
  const double p = static_cast<double>(((a.array() == state_at_a) && (b.array() == 1)).count()) / n;
  return {p, binomial_standard_error(p, n)};
}

TEST(Rtn, TrapMapHasTheRequestedFraction) {
  RandomStream rng(40, "rtn");
  const MatrixI traps = rtn_trap_map(400, 400, rtn_options(0.3), rng);
  EXPECT_EQ((traps.array() == 0).count() + (traps.array() == 1).count(), traps.size());
  EXPECT_NEAR(fraction_equal(traps, 1), 0.3, 5 * binomial_standard_error(0.3, static_cast<double>(traps.size())));
}

TEST(Rtn, FirstReadIsDrawnFromTheStationaryOccupancy) {
  const RtnOptions options = rtn_options();
  RandomStream rng(41, "rtn");
  const MatrixI traps = MatrixI::Ones(400, 400);
  const auto occupied = rtn_occupancy(traps, options, {0.0}, rng);
  ASSERT_EQ(occupied.size(), 1u);
  EXPECT_NEAR(fraction_equal(occupied[0], 1), 0.25, 5 * binomial_standard_error(0.25, static_cast<double>(traps.size())));
}

TEST(Rtn, CellsWithoutATrapAreNeverOccupied) {
  const RtnOptions options = rtn_options(0.5);
  RandomStream rng(42, "rtn");
  const MatrixI traps = rtn_trap_map(100, 100, options, rng);
  for (const MatrixI& occupied : rtn_occupancy(traps, options, {0.0, 0.1, 1.0}, rng)) {
    EXPECT_EQ(((occupied.array() == 1) && (traps.array() == 0)).count(), 0);
    EXPECT_GT((occupied.array() == 1).count(), 0);
  }
}

TEST(Rtn, ZeroIntervalRepeatsTheMap) {
  RandomStream rng(43, "rtn");
  const auto occupied = rtn_occupancy(MatrixI::Ones(100, 100), rtn_options(), {0.5, 0.5, 0.5}, rng);
  ASSERT_EQ(occupied.size(), 3u);
  EXPECT_EQ(occupied[1], occupied[0]);
  EXPECT_EQ(occupied[2], occupied[0]);
}

TEST(Rtn, LongIntervalGivesIndependentReads) {
  RandomStream rng(44, "rtn");
  const auto occupied = rtn_occupancy(MatrixI::Ones(400, 400), rtn_options(), {0.0, 1000.0}, rng);
  for (int state : {0, 1}) {
    const Conditional given = occupancy_given(occupied[0], occupied[1], state);
    EXPECT_NEAR(given.probability, 0.25, 5 * given.standard_error) << "previous state " << state;
  }
}

TEST(Rtn, IntermediateIntervalFollowsTheTransitionProbabilities) {
  const double p = 0.25, dt = 0.25, memory = std::exp(-4.0 * dt);  // (capture + emission) dt = 1
  RandomStream rng(45, "rtn");
  const MatrixI traps = MatrixI::Ones(400, 400);
  const auto occupied = rtn_occupancy(traps, rtn_options(), {2.0, 2.0 + dt}, rng);
  const Conditional stay = occupancy_given(occupied[0], occupied[1], 1);
  const Conditional capture = occupancy_given(occupied[0], occupied[1], 0);
  EXPECT_NEAR(stay.probability, p + (1 - p) * memory, 5 * stay.standard_error);
  EXPECT_NEAR(capture.probability, p * (1 - memory), 5 * capture.standard_error);
  // The lag correlation of a stationary two-state chain is P(1|1) - P(1|0) = exp(-(lc + le) dt).
  EXPECT_NEAR(stay.probability - capture.probability, memory,
              5 * std::hypot(stay.standard_error, capture.standard_error));
  EXPECT_NEAR(fraction_equal(occupied[1], 1), p, 5 * binomial_standard_error(p, static_cast<double>(traps.size())));
}

TEST(Rtn, EachReadIsConditionedOnThePreviousOne) {
  // Markov property: the correlation between reads a and b is exp(-(lc + le)(t_b - t_a)) for any
  // pair, so both adjacent reads and the first and last read match it.
  const std::vector<double> times = {0.0, 0.1, 0.2, 0.3, 0.4};
  RandomStream rng(46, "rtn");
  const auto occupied = rtn_occupancy(MatrixI::Ones(400, 400), rtn_options(), times, rng);
  const auto check_lag_correlation = [&](int a, int b) {
    const Conditional stay = occupancy_given(occupied[a], occupied[b], 1);
    const Conditional capture = occupancy_given(occupied[a], occupied[b], 0);
    EXPECT_NEAR(stay.probability - capture.probability, std::exp(-4.0 * (times[b] - times[a])),
                5 * std::hypot(stay.standard_error, capture.standard_error))
        << "reads " << a << " and " << b;
  };
  check_lag_correlation(3, 4);
  check_lag_correlation(0, 4);
}

TEST(Rtn, InvalidTimesOptionsOrMapsThrow) {
  RandomStream rng(47, "rtn");
  const MatrixI traps = MatrixI::Ones(4, 4);
  EXPECT_THROW(rtn_occupancy(traps, rtn_options(), {0.0, 1.0, 0.5}, rng), std::invalid_argument);
  EXPECT_THROW(rtn_occupancy(traps, rtn_options(), {0.0, NAN}, rng), std::invalid_argument);
  MatrixI not_binary = traps;
  not_binary(2, 2) = 2;
  EXPECT_THROW(rtn_occupancy(not_binary, rtn_options(), {0.0}, rng), std::invalid_argument);
  RtnOptions no_rates = rtn_options();
  no_rates.capture_rate = no_rates.emission_rate = 0;
  EXPECT_THROW(rtn_occupancy(traps, no_rates, {0.0}, rng), std::invalid_argument);
  EXPECT_THROW(rtn_trap_map(4, 4, rtn_options(1.5), rng), std::invalid_argument);
  RtnOptions too_large = rtn_options();
  too_large.amplitude_rel = 1.5;
  Eigen::MatrixXd g = Eigen::MatrixXd::Ones(4, 4);
  EXPECT_THROW(apply_rtn(g, traps, too_large), std::invalid_argument);
  EXPECT_THROW(apply_rtn(g, MatrixI::Ones(4, 5), rtn_options()), std::invalid_argument);
}

TEST(Rtn, ApplyRtnScalesExactlyTheOccupiedCells) {
  Eigen::MatrixXd g(2, 3);
  g << 1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6e-6;
  const Eigen::MatrixXd before = g;
  MatrixI occupied(2, 3);
  occupied << 1, 0, 0, 0, 1, 1;
  apply_rtn(g, occupied, rtn_options());  // amplitude_rel = 0.2
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      EXPECT_DOUBLE_EQ(g(i, j), occupied(i, j) == 1 ? 0.8 * before(i, j) : before(i, j)) << i << "," << j;
}

// ---------------------------------------------------------------------------------------------
// Reproducibility

TEST(Determinism, TheSameStreamGivesTheSameOutputs) {
  const RtnOptions options = rtn_options(0.5);
  const auto run = [&](RandomStream rng) {
    struct Outputs {
      Eigen::MatrixXd gaussian, lognormal;
      MatrixI stuck, traps;
      std::vector<MatrixI> occupied;
    } out;
    out.gaussian = gaussian_field(25, 35, 1.0, 1.5, rng);
    out.lognormal = lognormal_field(25, 35, 0.3, 1.5, rng);
    out.stuck = stuck_at_map(25, 35, 0.1, 0.1, rng);
    out.traps = rtn_trap_map(25, 35, options, rng);
    out.occupied = rtn_occupancy(out.traps, options, {0.0, 0.3, 0.7}, rng);
    return out;
  };
  const auto a = run(RandomStream(50, "tile", {0})), b = run(RandomStream(50, "tile", {0}));
  const auto c = run(RandomStream(50, "tile", {1}));
  EXPECT_EQ(a.gaussian, b.gaussian);
  EXPECT_EQ(a.lognormal, b.lognormal);
  EXPECT_EQ(a.stuck, b.stuck);
  EXPECT_EQ(a.traps, b.traps);
  EXPECT_EQ(a.occupied, b.occupied);
  EXPECT_NE(a.gaussian, c.gaussian);
  EXPECT_NE(a.lognormal, c.lognormal);
  EXPECT_NE(a.stuck, c.stuck);
  EXPECT_NE(a.traps, c.traps);
}

}  // namespace
}  // namespace xbar::noise
