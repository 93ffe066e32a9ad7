// Nonlinear cell I-V characteristics shared by device models.
#pragma once

#include <memory>
#include <vector>

#include "core/card_schema.hpp"

#include "devices/device.hpp"

namespace xbar::devices {

// I = g · v_read · sinh(v / v0) / sinh(v_read / v0): the sinh conduction of a filament (the
// Stanford-PKU RRAM model, I = I0 exp(-gap/g0) sinh(V/V0)), written in terms of the read
// conductance g = I(v_read) / v_read, so that every gap maps to one g.
std::unique_ptr<CellIv> make_sinh_iv(double v0, double v_read);

// A polynomial read characteristic I = G0 V + NL2 V^2 + NL3 V^3 with NL2 = nl2_per_g0 · G0 and
// NL3 = nl3_per_g0 · G0, g taken as G0 (the form of Milo et al., IRPS 2021), valid to max_voltage.
std::unique_ptr<CellIv> make_polynomial_iv(double nl2_per_g0, double nl3_per_g0, double max_voltage);

// The card parameters of a statistical model's cell I-V (`iv`: linear | polynomial, `iv_nl2`,
// `iv_nl3`, `iv_max_voltage`), and the I-V they ask for (nullptr for linear).
std::vector<core::ParamSpec> cell_iv_params();
std::unique_ptr<CellIv> make_cell_iv(const core::DeviceOptions& options);

}  // namespace xbar::devices
