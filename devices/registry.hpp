// The device registry: card `model:` name -> parameter table and factory.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/card.hpp"
#include "core/card_schema.hpp"
#include "devices/device.hpp"

namespace xbar::devices {

struct DeviceModelInfo {
  std::string name;         // the card's `device.model`
  std::string description;  // one line for the card reference
  std::string reference;    // published source of the equations and parameters ("" for ideal models)
  std::vector<core::ParamSpec> params;  // keys relative to the `device` section
  std::function<std::unique_ptr<Device>(const core::DeviceOptions&)> create;
};

class DeviceRegistry {
 public:
  void add(DeviceModelInfo info);  // throws std::logic_error on a duplicate name
  const DeviceModelInfo* find(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::vector<DeviceModelInfo>& models() const { return models_; }
  // The lookup the card loader needs.
  core::DeviceParamLookup param_lookup() const;
  std::unique_ptr<Device> create(const core::DeviceOptions& options) const;

 private:
  std::vector<DeviceModelInfo> models_;
};

// Registers every model xbar ships.
void register_builtin_devices(DeviceRegistry& registry);

// A registry holding the built-in models.
const DeviceRegistry& builtin_devices();

}  // namespace xbar::devices
