// `xbar calibrate` and `xbar validate` (method and metric definitions in validate.hpp).
#include "tools/validate.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <utility>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/random.hpp"
#include "core/trace.hpp"
#include "core/version.hpp"
#include "devices/registry.hpp"
#include "tools/simulate.hpp"

extern char** environ;

#ifndef XBAR_PLOT_VALIDATION_SCRIPT
#define XBAR_PLOT_VALIDATION_SCRIPT "tools/plot_validation.py"
#endif

namespace xbar::tools {

namespace fs = std::filesystem;
using core::UserError;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kModel = "rram-step";
constexpr double kMaxD2dSigma = 5;  // the card's limit of device.d2d_sigma_up / _down
constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with matplotlib and h5py (scripts/setup.sh)

// The rram-step keys calibrate replaces (besides device.g_min and device.g_max).
constexpr const char* kTableKeys[] = {"g_nodes", "up_mean", "up_std", "down_mean", "down_std"};

std::string number_text(double value) { return fmt::format("{}", value); }  // shortest round-trip form

std::string json_number(double value) { return std::isfinite(value) ? fmt::format("{:.6g}", value) : "null"; }

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

std::string format_siemens(double g) {
  const double a = std::abs(g);
  if (a >= 1e-3) return fmt::format("{:.4g} mS", g * 1e3);
  if (a >= 1e-6) return fmt::format("{:.4g} µS", g * 1e6);
  return fmt::format("{:.4g} nS", g * 1e9);
}

void require_step_model(const core::Card& card, const std::string& command) {
  if (card.device.model != kModel)
    throw UserError(fmt::format(
        "{}: device.model: {} needs a card of the {} model, got '{}' (start from cards/rram-taox-pulse.yaml)",
        card.file.string(), command, kModel, card.device.model));
}

std::size_t steps_of(const std::vector<devices::Ramp>& ramps) {
  std::size_t n = 0;
  for (const auto& r : ramps) n += r.g.empty() ? 0 : r.g.size() - 1;
  return n;
}

int count_heldout(const std::vector<MeasuredRamp>& ramps) {
  return static_cast<int>(std::count_if(ramps.begin(), ramps.end(), [](const MeasuredRamp& r) { return r.heldout; }));
}

// The conductance range of every ramp of the file (both directions, every split).
std::pair<double, double> measured_range(const MeasuredRamps& measured) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto* direction : {&measured.set, &measured.reset})
    for (const MeasuredRamp& m : *direction)
      for (double g : m.ramp.g) {
        lo = std::min(lo, g);
        hi = std::max(hi, g);
      }
  return {lo, hi};
}

}  // namespace

// ---- metrics -----------------------------------------------------------------------------------

double ks_statistic(std::vector<double> a, std::vector<double> b) {
  if (a.empty() || b.empty()) return kNaN;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
  std::size_t i = 0, j = 0;
  double d = 0;
  // Walk the distinct values in order; after all values <= x of both samples, compare the ECDFs.
  while (i < a.size() && j < b.size()) {
    const double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    d = std::max(d, std::abs(static_cast<double>(i) / na - static_cast<double>(j) / nb));
  }
  return d;  // once one sample is exhausted the difference only shrinks
}

double quantile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return kNaN;
  const double position = std::clamp(p, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(position));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double t = position - static_cast<double>(lo);
  return sorted[lo] + t * (sorted[hi] - sorted[lo]);
}

