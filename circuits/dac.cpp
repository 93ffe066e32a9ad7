#include "circuits/dac.hpp"

#include <algorithm>
#include <cmath>

namespace xbar::circuits {

Dac::Dac(const core::DacOptions& options)
    : options_(options),
      planes_(options.encoding == core::Encoding::bit_serial ? options.bits - 1 : 1),
      full_code_(options.bits > 0 ? std::ldexp(1.0, options.bits - 1) - 1.0 : 1.0) {}

double Dac::code(double x) const {
  const double ratio = std::clamp(x / options_.input_max, -1.0, 1.0);
  return options_.bits > 0 ? std::nearbyint(ratio * full_code_) : ratio;
}

Eigen::MatrixXd Dac::quantize(const Eigen::MatrixXd& x) const {
  return x.unaryExpr([this](double value) { return code(value) / full_code_ * options_.input_max; });
}

Eigen::MatrixXd Dac::voltages(const Eigen::MatrixXd& x, int plane) const {
  if (options_.encoding == core::Encoding::amplitude)
    return x.unaryExpr([this](double value) { return code(value) / full_code_ * options_.v_read; });
  return x.unaryExpr([this, plane](double value) {
    const double c = code(value);
    const auto magnitude = static_cast<long long>(std::fabs(c));
    const bool set = (magnitude >> plane) & 1;
    return set ? std::copysign(options_.v_read, c) : 0.0;
  });
}

double Dac::plane_weight(int plane) const {
  return options_.encoding == core::Encoding::amplitude ? 1.0 : std::ldexp(1.0, plane) / full_code_;
}

}  // namespace xbar::circuits
