// The command-line interface as a user meets it: run the xbar executable, read what it wrote.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/support/files.hpp"
#include "core/trace.hpp"

namespace fs = std::filesystem;
using testing::HasSubstr;

using xbar::testing_support::Outcome;
using xbar::testing_support::run_command;
using xbar::testing_support::slurp;
using xbar::testing_support::user_error_message;

namespace {



class Cli : public xbar::testing_support::TempDirTest {
 protected:
  // Runs `xbar ARGS` from the repository root.
  Outcome xbar(const std::string& args) const {
    return run_command(XBAR_EXECUTABLE, args, XBAR_SOURCE_DIR, dir_ / "stdout.txt", dir_ / "stderr.txt");
  }

  fs::path write_card(const std::string& name, const std::string& text) const {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }
};

// A small tile with every stochastic part of the periphery switched on.
const char* kNoisyCard = R"(seed: 3
tile:
  rows: 12
  cols: 10
  wires: {r_wl_segment: 2.0, r_bl_segment: 3.0, r_source: 5.0, r_sense: 5.0}
  access: {type: transistor, r_on: 1500}
device: {model: ideal, g_min: 1.0e-6, g_max: 30.0e-6}
dac: {bits: 6, v_read: 0.2}
adc: {bits: 6, range: calibrated, offset_sigma: 1.0e-8, gain_sigma: 0.02, noise_sigma: 5.0e-8, inl_sigma_lsb: 0.2}
mapping: {scheme: differential}
solver: {method: direct}
workload: {inputs: {count: 5}, read_times: [0.0, 60.0, 3600.0]}
)";

// The netlist line of row `row`'s source at `volts`.
std::string fmt_source_line(int row, double volts) {
  char line[128];
  std::snprintf(line, sizeof line, "Vin_%d s_%d 0 DC %.17g\n", row, row, volts);
  return line;
}

}  // namespace

