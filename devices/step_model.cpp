// The fitted state-dependent step model, `rram-step` (equations in step_model.hpp).
//
// MODEL. The state is the conductance G (S). The n-th pulse (n = 0, 1, ...) of a run of pulses in
// the same direction changes it by
//   SET   (up):   dG = d_up   · r_up(n)   · m_up(G)   + s_up(G)   · N(0, 1)
//   RESET (down): dG = d_down · r_down(n) · m_down(G) + s_down(G) · N(0, 1)
// and G is clamped to [g_min, g_max] afterwards. m (mean step) and s (cycle-to-cycle spread) are
// piecewise-linear tables over the conductance nodes g_nodes, constant beyond the first and last
// node. d_up and d_down are device-to-device factors on the mean step, lognormal with median 1 and
// log-std d2d_sigma_up / d2d_sigma_down, drawn once per device in initial_state (both always drawn,
// up first). The spread s is not scaled by the factor.
// Cycle ageing: a device at cycle c draws its factors with median exp(up_ageing · c) and
// exp(down_ageing · c) instead of 1 (ln d = ageing · c + d2d_sigma · N(0, 1)); cycle 0 is the
// reference cycle the tables describe. The measured TaOx ramps are the cycles of one device; seen
// without the window drift below, each SET ramp's factor drifts down over them (about +3 % in the
// first ramps, −3 % by ramp 27 of the fitting split), and a stationary factor would put that drift
// into d2d_sigma and centre later cycles too high; with the window drift, which explains the same
// slow-down by the compression of the top of the window, no ageing is significant. A fitted card counts cycles as the ramp ids (so cycle 0 is just before ramp 1);
// replay_ramps starts ramp k at cycle ramps[k].id, and a fresh device from initial_state() (every
// cell a tile programs) is at the card's device.cycle (default 0: the reference cycle, i.e. a
// freshly programmed tile behaves like the device at the start of the fitted measurement; set it
// to the number of cycles the device has been through to age it). Ageing 0 turns it off (default).
// Refinement demanded by the data: the reversal transient r(n) = 1 − depth · exp(−n / decay). In
// the measured TaOx ramps the first pulses after a change of direction move G much less than
// later pulses at the same conductance (the first SET pulse about 0.16×, the first RESET pulse
// about 0.5× the table value, recovering within about ten pulses, in every ramp); without it the
// state tables alone run ahead of the measured ramps by 2-6 standard deviations of the simulated
// ramps over the first twenty pulses. It keeps the model a state model: the state is (G, direction of the last pulse,
// pulses since the last reversal), and a fresh device counts as just reversed. depth = 0 turns it
// off (the card's default).
// Pulse amplitude and width are not modelled: any positive voltage is one SET pulse, any negative
// one a RESET pulse, a zero voltage does nothing and draws nothing.
// Window drift. A cycled device's window moves: the turning points of the measured TaOx ramps
// climb from cycle to cycle (fitting split: the bottom by 1.17 µS per cycle, the top by 0.62 µS),
// and at the same pulse count of a ramp the conductance climbs by about 1.2 µS per cycle over the
// lower two thirds of the window and by 0.7-0.9 µS near the top, where the steps (SET and RESET)
// shrink by about 0.2 % per cycle while those in the lower part keep their size. The model: a
// device at cycle c is the reference device (cycle 0) seen through the map of the reference
// window onto the window of cycle c that moves a reference conductance at window fraction x by
// c (low + (high − low) x²) (WindowMap in the header): the bottom shifts rigidly (no stretch at
// x = 0) and the window stretches or compresses progressively towards the top (local stretch
// 1 + 2 c (high − low) x / W). At conductance G it steps as the reference device at the reference
// conductance G_ref, the step (mean and spread) times the local stretch at G_ref, clamped to the
// window of cycle c; its read noise is the table's at G_ref times the stretch. Why this form: an
// affine map (uniform stretch) shrinks the steps at the bottom as much as at the top, against the
// data, and scores lower on the fitting ramps (2 Δln L 23 against none, the quadratic 32, at the
// same turning-point drifts); a pure shift cannot move the top and the bottom differently. The
// drift replaces the cycle ageing on the TaOx ramps (with it, the ageing terms are no longer
// significant). window_drift_low = window_drift_high = 0 turns it off (the card's default).
// CellState: [0] G, [1] d_up, [2] d_down, [3] direction of the last pulse (+1, −1, 0 when fresh),
// [4] pulses in that direction since the last reversal, [5] the device's cycle (window drift).
// Read noise. G is the device's hidden state; a read measures it with noise:
//   read_k = G_k + σ_read(G_k) · N(0, 1), independent for every read, the state unchanged,
// σ_read a piecewise-linear table over g_nodes (empty or all 0: no read noise; the card's
// read_noise_std holds one value or one per node). A measured step read_{k+1} − read_k is then
// the intrinsic step plus n_{k+1} − n_k: its variance is s(G)² + σ_read(G_k)² + σ_read(G_{k+1})²,
// and consecutive measured steps share a read, so cov(ΔG_k, ΔG_{k+1}) = −σ_read(G_{k+1})² (an
// MA(1) process on top of the steps). With read noise, up_std / down_std are the intrinsic
// spreads. The measured TaOx ramps need it: their consecutive step residuals correlate at −0.2 to
// −0.35 in every conductance range and both directions (σ_read ≈ 0.3 µS, about half of the
// measured-step variance), and the Gong et al. pulse response is dominated by it (−0.44).
// StepDevice::read draws it (nothing is drawn when the model has none); the tile's reads
// (Device::read_conductance) and the replays of measured ramps (replay_ramps) use it.
//
// CARD (`rram-step`, keys under `device.`). The tables are relative to the card's window: g_nodes
// as fractions of [g_min, g_max] (0 first, 1 last, increasing) and the step tables in units of
// the window (g_max − g_min) per pulse; step_params_from() converts them to siemens. The defaults
// are uncalibrated but plausible for an analog filamentary RRAM with soft bounds: SET steps of
// 3 % of the window at g_min shrinking to 0.3 % at g_max, RESET steps mirrored (growing in
// magnitude towards g_max), a cycle-to-cycle spread of a third of the mean step, 10 %
// device-to-device variation, no reversal transient, no cycle ageing, no read noise and
// device.cycle 0. Fitted parameters replace them (device.cycle is not fitted: it is where the card
// uses the model).
//
// PROGRAMMING (Device::program). Every cell starts as a fresh device (own factors) in the RESET
// state at g_min and is written by write_verify (write_verify.cpp) to its target; only the sign
// of the write-verify pulses matters to this model, so the amplitude keys keep their generic
// values and are ignored. Cells run in parallel on TBB, each with its own stream
// rng.derive("cell", {i * C + j}), so results do not depend on the thread count. Write-verify
// defaults of this model: the generic ±1 uS band and no verify-read noise, with a budget of 300
// pulses (climbing the whole window takes about 90 SET pulses with the default tables); the
// verify reads keep write_verify.read_noise_rel (write_verify.cpp reads the hidden state), not
// the model's read noise. Tile reads (read_conductance) return the programmed conductance plus
// fresh read noise per cell and read (row-major draws from the read's stream, clamped at 0 S); the
// model has no conductance drift over time. A tile is programmed at the card's device.cycle: its
// cells start at the bottom of that cycle's window (the targets themselves are the mapping's, so a
// drifted window that no longer covers [g_min, g_max] leaves some cells short of their target).
//
// FIT (fit_step_model), each direction on its own ramps (SET ramps: up tables, RESET: down):
//  (0) Window drift, when every direction has ramps at 3 or more distinct cycles (ids). Estimate:
//      the turning points of a ramp experiment are the window's ends (each ramp runs from near one
//      end to near the other), so the drift of the bottom is the least-squares slope over the
//      cycles of the SET ramps' first reads and the RESET ramps' last reads (one intercept each,
//      a common slope), that of the top the same of the RESET ramps' first and the SET ramps' last
//      reads; low and high of the map then follow from those two drifts at the observed extremes
//      lo and hi (the window is [lo, hi] widened as in (7)). Test: the negative log-likelihood of
//      the steps of both directions with the drift (ramps mapped to the reference frame, tables
//      and factors fitted with the ageing trend, the reversal transient and the glitch marks of the
//      fit without drift, plus the factors' random-effects term of (4b) and the map's Jacobian,
//      Σ ln stretch over the steps) must beat the same without drift by more than χ²₂ at p = 0.001
//      (2 Δ ln L > 13.8); then (1)-(8) run on the ramps in the reference frame. The estimate is not
//      the likelihood's maximum (that surface is rugged: states cross bin edges as the drift
//      changes), so the test is conservative. TaOx fitting split: 2 Δ ln L = 32; synthetic ramps
//      without drift keep none, with a known drift recover it (tests). The Gong et al. pulse
//      response, one pulse train cut into segments, keeps none.
//  (1) Steps. Per ramp k, the steps dG_i = g[i+1] − g[i] (differences of reads), with n = i: a
//      pulse-ramp experiment alternates SET and RESET ramps, so every ramp starts right after a
//      reversal and its i-th step is the i-th pulse since that reversal. The state a step starts
//      from (its bin, and the regressor of the in-bin line of (3)) is estimated as
//      g[i−1] + (g[last] − g[0]) / last, the read before the previous pulse plus the ramp's average
//      step, not as the read g[i]: g[i] holds the read noise n_i that dG_i = g[i+1] − g[i]
//      subtracts, so the mean of dG_i given g[i] is biased by −E[n_i | g[i]] (errors in variables:
//      the step after a read that came out high falls back, and the in-bin slope steepens by about
//      −σ_read² / var(states in the bin)), which wrecked the mean tables of the read-noise dominated
//      Gong et al. pulse response. n_{i−1} is independent of dG_i, and the average step shares
//      noise with dG_i only through the ramp's first and last reads. The first step of a ramp
//      starts from g[0].
//  (2) Bins. The observed range [lo, hi] (min and max of every conductance of every ramp, both
//      directions) is cut into `bins` equal-width bins shared by both directions; a step belongs
//      to the bin of its starting state. Fewer than 10 steps of a direction in any bin is a
//      UserError that suggests fewer bins.
//  (3) Tables, given the ramp factors f_k and the transient r. Per bin b (centre c_b), least
//      squares of dG = f_k r(n) (a_b + t_b (g − c_b)) over the bin's steps: a_b is the mean step
//      at the bin centre (the in-bin slope t_b only removes the bias of an uneven spread of states
//      inside the bin) and s_b² the variance of the residuals: the maximum-likelihood Gaussian of
//      the bin's steps with each ramp's factor divided out of the mean part, Σ residual² /
//      (n_b − 2) (two fitted coefficients), here too taken at the bin centre from a straight line
//      through the squared residuals (kept within [1/4, 4] times the pooled value, which it falls
//      back to). Table nodes: the bin centres, extended with constant values to g_min and g_max (7).
//  (4) Device-to-device factors, given the tables. Per ramp, the weighted least-squares ratio of
//      its steps to the population mean at the same states and pulse counts,
//      d̂_k = Σ w x_i dG_i / Σ w x_i², x_i = r(n_i) m(g_i), w = 1/s(g_i)² (a ramp-level regression
//      through the origin), whose sampling variance from cycle-to-cycle noise alone is
//      v_k = 1 / Σ w x_i² (s the spread of the measured steps). With read noise (8) it is
//      Var(Σ c_i dG_i) / (Σ w x_i²)², c_i = w x_i: Σ c_i² s_int(g_i)² from the intrinsic steps plus
//      Σ_j σ_read(y_j)² (c_{j−1} − c_j)² from the reads y_j (a read enters two consecutive steps with
//      opposite signs, so its noise largely cancels in a ramp's mean step). With l_k = ln d̂_k
//      and its sampling variance u_k = v_k / d̂_k² (delta
//      method), the log-std of the true factors is the method-of-moments random-effects estimate
//      d2d_sigma² = max(0, var(l) − mean(u)): the spread of the log factors minus what
//      cycle-to-cycle noise alone produces, so pure cycle-to-cycle noise does not show up as
//      device-to-device variation. (When the ramps are cycles of one device, as the TaOx ones are,
//      this is ramp-to-ramp variation, and a replay draws it per ramp.) The factors used in (3)
//      are centred on their mean log (the
//      tables describe the median device) and shrunk towards 1 (empirical Bayes,
//      f_k = exp(l_k d2d_sigma² / (d2d_sigma² + u_k))). Ramps whose d̂_k is not positive keep
//      f_k = 1 and stay out of the variance. (3) and (4) alternate from f_k = 1 until the factors
//      change by less than 1e-10 (at most 100 rounds).
//  (4b) Cycle ageing. With the trend, the log factors are regressed on the ramps' cycles c_k (their
//      ids) by ordinary least squares, l_k = b + a c_k + e_k, and the same sampling-noise
//      correction gives the spread around the trend: d2d_sigma² = max(0, Σ e_k² / (K − 2) −
//      mean(u)) over the K informative ramps. The tables take the factors
//      f_k = exp(a c_k + e_k d2d_sigma² / (d2d_sigma² + u_k)) (centred on the intercept: they
//      describe the median device at cycle 0), and ageing = a. Test: the whole fit (2)-(6) is run
//      with the trend; on its final l_k, u_k the Gaussian random-effects log-likelihood
//      l_k ~ N(b + a c_k, tau² + u_k), maximised over (b, a, tau) and over (b, tau) with a = 0
//      (weighted least squares for b, a at each tau; tau by golden section), must gain more than
//      5.41 (a likelihood-ratio test for one parameter at p = 0.001, 2 Δ ln L > 10.83); otherwise
//      the whole fit is rerun without the trend (ageing 0, exactly the stationary fit). On the
//      TaOx fitting split without the window drift of (0): SET a = −0.0021 per cycle (2 Δ ln L =
//      28), RESET −0.0012 (19.5), both kept; in the window's reference frame neither is. Synthetic
//      ramps without ageing keep none (tests).
//  (5) Glitches. With no transient, steps further than 4 spreads from their bin's mean are
//      marked as glitches and left out of (3), (4) and (6); (3)-(5) repeat until the marks
//      settle. The TaOx ramps hold isolated read glitches (one point 5-10 uS off: a pair of
//      opposite steps of 10-20 spreads) that would inflate the spreads of their bins by up to
//      70 %; for Gaussian steps the cut removes 6e-5 of them and biases a spread by < 0.1 %.
//  (6) Reversal transient. Profile likelihood over (depth, decay): at each point (3)-(4) are
//      refitted and scored by the Gaussian log-likelihood maximised over the tables,
//      −Σ_b (n_b / 2) ln(SS_b / n_b). Decay on a log grid of 17 points over [0.05, 20] pulses,
//      refined by golden section between the best point's neighbours, depth in [−1, 1] by golden
//      section at each decay. The transient is kept only if it raises the log-likelihood by more
//      than 6.91 (a likelihood-ratio test for its two parameters at p = 0.001; the TaOx ramps give
//      gains of 60-180, synthetic ramps without a transient a few units). Why at most 20 pulses: a
//      slower transient cannot be told apart from the state dependence in ramps that all start
//      near the same conductance (an exponential over the whole ramp trades off against the
//      tables along a flat ridge of the likelihood); the transient is meant for the first pulses
//      after a reversal and the tables for the rest.
//  (7) Bounds: the observed range (of the measured ramps, before the map of (0)) widened by 5 % of
//      itself on each side. Ramps end where the
//      measurement stopped, not where the device saturates (in the TaOx data the steps are still
//      large at both ends), and the turning points drift from cycle to cycle (by 1-1.5 uS per
//      cycle in the fitting split), so clamping at the observed extremes would distort ramps that
//      start or end slightly outside them.
//  (8) Read noise, shared by both directions (it is the read of the device's state, whatever the
//      last pulse). Estimate: after (1)-(6), the residuals r_i = dG_i − f_k r(n_i) (a_b + t_b
//      (g_i − c_b)) of consecutive inlier steps of a ramp share the read y_{i+1}; for independent
//      read noise on independent intrinsic steps E[r_i r_{i+1}] = −σ_read(y_{i+1})², so
//      σ_read² = −mean(r_i r_{i+1}) (the lag-1 autocovariance, method of moments; negative values
//      give 0), over every pair (a constant) or over the pairs whose shared read lies in each
//      conductance bin (a per-bin table at the bin centres). Intrinsic spreads: the measured-step
//      spread s of (3) less the two reads, s_int² = max(0, s² − 2 σ_read(c_b)²). Test: the exact
//      Gaussian log-likelihood of the residuals, each run of consecutive inlier steps of a ramp a
//      Gaussian vector with the MA(1) covariance (diagonal s_int(g_i)² + σ²(y_i) + σ²(y_{i+1}),
//      −σ²(y_{i+1}) between neighbours; tridiagonal LDLᵀ), is compared between none (independent
//      steps of variance s²), the constant and the per-bin table, all at the moment estimates
//      (so the gains are, if anything, below the maximised ones: conservative). Nested models,
//      likelihood-ratio tests at p = 0.001 (χ² quantiles): the per-bin table when it beats the
//      constant (bins − 1 degrees of freedom) and none (bins), else the constant when it beats
//      none (1), else no read noise (the fit of (1)-(6) as it is). Refinement when kept: (1)-(6)
//      are refitted with the read noise in the factor variances of (4), and σ_read re-estimated
//      from the new residuals in the same form, until it changes by less than 1 % (below its
//      sampling error; at most 10 rounds). The moment estimate assumes intrinsic steps that are
//      uncorrelated from pulse to pulse; a positive lag-1 correlation of the intrinsic steps
//      would bias σ_read low. On the TaOx fitting split: constant σ_read = 0.30 µS from 9170
//      pairs, 2 Δ ln L = 1070 against none; the per-bin table gains 24.7 (< 27.9) and is not
//      kept; the intrinsic spreads are 0.5-0.8 times the measured-step spreads of the fit
//      without it. (The intrinsic steps there are not white either: about a smooth trend per
//      ramp they correlate positively at most lags from 3 to 15, by up to 0.09 of their
//      variance, a slow wander of the step size within a ramp that the model does not have.)
// Only the ramps passed in are read: the caller passes the fitting split.
#include "devices/step_model.hpp"

