// Statistical device models reproduce their published formulas: over 10^5 seeded samples per
// conductance bin, sample mean and standard deviation of the programming error, drift exponent,
// relaxation and read noise match the formula within 5 standard errors (which scale as
// 1/sqrt(N)), and the Kolmogorov-Smirnov distance to the specified distribution is below its
// critical value (c / sqrt(N), the level corrected for the number of checks: see expect_ks).
// Expected values are computed here from the published equations, independently of the
// implementation. Seeds are fixed, so every run draws the same samples.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numbers>
#include <string>
#include <vector>

#include "core/card.hpp"
#include "devices/registry.hpp"

using namespace xbar;

namespace {

constexpr int kN = 100000;   // samples per bin
constexpr double kUs = 1e-6;  // S per uS

// ------------------------------------------------------------------------------------------
// Construction

// DeviceOptions of `model` with its table defaults, window [g_min, g_max] and overrides.
core::DeviceOptions options_for(const std::string& model, double g_min, double g_max,
                                const std::map<std::string, core::CardValue>& overrides = {}) {
  const devices::DeviceModelInfo* info = devices::builtin_devices().find(model);
  EXPECT_NE(info, nullptr) << model;
  core::DeviceOptions options;
  options.model = model;
  options.g_min = g_min;
  options.g_max = g_max;
  for (const auto& spec : info->params) {
    if (spec.type == core::ValueType::number) {
      options.params[spec.key] = std::stod(*spec.default_yaml);
    } else {
      options.params[spec.key] = *spec.default_yaml;
    }
  }
  for (const auto& [key, value] : overrides) {
    EXPECT_TRUE(options.params.count(key)) << model << " has no parameter " << key;
    options.params[key] = value;
  }
  return options;
}

std::unique_ptr<devices::Device> make(const std::string& model, double g_max,
                                      const std::map<std::string, core::CardValue>& overrides = {}) {
  return devices::builtin_devices().create(options_for(model, 0.0, g_max, overrides));
}

Eigen::MatrixXd constant_row(double g) { return Eigen::MatrixXd::Constant(1, kN, g); }

std::vector<double> to_vector(const Eigen::MatrixXd& m, double scale = 1.0) {
  std::vector<double> v(m.size());
  for (Eigen::Index k = 0; k < m.size(); ++k) v[k] = m.data()[k] * scale;
  return v;
}

// ------------------------------------------------------------------------------------------
// Statistics

double Phi(double z) { return 0.5 * std::erfc(-z / std::numbers::sqrt2); }
double phi(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2.0 * std::numbers::pi); }

struct Moments {
  double mean = 0, std = 0, kurtosis = 3;
};

Moments moments(const std::vector<double>& s) {
  const double n = static_cast<double>(s.size());
  Moments m;
  for (double v : s) m.mean += v;
  m.mean /= n;
  double m2 = 0, m4 = 0;
  for (double v : s) {
    const double d = (v - m.mean) * (v - m.mean);
    m2 += d;
    m4 += d * d;
  }
  m2 /= n;
  m4 /= n;
  m.std = std::sqrt(m2 * n / (n - 1));
  m.kurtosis = m2 > 0 ? m4 / (m2 * m2) : 3;
  return m;
}

// Mean and standard deviation of max(mu + sigma Z, 0), Z standard normal.
void clamped_normal(double mu, double sigma, double& mean, double& std) {
  if (sigma <= 0) {
    mean = std::max(mu, 0.0);
    std = 0;
    return;
  }
  const double a = mu / sigma;
  mean = mu * Phi(a) + sigma * phi(a);
  const double second = (mu * mu + sigma * sigma) * Phi(a) + mu * sigma * phi(a);
  std = std::sqrt(std::max(second - mean * mean, 0.0));
}

// Mean and standard deviation of |mu + sigma Z| (the folded normal).
void folded_normal(double mu, double sigma, double& mean, double& std) {
  mean = sigma * std::sqrt(2.0 / std::numbers::pi) * std::exp(-mu * mu / (2 * sigma * sigma)) +
         mu * (1.0 - 2.0 * Phi(-mu / sigma));
  std = std::sqrt(mu * mu + sigma * sigma - mean * mean);
}

