// One crossbar tile: mapping, device, wires, DAC, solver and ADC put together as a chip does.
//
//   weights --Mapping--> g_target --Device::program--> g_programmed (× variation field, faults)
//   read at t: Device::read_conductance (× variation, telegraph noise, faults) --> conductance
//   inputs --Dac--> v_in (per plane) --Solver (cells: device I-V in series with the access
//          transistor)--> i_out --Mapping--> channel currents --Adc--> codes
//          --(shift and add over planes, Mapping, drift compensation)--> y
//
// Random streams (all from the card seed, tile index t): programming {t}, variation {t}, faults {t},
// rtn_traps {t}, rtn_occupancy {t} (the card's read times), rtn_read {t, read} (other reads),
// read_conductance {t, read}, adc_errors {t}, adc_noise {t, read, plane}, adc_calibration {t},
// drift_reference {t}; the many-batches path: adc_noise_batch {t, batch key, plane}. reseed()
// replaces the card seed in all of them.
#pragma once

#include <Eigen/Dense>
#include <memory>
#include <vector>

#include "circuits/adc.hpp"
#include "circuits/cell_model.hpp"
#include "circuits/dac.hpp"
#include "circuits/mapping.hpp"
#include "circuits/solver.hpp"
#include "core/card.hpp"
#include "devices/registry.hpp"
#include "noise/noise.hpp"

namespace xbar::circuits {

struct TileRead {
  double time_s = 0;
  Eigen::MatrixXd conductance;             // R×C device read conductances seen by this read (S)
  Eigen::MatrixXd x_q;                     // inputs × B, the quantised inputs
  std::vector<Eigen::MatrixXd> v_in;       // per DAC plane, R×B (V)
  std::vector<Eigen::MatrixXd> i_out;      // per plane, C×B (A)
  std::vector<Eigen::MatrixXd> i_ideal;    // per plane, C×B (A): same cells, zero wire resistance
  std::vector<Eigen::MatrixXd> adc_code;   // per plane, channels×B
  Eigen::MatrixXd y;                       // outputs × B, weight units
  Eigen::MatrixXd v_cell;                  // R×C cell voltages of batch column 0, most significant plane (V)
  double drift_scale = 1;                  // global drift compensation factor applied to y (1 if off)
  SolveSummary summary;                    // worst residual over planes, summed stage times
};

class Tile {
 public:
  // `outputs`: logical outputs mapped onto this tile (<= what its columns hold); `batch_hint`:
  // input vectors per read, for solver.method: auto.
  Tile(const core::Card& card, const devices::DeviceRegistry& registry, int outputs, int tile_index = 0,
       int batch_hint = 1);

  // Maps and programs weights (outputs × rows), draws the fault and trap maps, and (with drift
  // compensation and `take_reference`) takes the reference read; without it the drift scale of
  // later reads is 1. Throws UserError if the weights do not fit.
  void program(const Eigen::MatrixXd& weights, bool take_reference = true);
  // Sets the ADC ranges from a calibration batch when the card asks for calibrated ranges: the
  // calibration inputs (inputs × N) are read right after programming (device read noise at
  // t = 0 included, no ADC noise), and each channel's range is the card's percentile of |i|.
  // Returns the solver summary of that read.
  SolveSummary calibrate_adc(const Eigen::MatrixXd& calibration_inputs);
  // Reads a batch (inputs × B) at `time_s` after programming; `read_index` keys the read's
  // random streams. A solver failure is reported in the summary (outputs then invalid).
  TileRead read(const Eigen::MatrixXd& inputs, double time_s, int read_index);
  // The device conductances (R×C, S) read `read_index` sees at `time_s` (what read() uses).
  Eigen::MatrixXd read_conductance(double time_s, int read_index) const;

