// The fitted step model `rram-step`: the fit recovers known parameters from synthetic ramps and
// uses only the ramps it is given (TaOx fitting split vs held-out ramps), the PulseDevice's step
// statistics, bounds, device-to-device factors and reversal transient, the card, write-verify
// programming through the registry, thread-count independence, and ramp replay.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <string>
#include <vector>

#include "core/card.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "tests/support/cards.hpp"
#include "tests/support/step_ramps.hpp"
#include "devices/registry.hpp"
#include "devices/step_model.hpp"

using namespace xbar;
using devices::CellState;
using devices::Pulse;
using devices::Ramp;
using devices::RampData;
using devices::StepDevice;
using devices::StepModelParams;

using xbar::testing_support::known_step_params;
using xbar::testing_support::spread_targets;
using xbar::testing_support::synthetic_ramp_data;

namespace {

constexpr double kUs = 1e-6;  // S per uS
const Pulse kSet{1.0, 0.0};
const Pulse kReset{-1.0, 0.0};

// ---- synthetic data ----------------------------------------------------------------------------

// ---- the measured TaOx ramps --------------------------------------------------------------------

const std::filesystem::path kTaox = std::filesystem::path(XBAR_SOURCE_DIR) / "tests/data/measured/rram_taox_pulse_ramps";
constexpr double kReadVoltage = 0.1;  // V: the ramps hold read currents at 0.1 V
constexpr int kSetFittingRamps = 27;    // set.csv ramps 1-27 are the fitting split
constexpr int kResetFittingRamps = 28;  // reset.csv ramps 1-28

// Column k of the CSV (header rmp1, rmp2, ...) as ramp k+1, in siemens; empty cells, NaN and zeros
// end a ramp.
std::vector<Ramp> load_ramps(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot open " + file.string());
  std::string line;
  std::getline(in, line);
  std::vector<Ramp> ramps;
  std::vector<bool> ended;
  {
    std::stringstream header(line);
    std::string name;
    while (std::getline(header, name, ',')) {
      ramps.push_back({static_cast<int>(ramps.size()) + 1, {}});
      ended.push_back(false);
    }
  }
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::stringstream row(line);
    std::string cell;
    for (std::size_t k = 0; std::getline(row, cell, ','); ++k) {
      if (k >= ramps.size() || ended[k]) continue;
      double current = 0;
      try {
        current = cell.empty() ? 0.0 : std::stod(cell);
      } catch (const std::exception&) {
        current = 0;
      }
      if (!std::isfinite(current) || current == 0) {
        ended[k] = true;
        continue;
      }
      ramps[k].g.push_back(current / kReadVoltage);
    }
  }
  return ramps;
}

struct TaoxRamps {
  std::vector<Ramp> set, reset;  // every ramp, ids 1..39 and 1..40
};

TaoxRamps load_taox() { return {load_ramps(kTaox / "set.csv"), load_ramps(kTaox / "reset.csv")}; }

// The fitting split: SET ramps 1-27 and RESET ramps 1-28, selected by id. Nothing else is read.
RampData fitting_split(const TaoxRamps& all) {
  RampData data;
  for (const Ramp& r : all.set)
    if (r.id <= kSetFittingRamps) data.set.push_back(r);
  for (const Ramp& r : all.reset)
    if (r.id <= kResetFittingRamps) data.reset.push_back(r);
  return data;
}

RampData every_ramp(const TaoxRamps& all) { return {all.set, all.reset, "S"}; }

void expect_same_params(const StepModelParams& a, const StepModelParams& b) {
  EXPECT_DOUBLE_EQ(a.g_min, b.g_min);
  EXPECT_DOUBLE_EQ(a.g_max, b.g_max);
  const std::pair<const std::vector<double>*, const std::vector<double>*> tables[] = {
      {&a.g_nodes, &b.g_nodes}, {&a.up_mean, &b.up_mean}, {&a.up_std, &b.up_std},
      {&a.down_mean, &b.down_mean}, {&a.down_std, &b.down_std}};
  for (const auto& [x, y] : tables) {
    ASSERT_EQ(x->size(), y->size());
    for (std::size_t i = 0; i < x->size(); ++i) EXPECT_DOUBLE_EQ((*x)[i], (*y)[i]) << "entry " << i;
  }
  EXPECT_DOUBLE_EQ(a.d2d_sigma_up, b.d2d_sigma_up);
  EXPECT_DOUBLE_EQ(a.d2d_sigma_down, b.d2d_sigma_down);
  EXPECT_DOUBLE_EQ(a.up_reversal_depth, b.up_reversal_depth);
  EXPECT_DOUBLE_EQ(a.up_reversal_decay, b.up_reversal_decay);
  EXPECT_DOUBLE_EQ(a.down_reversal_depth, b.down_reversal_depth);
  EXPECT_DOUBLE_EQ(a.down_reversal_decay, b.down_reversal_decay);
  EXPECT_DOUBLE_EQ(a.up_ageing, b.up_ageing);
  EXPECT_DOUBLE_EQ(a.down_ageing, b.down_ageing);
  EXPECT_DOUBLE_EQ(a.window_drift_low, b.window_drift_low);
  EXPECT_DOUBLE_EQ(a.window_drift_high, b.window_drift_high);
  ASSERT_EQ(a.read_std.size(), b.read_std.size());
  for (std::size_t i = 0; i < a.read_std.size(); ++i) EXPECT_DOUBLE_EQ(a.read_std[i], b.read_std[i]) << "entry " << i;
}

// Largest relative difference between two fits' tables and d2d sigmas.
double largest_relative_difference(const StepModelParams& a, const StepModelParams& b) {
  double d = 0;
  const std::pair<const std::vector<double>*, const std::vector<double>*> tables[] = {
      {&a.up_mean, &b.up_mean}, {&a.up_std, &b.up_std}, {&a.down_mean, &b.down_mean}, {&a.down_std, &b.down_std}};
  for (const auto& [x, y] : tables)
    for (std::size_t i = 0; i < std::min(x->size(), y->size()); ++i)
      d = std::max(d, std::abs((*x)[i] - (*y)[i]) / std::max(std::abs((*x)[i]), std::abs((*y)[i])));
  d = std::max(d, std::abs(a.d2d_sigma_up - b.d2d_sigma_up) / std::max(a.d2d_sigma_up, b.d2d_sigma_up));
  return d;
}

// ---- cards ---------------------------------------------------------------------------------------

core::Card step_card(const std::vector<std::string>& overrides = {}, int rows = 4, int cols = 4) {
  return testing_support::device_card("rram-step", overrides, rows, cols);
}

// A device whose tables are constant (mean m, spread s over the window) with the given
// device-to-device sigma and no reversal transient.
StepModelParams flat_params(double m_up, double s_up, double m_down, double s_down, double d2d = 0) {
  StepModelParams p;
  p.g_min = 10 * kUs;
  p.g_max = 60 * kUs;
  p.g_nodes = {10 * kUs, 35 * kUs, 60 * kUs};
  p.up_mean = {m_up, m_up, m_up};
  p.up_std = {s_up, s_up, s_up};
  p.down_mean = {m_down, m_down, m_down};
  p.down_std = {s_down, s_down, s_down};
  p.d2d_sigma_up = d2d;
  p.d2d_sigma_down = d2d;
  return p;
}

}  // namespace

// ---- the fit -------------------------------------------------------------------------------------

