// `xbar simulate` and `xbar spice`: run the card's workload through one tile, write the trace.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "circuits/tile.hpp"
#include "circuits/workload.hpp"
#include "core/card.hpp"

namespace xbar::tools {

// A finished simulation: everything the trace records.
struct Simulation {
  core::Card card;
  circuits::Workload workload;
  std::unique_ptr<circuits::Tile> tile;
  circuits::SolveSummary calibration;   // the ADC calibration read (calibrated ranges only)
  std::vector<circuits::TileRead> reads;
  double program_s = 0;                 // time to program the tile
  double wall_s = 0;                    // simulation time (card loaded to last read)
};

// Loads the card with overrides (plus `seed=N` when given). Throws CardError / UserError.
core::Card load_card_for_cli(const std::filesystem::path& card_file, std::vector<std::string> overrides,
                             const std::string& seed);

// Programs the workload onto a tile and reads it at every read time. Throws std::runtime_error
// with the solver's message when a solve fails.
Simulation simulate(const core::Card& card);

// Output-error statistics of one read.
struct ReadErrors {
  double ir_drop_mean = 0;   // mean |i_out - i_ideal| / max |i_ideal| over planes, batch, columns
  double ir_drop_max = 0;    // max of the same
  double deficit = 0;        // 1 - sum |i_out| / sum |i_ideal|: the share of signal the wires take
  double y_rms_rel = 0;      // rms(y - W x) / max |W x|
};
ReadErrors read_errors(const circuits::TileRead& read, const Eigen::MatrixXd& y_ideal);

// Writes the trace (README "Trace schema") atomically to `path`.
void write_trace(const Simulation& simulation, const std::filesystem::path& path);

// The human summary printed after a run.
std::string summary_text(const Simulation& simulation, const std::filesystem::path& trace_path);

// Writes the ngspice netlist of read `read_index`'s conductances and input vector `vector_index`
// (DAC plane `plane`, -1 = the most significant) atomically to `path`.
void write_spice(const core::Card& card, int vector_index, int plane, const std::filesystem::path& path);

}  // namespace xbar::tools
