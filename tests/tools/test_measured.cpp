// Measured-data import (tools/measured.hpp): the CSV formats of ../shared/data/measured (copies
// with their licences in tests/data/measured), the HDF5 layout, the fitting / held-out split and
// `xbar import`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/files.hpp"
#include "core/error.hpp"
#include "core/trace.hpp"
#include "tools/measured.hpp"

namespace fs = std::filesystem;
using testing::AllOf;
using testing::HasSubstr;
using xbar::core::UserError;
using xbar::tools::MeasuredRamp;
using xbar::tools::MeasuredRamps;

using xbar::testing_support::Outcome;
using xbar::testing_support::run_command;
using xbar::testing_support::slurp;
using xbar::testing_support::user_error_message;

namespace {

const fs::path kData = fs::path(XBAR_SOURCE_DIR) / "tests" / "data" / "measured";
const fs::path kTaox = kData / "rram_taox_pulse_ramps";
const fs::path kGong = kData / "rram_gong2018_pulse_response" / "gong_et_al.csv";

// Ramp lengths of the TaOx data (values per column before the first empty cell), counted from
// the files by hand with Python's csv module.
const std::vector<int> kSetLengths = {190, 190, 191, 189, 185, 186, 191, 190, 186, 188, 190, 188, 186,
                                      190, 190, 187, 186, 190, 190, 189, 189, 191, 188, 186, 187, 192,
                                      190, 185, 188, 190, 191, 188, 188, 190, 191, 189, 188, 188, 191};
const std::vector<int> kResetLengths = {151, 152, 150, 150, 152, 153, 151, 149, 152, 153, 150, 150, 153, 152,
                                        150, 151, 153, 151, 151, 151, 153, 151, 151, 153, 153, 151, 150, 152,
                                        153, 150, 150, 152, 153, 151, 151, 150, 152, 152, 151, 151};



// |a - b| <= rel * |b|
void expect_rel(double a, double b, double rel) { EXPECT_NEAR(a, b, rel * std::abs(b)) << a << " vs " << b; }

MeasuredRamps import_taox() {
  return xbar::tools::import_ramp_csv(kTaox / "set.csv", kTaox / "reset.csv", 0.1,
                                      xbar::tools::parse_index_ranges("28-39", "--heldout-set"),
                                      xbar::tools::parse_index_ranges("29-40", "--heldout-reset"));
}

std::vector<int> ids_of(const std::vector<xbar::devices::Ramp>& ramps) {
  std::vector<int> ids;
  for (const auto& ramp : ramps) ids.push_back(ramp.id);
  return ids;
}

std::vector<int> range(int first, int last) {
  std::vector<int> ids;
  for (int id = first; id <= last; ++id) ids.push_back(id);
  return ids;
}

// The two columns of a normalised pulse-response CSV, read independently of the importer.
void read_two_columns(const fs::path& file, std::vector<double>& up, std::vector<double>& down) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto comma = line.find(',');
    up.push_back(std::stod(line.substr(0, comma)));
    down.push_back(std::stod(line.substr(comma + 1)));
  }
}

// A fresh folder per test, removed afterwards.
class MeasuredFiles : public xbar::testing_support::TempDirTest {};

// ---- the TaOx ramps (column-per-ramp CSV)

TEST(ImportRampCsv, TaoxRampsHaveTheCountsAndLengthsOfTheData) {
  const MeasuredRamps ramps = import_taox();
  ASSERT_EQ(ramps.set.size(), 39u);
  ASSERT_EQ(ramps.reset.size(), 40u);
  for (std::size_t k = 0; k < ramps.set.size(); ++k) {
    EXPECT_EQ(ramps.set[k].ramp.id, static_cast<int>(k) + 1);
    EXPECT_EQ(static_cast<int>(ramps.set[k].ramp.g.size()), kSetLengths[k]) << "SET ramp " << k + 1;
  }
  for (std::size_t k = 0; k < ramps.reset.size(); ++k) {
    EXPECT_EQ(ramps.reset[k].ramp.id, static_cast<int>(k) + 1);
    EXPECT_EQ(static_cast<int>(ramps.reset[k].ramp.g.size()), kResetLengths[k]) << "RESET ramp " << k + 1;
  }
  EXPECT_EQ(ramps.units, "S");
  EXPECT_DOUBLE_EQ(ramps.read_voltage, 0.1);
}

