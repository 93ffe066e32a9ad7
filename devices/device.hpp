// Memory device models: how a target conductance becomes a programmed one, and what a read sees
// at a time after programming. Models declare their parameters once (core::ParamSpec) and register
// by the card's `model:` name (registry.hpp).
#pragma once

#include <Eigen/Dense>
#include <map>
#include <string>

#include "core/card.hpp"
#include "core/random.hpp"

namespace xbar::devices {

// The state of a programmed array, per cell (R×C matrices).
struct ProgrammedArray {
  Eigen::MatrixXd g_target;                          // S: what the mapping asked for
  Eigen::MatrixXd g_programmed;                      // S: right after programming, before drift or read noise
  std::map<std::string, Eigen::MatrixXd> cell_state; // model-specific per-cell state (e.g. a drift exponent)
};

class Device {
 public:
  virtual ~Device() = default;
  // Programs the target conductances (R×C, S); stochastic models draw from `rng` (the tile's
  // programming stream).
  virtual ProgrammedArray program(const Eigen::MatrixXd& g_target, core::RandomStream& rng) const = 0;
  // The conductances one read sees `time_s` seconds after programming (drift, relaxation and
  // fresh read noise from `rng`, the read's own stream).
  virtual Eigen::MatrixXd read_conductance(const ProgrammedArray& state, double time_s,
                                           core::RandomStream& rng) const = 0;
};

}  // namespace xbar::devices
