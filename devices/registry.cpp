#include "devices/registry.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/error.hpp"
#include "devices/models.hpp"

namespace xbar::devices {

void DeviceRegistry::add(DeviceModelInfo info) {
  if (find(info.name)) throw std::logic_error("device model registered twice: " + info.name);
  models_.push_back(std::move(info));
}

const DeviceModelInfo* DeviceRegistry::find(const std::string& name) const {
  auto it = std::find_if(models_.begin(), models_.end(), [&](const DeviceModelInfo& m) { return m.name == name; });
  return it == models_.end() ? nullptr : &*it;
}

std::vector<std::string> DeviceRegistry::names() const {
  std::vector<std::string> names;
  for (const auto& model : models_) names.push_back(model.name);
  std::sort(names.begin(), names.end());
  return names;
}

core::DeviceParamLookup DeviceRegistry::param_lookup() const {
  return [this](const std::string& name) -> const std::vector<core::ParamSpec>* {
    const DeviceModelInfo* info = find(name);
    return info ? &info->params : nullptr;
  };
}

std::unique_ptr<Device> DeviceRegistry::create(const core::DeviceOptions& options) const {
  const DeviceModelInfo* info = find(options.model);
  if (!info) throw core::UserError("unknown device model '" + options.model + "'");
  return info->create(options);
}

void register_builtin_devices(DeviceRegistry& registry) {
  registry.add(ideal_device_info());
  registry.add(pcm_joshi2020_info());
  registry.add(pcm_hermes2023_info());
  registry.add(rram_wan2022_info());
  registry.add(rram_hfox_info());
  registry.add(rram_stanford_pku_info());
  registry.add(rram_step_info());
}

const DeviceRegistry& builtin_devices() {
  static const DeviceRegistry registry = [] {
    DeviceRegistry r;
    register_builtin_devices(r);
    return r;
  }();
  return registry;
}

}  // namespace xbar::devices