TEST(ImportRampCsv, ConductanceIsCurrentOverReadVoltage) {
  const MeasuredRamps ramps = import_taox();
  // First and last reads of the first and last ramps, from the files: current / 0.1 V.
  expect_rel(ramps.set.front().ramp.g.front(), 0.000160588 / 0.1, 1e-12);
  expect_rel(ramps.set.front().ramp.g.back(), 0.000245133 / 0.1, 1e-12);
  expect_rel(ramps.set.back().ramp.g.front(), 0.00016521 / 0.1, 1e-12);
  expect_rel(ramps.set.back().ramp.g.back(), 0.000248507 / 0.1, 1e-12);
  expect_rel(ramps.reset.front().ramp.g.front(), 0.000245103 / 0.1, 1e-12);
  expect_rel(ramps.reset.back().ramp.g.back(), 0.000165582 / 0.1, 1e-12);

  double lo = 1, hi = 0;
  for (const auto* direction : {&ramps.set, &ramps.reset})
    for (const MeasuredRamp& measured : *direction)
      for (double g : measured.ramp.g) {
        lo = std::min(lo, g);
        hi = std::max(hi, g);
      }
  // README: about 1.4 mS to 2.5 mS; the files span 1.6057 mS to 2.4851 mS.
  EXPECT_GT(lo, 1.4e-3);
  EXPECT_LT(hi, 2.5e-3);
  expect_rel(lo, 1.60568e-3, 1e-9);
  expect_rel(hi, 2.48507e-3, 1e-9);
}

TEST(ImportRampCsv, HeldOutFlagsFollowTheSharedReadmeSplit) {
  const MeasuredRamps ramps = import_taox();
  // README: SET 1-27 and RESET 1-28 for fitting; SET 28-39 and RESET 29-40 held out.
  for (const MeasuredRamp& measured : ramps.set) EXPECT_EQ(measured.heldout, measured.ramp.id >= 28) << measured.ramp.id;
  for (const MeasuredRamp& measured : ramps.reset)
    EXPECT_EQ(measured.heldout, measured.ramp.id >= 29) << measured.ramp.id;
}

TEST(ImportRampCsv, EmptyNanAndZeroEndRampsAndReadVoltageScales) {
  const MeasuredRamps ramps =
      xbar::tools::import_ramp_csv(kData / "good_set.csv", kData / "good_reset.csv", 0.2, {2}, {});
  ASSERT_EQ(ramps.set.size(), 3u);
  ASSERT_EQ(ramps.reset.size(), 2u);
  // good_set.csv: ramp 1 ends at a 0, ramp 2 at an empty cell, ramp 3 at "nan" (then "NaN" and a
  // missing trailing field); good_reset.csv has CRLF line ends, ends ramp 2 at "0.0".
  const std::vector<std::vector<double>> set_currents = {
      {1.0e-4, 1.1e-4, 1.2e-4, 1.3e-4}, {2.0e-4, 2.1e-4}, {3.0e-4, 3.1e-4}};
  for (std::size_t k = 0; k < 3; ++k) {
    ASSERT_EQ(ramps.set[k].ramp.g.size(), set_currents[k].size()) << "ramp " << k + 1;
    for (std::size_t j = 0; j < set_currents[k].size(); ++j) expect_rel(ramps.set[k].ramp.g[j], set_currents[k][j] / 0.2, 1e-12);
  }
  ASSERT_EQ(ramps.reset[0].ramp.g.size(), 3u);
  expect_rel(ramps.reset[0].ramp.g[2], 3e-4 / 0.2, 1e-12);
  ASSERT_EQ(ramps.reset[1].ramp.g.size(), 1u);
  expect_rel(ramps.reset[1].ramp.g[0], 6e-4 / 0.2, 1e-12);
  EXPECT_FALSE(ramps.set[0].heldout);
  EXPECT_TRUE(ramps.set[1].heldout);
  EXPECT_FALSE(ramps.set[2].heldout);
}

