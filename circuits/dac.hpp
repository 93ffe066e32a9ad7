// The row DAC: digital inputs -> row voltages.
//
// amplitude: code = round(clip(x / input_max, -1, 1) * Q), Q = 2^(bits-1) - 1 (sign and
//   magnitude, symmetric), one read with v = code / Q * v_read. bits = 0: unquantised.
// bit_serial: the same code, applied one magnitude bit per read: plane p (0 = least significant)
//   puts sign(code) * v_read on the rows whose bit p of |code| is set and 0 V elsewhere; the
//   digitised plane results are shifted and added with weight 2^p / Q.
// In both cases sum_p plane_weight(p) * v_plane(p) = x_q * v_read / input_max, where x_q is the
// quantised input the digital periphery knows.
#pragma once

#include <Eigen/Dense>

#include "core/card.hpp"

namespace xbar::circuits {

class Dac {
 public:
  explicit Dac(const core::DacOptions& options);

  int planes() const { return planes_; }
  // The quantised inputs x_q (same shape as x), in input units.
  Eigen::MatrixXd quantize(const Eigen::MatrixXd& x) const;
  // Row voltages (V) of plane `plane` for inputs x (R×B).
  Eigen::MatrixXd voltages(const Eigen::MatrixXd& x, int plane) const;
  // Weight of plane `plane` in the shift-and-add (1 for amplitude encoding).
  double plane_weight(int plane) const;
  // Volts per input unit: v_read / input_max.
  double volts_per_input() const { return options_.v_read / options_.input_max; }
  const core::DacOptions& options() const { return options_; }

 private:
  // Signed integer code of one input (amplitude and bit-serial), or the clipped ratio when ideal.
  double code(double x) const;
  core::DacOptions options_;
  int planes_;
  double full_code_;  // Q
};

}  // namespace xbar::circuits
