// SPICE export: the canonical circuit (DESIGN.md) of one programmed array and one input vector as
// an ngspice netlist, the reference every solver is cross-checked against.
//
// Nodes: w_i_j / b_i_j word- and bit-line nodes, m_i_j between memory device and access
// transistor (1T1R only), s_i row sources, g_j sense nodes. Column j's output is the current of
// the 0 V source Vsense_j from g_j into ground (positive into the virtual ground). A zero
// resistance is written as a 0 V source Vshort_<element> (SPICE resistors must be non-zero); a
// zero conductance cell is left out; a nonlinear device is a behavioural current source Bcell_i_j
// (I = its I-V expression of the voltage across it). The control block runs `op`, prints every
// Vsense current with 15 digits as lines "i(vsense_j) = value" and quits, so `ngspice -b` exits 0
// on success.
#pragma once

#include <Eigen/Dense>
#include <ostream>
#include <string>

#include "core/card.hpp"
#include "devices/device.hpp"

namespace xbar::circuits {

struct SpiceCircuit {
  int rows = 0, cols = 0;
  core::WireOptions wires;
  double r_access = 0;          // ohm in series with each cell; 0 = none (1R)
  Eigen::MatrixXd g_device;     // R×C memory-device conductances (S), before the access device
  Eigen::VectorXd v_in;         // R row source voltages (V)
  const devices::CellIv* iv = nullptr;  // nonlinear device I-V: written as a behavioural current source
  std::string title;            // first line of the netlist
};

void write_spice_netlist(std::ostream& out, const SpiceCircuit& circuit);

}  // namespace xbar::circuits
