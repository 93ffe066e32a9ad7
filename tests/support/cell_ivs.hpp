// Cell I-V characteristics written independently of the library's, for solver tests.
#pragma once

#include <cmath>
#include <string>

#include "devices/device.hpp"

namespace xbar::testing_support {

// I = g · v_read · sinh(v / v0) / sinh(v_read / v0).
class SinhIv final : public devices::CellIv {
 public:
  SinhIv(double v0, double v_read) : v0_(v0), v_read_(v_read) {}
  void current(double g, double v, double& i, double& di_dv) const override {
    const double k = g * v_read_ / std::sinh(v_read_ / v0_);
    i = k * std::sinh(v / v0_);
    di_dv = k * std::cosh(v / v0_) / v0_;
  }
  std::string spice_current(double, const std::string&) const override { return ""; }

 private:
  double v0_, v_read_;
};

// An ohmic device written as a "nonlinear" I-V: Newton must finish in its first iteration.
class OhmicIv final : public devices::CellIv {
 public:
  void current(double g, double v, double& i, double& di_dv) const override {
    i = g * v;
    di_dv = g;
  }
  std::string spice_current(double, const std::string&) const override { return ""; }
};

}  // namespace xbar::testing_support