TEST_F(Cli, VersionAndHelpDescribeEveryCommandAndOption) {
  const Outcome version = xbar("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.out, HasSubstr("xbar 0."));
  const Outcome help = xbar("--help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* word : {"simulate", "spice", "card-reference", "--threads", "--version"})
    EXPECT_THAT(help.out, HasSubstr(word));
  const Outcome simulate = xbar("simulate --help");
  for (const char* word : {"--seed", "--set", "--output", "card"}) EXPECT_THAT(simulate.out, HasSubstr(word));
  const Outcome spice = xbar("spice --help");
  for (const char* word : {"--read", "--plane", "--output", "--set"}) EXPECT_THAT(spice.out, HasSubstr(word));
}

TEST_F(Cli, SimulateWritesTheDocumentedTraceSchema) {
  const fs::path card = write_card("noisy.yaml", kNoisyCard);
  const fs::path trace_path = dir_ / "noisy.h5";
  const Outcome run = xbar("simulate '" + card.string() + "' -o '" + trace_path.string() + "'");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("12 x 10"));
  EXPECT_THAT(run.out, HasSubstr("IR-drop error"));
  xbar::core::TraceReader trace(trace_path);
  EXPECT_EQ(trace.attribute_string("/", "card"), kNoisyCard);
  EXPECT_EQ(trace.attribute_int("/", "seed"), 3);
  EXPECT_FALSE(trace.attribute_string("/", "xbar_version").empty());
  EXPECT_EQ(trace.attribute_int("/array", "rows"), 12);
  EXPECT_EQ(trace.attribute_int("/array", "cols"), 10);
  EXPECT_EQ(trace.attribute_double("/array", "r_wl_segment"), 2.0);
  EXPECT_EQ(trace.attribute_double("/array", "r_bl_segment"), 3.0);
  EXPECT_EQ(trace.attribute_double("/array", "r_source"), 5.0);
  EXPECT_EQ(trace.attribute_double("/array", "r_sense"), 5.0);
  EXPECT_EQ(trace.shape("/array/g_target"), (std::vector<std::size_t>{12, 10}));
  EXPECT_EQ(trace.units("/array/g_target"), "S");
  EXPECT_EQ(trace.list("/reads"), (std::vector<std::string>{"0000", "0001", "0002"}));
  EXPECT_EQ(trace.attribute_double("/reads/0002", "time_s"), 3600.0);
  const std::vector<std::tuple<std::string, std::vector<std::size_t>, std::string>> datasets = {
      {"conductance", {12, 10}, "S"}, {"v_in", {5, 12}, "V"},   {"i_out", {5, 10}, "A"}, {"i_ideal", {5, 10}, "A"},
      {"adc_code", {5, 5}, "LSB"},    {"y", {5, 5}, "1"},        {"y_ideal", {5, 5}, "1"}, {"v_cell", {12, 10}, "V"}};
  for (const auto& [name, shape, units] : datasets) {
    const std::string path = "/reads/0001/" + name;
    ASSERT_TRUE(trace.exists(path)) << path;
    EXPECT_EQ(trace.shape(path), shape) << path;
    EXPECT_EQ(trace.units(path), units) << path;
  }
  // ADC codes are integers within ±(2^5 - 1); the calibrated ranges are stored.
  const xbar::core::MatrixI codes = trace.read_matrix_int("/reads/0000/adc_code");
  EXPECT_LE(codes.cwiseAbs().maxCoeff(), 31);
  EXPECT_EQ(trace.shape("/adc/range"), (std::vector<std::size_t>{5}));
  EXPECT_GT(trace.read_matrix("/adc/range").minCoeff(), 0.0);
  // Reads draw fresh ADC noise: same conductances and inputs, different codes.
  EXPECT_TRUE(trace.read_matrix("/reads/0000/i_out") == trace.read_matrix("/reads/0001/i_out"));
  EXPECT_FALSE(trace.read_matrix_int("/reads/0000/adc_code") == trace.read_matrix_int("/reads/0001/adc_code"));
}

TEST_F(Cli, SameCardAndSeedGiveBitIdenticalTracesWhateverTheThreadCount) {
  const fs::path card = write_card("noisy.yaml", kNoisyCard);
  const std::string base = "simulate '" + card.string() + "' -q -o '";
  ASSERT_EQ(xbar("--threads 1 " + base + (dir_ / "one.h5").string() + "'").exit_code, 0);
  ASSERT_EQ(xbar("--threads 2 " + base + (dir_ / "two.h5").string() + "'").exit_code, 0);
  ASSERT_EQ(xbar(base + (dir_ / "other.h5").string() + "' --seed 4").exit_code, 0);
  const std::string one = slurp(dir_ / "one.h5");
  EXPECT_GT(one.size(), 1000u);
  EXPECT_TRUE(one == slurp(dir_ / "two.h5"));
  EXPECT_FALSE(one == slurp(dir_ / "other.h5"));
}

TEST_F(Cli, SetOverridesAnyCardValueAndIsRecordedInTheTrace) {
  const fs::path trace_path = dir_ / "t.h5";
  const Outcome run = xbar("simulate cards/ideal.yaml -q -o '" + trace_path.string() +
                       "' --set tile.rows=24 --set tile.wires.r_wl_segment=1.7 --seed 9");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  xbar::core::TraceReader trace(trace_path);
  EXPECT_EQ(trace.attribute_int("/array", "rows"), 24);
  EXPECT_EQ(trace.attribute_double("/array", "r_wl_segment"), 1.7);
  EXPECT_EQ(trace.attribute_int("/", "seed"), 9);
  EXPECT_THAT(trace.attribute_string("/", "card"), HasSubstr("rows: 24"));
}

TEST_F(Cli, BadCardReportsEveryErrorAndLeavesTheOutputUntouched) {
  std::string text = kNoisyCard;
  text.replace(text.find("r_bl_segment: 3.0"), 17, "r_bl_segment: -3");
  text.replace(text.find("g_min: 1.0e-6"), 13, "g_min: 1.0e-4");
  text.replace(text.find("rows: 12"), 8, "rowz: 12");
  const fs::path card = write_card("bad.yaml", text);
  const fs::path trace_path = dir_ / "existing.h5";
  std::ofstream(trace_path) << "precious";
  const Outcome run = xbar("simulate '" + card.string() + "' -o '" + trace_path.string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("bad.yaml:5:"));
  EXPECT_THAT(run.err, HasSubstr("tile.wires.r_bl_segment"));
  EXPECT_THAT(run.err, HasSubstr("tile.rowz"));
  EXPECT_THAT(run.err, HasSubstr("did you mean 'rows'"));
  EXPECT_THAT(run.err, HasSubstr("tile.rows: missing"));
  EXPECT_EQ(slurp(trace_path), "precious");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 4);  // card, out, err, existing
  // Invalid YAML, and a file that does not exist.
  const fs::path broken = write_card("broken.yaml", "seed: 1\ntile: [rows: 3\n");
  const Outcome yaml = xbar("simulate '" + broken.string() + "' -o '" + (dir_ / "new.h5").string() + "'");
  EXPECT_EQ(yaml.exit_code, 2);
  EXPECT_THAT(yaml.err, HasSubstr("broken.yaml:"));
  EXPECT_THAT(yaml.err, HasSubstr("invalid YAML"));
  EXPECT_FALSE(fs::exists(dir_ / "new.h5"));
  const Outcome missing = xbar("simulate nowhere.yaml -o '" + (dir_ / "new.h5").string() + "'");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("nowhere.yaml"));
  EXPECT_FALSE(fs::exists(dir_ / "new.h5"));
}

