// Tests of the YAML card loader (core/card.hpp): typed values and defaults of good cards, --set
// overrides, and the file, line, key and expectation of every kind of mistake.
#include "core/card.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/card_schema.hpp"
#include "core/error.hpp"

namespace xbar::core {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// ---------------------------------------------------------------------------------------------
// A fake device registry (core may not link devices): "ideal" has no parameters of its own; "toy"
// has a required number `sigma` in [0, 1e-3] S and a choice `shape` (default linear).

const std::vector<ParamSpec>& toy_params() {
  static const std::vector<ParamSpec> params = [] {
    ParamSpec sigma;
    sigma.key = "sigma";
    sigma.type = ValueType::number;
    sigma.unit = "S";
    sigma.min = 0;
    sigma.max = 1e-3;
    sigma.description = "Programming noise.";
    ParamSpec shape;
    shape.key = "shape";
    shape.type = ValueType::choice;
    shape.default_yaml = "linear";
    shape.choices = {"linear", "exponential"};
    shape.description = "Pulse response.";
    return std::vector<ParamSpec>{sigma, shape};
  }();
  return params;
}

const DeviceParamLookup& fake_lookup() {
  static const std::vector<ParamSpec> no_params;
  static const DeviceParamLookup lookup = [](const std::string& model) -> const std::vector<ParamSpec>* {
    if (model == "ideal") return &no_params;
    if (model == "toy") return &toy_params();
    return nullptr;
  };
  return lookup;
}

const std::vector<std::string> kKnownModels = {"ideal", "toy"};

// A complete card based on cards/ideal.yaml, with a distinct value for every key so that a loader
// that mixes two fields up fails. adc.range, workload.weights and workload.inputs are left out to
// exercise the defaults.
const std::string kGoodCard = R"(# Ideal tile for the loader tests.
seed: 7
tile:
  rows: 64
  cols: 32
  wires:
    r_wl_segment: 1.25    # ohm
    r_bl_segment: 1.5     # ohm
    r_source: 2.0         # ohm
    r_sense: 0.5          # ohm
device:
  model: ideal
  g_min: 1.0e-6           # S
  g_max: 25.0e-6          # S
dac:
  bits: 0
  v_read: 0.2
adc:
  bits: 0
mapping:
  scheme: differential
solver:
  method: direct
workload:
  read_times: [0.0, 1.5]
)";

// kGoodCard with the unique occurrence of `from` replaced by `to` (fails the test if `from` is
// not found exactly once).
std::string with(const std::string& card, const std::string& from, const std::string& to) {
  const auto at = card.find(from);
  if (at == std::string::npos || card.find(from, at + 1) != std::string::npos) {
    ADD_FAILURE() << "'" << from << "' is not found exactly once in the card";
    return card;
  }
  std::string result = card;
  result.replace(at, from.size(), to);
  return result;
}

// 1-based line of the unique occurrence of `needle` in `text`.
int line_of(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  if (at == std::string::npos || text.find(needle, at + 1) != std::string::npos) {
    ADD_FAILURE() << "'" << needle << "' is not found exactly once in the card";
    return -1;
  }
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

Card load(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return load_card_text(text, "card.yaml", overrides, fake_lookup(), kKnownModels);
}

std::string describe(const std::vector<CardIssue>& issues) {
  std::string text;
  for (const auto& issue : issues) text += "\n  " + issue.format();
  return text;
}

// The issues of a card that must fail to load.
std::vector<CardIssue> issues_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    load(text, overrides);
  } catch (const CardError& error) {
    return error.issues();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "expected a CardError, got another exception: " << error.what();
    return {};
  }
  ADD_FAILURE() << "expected a CardError, but the card loaded";
  return {};
}

// The single issue of a card that must fail with exactly one problem.
CardIssue only_issue(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const auto issues = issues_of(text, overrides);
  EXPECT_EQ(issues.size(), 1u) << describe(issues);
  return issues.empty() ? CardIssue{} : issues.front();
}

std::vector<std::string> keys_of(const std::vector<CardIssue>& issues) {
  std::vector<std::string> keys;
  for (const auto& issue : issues) keys.push_back(issue.key);
  return keys;
}

const CardIssue* find_issue(const std::vector<CardIssue>& issues, const std::string& key) {
  for (const auto& issue : issues)
    if (issue.key == key) return &issue;
  return nullptr;
}

// A fresh empty folder for cards that refer to files.
std::filesystem::path scratch_folder(const std::string& name) {
  const auto folder = std::filesystem::temp_directory_path() / ("xbar_test_card_" + name);
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  return folder;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream stream(path, std::ios::binary);
  stream << text;
}

// ---------------------------------------------------------------------------------------------
// Good cards.

