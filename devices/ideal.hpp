// The ideal linear cell: programmed exactly to its target, constant in time, noiseless.
#pragma once

#include "devices/registry.hpp"

namespace xbar::devices {

DeviceModelInfo ideal_device_info();

}  // namespace xbar::devices
