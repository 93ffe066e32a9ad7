// `xbar calibrate` and `xbar validate`: fit the `rram-step` pulse model to the fitting split of
// measured pulse ramps and write a complete card; replay the measured ramps in simulation and score
// the card against them (README "Calibration and validation").
//
// CALIBRATE. The base card must use device.model: rram-step. Only the fitting split is read
// (`split_ramps(…, "fit")`; any other split is refused: the held-out ramps are for scoring). The
// parameters come from devices::fit_step_model (per conductance bin the maximum-likelihood
// Gaussian of the steps with a least-squares state slope inside the bin, a method-of-moments
// device-to-device factor with a cycle-ageing trend over the ramp ids, a profile-likelihood
// reversal transient, and read noise from the lag-1 autocovariance of consecutive steps, kept by
// likelihood-ratio tests, with the step spreads then de-noised to intrinsic ones; details in
// devices/step_model.cpp). The written card is the base card (after --set overrides) with
// device.g_min / g_max set to the fitted bounds and the step-model keys replaced by the fitted
// tables in the card's convention (g_nodes as fractions of [g_min, g_max], steps in units of
// g_max − g_min per pulse: the inverse of devices::step_params_from), preceded by a comment header
// naming what it was fitted on. Fitted values a card cannot hold are moved to the nearest allowed
// one and listed in the header (see Calibration below). The card is checked to load before it is
// written (atomically).
//
// VALIDATE. Every ramp of the chosen split (default: held out) is replayed `repetitions` times by
// devices::replay_ramps: same starting conductance, same number of pulses, a fresh device (own
// device-to-device factors, at the ramp's cycle: its id) per repetition, seeded by the card's seed.
// The simulated values are reads like the measured ones: with the card's read noise each value
// after the first is the hidden state plus fresh read noise, and the first is the measured first
// read itself (the hidden start drawn given it), so simulated steps include n_{k+1} − n_k as the
// measured ones do (devices::replay_ramps). Per direction:
//  - rmse_rel: root-mean-square over pulse indices i >= 1 of (mean over the measured ramps of G_i
//    − mean over every repetition of those same ramps of G_i), over the indices where at least half
//    of the ramps still hold a value (the ramps' lengths differ slightly), divided by the
//    conductance range of the measured file (see below). Index 0 is the common starting state.
//  - ks_max: the largest two-sample Kolmogorov-Smirnov statistic between measured and simulated
//    steps ΔG_i = G_{i+1} − G_i, per conductance bin of the starting state G_i: `ks_bins`
//    equal-width bins over the conductance range of the measured file; steps starting outside it
//    are not binned. A bin is populated when it holds at least kMinBinSteps measured steps; the
//    maximum is over populated bins (every bin's value is reported).
//  - coverage: the share of measured points G_i (i >= 1; the starting point equals the
//    simulation's) inside [q05, q95] of the repetitions of their own ramp at the same pulse index
//    (quantiles with linear interpolation between order statistics, bounds inclusive).
// The conductance range used to normalise rmse_rel and to place the KS bins is the smallest to
// the largest conductance of every ramp in the measured file (both directions, every split): a
// property of the data alone, the same for every card scored on that file, so reports of
// different cards are comparable (the card's g_max − g_min would reward a wide window).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/card.hpp"
#include "devices/step_model.hpp"
#include "tools/measured.hpp"

