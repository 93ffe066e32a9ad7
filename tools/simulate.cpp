#include "tools/simulate.hpp"

#include <fmt/format.h>

#include <chrono>
#include <sstream>
#include <stdexcept>

#include "circuits/spice.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "core/trace.hpp"
#include "core/version.hpp"
#include "devices/registry.hpp"

namespace xbar::tools {
namespace {

std::string read_group(int index) { return fmt::format("/reads/{:04d}", index); }

// Stacks per-plane matrices (each n×m, stored transposed as m×n rows-major) into a P×m×n array;
// with one plane (amplitude encoding) the result is m×n.
void write_planes(core::TraceWriter& trace, const std::string& path, const std::vector<Eigen::MatrixXd>& planes,
                  bool stacked, const std::string& units, bool integer) {
  const auto& first = planes.front();
  const std::size_t batch = first.cols(), width = first.rows();
  std::vector<std::size_t> dims = {batch, width};
  if (stacked) dims.insert(dims.begin(), planes.size());
  std::vector<double> values;
  values.reserve(planes.size() * batch * width);
  for (const auto& plane : planes)
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t k = 0; k < width; ++k) values.push_back(plane(k, b));
  if (integer) {
    std::vector<std::int32_t> codes(values.begin(), values.end());
    trace.write(path, codes, dims, units);
  } else {
    trace.write(path, values, dims, units);
  }
}

Eigen::MatrixXd calibration_inputs(const core::Card& card, const circuits::Workload& workload) {
  if (card.workload.inputs.distribution == core::Distribution::file) return workload.inputs;
  core::RandomStream rng(card.seed, "adc_calibration_inputs");
  return circuits::random_matrix(card.adc.calibration_inputs, card.tile.rows, card.workload.inputs, rng).transpose();
}

void require_ok(const circuits::SolveSummary& summary, const std::string& what) {
  if (!summary.ok())
    throw std::runtime_error(fmt::format("{}: the {} solver failed ({}): {}", what, summary.method,
                                         core::to_string(summary.status), summary.message));
}

}  // namespace

core::Card load_card_for_cli(const std::filesystem::path& card_file, std::vector<std::string> overrides,
                             const std::string& seed) {
  if (!seed.empty()) overrides.push_back("seed=" + seed);
  const auto& registry = devices::builtin_devices();
  return core::load_card(card_file, overrides, registry.param_lookup(), registry.names());
}

Simulation simulate(const core::Card& card) {
  const auto start = std::chrono::steady_clock::now();
  Simulation sim;
  sim.card = card;
  sim.workload = circuits::make_workload(card);
  sim.tile = std::make_unique<circuits::Tile>(card, devices::builtin_devices(),
                                              static_cast<int>(sim.workload.weights.rows()), 0,
                                              static_cast<int>(sim.workload.inputs.cols()));
  const auto program_start = std::chrono::steady_clock::now();
  sim.tile->program(sim.workload.weights);
  sim.program_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - program_start).count();
  sim.calibration = sim.tile->calibrate_adc(calibration_inputs(card, sim.workload));
  require_ok(sim.calibration, "ADC calibration read");
  for (std::size_t r = 0; r < card.workload.read_times_s.size(); ++r) {
    sim.reads.push_back(sim.tile->read(sim.workload.inputs, card.workload.read_times_s[r], static_cast<int>(r)));
    require_ok(sim.reads.back().summary, fmt::format("read {}", r));
  }
  sim.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sim;
}

ReadErrors read_errors(const circuits::TileRead& read, const Eigen::MatrixXd& y_ideal) {
  ReadErrors errors;
  double full_scale = 0, sum_out = 0, sum_ideal = 0, sum_error = 0;
  std::size_t count = 0;
  for (const auto& plane : read.i_ideal) full_scale = std::max(full_scale, plane.cwiseAbs().maxCoeff());
  for (std::size_t p = 0; p < read.i_out.size(); ++p) {
    const Eigen::MatrixXd error = (read.i_out[p] - read.i_ideal[p]).cwiseAbs();
    errors.ir_drop_max = std::max(errors.ir_drop_max, error.maxCoeff());
    sum_error += error.sum();
    count += error.size();
    sum_out += read.i_out[p].cwiseAbs().sum();
    sum_ideal += read.i_ideal[p].cwiseAbs().sum();
  }
  if (full_scale > 0) {
    errors.ir_drop_max /= full_scale;
    errors.ir_drop_mean = sum_error / static_cast<double>(count) / full_scale;
  } else {
    errors.ir_drop_max = 0;
  }
  errors.deficit = sum_ideal > 0 ? 1.0 - sum_out / sum_ideal : 0.0;
  const double y_scale = y_ideal.cwiseAbs().maxCoeff();
  const double rms = std::sqrt((read.y - y_ideal).squaredNorm() / static_cast<double>(std::max<Eigen::Index>(1, y_ideal.size())));
  errors.y_rms_rel = y_scale > 0 ? rms / y_scale : rms;
  return errors;
}