TEST(StepModelFit, RecoversKnownParametersFromSyntheticRamps) {
  const StepModelParams truth = known_step_params();
  const StepDevice device(truth);
  constexpr int kRamps = 40, kPulses = 150, kBins = 4;
  const RampData data = synthetic_ramp_data(device, kRamps, kPulses, 2024);
  devices::StepFitDiagnostics diagnostics;
  const StepModelParams fit = devices::fit_step_model(data, kBins, &diagnostics);
  const StepDevice fitted(fit);
  // No read noise in these ramps: the likelihood-ratio tests (p = 0.001) keep none.
  EXPECT_EQ(diagnostics.read_noise, "none");
  EXPECT_TRUE(fit.read_std.empty());
  EXPECT_FALSE(fitted.has_read_noise());

  // Nodes: the observed range cut into kBins bins, widened by 5 % of it at both ends.
  ASSERT_EQ(fit.g_nodes.size(), static_cast<std::size_t>(kBins + 2));
  double lo = 1, hi = 0;
  for (const auto* ramps : {&data.set, &data.reset})
    for (const Ramp& r : *ramps)
      for (double g : r.g) lo = std::min(lo, g), hi = std::max(hi, g);
  EXPECT_NEAR(fit.g_min, lo - 0.05 * (hi - lo), 1e-12);
  EXPECT_NEAR(fit.g_max, hi + 0.05 * (hi - lo), 1e-12);

  // Tables at the bin centres, with tolerances of 5 standard errors. A bin's mean step comes from
  // a straight line through its n steps (states g_i) evaluated at the centre c: its variance is
  // s² (1/n + (c - mean g)² / Σ(g_i - mean g)²) from cycle-to-cycle noise, plus m² sigma_d2d² / R
  // from the factors of the R ramps in the bin (their geometric mean sets the scale). The spread
  // comes from a straight line through the squared residuals, with a standard error of
  // s / sqrt(2) sqrt(1/n + (c - mean g)² / Σ(g_i - mean g)²).
  const double width = (hi - lo) / kBins;
  for (int b = 0; b < kBins; ++b) {
    const double centre = fit.g_nodes[b + 1];
    for (int up = 0; up < 2; ++up) {
      const auto& ramps = up ? data.set : data.reset;
      std::vector<double> states;
      int ramps_in_bin = 0;
      for (const Ramp& r : ramps) {
        const std::size_t before = states.size();
        for (std::size_t i = 0; i + 1 < r.g.size(); ++i)
          if (std::min(kBins - 1, static_cast<int>((r.g[i] - lo) / width)) == b) states.push_back(r.g[i]);
        ramps_in_bin += states.size() > before ? 1 : 0;
      }
      const double n = static_cast<double>(states.size());
      ASSERT_GE(n, 10);
      double mean_g = 0, sxx = 0;
      for (double g : states) mean_g += g / n;
      for (double g : states) sxx += (g - mean_g) * (g - mean_g);
      const double m = device.mean_step(centre, up), s = device.step_spread(centre, up);
      const double sigma = up ? truth.d2d_sigma_up : truth.d2d_sigma_down;
      const double leverage = 1 / n + (centre - mean_g) * (centre - mean_g) / sxx;
      const double se_mean = std::sqrt(s * s * leverage + m * m * sigma * sigma / ramps_in_bin);
      const double se_spread = s * std::sqrt(leverage / 2);
      EXPECT_NEAR(fitted.mean_step(centre, up), m, 5 * se_mean) << (up ? "SET" : "RESET") << " bin " << b;
      EXPECT_NEAR(fitted.step_spread(centre, up), s, 5 * se_spread) << (up ? "SET" : "RESET") << " bin " << b;
    }
  }
  // Device-to-device sigma: the log-variance of R factors has a standard error of about
  // var sqrt(2/(R-1)), so sigma's is sigma / sqrt(2) (plus the factors' sampling noise).
  const double se_sigma = 0.1 / std::sqrt(2.0 * (kRamps - 1));
  EXPECT_NEAR(fit.d2d_sigma_up, truth.d2d_sigma_up, 5 * se_sigma);
  EXPECT_NEAR(fit.d2d_sigma_down, truth.d2d_sigma_down, 5 * se_sigma);
  // No ageing in these ramps: the likelihood-ratio test (p = 0.001) keeps no trend.
  EXPECT_EQ(fit.up_ageing, 0.0);
  EXPECT_EQ(fit.down_ageing, 0.0);
  // Reversal transient: the first SET pulses, r(n) = 1 - 0.5 exp(-n/3). The factor of each of the
  // first pulses is a ratio of R ramp means with a relative standard error of about
  // sqrt(s²/m² + sigma²)/sqrt(R) (about 0.04 here).
  const double se_r = std::sqrt(0.25 * 0.25 + 0.1 * 0.1) / std::sqrt(static_cast<double>(kRamps));
  for (int n : {0, 1, 2, 4, 8, 20}) {
    EXPECT_NEAR(fitted.reversal_factor(n, true), device.reversal_factor(n, true), 5 * se_r) << "SET pulse " << n;
    EXPECT_NEAR(fitted.reversal_factor(n, false), 1.0, 5 * se_r) << "RESET pulse " << n;
  }
}

TEST(StepModelFit, RecoversAKnownCycleAgeingSlope) {
  // Ramp k is cycle k (its id); the SET steps shrink by 0.4 % per cycle, the RESET steps grow by
  // 0.3 %, around a 5 % device-to-device (ramp-to-ramp) spread.
  StepModelParams truth = known_step_params();
  truth.d2d_sigma_up = truth.d2d_sigma_down = 0.05;
  truth.up_ageing = -0.004;
  truth.down_ageing = 0.003;
  const StepDevice device(truth);
  constexpr int kRamps = 60, kPulses = 150, kBins = 4;
  const RampData data = synthetic_ramp_data(device, kRamps, kPulses, 77);
  const StepModelParams fit = devices::fit_step_model(data, kBins);
  // The slope of an ordinary least-squares line through R log factors at cycles 1..R has a
  // standard error of sqrt(sigma² + u) / sqrt(Sxx), Sxx = R (R² - 1) / 12, where u is the
  // sampling variance of a ramp's log factor from cycle-to-cycle noise (about (s/m)² / pulses with
  // s/m between 0.25 and 1 here: at most 0.003).
  const double sxx = kRamps * (kRamps * kRamps - 1.0) / 12;
  const double u = 0.003;
  const double se_slope = std::sqrt(0.05 * 0.05 + u) / std::sqrt(sxx);
  EXPECT_NEAR(fit.up_ageing, truth.up_ageing, 5 * se_slope);
  EXPECT_NEAR(fit.down_ageing, truth.down_ageing, 5 * se_slope);
  std::printf("ageing recovery: SET %.5f (truth %.4f), RESET %.5f (truth %.4f), 5 SE = %.5f; d2d %.4f / %.4f\n",
              fit.up_ageing, truth.up_ageing, fit.down_ageing, truth.down_ageing, 5 * se_slope, fit.d2d_sigma_up,
              fit.d2d_sigma_down);
  // The device-to-device sigma is the spread around the trend: the method-of-moments variance of
  // R - 2 residuals has a standard error of about (sigma² + u) sqrt(2 / (R - 2)), sigma's half of
  // that over sigma.
  const double se_sigma = (0.05 * 0.05 + u) * std::sqrt(2.0 / (kRamps - 2)) / (2 * 0.05);
  EXPECT_NEAR(fit.d2d_sigma_up, 0.05, 5 * se_sigma);
  EXPECT_NEAR(fit.d2d_sigma_down, 0.05, 5 * se_sigma);
  // The tables describe cycle 0: the mean step at a bin centre matches the truth's median device.
  const StepDevice fitted(fit);
  const double centre = fit.g_nodes[2];
  EXPECT_NEAR(fitted.mean_step(centre, true) / device.mean_step(centre, true), 1.0, 0.1);
  EXPECT_NEAR(fitted.mean_step(centre, false) / device.mean_step(centre, false), 1.0, 0.1);
}

TEST(StepModelFit, KeepsNoAgeingTrendWhenTheDataHaveNone) {
  // Same layout as above without ageing, several seeds: the likelihood-ratio test at p = 0.001
  // keeps no trend (and a kept one would have to be small).
  StepModelParams truth = known_step_params();
  truth.d2d_sigma_up = truth.d2d_sigma_down = 0.05;
  const StepDevice device(truth);
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const StepModelParams fit = devices::fit_step_model(synthetic_ramp_data(device, 60, 150, seed), 4);
    EXPECT_EQ(fit.up_ageing, 0.0) << "seed " << seed;
    EXPECT_EQ(fit.down_ageing, 0.0) << "seed " << seed;
    // Nor a window drift: the turning points stay put but for noise.
    EXPECT_EQ(fit.window_drift_low, 0.0) << "seed " << seed;
    EXPECT_EQ(fit.window_drift_high, 0.0) << "seed " << seed;
  }
}

