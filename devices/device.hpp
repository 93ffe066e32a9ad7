// Memory device models: how a target conductance becomes a programmed one, what a read sees at a
// time after programming, and (for nonlinear cells) the cell's current-voltage characteristic.
// Models declare their parameters once (core::ParamSpec) and register by the card's `model:`
// name (registry.hpp).
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <map>
#include <string>

#include "core/card.hpp"
#include "core/random.hpp"

namespace xbar::devices {

using MatrixI = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic>;

// The state of a programmed array, per cell (R×C matrices).
struct ProgrammedArray {
  Eigen::MatrixXd g_target;                          // S: what the mapping asked for
  Eigen::MatrixXd g_programmed;                      // S: right after programming, before drift or read noise
  std::map<std::string, Eigen::MatrixXd> cell_state; // model-specific per-cell state (e.g. "nu", the drift exponent)
  MatrixI pulses;                                    // write-verify: pulses each cell took (empty otherwise)
  MatrixI converged;                                 // write-verify: 1 if the cell ended inside the band
};

// A nonlinear cell current-voltage characteristic. A cell is described by its read conductance g
// (S): the conductance read_conductance() returns, I(v_read)/v_read at the device's read voltage.
class CellIv {
 public:
  virtual ~CellIv() = default;
  // Current (A) through a cell of read conductance g at voltage v (V) across it, and dI/dV (S).
  virtual void current(double g, double v, double& i, double& di_dv) const = 0;
  // The same current as an ngspice behavioural-source expression of the voltage expression `v`
  // (e.g. "V(w_0_0,m_0_0)"), for cross-checks.
  virtual std::string spice_current(double g, const std::string& v) const = 0;
  // Voltage range over which the characteristic is valid (V): the solver warns beyond it.
  virtual double max_voltage() const { return 1e9; }
};

class Device {
 public:
  virtual ~Device() = default;
  // Programs the target conductances (R×C, S). Stochastic models draw from `rng`, the tile's
  // programming stream; a model that programs cells in parallel derives one stream per cell
  // (rng.derive("cell", {i * C + j})) so that results never depend on the thread count.
  virtual ProgrammedArray program(const Eigen::MatrixXd& g_target, core::RandomStream& rng) const = 0;
  // The read conductances (R×C, S) one read sees `time_s` seconds after programming (drift,
  // relaxation and fresh read noise from `rng`, the read's own stream).
  virtual Eigen::MatrixXd read_conductance(const ProgrammedArray& state, double time_s,
                                           core::RandomStream& rng) const = 0;
  // The cell I-V when it is not ohmic; nullptr for a linear cell (the default).
  virtual const CellIv* iv() const { return nullptr; }
  // SI unit of a ProgrammedArray::cell_state entry, for the trace ("1" if dimensionless).
  virtual std::string cell_state_units(const std::string& name) const { return "1"; }
};

}  // namespace xbar::devices
