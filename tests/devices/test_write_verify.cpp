// Write-verify (ISPP) programming: the pulse sequence on a deterministic fake device, the stop
// condition and budget, verify-read noise, and the Stanford-PKU model programmed with its defaults.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/card.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "tests/support/cards.hpp"
#include "devices/pulse.hpp"
#include "devices/registry.hpp"

using namespace xbar;
using devices::CellState;
using devices::Pulse;

using xbar::testing_support::spread_targets;

namespace {

// G (state[0], arbitrary units) moves by gain (|V| - threshold) per pulse above the threshold, up
// for V > 0 and down for V < 0. Records every pulse; draws nothing from the stream.
class FakeDevice final : public devices::PulseDevice {
 public:
  FakeDevice(double threshold, double gain) : threshold_(threshold), gain_(gain) {}
  CellState initial_state(double g_start, core::RandomStream&) const override {
    CellState s{};
    s[0] = g_start;
    return s;
  }
  void apply_pulse(CellState& state, const Pulse& pulse, core::RandomStream&) const override {
    pulses.push_back(pulse);
    const double over = std::abs(pulse.voltage) - threshold_;
    if (over > 0) state[0] += (pulse.voltage > 0 ? 1 : -1) * gain_ * over;
  }
  double conductance(const CellState& state) const override { return state[0]; }
  mutable std::vector<Pulse> pulses;

 private:
  double threshold_, gain_;
};

std::vector<double> voltages(const std::vector<Pulse>& pulses) {
  std::vector<double> v;
  for (const Pulse& p : pulses) v.push_back(p.voltage);
  return v;
}

void expect_voltages(const std::vector<Pulse>& pulses, const std::vector<double>& expected) {
  ASSERT_EQ(pulses.size(), expected.size()) << ::testing::PrintToString(voltages(pulses));
  for (std::size_t k = 0; k < expected.size(); ++k) EXPECT_NEAR(pulses[k].voltage, expected[k], 1e-12) << "pulse " << k;
}

CellState at(double g) {
  CellState s{};
  s[0] = g;
  return s;
}

core::Card stanford_card(const std::vector<std::string>& overrides = {}) {
  return testing_support::device_card("rram-stanford-pku", overrides);
}

}  // namespace

TEST(WriteVerifyParams, DeclaresEveryKeyWithNeuRRAMDefaults) {
  const std::vector<core::ParamSpec> specs = devices::write_verify_params();
  std::map<std::string, core::ParamSpec> by_key;
  for (const auto& spec : specs) by_key[spec.key] = spec;
  const devices::WriteVerifyOptions d;
  const std::map<std::string, std::pair<double, std::string>> expected = {
      {"write_verify.v_set_start", {1.2, "V"}},   {"write_verify.v_reset_start", {1.2, "V"}},
      {"write_verify.v_step", {0.1, "V"}},        {"write_verify.v_max", {3.3, "V"}},
      {"write_verify.pulse_width", {100e-9, "s"}}, {"write_verify.tolerance", {d.tolerance, "S"}},
      {"write_verify.max_pulses", {20, ""}},      {"write_verify.read_noise_rel", {0, "1"}}};
  EXPECT_EQ(specs.size(), expected.size());
  for (const auto& [key, value] : expected) {
    ASSERT_EQ(by_key.count(key), 1u) << key;
    const auto& spec = by_key[key];
    ASSERT_TRUE(spec.default_yaml.has_value()) << key;
    EXPECT_DOUBLE_EQ(std::stod(*spec.default_yaml), value.first) << key;
    EXPECT_EQ(spec.unit, value.second) << key;
    EXPECT_FALSE(spec.description.empty()) << key;
  }
  EXPECT_EQ(by_key["write_verify.max_pulses"].type, core::ValueType::integer);
  EXPECT_EQ(d.max_pulses, 20);
  EXPECT_DOUBLE_EQ(d.v_set_start, 1.2);
  EXPECT_DOUBLE_EQ(d.pulse_width, 100e-9);
}

TEST(WriteVerifyParams, OptionsComeFromTheDeviceSection) {
  core::DeviceOptions options;
  options.model = "test";
  options.params = {{"write_verify.v_set_start", 1.1},   {"write_verify.v_reset_start", 1.3},
                    {"write_verify.v_step", 0.05},       {"write_verify.v_max", 2.5},
                    {"write_verify.pulse_width", 50e-9}, {"write_verify.tolerance", 2e-6},
                    {"write_verify.max_pulses", std::int64_t{7}}, {"write_verify.read_noise_rel", 0.01}};
  const devices::WriteVerifyOptions wv = devices::write_verify_options(options);
  EXPECT_DOUBLE_EQ(wv.v_set_start, 1.1);
  EXPECT_DOUBLE_EQ(wv.v_reset_start, 1.3);
  EXPECT_DOUBLE_EQ(wv.v_step, 0.05);
  EXPECT_DOUBLE_EQ(wv.v_max, 2.5);
  EXPECT_DOUBLE_EQ(wv.pulse_width, 50e-9);
  EXPECT_DOUBLE_EQ(wv.tolerance, 2e-6);
  EXPECT_EQ(wv.max_pulses, 7);
  EXPECT_DOUBLE_EQ(wv.read_noise_rel, 0.01);
  options.params["write_verify.v_set_start"] = 3.0;  // above v_max
  EXPECT_THROW(devices::write_verify_options(options), core::UserError);
  options.params.erase("write_verify.v_step");
  EXPECT_THROW(devices::write_verify_options(options), core::UserError);
  // Through a card: overrides reach the options.
  const core::Card card = stanford_card({"device.write_verify.max_pulses=9", "device.write_verify.v_step=0.07"});
  const devices::WriteVerifyOptions from_card = devices::write_verify_options(card.device);
  EXPECT_EQ(from_card.max_pulses, 9);
  EXPECT_DOUBLE_EQ(from_card.v_step, 0.07);
}