// Sample mean within 5 standard errors of `mean`, sample standard deviation within 5 standard
// errors of `std` (standard error of s: std sqrt((kurtosis - 1) / (4 N)), the sample kurtosis
// accounting for non-normal shapes such as the folded normal).
void expect_moments(const std::vector<double>& s, double mean, double std, const std::string& what) {
  const Moments m = moments(s);
  const double n = static_cast<double>(s.size());
  EXPECT_NEAR(m.mean, mean, 5.0 * std / std::sqrt(n)) << what << ": mean";
  EXPECT_NEAR(m.std, std, 5.0 * std * std::sqrt(std::max(m.kurtosis - 1.0, 0.5) / (4.0 * n))) << what << ": std";
}

// Kolmogorov-Smirnov distance between the sample and `cdf`. With atom_at_zero the distribution
// is that of a variable clamped at 0: mass cdf(0) sits at exactly 0, none below.
double ks_distance(std::vector<double> s, const std::function<double(double)>& cdf, bool atom_at_zero) {
  std::sort(s.begin(), s.end());
  const double n = static_cast<double>(s.size());
  std::size_t first = 0;
  double d = 0;
  if (atom_at_zero) {
    while (first < s.size() && s[first] <= 0.0) ++first;
    d = std::abs(static_cast<double>(first) / n - cdf(0.0));
  }
  for (std::size_t i = first; i < s.size(); ++i) {
    const double f = cdf(s[i]);
    d = std::max({d, (static_cast<double>(i) + 1.0) / n - f, f - static_cast<double>(i) / n});
  }
  return d;
}

// The KS critical value sqrt(-ln(alpha / 2) / 2) / sqrt(N) at a per-check level alpha = 1e-4
// (2.23 / sqrt(N)): this file makes about 70 KS checks, so the 1 % per-check value 1.63 / sqrt(N)
// would fail a correct model somewhere with probability ~50 %; 1e-4 per check keeps the
// family-wise false-alarm rate below 1 % (Bonferroni).
constexpr double kKsAlpha = 1e-4;

void expect_ks(const std::vector<double>& s, const std::function<double(double)>& cdf, bool atom_at_zero,
               const std::string& what) {
  const double critical = std::sqrt(-0.5 * std::log(kKsAlpha / 2)) / std::sqrt(static_cast<double>(s.size()));
  EXPECT_LT(ks_distance(s, cdf, atom_at_zero), critical) << what << ": KS";
}

// A clamped-normal sample (programmed conductances): moments and KS against max(N(mu, sigma), 0).
void expect_clamped_normal(const std::vector<double>& s, double mu, double sigma, const std::string& what) {
  double mean = 0, std = 0;
  clamped_normal(mu, sigma, mean, std);
  expect_moments(s, mean, std, what);
  expect_ks(s, [&](double y) { return Phi((y - mu) / sigma); }, true, what);
}

void expect_standard_normal(const std::vector<double>& z, const std::string& what) {
  expect_moments(z, 0.0, 1.0, what);
  expect_ks(z, Phi, false, what);
}

std::string label(const std::string& model, double x, double t = -1) {
  std::string s = model + " x=" + std::to_string(x);
  if (t >= 0) s += " t=" + std::to_string(t) + " s";
  return s;
}

// ------------------------------------------------------------------------------------------
// The published formulas (from the papers / the issue), written out independently.

double joshi_sigma_us(double x) { return std::max(0.26348 + 1.9650 * x - 1.1731 * x * x, 0.0); }
double joshi_nu_mean(double x) { return std::clamp(-0.0155 * std::log(x) + 0.0244, 0.049, 0.1); }
double joshi_nu_sigma(double x) { return std::clamp(-0.0125 * std::log(x) - 0.0059, 0.008, 0.045); }
double joshi_q_s(double x) { return std::min(0.0088 / std::pow(x, 0.65), 0.2); }

double hermes_sigma_us(double x) {
  return 0.16603 + 4.71806 * x - 8.48101 * x * x + 4.68961 * x * x * x;
}
double hermes_nu_mean(double x) {
  return x < 0.0945 ? std::clamp(-0.0387 * std::log(x) - 0.0182, 0.072, 0.13)
                    : -0.0436 * x * x - 0.0126 * x + 0.0736;
}
double hermes_nu_sigma(double x) {
  return x < 0.3055 ? std::clamp(-0.0117 * std::log(x) - 0.0057, 0.0091, 0.04)
                    : -0.0118 * x * x + 0.0093 * x + 0.0073;
}
double hermes_q_s(double x) {
  return x < 0.16 ? std::clamp(-0.0117 * std::log(x) - 0.0069, 0.015, 0.04)
                  : 0.0069 * x * x * x - 0.0280 * x * x + 0.0211 * x + 0.0123;
}