#include <boost/math/distributions/chi_squared.hpp>
#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <tuple>
#include <utility>

#include "core/error.hpp"
#include "devices/models.hpp"

namespace xbar::devices {
namespace {

constexpr int kMinStepsPerBin = 10;     // fewer steps of a direction in a bin: the fit refuses
constexpr int kMaxFitRounds = 100;      // rounds of (3)-(4), and of the glitch marking
constexpr double kFactorTolerance = 1e-10;
constexpr double kOutlierSigmas = 4.0;  // (5): steps further than this many spreads are glitches
constexpr int kDecayGrid = 16;          // (6): log-spaced decay intervals scanned
constexpr double kDecayMin = 0.05;      // (6): pulses, fastest transient considered
constexpr double kDecayMax = 20.0;      // (6): pulses, slowest transient considered
constexpr double kTransientMinGain = 6.91;  // (6): log-likelihood gain a transient must bring (chi2_2, p = 0.001)
constexpr double kAgeingMinGain = 5.41;  // (4b): log-likelihood gain the ageing trend must bring (chi2_1, p = 0.001)
constexpr double kBoundMargin = 0.05;   // (7): bounds beyond the observed range, share of the range
constexpr double kReadNoiseLevel = 0.001;  // (8): p-value of the likelihood-ratio tests of the read noise
constexpr int kReadNoiseRounds = 10;       // (8): refits with the read noise, at most
constexpr double kReadNoiseTolerance = 1e-2;  // (8): relative change of σ_read that ends them

// Upper p-quantile (p = kReadNoiseLevel) of χ² with `dof` degrees of freedom: twice the
// log-likelihood gain a term of `dof` parameters must exceed.
double chi2_critical(int dof) {
  return boost::math::quantile(boost::math::complement(boost::math::chi_squared(dof), kReadNoiseLevel));
}

// Piecewise-linear interpolation of `values` over increasing `nodes`, constant beyond the ends.
double interpolate(const std::vector<double>& nodes, const std::vector<double>& values, double g) {
  const std::size_t n = nodes.size();
  if (n == 0) return 0;
  if (g <= nodes.front()) return values.front();
  if (g >= nodes.back()) return values.back();
  const std::size_t hi = static_cast<std::size_t>(std::upper_bound(nodes.begin(), nodes.end(), g) - nodes.begin());
  const std::size_t lo = hi - 1;
  const double t = (g - nodes[lo]) / (nodes[hi] - nodes[lo]);
  return values[lo] + t * (values[hi] - values[lo]);
}

double transient_factor(double depth, double decay, int n) { return 1.0 - depth * std::exp(-n / decay); }


void check_params(const StepModelParams& p) {
  auto fail = [](const std::string& what) { throw core::UserError("step model: " + what); };
  if (!std::isfinite(p.g_min) || !std::isfinite(p.g_max) || !(p.g_max > p.g_min))
    fail(fmt::format("expected g_min < g_max, got g_min = {:g}, g_max = {:g}", p.g_min, p.g_max));
  const std::size_t n = p.g_nodes.size();
  if (n < 1) fail("g_nodes: expected at least one node");
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p.g_nodes[i])) fail(fmt::format("g_nodes[{}]: expected a finite value", i));
    if (i > 0 && !(p.g_nodes[i] > p.g_nodes[i - 1]))
      fail(fmt::format("g_nodes: expected strictly increasing values, got {:g} after {:g}", p.g_nodes[i],
                       p.g_nodes[i - 1]));
  }
  const std::pair<const char*, const std::vector<double>*> tables[] = {
      {"up_mean", &p.up_mean}, {"up_std", &p.up_std}, {"down_mean", &p.down_mean}, {"down_std", &p.down_std}};
  for (const auto& [name, table] : tables) {
    if (table->size() != n)
      fail(fmt::format("{}: expected {} values (as many as g_nodes), got {}", name, n, table->size()));
    for (double v : *table)
      if (!std::isfinite(v)) fail(fmt::format("{}: expected finite values", name));
  }
  for (double v : p.up_std)
    if (v < 0) fail(fmt::format("up_std: expected values >= 0, got {:g}", v));
  for (double v : p.down_std)
    if (v < 0) fail(fmt::format("down_std: expected values >= 0, got {:g}", v));
  if (!p.read_std.empty() && p.read_std.size() != n)
    fail(fmt::format("read_std: expected {} values (as many as g_nodes) or none, got {}", n, p.read_std.size()));
  for (double v : p.read_std)
    if (!std::isfinite(v) || v < 0) fail(fmt::format("read_std: expected finite values >= 0, got {:g}", v));
  for (const auto& [name, depth, decay] : {std::tuple{"up", p.up_reversal_depth, p.up_reversal_decay},
                                           std::tuple{"down", p.down_reversal_depth, p.down_reversal_decay}}) {
    if (!(depth >= -1 && depth <= 1)) fail(fmt::format("{}_reversal_depth: expected in [-1, 1], got {:g}", name, depth));
    if (!(decay > 0) || !std::isfinite(decay))
      fail(fmt::format("{}_reversal_decay: expected > 0 pulses, got {:g}", name, decay));
  }
  for (const auto& [name, value] : {std::pair{"up_ageing", p.up_ageing}, std::pair{"down_ageing", p.down_ageing},
                                    std::pair{"cycle", p.cycle}, std::pair{"window_drift_low", p.window_drift_low},
                                    std::pair{"window_drift_high", p.window_drift_high}})
    if (!std::isfinite(value)) fail(fmt::format("{}: expected a finite value, got {:g}", name, value));
  if (!(p.d2d_sigma_up >= 0) || !(p.d2d_sigma_down >= 0))
    fail(fmt::format("expected d2d sigmas >= 0, got {:g} (up), {:g} (down)", p.d2d_sigma_up, p.d2d_sigma_down));
}

