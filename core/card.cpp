#include "core/card.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <system_error>

#include "core/error.hpp"

namespace xbar::core {

double DeviceOptions::param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end() || !std::holds_alternative<double>(it->second))
    throw UserError(fmt::format("device model '{}' has no number parameter '{}'", model, name));
  return std::get<double>(it->second);
}

std::int64_t DeviceOptions::integer_param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end() || !std::holds_alternative<std::int64_t>(it->second))
    throw UserError(fmt::format("device model '{}' has no integer parameter '{}'", model, name));
  return std::get<std::int64_t>(it->second);
}

const std::string& DeviceOptions::text_param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end() || !std::holds_alternative<std::string>(it->second))
    throw UserError(fmt::format("device model '{}' has no text parameter '{}'", model, name));
  return std::get<std::string>(it->second);
}

int columns_per_output(const MappingOptions& mapping) {
  return mapping.slices * (mapping.scheme == MappingScheme::differential ? 2 : 1);
}

int outputs_that_fit(const MappingOptions& mapping, int cols) {
  const int usable = mapping.scheme == MappingScheme::reference ? cols - 1 : cols;  // one shared reference column
  return std::max(0, usable / columns_per_output(mapping));
}

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream stream(text);
  while (std::getline(stream, part, separator)) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (!best.empty() || word.size() < 3) return best;
  // No near spelling: suggest the one candidate that contains the word or is contained in it
  // ("serial" -> "bit_serial").
  for (const auto& candidate : candidates) {
    if (candidate.size() < 3) continue;
    if (candidate.find(word) == std::string::npos && word.find(candidate) == std::string::npos) continue;
    if (!best.empty()) return "";  // ambiguous
    best = candidate;
  }
  return best;
}

bool parse_double(const std::string& text, double& value) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size() && std::isfinite(value);
}

bool parse_integer(const std::string& text, std::int64_t& value) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  value = std::strtoll(text.c_str(), &end, 10);
  return errno == 0 && end == text.c_str() + text.size();
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a section (mapping)";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Scalar: return fmt::format("'{}'", node.Scalar());
    default: return "an undefined value";
  }
}

class CardLoader {
 public:
  CardLoader(std::string file_name, const DeviceParamLookup& device_params, std::vector<std::string> known_models)
      : file_name_(std::move(file_name)), device_params_(device_params), known_models_(std::move(known_models)) {}

  Card load(const std::string& text, const std::vector<std::string>& overrides, const std::filesystem::path& base_dir);

 private:
  void issue(const std::string& key, const YAML::Node* where, std::string message) {
    CardIssue item;
    item.key = key;
    item.message = std::move(message);
    if (from_override(key)) {
      item.file = "--set";
    } else {
      item.file = file_name_;
      if (where && where->IsDefined() && where->Mark().line >= 0) {
        item.line = where->Mark().line + 1;
        item.column = where->Mark().column + 1;
      }
    }
    issues_.push_back(std::move(item));
  }

  // True when the key was given, or its section created, by a --set override.
  bool from_override(const std::string& key) const {
    if (created_.count(key)) return true;
    return std::any_of(overridden_.begin(), overridden_.end(), [&](const std::string& o) {
      return key == o || key.rfind(o + ".", 0) == 0;
    });
  }
  bool has(const std::string& key) const { return values_.count(key) != 0; }

  void apply_override(YAML::Node& root, const std::string& argument);
  void walk(const YAML::Node& map, const std::string& prefix);
  bool is_section(const std::string& path) const;
  std::vector<std::string> children_of(const std::string& prefix) const;
  std::optional<CardValue> convert(const ParamSpec& spec, const YAML::Node& node, bool report);
  Card build(const std::filesystem::path& base_dir);
  void cross_check(Card& card);

