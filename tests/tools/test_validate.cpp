// `xbar calibrate` and `xbar validate` (tools/validate.hpp): the metrics on cases with known
// answers, a round trip through ramps simulated by the scoring model itself, the fitted card
// (loads, round-trips to the fit, never reads the held-out ramps), the report file and the
// command line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/files.hpp"
#include "tests/support/step_ramps.hpp"
#include "core/card.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "core/trace.hpp"
#include "devices/registry.hpp"
#include "devices/step_model.hpp"
#include "tools/measured.hpp"
#include "tools/validate.hpp"

namespace fs = std::filesystem;
using testing::AllOf;
using testing::HasSubstr;
using xbar::core::UserError;
using xbar::devices::CellState;
using xbar::devices::Pulse;
using xbar::devices::Ramp;
using xbar::devices::StepDevice;
using xbar::devices::StepModelParams;
using xbar::tools::DirectionScore;
using xbar::tools::MeasuredRamp;
using xbar::tools::MeasuredRamps;
using xbar::tools::ScoreSettings;

using xbar::testing_support::Outcome;
using xbar::testing_support::run_command;
using xbar::testing_support::known_step_params;
using xbar::testing_support::slurp;
using xbar::testing_support::synthetic_ramps;
using xbar::testing_support::user_error_message;

namespace {

constexpr double kUs = 1e-6;
const fs::path kData = fs::path(XBAR_SOURCE_DIR) / "tests" / "data" / "measured";
const fs::path kTaox = kData / "rram_taox_pulse_ramps";
const fs::path kTaoxCard = fs::path(XBAR_SOURCE_DIR) / "cards" / "rram-taox-pulse.yaml";



xbar::core::Card load_card(const fs::path& file, const std::vector<std::string>& overrides = {}) {
  const auto& registry = xbar::devices::builtin_devices();
  return xbar::core::load_card(file, overrides, registry.param_lookup(), registry.names());
}

xbar::core::Card load_card_text(const std::string& text) {
  const auto& registry = xbar::devices::builtin_devices();
  return xbar::core::load_card_text(text, "fitted.yaml", {}, registry.param_lookup(), registry.names());
}

MeasuredRamps import_taox() {
  return xbar::tools::import_ramp_csv(kTaox / "set.csv", kTaox / "reset.csv", 0.1,
                                      xbar::tools::parse_index_ranges("28-39", "--heldout-set"),
                                      xbar::tools::parse_index_ranges("29-40", "--heldout-reset"));
}

// Simulated repetitions that are all copies of `g`.
std::vector<std::vector<double>> copies(const std::vector<double>& g, int n) {
  return std::vector<std::vector<double>>(n, g);
}

void expect_rel(double a, double b, double rel) { EXPECT_NEAR(a, b, rel * std::abs(b)) << a << " vs " << b; }

}  // namespace

// ---- KS statistic and quantiles ----------------------------------------------------------------

TEST(KsStatistic, IdenticalSamplesGiveZero) {
  const std::vector<double> a = {3.0, -1.0, 2.5, 2.5, 7.0, 0.1};
  EXPECT_EQ(xbar::tools::ks_statistic(a, a), 0.0);
}

TEST(KsStatistic, DisjointSamplesGiveOne) {
  EXPECT_EQ(xbar::tools::ks_statistic({1, 2, 3}, {4, 5, 6, 7}), 1.0);
  EXPECT_EQ(xbar::tools::ks_statistic({10, 11}, {-1, 0, 0.5}), 1.0);
}

TEST(KsStatistic, SmallSamplesGiveTheHandComputedValue) {
  // a = {0.1, 0.2, 0.3}, b = {0.25, 0.35, 0.45, 0.55}: on [0.3, 0.35) F_a = 1, F_b = 1/4.
  EXPECT_DOUBLE_EQ(xbar::tools::ks_statistic({0.3, 0.1, 0.2}, {0.55, 0.25, 0.45, 0.35}), 0.75);
  // With ties: a = {1, 2, 2, 3}, b = {2, 4}. F_a - F_b after 1: 1/4 - 0; after 2: 3/4 - 1/2;
  // after 3: 1 - 1/2 = 1/2 (the largest); after 4: 0.
  EXPECT_DOUBLE_EQ(xbar::tools::ks_statistic({1, 2, 2, 3}, {2, 4}), 0.5);
  // A tie across samples is not a difference: {1, 2} vs {2, 3}: 1/2 after 1, 1/2 after 2.
  EXPECT_DOUBLE_EQ(xbar::tools::ks_statistic({1, 2}, {2, 3}), 0.5);
}

TEST(KsStatistic, EmptySampleGivesNaN) {
  EXPECT_TRUE(std::isnan(xbar::tools::ks_statistic({}, {1.0})));
  EXPECT_TRUE(std::isnan(xbar::tools::ks_statistic({1.0}, {})));
}

