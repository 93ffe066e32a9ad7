// A pulse-programmable device model fitted to measured pulse responses (issue: validate against
// measured data): the state is the conductance G; every identical SET (up) or RESET (down) pulse
// changes it by a step drawn from a state-dependent distribution:
//   dG = d_dir · r_dir(n) · m_dir(G) + s_dir(G) · N(0, 1),      clamped to [g_min, g_max],
// where m_dir and s_dir are piecewise-linear tables over conductance nodes (mean step and
// cycle-to-cycle step spread, per direction), d_dir a device-to-device factor drawn once per
// device (lognormal, log-std d2d_sigma_dir, median exp(ageing_dir · c) at cycle c: cycle ageing,
// 0 when off) and r_dir(n) = 1 - depth · exp(-n / decay)
// a reversal transient: n counts the pulses since the last change of direction (the measured
// TaOx ramps need it; depth 0 switches it off). Card model name: `rram-step`. Details, choices
// and the fit method: step_model.cpp.
//
// The same model serves write-verify programming in the tile (a SET pulse is any positive
// voltage, a RESET any negative one: identical pulses, their amplitude is not modelled) and the
// replay of measured ramps in `xbar validate`.
#pragma once

#include <string>
#include <vector>

#include "devices/pulse.hpp"
#include "devices/registry.hpp"

namespace xbar::devices {

// Measured (or simulated) ramps: conductance before the first pulse and after each pulse.
struct Ramp {
  int id = 0;               // e.g. the CSV column number (1-based)
  std::vector<double> g;    // S (or normalised units, see RampData::units)
};

struct RampData {
  std::vector<Ramp> set;    // up (SET / potentiation) ramps
  std::vector<Ramp> reset;  // down (RESET / depression) ramps
  std::string units = "S";  // "S", or "1" for normalised data
};

struct StepModelParams {
  double g_min = 0, g_max = 0;      // state bounds (same units as the data)
  std::vector<double> g_nodes;      // conductances at which the tables are given (increasing)
  std::vector<double> up_mean, up_std;      // mean and spread of an up step at each node
  std::vector<double> down_mean, down_std;  // same for a down step (down_mean <= 0)
  double d2d_sigma_up = 0, d2d_sigma_down = 0;  // log-std of the device-to-device step factor
  // Reversal transient: the n-th pulse (n = 0, 1, ...) after a change of direction (or the first
  // pulses of a fresh device) has its mean step scaled by 1 - depth · exp(-n / decay); depth 0
  // switches it off. decay in pulses (> 0).
  double up_reversal_depth = 0, up_reversal_decay = 1;
  double down_reversal_depth = 0, down_reversal_decay = 1;
  // Cycle ageing: a device at cycle c has the median of its factor d_dir at exp(ageing_dir · c)
  // (log factor per cycle; 0 = no ageing). Cycle 0 is the reference cycle the tables describe. A
  // fitted model counts cycles as the ramp ids (the measurement's cycle order), so its reference
  // is just before ramp 1. `cycle` is the cycle of a fresh device from initial_state() (the card's
  // device.cycle, the cycle a programmed tile is at); replay_ramps uses each ramp's id instead.
  double up_ageing = 0, down_ageing = 0;
  double cycle = 0;
};

// Fits the model to ramps (the fitting split only): per conductance bin, the maximum-likelihood
// Gaussian of the observed steps (mean, std), after removing the device-to-device factor, which
// is estimated from the spread of each ramp's mean step ratio to the population, and the reversal
// transient (profile likelihood) and the cycle ageing (a trend of the ramps' log factors over their
// ids, kept only when a likelihood-ratio test accepts it); isolated glitches are left out (see the
// .cpp). Every ramp is taken to start right after a reversal; a ramp's id is its cycle. `bins`
// equal-width conductance bins span the observed range; the result's bounds are that range
// widened by 5 % on each side. Throws UserError for too little data (fewer than 10 steps of a
// direction in a bin: use fewer bins).
StepModelParams fit_step_model(const RampData& data, int bins);

// A PulseDevice for these parameters (state[0] = G, state[1] = up factor, state[2] = down factor,
// state[3] = direction of the last pulse (+1, -1, 0 for a fresh device), state[4] = pulses in
// that direction since the last reversal).
class StepDevice final : public PulseDevice {
 public:
  explicit StepDevice(StepModelParams params);
  CellState initial_state(double g_start, core::RandomStream& rng) const override;  // at params().cycle
  // A fresh device at cycle `cycle` (same draws as initial_state).
  CellState initial_state_at(double g_start, double cycle, core::RandomStream& rng) const;
  void apply_pulse(CellState& state, const Pulse& pulse, core::RandomStream& rng) const override;
  double conductance(const CellState& state) const override;
  double mean_step(double g, bool up) const;    // interpolated table value
  double step_spread(double g, bool up) const;  // interpolated table value
  // Reversal-transient factor of the n-th pulse (0-based) after a reversal.
  double reversal_factor(int n, bool up) const;
  const StepModelParams& params() const { return params_; }

 private:
  StepModelParams params_;
};

// Replays ramps: for each ramp, `repetitions` simulated ramps from its first conductance with as
// many pulses as it has, each a fresh device (own d2d factor) at cycle ramps[k].id (the ramp's id
// is its cycle: cycle ageing applies) from rng.derive("ramp", {k, rep}).
// Returns per measured ramp the repetitions (ramp k: result[k][rep]).
std::vector<std::vector<std::vector<double>>> replay_ramps(const StepDevice& device, const std::vector<Ramp>& ramps,
                                                           bool up, int repetitions, const core::RandomStream& rng);

// The card parameters of `rram-step` (tables as number lists) and conversions.
DeviceModelInfo rram_step_info();
StepModelParams step_params_from(const core::DeviceOptions& options);

}  // namespace xbar::devices
