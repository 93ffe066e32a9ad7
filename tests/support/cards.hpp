// Small cards with the built-in device models, for device and tile tests.
#pragma once

#include <Eigen/Dense>

#include <string>
#include <vector>

#include "core/card.hpp"
#include "core/card_schema.hpp"
#include "devices/registry.hpp"

namespace xbar::testing_support {

// A rows × cols tile of device `model` with window [g_min, g_max] (S), 1 ohm lines, ideal DAC and
// ADC, the direct solver and one read at t = 0; `overrides` as for --set.
inline core::Card device_card(const std::string& model, const std::vector<std::string>& overrides = {}, int rows = 4,
                              int cols = 4, double g_min = 1e-6, double g_max = 40e-6) {
  const auto& registry = devices::builtin_devices();
  const std::string text = "seed: 1\ntile: {rows: " + std::to_string(rows) + ", cols: " + std::to_string(cols) +
                           ", wires: {r_wl_segment: 1, r_bl_segment: 1, r_source: 0, r_sense: 0}}\n"
                           "device: {model: " + model + ", g_min: " + core::spec::yaml(g_min) +
                           ", g_max: " + core::spec::yaml(g_max) +
                           "}\n"
                           "dac: {bits: 0, v_read: 0.2}\nadc: {bits: 0}\nmapping: {scheme: differential}\n"
                           "solver: {method: direct}\nworkload: {read_times: [0]}\n";
  return core::load_card_text(text, model + ".yaml", overrides, registry.param_lookup(), registry.names());
}

// Targets spread evenly over [g_min, g_max], row-major.
inline Eigen::MatrixXd spread_targets(int rows, int cols, double g_min, double g_max) {
  Eigen::MatrixXd target(rows, cols);
  for (int k = 0; k < rows * cols; ++k) target(k / cols, k % cols) = g_min + (g_max - g_min) * k / (rows * cols - 1.0);
  return target;
}

}  // namespace xbar::testing_support