// ---- the fit -------------------------------------------------------------------------------

struct Step {
  int ramp = 0;     // index into the direction's ramp list
  int n = 0;        // pulses since the reversal that started the ramp (the step's index in it)
  double g = 0;     // state before the pulse, estimated as in (1) (not the read: see there)
  double dg = 0;    // step: the difference of the reads after and before the pulse
  double read = 0;  // the read before the pulse
  int bin = 0;      // conductance bin of g
};

// One direction's steps, indexed by bin and by ramp.
struct Problem {
  std::vector<Step> steps;
  std::vector<std::vector<std::size_t>> in_bin, of_ramp;
  std::vector<double> centre;  // bin centres: the nodes of the working tables
  std::vector<double> cycle;   // per ramp: its cycle (the ramp's id)
  std::vector<char> inlier;    // per step: 0 for a glitch left out of the fit
  // (8) Read-noise standard deviation at the bin centres (S), empty for none: only the sampling
  // variances of the ramp factors in (4) use it.
  std::vector<double> read_sd;
};

// Variance of one read of state g under the problem's read noise (0 without it).
double read_variance(const Problem& pb, double g) {
  if (pb.read_sd.empty()) return 0.0;
  const double sd = interpolate(pb.centre, pb.read_sd, g);
  return sd * sd;
}

// The working model of one direction.
struct DirectionFit {
  std::vector<double> mean, spread;  // per bin, at the bin centres (spread: of the measured steps)
  std::vector<double> tilt;          // per bin: the in-bin slope t_b of the mean step (3)
  std::vector<double> factor;        // per ramp (shrunken estimate, median 1)
  double d2d_sigma = 0;
  bool trend = false;                // (4b): whether the ageing trend is fitted
  double ageing = 0;                 // log factor per cycle (0 without the trend)
  std::vector<double> log_factor, log_var;  // per ramp: l_k and u_k of (4); log_var < 0: no estimate
  double depth = 0, decay = 1;       // reversal transient
  double nll = 0;                    // profile negative log-likelihood (up to a constant)
};

// (3) Tables given factors and transient; returns the profile negative log-likelihood
// Σ_b (n_b / 2) ln(SS_b / n_b) of the inliers.
double fit_tables(const Problem& pb, DirectionFit& fit) {
  double nll = 0;
  for (std::size_t b = 0; b < pb.centre.size(); ++b) {
    double s11 = 0, s12 = 0, s22 = 0, r1 = 0, r2 = 0;
    std::size_t count = 0;
    for (std::size_t id : pb.in_bin[b]) {
      if (!pb.inlier[id]) continue;
      const Step& s = pb.steps[id];
      const double x1 = fit.factor[s.ramp] * transient_factor(fit.depth, fit.decay, s.n);
      const double x2 = x1 * (s.g - pb.centre[b]);
      s11 += x1 * x1;
      s12 += x1 * x2;
      s22 += x2 * x2;
      r1 += x1 * s.dg;
      r2 += x2 * s.dg;
      ++count;
    }
    const double det = s11 * s22 - s12 * s12;
    double a = 0, t = 0;
    if (count > 2 && s22 > 0 && det > 1e-12 * s11 * s22) {
      a = (r1 * s22 - r2 * s12) / det;
      t = (s11 * r2 - s12 * r1) / det;
    } else {  // every state of the bin (nearly) the same: no slope
      a = s11 > 0 ? r1 / s11 : 0;
    }
    // Residuals; the spread at the centre from a straight line through the squared residuals
    // (the same in-bin correction as for the mean), with n / (n - 2) for the two coefficients of
    // the mean; the pooled spread when the line is ill-posed or leaves [1/4, 4] times the pooled
    // variance (a bin whose states sit far from its centre).
    double ss = 0, q1 = 0, q2 = 0, u11 = 0, u12 = 0, u22 = 0;
    for (std::size_t id : pb.in_bin[b]) {
      if (!pb.inlier[id]) continue;
      const Step& s = pb.steps[id];
      const double x = s.g - pb.centre[b];
      const double r = s.dg - fit.factor[s.ramp] * transient_factor(fit.depth, fit.decay, s.n) * (a + t * x);
      ss += r * r;
      q1 += r * r;
      q2 += x * r * r;
      u11 += 1;
      u12 += x;
      u22 += x * x;
    }
    const double dof = static_cast<double>(std::max<std::size_t>(count, 3) - 2);
    const double pooled = ss / dof;
    double variance = pooled;
    const double udet = u11 * u22 - u12 * u12;
    if (count > 2 && u22 > 0 && udet > 1e-12 * u11 * u22) {
      const double v0 = (q1 * u22 - q2 * u12) / udet * static_cast<double>(count) / dof;
      if (v0 >= 0.25 * pooled && v0 <= 4 * pooled) variance = v0;
    }
    fit.mean[b] = a;
    fit.tilt[b] = t;
    fit.spread[b] = std::sqrt(variance);
    if (count > 0 && ss > 0) nll += 0.5 * static_cast<double>(count) * std::log(ss / static_cast<double>(count));
  }
  return nll;
}