DirectionScore score_direction(const std::vector<devices::Ramp>& measured,
                               const std::vector<std::vector<std::vector<double>>>& simulated,
                               const ScoreSettings& s) {
  if (!(s.g_hi > s.g_lo) || !std::isfinite(s.g_lo) || !std::isfinite(s.g_hi))
    throw UserError(fmt::format("score: expected a conductance range g_lo < g_hi, got [{:g}, {:g}] S", s.g_lo, s.g_hi));
  if (s.ks_bins < 1) throw UserError(fmt::format("score: expected at least 1 KS bin, got {}", s.ks_bins));
  if (simulated.size() != measured.size())
    throw UserError(fmt::format("score: {} measured ramps but {} simulated sets", measured.size(), simulated.size()));
  const std::size_t ramps = measured.size();
  std::size_t longest = 0;
  for (std::size_t k = 0; k < ramps; ++k) {
    longest = std::max(longest, measured[k].g.size());
    if (simulated[k].empty())
      throw UserError(fmt::format("score: ramp {} has no simulated repetition", measured[k].id));
    for (const auto& rep : simulated[k])
      if (rep.size() != measured[k].g.size())
        throw UserError(fmt::format("score: ramp {} holds {} values but a repetition {}", measured[k].id,
                                    measured[k].g.size(), rep.size()));
  }

  DirectionScore out;
  out.ramps = static_cast<int>(ramps);
  const double range = s.g_hi - s.g_lo;

  // Bands per ramp and pulse index.
  out.bands.resize(ramps);
  std::vector<double> values;
  long covered = 0;
  for (std::size_t k = 0; k < ramps; ++k) {
    const std::size_t n = measured[k].g.size();
    RampBand& band = out.bands[k];
    band.p05.resize(n);
    band.p50.resize(n);
    band.p95.resize(n);
    band.mean.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      values.clear();
      double sum = 0;
      for (const auto& rep : simulated[k]) {
        values.push_back(rep[i]);
        sum += rep[i];
      }
      std::sort(values.begin(), values.end());
      band.p05[i] = quantile_sorted(values, kBandLow);
      band.p50[i] = quantile_sorted(values, 0.5);
      band.p95[i] = quantile_sorted(values, kBandHigh);
      band.mean[i] = sum / static_cast<double>(values.size());
      if (i >= 1) {
        const double g = measured[k].g[i];
        ++out.points;
        if (g >= band.p05[i] && g <= band.p95[i]) ++covered;
      }
    }
  }
  out.coverage = out.points > 0 ? static_cast<double>(covered) / static_cast<double>(out.points) : kNaN;

  // Mean trajectories over the indices i >= 1 that at least half of the ramps reach.
  out.mean_measured.assign(longest, kNaN);
  out.mean_simulated.assign(longest, kNaN);
  double sum_sq = 0;
  for (std::size_t i = 1; i < longest; ++i) {
    double sum_measured = 0, sum_simulated = 0;
    std::size_t count = 0, reps = 0;
    for (std::size_t k = 0; k < ramps; ++k) {
      if (measured[k].g.size() <= i) continue;
      ++count;
      sum_measured += measured[k].g[i];
      for (const auto& rep : simulated[k]) sum_simulated += rep[i];
      reps += simulated[k].size();
    }
    if (count == 0 || 2 * count < ramps) continue;
    out.mean_measured[i] = sum_measured / static_cast<double>(count);
    out.mean_simulated[i] = sum_simulated / static_cast<double>(reps);
    const double d = out.mean_measured[i] - out.mean_simulated[i];
    sum_sq += d * d;
    ++out.rmse_indices;
  }
  out.rmse = out.rmse_indices > 0 ? std::sqrt(sum_sq / out.rmse_indices) : kNaN;
  out.rmse_rel = out.rmse / range;

  // Steps by conductance bin of their starting state.
  const double width = range / s.ks_bins;
  auto bin_of = [&](double g) -> int {
    if (!(g >= s.g_lo && g <= s.g_hi)) return -1;
    return std::min(static_cast<int>((g - s.g_lo) / width), s.ks_bins - 1);
  };
  std::vector<std::vector<double>> measured_steps(s.ks_bins), simulated_steps(s.ks_bins);
  for (std::size_t k = 0; k < ramps; ++k) {
    const std::vector<double>& g = measured[k].g;
    for (std::size_t i = 0; i + 1 < g.size(); ++i)
      if (const int b = bin_of(g[i]); b >= 0) measured_steps[b].push_back(g[i + 1] - g[i]);
    for (const auto& rep : simulated[k])
      for (std::size_t i = 0; i + 1 < rep.size(); ++i)
        if (const int b = bin_of(rep[i]); b >= 0) simulated_steps[b].push_back(rep[i + 1] - rep[i]);
  }
  out.ks_max = kNaN;
  for (int b = 0; b < s.ks_bins; ++b) {
    KsBin bin;
    bin.g_lo = s.g_lo + b * width;
    bin.g_hi = b + 1 == s.ks_bins ? s.g_hi : s.g_lo + (b + 1) * width;
    bin.measured_steps = static_cast<int>(measured_steps[b].size());
    bin.simulated_steps = static_cast<long>(simulated_steps[b].size());
    bin.ks = ks_statistic(measured_steps[b], simulated_steps[b]);
    bin.populated = bin.measured_steps >= s.min_bin_steps;
    if (bin.populated) {
      ++out.populated_bins;
      // A populated bin without a simulated step: the simulation never visits it (KS = 1).
      const double ks = std::isfinite(bin.ks) ? bin.ks : 1.0;
      bin.ks = ks;
      out.ks_max = std::isfinite(out.ks_max) ? std::max(out.ks_max, ks) : ks;
    }
    out.bins.push_back(bin);
  }
  return out;
}

// ---- calibrate ---------------------------------------------------------------------------------