TEST(Card, LoadsCompleteCardWithDefaults) {
  const Card card = load(kGoodCard);
  EXPECT_EQ(card.file, std::filesystem::path("card.yaml"));
  EXPECT_EQ(card.seed, 7u);
  EXPECT_EQ(card.tile.rows, 64);
  EXPECT_EQ(card.tile.cols, 32);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_wl_segment, 1.25);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_bl_segment, 1.5);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_source, 2.0);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_sense, 0.5);
  EXPECT_EQ(card.device.model, "ideal");
  EXPECT_DOUBLE_EQ(card.device.g_min, 1.0e-6);
  EXPECT_DOUBLE_EQ(card.device.g_max, 25.0e-6);
  EXPECT_TRUE(card.device.params.empty());
  EXPECT_EQ(card.dac.bits, 0);
  EXPECT_DOUBLE_EQ(card.dac.v_read, 0.2);
  EXPECT_EQ(card.adc.bits, 0);
  EXPECT_EQ(card.mapping.scheme, MappingScheme::differential);
  EXPECT_EQ(card.solver.method, "direct");
  EXPECT_THAT(card.workload.read_times_s, ElementsAre(0.0, 1.5));

  // Defaults of the omitted keys (card_schema.cpp).
  EXPECT_EQ(card.tile.access, AccessType::none);
  EXPECT_DOUBLE_EQ(card.tile.r_access_on, 0.0);
  EXPECT_EQ(card.dac.encoding, Encoding::amplitude);
  EXPECT_DOUBLE_EQ(card.dac.input_max, 1.0);
  EXPECT_EQ(card.adc.range, AdcRange::calibrated);
  EXPECT_DOUBLE_EQ(card.adc.i_max, 0.0);
  EXPECT_EQ(card.adc.calibration_inputs, 64);
  EXPECT_DOUBLE_EQ(card.adc.calibration_percentile, 100.0);
  EXPECT_DOUBLE_EQ(card.adc.offset_sigma, 0.0);
  EXPECT_DOUBLE_EQ(card.adc.gain_sigma, 0.0);
  EXPECT_DOUBLE_EQ(card.adc.noise_sigma, 0.0);
  EXPECT_TRUE(card.adc.inl_lsb.empty());
  EXPECT_DOUBLE_EQ(card.adc.inl_sigma_lsb, 0.0);
  EXPECT_DOUBLE_EQ(card.mapping.w_max, 1.0);
  EXPECT_EQ(card.mapping.slices, 1);
  EXPECT_EQ(card.mapping.bits_per_slice, 0);
  EXPECT_EQ(card.workload.weights.distribution, Distribution::uniform);
  EXPECT_DOUBLE_EQ(card.workload.weights.scale, 1.0);
  EXPECT_TRUE(card.workload.weights.file.empty());
  EXPECT_EQ(card.workload.outputs, 0);
  EXPECT_EQ(card.workload.inputs.distribution, Distribution::uniform);
  EXPECT_DOUBLE_EQ(card.workload.inputs.scale, 1.0);
  EXPECT_TRUE(card.workload.inputs.file.empty());
  EXPECT_EQ(card.workload.input_count, 4);

  // Without overrides the effective card is the text as given.
  EXPECT_EQ(card.effective_yaml, kGoodCard);
  EXPECT_TRUE(card.overrides.empty());
}

TEST(Card, LoadsEveryOptionalKeyWhenGiven) {
  const std::string text = R"(seed: 123456789
tile:
  rows: 16
  cols: 40
  wires: {r_wl_segment: 0.1, r_bl_segment: 0.2, r_source: 0.3, r_sense: 0.4}
  access:
    type: transistor
    r_on: 5.0e3
device:
  model: ideal
  g_min: 2.0e-6
  g_max: 30.0e-6
dac:
  bits: 6
  v_read: 0.3
  input_max: 2.5
  encoding: bit_serial
adc:
  bits: 3
  range: fixed
  i_max: 1.0e-4
  calibration_inputs: 17
  calibration_percentile: 99.5
  offset_sigma: 1.0e-8
  gain_sigma: 0.02
  noise_sigma: 3.0e-9
  inl_lsb: [0.1, -0.1, 0.2, 0, -0.2, 0.3, -0.3]
  inl_sigma_lsb: 0.05
mapping:
  scheme: reference
  w_max: 0.75
  slices: 3
  bits_per_slice: 2
solver:
  method: direct
workload:
  weights:
    distribution: normal
    scale: 0.5
    outputs: 13
  inputs:
    distribution: uniform
    scale: 0.25
    count: 9
  read_times: 60
)";
  const Card card = load(text);
  EXPECT_EQ(card.seed, 123456789u);
  EXPECT_EQ(card.tile.rows, 16);
  EXPECT_EQ(card.tile.cols, 40);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_wl_segment, 0.1);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_bl_segment, 0.2);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_source, 0.3);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_sense, 0.4);
  EXPECT_EQ(card.tile.access, AccessType::transistor);
  EXPECT_DOUBLE_EQ(card.tile.r_access_on, 5.0e3);
  EXPECT_DOUBLE_EQ(card.device.g_min, 2.0e-6);
  EXPECT_DOUBLE_EQ(card.device.g_max, 30.0e-6);
  EXPECT_EQ(card.dac.bits, 6);
  EXPECT_DOUBLE_EQ(card.dac.v_read, 0.3);
  EXPECT_DOUBLE_EQ(card.dac.input_max, 2.5);
  EXPECT_EQ(card.dac.encoding, Encoding::bit_serial);
  EXPECT_EQ(card.adc.bits, 3);
  EXPECT_EQ(card.adc.range, AdcRange::fixed);
  EXPECT_DOUBLE_EQ(card.adc.i_max, 1.0e-4);
  EXPECT_EQ(card.adc.calibration_inputs, 17);
  EXPECT_DOUBLE_EQ(card.adc.calibration_percentile, 99.5);
  EXPECT_DOUBLE_EQ(card.adc.offset_sigma, 1.0e-8);
  EXPECT_DOUBLE_EQ(card.adc.gain_sigma, 0.02);
  EXPECT_DOUBLE_EQ(card.adc.noise_sigma, 3.0e-9);
  EXPECT_THAT(card.adc.inl_lsb, ElementsAre(0.1, -0.1, 0.2, 0.0, -0.2, 0.3, -0.3));
  EXPECT_DOUBLE_EQ(card.adc.inl_sigma_lsb, 0.05);
  EXPECT_EQ(card.mapping.scheme, MappingScheme::reference);
  EXPECT_DOUBLE_EQ(card.mapping.w_max, 0.75);
  EXPECT_EQ(card.mapping.slices, 3);
  EXPECT_EQ(card.mapping.bits_per_slice, 2);
  EXPECT_EQ(card.workload.weights.distribution, Distribution::normal);
  EXPECT_DOUBLE_EQ(card.workload.weights.scale, 0.5);
  EXPECT_EQ(card.workload.outputs, 13);  // (40 - 1 reference column) / 3 slices = 13 fit exactly
  EXPECT_EQ(card.workload.inputs.distribution, Distribution::uniform);
  EXPECT_DOUBLE_EQ(card.workload.inputs.scale, 0.25);
  EXPECT_EQ(card.workload.input_count, 9);
  EXPECT_THAT(card.workload.read_times_s, ElementsAre(60.0));  // a single number is a one-element list
}