TEST(Quantile, InterpolatesBetweenOrderStatistics) {
  std::vector<double> v;
  for (int i = 0; i <= 100; ++i) v.push_back(i);
  EXPECT_DOUBLE_EQ(xbar::tools::quantile_sorted(v, 0.05), 5.0);
  EXPECT_DOUBLE_EQ(xbar::tools::quantile_sorted(v, 0.95), 95.0);
  EXPECT_DOUBLE_EQ(xbar::tools::quantile_sorted({0.0, 10.0}, 0.25), 2.5);
  EXPECT_DOUBLE_EQ(xbar::tools::quantile_sorted({4.0}, 0.9), 4.0);
  EXPECT_TRUE(std::isnan(xbar::tools::quantile_sorted({}, 0.5)));
}

// ---- the metrics of score_direction --------------------------------------------------------------

TEST(ScoreDirection, CoverageCountsMeasuredPointsInsideTheBandOfTheirOwnRamp) {
  // Ramp 1: 101 repetitions taking the values 0, 1, ..., 100 uS at every pulse index, so its
  // band is [5, 95] uS. Ramp 2: repetitions 200..300 uS, band [205, 295] uS. The starting points
  // (index 0) are not counted.
  std::vector<std::vector<double>> reps1, reps2;
  for (int r = 0; r <= 100; ++r) {
    reps1.push_back({50 * kUs, r * kUs, r * kUs, r * kUs, r * kUs});
    reps2.push_back({250 * kUs, (200 + r) * kUs, (200 + r) * kUs});
  }
  const std::vector<Ramp> measured = {
      {1, {50 * kUs, 50 * kUs, 5 * kUs, 96 * kUs, 3 * kUs}},  // in, in (on the edge), out, out
      {2, {250 * kUs, 290 * kUs, 50 * kUs}},                  // in, out (inside ramp 1's band only)
  };
  const DirectionScore s = xbar::tools::score_direction(measured, {reps1, reps2}, {0, 300 * kUs, 10, 20});
  EXPECT_EQ(s.points, 6);
  EXPECT_DOUBLE_EQ(s.coverage, 3.0 / 6.0);
  ASSERT_EQ(s.bands.size(), 2u);
  EXPECT_NEAR(s.bands[0].p05[2], 5 * kUs, 1e-15);
  EXPECT_NEAR(s.bands[0].p95[2], 95 * kUs, 1e-15);
  EXPECT_NEAR(s.bands[1].p50[1], 250 * kUs, 1e-15);
  EXPECT_NEAR(s.bands[1].mean[1], 250 * kUs, 1e-15);
}

TEST(ScoreDirection, RmseOfAConstantOffsetIsTheOffsetOverTheRange) {
  // Simulated repetitions symmetric about the base ramp (mean = base); measured = base + 2 uS
  // after the start. Range 100 uS: rmse_rel = 0.02.
  const std::vector<double> base = {20 * kUs, 25 * kUs, 31 * kUs, 36 * kUs, 40 * kUs};
  std::vector<double> measured = base, above = base, below = base;
  for (std::size_t i = 1; i < base.size(); ++i) {
    measured[i] += 2 * kUs;
    above[i] += 7 * kUs;
    below[i] -= 7 * kUs;
  }
  const DirectionScore s =
      xbar::tools::score_direction({{1, measured}}, {{above, below, base}}, {10 * kUs, 110 * kUs, 10, 20});
  EXPECT_EQ(s.rmse_indices, 4);
  EXPECT_NEAR(s.rmse, 2 * kUs, 1e-15);
  EXPECT_NEAR(s.rmse_rel, 0.02, 1e-12);
  EXPECT_TRUE(std::isnan(s.mean_measured[0]));  // the common start is not scored
  EXPECT_NEAR(s.mean_measured[3], 38 * kUs, 1e-15);
  EXPECT_NEAR(s.mean_simulated[3], 36 * kUs, 1e-15);
}

TEST(ScoreDirection, RmseUsesTheIndicesThatAtLeastHalfOfTheRampsReach) {
  // Lengths 5, 3, 3: indices 1 and 2 (three ramps) count, 3 and 4 (one ramp of three) do not;
  // with lengths 5, 5, 3 indices 3 and 4 are reached by two ramps of three and count.
  const std::vector<double> g5 = {1 * kUs, 2 * kUs, 3 * kUs, 4 * kUs, 5 * kUs}, g3 = {1 * kUs, 2 * kUs, 3 * kUs};
  std::vector<double> g5_off = g5;
  for (std::size_t i = 1; i < g5.size(); ++i) g5_off[i] += (i >= 3 ? 10 : 0) * kUs;  // off where only it reaches
  const ScoreSettings settings{0, 100 * kUs, 10, 20};
  const DirectionScore few = xbar::tools::score_direction({{1, g5_off}, {2, g3}, {3, g3}},
                                                          {copies(g5, 3), copies(g3, 3), copies(g3, 3)}, settings);
  EXPECT_EQ(few.rmse_indices, 2);
  EXPECT_NEAR(few.rmse_rel, 0.0, 1e-15);
  EXPECT_TRUE(std::isnan(few.mean_measured[3]));
  const DirectionScore most = xbar::tools::score_direction({{1, g5_off}, {2, g5}, {3, g3}},
                                                           {copies(g5, 3), copies(g5, 3), copies(g3, 3)}, settings);
  EXPECT_EQ(most.rmse_indices, 4);
  // Indices 3 and 4: measured mean 5 uS above the simulated one (one of two ramps 10 uS off).
  EXPECT_NEAR(most.rmse_rel, std::sqrt((0.0 + 0.0 + 25.0 + 25.0) / 4.0) * kUs / (100 * kUs), 1e-12);
}