TEST(StepModelFit, RecoversAKnownWindowDrift) {
  // The window's bottom climbs by 0.1 uS per cycle and its top by 0.03 uS (the window compresses
  // towards the top, as the measured TaOx window does), over 60 cycles; ramps of 400 pulses run from
  // near one end to near the other, so their first and last reads are turning points of the window.
  StepModelParams truth = known_step_params();
  truth.d2d_sigma_up = truth.d2d_sigma_down = 0.02;
  truth.window_drift_low = 0.10 * kUs;
  truth.window_drift_high = 0.03 * kUs;
  const StepDevice device(truth);
  const RampData data = synthetic_ramp_data(device, 60, 400, 5);
  devices::StepFitDiagnostics diag;
  const StepModelParams fit = devices::fit_step_model(data, 4, &diag);
  std::printf("window drift recovery: bottom %.4f uS (truth %.4f), top %.4f uS (truth %.4f) per cycle; 2 dlnL %.1f\n",
              fit.window_drift_low / kUs, truth.window_drift_low / kUs, fit.window_drift_high / kUs,
              truth.window_drift_high / kUs, diag.lr_window_drift);
  EXPECT_TRUE(diag.window_drift_tried);
  EXPECT_GT(diag.lr_window_drift, diag.lr_window_drift_threshold);
  // The drift of a reference conductance at the two ends of the fitted window, compared with the
  // truth's there (the fitted window is the observed range widened, not the truth's [10, 60] uS).
  auto drift_at = [](const StepModelParams& p, double g) {
    const double x = (g - p.g_min) / (p.g_max - p.g_min);
    return p.window_drift_low + (p.window_drift_high - p.window_drift_low) * x * x;
  };
  for (double g : {fit.g_min, 0.5 * (fit.g_min + fit.g_max), fit.g_max})
    EXPECT_NEAR(drift_at(fit, g), drift_at(truth, g), 0.015 * kUs) << "at " << g / kUs << " uS";
  // No ageing in the truth: the drift does not leak into an ageing trend.
  EXPECT_EQ(fit.up_ageing, 0.0);
  EXPECT_EQ(fit.down_ageing, 0.0);
}

TEST(StepModelFit, RefusesTooFewStepsPerBinAndSuggestsFewerBins) {
  const StepDevice device(known_step_params());
  const RampData data = synthetic_ramp_data(device, 3, 20, 7);
  try {
    devices::fit_step_model(data, 40);
    FAIL() << "expected a UserError";
  } catch (const core::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("fewer bins"), std::string::npos) << e.what();
  }
  EXPECT_THROW(devices::fit_step_model(data, 0), core::UserError);
  EXPECT_THROW(devices::fit_step_model(RampData{data.set, {}, "S"}, 2), core::UserError);
}

// ---- read noise --------------------------------------------------------------------------------

namespace {

// States (reads before a pulse) of the steps of `ramps` in bin b of kBins equal bins over [lo, hi],
// and how many ramps have a step there.
struct BinStates {
  std::vector<double> states;
  int ramps = 0;
};

BinStates bin_states(const std::vector<Ramp>& ramps, double lo, double hi, int bins, int b) {
  BinStates out;
  const double width = (hi - lo) / bins;
  for (const Ramp& r : ramps) {
    const std::size_t before = out.states.size();
    for (std::size_t i = 0; i + 1 < r.g.size(); ++i)
      if (std::clamp(static_cast<int>((r.g[i] - lo) / width), 0, bins - 1) == b) out.states.push_back(r.g[i]);
    out.ramps += out.states.size() > before ? 1 : 0;
  }
  return out;
}

std::pair<double, double> observed_range(const RampData& data) {
  double lo = 1, hi = 0;
  for (const auto* ramps : {&data.set, &data.reset})
    for (const Ramp& r : *ramps)
      for (double g : r.g) lo = std::min(lo, g), hi = std::max(hi, g);
  return {lo, hi};
}

}  // namespace

// Ramps whose values are reads of the hidden state with a known constant read noise, about as large
// as the intrinsic step spreads (as in the TaOx ramps, where it is half of the measured-step
// variance). The fit finds it (likelihood-ratio test), recovers σ_read from the lag-1
// autocovariance of the steps and de-noises the spreads. Tolerances: 5 standard errors, which
// shrink as 1/sqrt(N).
TEST(StepModelFit, RecoversAKnownReadNoiseAndTheIntrinsicStepStatistics) {
  StepModelParams truth = known_step_params();
  constexpr double kSigmaRead = 0.08 * kUs;
  truth.read_std.assign(truth.g_nodes.size(), kSigmaRead);
  const StepDevice device(truth);
  constexpr int kRamps = 40, kPulses = 150, kBins = 4;
  const RampData data = synthetic_ramp_data(device, kRamps, kPulses, 31);
  devices::StepFitDiagnostics diagnostics;
  const StepModelParams fit = devices::fit_step_model(data, kBins, &diagnostics);
  const StepDevice fitted(fit);
  EXPECT_EQ(diagnostics.read_noise, "constant");
  EXPECT_GT(diagnostics.lr_constant, diagnostics.lr_constant_threshold);
  EXPECT_LT(diagnostics.lr_per_bin, diagnostics.lr_per_bin_threshold);
  ASSERT_EQ(fit.read_std.size(), fit.g_nodes.size());

  // σ̂² = −mean of the N lag-1 products r_i r_{i+1} of an MA(1) series with autocovariances γ0
  // (taken with the largest intrinsic spread: conservative) and γ1 = −σ²: a product has variance
  // γ0² + γ1² (Gaussian), neighbouring products covary by γ1², so Var(σ̂²) ≈ (γ0² + 3 γ1²) / N
  // and SE(σ̂) = SE(σ̂²) / (2σ).
  const double pairs = static_cast<double>(diagnostics.read_pairs);
  ASSERT_GT(pairs, 0.99 * 2 * kRamps * (kPulses - 1));
  const double var_read = kSigmaRead * kSigmaRead, s_max = 0.10 * kUs;
  const double gamma0_max = s_max * s_max + 2 * var_read;
  const double se_var_read = std::sqrt((gamma0_max * gamma0_max + 3 * var_read * var_read) / pairs);
  const double se_sigma = se_var_read / (2 * kSigmaRead);
  std::printf("read noise recovery: sigma_read %.4f uS (truth %.4f, 5 SE %.4f) from %.0f pairs, 2 dlnL %.1f\n",
              fit.read_std.front() / kUs, kSigmaRead / kUs, 5 * se_sigma / kUs, pairs, diagnostics.lr_constant);
  for (double v : fit.read_std) EXPECT_NEAR(v, kSigmaRead, 5 * se_sigma);
  EXPECT_NEAR(fitted.read_noise_std(30 * kUs), kSigmaRead, 5 * se_sigma);

  // Tables at the bin centres. Mean: as in RecoversKnownParametersFromSyntheticRamps with the
  // measured-step variance γ0 = s² + 2σ² (conservative: read noise telescopes in a bin's mean).
  // Intrinsic spread: ŝ_int² = ŝ² − 2σ̂², where the bin's measured-step variance ŝ² (from n
  // residuals of an MA(1) series, through a line: leverage λ) has Var ≈ 2 λ (γ0² + 2 γ1²);
  // SE(ŝ_int) = sqrt(Var(ŝ²) + 4 Var(σ̂²)) / (2 s_int).
  const auto [lo, hi] = observed_range(data);
  int telling = 0;  // table entries where the measured-step spread would be rejected
  for (int b = 0; b < kBins; ++b) {
    const double centre = fit.g_nodes[b + 1];
    for (int up = 0; up < 2; ++up) {
      const BinStates in_bin = bin_states(up ? data.set : data.reset, lo, hi, kBins, b);
      const double n = static_cast<double>(in_bin.states.size());
      ASSERT_GE(n, 10);
      double mean_g = 0, sxx = 0;
      for (double g : in_bin.states) mean_g += g / n;
      for (double g : in_bin.states) sxx += (g - mean_g) * (g - mean_g);
      const double leverage = 1 / n + (centre - mean_g) * (centre - mean_g) / sxx;
      const double m = device.mean_step(centre, up), s = device.step_spread(centre, up);
      const double gamma0 = s * s + 2 * var_read;
      const double se_mean = std::sqrt(gamma0 * leverage + m * m * 0.01 / in_bin.ramps);
      const double se_var = std::sqrt(2 * leverage * (gamma0 * gamma0 + 2 * var_read * var_read));
      const double se_spread = std::sqrt(se_var * se_var + 4 * se_var_read * se_var_read) / (2 * s);
      SCOPED_TRACE(std::string(up ? "SET" : "RESET") + " bin " + std::to_string(b));
      EXPECT_NEAR(fitted.mean_step(centre, up), m, 5 * se_mean);
      EXPECT_NEAR(fitted.step_spread(centre, up), s, 5 * se_spread);
      telling += std::sqrt(gamma0) - s > 10 * se_spread ? 1 : 0;
    }
  }
  // Without the de-noising the spread would be the measured-step one, sqrt(s² + 2σ²): more than
  // 10 standard errors off in the well-populated bins, so the test can tell.
  EXPECT_GE(telling, 4);
  // The device-to-device sigma and the transient as without read noise (their tolerances there).
  const double se_d2d = 0.1 / std::sqrt(2.0 * (kRamps - 1));
  EXPECT_NEAR(fit.d2d_sigma_up, truth.d2d_sigma_up, 5 * se_d2d);
  EXPECT_NEAR(fit.d2d_sigma_down, truth.d2d_sigma_down, 5 * se_d2d);
  // (the first SET pulses' relative step variance gains 2 σ² / (r(0) m)², with r(0) m about 0.2 uS)
  const double read_rel = kSigmaRead / (0.2 * kUs);
  const double se_r = std::sqrt(0.25 * 0.25 + 0.1 * 0.1 + 2 * read_rel * read_rel) / std::sqrt(static_cast<double>(kRamps));
  for (int n : {0, 2, 8}) EXPECT_NEAR(fitted.reversal_factor(n, true), device.reversal_factor(n, true), 5 * se_r) << n;
}