void write_trace(const Simulation& sim, const std::filesystem::path& path) {
  const core::Card& card = sim.card;
  const circuits::Tile& tile = *sim.tile;
  const bool bit_serial = card.dac.encoding == core::Encoding::bit_serial;
  core::TraceWriter trace(path);

  trace.set_attribute("/", "card", card.effective_yaml);
  trace.set_attribute("/", "card_file", card.file.string());
  trace.set_attribute("/", "seed", static_cast<std::int64_t>(card.seed));
  trace.set_attribute("/", "xbar_version", std::string(core::kVersion));
  trace.set_attribute("/", "solver", tile.solver_method());
  trace.set_attribute("/", "solver_requested", card.solver.method);

  trace.create_group("/array");
  trace.set_attribute("/array", "rows", static_cast<std::int64_t>(card.tile.rows));
  trace.set_attribute("/array", "cols", static_cast<std::int64_t>(card.tile.cols));
  trace.set_attribute("/array", "r_wl_segment", card.tile.wires.r_wl_segment);
  trace.set_attribute("/array", "r_bl_segment", card.tile.wires.r_bl_segment);
  trace.set_attribute("/array", "r_source", card.tile.wires.r_source);
  trace.set_attribute("/array", "r_sense", card.tile.wires.r_sense);
  trace.set_attribute("/array", "r_access", card.tile.r_access_on);
  trace.set_attribute("/array", "g_min", card.device.g_min);
  trace.set_attribute("/array", "g_max", card.device.g_max);
  trace.set_attribute("/array", "device_model", card.device.model);
  trace.write("/array/g_target", tile.programmed().g_target, "S");
  trace.write("/array/g_programmed", tile.g_programmed(), "S");
  trace.set_attribute("/array", "cell_iv", std::string(tile.cell_model().linear() ? "linear" : "nonlinear"));
  const auto& programmed = tile.programmed();
  if (programmed.pulses.size() > 0) {
    trace.write("/array/pulses", programmed.pulses, "1");
    trace.write("/array/converged", programmed.converged, "1");
  }
  if (tile.stuck_map().size() > 0 && tile.stuck_map().cwiseAbs().maxCoeff() > 0)
    trace.write("/array/stuck", tile.stuck_map(), "1");
  for (const auto& [name, state] : programmed.cell_state) 
    trace.write("/array/cell_state/" + name, state, tile.device().cell_state_units(name));

  trace.write("/workload/weights", sim.workload.weights, "1");
  trace.write("/workload/x", Eigen::MatrixXd(sim.workload.inputs.transpose()), "1");

  const auto& mapping = tile.mapping();
  trace.create_group("/mapping");
  trace.set_attribute("/mapping", "scheme",
                      std::string(card.mapping.scheme == core::MappingScheme::differential ? "differential" : "reference"));
  trace.set_attribute("/mapping", "w_max", card.mapping.w_max);
  trace.set_attribute("/mapping", "slices", static_cast<std::int64_t>(card.mapping.slices));
  trace.set_attribute("/mapping", "bits_per_slice", static_cast<std::int64_t>(card.mapping.bits_per_slice));
  trace.set_attribute("/mapping", "outputs", static_cast<std::int64_t>(mapping.outputs()));
  auto as_int32 = [](const std::vector<int>& v) { return std::vector<std::int32_t>(v.begin(), v.end()); };
  const std::vector<std::size_t> column_dims = {static_cast<std::size_t>(card.tile.cols)};
  trace.write("/mapping/column_output", as_int32(mapping.column_output()), column_dims, "1");
  trace.write("/mapping/column_slice", as_int32(mapping.column_slice()), column_dims, "1");
  trace.write("/mapping/column_sign", as_int32(mapping.column_sign()), column_dims, "1");

  trace.create_group("/dac");
  trace.set_attribute("/dac", "bits", static_cast<std::int64_t>(card.dac.bits));
  trace.set_attribute("/dac", "v_read", card.dac.v_read);
  trace.set_attribute("/dac", "input_max", card.dac.input_max);
  trace.set_attribute("/dac", "encoding", std::string(bit_serial ? "bit_serial" : "amplitude"));
  trace.set_attribute("/dac", "planes", static_cast<std::int64_t>(tile.dac().planes()));

  const auto& adc = tile.adc();
  trace.create_group("/adc");
  trace.set_attribute("/adc", "bits", static_cast<std::int64_t>(card.adc.bits));
  trace.set_attribute("/adc", "range_mode", std::string(card.adc.range == core::AdcRange::fixed ? "fixed" : "calibrated"));
  trace.set_attribute("/adc", "noise_sigma", card.adc.noise_sigma);
  auto vec = [](const Eigen::VectorXd& v) { return std::vector<double>(v.data(), v.data() + v.size()); };
  trace.write("/adc/range", vec(adc.range()), "A");
  trace.write("/adc/offset", vec(adc.offset()), "A");
  trace.write("/adc/gain_error", vec(adc.gain_error()), "1");
  if (adc.inl().size() > 0) trace.write("/adc/inl", vec(adc.inl()), "LSB");

  for (std::size_t r = 0; r < sim.reads.size(); ++r) {
    const circuits::TileRead& read = sim.reads[r];
    const std::string group = read_group(static_cast<int>(r));
    const Eigen::MatrixXd y_ideal = sim.workload.weights * sim.workload.inputs;
    const ReadErrors errors = read_errors(read, y_ideal);
    trace.create_group(group);
    trace.set_attribute(group, "time_s", read.time_s);
    trace.set_attribute(group, "solver", read.summary.method);
    trace.set_attribute(group, "status", std::string(core::to_string(read.summary.status)));
    trace.set_attribute(group, "iterations", static_cast<std::int64_t>(read.summary.iterations));
    trace.set_attribute(group, "residual", read.summary.residual);
    trace.set_attribute(group, "encoding", std::string(bit_serial ? "bit_serial" : "amplitude"));
    trace.set_attribute(group, "ir_drop_err_mean", errors.ir_drop_mean);
    trace.set_attribute(group, "ir_drop_err_max", errors.ir_drop_max);
    trace.set_attribute(group, "signal_deficit", errors.deficit);
    trace.set_attribute(group, "drift_scale", read.drift_scale);
    if (!read.summary.warning.empty()) trace.set_attribute(group, "warning", read.summary.warning);
    trace.write(group + "/conductance", read.conductance, "S");
    write_planes(trace, group + "/v_in", read.v_in, bit_serial, "V", false);
    write_planes(trace, group + "/i_out", read.i_out, bit_serial, "A", false);
    write_planes(trace, group + "/i_ideal", read.i_ideal, bit_serial, "A", false);
    write_planes(trace, group + "/adc_code", read.adc_code, bit_serial, adc.ideal() ? "1" : "LSB", !adc.ideal());
    trace.write(group + "/y", Eigen::MatrixXd(read.y.transpose()), "1");
    trace.write(group + "/y_ideal", Eigen::MatrixXd(y_ideal.transpose()), "1");
    trace.write(group + "/v_cell", read.v_cell, "V");
    trace.set_attribute(group + "/v_cell", "batch_index", std::int64_t{0});
  }
  trace.commit();
}