TEST(ScoreDirection, KsIsZeroWhenTheSimulationRepeatsTheMeasuredStepsAndBinsNeedTwentySteps) {
  // 30 ramps of 40 pulses with pseudo-random steps in [0, 10] uS window 0..1 mS: ramp k starts at
  // 10 uS · k, so the states spread over several bins of 100 uS.
  std::vector<Ramp> measured;
  std::vector<std::vector<std::vector<double>>> simulated;
  xbar::core::RandomStream rng(5, "ks_bins");
  for (int k = 0; k < 30; ++k) {
    Ramp r{k + 1, {10 * kUs * k}};
    for (int i = 0; i < 40; ++i) r.g.push_back(r.g.back() + rng.uniform(0, 10 * kUs));
    simulated.push_back(copies(r.g, 4));
    measured.push_back(std::move(r));
  }
  const ScoreSettings settings{0, 1000 * kUs, 10, 20};
  const DirectionScore s = xbar::tools::score_direction(measured, simulated, settings);
  EXPECT_EQ(s.ks_max, 0.0);
  EXPECT_GT(s.populated_bins, 2);
  EXPECT_DOUBLE_EQ(s.coverage, 1.0);  // every repetition equals the measured ramp
  EXPECT_NEAR(s.rmse_rel, 0.0, 1e-15);
  int populated = 0;
  for (const auto& bin : s.bins) {
    EXPECT_EQ(bin.populated, bin.measured_steps >= 20);
    EXPECT_EQ(bin.simulated_steps, 4L * bin.measured_steps);
    populated += bin.populated ? 1 : 0;
  }
  EXPECT_EQ(populated, s.populated_bins);
  EXPECT_NEAR(s.bins.front().g_lo, 0.0, 1e-18);
  EXPECT_NEAR(s.bins.back().g_hi, 1000 * kUs, 1e-18);
}

TEST(ScoreDirection, KsOfShiftedStepsIsLargeAndOnlyPopulatedBinsCount) {
  // Measured steps of exactly 1 uS; simulated steps of 3 uS: disjoint, KS = 1 in every bin that has
  // both. A bin with fewer than 20 measured steps does not enter ks_max.
  std::vector<double> g = {0.0}, sim = {0.0};
  for (int i = 0; i < 100; ++i) g.push_back(g.back() + 1 * kUs);
  for (int i = 0; i < 100; ++i) sim.push_back(sim.back() + 3 * kUs);
  // 300 uS range, 3 bins of 100 uS: measured steps all in bin 0 (100 of them).
  const DirectionScore s = xbar::tools::score_direction({{1, g}}, {copies(sim, 2)}, {0, 300 * kUs, 3, 20});
  EXPECT_EQ(s.populated_bins, 1);
  EXPECT_DOUBLE_EQ(s.ks_max, 1.0);
  EXPECT_FALSE(s.bins[1].populated);
  EXPECT_TRUE(std::isnan(s.bins[1].ks));  // no measured step there
}

TEST(ScoreDirection, MismatchedShapesAreUserErrors) {
  const std::vector<double> g = {1 * kUs, 2 * kUs};
  EXPECT_THAT(user_error_message([&] { xbar::tools::score_direction({{1, g}}, {}, {0, 1e-4, 10, 20}); }),
              HasSubstr("1 measured ramps but 0 simulated"));
  EXPECT_THAT(user_error_message([&] { xbar::tools::score_direction({{7, g}}, {{{1 * kUs}}}, {0, 1e-4, 10, 20}); }),
              HasSubstr("ramp 7 holds 2 values"));
  EXPECT_THAT(user_error_message([&] { xbar::tools::score_direction({{1, g}}, {copies(g, 2)}, {1e-4, 1e-4, 10, 20}); }),
              HasSubstr("g_lo < g_hi"));
}

// ---- round trip: ramps of the scoring model itself ---------------------------------------------------