// A read noise that grows tenfold over the window: the per-bin table beats the constant and is
// kept; each bin's estimate matches the mean read variance of the reads the bin's pairs share.
TEST(StepModelFit, RecoversAStateDependentReadNoiseAsAPerBinTable) {
  StepModelParams truth = known_step_params();
  truth.read_std = {0.02 * kUs, 0.20 * kUs};  // at 10 and 60 uS, linear in between
  const StepDevice device(truth);
  constexpr int kRamps = 40, kPulses = 150, kBins = 4;
  const RampData data = synthetic_ramp_data(device, kRamps, kPulses, 57);
  devices::StepFitDiagnostics diagnostics;
  const StepModelParams fit = devices::fit_step_model(data, kBins, &diagnostics);
  EXPECT_EQ(diagnostics.read_noise, "per-bin");
  EXPECT_GT(diagnostics.lr_per_bin, diagnostics.lr_per_bin_threshold);
  ASSERT_EQ(diagnostics.read_std_per_bin.size(), static_cast<std::size_t>(kBins));
  ASSERT_EQ(fit.read_std.size(), static_cast<std::size_t>(kBins + 2));
  // The truth of bin b: the mean of σ_read(y)² over the interior reads y (those two steps share)
  // in the bin; the standard error as in the constant case, per bin.
  const auto [lo, hi] = observed_range(data);
  const double width = (hi - lo) / kBins;
  for (int b = 0; b < kBins; ++b) {
    double sum = 0;
    int count = 0;
    for (const auto* ramps : {&data.set, &data.reset})
      for (const Ramp& r : *ramps)
        for (std::size_t j = 1; j + 1 < r.g.size(); ++j)
          if (std::clamp(static_cast<int>((r.g[j] - lo) / width), 0, kBins - 1) == b) {
            sum += std::pow(device.read_noise_std(r.g[j]), 2);
            ++count;
          }
    ASSERT_GT(count, 100);
    const double var_read = sum / count, sigma = std::sqrt(var_read);
    const double gamma0 = 0.10 * kUs * 0.10 * kUs + 2 * var_read;
    const double se = std::sqrt((gamma0 * gamma0 + 3 * var_read * var_read) / count) / (2 * sigma);
    EXPECT_NEAR(diagnostics.read_std_per_bin[b], sigma, 5 * se) << "bin " << b;
    EXPECT_DOUBLE_EQ(fit.read_std[b + 1], diagnostics.read_std_per_bin[b]);
  }
  EXPECT_DOUBLE_EQ(fit.read_std.front(), fit.read_std[1]);  // constant beyond the first and last centre
  EXPECT_DOUBLE_EQ(fit.read_std.back(), fit.read_std[kBins]);
}

// Read noise much larger than the steps (as in the Gong et al. pulse response) and each direction's
// ramps at one end of a single bin: regressing the steps on the reads before them would pull the
// in-bin line by −σ_read² / var(reads) (the step after a read that came out high falls back) and
// put a mean step of several uS at the bin centre; with the states estimated from the previous
// read the mean step stays within its sampling error of the truth.
TEST(StepModelFit, LargeReadNoiseDoesNotBiasTheMeanStepThroughTheStates) {
  StepModelParams truth = flat_params(0.02 * kUs, 0.05 * kUs, -0.02 * kUs, 0.05 * kUs);
  constexpr double kSigmaRead = 1.0 * kUs;
  truth.read_std.assign(truth.g_nodes.size(), kSigmaRead);
  const StepDevice device(truth);
  constexpr int kRamps = 40, kPulses = 150;
  const RampData data = synthetic_ramp_data(device, kRamps, kPulses, 8);
  devices::StepFitDiagnostics diagnostics;
  const StepModelParams fit = devices::fit_step_model(data, 1, &diagnostics);
  const StepDevice fitted(fit);
  ASSERT_EQ(diagnostics.read_noise, "constant");
  const double pairs = static_cast<double>(diagnostics.read_pairs);
  const double var_read = kSigmaRead * kSigmaRead, gamma0 = 0.05 * kUs * 0.05 * kUs + 2 * var_read;
  const double se_sigma = std::sqrt((gamma0 * gamma0 + 3 * var_read * var_read) / pairs) / (2 * kSigmaRead);
  EXPECT_NEAR(fit.read_std.front(), kSigmaRead, 5 * se_sigma);
  // The mean step at the bin centre, extrapolated by the in-bin line from the direction's states:
  // its standard error is sqrt(γ0 λ) with the leverage λ of the centre among the states.
  const auto [lo, hi] = observed_range(data);
  const double centre = 0.5 * (lo + hi);
  for (int up = 0; up < 2; ++up) {
    const BinStates in_bin = bin_states(up ? data.set : data.reset, lo, hi, 1, 0);
    const double n = static_cast<double>(in_bin.states.size());
    double mean_g = 0, sxx = 0;
    for (double g : in_bin.states) mean_g += g / n;
    for (double g : in_bin.states) sxx += (g - mean_g) * (g - mean_g);
    const double se_mean = std::sqrt(gamma0 * (1 / n + (centre - mean_g) * (centre - mean_g) / sxx));
    // The bias the reads as states would give: −σ² / var(reads) per unit of state, times the
    // distance to the centre.
    const double bias = var_read / (sxx / n) * std::abs(centre - mean_g);
    EXPECT_GT(bias, 10 * se_mean) << "the test would not see the bias";
    EXPECT_NEAR(fitted.mean_step(centre, up), device.mean_step(centre, up), 5 * se_mean) << (up ? "SET" : "RESET");
  }
}

TEST(StepModelFit, TaoxFitChangesWhenHeldOutRampsAreAdded) {
  const TaoxRamps all = load_taox();
  ASSERT_EQ(all.set.size(), 39u);
  ASSERT_EQ(all.reset.size(), 40u);
  const RampData fitting = fitting_split(all);
  ASSERT_EQ(fitting.set.size(), static_cast<std::size_t>(kSetFittingRamps));
  ASSERT_EQ(fitting.reset.size(), static_cast<std::size_t>(kResetFittingRamps));
  const StepModelParams on_fitting = devices::fit_step_model(fitting, 10);
  const StepModelParams on_all = devices::fit_step_model(every_ramp(all), 10);
  // The data matter: twelve more ramps per direction move the fit by well over rounding.
  EXPECT_GT(largest_relative_difference(on_fitting, on_all), 1e-3);
  EXPECT_NE(on_fitting.g_max, on_all.g_max);  // held-out ramps reach beyond the fitting range
  // The turning points of the fitting ramps climb over the cycles, the bottom (about 1.2 uS per
  // cycle) faster than the top: a window drift is kept, and with it no ageing trend (a fit without
  // the drift needs one for the SET steps that slow down near the top).
  EXPECT_GT(on_fitting.window_drift_low, 0.8 * kUs);
  EXPECT_LT(on_fitting.window_drift_low, 1.6 * kUs);
  EXPECT_GT(on_fitting.window_drift_high, 0.2 * kUs);
  EXPECT_LT(on_fitting.window_drift_high, on_fitting.window_drift_low);
  EXPECT_EQ(on_fitting.up_ageing, 0.0);
  EXPECT_EQ(on_fitting.down_ageing, 0.0);
  // Sanity of the fit itself: conductances of 1.6-2.5 mS, SET steps up, RESET steps down, a few
  // uS per pulse.
  EXPECT_GT(on_fitting.g_min, 1.4e-3);
  EXPECT_LT(on_fitting.g_max, 2.6e-3);
  for (std::size_t i = 0; i < on_fitting.g_nodes.size(); ++i) {
    EXPECT_GT(on_fitting.up_mean[i], 0.5 * kUs);
    EXPECT_LT(on_fitting.up_mean[i], 20 * kUs);
    EXPECT_LT(on_fitting.down_mean[i], -0.5 * kUs);
    EXPECT_GT(on_fitting.down_mean[i], -20 * kUs);
  }
}

