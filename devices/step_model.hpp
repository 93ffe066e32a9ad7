// A pulse-programmable device model fitted to measured pulse responses (issue: validate against
// measured data): the state is the conductance G; every identical SET (up) or RESET (down) pulse
// changes it by a step drawn from a state-dependent distribution:
//   dG = d_dir · r_dir(n) · m_dir(G) + s_dir(G) · N(0, 1),      clamped to [g_min, g_max],
// where m_dir and s_dir are piecewise-linear tables over conductance nodes (mean step and
// cycle-to-cycle step spread, per direction), d_dir a device-to-device factor drawn once per
// device (lognormal, log-std d2d_sigma_dir, median exp(ageing_dir · c) at cycle c: cycle ageing,
// 0 when off) and r_dir(n) = 1 - depth · exp(-n / decay)
// a reversal transient: n counts the pulses since the last change of direction (the measured
// TaOx ramps need it; depth 0 switches it off). Window drift: a device at cycle c is the reference
// device (cycle 0) seen through a map of its window [g_min, g_max] onto
// [g_min + δ_low c, g_max + δ_high c] that shifts the bottom rigidly and stretches or compresses
// the window progressively towards the top (WindowMap below): the tables are read at the reference
// conductance and every step, spread and read noise is multiplied by the map's local stretch (the
// measured TaOx turning points climb by about 1.2 µS per cycle at the bottom and 0.6 µS at the top,
// and only the steps near the top shrink over the cycles; δ = 0 switches it off). A read of the
// device is a measurement of that
// hidden state with read noise: read_k = G_k + n_k, n_k ~ N(0, σ_read(G_k)²), independent per read
// (σ_read a piecewise-linear table over the same nodes, empty = no read noise), so consecutive
// measured steps share a read and covary by −σ_read². Card model name: `rram-step`. Details,
// choices and the fit method: step_model.cpp.
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

// The window of a device at cycle c under a window drift (low, high: drifts of g_min and g_max in
// S per cycle): the reference conductance G_ref = g_min + W x (x in [0, 1], W = g_max − g_min)
// sits at G = g_min + c low + W (x + k x²), k = c (high − low) / W, i.e. it has drifted by
// c (low + (high − low) x²): the bottom shifts rigidly and the window stretches (k > 0) or
// compresses (k < 0) progressively towards the top. Throws UserError when the map folds (1 + 2k <= 0).
struct WindowMap {
  double g_min = 0, width = 1, shift = 0, k = 0;
  WindowMap(double g_min, double g_max, double low, double high, double cycle);
  double bottom() const { return g_min + shift; }
  double top() const { return g_min + shift + width * (1 + k); }
  double reference(double g) const;  // G_ref of G
  double conductance(double g_ref) const {  // G of G_ref (the inverse of reference)
    const double x = (g_ref - g_min) / width;
    return g_min + shift + width * (x + k * x * x);
  }
  double stretch(double g_ref) const { return 1 + 2 * k * (g_ref - g_min) / width; }  // dG / dG_ref
};

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
  // Window drift (S per cycle) of the bottom and the top of the window: a device at cycle c has the
  // window [g_min + window_drift_low c, g_max + window_drift_high c], the image of the reference
  // window [g_min, g_max] (cycle 0, which the tables describe) under WindowMap; at conductance G it
  // behaves as the reference device at G_ref = WindowMap::reference(G), its steps, spreads and
  // read noise multiplied by the local stretch WindowMap::stretch(G_ref). 0 = off.
  double window_drift_low = 0, window_drift_high = 0;
  // Read (measurement) noise: a read of the state G returns G + read_std(G) · N(0, 1), fresh for
  // every read, the state unchanged. One value per node of g_nodes (interpolated like the step
  // tables), or empty for no read noise. The step spreads up_std / down_std are then the
  // intrinsic ones: a measured step between two reads has variance s(G)² + σ_read(G_k)² +
  // σ_read(G_k+1)².
  std::vector<double> read_std;
};

// What fit_step_model decided about the read noise, for reports (see step (8) in the .cpp).
struct StepFitDiagnostics {
  // Moment estimates from the lag-1 autocovariance of the step residuals (both directions
  // pooled): σ_read² = −mean(r_i r_{i+1}) over all pairs (`constant`, S) and per conductance bin
  // of the shared read (`per_bin`, S, bin centres `bin_centres`); negative estimates become 0.
  double read_std_constant = 0;
  std::vector<double> read_std_per_bin, bin_centres;
  long read_pairs = 0;  // pairs of consecutive inlier steps used
  // Twice the log-likelihood gains of the exact Gaussian (MA(1)) likelihood of the step
  // residuals: constant σ_read against none, per-bin table against constant and against none;
  // and the thresholds they had to exceed (χ² quantiles at p = 0.001 for 1, bins − 1 and bins
  // degrees of freedom).
  double lr_constant = 0, lr_per_bin = 0, lr_per_bin_none = 0;
  double lr_constant_threshold = 0, lr_per_bin_threshold = 0, lr_per_bin_none_threshold = 0;
  std::string read_noise;  // "none", "constant" or "per-bin": the term kept
  int clipped_spreads = 0;  // table nodes whose de-noised intrinsic spread was negative (set to 0)
  // Window drift (step (0) in the .cpp): the turning-point estimates of the drift of the bottom and
  // the top of the window (S per cycle, at the observed extremes), twice the log-likelihood gain of
  // the steps with them over none and the threshold it had to exceed (χ²₂ at p = 0.001), and
  // whether it was tried at all (every direction needs ramps at 3 or more distinct cycles).
  double drift_low_estimate = 0, drift_high_estimate = 0, lr_window_drift = 0, lr_window_drift_threshold = 0;
  bool window_drift_tried = false;
};