  // The validated value of a key, or `fallback` when the key has no valid value (the card then
  // has an issue already; the checks across fields skip such keys).
  template <typename T>
  T get(const std::string& key, T fallback = T{}) const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : std::get<T>(it->second);
  }

  std::string file_name_;
  const DeviceParamLookup& device_params_;
  std::vector<std::string> known_models_;
  std::vector<ParamSpec> specs_;                 // common schema + the chosen model's parameters
  std::map<std::string, YAML::Node> leaves_;     // key -> node found in the card
  std::map<std::string, YAML::Node> section_keys_;  // section path -> its key in the card (for locating missing keys)
  std::map<std::string, CardValue> values_;
  std::set<std::string> overridden_;             // keys given by --set
  std::set<std::string> created_;                // sections that only --set created
  std::vector<CardIssue> issues_;
  bool model_known_ = false;
};

void CardLoader::apply_override(YAML::Node& root, const std::string& argument) {
  const auto equals = argument.find('=');
  if (equals == std::string::npos || equals == 0) {
    issues_.push_back({"--set", 0, 0, argument, "expected key.path=value, e.g. tile.rows=24"});
    return;
  }
  const std::string key = argument.substr(0, equals);
  const std::vector<std::string> parts = split(key, '.');
  if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    issues_.push_back({"--set", 0, 0, key, "expected a dotted key path such as tile.wires.r_sense"});
    return;
  }
  YAML::Node value;
  try {
    value = YAML::Load(argument.substr(equals + 1));
  } catch (const YAML::Exception& error) {
    issues_.push_back({"--set", 0, 0, key, fmt::format("the value is not valid YAML: {}", error.msg)});
    return;
  }
  overridden_.insert(key);
  YAML::Node node = root;  // binds to the root
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = node[parts[i]];
    if (!child.IsDefined() || child.IsNull()) {
      node[parts[i]] = YAML::Node(YAML::NodeType::Map);
      created_.insert(fmt::format("{}", fmt::join(parts.begin(), parts.begin() + i + 1, ".")));
    } else if (!child.IsMap()) {
      issues_.push_back({"--set", 0, 0, key,
                         fmt::format("'{}' is not a section of the card", fmt::join(parts.begin(), parts.begin() + i + 1, "."))});
      return;
    }
    YAML::Node next = node[parts[i]];
    node.reset(next);
  }
  node[parts.back()] = value;
}

bool CardLoader::is_section(const std::string& path) const {
  const std::string prefix = path + ".";
  return std::any_of(specs_.begin(), specs_.end(), [&](const ParamSpec& s) { return s.key.rfind(prefix, 0) == 0; });
}

std::vector<std::string> CardLoader::children_of(const std::string& prefix) const {
  std::set<std::string> names;
  for (const auto& spec : specs_) {
    if (!prefix.empty() && spec.key.rfind(prefix + ".", 0) != 0) continue;
    const std::string rest = prefix.empty() ? spec.key : spec.key.substr(prefix.size() + 1);
    names.insert(rest.substr(0, rest.find('.')));
  }
  return {names.begin(), names.end()};
}

void CardLoader::walk(const YAML::Node& map, const std::string& prefix) {
  const std::vector<std::string> allowed = children_of(prefix);
  std::map<std::string, YAML::Node> seen;  // key name -> its first occurrence in this section
  for (auto it = map.begin(); it != map.end(); ++it) {
    YAML::Node key_node = it->first;
    if (!key_node.IsScalar()) {
      issue(prefix, &key_node, fmt::format("expected a key name, got {}", describe(key_node)));
      continue;
    }
    const std::string name = key_node.Scalar();
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    if (auto first = seen.find(name); first != seen.end()) {
      // YAML forbids this; yaml-cpp keeps both, and lookups see the first one.
      const int first_line = first->second.Mark().line;
      issue(path, &key_node,
            first_line >= 0 ? fmt::format("duplicate key; first given at line {}", first_line + 1) : "duplicate key");
      continue;
    }
    seen.emplace(name, key_node);
    const YAML::Node value = it->second;
    if (is_section(path)) {
      if (value.IsMap()) {
        section_keys_[path] = key_node;
        walk(value, path);
      } else {
        issue(path, &value, fmt::format("expected a section with keys {}, got {}", fmt::join(children_of(path), ", "),
                                        describe(value)));
      }
      continue;
    }
    const bool known = std::any_of(specs_.begin(), specs_.end(), [&](const ParamSpec& s) { return s.key == path; });
    if (known) {
      leaves_[path] = value;
      continue;
    }
    if (prefix == "device" && !model_known_) continue;  // unknown model: its parameters cannot be checked
    const std::string suggestion = closest(name, allowed);
    issue(path, &key_node,
          suggestion.empty() ? fmt::format("unknown key; this section allows: {}", fmt::join(allowed, ", "))
                             : fmt::format("unknown key; did you mean '{}'?", suggestion));
  }
}

