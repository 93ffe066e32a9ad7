// Pulse-programmable devices and write-verify programming (incremental-step pulse programming,
// ISPP) that works for any of them: the compact RRAM model and the fitted step models.
#pragma once

#include <array>
#include <vector>

#include "core/card_schema.hpp"
#include "core/random.hpp"
#include "devices/device.hpp"

namespace xbar::devices {

// A programming pulse: positive voltage raises the conductance (SET), negative lowers it (RESET).
struct Pulse {
  double voltage = 0;  // V
  double width = 0;    // s
};

// One cell's state; the model decides what each entry means (e.g. [0] the filament gap in m,
// [1..] device-to-device parameters drawn at initialisation).
using CellState = std::array<double, 8>;

class PulseDevice {
 public:
  virtual ~PulseDevice() = default;
  // A fresh device, its device-to-device parameters drawn from `rng`, at conductance `g_start`
  // (clamped to what the device can reach).
  virtual CellState initial_state(double g_start, core::RandomStream& rng) const = 0;
  // Applies one pulse; cycle-to-cycle noise from `rng`.
  virtual void apply_pulse(CellState& state, const Pulse& pulse, core::RandomStream& rng) const = 0;
  // Read conductance of the state (S), without read noise.
  virtual double conductance(const CellState& state) const = 0;
};

// Write-verify parameters (card: device.write_verify.*, NeuRRAM-like defaults).
struct WriteVerifyOptions {
  double v_set_start = 1.2;   // V, first SET pulse amplitude
  double v_reset_start = 1.2; // V, first RESET pulse amplitude (magnitude)
  double v_step = 0.1;        // V, amplitude increment after each pulse in the same direction
  double v_max = 3.3;         // V, largest amplitude
  double pulse_width = 100e-9;  // s
  double tolerance = 1e-6;    // S, half-width of the acceptance band around the target
  int max_pulses = 20;        // pulse budget per cell
  double read_noise_rel = 0;  // relative noise of each verify read
};

// The card keys of WriteVerifyOptions (relative to the device section: "write_verify.v_step" ...)
// with the given defaults, for models that program by write-verify to append to their table.
std::vector<core::ParamSpec> write_verify_params(const WriteVerifyOptions& defaults = {});
WriteVerifyOptions write_verify_options(const core::DeviceOptions& options);

struct WriteVerifyResult {
  CellState state;
  double g = 0;     // S, conductance after the last pulse
  int pulses = 0;   // pulses applied
  bool converged = false;  // verify read inside the band
};

// Programs one cell to g_target: verify; while outside the band and within the pulse budget,
// apply a SET (below) or RESET (above) pulse, the amplitude growing by v_step (up to v_max) while
// the direction stays the same and restarting from the start amplitude when it reverses.
WriteVerifyResult write_verify(const PulseDevice& device, CellState state, double g_target,
                               const WriteVerifyOptions& options, core::RandomStream& rng);

}  // namespace xbar::devices