TEST(StepModelFit, TaoxFittingSplitGivesTheSameFitWhateverTheHeldOutValues) {
  const TaoxRamps all = load_taox();
  // The same measurement with every held-out ramp replaced by something else entirely.
  TaoxRamps altered = all;
  for (Ramp& r : altered.set)
    if (r.id > kSetFittingRamps)
      for (double& g : r.g) g = 3.0 * g + 1e-4;
  for (Ramp& r : altered.reset)
    if (r.id > kResetFittingRamps) r.g.resize(r.g.size() / 2);
  const StepModelParams a = devices::fit_step_model(fitting_split(all), 10);
  const StepModelParams b = devices::fit_step_model(fitting_split(altered), 10);
  expect_same_params(a, b);
}

// ---- the PulseDevice -----------------------------------------------------------------------------

TEST(StepDevice, SingleStepMeanAndSpreadMatchTheTables) {
  StepModelParams p = known_step_params();
  p.d2d_sigma_up = p.d2d_sigma_down = 0;
  p.up_reversal_depth = 0;
  const StepDevice device(p);
  constexpr int kN = 20000;
  for (double g0 : {15 * kUs, 35 * kUs, 52 * kUs})
    for (bool up : {true, false}) {
      core::RandomStream rng(11, "single_steps", {static_cast<std::uint64_t>(g0 / kUs), up ? 1u : 0u});
      double sum = 0, sum2 = 0;
      for (int i = 0; i < kN; ++i) {
        CellState s = device.initial_state(g0, rng);
        device.apply_pulse(s, up ? kSet : kReset, rng);
        const double dg = device.conductance(s) - g0;
        sum += dg;
        sum2 += dg * dg;
      }
      const double mean = sum / kN, sd = std::sqrt(sum2 / kN - mean * mean);
      const double m = device.mean_step(g0, up), s = device.step_spread(g0, up);
      EXPECT_NEAR(mean, m, 5 * s / std::sqrt(kN)) << g0 << (up ? " SET" : " RESET");
      EXPECT_NEAR(sd, s, 5 * s / std::sqrt(2.0 * kN)) << g0 << (up ? " SET" : " RESET");
    }
  // The tables interpolate linearly between nodes and are constant beyond them.
  EXPECT_NEAR(device.mean_step(35 * kUs, true), 0.225 * kUs, 1e-15);
  EXPECT_NEAR(device.mean_step(5 * kUs, true), 0.40 * kUs, 1e-15);
  EXPECT_NEAR(device.step_spread(70 * kUs, false), 0.10 * kUs, 1e-15);
}

TEST(StepDevice, FirstStepsOfFreshDevicesAverageTheLognormalFactorAndTransient) {
  StepModelParams p = flat_params(0.5 * kUs, 0.1 * kUs, -0.5 * kUs, 0.1 * kUs, 0.2);
  p.up_reversal_depth = 0.6;
  p.up_reversal_decay = 2.0;
  const StepDevice device(p);
  constexpr int kN = 20000;
  core::RandomStream rng(5, "first_steps");
  double sum = 0, sum2 = 0;
  for (int i = 0; i < kN; ++i) {
    CellState s = device.initial_state(30 * kUs, rng);
    device.apply_pulse(s, kSet, rng);
    const double dg = device.conductance(s) - 30 * kUs;
    sum += dg;
    sum2 += dg * dg;
  }
  // dG = d (1 - 0.6) m + s N: mean exp(sigma²/2) 0.4 m, variance (0.4 m)² var(d) + s².
  const double mean = sum / kN, var = sum2 / kN - mean * mean;
  const double m = 0.4 * 0.5 * kUs, var_d = std::exp(0.04) * (std::exp(0.04) - 1);
  const double expected_var = m * m * var_d + 0.01 * kUs * kUs;
  EXPECT_NEAR(mean, std::exp(0.02) * m, 5 * std::sqrt(expected_var / kN));
  EXPECT_NEAR(var, expected_var, 5 * expected_var * std::sqrt(2.0 / kN));
}

TEST(StepDevice, ReversalTransientRestartsWhenTheDirectionChanges) {
  StepModelParams p = flat_params(1.0 * kUs, 0.0, -1.0 * kUs, 0.0);
  p.up_reversal_depth = 0.8;
  p.up_reversal_decay = 2.0;
  p.down_reversal_depth = 0.5;
  p.down_reversal_decay = 1.0;
  const StepDevice device(p);
  core::RandomStream rng(1, "transient");
  CellState s = device.initial_state(30 * kUs, rng);
  auto step = [&](const Pulse& pulse) {
    const double before = device.conductance(s);
    device.apply_pulse(s, pulse, rng);
    return device.conductance(s) - before;
  };
  EXPECT_NEAR(step(kSet), 0.2 * kUs, 1e-15);                                  // n = 0
  EXPECT_NEAR(step(kSet), (1 - 0.8 * std::exp(-0.5)) * kUs, 1e-15);           // n = 1
  EXPECT_NEAR(step(kSet), (1 - 0.8 * std::exp(-1.0)) * kUs, 1e-15);           // n = 2
  EXPECT_NEAR(step(kReset), -0.5 * kUs, 1e-15);                               // reversal: n = 0
  EXPECT_NEAR(step(kReset), -(1 - 0.5 * std::exp(-1.0)) * kUs, 1e-15);
  EXPECT_NEAR(step(kSet), 0.2 * kUs, 1e-15);                                  // and back
  EXPECT_NEAR(step(Pulse{0.0, 1e-9}), 0.0, 0.0);                              // no pulse, no change
  EXPECT_NEAR(step(kSet), (1 - 0.8 * std::exp(-0.5)) * kUs, 1e-15);           // the count went on
}

TEST(StepDevice, ConductanceStaysWithinTheBounds) {
  const StepDevice device(flat_params(2.0 * kUs, 1.0 * kUs, -2.0 * kUs, 1.0 * kUs, 0.3));
  core::RandomStream rng(3, "bounds");
  // Starts outside the window are clamped.
  EXPECT_DOUBLE_EQ(device.conductance(device.initial_state(1 * kUs, rng)), 10 * kUs);
  EXPECT_DOUBLE_EQ(device.conductance(device.initial_state(90 * kUs, rng)), 60 * kUs);
  for (bool up : {true, false}) {
    CellState s = device.initial_state(up ? 55 * kUs : 15 * kUs, rng);
    int at_bound = 0;
    for (int i = 0; i < 200; ++i) {
      device.apply_pulse(s, up ? kSet : kReset, rng);
      const double g = device.conductance(s);
      ASSERT_GE(g, 10 * kUs);
      ASSERT_LE(g, 60 * kUs);
      if (g == (up ? 60 * kUs : 10 * kUs)) ++at_bound;
    }
    EXPECT_GT(at_bound, 100) << (up ? "SET" : "RESET") << " pulses should pile the state up at the bound";
  }
}