std::optional<CardValue> CardLoader::convert(const ParamSpec& spec, const YAML::Node& node, bool report) {
  auto fail = [&](const std::string& got) -> std::optional<CardValue> {
    if (report) issue(spec.key, &node, fmt::format("expected {}, got {}", spec.expectation(), got));
    return std::nullopt;
  };
  auto in_range = [&](double value) {
    const bool above = spec.min_exclusive ? value > spec.min : value >= spec.min;
    return above && value <= spec.max;
  };
  switch (spec.type) {
    case ValueType::integer: {
      std::int64_t value = 0;
      if (!node.IsScalar() || !parse_integer(node.Scalar(), value)) return fail(describe(node));
      if (!in_range(static_cast<double>(value))) return fail(std::to_string(value));
      return CardValue(value);
    }
    case ValueType::number: {
      double value = 0;
      if (!node.IsScalar() || !parse_double(node.Scalar(), value)) return fail(describe(node));
      if (!in_range(value)) return fail(node.Scalar());
      return CardValue(value);
    }
    case ValueType::boolean: {
      bool value = false;
      if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) return fail(describe(node));
      return CardValue(value);
    }
    case ValueType::text:
      if (!node.IsScalar()) return fail(describe(node));
      return CardValue(node.Scalar());
    case ValueType::choice: {
      if (!node.IsScalar()) return fail(describe(node));
      const std::string value = node.Scalar();
      if (std::find(spec.choices.begin(), spec.choices.end(), value) == spec.choices.end()) {
        const std::string suggestion = closest(value, spec.choices);
        return fail(fmt::format("'{}'{}", value, suggestion.empty() ? "" : fmt::format(" (did you mean '{}'?)", suggestion)));
      }
      return CardValue(value);
    }
    case ValueType::number_list: {
      std::vector<double> values;
      auto take = [&](const YAML::Node& item) {
        double value = 0;
        if (!item.IsScalar() || !parse_double(item.Scalar(), value) || !in_range(value)) return false;
        values.push_back(value);
        return true;
      };
      if (node.IsScalar()) {
        if (!take(node)) return fail(describe(node));
      } else if (node.IsSequence()) {
        for (std::size_t i = 0; i < node.size(); ++i)
          if (!take(node[i])) return fail(fmt::format("{} at position {}", describe(node[i]), i + 1));
      } else {
        return fail(describe(node));
      }
      return CardValue(values);
    }
  }
  return std::nullopt;
}