TEST_F(Cli, BadOverrideIsReportedAsComingFromTheCommandLine) {
  const Outcome run = xbar("simulate cards/ideal.yaml -o '" + (dir_ / "x.h5").string() +
                       "' --set tile.wires.r_sense=-1 --set tile.colz=3");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("--set: tile.wires.r_sense: expected a number >= 0"));
  EXPECT_THAT(run.err, HasSubstr("--set: tile.colz: unknown key"));
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
}

TEST_F(Cli, SpiceWritesTheNetlistOfTheChosenInputVector) {
  const fs::path card = write_card("noisy.yaml", kNoisyCard);
  const fs::path netlist = dir_ / "net.cir";
  ASSERT_EQ(xbar("spice '" + card.string() + "' -o '" + netlist.string() + "' --read 3").exit_code, 0);
  const std::string text = slurp(netlist);
  EXPECT_THAT(text, HasSubstr("input vector 3"));
  EXPECT_THAT(text, HasSubstr("Racc_11_9 m_11_9 b_11_9 1500"));
  EXPECT_THAT(text, HasSubstr("Vsense_9 g_9 0 DC 0"));
  EXPECT_THAT(text, HasSubstr(".end"));
  // The same trace's v_in for vector 3 is what the netlist applies.
  xbar::core::TraceReader trace([&] {
    xbar("simulate '" + card.string() + "' -q -o '" + (dir_ / "t.h5").string() + "'");
    return dir_ / "t.h5";
  }());
  const Eigen::MatrixXd v_in = trace.read_matrix("/reads/0000/v_in");
  EXPECT_THAT(text, HasSubstr(fmt_source_line(0, v_in(3, 0))));
  const Outcome bad = xbar("spice '" + card.string() + "' -o '" + (dir_ / "bad.cir").string() + "' --read 5");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--read 5"));
  EXPECT_FALSE(fs::exists(dir_ / "bad.cir"));
}

TEST_F(Cli, ReadmeCardReferenceMatchesTheSchema) {
  const Outcome reference = xbar("card-reference");
  ASSERT_EQ(reference.exit_code, 0);
  EXPECT_THAT(reference.out, HasSubstr("`tile.wires.r_wl_segment`"));
  const std::string readme = slurp(fs::path(XBAR_SOURCE_DIR) / "README.md");
  EXPECT_NE(readme.find(reference.out), std::string::npos)
      << "README.md's card reference is out of date: paste the output of `xbar card-reference` into it";
}