// (4) Device-to-device factors given tables and transient; returns the largest factor change.
double fit_factors(const Problem& pb, DirectionFit& fit) {
  const std::size_t ramps = pb.of_ramp.size();
  std::vector<double> log_factor(ramps, 0.0), log_var(ramps, -1.0);  // -1: no estimate
  double sum_log = 0, sum_var = 0;
  std::size_t informative = 0;
  for (std::size_t k = 0; k < ramps; ++k) {
    // d̂ = Σ c_i dG_i / a with c_i = w_i x_i (0 for a glitch) and a = Σ w_i x_i². Its sampling
    // variance is Var(Σ c_i dG_i) / a²: each step's intrinsic variance, plus each read's variance
    // times the square of the difference of the coefficients of the two steps sharing it (a
    // measured step is the difference of two reads: read noise telescopes). Without read noise
    // (and w = 1 / s²) this is 1 / a.
    double a = 0, bsum = 0, variance = 0, previous_c = 0, last_read = 0;
    for (std::size_t id : pb.of_ramp[k]) {  // the ramp's steps in pulse order
      const Step& s = pb.steps[id];
      const double read_start = read_variance(pb, s.read);
      last_read = read_variance(pb, s.read + s.dg);
      double c = 0;
      if (pb.inlier[id]) {
        const double x = transient_factor(fit.depth, fit.decay, s.n) * interpolate(pb.centre, fit.mean, s.g);
        const double sd = interpolate(pb.centre, fit.spread, s.g);
        const double w = sd > 0 ? 1.0 / (sd * sd) : 0.0;
        c = w * x;
        a += w * x * x;
        bsum += w * x * s.dg;
        variance += c * c * std::max(0.0, sd * sd - read_start - last_read);
      }
      variance += read_start * (previous_c - c) * (previous_c - c);
      previous_c = c;
    }
    variance += last_read * previous_c * previous_c;
    if (!(a > 0)) continue;
    const double d = bsum / a;
    if (!(d > 0)) continue;
    log_factor[k] = std::log(d);
    log_var[k] = pb.read_sd.empty() ? 1.0 / (a * d * d) : variance / (a * a * d * d);
    sum_log += log_factor[k];
    sum_var += log_var[k];
    ++informative;
  }
  // The trend l = b + a c (a = 0 without it) by ordinary least squares over the informative ramps,
  // and the random-effects variance around it with the sampling-noise correction.
  double sigma2 = 0, intercept = 0, slope = 0;
  const bool trend = fit.trend && informative >= 3;
  if (informative >= 2) {
    const double count = static_cast<double>(informative);
    double mean_c = 0;
    for (std::size_t k = 0; k < ramps; ++k)
      if (log_var[k] >= 0) mean_c += pb.cycle[k] / count;
    const double mean_l = sum_log / count;
    if (trend) {
      double sxx = 0, sxy = 0;
      for (std::size_t k = 0; k < ramps; ++k)
        if (log_var[k] >= 0) {
          sxx += (pb.cycle[k] - mean_c) * (pb.cycle[k] - mean_c);
          sxy += (pb.cycle[k] - mean_c) * (log_factor[k] - mean_l);
        }
      slope = sxx > 0 ? sxy / sxx : 0.0;
    }
    intercept = mean_l - slope * mean_c;
    double var = 0;
    for (std::size_t k = 0; k < ramps; ++k)
      if (log_var[k] >= 0) {
        const double r = log_factor[k] - intercept - slope * pb.cycle[k];
        var += r * r;
      }
    var /= count - (trend ? 2.0 : 1.0);
    sigma2 = std::max(0.0, var - sum_var / count);
  }
  double change = 0;
  for (std::size_t k = 0; k < ramps; ++k) {
    const double trend_log = slope * pb.cycle[k];
    double f = std::exp(trend_log);
    if (log_var[k] >= 0 && sigma2 > 0)
      f = std::exp(trend_log + (log_factor[k] - intercept - trend_log) * sigma2 / (sigma2 + log_var[k]));
    change = std::max(change, std::abs(f - fit.factor[k]));
    fit.factor[k] = f;
  }
  fit.d2d_sigma = std::sqrt(sigma2);
  fit.ageing = slope;
  fit.log_factor = std::move(log_factor);
  fit.log_var = std::move(log_var);
  return change;
}

// (3) and (4) alternated for a fixed transient, warm-started from `fit`; sets and returns fit.nll.
double fit_given_transient(const Problem& pb, DirectionFit& fit) {
  for (int round = 0; round < kMaxFitRounds; ++round) {
    fit_tables(pb, fit);
    if (fit_factors(pb, fit) < kFactorTolerance) break;
  }
  fit.nll = fit_tables(pb, fit);
  return fit.nll;
}

// (5) Marks the steps further than kOutlierSigmas spreads from their bin's mean as glitches;
// returns whether any mark changed.
bool mark_glitches(Problem& pb, const DirectionFit& fit) {
  bool changed = false;
  for (std::size_t b = 0; b < pb.centre.size(); ++b)
    for (std::size_t id : pb.in_bin[b]) {
      const Step& s = pb.steps[id];
      const double mean =
          fit.factor[s.ramp] * transient_factor(fit.depth, fit.decay, s.n) * interpolate(pb.centre, fit.mean, s.g);
      const char keep = std::abs(s.dg - mean) <= kOutlierSigmas * fit.spread[b] ? 1 : 0;
      changed = changed || keep != pb.inlier[id];
      pb.inlier[id] = keep;
    }
  return changed;
}

// Golden-section search for a minimum of f over [a, b], to width `tol`.
template <class F>
double golden_min(F&& f, double a, double b, double tol) {
  const double phi = 0.5 * (std::sqrt(5.0) - 1.0);
  double c = b - phi * (b - a), d = a + phi * (b - a), fc = f(c), fd = f(d);
  while (b - a > tol) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - phi * (b - a), fc = f(c);
    } else {
      a = c, c = d, fc = fd, d = a + phi * (b - a), fd = f(d);
    }
  }
  return 0.5 * (a + b);
}

// (4b) The maximised Gaussian log-likelihood of the ramps' log factors under the random-effects
// model l_k ~ N(b + a c_k, tau² + u_k) (a = 0 unless `slope`): b and a by weighted least squares at
// each tau, tau by golden section over [0, 3 sd(l)] (and the end point 0).
double factor_log_likelihood(const DirectionFit& fit, const std::vector<double>& cycle, bool slope) {
  std::vector<double> l, u, c;
  for (std::size_t k = 0; k < fit.log_var.size(); ++k)
    if (fit.log_var[k] >= 0) l.push_back(fit.log_factor[k]), u.push_back(fit.log_var[k]), c.push_back(cycle[k]);
  const std::size_t n = l.size();
  if (n < 3) return 0;
  auto loglik = [&](double tau) {
    double sw = 0, swc = 0, swl = 0, swcc = 0, swcl = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double w = 1.0 / (tau * tau + u[k]);
      sw += w, swc += w * c[k], swl += w * l[k], swcc += w * c[k] * c[k], swcl += w * c[k] * l[k];
    }
    double a = 0;
    const double det = sw * swcc - swc * swc;
    if (slope && det > 1e-12 * sw * swcc) a = (sw * swcl - swc * swl) / det;
    const double b = (swl - a * swc) / sw;
    double ll = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double v = tau * tau + u[k], r = l[k] - b - a * c[k];
      ll -= 0.5 * (std::log(v) + r * r / v);
    }
    return ll;
  };
  double mean = 0, var = 0;
  for (double x : l) mean += x / static_cast<double>(n);
  for (double x : l) var += (x - mean) * (x - mean) / static_cast<double>(n - 1);
  const double top = 3 * std::sqrt(var) + 1e-12;
  const double tau = golden_min([&](double t) { return -loglik(t); }, 0.0, top, 1e-6 * top);
  return std::max(loglik(tau), loglik(0.0));
}

// One direction's fit and the problem it was fitted on (its steps and glitch marks).
struct DirectionResult {
  DirectionFit fit;
  Problem problem;
};

// The fitted mean of step `id`: the in-bin line of (3) with the ramp's factor and the transient.
double predicted_step(const Problem& pb, const DirectionFit& fit, std::size_t id) {
  const Step& s = pb.steps[id];
  return fit.factor[s.ramp] * transient_factor(fit.depth, fit.decay, s.n) *
         (fit.mean[s.bin] + fit.tilt[s.bin] * (s.g - pb.centre[s.bin]));
}

// (1)-(2) One direction's steps in `bins` bins over [lo, hi], every step an inlier; the read noise
// `read_sd` (per bin, S; empty for none) for the factors' sampling variances.
Problem make_problem(const std::vector<Ramp>& ramps, const char* name, double lo, double hi, int bins,
                     const std::vector<double>& read_sd) {
  const double width = (hi - lo) / bins;
  auto bin_of = [&](double g) { return std::clamp(static_cast<int>((g - lo) / width), 0, bins - 1); };
  Problem pb;
  pb.read_sd = read_sd;
  pb.centre.resize(bins);
  for (int b = 0; b < bins; ++b) pb.centre[b] = lo + (b + 0.5) * width;

  // (1) steps, indexed by bin and by ramp.
  pb.in_bin.resize(bins);
  pb.of_ramp.resize(ramps.size());
  for (const Ramp& ramp : ramps) pb.cycle.push_back(static_cast<double>(ramp.id));
  for (std::size_t k = 0; k < ramps.size(); ++k) {
    const std::vector<double>& g = ramps[k].g;
    // (1) The state of step i >= 1: the read before the previous pulse plus the ramp's average step.
    const double average_step = g.size() > 1 ? (g.back() - g.front()) / static_cast<double>(g.size() - 1) : 0.0;
    for (std::size_t i = 0; i + 1 < g.size(); ++i) {
      const double state = i == 0 ? g[0] : g[i - 1] + average_step;
      const int bin = bin_of(state);
      pb.in_bin[bin].push_back(pb.steps.size());
      pb.of_ramp[k].push_back(pb.steps.size());
      pb.steps.push_back({static_cast<int>(k), static_cast<int>(i), state, g[i + 1] - g[i], g[i], bin});
    }
  }
  pb.inlier.assign(pb.steps.size(), 1);
  // (2) enough data in every bin.
  for (int b = 0; b < bins; ++b)
    if (static_cast<int>(pb.in_bin[b].size()) < kMinStepsPerBin)
      throw core::UserError(fmt::format(
          "fit_step_model: {} {} step(s) start in conductance bin {} of {} ([{:g}, {:g}]); at least {} per bin are "
          "needed: use fewer bins",
          pb.in_bin[b].size(), name, b + 1, bins, lo + b * width, lo + (b + 1) * width, kMinStepsPerBin));
  return pb;
}

// The starting point of a direction's fit: no transient, every factor 1.
DirectionFit fresh_fit(int bins, std::size_t ramps, bool trend) {
  DirectionFit fit;
  fit.mean.assign(bins, 0);
  fit.tilt.assign(bins, 0);
  fit.spread.assign(bins, 0);
  fit.factor.assign(ramps, 1.0);
  fit.trend = trend;
  return fit;
}