TEST(StepDevice, WindowMapShiftsTheBottomAndStretchesTowardsTheTop) {
  // No drift: the identity at every cycle.
  const devices::WindowMap still(10 * kUs, 60 * kUs, 0, 0, 40);
  for (double g : {10 * kUs, 23 * kUs, 60 * kUs}) {
    EXPECT_DOUBLE_EQ(still.reference(g), g);
    EXPECT_DOUBLE_EQ(still.stretch(g), 1.0);
  }
  // Bottom +0.1 uS, top +0.03 uS per cycle, at cycle 40: the window is [14, 61.2] uS.
  const devices::WindowMap map(10 * kUs, 60 * kUs, 0.1 * kUs, 0.03 * kUs, 40);
  EXPECT_NEAR(map.bottom(), 14 * kUs, 1e-18);
  EXPECT_NEAR(map.top(), 61.2 * kUs, 1e-18);
  EXPECT_NEAR(map.conductance(10 * kUs), map.bottom(), 1e-18);
  EXPECT_NEAR(map.conductance(60 * kUs), map.top(), 1e-18);
  // A reference conductance drifts by c (low + (high - low) x²): at x = 0.5, 40 · 0.0825 uS.
  EXPECT_NEAR(map.conductance(35 * kUs), 35 * kUs + 3.3 * kUs, 1e-17);
  for (double g_ref : {10 * kUs, 12.5 * kUs, 35 * kUs, 59 * kUs, 60 * kUs}) {
    EXPECT_NEAR(map.reference(map.conductance(g_ref)), g_ref, 1e-18);
    const double h = 1e-3 * kUs;  // the stretch is the derivative of the map
    EXPECT_NEAR(map.stretch(g_ref), (map.conductance(g_ref + h) - map.conductance(g_ref - h)) / (2 * h), 1e-9);
  }
  EXPECT_DOUBLE_EQ(map.stretch(10 * kUs), 1.0);  // the bottom shifts without stretching
  EXPECT_LT(map.stretch(60 * kUs), 1.0);         // the top compresses
  // A drift that folds the window is refused.
  EXPECT_THROW(devices::WindowMap(10 * kUs, 60 * kUs, 1 * kUs, -1 * kUs, 40), core::UserError);
}

TEST(StepDevice, ADriftedDeviceStepsAsTheReferenceDeviceTimesTheStretch) {
  StepModelParams p = known_step_params();
  p.d2d_sigma_up = p.d2d_sigma_down = 0;
  p.up_reversal_depth = 0;
  p.window_drift_low = 0.1 * kUs;
  p.window_drift_high = 0.03 * kUs;
  p.read_std.assign(p.g_nodes.size(), 0.2 * kUs);
  const StepDevice device(p);
  constexpr double kCycle = 40;
  const devices::WindowMap map(p.g_min, p.g_max, p.window_drift_low, p.window_drift_high, kCycle);
  constexpr int kN = 20000;
  for (double g_ref : {15 * kUs, 52 * kUs})
    for (bool up : {true, false}) {
      const double g0 = map.conductance(g_ref);
      core::RandomStream rng(12, "drifted_steps", {static_cast<std::uint64_t>(g_ref / kUs), up ? 1u : 0u});
      core::RandomStream reads(12, "drifted_reads", {static_cast<std::uint64_t>(g_ref / kUs), up ? 1u : 0u});
      double sum = 0, sum2 = 0, read_sum2 = 0;
      for (int i = 0; i < kN; ++i) {
        CellState s = device.initial_state_at(g0, kCycle, rng);
        const double r = device.read(s, reads) - g0;
        read_sum2 += r * r;
        device.apply_pulse(s, up ? kSet : kReset, rng);
        const double dg = device.conductance(s) - g0;
        sum += dg;
        sum2 += dg * dg;
      }
      const double mean = sum / kN, sd = std::sqrt(sum2 / kN - mean * mean);
      const double stretch = map.stretch(g_ref);
      const double m = stretch * device.mean_step(g_ref, up), sp = stretch * device.step_spread(g_ref, up);
      EXPECT_NEAR(mean, m, 5 * sp / std::sqrt(kN)) << g_ref << (up ? " SET" : " RESET");
      EXPECT_NEAR(sd, sp, 5 * sp / std::sqrt(2.0 * kN)) << g_ref << (up ? " SET" : " RESET");
      const double read_sd = std::sqrt(read_sum2 / kN);
      EXPECT_NEAR(read_sd, stretch * 0.2 * kUs, 5 * 0.2 * kUs / std::sqrt(2.0 * kN));
      EXPECT_DOUBLE_EQ(device.read_noise_at(g0, kCycle), stretch * 0.2 * kUs);
    }
  // The clamp follows the window of the cycle.
  core::RandomStream rng(4, "drifted_bounds");
  EXPECT_NEAR(device.conductance(device.initial_state_at(1 * kUs, kCycle, rng)), map.bottom(), 1e-18);
  EXPECT_NEAR(device.conductance(device.initial_state_at(90 * kUs, kCycle, rng)), map.top(), 1e-18);
  EXPECT_NEAR(device.window_bottom(kCycle), map.bottom(), 1e-18);
}

TEST(StepDevice, DeviceFactorsAreLognormalWithMedianOne) {
  StepModelParams p = flat_params(1.0 * kUs, 0.1 * kUs, -1.0 * kUs, 0.1 * kUs);
  p.d2d_sigma_up = 0.15;
  p.d2d_sigma_down = 0.3;
  const StepDevice device(p);
  constexpr int kN = 40000;
  core::RandomStream rng(9, "factors");
  double su = 0, su2 = 0, sd = 0, sd2 = 0, cross = 0;
  int below_one = 0;
  for (int i = 0; i < kN; ++i) {
    const CellState s = device.initial_state(30 * kUs, rng);
    const double lu = std::log(s[1]), ld = std::log(s[2]);
    su += lu, su2 += lu * lu, sd += ld, sd2 += ld * ld, cross += lu * ld;
    below_one += s[1] < 1 ? 1 : 0;
  }
  for (const auto& [sum, sum2, sigma] : {std::tuple{su, su2, 0.15}, std::tuple{sd, sd2, 0.3}}) {
    const double mean = sum / kN, var = sum2 / kN - mean * mean;
    EXPECT_NEAR(mean, 0.0, 5 * sigma / std::sqrt(kN));
    EXPECT_NEAR(var, sigma * sigma, 5 * sigma * sigma * std::sqrt(2.0 / kN));
  }
  // Median 1, and the two factors independent.
  EXPECT_NEAR(below_one / double(kN), 0.5, 5 * 0.5 / std::sqrt(kN));
  EXPECT_NEAR(cross / kN / (0.15 * 0.3), 0.0, 5 / std::sqrt(kN));
}

TEST(StepDevice, ReadsAddFreshGaussianNoiseOfTheTableAndLeaveTheState) {
  StepModelParams p = flat_params(1.0 * kUs, 0.1 * kUs, -1.0 * kUs, 0.1 * kUs);
  p.read_std = {0.2 * kUs, 0.3 * kUs, 0.6 * kUs};  // at 10, 35 and 60 uS
  const StepDevice device(p);
  EXPECT_TRUE(device.has_read_noise());
  EXPECT_NEAR(device.read_noise_std(47.5 * kUs), 0.45 * kUs, 1e-18);
  EXPECT_NEAR(device.read_noise_std(5 * kUs), 0.2 * kUs, 1e-18);
  constexpr int kN = 40000;
  core::RandomStream rng(21, "reads");
  const CellState state = device.initial_state(47.5 * kUs, rng);
  const CellState before = state;
  double sum = 0, sum2 = 0, lag = 0, previous = 0;
  for (int i = 0; i < kN; ++i) {
    const double n = device.read(state, rng) - 47.5 * kUs;
    sum += n, sum2 += n * n, lag += n * previous, previous = n;
  }
  EXPECT_EQ(state, before);
  const double sigma = 0.45 * kUs, mean = sum / kN, var = sum2 / kN - mean * mean;
  EXPECT_NEAR(mean, 0.0, 5 * sigma / std::sqrt(kN));
  EXPECT_NEAR(var, sigma * sigma, 5 * sigma * sigma * std::sqrt(2.0 / kN));
  EXPECT_NEAR(lag / kN, 0.0, 5 * sigma * sigma / std::sqrt(kN));  // independent reads
  // Without read noise a read is the state and draws nothing from the stream.
  const StepDevice quiet(flat_params(1.0 * kUs, 0.1 * kUs, -1.0 * kUs, 0.1 * kUs));
  EXPECT_FALSE(quiet.has_read_noise());
  core::RandomStream a(4, "quiet"), b(4, "quiet");
  EXPECT_EQ(quiet.read(state, a), 47.5 * kUs);
  EXPECT_EQ(a.normal(), b.normal());
}

