#include "circuits/tile.hpp"

#include "core/error.hpp"

namespace xbar::circuits {
namespace {

core::RandomStream adc_error_stream(const core::Card& card, int tile_index) {
  return core::RandomStream(card.seed, "adc_errors", {static_cast<std::uint64_t>(tile_index)});
}

// Worst outcome and summed times of two stages.
void accumulate(SolveSummary& total, const SolveSummary& part) {
  if (total.ok() && !part.ok()) {
    total.status = part.status;
    total.message = part.message;
  }
  total.method = part.method;
  total.iterations = std::max(total.iterations, part.iterations);
  total.residual = std::max(total.residual, part.residual);
  total.analyse_s += part.analyse_s;
  total.factorize_s += part.factorize_s;
  total.solve_s += part.solve_s;
}

}  // namespace

Tile::Tile(const core::Card& card, const devices::DeviceRegistry& registry, int outputs, int tile_index)
    : card_(card),
      tile_index_(tile_index),
      mapping_(card.mapping, card.device.g_min, card.device.g_max, card.tile.rows, card.tile.cols, outputs),
      dac_(card.dac),
      adc_([&] {
        auto rng = adc_error_stream(card, tile_index);
        return Adc(card.adc, mapping_.channels(), mapping_.full_scale_conductance() * card.dac.v_read, rng);
      }()),
      device_(registry.create(card.device)),
      solver_(make_solver(card.solver, card.tile.rows, card.tile.cols, card.tile.wires)) {}

void Tile::program(const Eigen::MatrixXd& weights) {
  core::RandomStream rng(card_.seed, "programming", {static_cast<std::uint64_t>(tile_index_)});
  programmed_ = device_->program(mapping_.target_conductances(weights), rng);
  g_cell_.resize(0, 0);
}

SolveSummary Tile::prepare(const Eigen::MatrixXd& conductance) {
  const Eigen::MatrixXd g_cell = series_conductance(conductance, card_.tile.r_access_on);
  // Refactorise only when the conductances changed (an ideal device reads the same every time).
  if (g_cell_.size() == 0 || g_cell_.rows() != g_cell.rows() || g_cell_ != g_cell) {
    g_cell_ = g_cell;
    factor_summary_ = solver_->set_conductances(g_cell_);
    return factor_summary_;
  }
  SolveSummary reused = factor_summary_;
  reused.analyse_s = reused.factorize_s = 0;
  return reused;
}

SolveSummary Tile::solve_plane(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd& i_ideal,
                               Eigen::MatrixXd* v_cell) {
  i_ideal = ideal_currents(g_cell_, v_in);
  return solver_->solve(v_in, i_out, v_cell, 0);
}

SolveSummary Tile::calibrate_adc(const Eigen::MatrixXd& calibration_inputs) {
  if (card_.adc.range != core::AdcRange::calibrated) return {};
  core::RandomStream rng(card_.seed, "adc_calibration", {static_cast<std::uint64_t>(tile_index_)});
  SolveSummary summary = prepare(device_->read_conductance(programmed_, 0.0, rng));
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

Eigen::MatrixXd Tile::read_conductance(double time_s, int read_index) const {
  core::RandomStream rng(card_.seed, "read_conductance",
                         {static_cast<std::uint64_t>(tile_index_), static_cast<std::uint64_t>(read_index)});
  return device_->read_conductance(programmed_, time_s, rng);
}

TileRead Tile::read(const Eigen::MatrixXd& inputs, double time_s, int read_index) {
  if (inputs.rows() != mapping_.inputs())
    throw core::UserError("tile read: inputs have " + std::to_string(inputs.rows()) + " rows, the tile " +
                          std::to_string(mapping_.inputs()));
  TileRead result;
  result.time_s = time_s;
  const auto tile = static_cast<std::uint64_t>(tile_index_);
  const auto read = static_cast<std::uint64_t>(read_index);
  result.conductance = read_conductance(time_s, read_index);
  result.summary = prepare(result.conductance);
  result.x_q = dac_.quantize(inputs);
  const int planes = dac_.planes();
  result.v_in.resize(planes);
  result.i_out.resize(planes);
  result.i_ideal.resize(planes);
  result.adc_code.resize(planes);
  Eigen::MatrixXd digital = Eigen::MatrixXd::Zero(mapping_.channels(), inputs.cols());
  for (int plane = 0; plane < planes && result.summary.ok(); ++plane) {
    result.v_in[plane] = dac_.voltages(inputs, plane);
    const bool probe = plane == planes - 1;
    accumulate(result.summary, solve_plane(result.v_in[plane], result.i_out[plane], result.i_ideal[plane],
                                           probe ? &result.v_cell : nullptr));
    if (!result.summary.ok()) break;
    core::RandomStream noise_rng(card_.seed, "adc_noise", {tile, read, static_cast<std::uint64_t>(plane)});
    Eigen::MatrixXd i_hat;
    adc_.convert(mapping_.channel_currents(result.i_out[plane]), noise_rng, result.adc_code[plane], i_hat);
    digital += dac_.plane_weight(plane) * i_hat;
  }
  if (result.summary.ok()) result.y = mapping_.outputs_from_channels(digital, result.x_q, dac_.volts_per_input());
  return result;
}

}  // namespace xbar::circuits