// Measured ramps drawn from the model are scored against replays by the same model. Expected: the
// mean trajectories agree to within their sampling noise; the KS statistics stay within their
// sampling noise, which the device-to-device factor sets (the steps of one ramp share a factor, so
// a bin's effective sample is its ramps rather than its steps: a bin near the ramps' ends is
// populated by the few fastest ramps); the band of R = 100 replays covers a fresh draw with
// probability 0.9 (R - 1) / (R + 1) = 0.882, within the binomial spread of ~200 ramps that are
// mostly inside or outside as a whole (sd about 0.025). Seeds 1-12 gave ks_max 0.035-0.10 and
// coverage 0.84-0.92 per direction.
TEST(ValidateRoundTrip, RampsOfTheSameModelScoreNearPerfect) {
  const StepDevice device(known_step_params());
  constexpr int kRamps = 200, kPulses = 150, kRepetitions = 100;
  for (bool up : {true, false}) {
    const std::vector<Ramp> measured = synthetic_ramps(device, up, kRamps, kPulses, 77);
    const auto runs = xbar::devices::replay_ramps(device, measured, up, kRepetitions,
                                                  xbar::core::RandomStream(3, "round_trip"));
    const DirectionScore s = xbar::tools::score_direction(measured, runs, {10 * kUs, 60 * kUs, 10, 20});
    SCOPED_TRACE(up ? "SET" : "RESET");
    EXPECT_LT(s.rmse_rel, 0.01);
    EXPECT_GE(s.populated_bins, 8);
    EXPECT_LT(s.ks_max, 0.15);
    EXPECT_NEAR(s.coverage, 0.882, 0.07);
  }
}

// The same through validate_card: a card holding the known model (relative tables) scores synthetic
// "measured" ramps of that model as well.
TEST(ValidateRoundTrip, ValidateCardScoresRampsOfItsOwnModel) {
  const StepModelParams p = known_step_params();
  const StepDevice device(p);
  MeasuredRamps measured;
  for (bool up : {true, false})
    for (Ramp& r : synthetic_ramps(device, up, 200, 150, 91)) (up ? measured.set : measured.reset).push_back({r, true});
  const auto card = load_card_text(R"(seed: 4
tile: {rows: 2, cols: 2, wires: {r_wl_segment: 1, r_bl_segment: 1, r_source: 0, r_sense: 0}}
device: {model: rram-step, g_min: 10.0e-6, g_max: 60.0e-6, g_nodes: [0, 1], up_mean: [0.008, 0.001],
         up_std: [0.002, 0.001], down_mean: [-0.001, -0.008], down_std: [0.001, 0.002],
         d2d_sigma_up: 0.1, d2d_sigma_down: 0.1, up_reversal_depth: 0.5, up_reversal_decay: 3}
dac: {bits: 0, v_read: 0.2}
adc: {bits: 0}
mapping: {scheme: differential}
solver: {method: direct}
workload: {read_times: [0]}
)");
  const auto report = xbar::tools::validate_card(card, measured, {"heldout", 100, 10});
  for (const DirectionScore* s : {&report.set, &report.reset}) {
    EXPECT_EQ(s->ramps, 200);
    EXPECT_LT(s->rmse_rel, 0.01);
    EXPECT_LT(s->ks_max, 0.15);
    EXPECT_NEAR(s->coverage, 0.882, 0.07);
  }
  // Every split but the one holding the ramps is empty.
  EXPECT_THAT(user_error_message([&] { xbar::tools::validate_card(card, measured, {"fit", 200, 10}); }),
              HasSubstr("split 'fit' holds no ramps"));
  // Replays are seeded by the card: the same report twice.
  const auto again = xbar::tools::validate_card(card, measured, {"heldout", 100, 10});
  EXPECT_EQ(again.set.coverage, report.set.coverage);
  EXPECT_EQ(again.reset.rmse_rel, report.reset.rmse_rel);
}

// The same with read noise: "measured" ramps are reads of the model's states and the replays are
// reads too (conditioned on the measured first read).
TEST(ValidateRoundTrip, RampsOfAModelWithReadNoiseScoreNearPerfect) {
  StepModelParams p = known_step_params();
  p.read_std.assign(p.g_nodes.size(), 0.08 * kUs);
  const StepDevice device(p);
  constexpr int kRamps = 200, kPulses = 150, kRepetitions = 100;
  for (bool up : {true, false}) {
    const std::vector<Ramp> measured = synthetic_ramps(device, up, kRamps, kPulses, 78);
    const auto runs = xbar::devices::replay_ramps(device, measured, up, kRepetitions,
                                                  xbar::core::RandomStream(5, "round_trip"));
    const DirectionScore s = xbar::tools::score_direction(measured, runs, {10 * kUs, 60 * kUs, 10, 20});
    SCOPED_TRACE(up ? "SET" : "RESET");
    EXPECT_LT(s.rmse_rel, 0.01);
    EXPECT_LT(s.ks_max, 0.15);
    EXPECT_NEAR(s.coverage, 0.882, 0.07);
  }
}

// ---- calibrate ------------------------------------------------------------------------------------