// Steps (1) to (6) of the method above for one direction, with the ageing trend of (4b) fitted
// when `trend` and the read noise `read_sd` (per bin, S; empty for none) in the factors' sampling
// variances.
DirectionResult fit_direction_with(const std::vector<Ramp>& ramps, const char* name, double lo, double hi, int bins,
                                   bool trend, const std::vector<double>& read_sd) {
  Problem pb = make_problem(ramps, name, lo, hi, bins, read_sd);
  DirectionFit fit = fresh_fit(bins, ramps.size(), trend);

  // (5) glitches, without a transient: mark and refit until the marks settle.
  for (int round = 0; round < kMaxFitRounds; ++round) {
    fit_given_transient(pb, fit);
    if (!mark_glitches(pb, fit)) break;
  }

  // (6) the transient by profile likelihood, every point warm-started from the fit without it.
  const DirectionFit start = fit;
  auto profile_depth = [&](double decay, DirectionFit& at) {
    at = start;
    at.decay = decay;
    at.depth = golden_min(
        [&](double depth) {
          DirectionFit trial = at;
          trial.depth = depth;
          return fit_given_transient(pb, trial);
        },
        -1.0, 1.0, 1e-4);
    return fit_given_transient(pb, at);
  };
  const double l0 = std::log(kDecayMin), l1 = std::log(kDecayMax);
  int best = -1;
  DirectionFit best_fit = start;  // depth 0: no transient
  for (int i = 0; i <= kDecayGrid; ++i) {
    DirectionFit at;
    if (profile_depth(std::exp(l0 + (l1 - l0) * i / kDecayGrid), at) < best_fit.nll) best_fit = at, best = i;
  }
  if (best >= 0) {
    const double a = l0 + (l1 - l0) * std::max(0, best - 1) / kDecayGrid;
    const double b = l0 + (l1 - l0) * std::min(kDecayGrid, best + 1) / kDecayGrid;
    DirectionFit at;
    const double log_decay = golden_min([&](double x) { return profile_depth(std::exp(x), at); }, a, b, 1e-3);
    if (profile_depth(std::exp(log_decay), at) < best_fit.nll) best_fit = at;
  }
  // Kept only when significant: a likelihood-ratio test at p = 0.001 for two parameters.
  // (The glitch marks are those of the fit without a transient, used by both.)
  return {start.nll - best_fit.nll > kTransientMinGain ? best_fit : start, std::move(pb)};
}

// (4b) The fit with the ageing trend, kept when the likelihood-ratio test on the ramps' final log
// factors accepts it; otherwise the fit without it.
DirectionResult fit_direction(const std::vector<Ramp>& ramps, const char* name, double lo, double hi, int bins,
                              const std::vector<double>& read_sd) {
  DirectionResult with = fit_direction_with(ramps, name, lo, hi, bins, true, read_sd);
  const double gain =
      factor_log_likelihood(with.fit, with.problem.cycle, true) -
      factor_log_likelihood(with.fit, with.problem.cycle, false);
  if (gain > kAgeingMinGain) return with;
  return fit_direction_with(ramps, name, lo, hi, bins, false, read_sd);
}

// ---- (8) read noise ----------------------------------------------------------------------------

// Residuals of the measured steps from the fitted mean, the in-bin line of (3) with the ramp's
// factor and the transient: r = dG − f_k r(n) (a_b + t_b (g − c_b)); NaN for glitches.
std::vector<double> step_residuals(const Problem& pb, const DirectionFit& fit) {
  std::vector<double> r(pb.steps.size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t id = 0; id < pb.steps.size(); ++id)
    if (pb.inlier[id]) r[id] = pb.steps[id].dg - predicted_step(pb, fit, id);
  return r;
}

// Lag-1 products of residuals of consecutive inlier steps of the same ramp, with the conductance
// of the read they share (the end of the first step, the start of the second).
struct ResidualPairs {
  std::vector<double> product, shared_read;
};

void collect_pairs(const Problem& pb, const std::vector<double>& residual, ResidualPairs& out) {
  for (const std::vector<std::size_t>& ramp : pb.of_ramp)
    for (std::size_t i = 0; i + 1 < ramp.size(); ++i) {
      const double r0 = residual[ramp[i]], r1 = residual[ramp[i + 1]];
      if (std::isnan(r0) || std::isnan(r1)) continue;
      out.product.push_back(r0 * r1);
      out.shared_read.push_back(pb.steps[ramp[i + 1]].read);
    }
}

// Moment estimates of σ_read (S) from the pairs: constant, −mean of every product, or per bin of
// the shared read, −mean of the bin's products (a bin without pairs takes the constant); negative
// variances become 0.
double read_sd_constant(const ResidualPairs& pairs) {
  double sum = 0;
  for (double p : pairs.product) sum += p;
  return pairs.product.empty() ? 0.0 : std::sqrt(std::max(0.0, -sum / static_cast<double>(pairs.product.size())));
}

std::vector<double> read_sd_per_bin(const ResidualPairs& pairs, double lo, double hi, int bins) {
  const double width = (hi - lo) / bins;
  std::vector<double> sum(bins, 0.0);
  std::vector<long> count(bins, 0);
  for (std::size_t i = 0; i < pairs.product.size(); ++i) {
    const int b = std::clamp(static_cast<int>((pairs.shared_read[i] - lo) / width), 0, bins - 1);
    sum[b] += pairs.product[i];
    ++count[b];
  }
  const double constant = read_sd_constant(pairs);
  std::vector<double> sd(bins, constant);
  for (int b = 0; b < bins; ++b)
    if (count[b] > 0) sd[b] = std::sqrt(std::max(0.0, -sum[b] / static_cast<double>(count[b])));
  return sd;
}

// The intrinsic step spread per bin given the measured-step spread and the read noise at the bin
// centres: sqrt(max(0, s² − 2 σ_read²)); counts the bins clipped at 0.
std::vector<double> intrinsic_spread(const std::vector<double>& measured, const std::vector<double>& read_sd,
                                     int* clipped) {
  std::vector<double> out(measured.size());
  for (std::size_t b = 0; b < measured.size(); ++b) {
    const double sd = read_sd.empty() ? 0.0 : read_sd[b];
    const double v = measured[b] * measured[b] - 2 * sd * sd;
    if (v < 0 && clipped) ++*clipped;
    out[b] = std::sqrt(std::max(0.0, v));
  }
  return out;
}

// Exact Gaussian log-likelihood (without the 2π constant) of the residuals of one direction under
// a read-noise model: every maximal run of consecutive inlier steps of a ramp is a Gaussian vector
// with a tridiagonal covariance (an MA(1) process), diagonal s(g_i)² + σ²(y_i) + σ²(y_{i+1}) and
// −σ²(y_{i+1}) between steps i and i+1 (they share the read y_{i+1}); s the intrinsic spread
// table (`spread`, per bin, interpolated), σ the read-noise table (`read_sd`, per bin; empty:
// none, the steps independent with variance s²). Evaluated by the LDLᵀ recursion of a tridiagonal
// matrix; −inf when the covariance is not positive definite.
double residual_log_likelihood(const Problem& pb, const std::vector<double>& residual,
                               const std::vector<double>& spread, const std::vector<double>& read_sd) {
  auto read_var = [&](double g) {
    if (read_sd.empty()) return 0.0;
    const double sd = interpolate(pb.centre, read_sd, g);
    return sd * sd;
  };
  double ll = 0;
  for (const std::vector<std::size_t>& ramp : pb.of_ramp) {
    bool in_run = false;
    double d = 0, z = 0, shared = 0;  // previous pivot, forward-solved value, shared read variance
    for (std::size_t id : ramp) {
      if (std::isnan(residual[id])) {
        in_run = false;
        continue;
      }
      const Step& s = pb.steps[id];
      const double sd = interpolate(pb.centre, spread, s.g);
      const double start = read_var(s.read), end = read_var(s.read + s.dg);
      double diagonal = sd * sd + start + end, value = residual[id];
      if (in_run) {  // off-diagonal −start with the previous step
        const double l = -shared / d;
        diagonal -= l * -shared;
        value -= l * z;
      }
      if (!(diagonal > 0)) return -std::numeric_limits<double>::infinity();
      ll -= 0.5 * (std::log(diagonal) + value * value / diagonal);
      d = diagonal, z = value, shared = end, in_run = true;
    }
  }
  return ll;
}

// ---- (0) window drift ---------------------------------------------------------------------------

// The conductance range of every ramp of both directions.
std::pair<double, double> observed_range(const RampData& data) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const std::vector<Ramp>* ramps : {&data.set, &data.reset})
    for (const Ramp& ramp : *ramps)
      for (double g : ramp.g) {
        if (!std::isfinite(g))
          throw core::UserError(fmt::format("fit_step_model: ramp {} holds a non-finite conductance", ramp.id));
        lo = std::min(lo, g);
        hi = std::max(hi, g);
      }
  if (!(hi > lo)) throw core::UserError("fit_step_model: the ramps span no conductance range");
  return {lo, hi};
}

// A window drift for the fit: the drifts (S per cycle) of the bottom and the top of the window
// [g_min, g_max], the map of every cycle as in WindowMap.
struct Drift {
  double g_min = 0, g_max = 1, low = 0, high = 0;
  WindowMap at_cycle(double cycle) const { return {g_min, g_max, low, high, cycle}; }
  double reference(double g, double cycle) const { return at_cycle(cycle).reference(g); }
};

// The ramps in the reference frame of a drift (a ramp's id is its cycle).
RampData to_reference_frame(const RampData& data, const Drift& drift) {
  RampData out = data;
  if (drift.low == 0 && drift.high == 0) return out;  // the identity, without rounding
  for (std::vector<Ramp>* ramps : {&out.set, &out.reset})
    for (Ramp& ramp : *ramps)
      for (double& g : ramp.g) g = drift.reference(g, static_cast<double>(ramp.id));
  return out;
}

// Least-squares drift over the cycles of turning points: the first reads of the ramps `firsts` and
// the last reads of the ramps `lasts`, one intercept for each kind of point and a common slope (S
// per cycle). The bottom of the window: firsts = SET ramps, lasts = RESET ramps; the top: the reverse.
double turning_point_drift(const std::vector<Ramp>& firsts, const std::vector<Ramp>& lasts) {
  double sxy = 0, sxx = 0;
  for (const auto& [ramps, first] : {std::pair{&firsts, true}, std::pair{&lasts, false}}) {
    double mean_c = 0, mean_g = 0, count = 0;
    for (const Ramp& r : *ramps)
      if (!r.g.empty()) mean_c += r.id, mean_g += first ? r.g.front() : r.g.back(), ++count;
    if (count == 0) continue;
    mean_c /= count, mean_g /= count;
    for (const Ramp& r : *ramps)
      if (!r.g.empty()) {
        const double dc = r.id - mean_c;
        sxy += dc * ((first ? r.g.front() : r.g.back()) - mean_g);
        sxx += dc * dc;
      }
  }
  return sxx > 0 ? sxy / sxx : 0.0;
}