std::string summary_text(const Simulation& sim, const std::filesystem::path& trace_path) {
  const core::Card& card = sim.card;
  const auto& wires = card.tile.wires;
  std::string text;
  text += fmt::format("xbar simulate {}\n", card.file.string());
  text += fmt::format("  array      {} x {} {}, wires {:g} / {:g} ohm per WL / BL segment, source {:g} ohm, "
                      "sense {:g} ohm\n",
                      card.tile.rows, card.tile.cols,
                      card.tile.access == core::AccessType::transistor ? fmt::format("1T1R (r_on {:g} ohm)", card.tile.r_access_on) : "1R",
                      wires.r_wl_segment, wires.r_bl_segment, wires.r_source, wires.r_sense);
  text += fmt::format("  device     {}, g {:g} .. {:g} uS; mapping {} x {} weights\n", card.device.model,
                      card.device.g_min * 1e6, card.device.g_max * 1e6, sim.workload.weights.rows(),
                      sim.workload.weights.cols());
  const auto& programmed = sim.tile->programmed();
  if (programmed.pulses.size() > 0) {
    const double cells = static_cast<double>(programmed.pulses.size());
    text += fmt::format("  programmed write-verify in {:.3g} s: {:.4g} % of cells inside the band, pulses per cell "
                        "mean {:.3g}, max {}\n",
                        sim.program_s, 100.0 * programmed.converged.cast<double>().sum() / cells,
                        programmed.pulses.cast<double>().sum() / cells, programmed.pulses.maxCoeff());
  } else {
    text += fmt::format("  programmed in {:.3g} s\n", sim.program_s);
  }
  const auto& stuck = sim.tile->stuck_map();
  if (stuck.size() > 0 && stuck.cwiseAbs().maxCoeff() > 0)
    text += fmt::format("  faults     {} cells stuck at g_min, {} at g_max\n", (stuck.array() < 0).count(),
                        (stuck.array() > 0).count());
  const auto& setup = sim.tile->factorization();
  const std::string& method = sim.tile->solver_method();
  const std::string picked = card.solver.method == "auto" ? " (picked by auto)" : "";
  if (!sim.tile->cell_model().linear())
    text += fmt::format("  solver     {}{} with Newton-Raphson for the nonlinear cells: analyse {:.3g} s\n", method,
                        picked, setup.analyse_s);
  else if (method == "direct")
    text += fmt::format("  solver     direct{}: analyse {:.3g} s (once per topology), factorize {:.3g} s (per "
                        "conductance state)\n",
                        picked, setup.analyse_s, setup.factorize_s);
  else if (method == "effective")
    text += fmt::format("  solver     effective{}: build of M {:.3g} s (per conductance state), then one matrix "
                        "product per batch\n",
                        picked, setup.factorize_s);
  else
    text += fmt::format("  solver     iterative{}: line-preconditioned conjugate gradients to a relative residual of "
                        "{:.3g}\n",
                        picked, card.solver.tol);
  const Eigen::MatrixXd y_ideal = sim.workload.weights * sim.workload.inputs;
  for (std::size_t r = 0; r < sim.reads.size(); ++r) {
    const auto& read = sim.reads[r];
    const ReadErrors errors = read_errors(read, y_ideal);
    text += fmt::format("  read {:<4}  t = {:g} s: solve {:.3g} s for {} vector{} x {} plane{}, residual {:.2g}\n", r,
                        read.time_s, read.summary.solve_s, sim.workload.inputs.cols(),
                        sim.workload.inputs.cols() == 1 ? "" : "s", read.v_in.size(), read.v_in.size() == 1 ? "" : "s",
                        read.summary.residual);
    if (!sim.tile->cell_model().linear() || method == "iterative")
      text += fmt::format("             {}: at most {} iterations per vector\n",
                          sim.tile->cell_model().linear() ? "conjugate gradients" : "Newton", read.summary.iterations);
    if (!read.summary.warning.empty()) text += fmt::format("             warning: {}\n", read.summary.warning);
    if (card.mapping.drift_compensation)
      text += fmt::format("             drift compensation: outputs scaled by {:.4g}\n", read.drift_scale);
    text += fmt::format("             IR-drop error of the column currents: mean {:.3g} %, max {:.3g} % of full "
                        "scale (the wires take {:.3g} % of the signal); outputs vs W x: rms {:.3g} % of max\n",
                        100 * errors.ir_drop_mean, 100 * errors.ir_drop_max, 100 * errors.deficit,
                        100 * errors.y_rms_rel);
  }
  text += fmt::format("  trace      {}\n", trace_path.string());
  text += fmt::format("  time       {:.3g} s\n", sim.wall_s);
  return text;
}

