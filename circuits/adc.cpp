#include "circuits/adc.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace xbar::circuits {

Adc::Adc(const core::AdcOptions& options, int channels, double default_full_scale, core::RandomStream& errors_rng)
    : options_(options),
      full_code_(options.bits > 0 ? std::ldexp(1.0, options.bits - 1) - 1.0 : 0.0),
      default_full_scale_(default_full_scale) {
  range_ = Eigen::VectorXd::Constant(channels, options.i_max > 0 ? options.i_max : default_full_scale);
  offset_.resize(channels);
  gain_.resize(channels);
  for (int k = 0; k < channels; ++k) offset_[k] = options.offset_sigma * errors_rng.normal();
  for (int k = 0; k < channels; ++k) gain_[k] = options.gain_sigma * errors_rng.normal();
  const int codes = options.bits > 0 ? 2 * static_cast<int>(full_code_) + 1 : 0;
  inl_ = Eigen::VectorXd::Zero(codes);
  for (int c = 0; c < codes; ++c) {
    if (!options.inl_lsb.empty()) inl_[c] = options.inl_lsb[c];
    inl_[c] += options.inl_sigma_lsb * errors_rng.normal();
  }
}

void Adc::calibrate(const Eigen::MatrixXd& currents) {
  const Eigen::Index n = currents.cols();
  if (n == 0) return;
  const auto index = static_cast<std::size_t>(
      std::clamp<double>(std::ceil(options_.calibration_percentile / 100.0 * static_cast<double>(n)) - 1.0, 0.0,
                         static_cast<double>(n - 1)));
  std::vector<double> magnitudes(n);
  for (Eigen::Index k = 0; k < currents.rows(); ++k) {
    for (Eigen::Index b = 0; b < n; ++b) magnitudes[b] = std::fabs(currents(k, b));
    std::nth_element(magnitudes.begin(), magnitudes.begin() + index, magnitudes.end());
    range_[k] = magnitudes[index] > 0 ? magnitudes[index] : default_full_scale_;
  }
}

void Adc::convert(const Eigen::MatrixXd& currents, core::RandomStream& noise_rng, Eigen::MatrixXd& code,
                  Eigen::MatrixXd& i_hat) const {
  code.resize(currents.rows(), currents.cols());
  i_hat.resize(currents.rows(), currents.cols());
  const int inl_reach = inl_.size() ? static_cast<int>(std::ceil(inl_.cwiseAbs().maxCoeff())) + 1 : 0;
  for (Eigen::Index b = 0; b < currents.cols(); ++b) {
    for (Eigen::Index k = 0; k < currents.rows(); ++k) {
      double measured = (1.0 + gain_[k]) * currents(k, b) + offset_[k];
      if (options_.noise_sigma > 0) measured += options_.noise_sigma * noise_rng.normal();
      if (ideal()) {
        code(k, b) = measured / range_[k];
        i_hat(k, b) = measured;
        continue;
      }
      const double lsb = range_[k] / full_code_;
      const double x = measured / lsb;
      // Nearest code centre c + INL[c], searched around the ideal code.
      const double nearest = std::clamp(std::nearbyint(x), -full_code_, full_code_);
      double best = nearest, best_distance = std::numeric_limits<double>::infinity();
      for (int delta = -inl_reach; delta <= inl_reach; ++delta) {
        const double c = nearest + delta;
        if (c < -full_code_ || c > full_code_) continue;
        const double distance = std::fabs(x - (c + inl_[static_cast<Eigen::Index>(c + full_code_)]));
        if (distance < best_distance) {
          best = c;
          best_distance = distance;
        }
      }
      code(k, b) = best;
      i_hat(k, b) = best * lsb;
    }
  }
}

}  // namespace xbar::circuits