// The whole chain on synthetic data with a known read noise: calibrate on the fitting split, write
// and reload the card, validate on the held-out ramps. The card's read noise is the truth within 5
// standard errors (as in test_step_model), and the held-out ramps score like the model's own.
TEST(Calibrate, SyntheticRampsWithReadNoiseCalibrateAndValidate) {
  StepModelParams truth = known_step_params();
  constexpr double kSigmaRead = 0.08 * kUs;
  truth.read_std.assign(truth.g_nodes.size(), kSigmaRead);
  const StepDevice device(truth);
  MeasuredRamps measured;
  for (bool up : {true, false})
    for (Ramp& r : synthetic_ramps(device, up, 60, 150, 12))
      (up ? measured.set : measured.reset).push_back({r, r.id % 3 == 0});  // every third held out
  const xbar::tools::Calibration c = xbar::tools::calibrate(measured, "fit", 4);
  EXPECT_EQ(c.set_ramps, 40);
  EXPECT_EQ(c.diagnostics.read_noise, "constant");
  const auto card = load_card_text(xbar::tools::fitted_card_yaml(load_card(kTaoxCard), c.params, {}));
  const StepModelParams back = xbar::devices::step_params_from(card.device);
  const double pairs = static_cast<double>(c.diagnostics.read_pairs);
  const double var_read = kSigmaRead * kSigmaRead, gamma0 = 0.01 * kUs * kUs + 2 * var_read;
  const double se_sigma = std::sqrt((gamma0 * gamma0 + 3 * var_read * var_read) / pairs) / (2 * kSigmaRead);
  ASSERT_FALSE(back.read_std.empty());
  for (double v : back.read_std) EXPECT_NEAR(v, kSigmaRead, 5 * se_sigma);
  const auto report = xbar::tools::validate_card(card, measured, {"heldout", 100, 10});
  for (const DirectionScore* s : {&report.set, &report.reset}) {
    EXPECT_EQ(s->ramps, 20);
    EXPECT_LT(s->rmse_rel, 0.01);
    EXPECT_LT(s->ks_max, 0.2);  // 20 ramps: a bin's effective sample is a few ramps (see above)
    EXPECT_NEAR(s->coverage, 0.882, 0.1);
  }
}

TEST(Calibrate, RefusesEverySplitButFit) {
  const MeasuredRamps measured = import_taox();
  for (const char* split : {"heldout", "all", "everything"}) {
    EXPECT_THAT(user_error_message([&] { xbar::tools::calibrate(measured, split, 10); }),
                AllOf(HasSubstr(std::string("--split ") + split), HasSubstr("fitting split only"),
                      HasSubstr("held-out ramps are reserved for scoring")));
  }
}

TEST(Calibrate, FittedCardLoadsAndRoundTripsToTheFit) {
  const MeasuredRamps measured = import_taox();
  const xbar::tools::Calibration c = xbar::tools::calibrate(measured, "fit", 10);
  EXPECT_EQ(c.set_ramps, 27);
  EXPECT_EQ(c.reset_ramps, 28);
  EXPECT_TRUE(c.adjustments.empty());
  const StepModelParams& p = c.params;
  const std::string text = xbar::tools::fitted_card_yaml(load_card(kTaoxCard), p, {"fitted for a test", "", "x"});
  EXPECT_EQ(text.rfind("# fitted for a test\n#\n# x\n", 0), 0u) << text;
  const auto card = load_card_text(text);
  EXPECT_EQ(card.device.model, "rram-step");
  const StepModelParams back = xbar::devices::step_params_from(card.device);
  expect_rel(back.g_min, p.g_min, 1e-15);
  expect_rel(back.g_max, p.g_max, 1e-15);
  const std::pair<const std::vector<double>*, const std::vector<double>*> tables[] = {
      {&back.g_nodes, &p.g_nodes}, {&back.up_mean, &p.up_mean},     {&back.up_std, &p.up_std},
      {&back.down_mean, &p.down_mean}, {&back.down_std, &p.down_std}};
  for (const auto& [x, y] : tables) {
    ASSERT_EQ(x->size(), y->size());
    for (std::size_t i = 0; i < x->size(); ++i) EXPECT_NEAR((*x)[i], (*y)[i], 1e-14 * std::abs(p.g_max));
  }
  EXPECT_DOUBLE_EQ(back.d2d_sigma_up, p.d2d_sigma_up);
  EXPECT_DOUBLE_EQ(back.d2d_sigma_down, p.d2d_sigma_down);
  EXPECT_DOUBLE_EQ(back.up_reversal_depth, p.up_reversal_depth);
  EXPECT_DOUBLE_EQ(back.up_reversal_decay, p.up_reversal_decay);
  EXPECT_DOUBLE_EQ(back.down_reversal_depth, p.down_reversal_depth);
  EXPECT_DOUBLE_EQ(back.down_reversal_decay, p.down_reversal_decay);
  EXPECT_DOUBLE_EQ(back.up_ageing, p.up_ageing);
  EXPECT_DOUBLE_EQ(back.down_ageing, p.down_ageing);
  // The TaOx device's window drifts up over the fitting cycles, its top less than its bottom; the
  // card holds the drifts in window units and gives them back.
  EXPECT_NEAR(back.window_drift_low, p.window_drift_low, 1e-14 * p.g_max);
  EXPECT_NEAR(back.window_drift_high, p.window_drift_high, 1e-14 * p.g_max);
  EXPECT_GT(p.window_drift_low, 0.5e-6);  // S per cycle
  EXPECT_LT(p.window_drift_high, p.window_drift_low);
  // The TaOx fitting ramps support a read-noise term (their consecutive steps anticorrelate); the
  // card holds it in window units and gives it back.
  EXPECT_EQ(c.diagnostics.read_noise, "constant");
  ASSERT_EQ(p.read_std.size(), p.g_nodes.size());
  ASSERT_EQ(back.read_std.size(), p.read_std.size());
  for (std::size_t i = 0; i < p.read_std.size(); ++i) EXPECT_NEAR(back.read_std[i], p.read_std[i], 1e-14 * p.g_max);
  EXPECT_GT(p.read_std.front(), 0.1e-6);  // S: a fraction of a uS
  EXPECT_LT(p.read_std.front(), 1e-6);
  EXPECT_DOUBLE_EQ(back.cycle, 0.0);  // the base card's: programmed at the reference cycle
  // Everything else is the base card's.
  const auto base = load_card(kTaoxCard);
  EXPECT_EQ(card.seed, base.seed);
  EXPECT_EQ(card.tile.rows, base.tile.rows);
  EXPECT_EQ(card.device.param("write_verify.tolerance"), base.device.param("write_verify.tolerance"));
  EXPECT_EQ(card.dac.v_read, base.dac.v_read);
}

