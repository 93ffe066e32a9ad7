// A validated device card: the typed, SI-unit view of a YAML card (schema in card_schema.hpp,
// reference in the README). Loading collects every problem of a card and throws one CardError
// that names file, line, key and expectation of each.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/card_schema.hpp"

namespace xbar::core {

struct WireOptions {
  double r_wl_segment = 0;  // word-line segment between neighbouring cells (ohm)
  double r_bl_segment = 0;  // bit-line segment between neighbouring cells (ohm)
  double r_source = 0;      // row driver output resistance (ohm)
  double r_sense = 0;       // column to virtual ground (ohm)
};

enum class AccessType { none, transistor };

struct TileOptions {
  int rows = 0;  // word lines
  int cols = 0;  // bit lines
  WireOptions wires;
  AccessType access = AccessType::none;
  double r_access_on = 0;  // access transistor on-resistance (ohm); 0 when access is none
};

struct DeviceOptions {
  std::string model;                          // registry name
  double g_min = 0;                           // S
  double g_max = 0;                           // S
  double variation_sigma_log = 0;             // extra lognormal device-to-device variation (log std)
  double variation_correlation_cells = 0;     // its spatial correlation length (cells)
  double stuck_low_rate = 0;                  // share of cells stuck at g_min
  double stuck_high_rate = 0;                 // share of cells stuck at g_max
  double rtn_fraction = 0;                    // share of cells with a telegraph-noise trap
  double rtn_amplitude_rel = 0;               // relative conductance drop of an occupied trap
  double rtn_capture_rate = 1;                // Hz
  double rtn_emission_rate = 1;               // Hz
  std::map<std::string, CardValue> params;    // the model's own parameters, keyed without "device."
  double param(const std::string& name) const;            // a number parameter; throws if absent
  std::int64_t integer_param(const std::string& name) const;  // an integer parameter; throws if absent
  const std::string& text_param(const std::string& name) const;
};

enum class Encoding { amplitude, bit_serial };

struct DacOptions {
  int bits = 0;            // including sign; 0 = ideal
  double v_read = 0;       // V for a full-scale input
  double input_max = 1;    // input magnitude mapped to v_read
  Encoding encoding = Encoding::amplitude;
};

enum class AdcRange { fixed, calibrated };

struct AdcOptions {
  int bits = 0;                       // including sign; 0 = ideal
  AdcRange range = AdcRange::calibrated;
  double i_max = 0;                   // fixed full scale (A); 0 = largest the mapping can produce
  int calibration_inputs = 64;
  double calibration_percentile = 100;
  double offset_sigma = 0;            // A
  double gain_sigma = 0;              // relative
  double noise_sigma = 0;             // A rms, per conversion
  std::vector<double> inl_lsb;        // per code, codes -Q..Q
  double inl_sigma_lsb = 0;
};

enum class MappingScheme { differential, reference };

struct MappingOptions {
  MappingScheme scheme = MappingScheme::differential;
  double w_max = 1;
  int slices = 1;
  int bits_per_slice = 0;  // 0 = analog
  bool drift_compensation = false;  // global drift compensation in the digital periphery
};

struct SolverOptions {
  std::string method = "direct";
  double tol = 1e-10;      // iterative mode and Newton: relative residual at convergence
  int max_iter = 1000;     // iterative mode: conjugate-gradient iteration budget
  int newton_max_iter = 50;  // Newton: iteration budget
  bool warm_start = true;  // iterative mode: start from the previous solution
};

enum class Distribution { uniform, normal, file };

struct MatrixSource {
  Distribution distribution = Distribution::uniform;
  double scale = 1;
  std::filesystem::path file;  // resolved against the card's folder; empty unless distribution is file
};

struct WorkloadOptions {
  MatrixSource weights;
  int outputs = 0;  // 0 = as many as fit
  MatrixSource inputs;
  int input_count = 4;
  std::vector<double> read_times_s;
};

struct Card {
  std::filesystem::path file;              // the card file as given
  std::string effective_yaml;              // the card after --set overrides, as YAML text
  std::vector<std::string> overrides;      // the --set arguments, in order
  std::uint64_t seed = 0;
  TileOptions tile;
  DeviceOptions device;
  DacOptions dac;
  AdcOptions adc;
  MappingOptions mapping;
  SolverOptions solver;
  WorkloadOptions workload;
};

// Returns the parameter table of a device model, or nullptr if no model has that name.
using DeviceParamLookup = std::function<const std::vector<ParamSpec>*(const std::string& model)>;

// Loads and validates a card. `overrides` are "key.path=value" strings (the value is YAML);
// `device_params` gives each device model's own parameters; `known_models` is listed in the
// error for an unknown model. Throws CardError with every problem found, or UserError when the
// file cannot be read.
Card load_card(const std::filesystem::path& file, const std::vector<std::string>& overrides,
               const DeviceParamLookup& device_params, const std::vector<std::string>& known_models);

// Same, from text (file name used in messages only; relative workload files resolve against
// the current folder).
Card load_card_text(const std::string& text, const std::string& file_name, const std::vector<std::string>& overrides,
                    const DeviceParamLookup& device_params, const std::vector<std::string>& known_models);

// Columns one logical output needs, and how many outputs a tile of `cols` columns holds.
int columns_per_output(const MappingOptions& mapping);
int outputs_that_fit(const MappingOptions& mapping, int cols);

}  // namespace xbar::core