TEST(Card, LoadsShippedIdealCard) {
  const std::filesystem::path file = std::filesystem::path(XBAR_SOURCE_DIR) / "cards" / "ideal.yaml";
  const Card card = load_card(file, {}, fake_lookup(), kKnownModels);
  EXPECT_EQ(card.file, file);
  EXPECT_EQ(card.seed, 1u);
  EXPECT_EQ(card.tile.rows, 64);
  EXPECT_EQ(card.tile.cols, 64);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_wl_segment, 1.0);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_bl_segment, 1.0);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_source, 0.0);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_sense, 0.0);
  EXPECT_EQ(card.device.model, "ideal");
  EXPECT_DOUBLE_EQ(card.device.g_min, 1.0e-6);
  EXPECT_DOUBLE_EQ(card.device.g_max, 25.0e-6);
  EXPECT_EQ(card.dac.bits, 0);
  EXPECT_DOUBLE_EQ(card.dac.v_read, 0.2);
  EXPECT_EQ(card.adc.bits, 0);
  EXPECT_EQ(card.adc.range, AdcRange::fixed);
  EXPECT_EQ(card.mapping.scheme, MappingScheme::differential);
  EXPECT_EQ(card.solver.method, "direct");
  EXPECT_EQ(card.workload.input_count, 8);
  EXPECT_THAT(card.workload.read_times_s, ElementsAre(0.0));
  EXPECT_EQ(outputs_that_fit(card.mapping, card.tile.cols), 32);
}

TEST(Card, LoadsParametersOfTheChosenDeviceModel) {
  const std::string text = with(kGoodCard, "  model: ideal\n", "  model: toy\n  sigma: 2.5e-4\n");
  const Card card = load(text);
  EXPECT_EQ(card.device.model, "toy");
  ASSERT_EQ(card.device.params.size(), 2u);  // sigma as given, shape by default; no common keys
  EXPECT_DOUBLE_EQ(card.device.param("sigma"), 2.5e-4);
  EXPECT_EQ(card.device.text_param("shape"), "linear");
  EXPECT_THROW(card.device.param("shape"), UserError);  // a choice is not a number
  EXPECT_THROW(card.device.param("g_min"), UserError);  // common keys are fields, not params

  const Card exponential = load(with(text, "  sigma: 2.5e-4\n", "  sigma: 0\n  shape: exponential\n"));
  EXPECT_DOUBLE_EQ(exponential.device.param("sigma"), 0.0);
  EXPECT_EQ(exponential.device.text_param("shape"), "exponential");
}

TEST(Card, ResolvesWorkloadFilesAgainstTheCardFolder) {
  const auto folder = scratch_folder("files");
  write_file(folder / "weights.csv", "0.5\n");
  write_file(folder / "inputs.csv", "0.25\n");
  write_file(folder / "card.yaml",
             with(kGoodCard, "workload:\n",
                  "workload:\n  weights:\n    distribution: file\n    file: weights.csv\n"
                  "  inputs:\n    distribution: file\n    file: " + (folder / "inputs.csv").string() + "\n"));
  const Card card = load_card(folder / "card.yaml", {}, fake_lookup(), kKnownModels);
  EXPECT_EQ(card.workload.weights.distribution, Distribution::file);
  EXPECT_EQ(card.workload.weights.file, folder / "weights.csv");  // relative: next to the card
  EXPECT_EQ(card.workload.inputs.distribution, Distribution::file);
  EXPECT_EQ(card.workload.inputs.file, folder / "inputs.csv");  // absolute: as given
  std::filesystem::remove_all(folder);
}

TEST(Card, CountsColumnsPerOutputForEachScheme) {
  MappingOptions differential;
  differential.scheme = MappingScheme::differential;
  MappingOptions reference;
  reference.scheme = MappingScheme::reference;
  EXPECT_EQ(columns_per_output(differential), 2);
  EXPECT_EQ(columns_per_output(reference), 1);
  differential.slices = 3;
  reference.slices = 3;
  EXPECT_EQ(columns_per_output(differential), 6);
  EXPECT_EQ(columns_per_output(reference), 3);
}

TEST(Card, CountsOutputsThatFitWithReferenceColumnAndSlices) {
  MappingOptions differential;
  differential.scheme = MappingScheme::differential;
  MappingOptions reference;
  reference.scheme = MappingScheme::reference;
  EXPECT_EQ(outputs_that_fit(differential, 64), 32);
  EXPECT_EQ(outputs_that_fit(differential, 65), 32);
  EXPECT_EQ(outputs_that_fit(reference, 64), 63);  // one column is the shared reference
  EXPECT_EQ(outputs_that_fit(differential, 1), 0);
  EXPECT_EQ(outputs_that_fit(reference, 1), 0);
  EXPECT_EQ(outputs_that_fit(reference, 0), 0);
  differential.slices = 2;
  reference.slices = 2;
  EXPECT_EQ(outputs_that_fit(differential, 64), 16);
  EXPECT_EQ(outputs_that_fit(differential, 63), 15);
  EXPECT_EQ(outputs_that_fit(reference, 64), 31);  // (64 - 1) / 2
  EXPECT_EQ(outputs_that_fit(reference, 3), 1);
  EXPECT_EQ(outputs_that_fit(reference, 2), 0);
}

// ---------------------------------------------------------------------------------------------
// --set overrides.

