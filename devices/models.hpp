// The built-in device models (one function per model, registered in registry.cpp).
#pragma once

#include "devices/registry.hpp"

namespace xbar::devices {

DeviceModelInfo ideal_device_info();          // ideal.cpp
DeviceModelInfo pcm_joshi2020_info();          // pcm.cpp: IBM PCM fit, Joshi et al. 2020
DeviceModelInfo pcm_hermes2023_info();         // pcm.cpp: HERMES chip, Le Gallo et al. 2023
DeviceModelInfo rram_wan2022_info();           // rram_statistical.cpp: NeuRRAM, Wan et al. 2022
DeviceModelInfo rram_hfox_info();              // rram_statistical.cpp: IBM HfOx CMO fit
DeviceModelInfo rram_stanford_pku_info();      // stanford_pku.cpp: compact model, Jiang et al. 2014/2016
DeviceModelInfo rram_step_info();              // step_model.cpp: fitted state-dependent step model

}  // namespace xbar::devices