struct PcmCase {
  std::string model;
  double g_ref_us;  // reference g_max of the fit
  double t0;
  double t_read;
  double (*sigma_us)(double);
  double (*nu_mean)(double);
  double (*nu_sigma)(double);
  double (*q_s)(double);
};

const PcmCase kJoshi{"pcm-joshi2020", 25.0, 20.0, 250e-9, joshi_sigma_us, joshi_nu_mean, joshi_nu_sigma, joshi_q_s};
const PcmCase kHermes{"pcm-hermes2023", 20.7, 300.0, 512e-9, hermes_sigma_us, hermes_nu_mean, hermes_nu_sigma,
                      hermes_q_s};

double wan_poly_us(int k, double x) {
  static const double c[3][5] = {{0.348, 16.030, -43.853, 45.393, -16.815},
                                 {0.701, 22.086, -50.773, 47.095, -16.458},
                                 {0.782, 20.274, -43.507, 37.062, -11.934}};
  double s = 0, p = 1;
  for (int i = 0; i < 5; ++i, p *= x) s += c[k][i] * p;
  return s;
}

// ------------------------------------------------------------------------------------------
// PCM

void check_pcm_programming(const PcmCase& c, double g_max, const std::vector<double>& bins, std::uint64_t seed) {
  const auto device = make(c.model, g_max);
  for (double x : bins) {
    core::RandomStream rng(seed, "programming", {static_cast<std::uint64_t>(x * 1000)});
    const devices::ProgrammedArray p = device->program(constant_row(x * g_max), rng);
    const double sigma_us = c.sigma_us(x) * (g_max / kUs) / c.g_ref_us;
    expect_clamped_normal(to_vector(p.g_programmed, 1 / kUs), x * g_max / kUs, sigma_us,
                          label(c.model, x) + " g_max=" + std::to_string(g_max / kUs) + " uS programming");
  }
}

TEST(PcmJoshi2020, ProgrammingErrorMatchesPublishedQuadraticSigma) {
  check_pcm_programming(kJoshi, 25 * kUs, {0.1, 0.3, 0.6, 0.9}, 11);
}

TEST(PcmJoshi2020, ProgrammingSigmaScalesWithTheCardWindow) {
  // The card's g_max plays the role of the fit's 25 uS: at 50 uS the sigma in uS doubles.
  check_pcm_programming(kJoshi, 50 * kUs, {0.5}, 12);
}

TEST(PcmHermes2023, ProgrammingErrorMatchesPublishedCubicSigma) {
  check_pcm_programming(kHermes, 20.7 * kUs, {0.1, 0.3, 0.6, 0.9}, 13);
}

void check_drift_exponent(const PcmCase& c, const std::vector<double>& bins, std::uint64_t seed) {
  const double g_max = c.g_ref_us * kUs;
  const auto device = make(c.model, g_max);
  for (double x : bins) {
    core::RandomStream rng(seed, "programming", {static_cast<std::uint64_t>(x * 1e6)});
    const devices::ProgrammedArray p = device->program(constant_row(x * g_max), rng);
    ASSERT_TRUE(p.cell_state.count("nu"));
    const std::vector<double> nu = to_vector(p.cell_state.at("nu"));
    const double mu = c.nu_mean(x), sigma = c.nu_sigma(x);
    double mean = 0, std = 0;
    folded_normal(mu, sigma, mean, std);
    const std::string what = label(c.model, x) + " drift exponent";
    expect_moments(nu, mean, std, what);
    expect_ks(nu, [&](double y) { return y < 0 ? 0.0 : Phi((y - mu) / sigma) - Phi((-y - mu) / sigma); }, false,
              what);
  }
}

TEST(PcmJoshi2020, DriftExponentIsFoldedNormalOfPublishedFit) {
  // 0.001: mean and sigma clipped high; 0.01: mean free, sigma clipped high (folding matters:
  // mu/sigma = 2.1); 0.1: both free; 0.6: both clipped low.
  check_drift_exponent(kJoshi, {0.001, 0.01, 0.1, 0.6}, 21);
}

TEST(PcmHermes2023, DriftExponentIsFoldedNormalOfPiecewiseFit) {
  // 0.005: low branches, both clipped; 0.05: low branches free; 0.2: high mean branch, low sigma
  // branch; 0.6: both high branches.
  check_drift_exponent(kHermes, {0.005, 0.05, 0.2, 0.6}, 22);
}