Card CardLoader::load(const std::string& text, const std::vector<std::string>& overrides,
                      const std::filesystem::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& error) {
    throw CardError({{file_name_, error.mark.line + 1, error.mark.column + 1, "",
                      fmt::format("invalid YAML: {}", error.msg)}});
  }
  if (root.IsNull() || !root.IsDefined()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw CardError({{file_name_, 1, 1, "", "expected a YAML mapping of sections (seed, tile, ...)"}});
  for (const auto& argument : overrides) apply_override(root, argument);

  // The device model decides which device parameters exist.
  specs_ = card_schema();
  const YAML::Node model_node = root["device"] && root["device"].IsMap() ? root["device"]["model"] : YAML::Node();
  if (model_node && model_node.IsScalar()) {
    const std::string model = model_node.Scalar();
    if (const auto* params = device_params_(model)) {
      model_known_ = true;
      for (ParamSpec spec : *params) {
        spec.key = "device." + spec.key;
        specs_.push_back(std::move(spec));
      }
    } else {
      const std::string suggestion = closest(model, known_models_);
      issue("device.model", &model_node,
            fmt::format("unknown device model '{}'{}; known models: {}", model,
                        suggestion.empty() ? "" : fmt::format(" (did you mean '{}'?)", suggestion),
                        fmt::join(known_models_, ", ")));
    }
  }

  walk(root, "");
  for (const auto& spec : specs_) {
    auto found = leaves_.find(spec.key);
    if (found != leaves_.end()) {
      if (auto value = convert(spec, found->second, true)) values_[spec.key] = *value;
      continue;
    }
    if (spec.required()) {
      // (specs_ holds a model's own parameters only when the model is known.) Locate the missing
      // key at the line of its closest enclosing section; line 0 when only the root encloses it.
      auto parent = [](const std::string& path) {
        const auto dot = path.rfind('.');
        return dot == std::string::npos ? std::string() : path.substr(0, dot);
      };
      std::string section = parent(spec.key);
      while (!section.empty() && !section_keys_.count(section)) section = parent(section);
      const YAML::Node where = section.empty() ? YAML::Node() : section_keys_[section];
      issue(spec.key, section.empty() ? nullptr : &where, fmt::format("missing key; expected {}", spec.expectation()));
      continue;
    }
    const YAML::Node default_node = YAML::Load(*spec.default_yaml);
    auto value = convert(spec, default_node, false);
    if (!value) throw std::logic_error("card schema default of " + spec.key + " does not validate");
    values_[spec.key] = *value;
  }

  // Checks across fields run even when some keys are wrong (every problem in one pass); each
  // check skips keys without a valid value.
  Card card = build(base_dir);
  cross_check(card);
  if (!issues_.empty()) throw CardError(issues_);
  if (overrides.empty()) {
    card.effective_yaml = text;
  } else {
    YAML::Emitter emitter;
    emitter << root;
    card.effective_yaml = std::string(emitter.c_str()) + "\n";
  }
  card.overrides = overrides;
  return card;
}

