// The Stanford-PKU RRAM compact model: its equations, the pulse integrator (convergence order,
// agreement with a fixed-step reference, bounds), the read window and I-V, variation and reads.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/card.hpp"
#include "core/random.hpp"
#include "tests/support/cards.hpp"
#include "devices/registry.hpp"
#include "devices/stanford_pku.hpp"

using namespace xbar;
using devices::StanfordPkuDevice;

namespace {

constexpr double kNm = 1e-9;
constexpr double kBoltzmannEv = 8.617333262e-5;

core::Card stanford_card(const std::vector<std::string>& overrides = {}, double g_min = 1e-6, double g_max = 40e-6) {
  return testing_support::device_card("rram-stanford-pku", overrides, 4, 4, g_min, g_max);
}

struct Model {
  std::unique_ptr<devices::Device> owner;
  const StanfordPkuDevice* device = nullptr;
};

Model make_model(const std::vector<std::string>& overrides = {}, double g_min = 1e-6, double g_max = 40e-6) {
  Model m;
  m.owner = devices::builtin_devices().create(stanford_card(overrides, g_min, g_max).device);
  m.device = dynamic_cast<const StanfordPkuDevice*>(m.owner.get());
  return m;
}

// Classical fixed-step RK4 on the model's right-hand side (gap in m, time in s).
double rk4_gap(const StanfordPkuDevice& device, const devices::CellState& state, double voltage, double width,
               int steps) {
  const double h = width / steps;
  double g = state[StanfordPkuDevice::kGap];
  for (int n = 0; n < steps; ++n) {
    const double k1 = device.gap_rate(state, voltage, g);
    const double k2 = device.gap_rate(state, voltage, g + 0.5 * h * k1);
    const double k3 = device.gap_rate(state, voltage, g + 0.5 * h * k2);
    const double k4 = device.gap_rate(state, voltage, g + h * k3);
    g += h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4);
  }
  return g;
}

struct TestPulse {
  const char* name;
  double gap0;  // m
  devices::Pulse pulse;
};

// A SET and a RESET pulse (the latter with strong heating) that move the gap by tenths of a nm
// without reaching a bound.
const TestPulse kTestPulses[] = {{"SET", 1.0 * kNm, {1.45, 20e-9}}, {"RESET", 0.25 * kNm, {-1.8, 2e-9}}};

}  // namespace

