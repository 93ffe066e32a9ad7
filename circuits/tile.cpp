#include "circuits/tile.hpp"

#include <stdexcept>

#include "circuits/effective_solver.hpp"
#include "core/error.hpp"

namespace xbar::circuits {
namespace {

// Worst outcome and summed times of two stages.
void accumulate(SolveSummary& total, const SolveSummary& part) {
  if (total.ok() && !part.ok()) {
    total.status = part.status;
    total.message = part.message;
  }
  if (total.warning.empty()) total.warning = part.warning;
  total.method = part.method;
  total.iterations = std::max(total.iterations, part.iterations);
  total.residual = std::max(total.residual, part.residual);
  total.analyse_s += part.analyse_s;
  total.factorize_s += part.factorize_s;
  total.solve_s += part.solve_s;
}

noise::RtnOptions rtn_options(const core::DeviceOptions& device) {
  noise::RtnOptions options;
  options.fraction = device.rtn_fraction;
  options.amplitude_rel = device.rtn_amplitude_rel;
  options.capture_rate = device.rtn_capture_rate;
  options.emission_rate = device.rtn_emission_rate;
  return options;
}

}  // namespace

Tile::Tile(const core::Card& card, const devices::DeviceRegistry& registry, int outputs, int tile_index,
           int batch_hint)
    : card_(card),
      tile_index_(tile_index),
      mapping_(card.mapping, card.device.g_min, card.device.g_max, card.tile.rows, card.tile.cols, outputs),
      dac_(card.dac),
      adc_([&] {
        core::RandomStream rng(card.seed, "adc_errors", {static_cast<std::uint64_t>(tile_index)});
        return Adc(card.adc, mapping_.channels(), mapping_.full_scale_conductance() * card.dac.v_read, rng);
      }()),
      device_(registry.create(card.device)),
      cell_model_{device_->iv(), card.tile.r_access_on},
      solver_method_(resolve_method(card.solver, !cell_model_.linear(), batch_hint * dac_.planes())),
      solver_([&] {
        core::SolverOptions options = card.solver;
        options.method = solver_method_;
        return make_solver(options, card.tile.rows, card.tile.cols, card.tile.wires);
      }()),
      rtn_options_(rtn_options(card.device)) {}

void Tile::program(const Eigen::MatrixXd& weights, bool take_reference) {
  const auto tile = static_cast<std::uint64_t>(tile_index_);
  const int rows = card_.tile.rows, cols = card_.tile.cols;
  core::RandomStream rng(card_.seed, "programming", {tile});
  programmed_ = device_->program(mapping_.target_conductances(weights), rng);
  variation_.resize(0, 0);
  if (card_.device.variation_sigma_log > 0) {
    // Extra device-to-device variation: a multiplicative lognormal field (mean 1) over every
    // conductance the model produces, programmed or read.
    core::RandomStream variation_rng(card_.seed, "variation", {tile});
    variation_ = noise::lognormal_field(rows, cols, card_.device.variation_sigma_log,
                                        card_.device.variation_correlation_cells, variation_rng);
  }
  core::RandomStream fault_rng(card_.seed, "faults", {tile});
  stuck_ = noise::stuck_at_map(rows, cols, card_.device.stuck_low_rate, card_.device.stuck_high_rate, fault_rng);
  // The device's own state stays as the model made it; what the array holds after programming
  // also carries the variation field and the faults (as every read does).
  g_programmed_ = programmed_.g_programmed;
  if (variation_.size() > 0) g_programmed_.array() *= variation_.array();
  noise::apply_stuck_at(g_programmed_, stuck_, card_.device.g_min, card_.device.g_max);
  rtn_by_read_.clear();
  if (rtn_options_.fraction > 0) {
    core::RandomStream trap_rng(card_.seed, "rtn_traps", {tile});
    rtn_traps_ = noise::rtn_trap_map(rows, cols, rtn_options_, trap_rng);
    core::RandomStream occupancy_rng(card_.seed, "rtn_occupancy", {tile});
    rtn_by_read_ = noise::rtn_occupancy(rtn_traps_, rtn_options_, card_.workload.read_times_s, occupancy_rng);
  }
  g_device_.resize(0, 0);
  reference_output_ = 0;
  if (card_.mapping.drift_compensation && take_reference) {
    core::RandomStream reference_rng(card_.seed, "drift_reference", {tile});
    noise::MatrixI occupancy;
    SolveSummary summary = prepare(conductance_seen(0.0, reference_rng, rtn_for_read(0.0, -1, occupancy)));
    if (summary.ok()) reference_output_ = reference_output(0, summary);
    if (!summary.ok()) throw std::runtime_error("the drift compensation reference read failed: " + summary.message);
  }
}

const noise::MatrixI& Tile::rtn_for_read(double time_s, int read_index, noise::MatrixI& scratch) const {
  if (rtn_options_.fraction <= 0) return scratch;  // empty: no telegraph noise
  const auto& times = card_.workload.read_times_s;
  if (read_index >= 0 && read_index < static_cast<int>(rtn_by_read_.size()) && times[read_index] == time_s)
    return rtn_by_read_[read_index];
  // A read outside the card's list: the trap state from its stationary distribution.
  core::RandomStream rng(card_.seed, "rtn_read",
                         {static_cast<std::uint64_t>(tile_index_), static_cast<std::uint64_t>(read_index + 1)});
  scratch = noise::rtn_occupancy(rtn_traps_, rtn_options_, {time_s}, rng).front();
  return scratch;
}

Eigen::MatrixXd Tile::conductance_seen(double time_s, core::RandomStream& rng, const noise::MatrixI& rtn) const {
  Eigen::MatrixXd g = device_->read_conductance(programmed_, time_s, rng);
  if (variation_.size() > 0) g.array() *= variation_.array();
  if (rtn.size() > 0) noise::apply_rtn(g, rtn, rtn_options_);
  noise::apply_stuck_at(g, stuck_, card_.device.g_min, card_.device.g_max);
  return g;
}

Eigen::MatrixXd Tile::read_conductance(double time_s, int read_index) const {
  core::RandomStream rng(card_.seed, "read_conductance",
                         {static_cast<std::uint64_t>(tile_index_), static_cast<std::uint64_t>(read_index)});
  noise::MatrixI scratch;
  return conductance_seen(time_s, rng, rtn_for_read(time_s, read_index, scratch));
}

SolveSummary Tile::prepare(const Eigen::MatrixXd& conductance) {
  // Refactorise only when the conductances changed (an ideal device reads the same every time).
  if (g_device_.size() == 0 || g_device_.rows() != conductance.rows() || g_device_ != conductance) {
    g_device_ = conductance;
    factor_summary_ = solver_->set_cells(g_device_, cell_model_);
    return factor_summary_;
  }
  SolveSummary reused = factor_summary_;
  reused.analyse_s = reused.factorize_s = 0;
  return reused;
}

SolveSummary Tile::solve_plane(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd& i_ideal,
                               Eigen::MatrixXd* v_cell) {
  i_ideal = ideal_currents(g_device_, v_in, cell_model_);
  return solver_->solve(v_in, i_out, v_cell, 0);
}

SolveSummary Tile::calibrate_adc(const Eigen::MatrixXd& calibration_inputs) {
  if (card_.adc.range != core::AdcRange::calibrated) return {};
  core::RandomStream rng(card_.seed, "adc_calibration", {static_cast<std::uint64_t>(tile_index_)});
  noise::MatrixI occupancy;
  SolveSummary summary = prepare(conductance_seen(0.0, rng, rtn_for_read(0.0, -1, occupancy)));
  if (!summary.ok()) return summary;
  Eigen::MatrixXd currents(mapping_.channels(), calibration_inputs.cols() * dac_.planes());
  for (int plane = 0; plane < dac_.planes(); ++plane) {
    Eigen::MatrixXd i_out, i_ideal;
    accumulate(summary, solve_plane(dac_.voltages(calibration_inputs, plane), i_out, i_ideal, nullptr));
    if (!summary.ok()) return summary;
    currents.middleCols(plane * calibration_inputs.cols(), calibration_inputs.cols()) =
        mapping_.channel_currents(i_out);
  }
  adc_.calibrate(currents);
  return summary;
}

Eigen::MatrixXd Tile::convert(const Eigen::MatrixXd& inputs, const char* noise_purpose, std::uint64_t read_key,
                              TileRead* read, SolveSummary& summary) {
  const auto tile = static_cast<std::uint64_t>(tile_index_);
  const int planes = dac_.planes();
  if (read) {
    read->v_in.resize(planes);
    read->i_out.resize(planes);
    read->i_ideal.resize(planes);
    read->adc_code.resize(planes);
  }
  Eigen::MatrixXd digital = Eigen::MatrixXd::Zero(mapping_.channels(), inputs.cols());
  for (int plane = 0; plane < planes && summary.ok(); ++plane) {
    Eigen::MatrixXd v_in = dac_.voltages(inputs, plane), i_out, i_ideal, code, i_hat;
    const bool probe = read && plane == planes - 1;
    accumulate(summary, solve_plane(v_in, i_out, i_ideal, probe ? &read->v_cell : nullptr));
    if (!summary.ok()) break;
    core::RandomStream noise_rng(card_.seed, noise_purpose, {tile, read_key, static_cast<std::uint64_t>(plane)});
    adc_.convert(mapping_.channel_currents(i_out), noise_rng, code, i_hat);
    digital += dac_.plane_weight(plane) * i_hat;
    if (read) {
      read->v_in[plane] = std::move(v_in);
      read->i_out[plane] = std::move(i_out);
      read->i_ideal[plane] = std::move(i_ideal);
      read->adc_code[plane] = std::move(code);
    }
  }
  return mapping_.outputs_from_channels(digital, dac_.quantize(inputs), dac_.volts_per_input());
}

double Tile::reference_output(std::uint64_t /*read_key*/, SolveSummary& summary) {
  // The reference input: every row at full scale. The compensation circuit integrates the
  // channel currents over all columns at full resolution (not through the column ADCs, whose
  // ranges are set for the network's signals and would round a differential reference to 0).
  const Eigen::MatrixXd reference = Eigen::MatrixXd::Constant(mapping_.inputs(), 1, card_.dac.input_max);
  double total = 0;
  for (int plane = 0; plane < dac_.planes() && summary.ok(); ++plane) {
    Eigen::MatrixXd i_out, i_ideal;
    accumulate(summary, solve_plane(dac_.voltages(reference, plane), i_out, i_ideal, nullptr));
    if (summary.ok()) total += dac_.plane_weight(plane) * mapping_.channel_currents(i_out).cwiseAbs().sum();
  }
  return total;
}

TileRead Tile::read(const Eigen::MatrixXd& inputs, double time_s, int read_index) {
  if (inputs.rows() != mapping_.inputs())
    throw core::UserError("tile read: inputs have " + std::to_string(inputs.rows()) + " rows, the tile " +
                          std::to_string(mapping_.inputs()));
  TileRead result;
  result.time_s = time_s;
  result.conductance = read_conductance(time_s, read_index);
  result.summary = prepare(result.conductance);
  result.x_q = dac_.quantize(inputs);
  const auto read_key = static_cast<std::uint64_t>(read_index);
  if (!result.summary.ok()) return result;
  result.y = convert(inputs, "adc_noise", read_key, &result, result.summary);
  if (result.summary.ok() && card_.mapping.drift_compensation) {
    // The reference read shares this read's conductances (it is taken at the same moment).
    const double now = reference_output(read_key + 1, result.summary);
    if (result.summary.ok() && now > 0) {
      result.drift_scale = reference_output_ / now;
      result.y *= result.drift_scale;
    }
  }
  return result;
}

void Tile::reseed(std::uint64_t seed) {
  card_.seed = seed;
  core::RandomStream rng(card_.seed, "adc_errors", {static_cast<std::uint64_t>(tile_index_)});
  adc_ = Adc(card_.adc, mapping_.channels(), mapping_.full_scale_conductance() * card_.dac.v_read, rng);
  g_device_.resize(0, 0);
  reference_output_ = 0;
  drift_scale_ = 1;
}

SolveSummary Tile::begin_reads(double time_s, int read_index) {
  SolveSummary summary = prepare(read_conductance(time_s, read_index));
  drift_scale_ = 1;
  if (summary.ok() && card_.mapping.drift_compensation && reference_output_ > 0) {
    const double now = reference_output(static_cast<std::uint64_t>(read_index) + 1, summary);
    if (summary.ok() && now > 0) drift_scale_ = reference_output_ / now;
  }
  return summary;
}

Eigen::MatrixXd Tile::read_outputs(const Eigen::MatrixXd& inputs, std::uint64_t noise_key, bool calibrate_ranges,
                                   SolveSummary& summary) {
  const Eigen::Index used = inputs.rows(), batch = inputs.cols();
  if (used > mapping_.inputs())
    throw std::invalid_argument("Tile::read_outputs: " + std::to_string(used) + " input rows, the tile has " +
                                std::to_string(mapping_.inputs()));
  if (g_device_.size() == 0) throw std::logic_error("Tile::read_outputs before begin_reads");
  const auto* effective = dynamic_cast<const EffectiveSolver*>(solver_.get());
  const int planes = dac_.planes();
  std::vector<Eigen::MatrixXd> channel(planes);
  for (int plane = 0; plane < planes && summary.ok(); ++plane) {
    const Eigen::MatrixXd v_used = dac_.voltages(inputs, plane);
    Eigen::MatrixXd i_out;
    if (effective) {
      i_out.noalias() = effective->matrix().leftCols(used) * v_used;
    } else {
      Eigen::MatrixXd v_in = Eigen::MatrixXd::Zero(mapping_.inputs(), batch);
      v_in.topRows(used) = v_used;
      accumulate(summary, solver_->solve(v_in, i_out, nullptr, 0));
      if (!summary.ok()) break;
    }
    channel[plane] = mapping_.channel_currents(i_out);
  }
  if (!summary.ok()) return {};
  if (calibrate_ranges && card_.adc.range == core::AdcRange::calibrated) {
    Eigen::MatrixXd currents(mapping_.channels(), batch * planes);
    for (int plane = 0; plane < planes; ++plane) currents.middleCols(plane * batch, batch) = channel[plane];
    adc_.calibrate(currents);
  }
  const auto tile = static_cast<std::uint64_t>(tile_index_);
  Eigen::MatrixXd digital = Eigen::MatrixXd::Zero(mapping_.channels(), batch), code, i_hat;
  for (int plane = 0; plane < planes; ++plane) {
    core::RandomStream noise_rng(card_.seed, "adc_noise_batch", {tile, noise_key, static_cast<std::uint64_t>(plane)});
    adc_.convert(channel[plane], noise_rng, code, i_hat);
    digital += dac_.plane_weight(plane) * i_hat;
  }
  return drift_scale_ * mapping_.outputs_from_channels(digital, dac_.quantize(inputs), dac_.volts_per_input());
}

Eigen::MatrixXd Tile::linear_map(int used_rows, bool through_wires) const {
  if (g_device_.size() == 0) throw std::logic_error("Tile::linear_map before begin_reads");
  if (used_rows < 0 || used_rows > mapping_.inputs())
    throw std::invalid_argument("Tile::linear_map: used_rows = " + std::to_string(used_rows));
  Eigen::MatrixXd column_map;  // C × used_rows, A per V
  if (through_wires) {
    const auto* effective = dynamic_cast<const EffectiveSolver*>(solver_.get());
    if (!effective)
      throw std::logic_error("Tile::linear_map through the wires needs the effective-matrix solver, not " +
                             solver_method_);
    column_map = effective->matrix().leftCols(used_rows);
  } else {
    column_map = g_device_.topRows(used_rows).transpose();
  }
  // Each input unit is volts_per_input volts on its row; the map is linear in (currents, x_q).
  const double vpi = dac_.volts_per_input();
  return drift_scale_ * mapping_.outputs_from_channels(mapping_.channel_currents(column_map * vpi),
                                                       Eigen::MatrixXd::Identity(used_rows, used_rows), vpi);
}

}  // namespace xbar::circuits