TEST(CardOverrides, ReplacesExistingValue) {
  const Card card = load(kGoodCard, {"tile.rows=24"});
  EXPECT_EQ(card.tile.rows, 24);
  EXPECT_EQ(card.tile.cols, 32);
  EXPECT_THAT(card.overrides, ElementsAre("tile.rows=24"));
}

TEST(CardOverrides, ReplacesNestedValue) {
  const Card card = load(kGoodCard, {"tile.wires.r_wl_segment=1.7"});
  EXPECT_DOUBLE_EQ(card.tile.wires.r_wl_segment, 1.7);
  EXPECT_DOUBLE_EQ(card.tile.wires.r_bl_segment, 1.5);
}

TEST(CardOverrides, AppliesOverridesInOrder) {
  const Card card = load(kGoodCard, {"tile.rows=24", "tile.rows=48"});
  EXPECT_EQ(card.tile.rows, 48);
}

TEST(CardOverrides, AddsOmittedOptionalKeysAndSections) {
  const Card card = load(kGoodCard, {"adc.range=fixed", "workload.inputs.count=16", "workload.read_times=[1, 2, 3]",
                                     "dac.encoding=bit_serial", "dac.bits=4"});
  EXPECT_EQ(card.adc.range, AdcRange::fixed);
  EXPECT_EQ(card.workload.input_count, 16);  // workload.inputs is not in the card
  EXPECT_THAT(card.workload.read_times_s, ElementsAre(1.0, 2.0, 3.0));
  EXPECT_EQ(card.dac.encoding, Encoding::bit_serial);
  EXPECT_EQ(card.dac.bits, 4);
}

TEST(CardOverrides, EffectiveYamlReloadsToTheSameCard) {
  const std::vector<std::string> overrides = {"tile.rows=24", "tile.wires.r_wl_segment=1.7", "workload.inputs.count=16"};
  const Card card = load(kGoodCard, overrides);
  EXPECT_THAT(card.effective_yaml, AllOf(HasSubstr("rows: 24"), HasSubstr("r_wl_segment: 1.7"), HasSubstr("count: 16"),
                                         Not(HasSubstr("r_wl_segment: 1.25"))));
  const Card again = load(card.effective_yaml);
  EXPECT_EQ(again.tile.rows, 24);
  EXPECT_EQ(again.tile.cols, card.tile.cols);
  EXPECT_DOUBLE_EQ(again.tile.wires.r_wl_segment, 1.7);
  EXPECT_DOUBLE_EQ(again.tile.wires.r_bl_segment, card.tile.wires.r_bl_segment);
  EXPECT_DOUBLE_EQ(again.tile.wires.r_source, card.tile.wires.r_source);
  EXPECT_DOUBLE_EQ(again.tile.wires.r_sense, card.tile.wires.r_sense);
  EXPECT_EQ(again.workload.input_count, 16);
  EXPECT_EQ(again.seed, card.seed);
  EXPECT_EQ(again.device.model, card.device.model);
  EXPECT_DOUBLE_EQ(again.device.g_min, card.device.g_min);
  EXPECT_DOUBLE_EQ(again.device.g_max, card.device.g_max);
  EXPECT_DOUBLE_EQ(again.dac.v_read, card.dac.v_read);
  EXPECT_EQ(again.mapping.scheme, card.mapping.scheme);
  EXPECT_EQ(again.workload.read_times_s, card.workload.read_times_s);
  // Reloading the effective card with no overrides keeps it as it is.
  EXPECT_EQ(again.effective_yaml, card.effective_yaml);
}