// The negative log-likelihood of one direction's measured steps under a drift: the ramps taken to
// the reference frame (`ramps`, binned over [lo, hi]), tables and factors (with the ageing trend)
// fitted for the transient and on the glitch marks of `at_zero`, the fit without drift (so that
// both are scored on the same steps; the transient, which shapes the first pulses of every ramp
// alike, is refitted once the drift is kept), plus the factors' random-effects likelihood of (4b)
// and the Jacobian of the map: a step is the local stretch of the window times its reference step,
// so each adds ln stretch (at the step's reference state).
double drift_nll(const std::vector<Ramp>& ramps, const char* name, double lo, double hi, int bins,
                 const DirectionResult& at_zero, const Drift& drift) {
  Problem pb = make_problem(ramps, name, lo, hi, bins, {});
  pb.inlier = at_zero.problem.inlier;
  DirectionFit fit = fresh_fit(bins, ramps.size(), true);
  fit.depth = at_zero.fit.depth;
  fit.decay = at_zero.fit.decay;
  double nll = fit_given_transient(pb, fit) - factor_log_likelihood(fit, pb.cycle, true);
  for (std::size_t id = 0; id < pb.steps.size(); ++id)
    if (pb.inlier[id]) nll += std::log(drift.at_cycle(pb.cycle[pb.steps[id].ramp]).stretch(pb.steps[id].g));
  return nll;
}

// Whether a drift can be told from the rest of the model: every direction has ramps at 3 or more
// distinct cycles (with fewer, a shift of the cycles trades off against the tables).
bool drift_identifiable(const RampData& data) {
  for (const std::vector<Ramp>* ramps : {&data.set, &data.reset}) {
    std::vector<int> ids;
    for (const Ramp& ramp : *ramps) ids.push_back(ramp.id);
    std::sort(ids.begin(), ids.end());
    if (std::unique(ids.begin(), ids.end()) - ids.begin() < 3) return false;
  }
  return true;
}

}  // namespace

StepModelParams fit_step_model(const RampData& measured, int bins, StepFitDiagnostics* diagnostics) {
  if (bins < 1) throw core::UserError(fmt::format("fit_step_model: expected at least 1 bin, got {}", bins));
  if (measured.set.empty() || measured.reset.empty())
    throw core::UserError(fmt::format("fit_step_model: expected SET and RESET ramps, got {} SET and {} RESET ramp(s)",
                                      measured.set.size(), measured.reset.size()));

  // (0) Window drift from the turning points, kept when the steps' likelihood-ratio test accepts
  // it (see the top of the file); every later step works in its reference frame.
  StepFitDiagnostics diag;
  const auto [lo0, hi0] = observed_range(measured);
  // (7) The bounds: the observed range widened by a margin on each side (the window of cycle 0 and of
  // the drift's map).
  const double margin = kBoundMargin * (hi0 - lo0);
  const double g_min = lo0 - margin, g_max = hi0 + margin;
  Drift drift{g_min, g_max, 0, 0};
  if (drift_identifiable(measured)) {
    diag.window_drift_tried = true;
    // The turning points drift by `bottom` at lo0 and `top` at hi0: solve low + (high − low) x² for
    // the two (x the reference fractions of lo0 and hi0 in the window).
    const double bottom = turning_point_drift(measured.set, measured.reset);
    const double top = turning_point_drift(measured.reset, measured.set);
    const double xb = (lo0 - g_min) / (g_max - g_min), xt = (hi0 - g_min) / (g_max - g_min);
    const double curvature = (top - bottom) / (xt * xt - xb * xb);
    const Drift estimate{g_min, g_max, bottom - curvature * xb * xb, bottom - curvature * xb * xb + curvature};
    diag.drift_low_estimate = bottom;
    diag.drift_high_estimate = top;
    const DirectionResult up0 = fit_direction(measured.set, "SET", lo0, hi0, bins, {});
    const DirectionResult down0 = fit_direction(measured.reset, "RESET", lo0, hi0, bins, {});
    // Both directions; +inf for a drift that folds the window, maps a ramp outside the window or
    // leaves a bin with too few steps (never kept).
    auto nll = [&](const Drift& d) {
      try {
        const RampData frame = to_reference_frame(measured, d);
        const auto [lo, hi] = observed_range(frame);
        if (!(lo > g_min && hi < g_max)) return std::numeric_limits<double>::infinity();
        return drift_nll(frame.set, "SET", lo, hi, bins, up0, d) +
               drift_nll(frame.reset, "RESET", lo, hi, bins, down0, d);
      } catch (const core::UserError&) {
        return std::numeric_limits<double>::infinity();
      }
    };
    diag.lr_window_drift = 2 * (nll(drift) - nll(estimate));
    diag.lr_window_drift_threshold = chi2_critical(2);
    if (diag.lr_window_drift > diag.lr_window_drift_threshold) drift = estimate;
  }
  const RampData data = to_reference_frame(measured, drift);
  const auto [lo, hi] = observed_range(data);

  // (1)-(6) without read noise.
  DirectionResult up = fit_direction(data.set, "SET", lo, hi, bins, {});
  DirectionResult down = fit_direction(data.reset, "RESET", lo, hi, bins, {});

  // (8) Read noise: moment estimates from the residuals' lag-1 products (both directions pooled),
  // then the likelihood-ratio tests none -> constant -> per-bin table.
  auto estimate = [&](ResidualPairs& pairs) {
    pairs = {};
    collect_pairs(up.problem, step_residuals(up.problem, up.fit), pairs);
    collect_pairs(down.problem, step_residuals(down.problem, down.fit), pairs);
  };
  ResidualPairs pairs;
  estimate(pairs);
  diag.read_pairs = static_cast<long>(pairs.product.size());
  diag.read_std_constant = read_sd_constant(pairs);
  diag.read_std_per_bin = read_sd_per_bin(pairs, lo, hi, bins);
  diag.bin_centres = up.problem.centre;
  auto log_likelihood = [&](const std::vector<double>& read_sd) {
    double ll = 0;
    for (const DirectionResult* d : {&up, &down}) {
      const std::vector<double> residual = step_residuals(d->problem, d->fit);
      const std::vector<double> spread = intrinsic_spread(d->fit.spread, read_sd, nullptr);
      ll += residual_log_likelihood(d->problem, residual, spread, read_sd);
    }
    return ll;
  };
  const std::vector<double> constant(bins, diag.read_std_constant);
  const double ll_none = log_likelihood({});
  const double ll_constant = diag.read_std_constant > 0 ? log_likelihood(constant) : ll_none;
  const double ll_per_bin = bins > 1 ? log_likelihood(diag.read_std_per_bin) : ll_constant;
  diag.lr_constant = 2 * (ll_constant - ll_none);
  diag.lr_per_bin = 2 * (ll_per_bin - ll_constant);
  diag.lr_per_bin_none = 2 * (ll_per_bin - ll_none);
  diag.lr_constant_threshold = chi2_critical(1);
  diag.lr_per_bin_threshold = bins > 1 ? chi2_critical(bins - 1) : std::numeric_limits<double>::infinity();
  diag.lr_per_bin_none_threshold = chi2_critical(bins);
  // Nested models none ⊂ constant ⊂ per-bin: the per-bin table when it beats both simpler ones,
  // else the constant when it beats none, else none.
  const bool per_bin =
      diag.lr_per_bin > diag.lr_per_bin_threshold && diag.lr_per_bin_none > diag.lr_per_bin_none_threshold;
  const bool any = per_bin || diag.lr_constant > diag.lr_constant_threshold;
  std::vector<double> read_sd;  // per bin; empty: no read noise
  diag.read_noise = "none";
  if (any) {
    diag.read_noise = per_bin ? "per-bin" : "constant";
    read_sd = per_bin ? diag.read_std_per_bin : constant;
    // Refit with the read noise in the factors' sampling variances, re-estimate it (same form)
    // from the new residuals, until it settles.
    for (int round = 0; round < kReadNoiseRounds; ++round) {
      up = fit_direction(data.set, "SET", lo, hi, bins, read_sd);
      down = fit_direction(data.reset, "RESET", lo, hi, bins, read_sd);
      estimate(pairs);
      std::vector<double> next =
          per_bin ? read_sd_per_bin(pairs, lo, hi, bins) : std::vector<double>(bins, read_sd_constant(pairs));
      double change = 0, scale = 0;
      for (int b = 0; b < bins; ++b) {
        change = std::max(change, std::abs(next[b] - read_sd[b]));
        scale = std::max(scale, next[b]);
      }
      const bool settled = change <= kReadNoiseTolerance * scale;
      read_sd = std::move(next);
      if (settled) break;
    }
    if (per_bin) diag.read_std_per_bin = read_sd;
    else diag.read_std_constant = read_sd.front();
  }
  const std::vector<double> up_spread = intrinsic_spread(up.fit.spread, read_sd, &diag.clipped_spreads);
  const std::vector<double> down_spread = intrinsic_spread(down.fit.spread, read_sd, &diag.clipped_spreads);
  if (diagnostics) *diagnostics = diag;

  // (7) bounds, and the tables extended to them.
  StepModelParams p;
  p.g_min = g_min;
  p.g_max = g_max;
  const double width = (hi - lo) / bins;
  p.g_nodes.push_back(p.g_min);
  for (int b = 0; b < bins; ++b) p.g_nodes.push_back(lo + (b + 0.5) * width);
  p.g_nodes.push_back(p.g_max);
  auto extend = [](const std::vector<double>& v) {
    std::vector<double> out;
    out.push_back(v.front());
    out.insert(out.end(), v.begin(), v.end());
    out.push_back(v.back());
    return out;
  };
  p.up_mean = extend(up.fit.mean);
  p.up_std = extend(up_spread);
  p.down_mean = extend(down.fit.mean);
  p.down_std = extend(down_spread);
  if (!read_sd.empty()) p.read_std = extend(read_sd);
  p.d2d_sigma_up = up.fit.d2d_sigma;
  p.d2d_sigma_down = down.fit.d2d_sigma;
  p.up_ageing = up.fit.ageing;
  p.down_ageing = down.fit.ageing;
  p.up_reversal_depth = up.fit.depth;
  p.up_reversal_decay = up.fit.decay;
  p.down_reversal_depth = down.fit.depth;
  p.down_reversal_decay = down.fit.decay;
  p.window_drift_low = drift.low;
  p.window_drift_high = drift.high;
  return p;
}

// ---- the device ------------------------------------------------------------------------------

StepDevice::StepDevice(StepModelParams params) : params_(std::move(params)) { check_params(params_); }

