#include "noise/noise.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace xbar::noise {

namespace {

using RowMajorMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Throws std::invalid_argument naming the function, the argument, its value and the constraint.
void require(bool ok, const char* function, const char* argument, double value, const char* constraint) {
  if (ok) return;
  std::ostringstream message;
  message << "noise::" << function << ": " << argument << " = " << value << " must be " << constraint;
  throw std::invalid_argument(message.str());
}

void require_shape(int rows, int cols, const char* function) {
  require(rows >= 0, function, "rows", rows, ">= 0");
  require(cols >= 0, function, "cols", cols, ">= 0");
}

template <class A, class B>
void require_same_shape(const A& a, const B& b, const char* function) {
  if (a.rows() == b.rows() && a.cols() == b.cols()) return;
  std::ostringstream message;
  message << "noise::" << function << ": map is " << b.rows() << "x" << b.cols() << " but conductances are "
          << a.rows() << "x" << a.cols();
  throw std::invalid_argument(message.str());
}

void require_binary(const MatrixI& map, const char* function, const char* argument) {
  if (((map.array() == 0) || (map.array() == 1)).all()) return;
  throw std::invalid_argument(std::string("noise::") + function + ": " + argument + " must hold only 0 and 1");
}

void validate(const RtnOptions& options, const char* function) {
  const auto in_unit_interval = [](double x) { return x >= 0 && x <= 1; };  // false for NaN
  require(in_unit_interval(options.fraction), function, "fraction", options.fraction, "in [0, 1]");
  require(in_unit_interval(options.amplitude_rel), function, "amplitude_rel", options.amplitude_rel, "in [0, 1]");
  require(options.capture_rate >= 0 && std::isfinite(options.capture_rate), function, "capture_rate",
          options.capture_rate, "finite and >= 0");
  require(options.emission_rate >= 0 && std::isfinite(options.emission_rate), function, "emission_rate",
          options.emission_rate, "finite and >= 0");
  require(options.capture_rate + options.emission_rate > 0, function, "capture_rate + emission_rate",
          options.capture_rate + options.emission_rate, "> 0");
}

// Standard normal draws filled in row-major order (the drawing order every function promises).
Eigen::MatrixXd standard_normals(int rows, int cols, core::RandomStream& rng) {
  RowMajorMatrixXd white(rows, cols);
  for (Eigen::Index k = 0; k < white.size(); ++k) white.data()[k] = rng.normal();
  return white;
}

// Gaussian taps exp(-d^2 / (2 L^2)) for d = -h..h with h = ceil(4 L), scaled so that the sum of
// squared taps is 1. The 2-D kernel is the outer product of two of these, so its squared taps
// also sum to 1: white N(0, 1) noise filtered by it has unit marginal variance.
Eigen::VectorXd unit_energy_gaussian_taps(double correlation_length_cells) {
  const int half_width = static_cast<int>(std::ceil(4 * correlation_length_cells));
  Eigen::VectorXd taps(2 * half_width + 1);
  for (int d = -half_width; d <= half_width; ++d)
    taps(d + half_width) = std::exp(-0.5 * d * d / (correlation_length_cells * correlation_length_cells));
  return taps / taps.norm();
}

}  // namespace

Eigen::MatrixXd gaussian_field(int rows, int cols, double sigma, double correlation_length_cells,
                               core::RandomStream& rng) {
  require_shape(rows, cols, "gaussian_field");
  require(sigma >= 0 && std::isfinite(sigma), "gaussian_field", "sigma", sigma, "finite and >= 0");
  require(correlation_length_cells >= 0 && std::isfinite(correlation_length_cells), "gaussian_field",
          "correlation_length_cells", correlation_length_cells, "finite and >= 0");
  if (correlation_length_cells == 0) return sigma * standard_normals(rows, cols, rng);

  // The white field is drawn on a grid padded by the kernel half-width on every side, so that
  // each output cell, edges included, is filtered by the complete kernel and has exactly the same
  // marginal variance. The separable filter runs along rows, then along columns.
  const Eigen::VectorXd taps = unit_energy_gaussian_taps(correlation_length_cells);
  const int half_width = static_cast<int>(taps.size() / 2);
  const Eigen::MatrixXd white = standard_normals(rows + 2 * half_width, cols + 2 * half_width, rng);
  Eigen::MatrixXd along_rows = Eigen::MatrixXd::Zero(white.rows(), cols);
  for (Eigen::Index k = 0; k < taps.size(); ++k) along_rows += taps(k) * white.middleCols(k, cols);
  Eigen::MatrixXd field = Eigen::MatrixXd::Zero(rows, cols);
  for (Eigen::Index k = 0; k < taps.size(); ++k) field += taps(k) * along_rows.middleRows(k, rows);
  return sigma * field;
}