TEST(Calibrate, HeldOutRampsAreNeverUsed) {
  // Replacing every held-out ramp by garbage (other lengths, values far outside the data) changes
  // nothing in the fit or the card.
  const MeasuredRamps measured = import_taox();
  MeasuredRamps garbage = measured;
  xbar::core::RandomStream rng(9, "garbage");
  for (auto* direction : {&garbage.set, &garbage.reset})
    for (MeasuredRamp& m : *direction) {
      if (!m.heldout) continue;
      m.ramp.g.assign(5 + static_cast<int>(rng.uniform(0, 50)), 0.0);
      for (double& g : m.ramp.g) g = rng.uniform(0, 0.5);
    }
  const auto a = xbar::tools::calibrate(measured, "fit", 10);
  const auto b = xbar::tools::calibrate(garbage, "fit", 10);
  const auto base = load_card(kTaoxCard);
  EXPECT_EQ(xbar::tools::fitted_card_yaml(base, a.params, {"h"}), xbar::tools::fitted_card_yaml(base, b.params, {"h"}));
  EXPECT_EQ(a.params.up_mean, b.params.up_mean);
  EXPECT_EQ(a.params.g_min, b.params.g_min);
}

TEST(Calibrate, ParametersOutsideTheCardsRangesAreMovedIntoThemAndRecorded) {
  // Normalised-looking data starting at 0 S: the fit's 5 % margin would put g_min below 0. Ramps
  // of constant steps (SET +1 uS, RESET -1 uS, plus a little noise).
  MeasuredRamps m;
  xbar::core::RandomStream rng(2, "edge");
  for (int up = 0; up < 2; ++up)
    for (int k = 0; k < 6; ++k) {
      MeasuredRamp r;
      r.ramp.id = k + 1;
      r.ramp.g.push_back(up ? 0.0 : 60 * kUs);
      for (int i = 0; i < 60; ++i) r.ramp.g.push_back(std::max(0.0, r.ramp.g.back() + (up ? 1 : -1) * kUs + rng.normal(0, 0.1 * kUs)));
      (up ? m.set : m.reset).push_back(r);
    }
  const auto c = xbar::tools::calibrate(m, "fit", 3);
  EXPECT_EQ(c.params.g_min, 0.0);
  EXPECT_EQ(c.params.g_nodes.front(), 0.0);
  ASSERT_FALSE(c.adjustments.empty());
  EXPECT_THAT(c.adjustments.front(), HasSubstr("g_min"));
  const auto card = load_card_text(xbar::tools::fitted_card_yaml(load_card(kTaoxCard), c.params, {}));
  EXPECT_EQ(card.device.g_min, 0.0);
}

TEST(Calibrate, BaseCardOfAnotherModelIsRefused) {
  const auto ideal = load_card(fs::path(XBAR_SOURCE_DIR) / "cards" / "ideal.yaml");
  EXPECT_THAT(user_error_message([&] { xbar::tools::fitted_card_yaml(ideal, {}, {}); }),
              AllOf(HasSubstr("ideal.yaml"), HasSubstr("device.model"), HasSubstr("rram-step"), HasSubstr("'ideal'")));
}

// The issue's comparison: on the TaOx held-out ramps the calibrated card scores clearly better than
// the shipped uncalibrated one on every metric.
TEST(Calibrate, CalibratedCardScoresBetterThanTheUncalibratedOneOnHeldOutRamps) {
  const MeasuredRamps measured = import_taox();
  const auto base = load_card(kTaoxCard);
  const auto fitted = load_card_text(xbar::tools::fitted_card_yaml(base, xbar::tools::calibrate(measured, "fit", 10).params, {}));
  const auto before = xbar::tools::validate_card(base, measured, {"heldout", 100, 10});
  const auto after = xbar::tools::validate_card(fitted, measured, {"heldout", 100, 10});
  for (auto [b, a] : {std::pair{&before.set, &after.set}, std::pair{&before.reset, &after.reset}}) {
    EXPECT_LT(a->rmse_rel, 0.5 * b->rmse_rel);
    EXPECT_LT(a->ks_max, 0.5 * b->ks_max);
    EXPECT_GT(a->coverage, b->coverage + 0.3);
  }
}