double StepDevice::mean_step(double g, bool up) const {
  return interpolate(params_.g_nodes, up ? params_.up_mean : params_.down_mean, g);
}

double StepDevice::step_spread(double g, bool up) const {
  return interpolate(params_.g_nodes, up ? params_.up_std : params_.down_std, g);
}

CellState StepDevice::initial_state(double g_start, core::RandomStream& rng) const {
  return initial_state_at(g_start, params_.cycle, rng);
}

CellState StepDevice::initial_state_at(double g_start, double cycle, core::RandomStream& rng) const {
  CellState s{};
  const WindowMap window = window_at(cycle);
  s[0] = std::clamp(g_start, window.bottom(), window.top());
  s[5] = cycle;
  const double n_up = rng.normal();
  const double n_down = rng.normal();
  s[1] = std::exp(params_.up_ageing * cycle + params_.d2d_sigma_up * n_up);
  s[2] = std::exp(params_.down_ageing * cycle + params_.d2d_sigma_down * n_down);
  return s;
}

WindowMap::WindowMap(double g_min_, double g_max, double low, double high, double cycle)
    : g_min(g_min_), width(g_max - g_min_), shift(cycle * low), k(cycle * (high - low) / (g_max - g_min_)) {
  if (!(1 + 2 * k > 0))  // dG/dG_ref = 1 + 2 k x must stay positive over the window
    throw core::UserError(fmt::format("step model: the window drift folds the window at cycle {:g} (window_drift_low "
                                      "{:g} S, window_drift_high {:g} S per cycle)",
                                      cycle, low, high));
}

double WindowMap::reference(double g) const {
  // The root x >= 0 of x + k x² = y, in its cancellation-free form; beyond the parabola's apex
  // (only outside the window) the apex.
  const double y = (g - g_min - shift) / width;
  const double root = 1 + 4 * k * y;
  return g_min + width * (root > 0 ? 2 * y / (1 + std::sqrt(root)) : 1 / (-2 * k));
}

WindowMap StepDevice::window_at(double cycle) const {
  return {params_.g_min, params_.g_max, params_.window_drift_low, params_.window_drift_high, cycle};
}

double StepDevice::window_bottom(double cycle) const { return window_at(cycle).bottom(); }

double StepDevice::reference_conductance(double g, double cycle) const { return window_at(cycle).reference(g); }

double StepDevice::window_conductance(double g_ref, double cycle) const { return window_at(cycle).conductance(g_ref); }

double StepDevice::read_noise_at(double g, double cycle) const {
  if (!has_read_noise()) return 0.0;
  const WindowMap window = window_at(cycle);
  const double g_ref = window.reference(g);
  return window.stretch(g_ref) * read_noise_std(g_ref);
}

double StepDevice::reversal_factor(int n, bool up) const {
  return up ? transient_factor(params_.up_reversal_depth, params_.up_reversal_decay, n)
            : transient_factor(params_.down_reversal_depth, params_.down_reversal_decay, n);
}

void StepDevice::apply_pulse(CellState& state, const Pulse& pulse, core::RandomStream& rng) const {
  if (pulse.voltage == 0) return;
  const bool up = pulse.voltage > 0;
  const double direction = up ? 1.0 : -1.0;
  const int n = state[3] == direction ? static_cast<int>(state[4]) : 0;
  // The reference device's step at the reference conductance, times the window's local stretch
  // (state[5]: the device's cycle; without drift the map is the identity).
  const double g = state[0];
  const WindowMap window = window_at(state[5]);
  const double g_ref = window.reference(g);
  const double dg = window.stretch(g_ref) * ((up ? state[1] : state[2]) * reversal_factor(n, up) * mean_step(g_ref, up) +
                                             step_spread(g_ref, up) * rng.normal());
  state[0] = std::clamp(g + dg, window.bottom(), window.top());
  state[3] = direction;
  state[4] = n + 1;
}

double StepDevice::conductance(const CellState& state) const { return state[0]; }

bool StepDevice::has_read_noise() const {
  return std::any_of(params_.read_std.begin(), params_.read_std.end(), [](double v) { return v > 0; });
}

double StepDevice::read_noise_std(double g) const {
  return params_.read_std.empty() ? 0.0 : interpolate(params_.g_nodes, params_.read_std, g);
}

double StepDevice::read(const CellState& state, core::RandomStream& rng) const {
  if (!has_read_noise()) return state[0];
  return state[0] + read_noise_at(state[0], state[5]) * rng.normal();
}

std::vector<std::vector<std::vector<double>>> replay_ramps(const StepDevice& device, const std::vector<Ramp>& ramps,
                                                           bool up, int repetitions, const core::RandomStream& rng) {
  if (repetitions < 0) throw core::UserError(fmt::format("replay_ramps: expected repetitions >= 0, got {}", repetitions));
  std::vector<std::vector<std::vector<double>>> out(ramps.size(), std::vector<std::vector<double>>(repetitions));
  const std::size_t total = ramps.size() * static_cast<std::size_t>(repetitions);
  const Pulse pulse{up ? 1.0 : -1.0, 0.0};
  const bool noisy = device.has_read_noise();
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, total), [&](const tbb::blocked_range<std::size_t>& range) {
    for (std::size_t n = range.begin(); n != range.end(); ++n) {
      const std::size_t k = n / repetitions, r = n % repetitions;
      const std::vector<double>& measured = ramps[k].g;
      std::vector<double>& g = out[k][r];
      if (measured.empty()) continue;
      core::RandomStream stream = rng.derive("ramp", {static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(r)});
      if (!noisy) {
        CellState state = device.initial_state_at(measured.front(), static_cast<double>(ramps[k].id), stream);
        g.reserve(measured.size());
        g.push_back(device.conductance(state));
        for (std::size_t i = 1; i < measured.size(); ++i) {
          device.apply_pulse(state, pulse, stream);
          g.push_back(device.conductance(state));
        }
        continue;
      }
      // Conditioned on the measured first read y_0: hidden start y_0 − σ(y_0) N(0, 1) (the
      // posterior of the state given one read, under a flat prior), first simulated read y_0.
      core::RandomStream reads = rng.derive("read", {static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(r)});
      const double y0 = measured.front();
      const double cycle = static_cast<double>(ramps[k].id);
      const double hidden_start = y0 - device.read_noise_at(y0, cycle) * reads.normal();
      CellState state = device.initial_state_at(hidden_start, cycle, stream);
      g.reserve(measured.size());
      g.push_back(y0);
      for (std::size_t i = 1; i < measured.size(); ++i) {
        device.apply_pulse(state, pulse, stream);
        g.push_back(device.read(state, reads));
      }
    }
  });
  return out;
}

// ---- the card model --------------------------------------------------------------------------