void write_spice(const core::Card& card, int vector_index, int plane, const std::filesystem::path& path) {
  const circuits::Workload workload = circuits::make_workload(card);
  circuits::Tile tile(card, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
  tile.program(workload.weights);
  if (vector_index < 0 || vector_index >= workload.inputs.cols())
    throw core::UserError(fmt::format("--read {}: the workload has input vectors 0..{}", vector_index,
                                      workload.inputs.cols() - 1));
  const int planes = tile.dac().planes();
  if (plane < 0) plane = planes - 1;
  if (plane >= planes)
    throw core::UserError(fmt::format("--plane {}: the DAC applies planes 0..{}", plane, planes - 1));
  circuits::SpiceCircuit circuit;
  circuit.rows = card.tile.rows;
  circuit.cols = card.tile.cols;
  circuit.wires = card.tile.wires;
  circuit.r_access = card.tile.r_access_on;
  circuit.iv = tile.cell_model().iv;
  circuit.g_device = tile.read_conductance(card.workload.read_times_s.front(), 0);
  circuit.v_in = tile.dac().voltages(workload.inputs.col(vector_index), plane);
  circuit.title = fmt::format("xbar {} netlist of {} (seed {}), input vector {}, DAC plane {}", core::kVersion,
                              card.file.string(), card.seed, vector_index, plane);
  std::ostringstream text;
  circuits::write_spice_netlist(text, circuit);
  core::write_text_file_atomically(path, text.str());
}

}  // namespace xbar::tools