  // ---- Many batches through one programming (the training and inference path) ----
  // Fresh hardware: re-keys every random stream of this tile with `seed` in place of the card's
  // seed and redraws the ADC's offsets, gains and INL; program() must follow.
  void reseed(std::uint64_t seed);
  // Draws the conductances read `read_index` sees at `time_s` (read noise, drift, telegraph noise,
  // faults), sets the solver up for them (one factorisation or build of M) and, with drift
  // compensation and a reference taken at programming, the drift scale. The conductances are
  // then frozen for every read_outputs() call until the next begin_reads().
  SolveSummary begin_reads(double time_s, int read_index);
  // Digital outputs (outputs × B) for inputs (used_rows × B) on the first used_rows rows, the
  // other rows at 0 V: DAC, circuit, ADC (noise keyed by `noise_key`), shift and add, mapping,
  // drift scale. With `calibrate_ranges` each channel's ADC range is first set from these
  // inputs' currents (the card's percentile of |i|, all planes). With the effective-matrix
  // solver only the used rows of M are multiplied.
  Eigen::MatrixXd read_outputs(const Eigen::MatrixXd& inputs, std::uint64_t noise_key, bool calibrate_ranges,
                               SolveSummary& summary);
  // The linear map x -> y (outputs × used_rows, weight units per input unit) of the conductances
  // begin_reads() drew, before the ADC (which it treats as ideal) and with the drift scale:
  // through the wires (the exact Jacobian of the linear circuit, from the effective matrix M;
  // requires the effective-matrix solver) or of the device conductances alone (no wires, no
  // access device: the weights the read conductances represent).
  Eigen::MatrixXd linear_map(int used_rows, bool through_wires) const;
  double drift_scale() const { return drift_scale_; }

  const Mapping& mapping() const { return mapping_; }
  const Dac& dac() const { return dac_; }
  const Adc& adc() const { return adc_; }
  // The device model's programmed state, and the conductances the array holds right after
  // programming (that state's g_programmed with the variation field and stuck-at faults).
  const devices::ProgrammedArray& programmed() const { return programmed_; }
  const Eigen::MatrixXd& g_programmed() const { return g_programmed_; }
  const noise::MatrixI& stuck_map() const { return stuck_; }  // 0 healthy, -1 stuck at g_min, +1 at g_max
  const CellModel& cell_model() const { return cell_model_; }
  const devices::Device& device() const { return *device_; }
  const core::Card& card() const { return card_; }
  Solver& solver() { return *solver_; }
  // The solver method in use (solver.method with auto resolved).
  const std::string& solver_method() const { return solver_method_; }
  // The solver's set-up for the current conductances: pattern analysis and factorisation times.
  const SolveSummary& factorization() const { return factor_summary_; }

 private:
  // Device read conductances with telegraph noise (occupancy `rtn`, may be empty) and faults.
  Eigen::MatrixXd conductance_seen(double time_s, core::RandomStream& rng, const noise::MatrixI& rtn) const;
  const noise::MatrixI& rtn_for_read(double time_s, int read_index, noise::MatrixI& scratch) const;
  // Sets the solver's cells, refactorising only when the conductances changed.
  SolveSummary prepare(const Eigen::MatrixXd& conductance);
  // Solves one plane; fills i_out and i_ideal, optionally v_cell.
  SolveSummary solve_plane(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd& i_ideal,
                           Eigen::MatrixXd* v_cell);
  // Digital outputs (outputs × B) of inputs through the current conductances, all planes, ADC
  // noise from `stream` (purpose) keyed by `keys`; fills `read` when given.
  Eigen::MatrixXd convert(const Eigen::MatrixXd& inputs, const char* noise_purpose, std::uint64_t read_key,
                          TileRead* read, SolveSummary& summary);
  // Sum of |y| of the drift-compensation reference read through the current conductances.
  double reference_output(std::uint64_t read_key, SolveSummary& summary);

  core::Card card_;
  int tile_index_;
  Mapping mapping_;
  Dac dac_;
  Adc adc_;
  std::unique_ptr<devices::Device> device_;
  CellModel cell_model_;
  std::string solver_method_;
  std::unique_ptr<Solver> solver_;
  devices::ProgrammedArray programmed_;
  Eigen::MatrixXd g_programmed_;
  noise::MatrixI stuck_;
  Eigen::MatrixXd variation_;                // extra device-to-device variation factors (empty: none)
  noise::RtnOptions rtn_options_;
  noise::MatrixI rtn_traps_;
  std::vector<noise::MatrixI> rtn_by_read_;  // occupancy at the card's read times
  double reference_output_ = 0;              // drift compensation: sum |y| of the reference read at programming
  double drift_scale_ = 1;                   // of the reads since begin_reads()
  Eigen::MatrixXd g_device_;                 // conductances the solver holds
  SolveSummary factor_summary_;
};

}  // namespace xbar::circuits