Calibration calibrate(const MeasuredRamps& measured, const std::string& split, int bins) {
  if (split != "fit")
    throw UserError(fmt::format(
        "--split {}: calibrate fits on the fitting split only (--split fit): the held-out ramps are reserved for "
        "scoring the fitted card (xbar validate) and must never be used to fit it{}",
        split, split == "all" ? " ('all' includes them)" : ""));
  if (bins < 1) throw UserError(fmt::format("--bins: expected at least 1, got {}", bins));
  if (measured.units != "S")
    throw UserError(fmt::format("measured conductances are in '{}': expected 'S'", measured.units));
  const devices::RampData data = split_ramps(measured, "fit");
  Calibration c;
  c.set_ramps = static_cast<int>(data.set.size());
  c.reset_ramps = static_cast<int>(data.reset.size());
  c.set_steps = steps_of(data.set);
  c.reset_steps = steps_of(data.reset);
  devices::StepModelParams& p = c.params;
  p = devices::fit_step_model(data, bins, &c.diagnostics);
  if (p.g_min < 0) {
    c.adjustments.push_back(fmt::format(
        "g_min: the fitted bound {} (the smallest measured conductance less the 5 % margin) is raised to 0 S, the "
        "first table node with it",
        format_siemens(p.g_min)));
    p.g_min = 0;
    p.g_nodes.front() = 0;
  }
  // The tables in window units must lie in the card's ranges (up_mean, up_std, down_std in [0, 1],
  // down_mean in [-1, 0]): a step of the wrong sign, or larger than the whole window per pulse.
  const double range = p.g_max - p.g_min;
  struct Table {
    const char* key;
    std::vector<double>* values;
    double lo, hi;  // window units
    const char* what;
  };
  const Table tables[] = {{"up_mean", &p.up_mean, 0, 1, "mean SET step"},
                          {"up_std", &p.up_std, 0, 1, "SET step spread"},
                          {"down_mean", &p.down_mean, -1, 0, "mean RESET step"},
                          {"down_std", &p.down_std, 0, 1, "RESET step spread"},
                          {"read_noise_std", &p.read_std, 0, 1, "read-noise standard deviation"}};
  for (const Table& t : tables)
    for (std::size_t i = 0; i < t.values->size(); ++i) {
      double& v = (*t.values)[i];
      const double limited = std::clamp(v, t.lo * range, t.hi * range);
      if (limited == v) continue;
      c.adjustments.push_back(fmt::format("{} at {}: the fitted {} {} ({:.3g} of the window) is set to {}", t.key,
                                          format_siemens(p.g_nodes[i]), t.what, format_siemens(v), v / range,
                                          limited == 0 ? std::string("0") : format_siemens(limited)));
      v = limited;
    }
  for (auto [key, a] : {std::pair{"up_ageing", &p.up_ageing}, std::pair{"down_ageing", &p.down_ageing}})
    if (std::abs(*a) > 1) {
      c.adjustments.push_back(fmt::format("{}: the fitted {:.3g} per cycle is set to {}", key, *a, *a > 0 ? 1 : -1));
      *a = *a > 0 ? 1.0 : -1.0;
    }
  for (auto [key, drift] : {std::pair{"window_drift_low", &p.window_drift_low},
                            std::pair{"window_drift_high", &p.window_drift_high}})
    if (std::abs(*drift) > range) {
      const double limited = *drift > 0 ? range : -range;
      c.adjustments.push_back(fmt::format("{}: the fitted {} per cycle is set to {} (the window's width)", key,
                                          format_siemens(*drift), format_siemens(limited)));
      *drift = limited;
    }
  for (auto [key, sigma] : {std::pair{"d2d_sigma_up", &p.d2d_sigma_up}, std::pair{"d2d_sigma_down", &p.d2d_sigma_down}})
    if (*sigma > kMaxD2dSigma) {
      c.adjustments.push_back(fmt::format("{}: the fitted {:.3g} is set to {}", key, *sigma, kMaxD2dSigma));
      *sigma = kMaxD2dSigma;
    }
  return c;
}

