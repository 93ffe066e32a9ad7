// Nonlinear cell I-V characteristics.
//
// sinh: I = g · v_read · sinh(v / v0) / sinh(v_read / v0), the filament conduction of the
//   Stanford-PKU compact model (Jiang et al., SISPAD 2014 / IEEE TED 2016: I = I0 exp(-gap/g0)
//   sinh(V/V0)) rewritten with the read conductance g = I(v_read) / v_read.
//
// polynomial: I = G0 V + NL2 V^2 + NL3 V^3, the form of the read characteristic of HfO2 RRAM cells
//   in Milo et al., "Optimized programming algorithms for multilevel RRAM in hardware neural
//   networks", IEEE IRPS 2021 (doi:10.1109/IRPS46558.2021.9405119), valid for G0 in 50-225 uS and
//   |V| <= 0.5 V (the form used for IR-drop studies by Lepri et al., IEEE TED 2022).
//   NOT FROM THE PAPER: the paper's dependence of NL2 and NL3 on G0 could not be found (its full
//   text was not available to us). The card therefore sets NL2 = iv_nl2 · G0 and NL3 = iv_nl3 · G0
//   (a shape that scales with the state, as a sinh filament does); the defaults (0 and 1 V^-2,
//   +1 % over ohmic at 0.1 V, +25 % at 0.5 V) are illustrative, not fitted values.
#include "devices/cell_iv.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace xbar::devices {
namespace {

class SinhIv final : public CellIv {
 public:
  SinhIv(double v0, double v_read) : v0_(v0), v_read_(v_read) {
    if (!(v0 > 0) || !std::isfinite(v0)) throw std::invalid_argument("sinh I-V: v0 must be a positive number of volts");
    if (!(v_read > 0) || !std::isfinite(v_read))
      throw std::invalid_argument("sinh I-V: v_read must be a positive number of volts");
    // I = g · scale · sinh(v / v0) with scale = v_read / sinh(v_read / v0) (V).
    scale_ = v_read_ / std::sinh(v_read_ / v0_);
  }

  void current(double g, double v, double& i, double& di_dv) const override {
    const double u = v / v0_;
    i = g * scale_ * std::sinh(u);
    di_dv = g * scale_ * std::cosh(u) / v0_;
  }

  std::string spice_current(double g, const std::string& v) const override {
    return fmt::format("{:.17g}*sinh(({})/{:.17g})", g * scale_, v, v0_);
  }

 private:
  double v0_;
  double v_read_;
  double scale_;
};

class PolynomialIv final : public CellIv {
 public:
  PolynomialIv(double a2, double a3, double max_voltage) : a2_(a2), a3_(a3), max_voltage_(max_voltage) {}

  void current(double g, double v, double& i, double& di_dv) const override {
    const double nl2 = a2_ * g;
    const double nl3 = a3_ * g;
    i = v * (g + v * (nl2 + v * nl3));
    di_dv = g + v * (2.0 * nl2 + 3.0 * v * nl3);
  }

  std::string spice_current(double g, const std::string& v) const override {
    // Products instead of a power operator: every SPICE dialect parses them.
    return fmt::format("{0:.17g}*({3}) + {1:.17g}*({3})*({3}) + {2:.17g}*({3})*({3})*({3})", g, a2_ * g, a3_ * g, v);
  }

  double max_voltage() const override { return max_voltage_; }

 private:
  double a2_;
  double a3_;
  double max_voltage_;
};

}  // namespace

std::unique_ptr<CellIv> make_sinh_iv(double v0, double v_read) { return std::make_unique<SinhIv>(v0, v_read); }

std::unique_ptr<CellIv> make_polynomial_iv(double nl2_per_g0, double nl3_per_g0, double max_voltage) {
  return std::make_unique<PolynomialIv>(nl2_per_g0, nl3_per_g0, max_voltage);
}

std::vector<core::ParamSpec> cell_iv_params() {
  core::ParamSpec iv = core::spec::choice(
      "iv", "linear", {"linear", "polynomial"},
      "cell I-V in the circuit: linear (ohmic), or polynomial, I = G0 V + NL2 V^2 + NL3 V^3 with NL2 = iv_nl2 G0, "
      "NL3 = iv_nl3 G0 (the form of Milo et al. IRPS 2021 for HfO2 RRAM at 50-225 uS, |V| <= 0.5 V; its fitted "
      "coefficients are not reproduced here: set them from your data)");

  return {iv,
          core::spec::number("iv_nl2", "0", "1/V", -100, 100,
                             "polynomial I-V: NL2 / G0 (illustrative default, not a fitted value)"),
          core::spec::number("iv_nl3", "1", "1/V^2", -100, 100,
                             "polynomial I-V: NL3 / G0 (illustrative default, not a fitted value)"),
          core::spec::number("iv_max_voltage", "0.5", "V", 0, 10,
                             "polynomial I-V: largest |V| for which it is valid (the solver warns beyond)")};
}

std::unique_ptr<CellIv> make_cell_iv(const core::DeviceOptions& options) {
  if (options.text_param("iv") != "polynomial") return nullptr;
  return make_polynomial_iv(options.param("iv_nl2"), options.param("iv_nl3"), options.param("iv_max_voltage"));
}

}  // namespace xbar::devices
