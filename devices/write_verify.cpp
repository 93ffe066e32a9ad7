// Write-verify programming (incremental-step pulse programming, ISPP) for any PulseDevice.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <variant>

#include "core/error.hpp"
#include "devices/pulse.hpp"

namespace xbar::devices {
namespace {}  // namespace

std::vector<core::ParamSpec> write_verify_params(const WriteVerifyOptions& d) {
  std::vector<core::ParamSpec> specs;
  specs.push_back(core::spec::number("write_verify.v_set_start", core::spec::yaml(d.v_set_start), "V", 0, 20,
                                     "First SET pulse amplitude of write-verify (ISPP).", true));
  specs.push_back(core::spec::number("write_verify.v_reset_start", core::spec::yaml(d.v_reset_start), "V", 0, 20,
                                     "First RESET pulse amplitude (magnitude) of write-verify (ISPP).", true));
  specs.push_back(core::spec::number("write_verify.v_step", core::spec::yaml(d.v_step), "V", 0, 20,
                                     "Amplitude increment after each pulse in the same direction; the amplitude "
                                     "restarts from the start value when the direction reverses.",
                                     false));
  specs.push_back(core::spec::number("write_verify.v_max", core::spec::yaml(d.v_max), "V", 0, 20,
                                     "Largest pulse amplitude (magnitude) of write-verify.", true));
  specs.push_back(core::spec::number("write_verify.pulse_width", core::spec::yaml(d.pulse_width), "s", 0, 1,
                                     "Width of every write-verify programming pulse.", true));
  specs.push_back(core::spec::number("write_verify.tolerance", core::spec::yaml(d.tolerance), "S", 0, 1,
                                     "Half-width of the acceptance band: a cell is done when a verify read is "
                                     "within target ± tolerance.",
                                     true));
  specs.push_back(core::spec::integer("write_verify.max_pulses", std::to_string(d.max_pulses), 0, 100000,
                                      "Pulse budget per cell; a cell still outside the band after it is reported "
                                      "unconverged."));
  specs.push_back(core::spec::number("write_verify.read_noise_rel", core::spec::yaml(d.read_noise_rel), "1", 0, 1,
                                     "Relative standard deviation of each verify read (fresh Gaussian noise per read).",
                                     false));
  return specs;
}

WriteVerifyOptions write_verify_options(const core::DeviceOptions& options) {
  WriteVerifyOptions wv;
  wv.v_set_start = options.param("write_verify.v_set_start");
  wv.v_reset_start = options.param("write_verify.v_reset_start");
  wv.v_step = options.param("write_verify.v_step");
  wv.v_max = options.param("write_verify.v_max");
  wv.pulse_width = options.param("write_verify.pulse_width");
  wv.tolerance = options.param("write_verify.tolerance");
  wv.max_pulses = static_cast<int>(options.integer_param("write_verify.max_pulses"));
  wv.read_noise_rel = options.param("write_verify.read_noise_rel");
  // Constraints between fields (each field's own range is checked by the card loader).
  if (wv.v_set_start > wv.v_max)
    throw core::UserError(fmt::format("device.write_verify.v_set_start: expected <= v_max ({:g} V), got {:g} V",
                                      wv.v_max, wv.v_set_start));
  if (wv.v_reset_start > wv.v_max)
    throw core::UserError(fmt::format("device.write_verify.v_reset_start: expected <= v_max ({:g} V), got {:g} V",
                                      wv.v_max, wv.v_reset_start));
  if (wv.max_pulses < 0)
    throw core::UserError(fmt::format("device.write_verify.max_pulses: expected >= 0, got {}", wv.max_pulses));
  return wv;
}

WriteVerifyResult write_verify(const PulseDevice& device, CellState state, double g_target,
                               const WriteVerifyOptions& options, core::RandomStream& rng) {
  const double low = g_target - options.tolerance;
  const double high = g_target + options.tolerance;
  auto verify_read = [&] {
    const double g = device.conductance(state);
    return options.read_noise_rel > 0 ? g * (1.0 + options.read_noise_rel * rng.normal()) : g;
  };

  WriteVerifyResult result;
  int direction = 0;       // +1 SET, -1 RESET, 0 before the first pulse
  double amplitude = 0.0;  // V, magnitude of the last pulse
  for (;;) {
    const double g_read = verify_read();
    if (g_read >= low && g_read <= high) {
      result.converged = true;
      break;
    }
    if (result.pulses >= options.max_pulses) break;
    const int wanted = g_read < low ? +1 : -1;
    if (wanted == direction) {
      amplitude = std::min(amplitude + options.v_step, options.v_max);
    } else {
      amplitude = std::min(wanted > 0 ? options.v_set_start : options.v_reset_start, options.v_max);
      direction = wanted;
    }
    device.apply_pulse(state, Pulse{direction * amplitude, options.pulse_width}, rng);
    ++result.pulses;
  }
  result.state = state;
  result.g = device.conductance(state);
  return result;
}

}  // namespace xbar::devices