TEST(CardOverrides, ReportsBadValueWithFileSet) {
  const CardIssue issue = only_issue(kGoodCard, {"tile.rows=many"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "tile.rows");
  EXPECT_EQ(issue.line, 0);
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected an integer >= 1"), HasSubstr("'many'")));
  EXPECT_THAT(issue.format(), HasSubstr("--set: tile.rows: expected an integer"));
}

TEST(CardOverrides, ReportsOutOfRangeNestedValueWithFileSet) {
  const CardIssue issue = only_issue(kGoodCard, {"tile.wires.r_sense=-3"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "tile.wires.r_sense");
  EXPECT_THAT(issue.message, AllOf(HasSubstr(">= 0"), HasSubstr("got -3")));
}

TEST(CardOverrides, ReportsUnknownKeyAsUnknown) {
  const CardIssue issue = only_issue(kGoodCard, {"tile.wires.r_wl_segmnt=1.7"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "tile.wires.r_wl_segmnt");
  EXPECT_THAT(issue.message, AllOf(HasSubstr("unknown key"), HasSubstr("did you mean 'r_wl_segment'")));
}

TEST(CardOverrides, ReportsUnknownSectionAsUnknownFromSet) {
  const CardIssue issue = only_issue(kGoodCard, {"tiles.rows=24"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "tiles");
  EXPECT_THAT(issue.message, AllOf(HasSubstr("unknown key"), HasSubstr("did you mean 'tile'")));
}

TEST(CardOverrides, ReportsOverrideWithoutEquals) {
  const CardIssue issue = only_issue(kGoodCard, {"tile.rows"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "tile.rows");
  EXPECT_THAT(issue.message, HasSubstr("expected key.path=value"));
}

TEST(CardOverrides, ReportsEmptyKeyPathSegment) {
  const CardIssue issue = only_issue(kGoodCard, {"tile..rows=24"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "tile..rows");
  EXPECT_THAT(issue.message, HasSubstr("dotted key path"));
}

TEST(CardOverrides, ReportsValueThatIsNotYaml) {
  const CardIssue issue = only_issue(kGoodCard, {"workload.read_times=[1, 2"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "workload.read_times");
  EXPECT_THAT(issue.message, HasSubstr("not valid YAML"));
}

TEST(CardOverrides, ReportsPathThroughAValue) {
  const CardIssue issue = only_issue(kGoodCard, {"tile.rows.count=3"});
  EXPECT_EQ(issue.file, "--set");
  EXPECT_EQ(issue.key, "tile.rows.count");
  EXPECT_THAT(issue.message, HasSubstr("'tile.rows' is not a section"));
}

// ---------------------------------------------------------------------------------------------
// Mistakes in a card: file, line, key and expectation of each.

TEST(CardErrors, NamesLineAndKeyOfNegativeResistance) {
  const std::string text = with(kGoodCard, "    r_bl_segment: 1.5     # ohm\n", "    r_bl_segment: -1\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.key, "tile.wires.r_bl_segment");
  EXPECT_EQ(issue.line, line_of(text, "r_bl_segment: -1"));
  EXPECT_EQ(issue.line, 8);
  EXPECT_EQ(issue.column, 19);  // the value, after "    r_bl_segment: "
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected a number >= 0"), HasSubstr("(ohm)"), HasSubstr("got -1")));
  EXPECT_EQ(issue.format(), "card.yaml:8:19: tile.wires.r_bl_segment: " + issue.message);
}

TEST(CardErrors, CardErrorMessageListsEveryIssue) {
  const std::string text = with(kGoodCard, "    r_bl_segment: 1.5     # ohm\n", "    r_bl_segment: -1\n");
  try {
    load(text);
    FAIL() << "expected a CardError";
  } catch (const CardError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("1 error"), HasSubstr("card.yaml:8:19: tile.wires.r_bl_segment")));
  }
}

TEST(CardErrors, NamesMissingKeyAndLineOfItsSection) {
  const std::string text = with(kGoodCard, "    r_sense: 0.5          # ohm\n", "");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.key, "tile.wires.r_sense");
  EXPECT_EQ(issue.line, line_of(text, "wires:"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("missing key"), HasSubstr("a number >= 0"), HasSubstr("(ohm)")));
}

TEST(CardErrors, NamesMissingKeyOfAbsentSectionWithoutLine) {
  const std::string text = with(kGoodCard, "solver:\n  method: direct\n", "");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.key, "solver.method");
  EXPECT_EQ(issue.line, 0);  // there is no line to point at
  EXPECT_THAT(issue.message, AllOf(HasSubstr("missing key"), HasSubstr("one of: direct")));
}

TEST(CardErrors, ReportsEveryRequiredKeyOfAnEmptyCard) {
  std::vector<std::string> required;
  for (const auto& spec : card_schema())
    if (spec.required()) required.push_back(spec.key);
  ASSERT_GE(required.size(), 10u);
  const auto issues = issues_of("# nothing yet\n");
  EXPECT_THAT(keys_of(issues), ::testing::UnorderedElementsAreArray(required)) << describe(issues);
  for (const auto& issue : issues) EXPECT_THAT(issue.message, HasSubstr("missing key")) << issue.format();
}

TEST(CardErrors, SuggestsKeyForTypo) {
  const std::string text = with(kGoodCard, "    r_wl_segment: 1.25", "    r_wl_segmnt: 1.25");
  const auto issues = issues_of(text);
  ASSERT_EQ(issues.size(), 2u) << describe(issues);  // the typo, and the key it should have been
  const CardIssue* typo = find_issue(issues, "tile.wires.r_wl_segmnt");
  ASSERT_NE(typo, nullptr) << describe(issues);
  EXPECT_EQ(typo->file, "card.yaml");
  EXPECT_EQ(typo->line, line_of(text, "r_wl_segmnt"));
  EXPECT_EQ(typo->column, 5);
  EXPECT_THAT(typo->message, AllOf(HasSubstr("unknown key"), HasSubstr("did you mean 'r_wl_segment'?")));
  const CardIssue* missing = find_issue(issues, "tile.wires.r_wl_segment");
  ASSERT_NE(missing, nullptr) << describe(issues);
  EXPECT_THAT(missing->message, HasSubstr("missing key"));
}

TEST(CardErrors, ListsAllowedKeysForUnknownKeyWithoutNearMatch) {
  const std::string text = with(kGoodCard, "  cols: 32\n", "  cols: 32\n  colour: red\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile.colour");
  EXPECT_EQ(issue.line, line_of(text, "colour"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("unknown key"), HasSubstr("this section allows: access, cols, rows, wires")));
}

TEST(CardErrors, NamesExpectedTypeOfWrongType) {
  const std::string text = with(kGoodCard, "  rows: 64\n", "  rows: \"many\"\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile.rows");
  EXPECT_EQ(issue.line, line_of(text, "rows:"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected an integer >= 1, <= 65536"), HasSubstr("got 'many'")));
}

TEST(CardErrors, RejectsListWhereNumberIsExpected) {
  const std::string text = with(kGoodCard, "  v_read: 0.2\n", "  v_read: [0.2, 0.3]\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "dac.v_read");
  EXPECT_EQ(issue.line, line_of(text, "v_read:"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected a number > 0"), HasSubstr("(V)"), HasSubstr("got a list")));
}

TEST(CardErrors, RejectsNonIntegerWhereIntegerIsExpected) {
  const std::string text = with(kGoodCard, "  cols: 32\n", "  cols: 32.5\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile.cols");
  EXPECT_EQ(issue.line, line_of(text, "cols: 32.5"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected an integer"), HasSubstr("got '32.5'")));
}

TEST(CardErrors, NamesRangeOfIntegerOutOfRange) {
  const std::string text = with(kGoodCard, "  bits: 0\n  v_read", "  bits: 25\n  v_read");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "dac.bits");
  EXPECT_EQ(issue.line, line_of(text, "bits: 25"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected an integer >= 0, <= 24"), HasSubstr("got 25")));
}

TEST(CardErrors, NamesOffendingElementOfNumberList) {
  const std::string text = with(kGoodCard, "read_times: [0.0, 1.5]", "read_times: [0.0, -1.5]");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "workload.read_times");
  EXPECT_EQ(issue.line, line_of(text, "read_times"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("a list of numbers, each >= 0"), HasSubstr("(s)"),
                                   HasSubstr("'-1.5' at position 2")));
}

TEST(CardErrors, SuggestsAllowedChoice) {
  const std::string text = with(kGoodCard, "  v_read: 0.2\n", "  v_read: 0.2\n  encoding: serial\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "dac.encoding");
  EXPECT_EQ(issue.line, line_of(text, "encoding: serial"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("one of: amplitude, bit_serial"), HasSubstr("got 'serial'"),
                                   HasSubstr("did you mean 'bit_serial'?")));
}

TEST(CardErrors, SuggestsChoiceForMisspelling) {
  const std::string text = with(kGoodCard, "  scheme: differential\n", "  scheme: diferential\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "mapping.scheme");
  EXPECT_THAT(issue.message, AllOf(HasSubstr("one of: differential, reference"), HasSubstr("did you mean 'differential'?")));
}

TEST(CardErrors, ReportsLineOfUnbalancedBracket) {
  const std::string text = with(kGoodCard, "  rows: 64\n", "  rows: [64\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.key, "");
  EXPECT_THAT(issue.message, AllOf(HasSubstr("invalid YAML"), HasSubstr("end of sequence flow not found")));
  // The parser notices the missing ']' where the next line begins.
  EXPECT_EQ(issue.line, line_of(text, "rows: [64") + 1);
  EXPECT_THAT(issue.format(), HasSubstr("card.yaml:" + std::to_string(issue.line) + ":"));
}

TEST(CardErrors, ReportsLineOfBadIndentation) {
  const std::string text = with(kGoodCard, "  cols: 32\n", " cols: 32\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_THAT(issue.message, HasSubstr("invalid YAML"));
  EXPECT_EQ(issue.line, line_of(text, " cols: 32"));
  EXPECT_THAT(issue.format(), HasSubstr("card.yaml:" + std::to_string(issue.line) + ":"));
}

TEST(CardErrors, RejectsCardThatIsNotAMapping) {
  const CardIssue issue = only_issue("- seed\n- tile\n");
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.line, 1);
  EXPECT_THAT(issue.message, HasSubstr("expected a YAML mapping of sections"));
}

TEST(CardErrors, RejectsSectionGivenAsScalar) {
  const std::string text = R"(seed: 7
tile: 5
device:
  model: ideal
  g_min: 1.0e-6
  g_max: 25.0e-6
dac: {bits: 0, v_read: 0.2}
adc: {bits: 0}
mapping: {scheme: differential}
solver: {method: direct}
workload: {read_times: [0]}
)";
  const auto issues = issues_of(text);
  const CardIssue* tile = find_issue(issues, "tile");
  ASSERT_NE(tile, nullptr) << describe(issues);
  EXPECT_EQ(tile->file, "card.yaml");
  EXPECT_EQ(tile->line, 2);
  EXPECT_THAT(tile->message, AllOf(HasSubstr("expected a section with keys access, cols, rows, wires"), HasSubstr("got '5'")));
  // Its required keys are missing too, and nothing else is wrong.
  EXPECT_THAT(keys_of(issues), UnorderedElementsAre("tile", "tile.rows", "tile.cols", "tile.wires.r_wl_segment",
                                                    "tile.wires.r_bl_segment", "tile.wires.r_source",
                                                    "tile.wires.r_sense"));
}

TEST(CardErrors, RejectsMappingWhereValueIsExpected) {
  const std::string text = with(kGoodCard, "  rows: 64\n", "  rows:\n    value: 64\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile.rows");
  EXPECT_THAT(issue.message, HasSubstr("got a section (mapping)"));
}

TEST(CardErrors, ReportsDuplicateKey) {
  const std::string text = with(kGoodCard, "  cols: 32\n", "  cols: 32\n  rows: 16\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile.rows");
  EXPECT_EQ(issue.line, line_of(text, "rows: 16"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("duplicate key"), HasSubstr("line " + std::to_string(line_of(text, "rows: 64")))));
}

TEST(CardErrors, ReportsKeyThatIsNotAName) {
  const std::string text = with(kGoodCard, "  cols: 32\n", "  cols: 32\n  [a, b]: 3\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile");
  EXPECT_EQ(issue.line, line_of(text, "[a, b]"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected a key name"), HasSubstr("a list")));
}

TEST(CardErrors, RejectsGMinNotBelowGMax) {
  const std::string text = with(kGoodCard, "  g_max: 25.0e-6          # S\n", "  g_max: 1.0e-6\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.key, "device.g_max");
  EXPECT_EQ(issue.line, line_of(text, "g_max:"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected g_max > g_min (1e-06 S)"), HasSubstr("got 1e-06 S")));

  const CardIssue reversed = only_issue(with(kGoodCard, "  g_min: 1.0e-6           # S\n", "  g_min: 30.0e-6\n"));
  EXPECT_EQ(reversed.key, "device.g_max");
  EXPECT_THAT(reversed.message, HasSubstr("expected g_max > g_min (3e-05 S), got 2.5e-05 S"));
}

// Device models.

TEST(CardErrors, ListsKnownModelsForUnknownModel) {
  const std::string text = with(kGoodCard, "  model: ideal\n", "  model: pcm_gst\n  drift_nu: 0.05\n");
  const CardIssue issue = only_issue(text);  // the unknown model's own keys cannot be judged
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.key, "device.model");
  EXPECT_EQ(issue.line, line_of(text, "pcm_gst"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("unknown device model 'pcm_gst'"), HasSubstr("known models: ideal, toy")));
}

TEST(CardErrors, SuggestsModelForMisspelledModel) {
  const CardIssue issue = only_issue(with(kGoodCard, "  model: ideal\n", "  model: idael\n"));
  EXPECT_EQ(issue.key, "device.model");
  EXPECT_THAT(issue.message, AllOf(HasSubstr("did you mean 'ideal'?"), HasSubstr("known models: ideal, toy")));
}

TEST(CardErrors, NamesRangeOfDeviceParameterOutOfRange) {
  const std::string text = with(kGoodCard, "  model: ideal\n", "  model: toy\n  sigma: 2.0e-3\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.file, "card.yaml");
  EXPECT_EQ(issue.key, "device.sigma");
  EXPECT_EQ(issue.line, line_of(text, "sigma:"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected a number >= 0, <= 0.001 (S)"), HasSubstr("got 2.0e-3")));
}

TEST(CardErrors, RejectsDeviceChoiceThatIsNotAllowed) {
  const std::string text = with(kGoodCard, "  model: ideal\n", "  model: toy\n  sigma: 1.0e-4\n  shape: cubic\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "device.shape");
  EXPECT_EQ(issue.line, line_of(text, "shape:"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("one of: linear, exponential"), HasSubstr("got 'cubic'")));
}

TEST(CardErrors, NamesMissingParameterOfKnownModel) {
  const std::string text = with(kGoodCard, "  model: ideal\n", "  model: toy\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "device.sigma");
  EXPECT_EQ(issue.line, line_of(text, "device:"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("missing key"), HasSubstr("a number >= 0, <= 0.001 (S)")));
}

TEST(CardErrors, ReportsUnknownKeyInDeviceSectionOfKnownModel) {
  const std::string typo = with(kGoodCard, "  model: ideal\n", "  model: toy\n  sigma: 1.0e-4\n  sigmma: 1.0e-4\n");
  const CardIssue near = only_issue(typo);
  EXPECT_EQ(near.key, "device.sigmma");
  EXPECT_EQ(near.line, line_of(typo, "sigmma"));
  EXPECT_THAT(near.message, AllOf(HasSubstr("unknown key"), HasSubstr("did you mean 'sigma'?")));

  // A parameter of another model: the message lists what this model's section allows.
  const std::string other = with(kGoodCard, "  model: ideal\n", "  model: ideal\n  sigma: 1.0e-4\n");
  const CardIssue foreign = only_issue(other);
  EXPECT_EQ(foreign.key, "device.sigma");
  EXPECT_EQ(foreign.line, line_of(other, "sigma"));
  EXPECT_THAT(foreign.message, AllOf(HasSubstr("unknown key"), HasSubstr("allows: faults, g_max, g_min, model, rtn")));
}

// All mistakes at once.

TEST(CardErrors, ReportsAllMistakesAtOnce) {
  std::string text = kGoodCard;
  text = with(text, "  rows: 64\n", "  rows: many\n");
  text = with(text, "    r_bl_segment: 1.5     # ohm\n", "    r_bl_segment: -1\n");
  text = with(text, "    r_sense: 0.5          # ohm\n", "");
  text = with(text, "  v_read: 0.2\n", "  v_read: 0.2\n  encoding: serial\n");
  text = with(text, "  method: direct\n", "  method: direct\n  tolerance: 1e-9\n");
  text = with(text, "  g_max: 25.0e-6          # S\n", "  g_max: 0.5e-6\n");  // a cross-field mistake
  const auto issues = issues_of(text);
  EXPECT_EQ(issues.size(), 6u) << describe(issues);
  EXPECT_THAT(keys_of(issues), UnorderedElementsAre("tile.rows", "tile.wires.r_bl_segment", "tile.wires.r_sense",
                                                    "dac.encoding", "solver.tolerance", "device.g_max"))
      << describe(issues);
  const CardIssue* rows = find_issue(issues, "tile.rows");
  ASSERT_NE(rows, nullptr);
  EXPECT_EQ(rows->line, line_of(text, "rows: many"));
  const CardIssue* g_max = find_issue(issues, "device.g_max");
  ASSERT_NE(g_max, nullptr);
  EXPECT_EQ(g_max->line, line_of(text, "g_max:"));
}

TEST(CardErrors, SkipsCrossChecksOfValuesThatAreAlreadyWrong) {
  // g_max is not a number: report that, not also a comparison with a value that does not exist.
  const CardIssue issue = only_issue(with(kGoodCard, "  g_max: 25.0e-6          # S\n", "  g_max: big\n"));
  EXPECT_EQ(issue.key, "device.g_max");
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected a number"), HasSubstr("got 'big'")));
}

// ---------------------------------------------------------------------------------------------
// Checks across fields.

TEST(CardErrors, RejectsTransistorAccessWithZeroOnResistance) {
  const std::string text = with(kGoodCard, "  cols: 32\n", "  cols: 32\n  access:\n    type: transistor\n    r_on: 0\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile.access.r_on");
  EXPECT_EQ(issue.line, line_of(text, "r_on"));
  EXPECT_THAT(issue.message, HasSubstr("on-resistance > 0 (ohm) for a transistor access device"));

  // Omitting r_on (default 0) is the same mistake.
  const CardIssue omitted = only_issue(with(kGoodCard, "  cols: 32\n", "  cols: 32\n  access: {type: transistor}\n"));
  EXPECT_EQ(omitted.key, "tile.access.r_on");
}

TEST(CardErrors, RejectsBitSerialWithOneDacBit) {
  const std::string text = with(kGoodCard, "  bits: 0\n  v_read: 0.2\n", "  bits: 1\n  v_read: 0.2\n  encoding: bit_serial\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "dac.bits");
  EXPECT_EQ(issue.line, line_of(text, "bits: 1"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("bit-serial encoding needs at least 2 bits"), HasSubstr("got 1")));
  // Two bits are enough.
  EXPECT_NO_THROW(load(with(text, "  bits: 1\n", "  bits: 2\n")));
}

TEST(CardErrors, RejectsInlTableOfWrongLength) {
  const std::string text = with(kGoodCard, "adc:\n  bits: 0\n", "adc:\n  bits: 3\n  inl_lsb: [0, 0.1, 0.2, 0.1, 0]\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "adc.inl_lsb");
  EXPECT_EQ(issue.line, line_of(text, "inl_lsb"));
  EXPECT_THAT(issue.message, AllOf(HasSubstr("expected 7 values (codes -3..3)"), HasSubstr("got 5")));
  EXPECT_NO_THROW(load(with(text, "[0, 0.1, 0.2, 0.1, 0]", "[0, 0.1, 0.2, 0.1, 0, 0, 0]")));
}

TEST(CardErrors, RejectsInlOfIdealAdc) {
  const std::string table = with(kGoodCard, "adc:\n  bits: 0\n", "adc:\n  bits: 0\n  inl_lsb: [0.1]\n");
  const CardIssue issue = only_issue(table);
  EXPECT_EQ(issue.key, "adc.inl_lsb");
  EXPECT_THAT(issue.message, HasSubstr("empty list for an ideal ADC (bits: 0)"));

  const CardIssue sigma = only_issue(with(kGoodCard, "adc:\n  bits: 0\n", "adc:\n  bits: 0\n  inl_sigma_lsb: 0.5\n"));
  EXPECT_EQ(sigma.key, "adc.inl_sigma_lsb");
  EXPECT_THAT(sigma.message, HasSubstr("expected 0 for an ideal ADC"));
}

TEST(CardErrors, RejectsSlicesWithoutBitsPerSlice) {
  const std::string text = with(kGoodCard, "  scheme: differential\n", "  scheme: differential\n  slices: 2\n  bits_per_slice: 0\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "mapping.bits_per_slice");
  EXPECT_EQ(issue.line, line_of(text, "bits_per_slice"));
  EXPECT_THAT(issue.message, HasSubstr("expected >= 1 bit per slice with 2 slices"));
}

TEST(CardErrors, RejectsMoreOutputsThanFit) {
  // 32 columns, differential, 2 slices: 8 outputs fit.
  const std::string text = with(kGoodCard, "  scheme: differential\n",
                                "  scheme: differential\n  slices: 2\n  bits_per_slice: 4\n");
  EXPECT_NO_THROW(load(with(text, "workload:\n", "workload:\n  weights: {outputs: 8}\n")));
  const std::string too_many = with(text, "workload:\n", "workload:\n  weights:\n    outputs: 9\n");
  const CardIssue issue = only_issue(too_many);
  EXPECT_EQ(issue.key, "workload.weights.outputs");
  EXPECT_EQ(issue.line, line_of(too_many, "outputs"));
  EXPECT_THAT(issue.message, HasSubstr("expected at most 8 outputs (what 32 columns hold), got 9"));
}

TEST(CardErrors, RejectsTileTooNarrowForOneOutput) {
  const std::string text = with(kGoodCard, "  cols: 32\n", "  cols: 1\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "tile.cols");
  EXPECT_EQ(issue.line, line_of(text, "cols: 1"));
  EXPECT_THAT(issue.message, HasSubstr("expected at least 2 columns for one output of the differential mapping"));
}

TEST(CardErrors, RejectsEmptyReadTimes) {
  const CardIssue issue = only_issue(with(kGoodCard, "[0.0, 1.5]", "[]"));
  EXPECT_EQ(issue.key, "workload.read_times");
  EXPECT_THAT(issue.message, HasSubstr("at least one read time"));
}

TEST(CardErrors, NamesPathOfMissingWorkloadFile) {
  const auto folder = scratch_folder("missing");
  const std::string text =
      with(kGoodCard, "workload:\n", "workload:\n  weights:\n    distribution: file\n    file: no_such_weights.csv\n");
  write_file(folder / "card.yaml", text);
  try {
    load_card(folder / "card.yaml", {}, fake_lookup(), kKnownModels);
    ADD_FAILURE() << "expected a CardError";
  } catch (const CardError& error) {
    ASSERT_EQ(error.issues().size(), 1u) << error.what();
    const CardIssue& issue = error.issues().front();
    EXPECT_EQ(issue.file, (folder / "card.yaml").string());
    EXPECT_EQ(issue.key, "workload.weights.file");
    EXPECT_EQ(issue.line, line_of(text, "no_such_weights.csv"));
    EXPECT_THAT(issue.message, HasSubstr("no such file: " + (folder / "no_such_weights.csv").string()));
  }
  std::filesystem::remove_all(folder);
}

TEST(CardErrors, RejectsFileDistributionWithoutFile) {
  const std::string text = with(kGoodCard, "workload:\n", "workload:\n  inputs:\n    distribution: file\n");
  const CardIssue issue = only_issue(text);
  EXPECT_EQ(issue.key, "workload.inputs.file");
  EXPECT_EQ(issue.line, line_of(text, "distribution: file"));
  EXPECT_THAT(issue.message, HasSubstr("expected a CSV file name with distribution: file"));
}

// ---------------------------------------------------------------------------------------------
// Files.

TEST(CardFile, ThrowsUserErrorNamingMissingFile) {
  const std::filesystem::path file = "cards/no_such_card.yaml";
  try {
    load_card(file, {}, fake_lookup(), kKnownModels);
    FAIL() << "expected a UserError";
  } catch (const CardError& error) {
    FAIL() << "expected a plain UserError, got a CardError: " << error.what();
  } catch (const UserError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("cards/no_such_card.yaml"), HasSubstr("cannot read")));
  }
}

TEST(CardFile, ThrowsUserErrorForFolder) {
  const auto folder = scratch_folder("folder");
  try {
    load_card(folder, {}, fake_lookup(), kKnownModels);
    FAIL() << "expected a UserError";
  } catch (const CardError& error) {
    FAIL() << "expected a plain UserError, got a CardError: " << error.what();
  } catch (const UserError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr(folder.string()), HasSubstr("cannot read")));
  }
  std::filesystem::remove_all(folder);
}

}  // namespace
}  // namespace xbar::core