Card CardLoader::build(const std::filesystem::path& base_dir) {
  Card card;
  card.seed = static_cast<std::uint64_t>(get<std::int64_t>("seed"));
  auto& tile = card.tile;
  tile.rows = static_cast<int>(get<std::int64_t>("tile.rows"));
  tile.cols = static_cast<int>(get<std::int64_t>("tile.cols"));
  tile.wires.r_wl_segment = get<double>("tile.wires.r_wl_segment");
  tile.wires.r_bl_segment = get<double>("tile.wires.r_bl_segment");
  tile.wires.r_source = get<double>("tile.wires.r_source");
  tile.wires.r_sense = get<double>("tile.wires.r_sense");
  tile.access = get<std::string>("tile.access.type") == "transistor" ? AccessType::transistor : AccessType::none;
  tile.r_access_on = tile.access == AccessType::transistor ? get<double>("tile.access.r_on") : 0.0;

  card.device.model = get<std::string>("device.model");
  card.device.g_min = get<double>("device.g_min");
  card.device.g_max = get<double>("device.g_max");
  card.device.variation_sigma_log = get<double>("device.variation.sigma_log");
  card.device.variation_correlation_cells = get<double>("device.variation.correlation_length");
  card.device.stuck_low_rate = get<double>("device.faults.stuck_low_rate");
  card.device.stuck_high_rate = get<double>("device.faults.stuck_high_rate");
  card.device.rtn_fraction = get<double>("device.rtn.fraction");
  card.device.rtn_amplitude_rel = get<double>("device.rtn.amplitude_rel");
  card.device.rtn_capture_rate = get<double>("device.rtn.capture_rate");
  card.device.rtn_emission_rate = get<double>("device.rtn.emission_rate");
  // Everything else under device. belongs to the model.
  const auto& common = card_schema();
  for (const auto& [key, value] : values_) {
    const bool is_common =
        std::any_of(common.begin(), common.end(), [&key = key](const ParamSpec& spec) { return spec.key == key; });
    if (key.rfind("device.", 0) == 0 && !is_common) card.device.params[key.substr(7)] = value;
  }

  card.dac.bits = static_cast<int>(get<std::int64_t>("dac.bits"));
  card.dac.v_read = get<double>("dac.v_read");
  card.dac.input_max = get<double>("dac.input_max");
  card.dac.encoding = get<std::string>("dac.encoding") == "bit_serial" ? Encoding::bit_serial : Encoding::amplitude;

  auto& adc = card.adc;
  adc.bits = static_cast<int>(get<std::int64_t>("adc.bits"));
  adc.range = get<std::string>("adc.range") == "fixed" ? AdcRange::fixed : AdcRange::calibrated;
  adc.i_max = get<double>("adc.i_max");
  adc.calibration_inputs = static_cast<int>(get<std::int64_t>("adc.calibration_inputs"));
  adc.calibration_percentile = get<double>("adc.calibration_percentile");
  adc.offset_sigma = get<double>("adc.offset_sigma");
  adc.gain_sigma = get<double>("adc.gain_sigma");
  adc.noise_sigma = get<double>("adc.noise_sigma");
  adc.inl_lsb = get<std::vector<double>>("adc.inl_lsb");
  adc.inl_sigma_lsb = get<double>("adc.inl_sigma_lsb");

  card.mapping.scheme = get<std::string>("mapping.scheme") == "reference" ? MappingScheme::reference
                                                                          : MappingScheme::differential;
  card.mapping.w_max = get<double>("mapping.w_max");
  card.mapping.slices = static_cast<int>(get<std::int64_t>("mapping.slices"));
  card.mapping.bits_per_slice = static_cast<int>(get<std::int64_t>("mapping.bits_per_slice"));
  card.mapping.drift_compensation = get<bool>("mapping.drift_compensation");

  card.solver.method = get<std::string>("solver.method");
  card.solver.tol = get<double>("solver.tol");
  card.solver.max_iter = static_cast<int>(get<std::int64_t>("solver.max_iter"));
  card.solver.newton_max_iter = static_cast<int>(get<std::int64_t>("solver.newton_max_iter"));
  card.solver.warm_start = get<bool>("solver.warm_start");

  auto source = [&](const std::string& prefix) {
    MatrixSource result;
    const std::string distribution = get<std::string>(prefix + ".distribution");
    result.distribution = distribution == "file" ? Distribution::file
                          : distribution == "normal" ? Distribution::normal
                                                     : Distribution::uniform;
    result.scale = get<double>(prefix + ".scale");
    const std::string file = get<std::string>(prefix + ".file");
    if (!file.empty()) result.file = std::filesystem::path(file).is_absolute() ? std::filesystem::path(file) : base_dir / file;
    return result;
  };
  card.workload.weights = source("workload.weights");
  card.workload.outputs = static_cast<int>(get<std::int64_t>("workload.weights.outputs"));
  card.workload.inputs = source("workload.inputs");
  card.workload.input_count = static_cast<int>(get<std::int64_t>("workload.inputs.count"));
  card.workload.read_times_s = get<std::vector<double>>("workload.read_times");
  return card;
}