// ---- the report file ---------------------------------------------------------------------------------

class ValidateFiles : public xbar::testing_support::TempDirTest {
 protected:
  // Runs `xbar ARGS` from the repository root.
  Outcome xbar(const std::string& args) const {
    const fs::path out = dir_.string() + ".stdout", err = dir_.string() + ".stderr";
    Outcome outcome = run_command(XBAR_EXECUTABLE, args, XBAR_SOURCE_DIR, out, err);
    fs::remove(out);
    fs::remove(err);
    return outcome;
  }

  // The TaOx ramps imported with the README's split.
  fs::path import(const std::string& name = "taox.h5") const {
    const fs::path file = dir_ / name;
    xbar::tools::write_measured(import_taox(), file);
    return file;
  }
};

TEST_F(ValidateFiles, ReportHoldsRampsBandMetricsAndKsWithUnits) {
  const MeasuredRamps measured = import_taox();
  auto report = xbar::tools::validate_card(load_card(kTaoxCard), measured, {"heldout", 20, 8});
  report.measured_file = "taox.h5";
  const fs::path file = dir_ / "report.h5";
  xbar::tools::write_validation_report(report, file);
  const xbar::core::TraceReader r(file);
  EXPECT_EQ(r.attribute_string("/", "kind"), "validation");
  EXPECT_EQ(r.attribute_string("/", "split"), "heldout");
  EXPECT_EQ(r.attribute_int("/", "repetitions"), 20);
  EXPECT_DOUBLE_EQ(r.attribute_double("/", "g_lo"), report.g_lo);
  EXPECT_DOUBLE_EQ(r.attribute_double("/set", "coverage"), report.set.coverage);
  EXPECT_DOUBLE_EQ(r.attribute_double("/reset", "rmse_rel"), report.reset.rmse_rel);
  EXPECT_DOUBLE_EQ(r.attribute_double("/reset", "ks_max"), report.reset.ks_max);
  const std::vector<std::size_t> shape = r.shape("/set/measured");
  ASSERT_EQ(shape.size(), 2u);
  EXPECT_EQ(shape[0], 12u);
  for (const char* name : {"measured", "sim_p05", "sim_p50", "sim_p95", "sim_mean"}) {
    EXPECT_EQ(r.shape(std::string("/set/") + name), shape) << name;
    EXPECT_EQ(r.units(std::string("/set/") + name), "S") << name;
  }
  EXPECT_EQ(r.units("/set/ks"), "1");
  EXPECT_EQ(r.units("/set/ks_bin_edges"), "S");
  EXPECT_EQ(r.units("/reset/ramp_id"), "1");
  EXPECT_EQ(r.shape("/reset/ks"), std::vector<std::size_t>{8});
  EXPECT_EQ(r.shape("/reset/ks_bin_edges"), std::vector<std::size_t>{9});
  const auto ids = r.read_matrix_int("/set/ramp_id");
  EXPECT_EQ(ids(0, 0), 28);
  const auto p05 = r.read_flat("/set/sim_p05"), p95 = r.read_flat("/set/sim_p95");
  for (std::size_t i = 0; i < p05.size(); ++i) {
    if (!std::isnan(p05[i])) {
      EXPECT_LE(p05[i], p95[i]);
    }
  }
}

// ---- the command line ------------------------------------------------------------------------------

TEST_F(ValidateFiles, CalibrateWritesALoadableCardAndNamesWhatItWasFittedOn) {
  const fs::path measured = import(), card = dir_ / "fitted.yaml";
  const Outcome run = xbar("calibrate --card cards/rram-taox-pulse.yaml --measured '" + measured.string() + "' -o '" +
                           card.string() + "'");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, AllOf(HasSubstr("27 SET, 28 RESET ramps"), HasSubstr("held-out ramps not used"),
                             HasSubstr("read noise: constant σ_read"), HasSubstr("likelihood ratio")));
  const std::string text = slurp(card);
  EXPECT_THAT(text, AllOf(HasSubstr("# Fitted by `xbar calibrate`"), HasSubstr("Split: fit, 27 SET ramps"),
                          HasSubstr("read_noise_std: ["), HasSubstr("#   read noise: constant σ_read"),
                          HasSubstr("the 12 SET and 12 RESET held-out ramps were not read"),
                          HasSubstr(measured.string())));
  const auto loaded = load_card(card);
  EXPECT_EQ(loaded.device.model, "rram-step");
  const StepModelParams p = xbar::tools::calibrate(import_taox(), "fit", 10).params;
  EXPECT_NEAR(xbar::devices::step_params_from(loaded.device).up_mean[3], p.up_mean[3], 1e-12 * p.g_max);
  EXPECT_EQ(folder_listing(), (std::vector<std::string>{"fitted.yaml", "taox.h5"}));
}