// Each malformed file: the message names the file, the line and the character column.
TEST(ImportRampCsv, NonNumericCellNamesFileLineColumnAndValue) {
  const std::string message = user_error_message(
      [] { xbar::tools::import_ramp_csv(kData / "bad_non_numeric.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("bad_non_numeric.csv:3:8:"), HasSubstr("column 2 (rmp2)"),
                             HasSubstr("'2.1e-4x' is not a number")));
}

TEST(ImportRampCsv, NegativeCurrentNamesFileLineColumnAndValue) {
  const std::string message = user_error_message(
      [] { xbar::tools::import_ramp_csv(kData / "good_set.csv", kData / "bad_negative.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("bad_negative.csv:4:1:"), HasSubstr("column 1 (rmp1)"),
                             HasSubstr("negative current '-1.2e-4'")));
}

TEST(ImportRampCsv, ValueAfterTheEndOfARampIsAnError) {
  const std::string message = user_error_message(
      [] { xbar::tools::import_ramp_csv(kData / "bad_resume.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("bad_resume.csv:5:8:"), HasSubstr("column 2 (rmp2)"),
                             HasSubstr("ramp 2 resumes at line 5 after ending at line 3")));
}

TEST(ImportRampCsv, HeaderFieldNotRmpKIsAnError) {
  const std::string message = user_error_message(
      [] { xbar::tools::import_ramp_csv(kData / "bad_header.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("bad_header.csv:1:11:"), HasSubstr("header field 3 is 'ramp3'"),
                             HasSubstr("expected 'rmp3'")));
}

TEST_F(MeasuredFiles, HeaderOutOfOrderIsAnError) {
  std::ofstream(dir_ / "swapped.csv") << "rmp2,rmp1\n1e-4,2e-4\n";
  const std::string message =
      user_error_message([&] { xbar::tools::import_ramp_csv(dir_ / "swapped.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("swapped.csv:1:1:"), HasSubstr("header field 1 is 'rmp2', expected 'rmp1'")));
}

TEST(ImportRampCsv, RowWithMoreFieldsThanTheHeaderIsAnError) {
  const std::string message = user_error_message(
      [] { xbar::tools::import_ramp_csv(kData / "good_set.csv", kData / "bad_too_many_fields.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("bad_too_many_fields.csv:3:15:"), HasSubstr("3 fields, but the header names 2 ramps")));
}

TEST(ImportRampCsv, EmptyFileIsAnError) {
  const std::string message =
      user_error_message([] { xbar::tools::import_ramp_csv(kData / "empty.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("empty.csv:1:1:"), HasSubstr("empty file")));
}

TEST(ImportRampCsv, HeaderWithoutRowsHoldsNoRampsAndIsAnError) {
  const std::string message =
      user_error_message([] { xbar::tools::import_ramp_csv(kData / "header_only.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("header_only.csv:2:1:"), HasSubstr("no data rows")));
}

TEST(ImportRampCsv, ColumnWithoutValuesIsAnError) {
  const std::string message = user_error_message(
      [] { xbar::tools::import_ramp_csv(kData / "bad_empty_column.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, AllOf(HasSubstr("bad_empty_column.csv:2:6:"), HasSubstr("column 2 (rmp2) holds no value")));
}

TEST(ImportRampCsv, MissingFileIsAnError) {
  const std::string message = user_error_message(
      [] { xbar::tools::import_ramp_csv(kData / "no_such.csv", kData / "good_reset.csv", 0.1, {}, {}); });
  EXPECT_THAT(message, HasSubstr("no_such.csv: no such file"));
}

TEST(ImportRampCsv, HeldOutIdsMustNameExistingRamps) {
  const std::string message = user_error_message([] {
    xbar::tools::import_ramp_csv(kTaox / "set.csv", kTaox / "reset.csv", 0.1, range(28, 40), range(29, 40));
  });
  EXPECT_THAT(message, AllOf(HasSubstr("held-out SET ramp 40 does not exist"), HasSubstr("set.csv has 39 ramps")));
  const std::string reset_message = user_error_message([] {
    xbar::tools::import_ramp_csv(kData / "good_set.csv", kData / "good_reset.csv", 0.1, {}, {3});
  });
  EXPECT_THAT(reset_message, HasSubstr("held-out RESET ramp 3 does not exist"));
}

TEST(ImportRampCsv, ReadVoltageMustBePositive) {
  for (double v : {0.0, -0.1, std::numeric_limits<double>::quiet_NaN()}) {
    const std::string message = user_error_message(
        [&] { xbar::tools::import_ramp_csv(kData / "good_set.csv", kData / "good_reset.csv", v, {}, {}); });
    EXPECT_THAT(message, HasSubstr("read voltage must be a finite value > 0 V")) << v;
  }
}

// ---- the normalised pulse response (two columns)

TEST(ImportPulseResponse, SmallFileIsCutIntoRampsSharingBoundaryStates) {
  // pulse_small.csv: up -1, -0.5, 0, 0.25, 0.5, 0.75, 1 (down the negatives); segment 3.
  const MeasuredRamps ramps = xbar::tools::import_pulse_response(kData / "pulse_small.csv", 1e-6, 1e-4, 3);
  const auto g = [](double w) { return 1e-6 + (w + 1) / 2 * (1e-4 - 1e-6); };  // nominal map: values span [-1, 1]
  const std::vector<std::vector<double>> up = {{-1, -0.5, 0}, {0, 0.25, 0.5, 0.75}, {0.75, 1}};
  ASSERT_EQ(ramps.set.size(), 3u);
  ASSERT_EQ(ramps.reset.size(), 3u);
  for (std::size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(ramps.set[s].ramp.id, static_cast<int>(s) + 1);
    EXPECT_EQ(ramps.set[s].heldout, s == 2);
    EXPECT_EQ(ramps.reset[s].heldout, s == 2);
    ASSERT_EQ(ramps.set[s].ramp.g.size(), up[s].size());
    ASSERT_EQ(ramps.reset[s].ramp.g.size(), up[s].size());
    for (std::size_t j = 0; j < up[s].size(); ++j) {
      expect_rel(ramps.set[s].ramp.g[j], g(up[s][j]), 1e-12);
      expect_rel(ramps.reset[s].ramp.g[j], g(-up[s][j]), 1e-12);
    }
  }
  EXPECT_DOUBLE_EQ(ramps.read_voltage, 0);
  EXPECT_EQ(ramps.units, "S");
}

TEST(ImportPulseResponse, StatesInsideTheNominalRangeKeepTheNominalMap) {
  // pulse_narrow.csv spans only -0.5 .. 0.5: w = -1 and +1 would map onto g_min and g_max.
  const MeasuredRamps ramps = xbar::tools::import_pulse_response(kData / "pulse_narrow.csv", 1e-6, 1e-4, 2);
  ASSERT_EQ(ramps.set.size(), 2u);
  expect_rel(ramps.set[0].ramp.g[0], 1e-6 + 0.25 * (1e-4 - 1e-6), 1e-12);
  expect_rel(ramps.set[1].ramp.g[1], 1e-6 + 0.75 * (1e-4 - 1e-6), 1e-12);
  expect_rel(ramps.reset[0].ramp.g[1], 1e-6 + 0.5 * (1e-4 - 1e-6), 1e-12);
}

TEST(ImportPulseResponse, OvershootWidensTheMapToTheFileExtremes) {
  // pulse_overshoot.csv spans -1.5 (down) .. 1.2 (up): those go onto g_min and g_max.
  const MeasuredRamps ramps = xbar::tools::import_pulse_response(kData / "pulse_overshoot.csv", 2e-6, 5e-5, 2);
  const auto g = [](double w) { return 2e-6 + (w + 1.5) / 2.7 * (5e-5 - 2e-6); };
  ASSERT_EQ(ramps.set.size(), 2u);  // [x0, x1], [x1, x2]
  expect_rel(ramps.set[0].ramp.g[0], g(-0.5), 1e-12);
  expect_rel(ramps.set[1].ramp.g[1], 5e-5, 1e-12);
  expect_rel(ramps.reset[0].ramp.g[1], 2e-6, 1e-12);
  expect_rel(ramps.reset[1].ramp.g[1], g(0), 1e-12);
}

TEST(ImportPulseResponse, GongDataEveryStepAppearsInExactlyOneRamp) {
  const double g_min = 1e-6, g_max = 1e-4;
  const MeasuredRamps ramps = xbar::tools::import_pulse_response(kGong, g_min, g_max, 100);
  std::vector<double> up, down;
  read_two_columns(kGong, up, down);
  ASSERT_EQ(up.size(), 1000u);
  // The file spans -1.3556 (down) .. 1.4111 (up), beyond the nominal [-1, 1]: the map is widened.
  const auto g = [&](double w) { return g_min + (w + 1.3556) / (1.4111 + 1.3556) * (g_max - g_min); };

  for (const auto& [ramps_of, column] : {std::pair{&ramps.set, &up}, std::pair{&ramps.reset, &down}}) {
    ASSERT_EQ(ramps_of->size(), 10u);
    std::vector<double> steps, expected_steps;
    for (std::size_t s = 0; s < 10; ++s) {
      const MeasuredRamp& measured = (*ramps_of)[s];
      EXPECT_EQ(measured.ramp.id, static_cast<int>(s) + 1);
      EXPECT_EQ(measured.heldout, s == 2 || s == 5 || s == 8) << "segment " << s;
      // Segment 0: the states after pulses 1..100; segment s: the state after pulse 100 s, then 100 more.
      ASSERT_EQ(measured.ramp.g.size(), s == 0 ? 100u : 101u);
      const std::size_t first = s == 0 ? 0 : 100 * s - 1;
      for (std::size_t j = 0; j < measured.ramp.g.size(); ++j) {
        expect_rel(measured.ramp.g[j], g((*column)[first + j]), 1e-9);
        if (j > 0) steps.push_back(measured.ramp.g[j] - measured.ramp.g[j - 1]);
      }
    }
    for (std::size_t i = 1; i < column->size(); ++i) expected_steps.push_back(g((*column)[i]) - g((*column)[i - 1]));
    ASSERT_EQ(steps.size(), 999u);  // every step once, none twice
    for (std::size_t i = 0; i < steps.size(); ++i) EXPECT_NEAR(steps[i], expected_steps[i], 1e-12 * g_max) << i;
  }

  double lo = 1, hi = 0;
  for (const auto* direction : {&ramps.set, &ramps.reset})
    for (const MeasuredRamp& measured : *direction)
      for (double value : measured.ramp.g) {
        lo = std::min(lo, value);
        hi = std::max(hi, value);
      }
  EXPECT_GE(lo, g_min);
  EXPECT_LE(hi, g_max);
  expect_rel(lo, g_min, 1e-9);  // the extremes are attained
  expect_rel(hi, g_max, 1e-9);
}

TEST(ImportPulseResponse, ShortLastSegmentKeepsTheRemainingPulses) {
  const MeasuredRamps ramps = xbar::tools::import_pulse_response(kGong, 1e-6, 1e-4, 300);
  ASSERT_EQ(ramps.set.size(), 4u);  // 300 + 300 + 300 + 100 pulses
  EXPECT_EQ(ramps.set[0].ramp.g.size(), 300u);
  EXPECT_EQ(ramps.set[1].ramp.g.size(), 301u);
  EXPECT_EQ(ramps.set[3].ramp.g.size(), 101u);
  EXPECT_TRUE(ramps.set[2].heldout);
  EXPECT_FALSE(ramps.set[3].heldout);
}

TEST(ImportPulseResponse, OutOfRangeNormalisedValueNamesLineAndColumn) {
  const std::string message =
      user_error_message([] { xbar::tools::import_pulse_response(kData / "pulse_out_of_range.csv", 1e-6, 1e-4, 2); });
  EXPECT_THAT(message, AllOf(HasSubstr("pulse_out_of_range.csv:2:5:"), HasSubstr("column 2 (down)"),
                             HasSubstr("'-2.5' lies outside [-2, 2]")));
}

TEST(ImportPulseResponse, MalformedRowsNameLineAndColumn) {
  EXPECT_THAT(user_error_message([] { xbar::tools::import_pulse_response(kData / "pulse_non_numeric.csv", 1e-6, 1e-4, 2); }),
              AllOf(HasSubstr("pulse_non_numeric.csv:2:5:"), HasSubstr("'abc' is not a finite number")));
  EXPECT_THAT(
      user_error_message([] { xbar::tools::import_pulse_response(kData / "pulse_too_many_fields.csv", 1e-6, 1e-4, 2); }),
      AllOf(HasSubstr("pulse_too_many_fields.csv:2:9:"), HasSubstr("expected 2 values"), HasSubstr("got 3")));
  EXPECT_THAT(user_error_message([] { xbar::tools::import_pulse_response(kData / "empty.csv", 1e-6, 1e-4, 2); }),
              AllOf(HasSubstr("empty.csv:1:1:"), HasSubstr("empty file")));
}

TEST(ImportPulseResponse, ConductanceRangeAndSegmentAreValidated) {
  EXPECT_THAT(user_error_message([] { xbar::tools::import_pulse_response(kGong, 1e-4, 1e-6, 100); }),
              HasSubstr("need 0 <= g_min < g_max"));
  EXPECT_THAT(user_error_message([] { xbar::tools::import_pulse_response(kGong, -1e-6, 1e-4, 100); }),
              HasSubstr("need 0 <= g_min < g_max"));
  EXPECT_THAT(user_error_message([] { xbar::tools::import_pulse_response(kGong, 1e-6, 1e-4, 1); }),
              HasSubstr("at least 2 pulses per ramp"));
}

// ---- index ranges

TEST(ParseIndexRanges, ExpandsRangesSortedWithoutDuplicates) {
  std::vector<int> expected = range(1, 27);
  for (int id : {30, 33, 34, 35}) expected.push_back(id);
  EXPECT_EQ(xbar::tools::parse_index_ranges("1-27,30,33-35", "--heldout-set"), expected);
  EXPECT_EQ(xbar::tools::parse_index_ranges(" 5 , 2-3, 3 ", "--x"), (std::vector<int>{2, 3, 5}));
  EXPECT_TRUE(xbar::tools::parse_index_ranges("", "--x").empty());
}

TEST(ParseIndexRanges, MalformedTextNamesTheOptionAndTheItem) {
  for (const char* text : {"1-", "a", "0", "-3", "2.5", "1-2-3"}) {
    const std::string message = user_error_message([&] { xbar::tools::parse_index_ranges(text, "--heldout-reset"); });
    EXPECT_THAT(message, AllOf(HasSubstr("--heldout-reset:"), HasSubstr(std::string("'") + text + "'"))) << text;
  }
  EXPECT_THAT(user_error_message([] { xbar::tools::parse_index_ranges("5-3", "--heldout-set"); }),
              AllOf(HasSubstr("--heldout-set"), HasSubstr("'5-3'"), HasSubstr("ends before it starts")));
  EXPECT_THAT(user_error_message([] { xbar::tools::parse_index_ranges("1,,2", "--heldout-set"); }),
              AllOf(HasSubstr("--heldout-set"), HasSubstr("empty item")));
}

// ---- splits

TEST(SplitRamps, FitNeverHoldsAHeldOutRampAndFitPlusHeldoutIsAll) {
  const MeasuredRamps ramps = import_taox();
  const auto fit = xbar::tools::split_ramps(ramps, "fit");
  const auto heldout = xbar::tools::split_ramps(ramps, "heldout");
  const auto all = xbar::tools::split_ramps(ramps, "all");
  EXPECT_EQ(ids_of(fit.set), range(1, 27));
  EXPECT_EQ(ids_of(fit.reset), range(1, 28));
  EXPECT_EQ(ids_of(heldout.set), range(28, 39));
  EXPECT_EQ(ids_of(heldout.reset), range(29, 40));
  EXPECT_EQ(ids_of(all.set), range(1, 39));
  EXPECT_EQ(ids_of(all.reset), range(1, 40));
  EXPECT_EQ(fit.units, "S");
  // The ramps carry their data: ramp 28 of `heldout` is ramp 28 of the import.
  EXPECT_EQ(heldout.set.front().g, ramps.set[27].ramp.g);
  for (const auto& ramp : fit.set) EXPECT_FALSE(ramps.set[static_cast<std::size_t>(ramp.id - 1)].heldout);
  for (const auto& ramp : fit.reset) EXPECT_FALSE(ramps.reset[static_cast<std::size_t>(ramp.id - 1)].heldout);
}

TEST(SplitRamps, UnknownSplitNameIsAnError) {
  const MeasuredRamps ramps = import_taox();
  EXPECT_THAT(user_error_message([&] { xbar::tools::split_ramps(ramps, "train"); }),
              AllOf(HasSubstr("unknown split 'train'"), HasSubstr("fit, heldout or all")));
}

// ---- HDF5

TEST_F(MeasuredFiles, RoundTripGivesIdenticalRampsFlagsAndProvenance) {
  MeasuredRamps ramps = import_taox();
  ramps.licence = slurp(kTaox / "LICENSE.md");
  const fs::path file = dir_ / "m.h5";
  xbar::tools::write_measured(ramps, file);
  const MeasuredRamps back = xbar::tools::read_measured(file);

  for (const auto& [a, b] : {std::pair{&ramps.set, &back.set}, std::pair{&ramps.reset, &back.reset}}) {
    ASSERT_EQ(a->size(), b->size());
    for (std::size_t k = 0; k < a->size(); ++k) {
      EXPECT_EQ((*a)[k].ramp.id, (*b)[k].ramp.id);
      EXPECT_EQ((*a)[k].heldout, (*b)[k].heldout);
      EXPECT_EQ((*a)[k].ramp.g, (*b)[k].ramp.g);  // stored as float64: bit-identical
    }
  }
  EXPECT_EQ(back.read_voltage, ramps.read_voltage);
  EXPECT_EQ(back.units, "S");
  EXPECT_EQ(back.source, ramps.source);
  EXPECT_EQ(back.licence, ramps.licence);
  EXPECT_EQ(back.description, ramps.description);

  const xbar::core::TraceReader reader(file);
  EXPECT_EQ(reader.attribute_string("/", "kind"), "measured");
  EXPECT_FALSE(reader.attribute_string("/", "xbar_version").empty());
  EXPECT_EQ(reader.attribute_string("/pulse_ramps", "units"), "S");
  EXPECT_DOUBLE_EQ(reader.attribute_double("/pulse_ramps", "read_voltage"), 0.1);
  EXPECT_EQ(reader.shape("/pulse_ramps/set/conductance"), (std::vector<std::size_t>{39, 192}));
  EXPECT_EQ(reader.shape("/pulse_ramps/reset/conductance"), (std::vector<std::size_t>{40, 153}));
  for (const char* direction : {"set", "reset"}) {
    const std::string group = std::string("/pulse_ramps/") + direction;
    EXPECT_EQ(reader.units(group + "/conductance"), "S");
    for (const char* name : {"length", "ramp_id", "heldout"}) EXPECT_EQ(reader.units(group + "/" + name), "1");
  }
  // NaN after each ramp's end: SET ramp 1 has 190 values of the 192.
  const Eigen::MatrixXd g = reader.read_matrix("/pulse_ramps/set/conductance");
  EXPECT_FALSE(std::isnan(g(0, 189)));
  EXPECT_TRUE(std::isnan(g(0, 190)));
  EXPECT_TRUE(std::isnan(g(0, 191)));
  EXPECT_EQ(reader.read_matrix_int("/pulse_ramps/set/length")(0, 0), 190);
  EXPECT_EQ(reader.read_matrix_int("/pulse_ramps/reset/heldout")(28, 0), 1);  // ramp 29
  EXPECT_EQ(reader.read_matrix_int("/pulse_ramps/reset/heldout")(27, 0), 0);  // ramp 28
}

TEST_F(MeasuredFiles, RoundTripOfAnEmptyDirection) {
  MeasuredRamps ramps;
  ramps.set.push_back({{7, {1e-5, 2e-5}}, true});
  ramps.source = "test";
  xbar::tools::write_measured(ramps, dir_ / "m.h5");
  const MeasuredRamps back = xbar::tools::read_measured(dir_ / "m.h5");
  ASSERT_EQ(back.set.size(), 1u);
  EXPECT_EQ(back.set[0].ramp.id, 7);
  EXPECT_TRUE(back.set[0].heldout);
  EXPECT_EQ(back.set[0].ramp.g, (std::vector<double>{1e-5, 2e-5}));
  EXPECT_TRUE(back.reset.empty());
}

TEST_F(MeasuredFiles, WriteRejectsInvalidRampsWithoutCreatingAFile) {
  MeasuredRamps ramps;
  ramps.set = {{{1, {1e-5}}, false}, {{1, {2e-5}}, false}};
  EXPECT_THAT(user_error_message([&] { xbar::tools::write_measured(ramps, dir_ / "m.h5"); }),
              AllOf(HasSubstr("m.h5"), HasSubstr("set ramp id 1 appears twice")));
  ramps.set = {{{1, {1e-5, std::numeric_limits<double>::quiet_NaN()}}, false}};
  EXPECT_THAT(user_error_message([&] { xbar::tools::write_measured(ramps, dir_ / "m.h5"); }),
              HasSubstr("set ramp 1 value 1 is nan"));
  ramps.set = {{{1, {}}, false}};
  EXPECT_THAT(user_error_message([&] { xbar::tools::write_measured(ramps, dir_ / "m.h5"); }), HasSubstr("has no values"));
  EXPECT_TRUE(folder_listing().empty());
}

// A measured file written by hand, with one thing wrong at a time.
struct HandWritten {
  std::string kind = "measured";
  bool with_reset_length = true;
  std::vector<std::int32_t> set_length = {2, 1};
  double after_end = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::int32_t> heldout = {0, 1};
  std::string conductance_units = "S";

  void write(const fs::path& path) const {
    xbar::core::TraceWriter writer(path);
    writer.set_attribute("/", "kind", kind);
    for (const char* name : {"source", "licence", "description"}) writer.set_attribute("/", name, std::string("x"));
    writer.set_attribute("/pulse_ramps", "read_voltage", 0.1);
    writer.set_attribute("/pulse_ramps", "units", std::string("S"));
    for (const char* direction : {"set", "reset"}) {
      const std::string group = std::string("/pulse_ramps/") + direction;
      Eigen::MatrixXd g(2, 2);
      g << 1e-5, 2e-5, 3e-5, after_end;
      writer.write(group + "/conductance", g, conductance_units);
      if (direction == std::string("set") || with_reset_length) {
        writer.write(group + "/length", set_length, {set_length.size()}, "1");
      }
      writer.write(group + "/ramp_id", std::vector<std::int32_t>{1, 2}, {2}, "1");
      writer.write(group + "/heldout", heldout, {heldout.size()}, "1");
    }
    writer.commit();
  }
};

TEST_F(MeasuredFiles, ReaderAcceptsAHandWrittenFile) {
  HandWritten{}.write(dir_ / "m.h5");
  const MeasuredRamps back = xbar::tools::read_measured(dir_ / "m.h5");
  ASSERT_EQ(back.reset.size(), 2u);
  EXPECT_EQ(back.reset[1].ramp.g, (std::vector<double>{3e-5}));
  EXPECT_TRUE(back.reset[1].heldout);
}

TEST_F(MeasuredFiles, ReaderNamesTheFileAndTheMissingOrInconsistentObject) {
  const fs::path file = dir_ / "m.h5";
  const auto read_error = [&](const HandWritten& spec) {
    fs::remove(file);
    spec.write(file);
    return user_error_message([&] { xbar::tools::read_measured(file); });
  };
  HandWritten missing;
  missing.with_reset_length = false;
  EXPECT_THAT(read_error(missing), AllOf(HasSubstr(file.string()), HasSubstr("/pulse_ramps/reset/length")));
  HandWritten short_length;
  short_length.set_length = {2};
  EXPECT_THAT(read_error(short_length),
              AllOf(HasSubstr(file.string()), HasSubstr("/pulse_ramps/set/length"), HasSubstr("expected 2 values")));
  HandWritten too_long;
  too_long.set_length = {2, 3};
  EXPECT_THAT(read_error(too_long), AllOf(HasSubstr(file.string()), HasSubstr("row 1 is 3, outside 1..2")));
  HandWritten not_nan;
  not_nan.after_end = 4e-5;
  EXPECT_THAT(read_error(not_nan), AllOf(HasSubstr(file.string()), HasSubstr("after the ramp's end")));
  HandWritten bad_flag;
  bad_flag.heldout = {0, 2};
  EXPECT_THAT(read_error(bad_flag), AllOf(HasSubstr(file.string()), HasSubstr("expected 0 or 1")));
  HandWritten trace;
  trace.kind = "trace";
  EXPECT_THAT(read_error(trace), AllOf(HasSubstr(file.string()), HasSubstr("expected 'measured'")));
  HandWritten volts;
  volts.conductance_units = "V";
  EXPECT_THAT(read_error(volts), AllOf(HasSubstr("/pulse_ramps/set/conductance"), HasSubstr("units 'V'")));
}

// ---- the command line


class ImportCli : public MeasuredFiles {
 protected:
  // Runs `xbar ARGS` from the repository root; its output goes beside the test folder.
  Outcome xbar(const std::string& args) const {
    const fs::path out = dir_.string() + ".stdout", err = dir_.string() + ".stderr";
    Outcome outcome = run_command(XBAR_EXECUTABLE, args, XBAR_SOURCE_DIR, out, err);
    fs::remove(out);
    fs::remove(err);
    return outcome;
  }

};

TEST_F(ImportCli, ImportRampsWritesTheFileAndPrintsASummary) {
  const fs::path file = dir_ / "taox.h5";
  const Outcome run = xbar("import ramps --set tests/data/measured/rram_taox_pulse_ramps/set.csv "
                           "--reset tests/data/measured/rram_taox_pulse_ramps/reset.csv --read-voltage 0.1 "
                           "--heldout-set 28-39 --heldout-reset 29-40 --description 'TaOx ramps' "
                           "--licence tests/data/measured/rram_taox_pulse_ramps/LICENSE.md -o '" +
                           file.string() + "'");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, AllOf(HasSubstr("39 SET ramps (27 fitting, 12 held out)"),
                             HasSubstr("40 RESET ramps (28 fitting, 12 held out)"),
                             HasSubstr("conductance 1.606 mS to 2.485 mS"), HasSubstr("7323 SET and 6015 RESET")));
  const MeasuredRamps back = xbar::tools::read_measured(file);
  EXPECT_EQ(back.set.size(), 39u);
  EXPECT_EQ(back.reset.size(), 40u);
  EXPECT_TRUE(back.set[27].heldout);
  EXPECT_FALSE(back.set[26].heldout);
  EXPECT_EQ(back.description, "TaOx ramps");
  EXPECT_EQ(back.licence, slurp(kTaox / "LICENSE.md"));
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"taox.h5"});
}

TEST_F(ImportCli, ImportPulseResponseWritesTheFile) {
  const fs::path file = dir_ / "gong.h5";
  const Outcome run = xbar("import pulse-response tests/data/measured/rram_gong2018_pulse_response/gong_et_al.csv "
                           "--g-min 2e-6 --g-max 5e-5 --segment 250 -o '" + file.string() + "'");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, AllOf(HasSubstr("4 SET ramps (3 fitting, 1 held out)"), HasSubstr("2 µS to 50 µS")));
  const MeasuredRamps back = xbar::tools::read_measured(file);
  ASSERT_EQ(back.set.size(), 4u);
  EXPECT_EQ(back.licence, "unknown");
  EXPECT_EQ(back.set[1].ramp.g.size(), 251u);
}

TEST_F(ImportCli, FailedImportLeavesAnExistingOutputUntouched) {
  const fs::path file = dir_ / "m.h5";
  std::ofstream(file) << "previous content";
  const Outcome run = xbar("import ramps --set tests/data/measured/bad_resume.csv "
                           "--reset tests/data/measured/good_reset.csv --read-voltage 0.1 -o '" + file.string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, AllOf(HasSubstr("bad_resume.csv:5:8:"), HasSubstr("ramp 2 resumes at line 5")));
  EXPECT_TRUE(run.out.empty());
  EXPECT_EQ(slurp(file), "previous content");
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"m.h5"});  // no temporary left behind

  const Outcome pulse = xbar("import pulse-response tests/data/measured/pulse_out_of_range.csv -o '" +
                             file.string() + "'");
  EXPECT_EQ(pulse.exit_code, 2);
  EXPECT_THAT(pulse.err, HasSubstr("pulse_out_of_range.csv:2:5:"));
  EXPECT_EQ(slurp(file), "previous content");

  const Outcome heldout = xbar("import ramps --set tests/data/measured/rram_taox_pulse_ramps/set.csv "
                               "--reset tests/data/measured/rram_taox_pulse_ramps/reset.csv --read-voltage 0.1 "
                               "--heldout-set 28-45 -o '" + file.string() + "'");
  EXPECT_EQ(heldout.exit_code, 2);
  EXPECT_THAT(heldout.err, HasSubstr("held-out SET ramp 40 does not exist"));
  EXPECT_EQ(slurp(file), "previous content");
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"m.h5"});
}

TEST_F(ImportCli, FailedImportCreatesNoFile) {
  const Outcome run = xbar("import ramps --set tests/data/measured/good_set.csv "
                           "--reset tests/data/measured/good_reset.csv --read-voltage 0.1 "
                           "--licence tests/data/measured/no_such_licence.txt -o '" + (dir_ / "m.h5").string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("--licence tests/data/measured/no_such_licence.txt: no such file"));
  EXPECT_TRUE(folder_listing().empty());
}

}  // namespace