namespace xbar::tools {

// ---- metrics -----------------------------------------------------------------------------------

inline constexpr int kMinBinSteps = 20;        // measured steps that make a KS bin populated
inline constexpr double kBandLow = 0.05;       // lower quantile of the simulated band
inline constexpr double kBandHigh = 0.95;      // upper quantile of the simulated band

// Two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) − F_b(x)| of the empirical distribution
// functions (ties handled exactly); NaN when either sample is empty.
double ks_statistic(std::vector<double> a, std::vector<double> b);

// Quantile p in [0, 1] of sorted values, linear interpolation between order statistics
// (position p·(n − 1), "type 7"); NaN when empty.
double quantile_sorted(const std::vector<double>& sorted, double p);

struct ScoreSettings {
  double g_lo = 0, g_hi = 0;  // S, conductance range of the measured file (normalisation, KS bins)
  int ks_bins = 10;           // equal-width conductance bins over [g_lo, g_hi]
  int min_bin_steps = kMinBinSteps;
};

struct KsBin {
  double g_lo = 0, g_hi = 0;  // S, bin edges
  int measured_steps = 0;     // steps starting in the bin
  long simulated_steps = 0;
  double ks = 0;              // NaN when either sample is empty
  bool populated = false;     // measured_steps >= min_bin_steps
};

// The simulated band of one measured ramp, per pulse index (as long as the ramp).
struct RampBand {
  std::vector<double> p05, p50, p95, mean;  // S
};

struct DirectionScore {
  int ramps = 0;              // measured ramps scored
  int rmse_indices = 0;       // pulse indices in the RMSE
  long points = 0;            // measured points in the coverage (i >= 1)
  double rmse = 0;            // S; NaN when no index qualifies
  double rmse_rel = 0;        // rmse / (g_hi − g_lo)
  double ks_max = 0;          // NaN when no bin is populated
  int populated_bins = 0;
  double coverage = 0;        // NaN when there is no point
  std::vector<KsBin> bins;
  std::vector<double> mean_measured, mean_simulated;  // per pulse index; NaN where not scored
  std::vector<RampBand> bands;                        // per measured ramp
};

// Scores measured ramps against their replays (simulated[k][rep], each as long as ramp k).
// Throws UserError when the shapes disagree or g_hi <= g_lo.
DirectionScore score_direction(const std::vector<devices::Ramp>& measured,
                               const std::vector<std::vector<std::vector<double>>>& simulated,
                               const ScoreSettings& settings);

// ---- calibrate ---------------------------------------------------------------------------------

struct CalibrateOptions {
  std::filesystem::path card;            // base card (device.model: rram-step)
  std::vector<std::string> overrides;    // --set key=value on the base card
  std::filesystem::path measured;        // HDF5 file of measured ramps (xbar import)
  std::string split = "fit";             // only "fit" is accepted
  int bins = 10;                         // conductance bins of the fit
  std::filesystem::path output;          // fitted card to write
};

// The fit in the card's ranges. Where the fit leaves what a card can hold, the nearest allowed value
// is used and the change recorded in `adjustments` (one sentence each): a negative lower bound
// (the observed minimum less the fit's 5 % margin, e.g. normalised data mapped onto [0, ...]) is
// raised to 0 S, together with the first table node (its values are the constant extension of the
// first bin, so the model is unchanged inside the new window); a mean SET step < 0 or a mean RESET
// step > 0 at a node (a bin where the state drifts against the pulse, e.g. noisy data near
// saturation) becomes 0: the maximum-likelihood estimate of a Gaussian mean under that sign
// constraint, for the bin on its own.
struct Calibration {
  devices::StepModelParams params;       // in the card's ranges
  std::vector<std::string> adjustments;  // what was moved into range, empty when nothing
  devices::StepFitDiagnostics diagnostics;  // the read-noise estimates and tests of the fit
  int set_ramps = 0, reset_ramps = 0;    // fitting ramps used
  std::size_t set_steps = 0, reset_steps = 0;
};

// Fits the fitting split of `measured` (UserError for another split, or bins < 1).
Calibration calibrate(const MeasuredRamps& measured, const std::string& split, int bins);

// The card text: `header` (lines without the leading "# ", may be empty) as YAML comments, then
// the base card's YAML (effective_yaml) with device.g_min, g_max and the step-model keys replaced
// by `params` in the card's relative convention. UserError when the base is not an rram-step card.
std::string fitted_card_yaml(const core::Card& base, const devices::StepModelParams& params,
                             const std::vector<std::string>& header);

// Loads, fits, writes the card atomically (after checking that it loads); returns the summary.
std::string calibrate_command(const CalibrateOptions& options);
// One line on the read-noise term of a fit (what was kept, the estimates and the tests).
std::string read_noise_summary(const devices::StepFitDiagnostics& diagnostics);

// ---- validate ----------------------------------------------------------------------------------

struct ValidationReport {
  std::string card_file, measured_file, split;
  int repetitions = 0;
  std::uint64_t seed = 0;
  double g_lo = 0, g_hi = 0;  // S, conductance range of the measured file
  std::vector<devices::Ramp> measured_set, measured_reset;
  DirectionScore set, reset;
};

struct ValidateSettings {
  std::string split = "heldout";  // fit, heldout or all
  int repetitions = 200;          // simulated ramps per measured ramp
  int ks_bins = 10;
};

// Replays the split's ramps with the card's rram-step device (seeded by card.seed) and scores them.
ValidationReport validate_card(const core::Card& card, const MeasuredRamps& measured, const ValidateSettings& settings);

// {"set": {...}, "reset": {...}}: rmse_rel, ks_max, coverage and details (NaN as null).
std::string validation_json(const ValidationReport& report);
// A readable table.
std::string validation_table(const ValidationReport& report);
// The report file (layout in the README): measured ramps, simulated band, metrics, per-bin KS.
void write_validation_report(const ValidationReport& report, const std::filesystem::path& path);

struct ValidateOptions {
  std::filesystem::path card;
  std::vector<std::string> overrides;  // --set on the card
  std::string seed;                    // "" keeps the card's seed
  std::filesystem::path measured;
  ValidateSettings settings;
  bool json = false;
  std::filesystem::path output;        // report HDF5 ("" = none)
  std::filesystem::path plot;          // PNG ("" = none)
};

// Runs the validation, writes the report and picture (nothing on error), returns what to print.
std::string validate_command(const ValidateOptions& options);

}  // namespace xbar::tools
