// Signed weights -> conductances, and digitised channel currents -> weight-domain outputs.
//
// Let dg = g_max - g_min, S = slices, b = bits_per_slice, L = 2^b, N = L^S - 1.
// differential: output k, slice s uses columns 2(kS+s) (positive) and 2(kS+s)+1 (negative);
//   a weight w puts its magnitude on the column of its sign and g_min on the other:
//   analog (b = 0): g = g_min + |w|/w_max dg; sliced: n = round(|w|/w_max N) in base L, slice s
//   holding digit d_s (s = 0 most significant) as g = g_min + d_s/(L-1) dg.
//   The ADC channel kS+s digitises i(+) - i(-).
// reference: output k, slice s uses column kS+s, and the last column is a shared reference of
//   g_min cells; the weight is stored offset, u = (w + w_max) / (2 w_max) in [0, 1], as above;
//   channel kS+s digitises i(col) - i(ref); the periphery removes the offset digitally
//   (y -= w_max * sum(x_q)).
// Output: y_k = c * sum_s sig_s * I_ks / (dg * v_per_x) (- w_max sum x_q for reference), with
//   sig_s = L^(S-1-s) (L-1) / N (1 for analog), c = w_max (differential) or 2 w_max (reference),
//   I_ks the digitised channel current (shifted and added over DAC planes), v_per_x = v_read /
//   input_max. With ideal parts and no wires, y = W_rep x_q exactly, W_rep = the represented
//   (clipped, sliced) weights.
// Columns that hold no weight are programmed to g_min and not digitised.
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "core/card.hpp"

namespace xbar::circuits {

class Mapping {
 public:
  Mapping(const core::MappingOptions& options, double g_min, double g_max, int rows, int cols, int outputs);

  int inputs() const { return rows_; }
  int outputs() const { return outputs_; }
  int channels() const { return outputs_ * options_.slices; }
  int rows() const { return rows_; }
  int cols() const { return cols_; }

  // Target conductances (rows × cols, S) for weights W (outputs × inputs).
  Eigen::MatrixXd target_conductances(const Eigen::MatrixXd& weights) const;
  // The weights the conductance targets represent (clipped to ±w_max, quantised when sliced).
  Eigen::MatrixXd represented_weights(const Eigen::MatrixXd& weights) const;
  // Channel currents (channels × B) from column currents (cols × B).
  Eigen::MatrixXd channel_currents(const Eigen::MatrixXd& column_currents) const;
  // Outputs (outputs × B) from digitised channel currents (channels × B) and the quantised inputs
  // (inputs × B); volts_per_input = v_read / input_max.
  Eigen::MatrixXd outputs_from_channels(const Eigen::MatrixXd& channel_currents, const Eigen::MatrixXd& x_q,
                                        double volts_per_input) const;
  // Per physical column: output (-1 if none), slice, sign (+1, -1; 0 for the reference column).
  const std::vector<int>& column_output() const { return column_output_; }
  const std::vector<int>& column_slice() const { return column_slice_; }
  const std::vector<int>& column_sign() const { return column_sign_; }
  const core::MappingOptions& options() const { return options_; }
  // Largest channel current magnitude the mapping can produce at full-scale inputs (A per volt
  // of v_read): rows * dg.
  double full_scale_conductance() const { return rows_ * (g_max_ - g_min_); }

 private:
  // Slice digits (most significant first) of a level in [0, 1], each in [0, 1] (d_s / (L-1)).
  std::vector<double> slice_levels(double level) const;
  double level_of(double w) const;  // in [0, 1]: |w|/w_max (differential) or (w + w_max)/(2 w_max)

  core::MappingOptions options_;
  double g_min_, g_max_;
  int rows_, cols_, outputs_;
  std::vector<int> column_output_, column_slice_, column_sign_;
  std::vector<double> significance_;  // sig_s
};

}  // namespace xbar::circuits
