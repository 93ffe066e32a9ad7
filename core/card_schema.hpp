// The card schema: every key a card may hold, declared once (name, type, default, unit, allowed
// range, description). The same table drives YAML parsing, validation errors and the card
// reference in the README (`xbar card-reference`). Device models declare their own parameters
// with the same ParamSpec (devices/registry.hpp) under the `device.` section.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace xbar::core {

enum class ValueType { integer, number, boolean, text, choice, number_list };

const char* to_string(ValueType type);

// A validated card value.
using CardValue = std::variant<std::int64_t, double, bool, std::string, std::vector<double>>;

struct ParamSpec {
  std::string key;            // dotted path from the card's root, e.g. "tile.wires.r_sense"
  ValueType type = ValueType::number;
  std::optional<std::string> default_yaml;  // YAML text of the default; nullopt = required key
  std::string unit;           // SI unit ("ohm", "S", "V", "A", "s"), "1" if dimensionless, "" if not a quantity
  double min = -std::numeric_limits<double>::infinity();  // inclusive bounds for numbers, integers
  double max = std::numeric_limits<double>::infinity();   // and every element of a number list
  bool min_exclusive = false;                             // true: value must be > min
  std::vector<std::string> choices;  // allowed values of a `choice`
  std::string description;

  bool required() const { return !default_yaml.has_value(); }
  std::string expectation() const;  // "a number >= 0 (ohm)", "one of: direct", ...
};

// Builders for parameter tables. A default is YAML text (spec::yaml formats a number); nullopt
// makes the key required. Bounds are inclusive unless min_exclusive.
namespace spec {
std::string yaml(double value);  // shortest text that reads back as the same double
ParamSpec number(std::string key, std::optional<std::string> def, std::string unit, double min, double max,
                 std::string description, bool min_exclusive = false);
ParamSpec integer(std::string key, std::optional<std::string> def, double min, double max, std::string description);
ParamSpec choice(std::string key, std::optional<std::string> def, std::vector<std::string> choices,
                 std::string description);
ParamSpec boolean(std::string key, std::optional<std::string> def, std::string description);
ParamSpec text(std::string key, std::optional<std::string> def, std::string description);
ParamSpec number_list(std::string key, std::optional<std::string> def, std::string unit, double min, double max,
                      std::string description);
}  // namespace spec

// Keys common to every card (all sections except the device model's own parameters).
const std::vector<ParamSpec>& card_schema();

// A Markdown table of the given specs (key, type, default, unit, allowed, description).
std::string markdown_reference(const std::vector<ParamSpec>& specs);

}  // namespace xbar::core
