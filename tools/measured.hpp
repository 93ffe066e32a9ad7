// Measured experiments in the trace schema (README "Measured data"): import from the CSV formats
// of ../shared/data/measured, write and read the HDF5 files, select the fitting or held-out split.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "devices/step_model.hpp"

namespace xbar::tools {

struct MeasuredRamp {
  devices::Ramp ramp;    // conductance before the first pulse and after each pulse
  bool heldout = false;  // held-out split: for scoring only, never for fitting
};

struct MeasuredRamps {
  std::vector<MeasuredRamp> set, reset;
  double read_voltage = 0;   // V at which the currents were read (0 if not applicable)
  std::string units = "S";   // conductance units: "S" (normalised data are mapped onto S)
  std::string source;        // provenance: the files imported
  std::string licence;       // the licence text or its name
  std::string description;   // what the experiment is
};

// Ramps from the column-per-ramp CSV format (header rmp1..rmpK, then one row per pulse; read
// currents in A at read_voltage; an empty cell, NaN or 0 ends a ramp). Ramp k (1-based column)
// is held out when it is in `heldout_set` / `heldout_reset`. Throws UserError naming the file,
// line and column of a malformed value, or a ramp that resumes after it ended; nothing written.
// Details (docs/measured-schema.md): the header fields must be exactly rmp1, rmp2, ... in order; a
// row may have fewer fields than the header (the missing cells are empty) but not more; a column
// without any value, a file without data rows, held-out ids that name no ramp, and read_voltage
// <= 0 are errors. The first read of a ramp is its starting state (the file has no read before
// the first pulse), so a ramp of n values holds n - 1 pulse steps.
MeasuredRamps import_ramp_csv(const std::filesystem::path& set_csv, const std::filesystem::path& reset_csv,
                              double read_voltage, const std::vector<int>& heldout_set,
                              const std::vector<int>& heldout_reset);

// Normalised states beyond ±kNormalisedStateLimit mean the file is not a normalised pulse response.
// (Measured normalised states overshoot the nominal ±1 by read noise near saturation:
// gong_et_al.csv spans -1.356 .. +1.411.)
inline constexpr double kNormalisedStateLimit = 2.0;

// The two-column normalised pulse response (column 1: state after each up pulse, column 2: after
// each down pulse, no header; any number >= 2 of rows). The normalised states w are mapped onto
// conductance linearly, one map for both columns:
//   g = g_min + (w - w_lo) / (w_hi - w_lo) · (g_max - g_min),
//   w_lo = min(-1, smallest w in the file), w_hi = max(+1, largest w in the file),
// i.e. the nominal range [-1, 1] goes onto [g_min, g_max], widened to the file's extremes when
// states overshoot it, so every conductance lies in [g_min, g_max] (the map is recorded in the
// description). A value that is not a number or lies beyond ±kNormalisedStateLimit is an error
// naming the file, line and column. Requires 0 <= g_min < g_max and segment >= 2.
//
// Segmentation: each column (x_0 .. x_{N-1}, x_i the state after pulse i + 1) is cut into
// segments of `segment` pulses; segment s covers pulses s·segment + 1 .. (s+1)·segment (the last
// may be shorter). Its ramp holds the state before its first pulse, x_{s·segment-1} (the last
// value of segment s - 1), then its `segment` values. Segment 0 has no state before its first
// pulse, so its ramp is x_0 .. x_{segment-1}, starting from the state after pulse 1. Each step
// x_i - x_{i-1} (i = 1 .. N-1) thus lies in exactly one ramp. Ramp ids are s + 1; every third
// segment (s = 2, 5, 8, ...) is held out. Column 1 gives the `set` ramps, column 2 `reset`.
MeasuredRamps import_pulse_response(const std::filesystem::path& csv, double g_min, double g_max, int segment);

// "1-27,30,33-35" -> {1..27, 30, 33, 34, 35} (sorted, without duplicates; spaces around items
// allowed; "" gives no ids). Ids are 1 .. 1000000. Throws UserError naming `option` and the item
// when malformed (not an integer, an empty item, a range whose start exceeds its end).
std::vector<int> parse_index_ranges(const std::string& text, const std::string& option);

// HDF5 (atomic write; reader throws UserError naming the file and the missing object). Layout in
// docs/measured-schema.md: root attributes kind = "measured", source, licence, description,
// xbar_version; /pulse_ramps (attributes read_voltage, units) with set/ and reset/ each holding
// conductance (K×L, NaN after each ramp's end), length, ramp_id and heldout (K, int32).
// write_measured validates the ramps (non-empty, finite, non-negative, unique ids) before it
// creates anything; read_measured checks shapes, lengths, NaN padding and flags.
void write_measured(const MeasuredRamps& ramps, const std::filesystem::path& path);
MeasuredRamps read_measured(const std::filesystem::path& path);

// The ramps of a split: "fit", "heldout" or "all" (UserError for another name).
devices::RampData split_ramps(const MeasuredRamps& ramps, const std::string& split);

// One paragraph for the command line: ramps per direction, fitting / held-out counts, conductance
// range, pulse steps, and the file written.
std::string measured_summary(const MeasuredRamps& ramps, const std::filesystem::path& output);

// `xbar import ramps`: options as given on the command line.
struct ImportRampsOptions {
  std::filesystem::path set_csv, reset_csv;  // column-per-ramp CSVs of read currents (A)
  double read_voltage = 0;                   // V, > 0
  std::filesystem::path output;              // HDF5 file to write
  std::string heldout_set, heldout_reset;    // index ranges, e.g. "28-39"; "" holds nothing out
  std::string description;                   // "" keeps the importer's description
  std::filesystem::path licence_file;        // licence text of the data; "" records "unknown"
};

// `xbar import pulse-response`.
struct ImportPulseResponseOptions {
  std::filesystem::path csv;           // two-column normalised pulse response
  std::filesystem::path output;        // HDF5 file to write
  double g_min = 1e-6, g_max = 1e-4;   // S, conductance of normalised state -1 and +1
  int segment = 100;                   // pulses per ramp
  std::string description;             // "" keeps the importer's description
  std::filesystem::path licence_file;  // licence text of the data; "" records "unknown"
};

// The licence text in `file`, or "unknown" when `file` is empty; UserError if it cannot be read.
std::string read_licence(const std::filesystem::path& file);

// Import, validate, write `output` atomically (an existing file is untouched on any error) and
// return the summary paragraph.
std::string import_ramps_command(const ImportRampsOptions& options);
std::string import_pulse_response_command(const ImportPulseResponseOptions& options);

}  // namespace xbar::tools