// Fits the model to ramps (the fitting split only): per conductance bin, the maximum-likelihood
// Gaussian of the observed steps (mean, std), after removing the device-to-device factor, which
// is estimated from the spread of each ramp's mean step ratio to the population, and the reversal
// transient (profile likelihood) and the cycle ageing (a trend of the ramps' log factors over their
// ids, kept only when a likelihood-ratio test accepts it); isolated glitches are left out (see the
// .cpp). Every ramp is taken to start right after a reversal; a ramp's id is its cycle. `bins`
// equal-width conductance bins span the observed range; the result's bounds are that range
// widened by 5 % on each side. Throws UserError for too little data (fewer than 10 steps of a
// direction in a bin: use fewer bins). Read noise (step (8) of the .cpp): σ_read from the lag-1
// autocovariance of consecutive steps, as a constant or a per-bin table, each kept only when a
// likelihood-ratio test on the fitting ramps accepts it; the step spreads are then de-noised
// (intrinsic s² = measured-step variance − 2 σ_read²). `diagnostics`, when given, receives what
// was estimated and decided. Window drift (step (0) of the .cpp): when each direction has ramps at
// 3 or more distinct cycles, the drifts of the window's bottom and top from the turning points
// (first and last reads) over the ramp ids, kept when a likelihood-ratio test on the steps accepts
// them; every other step then works on the ramps mapped to the reference window (cycle 0).
StepModelParams fit_step_model(const RampData& data, int bins, StepFitDiagnostics* diagnostics = nullptr);

// A PulseDevice for these parameters (state[0] = G, state[1] = up factor, state[2] = down factor,
// state[3] = direction of the last pulse (+1, -1, 0 for a fresh device), state[4] = pulses in
// that direction since the last reversal, state[5] = the device's cycle, for the window drift).
class StepDevice final : public PulseDevice {
 public:
  explicit StepDevice(StepModelParams params);
  CellState initial_state(double g_start, core::RandomStream& rng) const override;  // at params().cycle
  // A fresh device at cycle `cycle` (same draws as initial_state).
  CellState initial_state_at(double g_start, double cycle, core::RandomStream& rng) const;
  void apply_pulse(CellState& state, const Pulse& pulse, core::RandomStream& rng) const override;
  double conductance(const CellState& state) const override;  // the hidden state, no read noise
  // One read of the state: conductance(state) + read_noise_std(G) · N(0, 1) from `rng`. Draws
  // nothing (and returns the state) when the model has no read noise.
  double read(const CellState& state, core::RandomStream& rng) const;
  bool has_read_noise() const;                  // some read_std entry > 0
  // Table values at conductance g of the reference device (cycle 0; a device at cycle c behaves as
  // the reference device at reference_conductance(G, c), its steps times the window's local
  // stretch): read noise (S, 0 without read noise), mean step, intrinsic spread.
  double read_noise_std(double g) const;
  double mean_step(double g, bool up) const;
  double step_spread(double g, bool up) const;
  // The window drift: the bottom of the window at cycle c, the reference conductance of G at cycle
  // c, and the read-noise standard deviation of a device at cycle c reading G (the table at the
  // reference conductance times the local stretch). Throw UserError when the drift folds the
  // window at that cycle (its local stretch not positive).
  double window_bottom(double cycle) const;
  double reference_conductance(double g, double cycle) const;
  double window_conductance(double g_ref, double cycle) const;  // the inverse: G at cycle c of G_ref
  double read_noise_at(double g, double cycle) const;
  // Reversal-transient factor of the n-th pulse (0-based) after a reversal.
  double reversal_factor(int n, bool up) const;
  const StepModelParams& params() const { return params_; }

 private:
  WindowMap window_at(double cycle) const;
  StepModelParams params_;
};

// Replays ramps: for each ramp, `repetitions` simulated ramps from its first conductance with as
// many pulses as it has, each a fresh device (own d2d factor) at cycle ramps[k].id (the ramp's id
// is its cycle: cycle ageing applies) from rng.derive("ramp", {k, rep}). The simulated values are
// reads, like the measured ones: with read noise, the replay is conditioned on the measured first
// read g_0 (its first value is g_0 itself, the hidden start is g_0 − σ_read(g_0) · N(0, 1)) and
// every later value is read(state), the read noise drawn from rng.derive("read", {k, rep}), so
// the hidden trajectories do not depend on the read noise. Returns per measured ramp the
// repetitions (ramp k: result[k][rep]).
std::vector<std::vector<std::vector<double>>> replay_ramps(const StepDevice& device, const std::vector<Ramp>& ramps,
                                                           bool up, int repetitions, const core::RandomStream& rng);

// The card parameters of `rram-step` (tables as number lists) and conversions.
DeviceModelInfo rram_step_info();
StepModelParams step_params_from(const core::DeviceOptions& options);

}  // namespace xbar::devices