TEST(PcmStatistical, DriftFollowsThePowerLawOfEachDrawnExponent) {
  for (const PcmCase* c : {&kJoshi, &kHermes}) {
    const double g_max = c->g_ref_us * kUs;
    const auto device = make(c->model, g_max, {{"read_noise_scale", 0.0}});
    Eigen::MatrixXd target(40, 50);
    for (Eigen::Index k = 0; k < target.size(); ++k) target.data()[k] = g_max * (0.05 + 0.95 * k / 1999.0);
    core::RandomStream rng(31, "programming");
    const devices::ProgrammedArray p = device->program(target, rng);
    const Eigen::MatrixXd& nu = p.cell_state.at("nu");
    for (double t : {0.0, 1.0, 3600.0, 86400.0, 3.15e7}) {
      core::RandomStream read_rng(31, "read", {static_cast<std::uint64_t>(t)});
      const Eigen::MatrixXd g = device->read_conductance(p, t, read_rng);
      for (Eigen::Index k = 0; k < g.size(); ++k) {
        const double expected = p.g_programmed.data()[k] * std::pow((t + c->t0) / c->t0, -nu.data()[k]);
        ASSERT_NEAR(g.data()[k], expected, 1e-12 * std::abs(expected)) << c->model << " t=" << t << " cell " << k;
      }
    }
    // drift_scale = 0 switches drift off.
    const auto frozen = make(c->model, g_max, {{"read_noise_scale", 0.0}, {"drift_scale", 0.0}});
    core::RandomStream rng2(31, "programming");
    const devices::ProgrammedArray q = frozen->program(target, rng2);
    core::RandomStream read_rng(31, "read");
    EXPECT_TRUE(frozen->read_conductance(q, 86400.0, read_rng).isApprox(q.g_programmed, 1e-15)) << c->model;
    EXPECT_EQ(q.cell_state.at("nu").cwiseAbs().maxCoeff(), 0.0) << c->model;
  }
}

void check_pcm_read_noise(const PcmCase& c, const std::vector<double>& bins, std::uint64_t seed) {
  const double g_max = c.g_ref_us * kUs;
  const auto noisy = make(c.model, g_max);
  const auto quiet = make(c.model, g_max, {{"read_noise_scale", 0.0}});
  for (double x : bins) {
    core::RandomStream rng(seed, "programming", {static_cast<std::uint64_t>(x * 1000)});
    const devices::ProgrammedArray p = noisy->program(constant_row(x * g_max), rng);
    for (double t : {0.0, 3600.0, 86400.0}) {
      // 1/f noise accumulated since the start of programming, t0 before the drift reference.
      const double sigma_rel = c.q_s(x) * std::sqrt(std::log((t + c.t0 + c.t_read) / (2 * c.t_read)));
      core::RandomStream read_rng(seed, "read", {static_cast<std::uint64_t>(x * 1000), static_cast<std::uint64_t>(t)});
      const Eigen::MatrixXd g = noisy->read_conductance(p, t, read_rng);
      core::RandomStream unused(seed, "unused");
      const Eigen::MatrixXd g_drift = quiet->read_conductance(p, t, unused);
      // Cells programmed to exactly 0 (the programming clamp) stay at 0; the rest are standardized.
      std::vector<double> z;
      z.reserve(kN);
      for (int k = 0; k < kN; ++k) {
        if (g_drift(0, k) == 0.0) {
          EXPECT_EQ(g(0, k), 0.0);
          continue;
        }
        z.push_back((g(0, k) - g_drift(0, k)) / (g_drift(0, k) * sigma_rel));
      }
      ASSERT_GT(z.size(), 0.999 * kN);
      expect_standard_normal(z, label(c.model, x, t) + " standardized read noise");
    }
  }
}

TEST(PcmJoshi2020, ReadNoiseMatchesOneOverFSigma) { check_pcm_read_noise(kJoshi, {0.1, 0.5, 0.9}, 41); }

TEST(PcmHermes2023, ReadNoiseMatchesPiecewiseOneOverFSigma) {
  // 0.1 on the low Q_s branch, 0.5 and 0.9 on the cubic one.
  check_pcm_read_noise(kHermes, {0.1, 0.5, 0.9}, 42);
}