std::string fitted_card_yaml(const core::Card& base, const devices::StepModelParams& p,
                             const std::vector<std::string>& header) {
  require_step_model(base, "calibrate");
  const double range = p.g_max - p.g_min;
  if (!(range > 0)) throw UserError(fmt::format("fitted window: expected g_min < g_max, got [{:g}, {:g}] S", p.g_min, p.g_max));
  if (p.g_min < 0) throw UserError(fmt::format("fitted window: g_min {:g} S is negative", p.g_min));
  for (std::size_t i = 0; i < p.g_nodes.size(); ++i)
    if (p.up_mean[i] < 0 || p.down_mean[i] > 0)
      throw UserError(fmt::format("fitted tables: the mean step at node {} has the wrong sign", i));
  YAML::Node root;
  try {
    root = YAML::Load(base.effective_yaml);
  } catch (const YAML::Exception& error) {
    throw UserError(fmt::format("{}: cannot re-read the card: {}", base.file.string(), error.what()));
  }
  YAML::Node device = root["device"];
  device["g_min"] = number_text(p.g_min);
  device["g_max"] = number_text(p.g_max);
  auto list = [](const std::vector<double>& values) {
    YAML::Node node(YAML::NodeType::Sequence);
    for (double v : values) node.push_back(number_text(v));
    node.SetStyle(YAML::EmitterStyle::Flow);
    return node;
  };
  std::vector<double> nodes, up_mean, up_std, down_mean, down_std;
  for (std::size_t i = 0; i < p.g_nodes.size(); ++i) {
    nodes.push_back(i == 0 ? 0.0 : i + 1 == p.g_nodes.size() ? 1.0 : (p.g_nodes[i] - p.g_min) / range);
    up_mean.push_back(p.up_mean[i] / range);
    up_std.push_back(p.up_std[i] / range);
    down_mean.push_back(p.down_mean[i] / range);
    down_std.push_back(p.down_std[i] / range);
  }
  const std::vector<double>* tables[] = {&nodes, &up_mean, &up_std, &down_mean, &down_std};
  for (std::size_t t = 0; t < std::size(kTableKeys); ++t) device[kTableKeys[t]] = list(*tables[t]);
  // Read noise: one value when it is the same at every node (none: 0), else one per node.
  std::vector<double> read_noise;
  for (double v : p.read_std) read_noise.push_back(v / range);
  if (read_noise.empty() ||
      std::all_of(read_noise.begin(), read_noise.end(), [&](double v) { return v == read_noise.front(); }))
    read_noise = {read_noise.empty() ? 0.0 : read_noise.front()};
  device["read_noise_std"] = list(read_noise);
  device["d2d_sigma_up"] = number_text(p.d2d_sigma_up);
  device["d2d_sigma_down"] = number_text(p.d2d_sigma_down);
  device["up_reversal_depth"] = number_text(p.up_reversal_depth);
  device["up_reversal_decay"] = number_text(p.up_reversal_decay);
  device["down_reversal_depth"] = number_text(p.down_reversal_depth);
  device["down_reversal_decay"] = number_text(p.down_reversal_decay);
  device["up_ageing"] = number_text(p.up_ageing);
  device["down_ageing"] = number_text(p.down_ageing);
  device["window_drift_low"] = number_text(p.window_drift_low / range);
  device["window_drift_high"] = number_text(p.window_drift_high / range);
  // Workload files resolve against the card's folder; the fitted card may live elsewhere.
  const std::pair<const char*, const core::MatrixSource*> sources[] = {{"weights", &base.workload.weights},
                                                                       {"inputs", &base.workload.inputs}};
  for (const auto& [name, source] : sources)
    if (source->distribution == core::Distribution::file && !source->file.empty())
      root["workload"][name]["file"] = fs::absolute(source->file).lexically_normal().string();

  YAML::Emitter emitter;
  emitter.SetIndent(2);
  emitter << root;
  if (!emitter.good()) throw UserError(fmt::format("cannot write the fitted card: {}", emitter.GetLastError()));
  std::string text;
  for (const std::string& line : header) text += line.empty() ? "#\n" : "# " + one_line(line) + "\n";
  return text + emitter.c_str() + "\n";
}

std::string read_noise_summary(const devices::StepFitDiagnostics& d) {
  std::string kept;
  if (d.read_noise == "constant") {
    kept = fmt::format("constant σ_read {}", format_siemens(d.read_std_constant));
  } else if (d.read_noise == "per-bin") {
    const auto [lo, hi] = std::minmax_element(d.read_std_per_bin.begin(), d.read_std_per_bin.end());
    kept = fmt::format("σ_read per conductance bin, {} to {}", format_siemens(*lo), format_siemens(*hi));
  } else {
    kept = "none";
  }
  std::string text = fmt::format(
      "read noise: {} (from the lag-1 autocovariance of {} pairs of consecutive steps; likelihood ratio 2 Δln L "
      "{:.1f} for a constant against none, threshold {:.1f}; for a per-bin table {:.1f} against a constant, threshold "
      "{:.1f}, and {:.1f} against none, threshold {:.1f})",
      kept, d.read_pairs, d.lr_constant, d.lr_constant_threshold, d.lr_per_bin, d.lr_per_bin_threshold,
      d.lr_per_bin_none, d.lr_per_bin_none_threshold);
  if (d.read_noise != "none") text += "; step spreads de-noised (intrinsic)";
  if (d.clipped_spreads > 0)
    text += fmt::format("; {} bin spread(s) below the read noise set to 0", d.clipped_spreads);
  return text;
}

