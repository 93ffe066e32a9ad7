// How a crossbar cell conducts: the memory device (read conductance g; ohmic, or a nonlinear I-V)
// in series with the access device's on-resistance.
#pragma once

#include <Eigen/Dense>

#include "devices/device.hpp"

namespace xbar::circuits {

struct CellModel {
  const devices::CellIv* iv = nullptr;  // nullptr: ohmic device
  double r_access = 0;                  // ohm in series (1T1R); 0 for 1R
  bool linear() const { return iv == nullptr; }
};

// Current through a cell (device in series with r_access) at voltage v across the whole cell, and
// its derivative dI/dV. For a nonlinear device the device voltage u solves u + r·I(u) = v (a
// scalar Newton iteration, monotone since dI/du > 0), and dI/dV = I'(u) / (1 + r·I'(u)).
void cell_current(double g, double v, const CellModel& model, double& current, double& di_dv);

// Small-signal conductance of every cell at 0 V (R×C): the linear cell conductance, or the
// Newton solver's starting point for nonlinear cells.
Eigen::MatrixXd small_signal_conductance(const Eigen::MatrixXd& g_device, const CellModel& model);

// Column currents with zero wire resistance (C×B): every cell sees its row's full voltage.
Eigen::MatrixXd ideal_currents(const Eigen::MatrixXd& g_device, const Eigen::MatrixXd& v_in, const CellModel& model);

}  // namespace xbar::circuits
