#include "devices/models.hpp"

namespace xbar::devices {
namespace {

class IdealDevice final : public Device {
 public:
  ProgrammedArray program(const Eigen::MatrixXd& g_target, core::RandomStream&) const override {
    ProgrammedArray programmed;
    programmed.g_target = programmed.g_programmed = g_target;
    return programmed;
  }
  Eigen::MatrixXd read_conductance(const ProgrammedArray& state, double, core::RandomStream&) const override {
    return state.g_programmed;
  }
};

}  // namespace

DeviceModelInfo ideal_device_info() {
  return {"ideal",
          "Linear ohmic cell programmed exactly to its target; no noise, drift or faults.",
          "",
          {},
          [](const core::DeviceOptions&) { return std::make_unique<IdealDevice>(); }};
}

}  // namespace xbar::devices