std::string window_drift_summary(const devices::StepFitDiagnostics& d, const devices::StepModelParams& p) {
  if (!d.window_drift_tried) return "window drift: not fitted (each direction needs ramps at 3 or more distinct cycles)";
  const bool kept = p.window_drift_low != 0 || p.window_drift_high != 0;
  return fmt::format("window drift: {} (turning points: bottom {}, top {} per cycle; likelihood ratio of the steps "
                     "2 Δln L {:.1f} against none, threshold {:.1f})",
                     kept ? fmt::format("bottom {}, top {} per cycle at g_min, g_max", format_siemens(p.window_drift_low),
                                        format_siemens(p.window_drift_high))
                          : std::string("none"),
                     format_siemens(d.drift_low_estimate), format_siemens(d.drift_high_estimate), d.lr_window_drift,
                     d.lr_window_drift_threshold);
}

std::string calibrate_command(const CalibrateOptions& o) {
  if (o.split != "fit") calibrate(MeasuredRamps{}, o.split, o.bins);  // the refusal, before any work
  if (o.bins < 1) throw UserError(fmt::format("--bins: expected at least 1, got {}", o.bins));
  if (o.output.empty()) throw UserError("-o: the fitted card to write is required");
  const core::Card base = load_card_for_cli(o.card, o.overrides, "");
  require_step_model(base, "calibrate");
  const MeasuredRamps measured = read_measured(o.measured);
  const Calibration c = calibrate(measured, o.split, o.bins);
  const devices::StepModelParams& p = c.params;

  std::vector<std::string> header = {
      fmt::format("Fitted by `xbar calibrate` (xbar {}): device model {} fitted to measured pulse ramps.",
                  core::kVersion, kModel),
      fmt::format("Base card: {}{} (its comments are not kept).", o.card.string(),
                  o.overrides.empty() ? "" : fmt::format(" with --set {}", fmt::join(o.overrides, " --set "))),
      fmt::format("Measured data: {}", o.measured.string()),
      fmt::format("  (source: {}).", one_line(measured.source)),
      fmt::format("Split: fit, {} SET ramps ({} steps) and {} RESET ramps ({} steps);", c.set_ramps, c.set_steps,
                  c.reset_ramps, c.reset_steps),
      fmt::format("  the {} SET and {} RESET held-out ramps were not read.", count_heldout(measured.set),
                  count_heldout(measured.reset)),
      fmt::format("Method: fit_step_model with {} conductance bins (devices/step_model.cpp): the window's", o.bins),
      "  drift over the ramp ids from the turning points (kept only if a likelihood-ratio test accepts it), then",
      "  in the window's reference frame per bin the",
      "  maximum-likelihood Gaussian step (mean, spread) with each ramp's device-to-device factor divided out,",
      "  the factors' log-std by the method of moments around a cycle-ageing trend over the ramp ids (kept",
      "  only if a likelihood-ratio test accepts it), the reversal transient by profile likelihood, the read",
      "  noise from the lag-1 autocovariance of consecutive steps (kept only if likelihood-ratio tests accept",
      "  it; the step spreads are then the intrinsic ones, the read noise taken out).",
      "  " + window_drift_summary(c.diagnostics, p) + ".",
      "  " + read_noise_summary(c.diagnostics) + ".",
      "Fitted keys: device.g_min, g_max, g_nodes, up_mean, up_std, down_mean, down_std, d2d_sigma_up,",
      "  d2d_sigma_down, up/down_reversal_depth and _decay, up/down_ageing, window_drift_low/_high, read_noise_std;",
      "  every other key is the base card's (device.cycle too: cycle 0, the tables' reference, is just before measured ramp 1).",
  };
  if (!c.adjustments.empty()) {
    header.push_back("Moved into the card's ranges:");
    for (const std::string& a : c.adjustments) header.push_back("  " + a + ".");
  }
  const std::string text = fitted_card_yaml(base, p, header);

  // Check that the card loads (beside the output, so relative paths resolve as they will), then
  // rename it into place; on any error the output is untouched.
  const fs::path temp = core::temporary_path_for(o.output);
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw UserError(fmt::format("{}: cannot write the output file ({})", o.output.string(), std::strerror(errno)));
    out << text;
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(temp, ignored);
      throw UserError(fmt::format("{}: writing the output failed", o.output.string()));
    }
  }
  try {
    const auto& registry = devices::builtin_devices();
    const core::Card check = core::load_card(temp, {}, registry.param_lookup(), registry.names());
    devices::step_params_from(check.device);
  } catch (...) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  }
  std::error_code error;
  fs::rename(temp, o.output, error);
  if (error) {
    fs::remove(temp, error);
    throw UserError(fmt::format("{}: cannot rename the finished output into place", o.output.string()));
  }

  auto transient = [](double depth, double decay) {
    return depth == 0 ? std::string("none") : fmt::format("depth {:.3g}, decay {:.3g} pulses", depth, decay);
  };
  auto ageing = [](double a) { return a == 0 ? std::string("none") : fmt::format("{:.3g}", a); };
  return fmt::format(
      "Wrote {}: {} fitted on the fitting split of {} ({} SET, {} RESET ramps; {} bins; held-out ramps not used).\n"
      "  window {} to {}; device-to-device log-std {:.3g} (SET), {:.3g} (RESET)\n"
      "  reversal transient: SET {}; RESET {}\n"
      "  cycle ageing (log factor per cycle, ramp ids as cycles): SET {}; RESET {}\n"
      "  {}\n  {}\n{}",
      o.output.string(), kModel, o.measured.string(), c.set_ramps, c.reset_ramps, o.bins, format_siemens(p.g_min),
      format_siemens(p.g_max), p.d2d_sigma_up, p.d2d_sigma_down, transient(p.up_reversal_depth, p.up_reversal_decay),
      transient(p.down_reversal_depth, p.down_reversal_decay), ageing(p.up_ageing), ageing(p.down_ageing),
      window_drift_summary(c.diagnostics, p), read_noise_summary(c.diagnostics),
      c.adjustments.empty() ? std::string()
                            : fmt::format("  moved into the card's ranges: {}\n", fmt::join(c.adjustments, "; ")));
}