TEST(PcmStatistical, ReadNoiseIsFreshPerReadAndSeedReproducible) {
  for (const PcmCase* c : {&kJoshi, &kHermes}) {
    const double g_max = c->g_ref_us * kUs;
    const auto device = make(c->model, g_max);
    const Eigen::MatrixXd target = Eigen::MatrixXd::Constant(30, 30, 0.5 * g_max);
    core::RandomStream a(5, "programming"), b(5, "programming"), other(6, "programming");
    const devices::ProgrammedArray pa = device->program(target, a);
    const devices::ProgrammedArray pb = device->program(target, b);
    const devices::ProgrammedArray po = device->program(target, other);
    EXPECT_EQ(pa.g_programmed, pb.g_programmed) << c->model;
    EXPECT_EQ(pa.cell_state.at("nu"), pb.cell_state.at("nu")) << c->model;
    EXPECT_TRUE((pa.g_programmed.array() != po.g_programmed.array()).all()) << c->model;
    EXPECT_TRUE((pa.cell_state.at("nu").array() != po.cell_state.at("nu").array()).all()) << c->model;

    core::RandomStream r1(5, "read", {1}), r1_again(5, "read", {1}), r2(5, "read", {2});
    const Eigen::MatrixXd g1 = device->read_conductance(pa, 3600.0, r1);
    const Eigen::MatrixXd g1_again = device->read_conductance(pa, 3600.0, r1_again);
    const Eigen::MatrixXd g2 = device->read_conductance(pa, 3600.0, r2);
    EXPECT_EQ(g1, g1_again) << c->model << ": same read stream, same read";
    EXPECT_TRUE((g1.array() != g2.array()).all()) << c->model << ": every cell's read noise is fresh";
  }
}

// ------------------------------------------------------------------------------------------
// NeuRRAM RRAM (Wan et al. 2022)

double wan_sigma_us(double x, double t, double g_max_us) {
  const double unit = g_max_us / 40.0;
  if (t <= 1) return unit * wan_poly_us(0, x);
  if (t >= 172800) return unit * wan_poly_us(2, x);
  if (t <= 86400) {
    const double w = std::log10(t) / std::log10(86400.0);
    return unit * ((1 - w) * wan_poly_us(0, x) + w * wan_poly_us(1, x));
  }
  const double w = std::log10(t / 86400.0) / std::log10(2.0);
  return unit * ((1 - w) * wan_poly_us(1, x) + w * wan_poly_us(2, x));
}

void check_wan_marginal(double g_max, const std::vector<double>& bins, const std::vector<double>& times,
                        std::uint64_t seed) {
  const auto device = make("rram-wan2022", g_max);
  for (double x : bins) {
    core::RandomStream rng(seed, "programming", {static_cast<std::uint64_t>(x * 1000)});
    const devices::ProgrammedArray p = device->program(constant_row(x * g_max), rng);
    for (double t : times) {
      core::RandomStream read_rng(seed, "read");
      const Eigen::MatrixXd g = device->read_conductance(p, t, read_rng);
      expect_clamped_normal(to_vector(g, 1 / kUs), x * g_max / kUs, wan_sigma_us(x, t, g_max / kUs),
                            label("rram-wan2022", x, t) + " g_max=" + std::to_string(g_max / kUs) + " uS");
    }
  }
}

TEST(RramWan2022, MarginalSigmaEqualsPublishedFitsAtOneSecondOneDayTwoDays) {
  // x = 0.1 and 0.3 are clamped at 0 for 0.5 % / 5 % of the cells at 1 day: the expectation
  // accounts for the clamp.
  check_wan_marginal(40 * kUs, {0.1, 0.3, 0.6, 0.9}, {1.0, 86400.0, 172800.0}, 51);
}

TEST(RramWan2022, SigmaBetweenFitTimesFollowsLogTimeInterpolation) {
  // 1 h (72 % of the way from 1 s to 1 day in log time), 1.5 days; before 1 s and after 2 days
  // the end fits hold.
  check_wan_marginal(40 * kUs, {0.6}, {0.0, 0.5, 3600.0, 129600.0, 1e6}, 52);
  // Linear-in-time interpolation would give a much smaller sigma at 1 h: make sure the two differ
  // by far more than the tolerance, so the check above can tell them apart.
  const double log_time = wan_sigma_us(0.6, 3600, 40);
  const double linear_time = wan_poly_us(0, 0.6) + 3599.0 / 86399.0 * (wan_poly_us(1, 0.6) - wan_poly_us(0, 0.6));
  EXPECT_GT(log_time / linear_time, 1.5);
}