TEST(WriteVerifyIspp, AmplitudeGrowsWhileTheDirectionHoldsAndRestartsWhenItReverses) {
  const FakeDevice device(1.25, 10.0);
  devices::WriteVerifyOptions wv;
  wv.v_set_start = 1.2;
  wv.v_reset_start = 1.3;
  wv.v_step = 0.1;
  wv.v_max = 3.3;
  wv.pulse_width = 42e-9;
  wv.tolerance = 0.5;
  wv.max_pulses = 20;
  core::RandomStream rng(1, "wv");
  // From 0 to 5.2 +- 0.5: SET 1.2 (nothing), 1.3 (+0.5), 1.4 (+1.5), 1.5 (+2.5), 1.6 (+3.5) -> 8.0,
  // too high: RESET restarts at 1.3 (-0.5), 1.4 (-1.5), 1.5 (-2.5) -> 3.5, too low: SET restarts at
  // 1.2 (0), 1.3 (+0.5), 1.4 (+1.5) -> 5.5, inside the band.
  const devices::WriteVerifyResult r = devices::write_verify(device, at(0.0), 5.2, wv, rng);
  expect_voltages(device.pulses, {1.2, 1.3, 1.4, 1.5, 1.6, -1.3, -1.4, -1.5, 1.2, 1.3, 1.4});
  for (const Pulse& p : device.pulses) EXPECT_DOUBLE_EQ(p.width, 42e-9);
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.pulses, 11);
  EXPECT_NEAR(r.g, 5.5, 1e-9);
  EXPECT_NEAR(r.state[0], 5.5, 1e-9);
}

TEST(WriteVerifyIspp, AmplitudeIsCappedAtVMaxAndTheBudgetIsRespected) {
  const FakeDevice device(1.0, 0.01);  // far too weak to get there
  devices::WriteVerifyOptions wv;
  wv.v_set_start = 1.2;
  wv.v_step = 0.1;
  wv.v_max = 1.45;
  wv.tolerance = 0.1;
  wv.max_pulses = 6;
  core::RandomStream rng(1, "wv");
  const devices::WriteVerifyResult r = devices::write_verify(device, at(0.0), 10.0, wv, rng);
  expect_voltages(device.pulses, {1.2, 1.3, 1.4, 1.45, 1.45, 1.45});
  EXPECT_FALSE(r.converged);
  EXPECT_EQ(r.pulses, 6);
  EXPECT_NEAR(r.g, 0.01 * (0.2 + 0.3 + 0.4 + 3 * 0.45), 1e-12);
  // A RESET start above v_max is capped as well.
  const FakeDevice reset(1.0, 0.01);
  wv.v_reset_start = 2.0;
  wv.max_pulses = 2;
  devices::write_verify(reset, at(20.0), 10.0, wv, rng);
  expect_voltages(reset.pulses, {-1.45, -1.45});
}

TEST(WriteVerifyIspp, StopsAsSoonAsAVerifyReadIsInsideTheBand) {
  devices::WriteVerifyOptions wv;
  wv.tolerance = 1.0;
  core::RandomStream rng(1, "wv");
  const FakeDevice inside(0.0, 1.0);
  const devices::WriteVerifyResult r0 = devices::write_verify(inside, at(10.9), 10.0, wv, rng);
  EXPECT_TRUE(r0.converged);
  EXPECT_EQ(r0.pulses, 0);
  EXPECT_TRUE(inside.pulses.empty());
  // Band edges are inside.
  EXPECT_TRUE(devices::write_verify(inside, at(11.0), 10.0, wv, rng).converged);
  EXPECT_TRUE(devices::write_verify(inside, at(9.0), 10.0, wv, rng).converged);
  // No budget: outside stays outside, unconverged, no pulse.
  wv.max_pulses = 0;
  const FakeDevice none(0.0, 1.0);
  const devices::WriteVerifyResult r1 = devices::write_verify(none, at(5.0), 10.0, wv, rng);
  EXPECT_FALSE(r1.converged);
  EXPECT_EQ(r1.pulses, 0);
  EXPECT_TRUE(none.pulses.empty());
  // One pulse that lands: stops after it even with budget left.
  wv.max_pulses = 20;
  wv.v_set_start = 1.2;
  const FakeDevice one(1.0, 25.0);  // +5 per 1.2 V pulse
  const devices::WriteVerifyResult r2 = devices::write_verify(one, at(5.0), 10.0, wv, rng);
  EXPECT_TRUE(r2.converged);
  EXPECT_EQ(r2.pulses, 1);
}