// ---- validate ----------------------------------------------------------------------------------

ValidationReport validate_card(const core::Card& card, const MeasuredRamps& measured, const ValidateSettings& s) {
  require_step_model(card, "validate");
  if (s.repetitions < 2) throw UserError(fmt::format("--repetitions: expected at least 2, got {}", s.repetitions));
  if (s.ks_bins < 1) throw UserError(fmt::format("--bins: expected at least 1, got {}", s.ks_bins));
  if (measured.units != "S")
    throw UserError(fmt::format("measured conductances are in '{}': expected 'S'", measured.units));
  const devices::RampData data = split_ramps(measured, s.split);
  if (data.set.empty() && data.reset.empty())
    throw UserError(fmt::format("split '{}' holds no ramps", s.split));
  const auto [g_lo, g_hi] = measured_range(measured);
  if (!(g_hi > g_lo)) throw UserError("the measured ramps span no conductance range");

  const devices::StepDevice device(devices::step_params_from(card.device));
  const core::RandomStream stream(card.seed, "validate");
  ValidationReport report;
  report.card_file = card.file.string();
  report.split = s.split;
  report.repetitions = s.repetitions;
  report.seed = card.seed;
  report.g_lo = g_lo;
  report.g_hi = g_hi;
  report.measured_set = data.set;
  report.measured_reset = data.reset;
  const ScoreSettings settings{g_lo, g_hi, s.ks_bins, kMinBinSteps};
  const auto set_runs = devices::replay_ramps(device, data.set, true, s.repetitions, stream.derive("set"));
  report.set = score_direction(data.set, set_runs, settings);
  const auto reset_runs = devices::replay_ramps(device, data.reset, false, s.repetitions, stream.derive("reset"));
  report.reset = score_direction(data.reset, reset_runs, settings);
  return report;
}

std::string validation_json(const ValidationReport& r) {
  auto direction = [&](const DirectionScore& d) {
    std::string bins;
    for (std::size_t b = 0; b < d.bins.size(); ++b) {
      const KsBin& bin = d.bins[b];
      bins += fmt::format(
          "{}{{\"g_lo\": {}, \"g_hi\": {}, \"measured_steps\": {}, \"simulated_steps\": {}, \"ks\": {}, "
          "\"populated\": {}}}",
          b ? ", " : "", json_number(bin.g_lo), json_number(bin.g_hi), bin.measured_steps, bin.simulated_steps,
          json_number(bin.ks), bin.populated ? "true" : "false");
    }
    return fmt::format(
        "{{\"rmse_rel\": {}, \"ks_max\": {}, \"coverage\": {}, \"rmse_s\": {}, \"ramps\": {}, \"points\": {}, "
        "\"rmse_indices\": {}, \"populated_bins\": {}, \"ks_bins\": [{}]}}",
        json_number(d.rmse_rel), json_number(d.ks_max), json_number(d.coverage), json_number(d.rmse), d.ramps,
        d.points, d.rmse_indices, d.populated_bins, bins);
  };
  return fmt::format("{{\"set\": {}, \"reset\": {}}}\n", direction(r.set), direction(r.reset));
}