TEST(RramWan2022, SigmaScalesWithTheCardWindow) { check_wan_marginal(80 * kUs, {0.6}, {1.0, 86400.0}, 53); }

TEST(RramWan2022, ReadsOfOneProgrammedArrayAreConsistent) {
  const double g_max = 40 * kUs, x = 0.6;
  const auto device = make("rram-wan2022", g_max);
  core::RandomStream rng(54, "programming");
  const devices::ProgrammedArray p = device->program(constant_row(x * g_max), rng);
  core::RandomStream r1(54, "read", {1}), r2(54, "read", {2});
  // The programmed state is the 1 s state; reads are deterministic given the programmed array.
  EXPECT_EQ(device->read_conductance(p, 1.0, r1), p.g_programmed);
  EXPECT_EQ(device->read_conductance(p, 0.0, r2), p.g_programmed);
  const Eigen::MatrixXd day_a = device->read_conductance(p, 86400.0, r1);
  const Eigen::MatrixXd day_b = device->read_conductance(p, 86400.0, r2);
  EXPECT_EQ(day_a, day_b);
  // The 1 s error persists: corr(error at 1 s, error at 1 day) = sigma(1 s) / sigma(1 day).
  const Eigen::ArrayXd e1 = (p.g_programmed.array() - x * g_max).reshaped();
  const Eigen::ArrayXd ed = (day_a.array() - x * g_max).reshaped();
  const double rho = ((e1 - e1.mean()) * (ed - ed.mean())).sum() /
                     std::sqrt((e1 - e1.mean()).square().sum() * (ed - ed.mean()).square().sum());
  const double expected = wan_poly_us(0, x) / wan_poly_us(1, x);
  EXPECT_NEAR(rho, expected, 5 * (1 - expected * expected) / std::sqrt(double(kN)));
  // Same seed, same cells.
  core::RandomStream again(54, "programming");
  const devices::ProgrammedArray q = device->program(constant_row(x * g_max), again);
  EXPECT_EQ(q.g_programmed, p.g_programmed);
  EXPECT_EQ(q.cell_state, p.cell_state);
}

// ------------------------------------------------------------------------------------------
// IBM CMO/HfOx RRAM

double hfox_prog_sigma_us(const std::string& band, double g_us) {
  return band == "0.2%" ? 0.00081107 + 0.00106879 * g_us : 0.0112185391 + 0.01129027418 * g_us;
}

TEST(RramHfoxIbm, ProgrammingSigmaMatchesBothVerifyBands) {
  std::uint64_t band_index = 0;
  for (const std::string band : {"0.2%", "2%"}) {
    ++band_index;
    const auto device = make("rram-hfox-ibm", 90 * kUs, {{"verify_band", band}});
    // Absolute uS fits: the card's window does not rescale them.
    const auto wide_window = make("rram-hfox-ibm", 200 * kUs, {{"verify_band", band}});
    for (double g_us : {10.0, 30.0, 60.0, 90.0}) {
      core::RandomStream rng(61, "programming", {band_index, static_cast<std::uint64_t>(g_us)});
      core::RandomStream same(61, "programming", {band_index, static_cast<std::uint64_t>(g_us)});
      const devices::ProgrammedArray p = device->program(constant_row(g_us * kUs), rng);
      EXPECT_EQ(wide_window->program(constant_row(g_us * kUs), same).g_programmed, p.g_programmed);
      expect_clamped_normal(to_vector(p.g_programmed, 1 / kUs), g_us, hfox_prog_sigma_us(band, g_us),
                            "rram-hfox-ibm band " + band + " g=" + std::to_string(g_us) + " uS");
    }
  }
}

