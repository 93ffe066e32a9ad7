// A known rram-step device and ramps drawn from it, for fit and validation tests.
#pragma once

#include <cstdint>
#include <vector>

#include "core/random.hpp"
#include "devices/step_model.hpp"

namespace xbar::testing_support {

// Known parameters (S): linear soft-bound tables over a 10-60 uS window (SET steps shrinking towards
// g_max, RESET steps growing in magnitude towards it), 10 % device-to-device variation, a SET
// reversal transient and none for RESET, no ageing. Ramps of 150 pulses from near one end cross
// most of the window without reaching the other bound, so no step is clamped.
inline devices::StepModelParams known_step_params() {
  constexpr double kUs = 1e-6;
  devices::StepModelParams p;
  p.g_min = 10 * kUs;
  p.g_max = 60 * kUs;
  p.g_nodes = {10 * kUs, 60 * kUs};
  p.up_mean = {0.40 * kUs, 0.05 * kUs};
  p.up_std = {0.10 * kUs, 0.05 * kUs};
  p.down_mean = {-0.05 * kUs, -0.40 * kUs};
  p.down_std = {0.05 * kUs, 0.10 * kUs};
  p.d2d_sigma_up = 0.1;
  p.d2d_sigma_down = 0.1;
  p.up_reversal_depth = 0.5;
  p.up_reversal_decay = 3.0;
  p.down_reversal_depth = 0.0;
  return p;
}

// `count` ramps of `pulses` pulses in one direction, each a fresh device at the cycle of its id
// (1, 2, ...): SET ramps start uniformly in [11, 13] uS, RESET ramps in [57, 59] uS (reference
// conductances: with a window drift, where those sit in the window of the ramp's cycle). The values are
// what a measurement records: reads of the state (device.read, with the model's read noise from a
// stream of its own, so that the hidden states do not depend on it), the first before any pulse.
inline std::vector<devices::Ramp> synthetic_ramps(const devices::StepDevice& device, bool up, int count, int pulses,
                                                  std::uint64_t seed) {
  std::vector<devices::Ramp> ramps;
  for (int k = 0; k < count; ++k) {
    core::RandomStream rng(seed, "synthetic_ramp", {up ? 1u : 0u, static_cast<std::uint64_t>(k)});
    core::RandomStream reads(seed, "synthetic_read", {up ? 1u : 0u, static_cast<std::uint64_t>(k)});
    const double start_ref = up ? rng.uniform(11e-6, 13e-6) : rng.uniform(57e-6, 59e-6);
    const double start = device.window_conductance(start_ref, k + 1);  // the window drifts with the cycle
    devices::CellState state = device.initial_state_at(start, k + 1, rng);
    devices::Ramp ramp{k + 1, {device.read(state, reads)}};
    for (int i = 0; i < pulses; ++i) {
      device.apply_pulse(state, devices::Pulse{up ? 1.0 : -1.0, 0.0}, rng);
      ramp.g.push_back(device.read(state, reads));
    }
    ramps.push_back(std::move(ramp));
  }
  return ramps;
}

// Both directions.
inline devices::RampData synthetic_ramp_data(const devices::StepDevice& device, int count, int pulses,
                                             std::uint64_t seed) {
  devices::RampData data;
  data.set = synthetic_ramps(device, true, count, pulses, seed);
  data.reset = synthetic_ramps(device, false, count, pulses, seed);
  return data;
}

}  // namespace xbar::testing_support