void CardLoader::cross_check(Card& card) {
  auto at = [&](const std::string& key) -> const YAML::Node* {
    auto it = leaves_.find(key);
    return it == leaves_.end() ? nullptr : &it->second;
  };
  // Reports `message` at `key` unless `ok`; skipped when any key in `inputs` has no valid value.
  auto check = [&](std::initializer_list<const char*> inputs, bool ok, const std::string& key,
                   const std::string& message) {
    if (!std::all_of(inputs.begin(), inputs.end(), [&](const char* input) { return has(input); })) return;
    if (!ok) issue(key, at(key), message);
  };
  check({"device.g_min", "device.g_max"}, card.device.g_min < card.device.g_max, "device.g_max",
        fmt::format("expected g_max > g_min ({:g} S), got {:g} S", card.device.g_min, card.device.g_max));
  check({"device.faults.stuck_low_rate", "device.faults.stuck_high_rate"},
        card.device.stuck_low_rate + card.device.stuck_high_rate <= 1, "device.faults.stuck_high_rate",
        fmt::format("expected stuck_low_rate + stuck_high_rate <= 1, got {:g}",
                    card.device.stuck_low_rate + card.device.stuck_high_rate));
  check({"tile.access.type", "tile.access.r_on"}, card.tile.access == AccessType::none || card.tile.r_access_on > 0,
        "tile.access.r_on", "expected an on-resistance > 0 (ohm) for a transistor access device");
  check({"dac.encoding", "dac.bits"}, card.dac.encoding == Encoding::amplitude || card.dac.bits >= 2, "dac.bits",
        fmt::format("bit-serial encoding needs at least 2 bits (sign and one magnitude bit), got {}", card.dac.bits));
  if (!card.adc.inl_lsb.empty()) {
    const std::size_t codes = card.adc.bits > 0 ? (std::size_t{1} << card.adc.bits) - 1 : 0;
    check({"adc.bits", "adc.inl_lsb"}, card.adc.bits > 0 && card.adc.inl_lsb.size() == codes, "adc.inl_lsb",
          card.adc.bits > 0 ? fmt::format("expected {} values (codes -{}..{}), got {}", codes, codes / 2, codes / 2,
                                          card.adc.inl_lsb.size())
                            : "expected an empty list for an ideal ADC (bits: 0)");
  }
  check({"adc.bits", "adc.inl_sigma_lsb"}, card.adc.bits > 0 || card.adc.inl_sigma_lsb == 0, "adc.inl_sigma_lsb",
        "expected 0 for an ideal ADC (bits: 0)");
  check({"mapping.slices", "mapping.bits_per_slice"}, card.mapping.slices == 1 || card.mapping.bits_per_slice >= 1,
        "mapping.bits_per_slice", fmt::format("expected >= 1 bit per slice with {} slices", card.mapping.slices));
  if (has("mapping.scheme") && has("mapping.slices") && has("tile.cols")) {
    const int fit = outputs_that_fit(card.mapping, card.tile.cols);
    check({}, fit >= 1, "tile.cols",
          fmt::format("expected at least {} columns for one output of the {} mapping with {} slice(s), got {}",
                      columns_per_output(card.mapping) + (card.mapping.scheme == MappingScheme::reference ? 1 : 0),
                      card.mapping.scheme == MappingScheme::reference ? "reference" : "differential",
                      card.mapping.slices, card.tile.cols));
    check({"workload.weights.outputs"}, card.workload.outputs <= fit, "workload.weights.outputs",
          fmt::format("expected at most {} outputs (what {} columns hold), got {}", fit, card.tile.cols,
                      card.workload.outputs));
  }
  check({"workload.read_times"}, !card.workload.read_times_s.empty(), "workload.read_times",
        "expected at least one read time (s)");
  for (const std::string prefix : {"workload.weights", "workload.inputs"}) {
    if (!has(prefix + ".distribution") || !has(prefix + ".file")) continue;
    const MatrixSource& source = prefix == "workload.weights" ? card.workload.weights : card.workload.inputs;
    if (source.distribution != Distribution::file) continue;
    if (source.file.empty()) {
      issue(prefix + ".file", at(prefix + ".distribution"), "expected a CSV file name with distribution: file");
    } else if (!std::filesystem::is_regular_file(source.file)) {
      issue(prefix + ".file", at(prefix + ".file"), fmt::format("no such file: {}", source.file.string()));
    }
  }
}

}  // namespace

Card load_card_text(const std::string& text, const std::string& file_name, const std::vector<std::string>& overrides,
                    const DeviceParamLookup& device_params, const std::vector<std::string>& known_models) {
  Card card = CardLoader(file_name, device_params, known_models).load(text, overrides, ".");
  card.file = file_name;
  return card;
}

Card load_card(const std::filesystem::path& file, const std::vector<std::string>& overrides,
               const DeviceParamLookup& device_params, const std::vector<std::string>& known_models) {
  std::error_code error;
  if (std::filesystem::is_directory(file, error))
    throw UserError(fmt::format("{}: cannot read the card file (it is a folder)", file.string()));
  std::ifstream stream(file, std::ios::binary);
  if (!stream) throw UserError(fmt::format("{}: cannot read the card file ({})", file.string(), std::strerror(errno)));
  std::stringstream buffer;
  buffer << stream.rdbuf();
  const std::filesystem::path base_dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  Card card = CardLoader(file.string(), device_params, known_models).load(buffer.str(), overrides, base_dir);
  card.file = file;
  return card;
}

}  // namespace xbar::core