namespace {

// Defaults of the card keys (relative to the window; see the top of this file).
const std::vector<double> kDefaultNodes = {0.0, 0.5, 1.0};
const std::vector<double> kDefaultUpMean = {0.03, 0.015, 0.003};
const std::vector<double> kDefaultUpStd = {0.01, 0.005, 0.001};
const std::vector<double> kDefaultDownMean = {-0.003, -0.015, -0.03};
const std::vector<double> kDefaultDownStd = {0.001, 0.005, 0.01};
constexpr double kDefaultD2dSigma = 0.1;
constexpr double kDefaultReversalDepth = 0.0;  // no reversal transient
constexpr double kDefaultReversalDecay = 3.0;  // pulses (used once a depth is set)
constexpr double kDefaultAgeing = 0.0;         // no cycle ageing
constexpr double kDefaultCycle = 0.0;          // programmed at the reference cycle
constexpr double kDefaultWindowDrift = 0.0;    // no window drift
const std::vector<double> kDefaultReadNoise = {0.0};  // no read noise

WriteVerifyOptions write_verify_defaults() {
  WriteVerifyOptions wv;  // generic amplitudes (ignored but for their sign), band ±1 uS
  wv.max_pulses = 300;
  return wv;
}

std::string yaml_list(const std::vector<double>& values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + core::spec::yaml(values[i]);
  return text + "]";
}

std::vector<core::ParamSpec> step_params() {
  std::vector<core::ParamSpec> specs = {
      core::spec::number_list("g_nodes", yaml_list(kDefaultNodes), "1", 0, 1,
                              "Conductances at which the step tables are given, as fractions of the window "
                              "[g_min, g_max]: increasing, first 0, last 1. The tables are interpolated linearly "
                              "between nodes."),
      core::spec::number_list("up_mean", yaml_list(kDefaultUpMean), "1", 0, 1,
                              "Mean conductance step of one SET pulse (any positive write pulse) at each node, in "
                              "units of the window (g_max - g_min); scaled by the device's factor d_up."),
      core::spec::number_list("up_std", yaml_list(kDefaultUpStd), "1", 0, 1,
                              "Cycle-to-cycle standard deviation of a SET step at each node (window units): "
                              "dG = d_up m_up(G) + s_up(G) N(0,1), then clamped to [g_min, g_max]."),
      core::spec::number_list("down_mean", yaml_list(kDefaultDownMean), "1", -1, 0,
                              "Mean conductance step (<= 0) of one RESET pulse (any negative write pulse) at each "
                              "node, in window units; scaled by the device's factor d_down."),
      core::spec::number_list("down_std", yaml_list(kDefaultDownStd), "1", 0, 1,
                              "Cycle-to-cycle standard deviation of a RESET step at each node (window units)."),
      core::spec::number("d2d_sigma_up", core::spec::yaml(kDefaultD2dSigma), "1", 0, 5,
                         "Device-to-device variation of the SET steps: log-std of the lognormal factor d_up "
                         "(median 1) on the mean step, drawn once per device."),
      core::spec::number("d2d_sigma_down", core::spec::yaml(kDefaultD2dSigma), "1", 0, 5,
                         "Device-to-device variation of the RESET steps: log-std of the lognormal factor d_down "
                         "(median 1) on the mean step, drawn once per device."),
      core::spec::number("up_reversal_depth", core::spec::yaml(kDefaultReversalDepth), "1", -1, 1,
                         "Reversal transient of SET: the n-th SET pulse (n = 0, 1, ...) after a RESET pulse (or of a "
                         "fresh device) has its mean step scaled by 1 - depth exp(-n / up_reversal_decay); 0 = off."),
      core::spec::number("up_reversal_decay", core::spec::yaml(kDefaultReversalDecay), "1", 0, 1e6,
                         "Decay of the SET reversal transient, in pulses.", true),
      core::spec::number("down_reversal_depth", core::spec::yaml(kDefaultReversalDepth), "1", -1, 1,
                         "Reversal transient of RESET: the n-th RESET pulse after a SET pulse (or of a fresh device) "
                         "has its mean step scaled by 1 - depth exp(-n / down_reversal_decay); 0 = off."),
      core::spec::number("down_reversal_decay", core::spec::yaml(kDefaultReversalDecay), "1", 0, 1e6,
                         "Decay of the RESET reversal transient, in pulses.", true),
      core::spec::number("up_ageing", core::spec::yaml(kDefaultAgeing), "1", -1, 1,
                         "Cycle ageing of SET, in log factor per cycle: a device at cycle c has the median of its "
                         "factor d_up at exp(up_ageing c) (negative: the steps shrink over the cycles); 0 = off. "
                         "Fitted cards count cycles as the measured ramp ids."),
      core::spec::number("down_ageing", core::spec::yaml(kDefaultAgeing), "1", -1, 1,
                         "Cycle ageing of RESET, in log factor per cycle: median of d_down at exp(down_ageing c); "
                         "0 = off."),
      core::spec::number("cycle", core::spec::yaml(kDefaultCycle), "1", 0, 1e9,
                         "Cycle at which the tile is programmed, for the cycle ageing and the window drift: 0 is the "
                         "reference cycle "
                         "the tables describe (of a fitted card: just before the first measured ramp, ramp ids "
                         "counting the cycles). Replays in xbar validate use each ramp's id instead."),
      core::spec::number("window_drift_low", core::spec::yaml(kDefaultWindowDrift), "1", -1, 1,
                         "Drift of the window's bottom, in window units per cycle: a device at cycle c has the "
                         "window [g_min + window_drift_low W c, g_max + window_drift_high W c] (W = g_max - g_min); "
                         "a reference conductance at window fraction x drifts by (low + (high - low) x^2) W c, so "
                         "the bottom shifts rigidly and the window stretches or compresses towards the top. The "
                         "device behaves as the reference device (cycle 0) at the reference conductance, its "
                         "steps and read noise times the local stretch. 0 = off. Fitted cards count cycles as the "
                         "measured ramp ids."),
      core::spec::number("window_drift_high", core::spec::yaml(kDefaultWindowDrift), "1", -1, 1,
                         "Drift of the window's top, in window units per cycle (see window_drift_low); 0 = off."),
      core::spec::number_list("read_noise_std", yaml_list(kDefaultReadNoise), "1", 0, 1,
                              "Read (measurement) noise: standard deviation of one read, in window units; one value "
                              "for every conductance, or one per node of g_nodes (interpolated like the step "
                              "tables). A read of the state G returns G + read_noise_std(G) N(0,1), fresh for every "
                              "read (tile reads, the replays of xbar validate), the state unchanged; the step "
                              "spreads are then intrinsic (a measured step adds two reads' noise). 0 = off."),
  };
  // Write-verify: only the pulse's sign matters to this model (amplitude and width are not
  // modelled); a long pulse budget because the steps are small.
  for (core::ParamSpec& spec : write_verify_params(write_verify_defaults())) specs.push_back(std::move(spec));
  return specs;
}

const std::vector<double>& list_param(const core::DeviceOptions& o, const std::string& name) {
  auto it = o.params.find(name);
  if (it == o.params.end() || !std::holds_alternative<std::vector<double>>(it->second))
    throw core::UserError(fmt::format("device model '{}' has no number-list parameter '{}'", o.model, name));
  return std::get<std::vector<double>>(it->second);
}

// The rram-step Device: a StepDevice programmed by write-verify.
class StepModelDevice final : public Device {
 public:
  StepModelDevice(StepModelParams params, const WriteVerifyOptions& wv) : device_(std::move(params)), wv_(wv) {}

  ProgrammedArray program(const Eigen::MatrixXd& g_target, core::RandomStream& rng) const override {
    const Eigen::Index rows = g_target.rows(), cols = g_target.cols();
    ProgrammedArray out;
    out.g_target = g_target;
    out.g_programmed.resize(rows, cols);
    out.pulses.resize(rows, cols);
    out.converged.resize(rows, cols);
    Eigen::MatrixXd d_up(rows, cols), d_down(rows, cols);
    // The RESET state: the bottom of the window at the card's cycle.
    const double g_start = device_.window_bottom(device_.params().cycle);
    tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, rows * cols),
                      [&](const tbb::blocked_range<Eigen::Index>& range) {
                        for (Eigen::Index k = range.begin(); k != range.end(); ++k) {
                          const Eigen::Index i = k / cols, j = k % cols;
                          core::RandomStream cell = rng.derive("cell", {static_cast<std::uint64_t>(k)});
                          const CellState start = device_.initial_state(g_start, cell);
                          const WriteVerifyResult r = write_verify(device_, start, g_target(i, j), wv_, cell);
                          out.g_programmed(i, j) = r.g;
                          out.pulses(i, j) = r.pulses;
                          out.converged(i, j) = r.converged ? 1 : 0;
                          d_up(i, j) = r.state[1];
                          d_down(i, j) = r.state[2];
                        }
                      });
    out.cell_state["d2d_factor_up"] = std::move(d_up);
    out.cell_state["d2d_factor_down"] = std::move(d_down);
    return out;
  }

  // No drift; each read adds fresh read noise (row-major draws from the read's stream, clamped
  // at 0 S), none when the model has no read noise.
  Eigen::MatrixXd read_conductance(const ProgrammedArray& state, double, core::RandomStream& rng) const override {
    if (!device_.has_read_noise()) return state.g_programmed;
    const double cycle = device_.params().cycle;
    const Eigen::Index rows = state.g_programmed.rows(), cols = state.g_programmed.cols();
    Eigen::MatrixXd g(rows, cols);
    for (Eigen::Index i = 0; i < rows; ++i)
      for (Eigen::Index j = 0; j < cols; ++j) {
        const double programmed = state.g_programmed(i, j);
        g(i, j) = std::max(0.0, programmed + device_.read_noise_at(programmed, cycle) * rng.normal());
      }
    return g;
  }

 private:
  StepDevice device_;
  WriteVerifyOptions wv_;
};

}  // namespace

StepModelParams step_params_from(const core::DeviceOptions& o) {
  const double g_min = o.g_min, g_max = o.g_max;
  if (!(g_max > g_min))
    throw core::UserError(fmt::format("device.g_max: expected > g_min ({:g} S), got {:g} S", g_min, g_max));
  const std::vector<double>& nodes = list_param(o, "g_nodes");
  const std::size_t n = nodes.size();
  if (n < 2) throw core::UserError(fmt::format("device.g_nodes: expected at least 2 nodes, got {}", n));
  if (nodes.front() != 0.0 || nodes.back() != 1.0)
    throw core::UserError(fmt::format("device.g_nodes: expected the first node 0 and the last 1, got {:g} and {:g}",
                                      nodes.front(), nodes.back()));
  for (std::size_t i = 1; i < n; ++i)
    if (!(nodes[i] > nodes[i - 1]))
      throw core::UserError(fmt::format("device.g_nodes: expected strictly increasing values, got {:g} after {:g}",
                                        nodes[i], nodes[i - 1]));
  const double range = g_max - g_min;
  StepModelParams p;
  p.g_min = g_min;
  p.g_max = g_max;
  for (double x : nodes) p.g_nodes.push_back(g_min + x * range);
  const std::pair<const char*, std::vector<double>*> tables[] = {
      {"up_mean", &p.up_mean}, {"up_std", &p.up_std}, {"down_mean", &p.down_mean}, {"down_std", &p.down_std}};
  for (const auto& [name, table] : tables) {
    const std::vector<double>& values = list_param(o, name);
    if (values.size() != n)
      throw core::UserError(fmt::format("device.{}: expected {} values (as many as device.g_nodes), got {}", name, n,
                                        values.size()));
    for (double v : values) table->push_back(v * range);
  }
  const std::vector<double>& read_noise = list_param(o, "read_noise_std");
  if (read_noise.size() != 1 && read_noise.size() != n)
    throw core::UserError(fmt::format("device.read_noise_std: expected 1 value (for every conductance) or {} (one per "
                                      "node of device.g_nodes), got {}",
                                      n, read_noise.size()));
  for (std::size_t i = 0; i < n; ++i) p.read_std.push_back(read_noise[read_noise.size() == 1 ? 0 : i] * range);
  p.d2d_sigma_up = o.param("d2d_sigma_up");
  p.d2d_sigma_down = o.param("d2d_sigma_down");
  p.up_reversal_depth = o.param("up_reversal_depth");
  p.up_reversal_decay = o.param("up_reversal_decay");
  p.down_reversal_depth = o.param("down_reversal_depth");
  p.down_reversal_decay = o.param("down_reversal_decay");
  p.up_ageing = o.param("up_ageing");
  p.down_ageing = o.param("down_ageing");
  p.cycle = o.param("cycle");
  p.window_drift_low = o.param("window_drift_low") * range;
  p.window_drift_high = o.param("window_drift_high") * range;
  check_params(p);
  return p;
}

DeviceModelInfo rram_step_info() {
  return {"rram-step",
          "Pulse-programmable RRAM as a state-dependent step model: every identical SET/RESET pulse moves G by a "
          "Gaussian step whose mean and spread are tables over G (lognormal device-to-device factor on the mean, "
          "optional transient over the first pulses after a reversal), clamped to the window; every read adds "
          "Gaussian read noise; programmed by write-verify. Tables and read noise fitted from measured pulse ramps.",
          "this project's fitted step model (devices/step_model.cpp), fitted to measured TaOx pulse ramps from "
          "Sandia's CrossSim examples (BSD-3); state-dependent step mean and noise extracted from pulse responses as "
          "in N. Gong et al., \"Signal and noise extraction from analog memory elements for neuromorphic computing\", "
          "Nat. Commun. 9, 2102 (2018)",
          step_params(), [](const core::DeviceOptions& options) -> std::unique_ptr<Device> {
            return std::make_unique<StepModelDevice>(step_params_from(options), write_verify_options(options));
          }};
}

}  // namespace xbar::devices