// ---- the card and programming --------------------------------------------------------------------

TEST(StepModelCard, ParametersAreDeclaredOnceAndConvertToSiemens) {
  const auto* info = devices::builtin_devices().find("rram-step");
  ASSERT_NE(info, nullptr);
  EXPECT_NE(info->reference.find("CrossSim"), std::string::npos);
  std::vector<std::string> keys;
  for (const auto& spec : info->params) keys.push_back(spec.key);
  for (const char* key : {"g_nodes", "up_mean", "up_std", "down_mean", "down_std", "d2d_sigma_up", "d2d_sigma_down",
                          "up_reversal_depth", "up_reversal_decay", "down_reversal_depth", "down_reversal_decay",
                          "up_ageing", "down_ageing", "cycle", "window_drift_low", "window_drift_high",
                          "read_noise_std", "write_verify.max_pulses",
                          "write_verify.tolerance"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;

  const core::Card card = step_card({"device.g_nodes=[0, 0.25, 1]", "device.up_mean=[0.02, 0.01, 0.005]",
                                     "device.up_std=[0.004, 0.003, 0.002]", "device.down_mean=[-0.001, -0.01, -0.03]",
                                     "device.down_std=[0.001, 0.002, 0.003]", "device.d2d_sigma_up=0.05"});
  const StepModelParams p = devices::step_params_from(card.device);
  const double range = 39e-6;
  EXPECT_DOUBLE_EQ(p.g_min, 1e-6);
  EXPECT_DOUBLE_EQ(p.g_max, 40e-6);
  ASSERT_EQ(p.g_nodes.size(), 3u);
  EXPECT_NEAR(p.g_nodes[1], 1e-6 + 0.25 * range, 1e-18);
  EXPECT_NEAR(p.up_mean[0], 0.02 * range, 1e-18);
  EXPECT_NEAR(p.up_std[2], 0.002 * range, 1e-18);
  EXPECT_NEAR(p.down_mean[2], -0.03 * range, 1e-18);
  EXPECT_NEAR(p.down_std[1], 0.002 * range, 1e-18);
  EXPECT_DOUBLE_EQ(p.d2d_sigma_up, 0.05);
  EXPECT_DOUBLE_EQ(p.d2d_sigma_down, 0.1);
  EXPECT_DOUBLE_EQ(p.up_reversal_depth, 0.0);
  EXPECT_DOUBLE_EQ(p.up_ageing, 0.0);  // defaults: no ageing, programmed at the reference cycle 0
  EXPECT_DOUBLE_EQ(p.down_ageing, 0.0);
  EXPECT_DOUBLE_EQ(p.cycle, 0.0);
  const StepModelParams aged = devices::step_params_from(
      step_card({"device.up_ageing=-0.01", "device.down_ageing=0.02", "device.cycle=50"}).device);
  EXPECT_DOUBLE_EQ(aged.up_ageing, -0.01);
  EXPECT_DOUBLE_EQ(aged.down_ageing, 0.02);
  EXPECT_DOUBLE_EQ(aged.cycle, 50.0);
  EXPECT_DOUBLE_EQ(p.window_drift_low, 0.0);  // default: no window drift
  EXPECT_DOUBLE_EQ(p.window_drift_high, 0.0);
  const StepModelParams drifting =
      devices::step_params_from(step_card({"device.window_drift_low=0.002", "device.window_drift_high=-0.001"}).device);
  EXPECT_NEAR(drifting.window_drift_low, 0.002 * range, 1e-20);  // window units to S per cycle
  EXPECT_NEAR(drifting.window_drift_high, -0.001 * range, 1e-20);
  // Read noise: off by default (one value, 0); one value holds at every node, or one per node.
  ASSERT_EQ(p.read_std.size(), 3u);
  EXPECT_FALSE(StepDevice(p).has_read_noise());
  const StepModelParams one = devices::step_params_from(step_card({"device.read_noise_std=[0.002]"}).device);
  ASSERT_EQ(one.read_std.size(), 3u);
  for (double v : one.read_std) EXPECT_NEAR(v, 0.002 * range, 1e-18);
  const StepModelParams per_node =
      devices::step_params_from(step_card({"device.read_noise_std=[0.001, 0.002, 0.004]"}).device);
  EXPECT_NEAR(per_node.read_std[2], 0.004 * range, 1e-18);
  try {
    devices::step_params_from(step_card({"device.read_noise_std=[0.001, 0.002]"}).device);
    ADD_FAILURE() << "a read_noise_std list of 2 values for 3 nodes was accepted";
  } catch (const core::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("device.read_noise_std"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected 1 value"), std::string::npos) << e.what();
  }
  EXPECT_THROW(step_card({"device.read_noise_std=[-0.001]"}), core::UserError);  // the card's range

  // The defaults: soft bounds (SET steps shrink towards g_max, RESET steps grow in magnitude).
  const StepDevice defaults(devices::step_params_from(step_card().device));
  EXPECT_GT(defaults.mean_step(2e-6, true), defaults.mean_step(39e-6, true));
  EXPECT_LT(std::abs(defaults.mean_step(2e-6, false)), std::abs(defaults.mean_step(39e-6, false)));

  // Lists of different lengths, or nodes that do not run from 0 to 1, are user errors.
  EXPECT_THROW(devices::step_params_from(step_card({"device.up_std=[0.01, 0.01]"}).device), core::UserError);
  EXPECT_THROW(devices::step_params_from(step_card({"device.g_nodes=[0.1, 0.5, 1]"}).device), core::UserError);
  EXPECT_THROW(devices::step_params_from(step_card({"device.g_nodes=[0, 0.7, 0.5, 1]", "device.up_mean=[0, 0, 0, 0]",
                                                    "device.up_std=[0, 0, 0, 0]", "device.down_mean=[0, 0, 0, 0]",
                                                    "device.down_std=[0, 0, 0, 0]"})
                                               .device),
               core::UserError);
}

TEST(StepModelProgramming, WriteVerifyConvergesWithTheDefaultCard) {
  const core::Card card = step_card({}, 40, 40);
  const auto device = devices::builtin_devices().create(card.device);
  const Eigen::MatrixXd target = spread_targets(40, 40, 1e-6, 40e-6);
  core::RandomStream rng(card.seed, "programming");
  const devices::ProgrammedArray out = device->program(target, rng);
  const double tolerance = devices::write_verify_options(card.device).tolerance;
  int converged = 0;
  for (Eigen::Index i = 0; i < target.rows(); ++i)
    for (Eigen::Index j = 0; j < target.cols(); ++j) {
      ASSERT_GE(out.g_programmed(i, j), 1e-6);
      ASSERT_LE(out.g_programmed(i, j), 40e-6);
      if (out.converged(i, j)) {
        ++converged;
        EXPECT_NEAR(out.g_programmed(i, j), target(i, j), tolerance * (1 + 1e-12));
      }
    }
  EXPECT_GE(converged, 0.99 * 1600);
  // Reads return the programmed conductances: no drift, and no read noise by default.
  core::RandomStream read_rng(card.seed, "read");
  EXPECT_EQ(device->read_conductance(out, 1e5, read_rng), out.g_programmed);
  EXPECT_EQ(out.cell_state.count("d2d_factor_up"), 1u);
}

TEST(StepModelProgramming, ReadsAddTheCardsReadNoiseFreshEveryRead) {
  // device.read_noise_std = 0.01 of the 39 uS window: 0.39 uS per read.
  const core::Card card = step_card({"device.read_noise_std=[0.01]"}, 40, 40);
  const auto device = devices::builtin_devices().create(card.device);
  core::RandomStream rng(card.seed, "programming");
  const devices::ProgrammedArray out = device->program(spread_targets(40, 40, 2e-6, 39e-6), rng);
  core::RandomStream read_a(card.seed, "read", {0}), read_b(card.seed, "read", {1}), again(card.seed, "read", {0});
  const Eigen::MatrixXd a = device->read_conductance(out, 0, read_a), b = device->read_conductance(out, 0, read_b);
  EXPECT_EQ(a, device->read_conductance(out, 0, again));  // the read's stream decides
  const Eigen::ArrayXXd noise_a = (a - out.g_programmed).array(), noise_b = (b - out.g_programmed).array();
  const double n = static_cast<double>(noise_a.size()), sigma = 0.01 * 39e-6;
  EXPECT_NEAR(noise_a.mean(), 0.0, 5 * sigma / std::sqrt(n));
  EXPECT_NEAR(noise_a.square().mean(), sigma * sigma, 5 * sigma * sigma * std::sqrt(2.0 / n));
  EXPECT_NEAR((noise_a * noise_b).mean(), 0.0, 5 * sigma * sigma / std::sqrt(n));  // fresh noise per read
}

TEST(StepModelProgramming, SameSeedSameResultWithOneAndTwoThreads) {
  const core::Card card = step_card({}, 24, 24);
  const auto device = devices::builtin_devices().create(card.device);
  const Eigen::MatrixXd target = spread_targets(24, 24, 1e-6, 40e-6);
  auto run = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    core::RandomStream rng(card.seed, "programming");
    return device->program(target, rng);
  };
  const devices::ProgrammedArray one = run(1), two = run(2);
  EXPECT_EQ(one.g_programmed, two.g_programmed);
  EXPECT_EQ(one.pulses, two.pulses);
  EXPECT_EQ(one.cell_state.at("d2d_factor_down"), two.cell_state.at("d2d_factor_down"));
}

// ---- replay --------------------------------------------------------------------------------------

TEST(StepReplay, ReplaysHaveTheMeasuredLengthsAndStartsAndAreReproducible) {
  const StepDevice device(known_step_params());
  const std::vector<Ramp> ramps = {{1, {12 * kUs, 12.4 * kUs, 12.8 * kUs, 13.1 * kUs}},
                                   {2, {20 * kUs}},
                                   {3, {}},
                                   {4, std::vector<double>(151, 15 * kUs)}};
  const core::RandomStream rng(42, "replay");
  const auto a = devices::replay_ramps(device, ramps, true, 5, rng);
  ASSERT_EQ(a.size(), ramps.size());
  for (std::size_t k = 0; k < ramps.size(); ++k) {
    ASSERT_EQ(a[k].size(), 5u);
    for (const auto& rep : a[k]) {
      ASSERT_EQ(rep.size(), ramps[k].g.size()) << "ramp " << k;
      if (!rep.empty()) {
        EXPECT_DOUBLE_EQ(rep.front(), ramps[k].g.front());
      }
    }
  }
  // SET replays go up; repetitions are different devices.
  EXPECT_GT(a[3][0].back(), a[3][0].front() + 20 * kUs);
  EXPECT_NE(a[3][0], a[3][1]);
  // Same stream, same replays, whatever the thread count; another stream, other replays.
  const auto b = [&] {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 1);
    return devices::replay_ramps(device, ramps, true, 5, rng);
  }();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, devices::replay_ramps(device, ramps, true, 5, core::RandomStream(43, "replay")));
  // Each (ramp, repetition) draws from rng.derive("ramp", {k, rep}) only.
  core::RandomStream stream = rng.derive("ramp", {3, 2});
  CellState s = device.initial_state(ramps[3].g[0], stream);
  for (std::size_t i = 1; i < ramps[3].g.size(); ++i) device.apply_pulse(s, kSet, stream);
  EXPECT_DOUBLE_EQ(a[3][2].back(), device.conductance(s));
  // Ageing: a ramp replays at the cycle of its id; initial_state() at params().cycle.
  StepModelParams aged = known_step_params();
  aged.up_ageing = -0.01;
  aged.d2d_sigma_up = 0;
  aged.cycle = 30;
  const StepDevice aged_device(aged);
  core::RandomStream s1(5, "aged"), s2(5, "aged"), s3(5, "aged");
  EXPECT_NEAR(aged_device.initial_state_at(12 * kUs, 0, s1)[1], 1.0, 1e-15);
  EXPECT_NEAR(aged_device.initial_state_at(12 * kUs, 70, s2)[1], std::exp(-0.7), 1e-15);
  EXPECT_NEAR(aged_device.initial_state(12 * kUs, s3)[1], std::exp(-0.3), 1e-15);
  const std::vector<Ramp> early = {{1, std::vector<double>(101, 12 * kUs)}};
  const std::vector<Ramp> late = {{101, std::vector<double>(101, 12 * kUs)}};
  const auto e = devices::replay_ramps(aged_device, early, true, 20, rng);
  const auto l = devices::replay_ramps(aged_device, late, true, 20, rng);
  double rise_early = 0, rise_late = 0;
  for (int r = 0; r < 20; ++r) rise_early += e[0][r].back() - 12 * kUs, rise_late += l[0][r].back() - 12 * kUs;
  EXPECT_LT(rise_late, 0.6 * rise_early);  // steps exp(-1) times smaller, slower near g_max
  // RESET replays go down.
  const auto down = devices::replay_ramps(device, {{1, std::vector<double>(101, 55 * kUs)}}, false, 3, rng);
  EXPECT_LT(down[0][0].back(), 55 * kUs - 10 * kUs);
}

