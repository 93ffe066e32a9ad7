#include "core/card_schema.hpp"

#include <fmt/format.h>

#include <cmath>

namespace xbar::core {

const char* to_string(ValueType type) {
  switch (type) {
    case ValueType::integer: return "integer";
    case ValueType::number: return "number";
    case ValueType::boolean: return "boolean";
    case ValueType::text: return "text";
    case ValueType::choice: return "choice";
    case ValueType::number_list: return "list of numbers";
  }
  return "?";
}

namespace {

std::string format_bound(double value) {
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{:g}", value);
}

std::string bounds_text(const ParamSpec& spec) {
  const bool has_min = !std::isinf(spec.min);
  const bool has_max = !std::isinf(spec.max);
  std::string text;
  if (has_min) text += fmt::format("{} {}", spec.min_exclusive ? ">" : ">=", format_bound(spec.min));
  if (has_max) text += fmt::format("{}<= {}", has_min ? ", " : "", format_bound(spec.max));
  return text;
}

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

namespace spec {

std::string yaml(double value) { return fmt::format("{}", value); }

ParamSpec number(std::string key, std::optional<std::string> def, std::string unit, double min, double max,
                 std::string description, bool min_exclusive) {
  ParamSpec spec;
  spec.key = std::move(key);
  spec.type = ValueType::number;
  spec.default_yaml = std::move(def);
  spec.unit = std::move(unit);
  spec.min = min;
  spec.max = max;
  spec.min_exclusive = min_exclusive;
  spec.description = std::move(description);
  return spec;
}

ParamSpec integer(std::string key, std::optional<std::string> def, double min, double max, std::string description) {
  ParamSpec spec = number(std::move(key), std::move(def), "", min, max, std::move(description));
  spec.type = ValueType::integer;
  return spec;
}

ParamSpec choice(std::string key, std::optional<std::string> def, std::vector<std::string> choices,
                 std::string description) {
  ParamSpec spec;
  spec.key = std::move(key);
  spec.type = ValueType::choice;
  spec.default_yaml = std::move(def);
  spec.choices = std::move(choices);
  spec.description = std::move(description);
  return spec;
}

ParamSpec boolean(std::string key, std::optional<std::string> def, std::string description) {
  ParamSpec spec;
  spec.key = std::move(key);
  spec.type = ValueType::boolean;
  spec.default_yaml = std::move(def);
  spec.description = std::move(description);
  return spec;
}

ParamSpec text(std::string key, std::optional<std::string> def, std::string description) {
  ParamSpec spec;
  spec.key = std::move(key);
  spec.type = ValueType::text;
  spec.default_yaml = std::move(def);
  spec.description = std::move(description);
  return spec;
}

ParamSpec number_list(std::string key, std::optional<std::string> def, std::string unit, double min, double max,
                      std::string description) {
  ParamSpec spec = number(std::move(key), std::move(def), std::move(unit), min, max, std::move(description));
  spec.type = ValueType::number_list;
  return spec;
}

}  // namespace spec

std::string ParamSpec::expectation() const {
  std::string bounds = bounds_text(*this);
  std::string unit_text = (unit.empty() || unit == "1") ? "" : fmt::format(" ({})", unit);
  switch (type) {
    case ValueType::integer: return fmt::format("an integer{}{}", bounds.empty() ? "" : " " + bounds, unit_text);
    case ValueType::number: return fmt::format("a number{}{}", bounds.empty() ? "" : " " + bounds, unit_text);
    case ValueType::boolean: return "true or false";
    case ValueType::text: return "a text value";
    case ValueType::choice: return fmt::format("one of: {}", fmt::join(choices, ", "));
    case ValueType::number_list:
      return fmt::format("a list of numbers{}{}", bounds.empty() ? "" : ", each " + bounds, unit_text);
  }
  return "?";
}

const std::vector<ParamSpec>& card_schema() {
  using namespace spec;
  static const std::vector<ParamSpec> schema = {
      integer("seed", std::nullopt, 0, 9.007199254740992e15,
              "Seed of every random stream (programming, noise, workload, ADC errors)."),
      // Tile geometry and the canonical circuit (DESIGN.md).
      integer("tile.rows", std::nullopt, 1, 65536, "Word lines (physical rows) of the array."),
      integer("tile.cols", std::nullopt, 1, 65536, "Bit lines (physical columns) of the array."),
      number("tile.wires.r_wl_segment", std::nullopt, "ohm", 0, 1e6,
             "Word-line wire resistance between two neighbouring cells of a row."),
      number("tile.wires.r_bl_segment", std::nullopt, "ohm", 0, 1e6,
             "Bit-line wire resistance between two neighbouring cells of a column."),
      number("tile.wires.r_source", std::nullopt, "ohm", 0, 1e6,
             "Output resistance of each row driver, between the source and the row's first cell."),
      number("tile.wires.r_sense", std::nullopt, "ohm", 0, 1e6,
             "Resistance between each column's last cell and the virtual ground of its sense amplifier."),
      choice("tile.access.type", "none", {"none", "transistor"},
             "Access device in series with every memory cell: none (1R) or a transistor (1T1R) read as "
             "its on-resistance."),
      number("tile.access.r_on", "0", "ohm", 0, 1e9,
             "On-resistance of the access transistor (must be > 0 when type is transistor)."),
      // Memory device: common keys; the model's own parameters are listed per model.
      text("device.model", std::nullopt, "Device model name (see the device models below)."),
      number("device.g_min", std::nullopt, "S", 0, 1, "Lowest programmable conductance (weight 0)."),
      number("device.g_max", std::nullopt, "S", 0, 1, "Highest programmable conductance (|weight| = w_max).", true),
      // Faults and random telegraph noise, for every model (noise/).
      number("device.faults.stuck_low_rate", "0", "1", 0, 1,
             "Share of cells stuck at g_min whatever they are programmed to (drawn per tile)."),
      number("device.faults.stuck_high_rate", "0", "1", 0, 1,
             "Share of cells stuck at g_max whatever they are programmed to (drawn per tile)."),
      number("device.variation.sigma_log", "0", "1", 0, 5,
             "Extra device-to-device variation on top of the model: programmed conductances are multiplied "
             "by a lognormal field exp(N(-s^2/2, s^2)) of this s (drawn per tile); 0 = none."),
      number("device.variation.correlation_length", "0", "1", 0, 1e4,
             "Spatial correlation length of that field in cells (Gaussian kernel); 0 = independent cells."),
      number("device.rtn.fraction", "0", "1", 0, 1, "Share of cells with an active two-state trap (random telegraph noise)."),
      number("device.rtn.amplitude_rel", "0", "1", 0, 1, "Relative conductance drop while a trap is occupied."),
      number("device.rtn.capture_rate", "1", "Hz", 0, kInf, "Trap capture rate.", true),
      number("device.rtn.emission_rate", "1", "Hz", 0, kInf, "Trap emission rate.", true),
      // DAC.
      integer("dac.bits", std::nullopt, 0, 24,
              "DAC resolution including sign; 0 = ideal (unquantised). Bit-serial needs >= 2."),
      number("dac.v_read", std::nullopt, "V", 0, 10, "Read voltage applied for a full-scale input.", true),
      number("dac.input_max", "1.0", "1", 0, kInf, "Input magnitude mapped to v_read; inputs are clipped to it.",
             true),
      choice("dac.encoding", "amplitude", {"amplitude", "bit_serial"},
             "amplitude: one read with the quantised voltage; bit_serial: one read per magnitude bit "
             "(±v_read where the bit is set), digitised results shifted and added."),
      // ADC.
      integer("adc.bits", std::nullopt, 0, 24, "ADC resolution including sign; 0 = ideal (unquantised)."),
      choice("adc.range", "calibrated", {"fixed", "calibrated"},
             "fixed: full scale ±i_max for every channel; calibrated: per-channel full scale from a "
             "calibration batch (stored in the trace)."),
      number("adc.i_max", "0", "A", 0, 1,
             "Full-scale current of a fixed range; 0 = the largest the mapping can produce "
             "(rows × v_read × (g_max − g_min))."),
      integer("adc.calibration_inputs", "64", 1, 1e6,
              "Random input vectors (workload input distribution, own stream) of the calibration batch."),
      number("adc.calibration_percentile", "100", "1", 0, 100,
             "Percentile of |current| over the calibration batch that sets a channel's full scale.", true),
      number("adc.offset_sigma", "0", "A", 0, 1, "Standard deviation of each channel's input offset (drawn per tile)."),
      number("adc.gain_sigma", "0", "1", 0, 1, "Standard deviation of each channel's relative gain error."),
      number("adc.noise_sigma", "0", "A", 0, 1, "Input-referred rms noise of every conversion."),
      number_list("adc.inl_lsb", "[]", "LSB", -kInf, kInf,
                  "Integral nonlinearity: deviation of each code's centre, codes -Q..Q (2^bits - 1 values, "
                  "Q = 2^(bits-1) - 1), or empty."),
      number("adc.inl_sigma_lsb", "0", "LSB", 0, 100,
             "Standard deviation of a random INL per code (drawn per tile), added to inl_lsb."),
      // Mapping of signed weights onto conductances.
      choice("mapping.scheme", std::nullopt, {"differential", "reference"},
             "differential: a pair of columns per weight (G+ − G−); reference: one column per weight "
             "at an offset conductance, minus a shared reference column at g_min."),
      number("mapping.w_max", "1.0", "1", 0, kInf, "Weight magnitude mapped to the full conductance range.", true),
      integer("mapping.slices", "1", 1, 8,
              "Columns per weight (per sign) holding bit slices of the weight, most significant first."),
      integer("mapping.bits_per_slice", "0", 0, 8,
              "Bits per slice; 0 = analog weights (only with slices = 1)."),
      boolean("mapping.drift_compensation", "false",
              "Global drift compensation in the digital periphery: outputs are scaled by the ratio of a "
              "full-scale reference read's total channel current (integrated at full resolution, not "
              "through the column ADCs) right after programming to the same read now."),
      // Solver.
      choice("solver.method", std::nullopt, {"direct", "effective", "iterative", "auto"},
             "direct: sparse Cholesky (CHOLMOD) of the nodal equations, exact to rounding, nonlinear cells by damped "
             "Newton-Raphson on the same pattern; effective: the exact C×R matrix M of the linear array, built once "
             "per programming state, each batch of reads one matrix product; iterative: line-preconditioned "
             "conjugate gradients over the batch, warm-started, to the relative residual tol; auto: the fastest "
             "exact-enough of these for the workload (see the README)."),
      number("solver.tol", "1e-10", "1", 0, 1,
             "Relative residual ||A x - b|| / ||b|| at which the iterative mode and Newton stop.", true),
      boolean("solver.warm_start", "true", "Iterative mode: start each solve from the previous solution."),
      integer("solver.max_iter", "1000", 1, 1000000, "Iterative mode: conjugate-gradient iteration budget per solve."),
      integer("solver.newton_max_iter", "50", 1, 100000, "Newton: iteration budget of a nonlinear solve."),
      // Workload.
      choice("workload.weights.distribution", "uniform", {"uniform", "normal", "file"},
             "uniform: U(-scale, scale); normal: N(0, scale^2); file: read workload.weights.file. "
             "Weights are clipped to ±w_max."),
      number("workload.weights.scale", "1.0", "1", 0, kInf, "Scale of the weight distribution."),
      text("workload.weights.file", "\"\"",
           "CSV file (relative to the card) of outputs × rows weights, one output per line."),
      integer("workload.weights.outputs", "0", 0, 65536,
              "Logical outputs (weight rows); 0 = as many as the columns hold."),
      choice("workload.inputs.distribution", "uniform", {"uniform", "normal", "file"},
             "Distribution of the input vectors (as for weights); clipped to ±input_max by the DAC."),
      number("workload.inputs.scale", "1.0", "1", 0, kInf, "Scale of the input distribution."),
      text("workload.inputs.file", "\"\"", "CSV file (relative to the card) of count × rows inputs."),
      integer("workload.inputs.count", "4", 1, 1e6, "Input vectors per read (the batch)."),
      number_list("workload.read_times", std::nullopt, "s", 0, kInf,
                  "Times after programming at which the batch is read, one /reads/NNNN group each."),
  };
  return schema;
}

std::string markdown_reference(const std::vector<ParamSpec>& specs) {
  auto cell = [](std::string text) {  // a '|' would end the table cell
    for (std::size_t at = text.find('|'); at != std::string::npos; at = text.find('|', at + 2)) text.replace(at, 1, "\\|");
    return text;
  };
  std::string text = "| key | type | default | unit | allowed | description |\n| --- | --- | --- | --- | --- | --- |\n";
  for (const auto& spec : specs) {
    std::string allowed = spec.type == ValueType::choice ? fmt::format("{}", fmt::join(spec.choices, ", "))
                                                         : bounds_text(spec);
    text += fmt::format("| `{}` | {} | {} | {} | {} | {} |\n", spec.key, to_string(spec.type),
                        spec.required() ? "required" : fmt::format("`{}`", *spec.default_yaml),
                        spec.unit, cell(allowed), cell(spec.description));
  }
  return text;
}

}  // namespace xbar::core
