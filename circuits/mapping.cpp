#include "circuits/mapping.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace xbar::circuits {

Mapping::Mapping(const core::MappingOptions& options, double g_min, double g_max, int rows, int cols, int outputs)
    : options_(options), g_min_(g_min), g_max_(g_max), rows_(rows), cols_(cols), outputs_(outputs) {
  if (outputs < 1 || outputs > core::outputs_that_fit(options, cols))
    throw core::UserError("mapping: " + std::to_string(outputs) + " outputs do not fit in " + std::to_string(cols) +
                          " columns");
  column_output_.assign(cols, -1);
  column_slice_.assign(cols, 0);
  column_sign_.assign(cols, 0);
  const int slices = options.slices;
  for (int k = 0; k < outputs; ++k)
    for (int s = 0; s < slices; ++s) {
      const int channel = k * slices + s;
      if (options.scheme == core::MappingScheme::differential) {
        for (int side = 0; side < 2; ++side) {
          column_output_[2 * channel + side] = k;
          column_slice_[2 * channel + side] = s;
          column_sign_[2 * channel + side] = side == 0 ? 1 : -1;
        }
      } else {
        column_output_[channel] = k;
        column_slice_[channel] = s;
        column_sign_[channel] = 1;
      }
    }
  if (options.bits_per_slice == 0) {
    significance_ = {1.0};
  } else {
    const double base = std::ldexp(1.0, options.bits_per_slice);
    const double levels = std::pow(base, slices) - 1.0;
    for (int s = 0; s < slices; ++s) significance_.push_back(std::pow(base, slices - 1 - s) * (base - 1.0) / levels);
  }
}

double Mapping::level_of(double w) const {
  const double clipped = std::clamp(w, -options_.w_max, options_.w_max);
  return options_.scheme == core::MappingScheme::differential ? std::fabs(clipped) / options_.w_max
                                                              : (clipped + options_.w_max) / (2.0 * options_.w_max);
}

std::vector<double> Mapping::slice_levels(double level) const {
  if (options_.bits_per_slice == 0) return {level};
  const int slices = options_.slices;
  const auto base = static_cast<long long>(1) << options_.bits_per_slice;
  long long total = 1;
  for (int s = 0; s < slices; ++s) total *= base;
  auto n = static_cast<long long>(std::llround(level * static_cast<double>(total - 1)));
  std::vector<double> digits(slices);
  for (int s = slices - 1; s >= 0; --s) {
    digits[s] = static_cast<double>(n % base) / static_cast<double>(base - 1);
    n /= base;
  }
  return digits;
}

Eigen::MatrixXd Mapping::target_conductances(const Eigen::MatrixXd& weights) const {
  if (weights.rows() != outputs_ || weights.cols() != rows_)
    throw core::UserError("mapping: weights are " + std::to_string(weights.rows()) + "x" +
                          std::to_string(weights.cols()) + ", expected " + std::to_string(outputs_) + "x" +
                          std::to_string(rows_) + " (outputs x inputs)");
  const double dg = g_max_ - g_min_;
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(rows_, cols_, g_min_);
  const int slices = options_.slices;
  for (int k = 0; k < outputs_; ++k)
    for (int i = 0; i < rows_; ++i) {
      const double w = weights(k, i);
      const std::vector<double> digits = slice_levels(level_of(w));
      for (int s = 0; s < slices; ++s) {
        const int channel = k * slices + s;
        int column = channel;
        if (options_.scheme == core::MappingScheme::differential) column = 2 * channel + (w < 0 ? 1 : 0);
        g(i, column) = g_min_ + digits[s] * dg;
      }
    }
  return g;
}

Eigen::MatrixXd Mapping::represented_weights(const Eigen::MatrixXd& weights) const {
  return weights.unaryExpr([this](double w) {
    const std::vector<double> digits = slice_levels(level_of(w));
    double level = 0;
    for (std::size_t s = 0; s < digits.size(); ++s) level += significance_[s] * digits[s];
    return options_.scheme == core::MappingScheme::differential ? std::copysign(level * options_.w_max, w)
                                                                : (2.0 * level - 1.0) * options_.w_max;
  });
}

Eigen::MatrixXd Mapping::channel_currents(const Eigen::MatrixXd& column_currents) const {
  Eigen::MatrixXd channels(this->channels(), column_currents.cols());
  for (int c = 0; c < this->channels(); ++c) {
    if (options_.scheme == core::MappingScheme::differential)
      channels.row(c) = column_currents.row(2 * c) - column_currents.row(2 * c + 1);
    else
      channels.row(c) = column_currents.row(c) - column_currents.row(cols_ - 1);
  }
  return channels;
}

Eigen::MatrixXd Mapping::outputs_from_channels(const Eigen::MatrixXd& channel_currents, const Eigen::MatrixXd& x_q,
                                               double volts_per_input) const {
  const double dg = g_max_ - g_min_;
  const bool reference = options_.scheme == core::MappingScheme::reference;
  const double scale = (reference ? 2.0 : 1.0) * options_.w_max / (dg * volts_per_input);
  Eigen::MatrixXd y = Eigen::MatrixXd::Zero(outputs_, channel_currents.cols());
  for (int k = 0; k < outputs_; ++k)
    for (int s = 0; s < options_.slices; ++s)
      y.row(k) += scale * significance_[s] * channel_currents.row(k * options_.slices + s);
  if (reference) y.rowwise() -= options_.w_max * x_q.colwise().sum();
  return y;
}

}  // namespace xbar::circuits