// With read noise a replay holds reads: its first value is the measured first read, and its steps
// are intrinsic steps plus the difference of two reads: variance s² + 2σ², lag-1 autocovariance
// −σ², none at lag 2. The hidden trajectory comes from the same "ramp" stream as without read noise.
TEST(StepReplay, WithReadNoiseReplaysAreReadsWhoseStepsShareReads) {
  constexpr double kS = 0.1 * kUs, kSigma = 0.2 * kUs;
  StepModelParams p = flat_params(0.05 * kUs, kS, -0.05 * kUs, kS);
  p.read_std.assign(p.g_nodes.size(), kSigma);
  const StepDevice device(p);
  const std::vector<Ramp> ramps = {{1, std::vector<double>(201, 30 * kUs)}, {2, std::vector<double>(201, 31 * kUs)}};
  constexpr int kRepetitions = 200;
  const core::RandomStream rng(6, "noisy_replay");
  const auto runs = devices::replay_ramps(device, ramps, true, kRepetitions, rng);
  double sum = 0, sum2 = 0, lag1 = 0, lag2 = 0;
  long n = 0, n1 = 0, n2 = 0;
  for (std::size_t k = 0; k < ramps.size(); ++k)
    for (const auto& rep : runs[k]) {
      ASSERT_EQ(rep.size(), ramps[k].g.size());
      EXPECT_EQ(rep.front(), ramps[k].g.front());
      std::vector<double> d;
      for (std::size_t i = 0; i + 1 < rep.size(); ++i) d.push_back(rep[i + 1] - rep[i] - 0.05 * kUs);
      for (std::size_t i = 0; i < d.size(); ++i) {
        sum += d[i], sum2 += d[i] * d[i], ++n;
        if (i + 1 < d.size()) lag1 += d[i] * d[i + 1], ++n1;
        if (i + 2 < d.size()) lag2 += d[i] * d[i + 2], ++n2;
      }
    }
  const double var = kS * kS + 2 * kSigma * kSigma, cov = -kSigma * kSigma;
  EXPECT_NEAR(sum / n, 0.0, 5 * std::sqrt((kS * kS + 2 * kSigma * kSigma / 200) / n));  // reads telescope
  EXPECT_NEAR(sum2 / n, var, 5 * var * std::sqrt(2.0 * (1 + 2 * (cov / var) * (cov / var)) / n));
  EXPECT_NEAR(lag1 / n1, cov, 5 * std::sqrt((var * var + 3 * cov * cov) / n1));
  EXPECT_NEAR(lag2 / n2, 0.0, 5 * std::sqrt((var * var + cov * cov) / n2));
  // Same hidden steps as the replay without read noise: the differences are reads' noise only,
  // n_i − n_0 with n_0 the draw that placed the hidden start (flat tables: steps do not depend on
  // the state).
  StepModelParams quiet_params = p;
  quiet_params.read_std.clear();
  const auto quiet = devices::replay_ramps(StepDevice(quiet_params), ramps, true, 3, rng);
  const auto noisy = devices::replay_ramps(device, ramps, true, 3, rng);
  core::RandomStream reads = rng.derive("read", {0, 1});
  const double n0 = reads.normal();
  for (std::size_t i = 1; i < 6; ++i)
    EXPECT_NEAR(noisy[0][1][i] - quiet[0][1][i], kSigma * (reads.normal() - n0), 1e-18) << i;
}