TEST(WriteVerifyIspp, VerifyReadsCarryRelativeGaussianNoise) {
  // A device that never moves, exactly on target, with a band much narrower than the read noise:
  // the loop ends at the first read whose noise |0.1 N| falls within 0.01 (relative).
  const FakeDevice frozen(100.0, 0.0);
  devices::WriteVerifyOptions wv;
  wv.tolerance = 0.01;
  wv.read_noise_rel = 0.1;
  wv.max_pulses = 1000;
  core::RandomStream rng(7, "verify");
  const devices::WriteVerifyResult r = devices::write_verify(frozen, at(1.0), 1.0, wv, rng);
  core::RandomStream replay(7, "verify");
  int reads = 1;
  while (std::abs(0.1 * replay.normal()) > 0.01) ++reads;
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.pulses, reads - 1);
  EXPECT_GT(r.pulses, 0);  // the noise made a difference
  EXPECT_DOUBLE_EQ(r.g, 1.0);  // the result is the noise-free conductance
}

TEST(WriteVerifyStanfordPku, DefaultCardConvergesAtLeast99PercentOfA40x40Array) {
  const core::Card card = stanford_card();
  const auto device = devices::builtin_devices().create(card.device);
  const devices::WriteVerifyOptions wv = devices::write_verify_options(card.device);
  const Eigen::MatrixXd target = spread_targets(40, 40, card.device.g_min, card.device.g_max);
  core::RandomStream rng(card.seed, "programming");
  const devices::ProgrammedArray programmed = device->program(target, rng);
  ASSERT_EQ(programmed.pulses.size(), 1600);
  std::map<int, int> histogram;
  int converged = 0;
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 40; ++j) {
      ++histogram[programmed.pulses(i, j)];
      const double g = programmed.g_programmed(i, j), t = target(i, j);
      if (programmed.converged(i, j)) {
        ++converged;
        // The verify read was inside the band; the true conductance is within the band widened by
        // the verify-read noise (5 sigma).
        EXPECT_LE(std::abs(g - t), wv.tolerance + 5 * wv.read_noise_rel * g) << i << "," << j;
      } else {
        EXPECT_EQ(programmed.pulses(i, j), wv.max_pulses) << i << "," << j;
      }
      EXPECT_LE(programmed.pulses(i, j), wv.max_pulses);
    }
  std::printf("  converged %d of 1600 (%.2f %%); pulses per cell (count: cells):", converged, converged / 16.0);
  for (const auto& [pulses, cells] : histogram) std::printf(" %d:%d", pulses, cells);
  std::printf("\n  mean pulses %.2f\n", programmed.pulses.cast<double>().mean());
  EXPECT_GE(converged, 1584);  // >= 99 %
}

TEST(WriteVerifyStanfordPku, SameSeedSameResultWithOneOrTwoThreads) {
  const core::Card card = stanford_card();
  const auto device = devices::builtin_devices().create(card.device);
  const Eigen::MatrixXd target = spread_targets(24, 24, card.device.g_min, card.device.g_max);
  auto run = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    core::RandomStream rng(card.seed, "programming");
    return device->program(target, rng);
  };
  const devices::ProgrammedArray one = run(1);
  const devices::ProgrammedArray two = run(2);
  EXPECT_EQ(one.g_programmed, two.g_programmed);  // bitwise
  EXPECT_EQ(one.pulses, two.pulses);
  EXPECT_EQ(one.converged, two.converged);
  EXPECT_EQ(one.cell_state.at("gap"), two.cell_state.at("gap"));
  // A different seed gives a different array (the comparison above is not vacuous).
  core::RandomStream other(card.seed + 1, "programming");
  EXPECT_NE(device->program(target, other).g_programmed, one.g_programmed);
}

TEST(WriteVerifyStanfordPku, ProgramsA256x256TileInReasonableTime) {
  const core::Card card = stanford_card();
  const auto device = devices::builtin_devices().create(card.device);
  const Eigen::MatrixXd target = spread_targets(256, 256, card.device.g_min, card.device.g_max);
  core::RandomStream rng(card.seed, "programming");
  const auto start = std::chrono::steady_clock::now();
  const devices::ProgrammedArray programmed = device->program(target, rng);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double share = programmed.converged.cast<double>().mean();
  std::printf("  256x256 write-verify: %.2f s, %.3f %% converged, %.2f pulses per cell\n", seconds, 100 * share,
              programmed.pulses.cast<double>().mean());
  EXPECT_GE(share, 0.99);
  EXPECT_LT(seconds, 60.0);
}