TEST(RramHfoxIbm, RelaxationMeanAndSigmaFollowLogTimeFit) {
  const auto device = make("rram-hfox-ibm", 90 * kUs, {{"read_noise_scale", 0.0}});
  core::RandomStream rng(62, "programming");
  const devices::ProgrammedArray p = device->program(constant_row(50 * kUs), rng);
  // t >= 1 s: the published fit; t = 0.5 s: mean held at 0, sigma fit extrapolated in ln t.
  for (double t : {0.5, 3600.0, 86400.0}) {
    const double mean_us = t >= 1 ? -0.08900206 * std::log(t) : 0.0;
    const double sigma_us = 0.04201137 * std::log(t) + 0.41183342;
    core::RandomStream read_rng(62, "read");
    const Eigen::MatrixXd g = device->read_conductance(p, t, read_rng);
    std::vector<double> shift(kN);
    for (int k = 0; k < kN; ++k) shift[k] = (g(0, k) - p.g_programmed(0, k)) / kUs;
    const std::string what = "rram-hfox-ibm relaxation t=" + std::to_string(t) + " s";
    expect_moments(shift, mean_us, sigma_us, what);
    expect_ks(shift, [&](double y) { return Phi((y - mean_us) / sigma_us); }, false, what);
  }
  // One array relaxes consistently: the 1 h and 1 day shifts are the same normal scaled.
  core::RandomStream r1(62, "read", {1}), r2(62, "read", {2});
  const Eigen::ArrayXXd hour = device->read_conductance(p, 3600.0, r1).array() - p.g_programmed.array();
  const Eigen::ArrayXXd day = device->read_conductance(p, 86400.0, r2).array() - p.g_programmed.array();
  const auto standard = [](const Eigen::ArrayXXd& shift, double t) {
    return (shift / kUs + 0.08900206 * std::log(t)) / (0.04201137 * std::log(t) + 0.41183342);
  };
  EXPECT_TRUE(standard(hour, 3600.0).isApprox(standard(day, 86400.0), 1e-6));
}

TEST(RramHfoxIbm, ReadAtTimeZeroIsTheProgrammedState) {
  const auto device = make("rram-hfox-ibm", 90 * kUs);
  core::RandomStream rng(63, "programming");
  const devices::ProgrammedArray p = device->program(Eigen::MatrixXd::Constant(20, 20, 40 * kUs), rng);
  core::RandomStream read_rng(63, "read");
  EXPECT_EQ(device->read_conductance(p, 0.0, read_rng), p.g_programmed);
}

TEST(RramHfoxIbm, ReadNoiseMatchesOneOverFFit) {
  const auto noisy = make("rram-hfox-ibm", 90 * kUs);
  const auto quiet = make("rram-hfox-ibm", 90 * kUs, {{"read_noise_scale", 0.0}});
  for (double g_us : {10.0, 80.0}) {
    core::RandomStream rng(64, "programming", {static_cast<std::uint64_t>(g_us)});
    const devices::ProgrammedArray p = noisy->program(constant_row(g_us * kUs), rng);
    for (double t : {3600.0, 86400.0}) {
      core::RandomStream read_rng(64, "read", {static_cast<std::uint64_t>(t)});
      const Eigen::MatrixXd g = noisy->read_conductance(p, t, read_rng);
      core::RandomStream unused(64, "unused");
      const Eigen::MatrixXd relaxed = quiet->read_conductance(p, t, unused);
      std::vector<double> z(kN);
      for (int k = 0; k < kN; ++k) {
        const double sigma_us =
            0.0277316483 * std::log10(relaxed(0, k) / kUs) * std::sqrt(std::log((t + 1e-6) / (2e-6)));
        z[k] = (g(0, k) - relaxed(0, k)) / kUs / sigma_us;
      }
      expect_standard_normal(z, "rram-hfox-ibm g=" + std::to_string(g_us) + " uS t=" + std::to_string(t) +
                                    " s standardized read noise");
    }
  }
}

TEST(RramHfoxIbm, ReadNoiseIsFreshPerReadAndSeedReproducible) {
  const auto device = make("rram-hfox-ibm", 90 * kUs);
  const Eigen::MatrixXd target = Eigen::MatrixXd::Constant(30, 30, 40 * kUs);
  core::RandomStream a(65, "programming"), b(65, "programming"), other(66, "programming");
  const devices::ProgrammedArray pa = device->program(target, a);
  const devices::ProgrammedArray pb = device->program(target, b);
  const devices::ProgrammedArray po = device->program(target, other);
  EXPECT_EQ(pa.g_programmed, pb.g_programmed);
  EXPECT_EQ(pa.cell_state, pb.cell_state);
  EXPECT_TRUE((pa.g_programmed.array() != po.g_programmed.array()).all());
  core::RandomStream r1(65, "read", {1}), r1_again(65, "read", {1}), r2(65, "read", {2});
  const Eigen::MatrixXd g1 = device->read_conductance(pa, 3600.0, r1);
  EXPECT_EQ(g1, device->read_conductance(pa, 3600.0, r1_again));
  EXPECT_TRUE((g1.array() != device->read_conductance(pa, 3600.0, r2).array()).all());
}