std::string validation_table(const ValidationReport& r) {
  auto metric = [](double v, const char* format) {
    return std::isfinite(v) ? fmt::format(fmt::runtime(format), v) : std::string("n/a");
  };
  std::string text = fmt::format(
      "Validation of {} on the {} split ({} SET, {} RESET ramps; {} simulated repetitions per ramp, seed {}).\n"
      "Conductance range of the measured file: {} to {} ({}).\n\n",
      r.card_file, r.split, r.set.ramps, r.reset.ramps, r.repetitions, r.seed, format_siemens(r.g_lo),
      format_siemens(r.g_hi), format_siemens(r.g_hi - r.g_lo));
  text += fmt::format("{:<10} {:>10} {:>10}  {}\n", "metric", "SET", "RESET", "meaning");
  text += fmt::format("{:<10} {:>10} {:>10}  {}\n", "rmse_rel", metric(r.set.rmse_rel, "{:.4f}"),
                      metric(r.reset.rmse_rel, "{:.4f}"), "RMSE of the mean trajectory / conductance range");
  text += fmt::format("{:<10} {:>10} {:>10}  {}\n", "ks_max", metric(r.set.ks_max, "{:.4f}"),
                      metric(r.reset.ks_max, "{:.4f}"),
                      fmt::format("largest KS statistic of the steps over populated bins (>= {} measured steps)",
                                  kMinBinSteps));
  text += fmt::format("{:<10} {:>10} {:>10}  {}\n", "coverage", metric(r.set.coverage, "{:.4f}"),
                      metric(r.reset.coverage, "{:.4f}"), "measured points inside the simulated 5-95 % band");
  text += "\nKS statistic per conductance bin (measured steps in brackets; - : not populated):\n";
  text += fmt::format("{:<24} {:>16} {:>16}\n", "bin", "SET", "RESET");
  const std::size_t bins = std::max(r.set.bins.size(), r.reset.bins.size());
  for (std::size_t b = 0; b < bins; ++b) {
    auto cell = [&](const DirectionScore& d) {
      if (b >= d.bins.size()) return std::string("-");
      const KsBin& bin = d.bins[b];
      return bin.populated ? fmt::format("{:.3f} ({})", bin.ks, bin.measured_steps)
                           : fmt::format("- ({})", bin.measured_steps);
    };
    const KsBin& any = b < r.set.bins.size() ? r.set.bins[b] : r.reset.bins[b];
    text += fmt::format("{:<24} {:>16} {:>16}\n",
                        fmt::format("{:.4g}-{:.4g} mS", any.g_lo * 1e3, any.g_hi * 1e3), cell(r.set), cell(r.reset));
  }
  return text;
}

void write_validation_report(const ValidationReport& r, const fs::path& path) {
  core::TraceWriter w(path);
  w.set_attribute("/", "kind", std::string("validation"));
  w.set_attribute("/", "card", r.card_file);
  w.set_attribute("/", "measured", r.measured_file);
  w.set_attribute("/", "split", r.split);
  w.set_attribute("/", "repetitions", static_cast<std::int64_t>(r.repetitions));
  w.set_attribute("/", "seed", static_cast<std::int64_t>(r.seed));
  w.set_attribute("/", "g_lo", r.g_lo);
  w.set_attribute("/", "g_hi", r.g_hi);
  w.set_attribute("/", "band_low", kBandLow);
  w.set_attribute("/", "band_high", kBandHigh);
  w.set_attribute("/", "min_bin_steps", static_cast<std::int64_t>(kMinBinSteps));
  w.set_attribute("/", "xbar_version", std::string(core::kVersion));
  auto direction = [&](const std::string& name, const std::vector<devices::Ramp>& ramps, const DirectionScore& d) {
    const std::string g = "/" + name;
    w.create_group(g);
    w.set_attribute(g, "ramps", static_cast<std::int64_t>(d.ramps));
    w.set_attribute(g, "rmse_rel", d.rmse_rel);
    w.set_attribute(g, "rmse_s", d.rmse);
    w.set_attribute(g, "ks_max", d.ks_max);
    w.set_attribute(g, "coverage", d.coverage);
    w.set_attribute(g, "points", static_cast<std::int64_t>(d.points));
    w.set_attribute(g, "rmse_indices", static_cast<std::int64_t>(d.rmse_indices));
    w.set_attribute(g, "populated_bins", static_cast<std::int64_t>(d.populated_bins));
    // Per bin.
    const std::size_t bins = d.bins.size();
    std::vector<double> edges, ks;
    std::vector<std::int32_t> measured_steps, simulated_steps, populated;
    for (const KsBin& bin : d.bins) {
      edges.push_back(bin.g_lo);
      ks.push_back(bin.ks);
      measured_steps.push_back(bin.measured_steps);
      simulated_steps.push_back(static_cast<std::int32_t>(std::min<long>(bin.simulated_steps, INT32_MAX)));
      populated.push_back(bin.populated ? 1 : 0);
    }
    if (!d.bins.empty()) edges.push_back(d.bins.back().g_hi);
    w.write(g + "/ks_bin_edges", edges, {edges.size()}, "S");
    w.write(g + "/ks", ks, {bins}, "1");
    w.write(g + "/ks_measured_steps", measured_steps, {bins}, "1");
    w.write(g + "/ks_simulated_steps", simulated_steps, {bins}, "1");
    w.write(g + "/ks_populated", populated, {bins}, "1");
    if (ramps.empty()) return;
    // Per ramp and pulse index (NaN after each ramp's end).
    std::size_t longest = 0;
    for (const auto& ramp : ramps) longest = std::max(longest, ramp.g.size());
    const std::size_t k_count = ramps.size();
    auto matrix = [&](auto value_of) {
      std::vector<double> m(k_count * longest, kNaN);
      for (std::size_t k = 0; k < k_count; ++k)
        for (std::size_t i = 0; i < ramps[k].g.size(); ++i) m[k * longest + i] = value_of(k, i);
      return m;
    };
    const std::vector<std::size_t> dims = {k_count, longest};
    w.write(g + "/measured", matrix([&](std::size_t k, std::size_t i) { return ramps[k].g[i]; }), dims, "S");
    w.write(g + "/sim_p05", matrix([&](std::size_t k, std::size_t i) { return d.bands[k].p05[i]; }), dims, "S");
    w.write(g + "/sim_p50", matrix([&](std::size_t k, std::size_t i) { return d.bands[k].p50[i]; }), dims, "S");
    w.write(g + "/sim_p95", matrix([&](std::size_t k, std::size_t i) { return d.bands[k].p95[i]; }), dims, "S");
    w.write(g + "/sim_mean", matrix([&](std::size_t k, std::size_t i) { return d.bands[k].mean[i]; }), dims, "S");
    std::vector<std::int32_t> length, ids;
    for (const auto& ramp : ramps) {
      length.push_back(static_cast<std::int32_t>(ramp.g.size()));
      ids.push_back(ramp.id);
    }
    w.write(g + "/length", length, {k_count}, "1");
    w.write(g + "/ramp_id", ids, {k_count}, "1");
    w.write(g + "/mean_measured", d.mean_measured, {d.mean_measured.size()}, "S");
    w.write(g + "/mean_simulated", d.mean_simulated, {d.mean_simulated.size()}, "S");
  };
  direction("set", r.measured_set, r.set);
  direction("reset", r.measured_reset, r.reset);
  w.commit();
}