TEST_F(Cli, WriteVerifyCardRecordsPulsesConvergenceAndDeviceState) {
  const fs::path trace_path = dir_ / "wv.h5";
  const Outcome run = xbar("simulate cards/rram-stanford-pku.yaml -o '" + trace_path.string() +
                           "' --set tile.rows=16 --set tile.cols=20 --set workload.inputs.count=2"
                           " --set adc.calibration_inputs=4");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("write-verify"));
  EXPECT_THAT(run.out, HasSubstr("Newton"));
  xbar::core::TraceReader trace(trace_path);
  EXPECT_EQ(trace.shape("/array/pulses"), (std::vector<std::size_t>{16, 20}));
  const xbar::core::MatrixI pulses = trace.read_matrix_int("/array/pulses");
  const xbar::core::MatrixI converged = trace.read_matrix_int("/array/converged");
  EXPECT_GT(pulses.maxCoeff(), 0);
  EXPECT_LE(pulses.maxCoeff(), 20);  // the card's budget
  EXPECT_GE(converged.cast<double>().mean(), 0.99);
  EXPECT_EQ(trace.attribute_string("/array", "cell_iv"), "nonlinear");
  EXPECT_EQ(trace.units("/array/cell_state/gap"), "m");
  const Eigen::MatrixXd gap = trace.read_matrix("/array/cell_state/gap");
  EXPECT_GE(gap.minCoeff(), 0.2e-9);
  EXPECT_LE(gap.maxCoeff(), 1.7e-9);
}

TEST_F(Cli, StatisticalDeviceCardRecordsDriftStateAndDriftingReads) {
  const fs::path trace_path = dir_ / "pcm.h5";
  const Outcome run = xbar("simulate cards/pcm-joshi2020.yaml -o '" + trace_path.string() +
                           "' --set tile.rows=16 --set tile.cols=16 --set workload.inputs.count=4");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("drift compensation"));
  xbar::core::TraceReader trace(trace_path);
  EXPECT_EQ(trace.list("/reads").size(), 4u);
  const Eigen::MatrixXd nu = trace.read_matrix("/array/cell_state/nu");
  EXPECT_GT(nu.minCoeff(), 0.0);
  // Conductances fall between the 1 s and the 30-day read (drift), and compensation scales up.
  EXPECT_LT(trace.read_matrix("/reads/0003/conductance").sum(), trace.read_matrix("/reads/0000/conductance").sum());
  EXPECT_GT(trace.attribute_double("/reads/0003", "drift_scale"), trace.attribute_double("/reads/0000", "drift_scale"));
}

TEST_F(Cli, ParallelProgrammingAndNewtonGiveBitIdenticalTracesWhateverTheThreadCount) {
  // The compact model programs cells in parallel and Newton solves vectors in parallel.
  const std::string base = "simulate cards/rram-stanford-pku.yaml -q --set tile.rows=12 --set tile.cols=14"
                           " --set workload.inputs.count=6 --set adc.calibration_inputs=4 -o '";
  ASSERT_EQ(xbar("--threads 1 " + base + (dir_ / "one.h5").string() + "'").exit_code, 0);
  ASSERT_EQ(xbar("--threads 2 " + base + (dir_ / "two.h5").string() + "'").exit_code, 0);
  const std::string one = slurp(dir_ / "one.h5");
  EXPECT_GT(one.size(), 1000u);
  EXPECT_TRUE(one == slurp(dir_ / "two.h5"));
}

TEST_F(Cli, BenchSolversPrintsEverySolverWithItsErrorAgainstDirect) {
  const Outcome run = xbar("bench solvers --rows 24 --cols 18 --batch 4 --repeats 1 --json");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  for (const char* solver : {"ideal gemm", "direct", "effective", "iterative (cold)", "iterative (warm, 1 % change)"})
    EXPECT_THAT(run.out, HasSubstr(std::string("\"solver\": \"") + solver + "\""));
  for (const char* key : {"\"setup_s\"", "\"batch_s\"", "\"ratio_to_gemm\"", "\"max_rel_err\""})
    EXPECT_THAT(run.out, HasSubstr(key));
  // Every exact mode agrees with the direct solver.
  const std::regex row(R"re("solver": "([^"]+)".*"max_rel_err": ([-+0-9.eE]+))re");
  int checked = 0;
  for (std::sregex_iterator it(run.out.begin(), run.out.end(), row), end; it != end; ++it) {
    const std::string name = (*it)[1];
    if (name == "ideal gemm") continue;
    EXPECT_LT(std::stod((*it)[2]), name == "effective" || name == "direct" ? 1e-9 : 1e-6) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 4);
  const Outcome table = xbar("bench solvers --rows 24 --cols 18 --batch 4 --repeats 1");
  EXPECT_THAT(table.out, HasSubstr("conductances changed"));
  EXPECT_EQ(xbar("bench solvers --rows 100 --cols 100 --ngspice").exit_code, 2);  // too large for ngspice
}