Eigen::MatrixXd lognormal_field(int rows, int cols, double sigma_log, double correlation_length_cells,
                                core::RandomStream& rng) {
  require(sigma_log >= 0 && std::isfinite(sigma_log), "lognormal_field", "sigma_log", sigma_log, "finite and >= 0");
  const Eigen::MatrixXd z = gaussian_field(rows, cols, 1.0, correlation_length_cells, rng);
  return (sigma_log * z.array() - 0.5 * sigma_log * sigma_log).exp().matrix();
}

MatrixI stuck_at_map(int rows, int cols, double rate_low, double rate_high, core::RandomStream& rng) {
  require_shape(rows, cols, "stuck_at_map");
  require(rate_low >= 0, "stuck_at_map", "rate_low", rate_low, ">= 0");
  require(rate_high >= 0, "stuck_at_map", "rate_high", rate_high, ">= 0");
  require(rate_low + rate_high <= 1, "stuck_at_map", "rate_low + rate_high", rate_low + rate_high, "<= 1");
  MatrixI map(rows, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) {
      const double u = rng.uniform();
      map(i, j) = u < rate_low ? -1 : (u < rate_low + rate_high ? 1 : 0);
    }
  }
  return map;
}

void apply_stuck_at(Eigen::MatrixXd& g, const MatrixI& fault_map, double g_low, double g_high) {
  require_same_shape(g, fault_map, "apply_stuck_at");
  if (((fault_map.array() < -1) || (fault_map.array() > 1)).any())
    throw std::invalid_argument("noise::apply_stuck_at: fault_map must hold only -1, 0 and +1");
  for (Eigen::Index j = 0; j < g.cols(); ++j) {
    for (Eigen::Index i = 0; i < g.rows(); ++i) {
      if (fault_map(i, j) == -1) g(i, j) = g_low;
      if (fault_map(i, j) == 1) g(i, j) = g_high;
    }
  }
}

MatrixI rtn_trap_map(int rows, int cols, const RtnOptions& options, core::RandomStream& rng) {
  require_shape(rows, cols, "rtn_trap_map");
  validate(options, "rtn_trap_map");
  MatrixI map(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) map(i, j) = rng.uniform() < options.fraction ? 1 : 0;
  return map;
}

std::vector<MatrixI> rtn_occupancy(const MatrixI& trap_map, const RtnOptions& options,
                                   const std::vector<double>& times_s, core::RandomStream& rng) {
  validate(options, "rtn_occupancy");
  require_binary(trap_map, "rtn_occupancy", "trap_map");
  for (std::size_t k = 0; k < times_s.size(); ++k) {
    const std::string name = "times_s[" + std::to_string(k) + "]";
    require(std::isfinite(times_s[k]), "rtn_occupancy", name.c_str(), times_s[k], "finite");
    if (k > 0)
      require(times_s[k] >= times_s[k - 1], "rtn_occupancy", name.c_str(), times_s[k],
              ">= the previous time (times must be non-decreasing)");
  }

  const double p = options.occupancy();
  const double total_rate = options.capture_rate + options.emission_rate;
  std::vector<MatrixI> occupied;
  occupied.reserve(times_s.size());
  for (std::size_t k = 0; k < times_s.size(); ++k) {
    // Probability of being occupied now given the previous state: the exact transition
    // probabilities of the two-state chain over dt. The first read has no previous state and is
    // drawn from the stationary distribution (both values p).
    double p_if_occupied = p, p_if_empty = p;
    if (k > 0) {
      const double memory = std::exp(-total_rate * (times_s[k] - times_s[k - 1]));
      p_if_occupied = p + (1 - p) * memory;
      p_if_empty = p * (1 - memory);
    }
    MatrixI now = MatrixI::Zero(trap_map.rows(), trap_map.cols());
    for (Eigen::Index i = 0; i < trap_map.rows(); ++i) {
      for (Eigen::Index j = 0; j < trap_map.cols(); ++j) {
        if (trap_map(i, j) == 0) continue;
        const bool was_occupied = k > 0 && occupied.back()(i, j) == 1;
        now(i, j) = rng.uniform() < (was_occupied ? p_if_occupied : p_if_empty) ? 1 : 0;
      }
    }
    occupied.push_back(std::move(now));
  }
  return occupied;
}

void apply_rtn(Eigen::MatrixXd& g, const MatrixI& occupied, const RtnOptions& options) {
  validate(options, "apply_rtn");
  require_same_shape(g, occupied, "apply_rtn");
  require_binary(occupied, "apply_rtn", "occupied");
  const double factor = 1 - options.amplitude_rel;
  for (Eigen::Index j = 0; j < g.cols(); ++j)
    for (Eigen::Index i = 0; i < g.rows(); ++i)
      if (occupied(i, j) == 1) g(i, j) *= factor;
}

}  // namespace xbar::noise
