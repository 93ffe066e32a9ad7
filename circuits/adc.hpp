// The column ADC: channel currents (A) -> integer codes -> the digital estimate of the current.
//
// Channel k converts i_meas = (1 + gain_k) i + offset_k + n, n ~ N(0, noise_sigma) fresh for
// every conversion. With bits > 0 the code is the integer c in [-Q, Q] (Q = 2^(bits-1) - 1)
// whose centre (c + INL[c]) * lsb_k lies nearest to i_meas, lsb_k = range_k / Q; the periphery,
// unaware of the errors, takes c * lsb_k as the current. bits = 0 is an ideal converter: no
// quantisation and no clipping (errors, if set, still apply); its "code" is i_meas / range_k.
// Offsets, gains and the random part of the INL are drawn once per tile (adc_errors stream).
#pragma once

#include <Eigen/Dense>

#include "core/card.hpp"
#include "core/random.hpp"

namespace xbar::circuits {

class Adc {
 public:
  // `default_full_scale` (A) is the range used by a fixed range with i_max = 0, and the fallback
  // of a calibrated channel whose calibration currents are all zero.
  Adc(const core::AdcOptions& options, int channels, double default_full_scale, core::RandomStream& errors_rng);

  // Sets every channel's range from calibration currents (K×N): the card's percentile of |i|.
  void calibrate(const Eigen::MatrixXd& currents);

  // Converts K×B currents. `code` gets the codes (integers unless ideal), `i_hat` the digital
  // current estimates (A).
  void convert(const Eigen::MatrixXd& currents, core::RandomStream& noise_rng, Eigen::MatrixXd& code,
               Eigen::MatrixXd& i_hat) const;

  bool ideal() const { return options_.bits == 0; }
  int channels() const { return static_cast<int>(range_.size()); }
  double full_code() const { return full_code_; }
  const Eigen::VectorXd& range() const { return range_; }      // A, per channel
  const Eigen::VectorXd& offset() const { return offset_; }    // A, per channel
  const Eigen::VectorXd& gain_error() const { return gain_; }  // relative, per channel
  const Eigen::VectorXd& inl() const { return inl_; }          // LSB, codes -Q..Q
  const core::AdcOptions& options() const { return options_; }

 private:
  core::AdcOptions options_;
  double full_code_;  // Q
  double default_full_scale_;
  Eigen::VectorXd range_, offset_, gain_, inl_;
};

}  // namespace xbar::circuits