TEST_F(ValidateFiles, CalibrateOnAFileWithGarbageHeldOutRampsWritesTheIdenticalCard) {
  MeasuredRamps garbage = import_taox();
  for (auto* direction : {&garbage.set, &garbage.reset})
    for (MeasuredRamp& m : *direction)
      if (m.heldout) std::fill(m.ramp.g.begin(), m.ramp.g.end(), 0.9);
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "b");
  xbar::tools::write_measured(import_taox(), dir_ / "a" / "m.h5");
  xbar::tools::write_measured(garbage, dir_ / "b" / "m.h5");
  for (const char* d : {"a", "b"}) {
    const Outcome run = xbar(std::string("calibrate --card cards/rram-taox-pulse.yaml --measured '") +
                             (dir_ / d / "m.h5").string() + "' -o '" + (dir_ / d / "card.yaml").string() + "'");
    ASSERT_EQ(run.exit_code, 0) << run.err;
  }
  // Identical but for the line naming the measured file.
  auto without_file_line = [](const std::string& text) {
    std::istringstream in(text);
    std::string line, out;
    while (std::getline(in, line))
      if (line.rfind("# Measured data:", 0) != 0) out += line + "\n";
    return out;
  };
  EXPECT_EQ(without_file_line(slurp(dir_ / "a" / "card.yaml")), without_file_line(slurp(dir_ / "b" / "card.yaml")));
}

TEST_F(ValidateFiles, CalibrateRefusesTheHeldOutSplitAndWritesNothing) {
  const fs::path measured = import();
  for (const char* split : {"heldout", "all"}) {
    const Outcome run = xbar(std::string("calibrate --card cards/rram-taox-pulse.yaml --split ") + split +
                             " --measured '" + measured.string() + "' -o '" + (dir_ / "fitted.yaml").string() + "'");
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_THAT(run.err, AllOf(HasSubstr("fitting split only"), HasSubstr("never be used to fit")));
  }
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"taox.h5"});
}

TEST_F(ValidateFiles, CalibrateRefusesACardOfAnotherModel) {
  const fs::path measured = import();
  const Outcome run = xbar("calibrate --card cards/ideal.yaml --measured '" + measured.string() + "' -o '" +
                           (dir_ / "fitted.yaml").string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, AllOf(HasSubstr("cards/ideal.yaml"), HasSubstr("device.model"), HasSubstr("rram-step")));
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"taox.h5"});
}

TEST_F(ValidateFiles, ValidateJsonHasOneObjectPerExperimentWithTheThreeMetrics) {
  const fs::path measured = import();
  const Outcome run =
      xbar("validate --card cards/rram-taox-pulse.yaml --measured '" + measured.string() + "' --repetitions 50 --json");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out.rfind("{\"set\": {\"rmse_rel\": ", 0), 0u) << run.out;
  EXPECT_THAT(run.out, AllOf(HasSubstr("\"reset\": {\"rmse_rel\": "), HasSubstr("\"ks_max\": "),
                             HasSubstr("\"coverage\": "), HasSubstr("\"ks_bins\": [")));
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"taox.h5"});
}

TEST_F(ValidateFiles, ValidateWritesTheReportAndThePicture) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3 (scripts/setup.sh installs it)";
  const fs::path measured = import();
  const Outcome run = xbar("validate --card cards/rram-taox-pulse.yaml --measured '" + measured.string() +
                           "' --repetitions 20 -o '" + (dir_ / "report.h5").string() + "' --plot '" +
                           (dir_ / "report.png").string() + "'");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, AllOf(HasSubstr("rmse_rel"), HasSubstr("coverage"), HasSubstr("heldout split")));
  EXPECT_EQ(folder_listing(), (std::vector<std::string>{"report.h5", "report.png", "taox.h5"}));
  EXPECT_EQ(slurp(dir_ / "report.png").substr(1, 3), "PNG");
}

TEST_F(ValidateFiles, ValidateErrorsExitTwoAndWriteNothing) {
  const fs::path measured = import();
  const std::string outputs = " -o '" + (dir_ / "report.h5").string() + "' --plot '" + (dir_ / "r.png").string() + "'";
  Outcome run = xbar("validate --card cards/ideal.yaml --measured '" + measured.string() + "'" + outputs);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("device.model"));
  run = xbar("validate --card cards/rram-taox-pulse.yaml --measured '" + (dir_ / "missing.h5").string() + "'" + outputs);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("missing.h5"));
  run = xbar("validate --card cards/rram-taox-pulse.yaml --split nonsense --measured '" + measured.string() + "'" +
             outputs);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("unknown split 'nonsense'"));
  // A picture that cannot be written: the report is not written either.
  run = xbar("validate --card cards/rram-taox-pulse.yaml --repetitions 5 --measured '" + measured.string() + "' -o '" +
             (dir_ / "report.h5").string() + "' --plot '" + (dir_ / "no-such-folder" / "r.png").string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"taox.h5"});
}