// ------------------------------------------------------------------------------------------
// Every statistical model

TEST(StatisticalDevices, ClampingNeverProducesNegativeConductance) {
  // Targets at and near 0 with noise scaled up, so that the unclamped draws are often negative.
  struct Case {
    std::string model;
    std::map<std::string, core::CardValue> overrides;
  };
  const std::vector<Case> cases = {
      {"pcm-joshi2020", {{"prog_noise_scale", 5.0}, {"read_noise_scale", 5.0}}},
      {"pcm-hermes2023", {{"prog_noise_scale", 5.0}, {"read_noise_scale", 5.0}}},
      {"rram-wan2022", {{"noise_scale", 5.0}}},
      {"rram-hfox-ibm", {{"prog_noise_scale", 50.0}, {"drift_scale", 5.0}, {"read_noise_scale", 50.0}}},
  };
  for (const Case& c : cases) {
    const double g_max = 25 * kUs;
    const auto device = make(c.model, g_max, c.overrides);
    Eigen::MatrixXd target(50, 40);
    for (Eigen::Index k = 0; k < target.size(); ++k) target.data()[k] = (k % 4) * 0.01 * g_max;
    core::RandomStream rng(71, "programming");
    const devices::ProgrammedArray p = device->program(target, rng);
    EXPECT_GE(p.g_programmed.minCoeff(), 0.0) << c.model;
    EXPECT_TRUE(p.g_programmed.allFinite()) << c.model;
    int zeros = 0;
    for (double t : {0.0, 1.0, 3600.0, 86400.0, 1e7}) {
      core::RandomStream read_rng(71, "read", {static_cast<std::uint64_t>(t)});
      const Eigen::MatrixXd g = device->read_conductance(p, t, read_rng);
      EXPECT_TRUE(g.allFinite()) << c.model << " t=" << t;
      EXPECT_GE(g.minCoeff(), 0.0) << c.model << " t=" << t;
      zeros += static_cast<int>((g.array() == 0.0).count());
    }
    EXPECT_GT(zeros, 0) << c.model << ": the clamp was never exercised";
  }
}

TEST(StatisticalDevices, CardChoicesSelectBandAndCellIv) {
  const auto& registry = devices::builtin_devices();
  const auto load = [&](const std::string& model, const std::vector<std::string>& overrides) {
    const std::string text = "seed: 1\n"
                             "tile: {rows: 2, cols: 2, wires: {r_wl_segment: 1, r_bl_segment: 1, r_source: 0, "
                             "r_sense: 0}}\n"
                             "device: {model: " + model + ", g_min: 10.0e-6, g_max: 90.0e-6}\n"
                             "dac: {bits: 0, v_read: 0.2}\nadc: {bits: 0}\nmapping: {scheme: differential}\n"
                             "solver: {method: direct}\nworkload: {read_times: [0]}\n";
    return core::load_card_text(text, model + ".yaml", overrides, registry.param_lookup(), registry.names());
  };
  for (const std::string model : {"pcm-joshi2020", "pcm-hermes2023", "rram-wan2022", "rram-hfox-ibm"}) {
    EXPECT_EQ(registry.create(load(model, {}).device)->iv(), nullptr) << model << ": linear by default";
    const auto nonlinear = registry.create(load(model, {"device.iv=polynomial"}).device);
    ASSERT_NE(nonlinear->iv(), nullptr) << model;
    EXPECT_DOUBLE_EQ(nonlinear->iv()->max_voltage(), 0.5) << model;
  }
  // The 0.2 % band programs ten times tighter than the 2 % band.
  const auto narrow = registry.create(load("rram-hfox-ibm", {"device.verify_band=0.2%"}).device);
  const auto wide = registry.create(load("rram-hfox-ibm", {"device.verify_band=2%"}).device);
  const Eigen::MatrixXd target = Eigen::MatrixXd::Constant(100, 100, 50 * kUs);
  core::RandomStream a(81, "programming"), b(81, "programming");
  const double spread_narrow = (narrow->program(target, a).g_programmed.array() - 50 * kUs).abs().mean();
  const double spread_wide = (wide->program(target, b).g_programmed.array() - 50 * kUs).abs().mean();
  EXPECT_NEAR(spread_wide / spread_narrow, hfox_prog_sigma_us("2%", 50) / hfox_prog_sigma_us("0.2%", 50), 1e-9);
}

}  // namespace