TEST(StanfordPkuModel, ParameterTableHoldsPublishedDefaultsAndWriteVerifyKeys) {
  const auto* info = devices::builtin_devices().find("rram-stanford-pku");
  ASSERT_NE(info, nullptr);
  EXPECT_NE(info->reference.find("Jiang"), std::string::npos);
  std::vector<std::string> keys;
  for (const auto& spec : info->params) keys.push_back(spec.key);
  for (const char* key : {"i0", "g0", "v0", "vel0", "ea", "a0", "gamma0", "beta", "tox", "r_th", "t0", "f_min", "gap_min",
                          "gap_max", "v_read", "d2d_sigma_vel0", "d2d_sigma_gamma0", "gap_noise_rel", "gap_noise_sigma",
                          "read_noise_rel", "ode_abs_tol", "ode_rel_tol", "write_verify.v_set_start",
                          "write_verify.v_reset_start", "write_verify.v_step", "write_verify.v_max",
                          "write_verify.pulse_width", "write_verify.tolerance", "write_verify.max_pulses",
                          "write_verify.read_noise_rel"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  // The card's defaults reach the model as the published constants (SI units).
  const devices::StanfordPkuParams p = devices::stanford_pku_params_from(stanford_card().device);
  EXPECT_DOUBLE_EQ(p.i0, 1e-3);
  EXPECT_DOUBLE_EQ(p.g0, 0.25e-9);
  EXPECT_DOUBLE_EQ(p.v0, 0.25);
  EXPECT_DOUBLE_EQ(p.vel0, 10.0);
  EXPECT_DOUBLE_EQ(p.ea, 0.6);
  EXPECT_DOUBLE_EQ(p.a0, 0.25e-9);
  EXPECT_DOUBLE_EQ(p.gamma0, 16.0);
  EXPECT_DOUBLE_EQ(p.beta, 0.8);
  EXPECT_DOUBLE_EQ(p.tox, 12e-9);
  EXPECT_DOUBLE_EQ(p.r_th, 2.1e3);
  EXPECT_DOUBLE_EQ(p.t0, 298.0);
  EXPECT_DOUBLE_EQ(p.f_min, 1.4e9);
  EXPECT_DOUBLE_EQ(p.gap_min, 0.2e-9);
  EXPECT_DOUBLE_EQ(p.gap_max, 1.7e-9);
  EXPECT_DOUBLE_EQ(p.v_read, 0.1);
  // A card override reaches the model.
  EXPECT_DOUBLE_EQ(devices::stanford_pku_params_from(stanford_card({"device.gamma0=15"}).device).gamma0, 15.0);
}

TEST(StanfordPkuModel, ReadWindowIsTheCardsWindow) {
  const double g_min = 1e-6, g_max = 40e-6;
  const Model m = make_model({}, g_min, g_max);
  ASSERT_NE(m.device, nullptr);
  const auto& d = *m.device;
  const auto& p = d.params();
  // G(gap_min) = g_max and G(gap_usable_max) = g_min, with the usable gap inside the physical range.
  EXPECT_NEAR(d.conductance_of_gap(p.gap_min), g_max, 1e-12 * g_max);
  EXPECT_NEAR(d.conductance_of_gap(d.gap_usable_max()), g_min, 1e-12 * g_min);
  EXPECT_NEAR(d.gap_usable_max(), p.gap_min + p.g0 * std::log(g_max / g_min), 1e-15 * kNm);
  EXPECT_GT(d.gap_usable_max(), p.gap_min);
  EXPECT_LT(d.gap_usable_max(), p.gap_max);
  // The read conductance is the rescaled current at v_read over v_read, s I0 exp(-g/g0) sinh(v_read/V0)/v_read.
  for (double gap_nm : {0.2, 0.5, 0.9, 1.1222, 1.7}) {
    const double gap = gap_nm * kNm;
    const double by_formula =
        d.current_scale() * p.i0 * std::exp(-gap / p.g0) * std::sinh(p.v_read / p.v0) / p.v_read;
    EXPECT_NEAR(d.conductance_of_gap(gap), by_formula, 1e-12 * by_formula) << gap_nm;
    EXPECT_NEAR(d.current(gap, p.v_read) / p.v_read, by_formula, 1e-12 * by_formula) << gap_nm;
    EXPECT_NEAR(d.gap_of_conductance(by_formula), gap, 1e-9 * gap) << gap_nm;
  }
  // A window wider than the gap range can give: the low end is the RESET bound.
  const Model wide = make_model({}, 1e-9, 40e-6);
  EXPECT_DOUBLE_EQ(wide.device->gap_usable_max(), p.gap_max);
  EXPECT_GT(wide.device->conductance_of_gap(p.gap_max), 1e-9);
  const Model zero = make_model({}, 0.0, 40e-6);
  EXPECT_DOUBLE_EQ(zero.device->gap_usable_max(), p.gap_max);
  // Another v_read changes s but not the window.
  const Model other = make_model({"device.v_read=0.2"}, g_min, g_max);
  EXPECT_NEAR(other.device->conductance_of_gap(p.gap_min), g_max, 1e-12 * g_max);
  EXPECT_NEAR(other.device->current(p.gap_min, 0.2) / 0.2, g_max, 1e-12 * g_max);
  EXPECT_NE(other.device->current_scale(), d.current_scale());
}

TEST(StanfordPkuModel, CellIvIsTheRescaledSinhConduction) {
  const Model m = make_model();
  const auto& d = *m.device;
  const devices::CellIv* iv = m.owner->iv();
  ASSERT_NE(iv, nullptr);
  const double v_read = d.params().v_read;
  for (double gap_nm : {0.2, 0.45, 0.8, 1.12}) {
    const double gap = gap_nm * kNm;
    const double g = d.conductance_of_gap(gap);
    double i = 0, di = 0;
    iv->current(g, v_read, i, di);
    EXPECT_NEAR(i, g * v_read, 1e-12 * g * v_read) << gap_nm;  // I(v_read) = G v_read
    for (double v : {-1.0, -0.3, 0.05, 0.3, 1.2}) {
      iv->current(g, v, i, di);
      const double expected = d.current(gap, v);
      EXPECT_NEAR(i, expected, 1e-10 * std::abs(expected)) << gap_nm << " nm, " << v << " V";
    }
  }
}

TEST(StanfordPkuModel, GapVelocityFollowsThePublishedEquation) {
  const Model m = make_model();
  const auto& d = *m.device;
  const auto s = d.nominal_state(0.8 * kNm);
  for (double v : {1.3, -1.3, 2.5, -2.5}) {
    const double gap = 0.8 * kNm;
    // I = s I0 exp(-g/g0) sinh(V/V0); T = T0 + |V I| Rth.
    const double i = d.current_scale() * 1e-3 * std::exp(-0.8 / 0.25) * std::sinh(v / 0.25);
    const double t = 298.0 + std::abs(v * i) * 2.1e3;
    EXPECT_NEAR(d.temperature(gap, v), t, 1e-9 * t);
    // dg/dt = -v0 exp(-Ea/kT) sinh(gamma a0 V/(tox kT)), gamma = gamma0 - beta (g/1nm)^3.
    const double gamma = 16.0 - 0.8 * 0.8 * 0.8 * 0.8;
    const double kt = kBoltzmannEv * t;
    const double expected = -10.0 * std::exp(-0.6 / kt) * std::sinh(gamma * 0.25 / 12.0 * v / kt);
    EXPECT_NEAR(d.gap_rate(s, v, gap), expected, 1e-9 * std::abs(expected)) << v;
  }
  EXPECT_GT(d.temperature(0.8 * kNm, 2.5), 330.0);  // the heating term matters at high voltage
  // SET (V > 0) closes the gap, RESET opens it.
  EXPECT_LT(d.gap_rate(s, 1.3, 0.8 * kNm), 0.0);
  EXPECT_GT(d.gap_rate(s, -1.3, 0.8 * kNm), 0.0);
  // Below the minimum field nothing moves: gamma(0.8 nm) |V| / tox < 1.4e9 V/m for |V| < 1.078 V.
  EXPECT_EQ(d.gap_rate(s, 1.05, 0.8 * kNm), 0.0);
  EXPECT_EQ(d.gap_rate(s, -1.05, 0.8 * kNm), 0.0);
  EXPECT_NE(d.gap_rate(s, 1.1, 0.8 * kNm), 0.0);
  // At a bound, pushing outward is zeroed.
  EXPECT_EQ(d.gap_rate(s, 2.0, d.params().gap_min), 0.0);
  EXPECT_EQ(d.gap_rate(s, -3.0, d.params().gap_max), 0.0);
  EXPECT_GT(d.gap_rate(s, -2.0, d.params().gap_min), 0.0);
}

TEST(StanfordPkuOde, AdaptiveErrorFallsInProportionToTheTolerance) {
  const Model m = make_model();
  const auto& d = *m.device;
  for (const TestPulse& c : kTestPulses) {
    const auto s = d.nominal_state(c.gap0);
    const double reference = d.integrate_pulse(s, c.pulse, 1e-13 * kNm, 1e-13).gap;
    ASSERT_GT(std::abs(reference - c.gap0), 0.2 * kNm) << c.name << ": the test pulse must move the gap";
    ASSERT_GT(reference, d.params().gap_min) << c.name;
    ASSERT_LT(reference, d.params().gap_max) << c.name;
    std::vector<double> errors;
    std::vector<int> steps;
    for (double tol : {1e-4, 1e-5, 1e-6, 1e-7, 1e-8}) {
      const devices::PulseIntegration r = d.integrate_pulse(s, c.pulse, tol * kNm, tol);
      errors.push_back(std::abs(r.gap - reference) / kNm);
      if (!steps.empty()) {
        EXPECT_GE(r.steps, steps.back()) << c.name << ": tighter tolerance, no fewer steps";
      }
      steps.push_back(r.steps);
      std::printf("  %s tol %.0e: error %.3e nm, %d steps (%d rejected)\n", c.name, tol, errors.back(), r.steps,
                  r.rejected);
    }
    // Dormand-Prince 5(4) with error-per-step control and local extrapolation: global error ~ tol.
    for (std::size_t k = 0; k + 1 < errors.size(); ++k) {
      const double ratio = errors[k] / errors[k + 1];
      EXPECT_GT(ratio, 3.0) << c.name << " at tolerance step " << k;
      EXPECT_LT(ratio, 40.0) << c.name << " at tolerance step " << k;
    }
    EXPECT_GT(steps.back(), 2 * steps.front()) << c.name;
    EXPECT_LT(errors.back(), 1e-7 * std::abs(reference / kNm)) << c.name;
  }
}

TEST(StanfordPkuOde, AgreesWithFineFixedStepRk4) {
  const Model m = make_model();
  const auto& d = *m.device;
  const auto& p = d.params();
  for (const TestPulse& c : kTestPulses) {
    const auto s = d.nominal_state(c.gap0);
    const double rk4 = rk4_gap(d, s, c.pulse.voltage, c.pulse.width, 20000);
    const double adaptive = d.integrate_pulse(s, c.pulse, p.ode_abs_tol, p.ode_rel_tol).gap;  // card defaults
    std::printf("  %s: adaptive %.9f nm, RK4 (20000 steps) %.9f nm, relative difference %.1e\n", c.name, adaptive / kNm,
                rk4 / kNm, std::abs(adaptive - rk4) / rk4);
    EXPECT_NEAR(adaptive, rk4, 1e-6 * rk4) << c.name;
    EXPECT_GT(std::abs(rk4 - c.gap0), 0.2 * kNm) << c.name;
  }
}

TEST(StanfordPkuOde, FixedStepRk4ConvergesAtFourthOrder) {
  const Model m = make_model();
  const auto& d = *m.device;
  for (const TestPulse& c : kTestPulses) {
    const auto s = d.nominal_state(c.gap0);
    const double g1 = rk4_gap(d, s, c.pulse.voltage, c.pulse.width, 40);
    const double g2 = rk4_gap(d, s, c.pulse.voltage, c.pulse.width, 80);
    const double g4 = rk4_gap(d, s, c.pulse.voltage, c.pulse.width, 160);
    const double ratio = (g1 - g2) / (g2 - g4);
    std::printf("  %s: RK4 difference ratio h/(h/2) : (h/2)/(h/4) = %.2f (16 for order 4)\n", c.name, ratio);
    EXPECT_GT(ratio, 16.0 * 0.75) << c.name;
    EXPECT_LT(ratio, 16.0 * 1.25) << c.name;
  }
}

TEST(StanfordPkuPulse, LongSetStopsAtTheLowerBoundAndNotPast) {
  const Model m = make_model();
  const auto& d = *m.device;
  const auto& p = d.params();
  for (double v : {1.5, 2.0, 3.3}) {
    const auto s = d.nominal_state(1.5 * kNm);
    const devices::PulseIntegration r = d.integrate_pulse(s, {v, 1e-3}, p.ode_abs_tol, p.ode_rel_tol);
    EXPECT_EQ(r.gap, p.gap_min) << v;
    EXPECT_LT(r.steps, 10000) << v;
  }
  // With cycle-to-cycle noise the gap still never leaves its bounds.
  auto s = d.nominal_state(1.5 * kNm);
  core::RandomStream rng(3, "noise");
  for (int k = 0; k < 200; ++k) {
    d.apply_pulse(s, {k % 2 ? 2.0 : -3.0, 1e-6}, rng);
    ASSERT_GE(s[StanfordPkuDevice::kGap], p.gap_min);
    ASSERT_LE(s[StanfordPkuDevice::kGap], p.gap_max);
  }
}

TEST(StanfordPkuPulse, LongResetStopsAtTheUpperBoundOrWhereTheFieldFallsToFmin) {
  const Model m = make_model();
  const auto& d = *m.device;
  const auto& p = d.params();
  for (double v : {-2.0, -3.3}) {
    const auto s = d.nominal_state(0.2 * kNm);
    EXPECT_EQ(d.integrate_pulse(s, {v, 1e-3}, p.ode_abs_tol, p.ode_rel_tol).gap, p.gap_max) << v;
  }
  // Published threshold: a RESET at -1.2 V stops where (gamma0 - beta g^3) 1.2 V / tox = F_min.
  const double g_star = std::cbrt((16.0 - 1.4e9 * 12e-9 / 1.2) / 0.8) * kNm;
  const auto s = d.nominal_state(0.2 * kNm);
  const double gap = d.integrate_pulse(s, {-1.2, 1e-3}, p.ode_abs_tol, p.ode_rel_tol).gap;
  EXPECT_NEAR(gap, g_star, 1e-9 * g_star);
  // and a second pulse of the same amplitude does not move it further.
  auto at_stop = d.nominal_state(gap);
  EXPECT_EQ(d.integrate_pulse(at_stop, {-1.2, 1e-3}, p.ode_abs_tol, p.ode_rel_tol).gap, gap);
}

TEST(StanfordPkuPulse, HigherVoltageMovesTheGapFaster) {
  const Model m = make_model();
  const auto& d = *m.device;
  const auto& p = d.params();
  double last = 0;
  for (double v = 1.2; v <= 1.501; v += 0.05) {  // SET from 1.0 nm, 2 ns
    const double gap = d.integrate_pulse(d.nominal_state(1.0 * kNm), {v, 2e-9}, p.ode_abs_tol, p.ode_rel_tol).gap;
    ASSERT_GT(gap, p.gap_min) << v;  // not saturated: the comparison is meaningful
    const double moved = 1.0 * kNm - gap;
    EXPECT_GT(moved, last) << v;
    last = moved;
  }
  last = 0;
  for (double v = 1.1; v <= 1.501; v += 0.05) {  // RESET from 0.3 nm, 2 ns
    const double gap = d.integrate_pulse(d.nominal_state(0.3 * kNm), {-v, 2e-9}, p.ode_abs_tol, p.ode_rel_tol).gap;
    ASSERT_LT(gap, p.gap_max) << v;
    const double moved = gap - 0.3 * kNm;
    EXPECT_GT(moved, last) << v;
    last = moved;
  }
}

TEST(StanfordPkuPulse, CycleNoiseScalesWithThePulseEffect) {
  const Model m = make_model({"device.gap_noise_rel=0.2", "device.gap_noise_sigma=2e-12"});
  const auto& d = *m.device;
  const auto& p = d.params();
  const auto start = d.nominal_state(1.0 * kNm);
  const devices::Pulse pulse{1.35, 20e-9};
  const double deterministic = d.integrate_pulse(start, pulse, p.ode_abs_tol, p.ode_rel_tol).gap;
  const double sigma = 0.2 * std::abs(deterministic - start[0]) + 2e-12;
  ASSERT_GT(std::abs(deterministic - start[0]), 0.02 * kNm);
  const int n = 4000;
  core::RandomStream rng(5, "noise");
  double sum = 0, sum2 = 0;
  for (int k = 0; k < n; ++k) {
    auto s = start;
    d.apply_pulse(s, pulse, rng);
    const double z = (s[0] - deterministic) / sigma;
    sum += z;
    sum2 += z * z;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 4.0 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(var), 1.0, 4.0 / std::sqrt(2.0 * n));
  // A pulse below the switching field neither moves nor disturbs the gap.
  auto s = start;
  d.apply_pulse(s, {1.0, 20e-9}, rng);
  EXPECT_EQ(s[0], start[0]);
}

TEST(StanfordPkuModel, DeviceToDeviceVariationHasTheCardsSigmas) {
  const Model m = make_model({"device.d2d_sigma_vel0=0.1", "device.d2d_sigma_gamma0=0.02"});
  const auto& d = *m.device;
  const int n = 5000;
  double s1 = 0, s2 = 0, t1 = 0, t2 = 0;
  for (int k = 0; k < n; ++k) {
    core::RandomStream rng(9, "cell", {static_cast<std::uint64_t>(k)});
    const auto s = d.initial_state(4e-6, rng);
    EXPECT_NEAR(d.conductance(s), 4e-6, 1e-12 * 4e-6);
    const double a = std::log(s[StanfordPkuDevice::kVel0] / 10.0);
    const double b = s[StanfordPkuDevice::kGamma0] / 16.0 - 1.0;
    s1 += a, s2 += a * a, t1 += b, t2 += b * b;
  }
  EXPECT_NEAR(s1 / n, 0.0, 4 * 0.1 / std::sqrt(n));  // median vel0
  EXPECT_NEAR(std::sqrt(s2 / n - (s1 / n) * (s1 / n)), 0.1, 4 * 0.1 / std::sqrt(2.0 * n));
  EXPECT_NEAR(t1 / n, 0.0, 4 * 0.02 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(t2 / n - (t1 / n) * (t1 / n)), 0.02, 4 * 0.02 / std::sqrt(2.0 * n));
}

TEST(StanfordPkuModel, ProgramRecordsTheGapAndReadsAddOnlyReadNoise) {
  const Model m = make_model();
  const auto& d = *m.device;
  const int rows = 24, cols = 32;
  Eigen::MatrixXd target(rows, cols);
  for (int k = 0; k < rows * cols; ++k) target(k / cols, k % cols) = 1e-6 + 39e-6 * k / (rows * cols - 1.0);
  core::RandomStream rng(11, "programming");
  const devices::ProgrammedArray programmed = m.owner->program(target, rng);
  ASSERT_EQ(programmed.cell_state.count("gap"), 1u);
  EXPECT_EQ(m.owner->cell_state_units("gap"), "m");
  const Eigen::MatrixXd gap_nm = programmed.cell_state.at("gap") / kNm;
  ASSERT_EQ(gap_nm.rows(), rows);
  ASSERT_EQ(programmed.pulses.cols(), cols);
  ASSERT_EQ(programmed.converged.rows(), rows);
  EXPECT_EQ(programmed.g_target, target);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      EXPECT_NEAR(programmed.g_programmed(i, j), d.conductance_of_gap(gap_nm(i, j) * kNm), 1e-9 * target(i, j));
      EXPECT_GE(gap_nm(i, j), 0.2 - 1e-12);
      EXPECT_LE(gap_nm(i, j), 1.7 + 1e-12);
      EXPECT_LE(programmed.pulses(i, j), 20);
    }
  // Reads: programmed conductance times (1 + 0.005 N(0,1)), fresh per read, no drift.
  core::RandomStream read_a(11, "read", {0});
  const Eigen::MatrixXd g0 = m.owner->read_conductance(programmed, 0.0, read_a);
  core::RandomStream read_b(11, "read", {0});
  const Eigen::MatrixXd g1 = m.owner->read_conductance(programmed, 1e6, read_b);
  EXPECT_EQ(g0, g1);  // same stream, a million seconds later: identical (no retention term)
  core::RandomStream read_c(11, "read", {1});
  const Eigen::MatrixXd g2 = m.owner->read_conductance(programmed, 0.0, read_c);
  EXPECT_NE(g0, g2);  // fresh noise per read
  const Eigen::ArrayXd z = ((g0.array() / programmed.g_programmed.array() - 1.0) / 0.005).reshaped();
  const double n = static_cast<double>(z.size());
  const double mean = z.mean();
  EXPECT_NEAR(mean, 0.0, 4.0 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt((z - mean).square().mean()), 1.0, 4.0 / std::sqrt(2.0 * n));
}