namespace {

// Runs `python3 plot_validation.py REPORT -o PNG`; UserError when it cannot run or fails.
void run_plot(const fs::path& report, const fs::path& png) {
  const std::string script = XBAR_PLOT_VALIDATION_SCRIPT;
  std::error_code ec;
  if (!fs::exists(script, ec)) throw UserError(fmt::format("--plot: the plotting script {} is missing", script));
  std::vector<std::string> args = {kPython, script, report.string(), "-o", png.string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (const int rc = posix_spawn(&pid, kPython, nullptr, nullptr, argv.data(), environ); rc != 0)
    throw UserError(fmt::format("--plot: cannot run {} ({}); scripts/setup.sh installs it", kPython, std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw UserError(fmt::format("--plot: waiting for {} failed", kPython));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw UserError(fmt::format("--plot: {} failed (exit status {}); {} was not written", script,
                                WIFEXITED(status) ? WEXITSTATUS(status) : -1, png.string()));
}

}  // namespace

std::string validate_command(const ValidateOptions& o) {
  const core::Card card = load_card_for_cli(o.card, o.overrides, o.seed);
  require_step_model(card, "validate");
  const MeasuredRamps measured = read_measured(o.measured);
  ValidationReport report = validate_card(card, measured, o.settings);
  report.measured_file = o.measured.string();

  if (!o.output.empty() || !o.plot.empty()) {
    // The report goes to a staging name first; it is renamed to -o only when the picture (if any)
    // has been drawn, so an error leaves nothing behind.
    const fs::path folder = !o.output.empty() ? (o.output.has_parent_path() ? o.output.parent_path() : fs::path("."))
                                              : fs::temp_directory_path();
    const std::string stem = !o.output.empty() ? o.output.filename().string() : std::string("validation.h5");
    const fs::path staging = folder / fmt::format(".{}.staging{}.h5", stem, ::getpid());
    try {
      write_validation_report(report, staging);
    } catch (const UserError&) {
      if (!o.output.empty()) throw UserError(fmt::format("{}: cannot write the report", o.output.string()));
      throw;
    }
    try {
      if (!o.plot.empty()) run_plot(staging, o.plot);
      if (!o.output.empty()) {
        std::error_code error;
        fs::rename(staging, o.output, error);
        if (error) throw UserError(fmt::format("{}: cannot rename the finished report into place", o.output.string()));
      } else {
        fs::remove(staging);
      }
    } catch (...) {
      std::error_code ignored;
      fs::remove(staging, ignored);
      throw;
    }
  }
  return o.json ? validation_json(report) : validation_table(report);
}

}  // namespace xbar::tools
