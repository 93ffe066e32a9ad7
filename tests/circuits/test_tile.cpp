// The tile end to end: card -> workload -> program -> read.
#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <unistd.h>

#include <fstream>

#include "circuits/tile.hpp"
#include "circuits/workload.hpp"
#include "devices/registry.hpp"

using namespace xbar;

namespace {

const char* kCard = R"(
seed: 5
tile: {rows: 12, cols: 20, wires: {r_wl_segment: 0, r_bl_segment: 0, r_source: 0, r_sense: 0}}
device: {model: ideal, g_min: 1.0e-6, g_max: 20.0e-6}
dac: {bits: 0, v_read: 0.2}
adc: {bits: 0, range: fixed}
mapping: {scheme: differential}
solver: {method: direct}
workload: {inputs: {count: 6}, read_times: [0, 10]}
)";

core::Card card_with(std::vector<std::string> overrides) {
  const auto& registry = devices::builtin_devices();
  return core::load_card_text(kCard, "tile-test.yaml", overrides, registry.param_lookup(), registry.names());
}

circuits::TileRead run(const core::Card& card, int read = 0) {
  const circuits::Workload workload = circuits::make_workload(card);
  circuits::Tile tile(card, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
  tile.program(workload.weights);
  EXPECT_TRUE(tile.calibrate_adc(workload.inputs).ok());
  return tile.read(workload.inputs, card.workload.read_times_s[read], read);
}

}  // namespace

TEST(Tile, IdealPartsAndNoWiresGiveExactlyWx) {
  for (const char* scheme : {"differential", "reference"}) {
    const core::Card card = card_with({std::string("mapping.scheme=") + scheme});
    const circuits::Workload workload = circuits::make_workload(card);
    const circuits::TileRead read = run(card);
    ASSERT_TRUE(read.summary.ok()) << read.summary.message;
    const Eigen::MatrixXd expected = workload.weights * workload.inputs;
    EXPECT_LT((read.y - expected).cwiseAbs().maxCoeff(), 1e-12 * expected.cwiseAbs().maxCoeff()) << scheme;
  }
}

TEST(Tile, BitSerialDacGivesTheSameOutputsAsAmplitude) {
  const Eigen::MatrixXd serial = run(card_with({"dac.bits=6", "dac.encoding=bit_serial"})).y;
  const Eigen::MatrixXd amplitude = run(card_with({"dac.bits=6"})).y;
  EXPECT_LT((serial - amplitude).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(Tile, WiresLowerTheOutputsAndQuantisationBoundsTheError) {
  const core::Card card = card_with({"tile.wires.r_wl_segment=5", "tile.wires.r_bl_segment=5", "adc.bits=8",
                                     "adc.range=calibrated", "dac.bits=8"});
  const circuits::TileRead read = run(card);
  ASSERT_TRUE(read.summary.ok());
  // IR drop only ever reduces the magnitude a column collects compared with zero wires.
  const double out = read.i_out[0].cwiseAbs().sum(), ideal = read.i_ideal[0].cwiseAbs().sum();
  EXPECT_LT(out, ideal);
  EXPECT_GT(out, 0.5 * ideal);
  // Codes are integers within ±Q.
  EXPECT_LE(read.adc_code[0].cwiseAbs().maxCoeff(), 127.0);
  EXPECT_TRUE((read.adc_code[0].array() == read.adc_code[0].array().round()).all());
}

TEST(Tile, SameSeedSameResultWhateverTheThreadCount) {
  const core::Card card = card_with({"tile.wires.r_wl_segment=2", "tile.wires.r_bl_segment=2", "adc.bits=6",
                                     "adc.noise_sigma=1e-7", "adc.offset_sigma=1e-7", "dac.bits=5"});
  circuits::TileRead one, two;
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 1);
    one = run(card, 1);
  }
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 2);
    two = run(card, 1);
  }
  EXPECT_TRUE(one.y == two.y);
  EXPECT_TRUE(one.adc_code[0] == two.adc_code[0]);
  // A different seed changes the noisy conversion.
  core::Card other = card;
  other.seed = 6;
  EXPECT_FALSE(run(other, 1).adc_code[0] == one.adc_code[0]);
}

TEST(Workload, ReadsCsvAndNamesLineAndColumnOfABadValue) {
  const auto dir = std::filesystem::temp_directory_path() / ("xbar-workload-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "good.csv") << "# weights\n1, 2, 3\n4,5,6\n";
    std::ofstream(dir / "bad.csv") << "1, 2, 3\n4, x5, 6\n";
    std::ofstream(dir / "short.csv") << "1, 2, 3\n4, 5\n";
  }
  const Eigen::MatrixXd m = circuits::read_csv_matrix(dir / "good.csv");
  ASSERT_EQ(m.rows(), 2);
  ASSERT_EQ(m.cols(), 3);
  EXPECT_EQ(m(1, 2), 6.0);
  try {
    circuits::read_csv_matrix(dir / "bad.csv");
    FAIL() << "expected an error";
  } catch (const core::UserError& error) {
    EXPECT_NE(std::string(error.what()).find("bad.csv:2:4"), std::string::npos) << error.what();
  }
  try {
    circuits::read_csv_matrix(dir / "short.csv");
    FAIL() << "expected an error";
  } catch (const core::UserError& error) {
    EXPECT_NE(std::string(error.what()).find("short.csv:2: expected 3 values"), std::string::npos) << error.what();
  }
  std::filesystem::remove_all(dir);
}

namespace {

// A PCM tile (IBM's statistical model) without wires and with ideal converters: what remains is
// the device (programming noise, drift, 1/f read noise).
const char* kPcmCard = R"(
seed: 9
tile: {rows: 64, cols: 64, wires: {r_wl_segment: 0, r_bl_segment: 0, r_source: 0, r_sense: 0}}
device: {model: pcm-joshi2020, g_min: 0.0, g_max: 25.0e-6}
dac: {bits: 0, v_read: 0.2}
adc: {bits: 0, range: fixed}
mapping: {scheme: differential}
solver: {method: direct}
workload: {inputs: {count: 32, distribution: uniform}, read_times: [0, 2592000]}
)";

core::Card pcm_card(std::vector<std::string> overrides) {
  const auto& registry = devices::builtin_devices();
  return core::load_card_text(kPcmCard, "pcm-test.yaml", overrides, registry.param_lookup(), registry.names());
}

// Mean output at each of the card's read times, for uniform weights and positive inputs.
std::vector<double> mean_outputs(const core::Card& card) {
  circuits::Workload workload = circuits::make_workload(card);
  workload.weights.setConstant(0.5);
  workload.inputs = workload.inputs.cwiseAbs();
  circuits::Tile tile(card, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
  tile.program(workload.weights);
  std::vector<double> means;
  for (std::size_t r = 0; r < card.workload.read_times_s.size(); ++r) {
    const circuits::TileRead read = tile.read(workload.inputs, card.workload.read_times_s[r], static_cast<int>(r));
    EXPECT_TRUE(read.summary.ok()) << read.summary.message;
    means.push_back(read.y.mean());
  }
  return means;
}

}  // namespace

TEST(Tile, GlobalDriftCompensationRestoresTheMeanOutputAfterAMonth) {
  const std::vector<double> drifting = mean_outputs(pcm_card({}));
  EXPECT_LT(drifting[1] / drifting[0], 0.8);  // a month of PCM drift loses over 20 %
  const std::vector<double> compensated = mean_outputs(pcm_card({"mapping.drift_compensation=true"}));
  EXPECT_NEAR(compensated[1] / compensated[0], 1.0, 0.01);
}

TEST(Tile, StuckCellsReadAtTheirStuckConductanceWhateverTheirTarget) {
  const core::Card card = card_with({"device.faults.stuck_low_rate=0.1", "device.faults.stuck_high_rate=0.05",
                                     "tile.rows=60", "tile.cols=60"});
  const circuits::Workload workload = circuits::make_workload(card);
  circuits::Tile tile(card, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
  tile.program(workload.weights);
  const auto& stuck = tile.stuck_map();
  const double cells = 3600.0;
  EXPECT_NEAR((stuck.array() < 0).count() / cells, 0.1, 5 * std::sqrt(0.1 * 0.9 / cells));
  EXPECT_NEAR((stuck.array() > 0).count() / cells, 0.05, 5 * std::sqrt(0.05 * 0.95 / cells));
  const circuits::TileRead read = tile.read(workload.inputs, 10.0, 1);
  for (int i = 0; i < 60; ++i)
    for (int j = 0; j < 60; ++j) {
      const double expected = stuck(i, j) < 0   ? card.device.g_min
                              : stuck(i, j) > 0 ? card.device.g_max
                                                : tile.programmed().g_target(i, j);
      EXPECT_EQ(read.conductance(i, j), expected) << i << "," << j;
    }
}

TEST(Tile, TelegraphNoiseSwitchesTrappedCellsBetweenReads) {
  const core::Card card = card_with({"device.rtn.fraction=0.3", "device.rtn.amplitude_rel=0.1",
                                     "device.rtn.capture_rate=1", "device.rtn.emission_rate=1"});
  const circuits::Workload workload = circuits::make_workload(card);
  circuits::Tile tile(card, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
  tile.program(workload.weights);
  const Eigen::MatrixXd g0 = tile.read_conductance(0.0, 0), g1 = tile.read_conductance(10.0, 1);
  const Eigen::MatrixXd& target = tile.programmed().g_target;
  int lowered = 0, changed = 0;
  for (Eigen::Index k = 0; k < target.size(); ++k) {
    // A cell reads either its programmed conductance or 10 % below it.
    for (const Eigen::MatrixXd* g : {&g0, &g1}) {
      const double ratio = g->data()[k] / target.data()[k];
      EXPECT_TRUE(ratio == 1.0 || std::fabs(ratio - 0.9) < 1e-12) << ratio;
      lowered += ratio < 1.0;
    }
    changed += g0.data()[k] != g1.data()[k];
  }
  EXPECT_GT(lowered, 0);
  EXPECT_GT(changed, 0);  // 10 s apart, traps with 1 Hz rates have switched
}

TEST(Tile, VariationFieldScalesEveryConductanceTheModelProduces) {
  const core::Card card = card_with({"device.variation.sigma_log=0.1", "device.variation.correlation_length=2",
                                     "tile.rows=40", "tile.cols=40"});
  const circuits::Workload workload = circuits::make_workload(card);
  circuits::Tile tile(card, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
  tile.program(workload.weights);
  const Eigen::ArrayXXd factor = tile.g_programmed().array() / tile.programmed().g_target.array();
  // The same factor on the programmed state and on every read of the (ideal) device.
  EXPECT_TRUE((tile.read_conductance(5.0, 3).array() / tile.programmed().g_target.array() - factor).abs().maxCoeff() <
              1e-12);
  const double log_std = std::sqrt((factor.log() + 0.005).square().mean());  // mean of log is -s^2/2
  EXPECT_NEAR(log_std, 0.1, 0.03);  // 1600 cells, correlated over ~2 cells
  // Neighbours are correlated (correlation length 2 cells).
  const Eigen::ArrayXXd z = factor.log() + 0.005;
  const double lag1 = (z.leftCols(39) * z.rightCols(39)).mean() / z.square().mean();
  EXPECT_GT(lag1, 0.8);
}

TEST(Solver, AutoPicksIterativeNewtonForNonlinearCellsAndAmortisesTheEffectiveMatrixOverManyVectors) {
  core::SolverOptions options;
  options.method = "auto";
  EXPECT_EQ(circuits::resolve_method(options, true, 64), "iterative");
  EXPECT_EQ(circuits::resolve_method(options, false, 64), "effective");
  EXPECT_EQ(circuits::resolve_method(options, false, 2), "iterative");
  options.method = "iterative";
  EXPECT_EQ(circuits::resolve_method(options, true, 64), "iterative");  // an explicit choice stands
  // The tile resolves auto with its batch and DAC planes and reports it.
  const core::Card card = card_with({"solver.method=auto", "dac.bits=5", "dac.encoding=bit_serial"});
  const circuits::Workload workload = circuits::make_workload(card);
  EXPECT_EQ(circuits::Tile(card, devices::builtin_devices(), 5, 0, 2).solver_method(), "effective");  // 2 x 4 planes
  EXPECT_EQ(circuits::Tile(card_with({"solver.method=auto"}), devices::builtin_devices(), 5, 0, 2).solver_method(),
            "iterative");
}

// The many-batches path (begin_reads + read_outputs) against the exact single read, and its
// linear maps against their definitions.
TEST(Tile, BatchedReadsEqualTheFullReadAndTheLinearMapsMatchTheirDefinitions) {
  for (const char* method : {"effective", "direct"}) {
    const core::Card card = card_with({"tile.wires.r_wl_segment=3", "tile.wires.r_bl_segment=3",
                                       "tile.wires.r_source=5", "dac.bits=6", "adc.bits=0", "adc.range=calibrated",
                                       std::string("solver.method=") + method});
    circuits::Workload workload = circuits::make_workload(card);
    const int used = 7;  // inputs on the first 7 rows only; the rest carry zero weights and 0 V
    workload.weights.rightCols(workload.weights.cols() - used).setZero();
    workload.inputs.bottomRows(workload.inputs.rows() - used).setZero();
    circuits::Tile tile(card, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
    tile.program(workload.weights);
    const circuits::TileRead exact = tile.read(workload.inputs, 10.0, 1);
    ASSERT_TRUE(exact.summary.ok());
    ASSERT_TRUE(tile.begin_reads(10.0, 1).ok());
    circuits::SolveSummary summary;
    const Eigen::MatrixXd y = tile.read_outputs(workload.inputs.topRows(used), 0, false, summary);
    ASSERT_TRUE(summary.ok()) << summary.message;
    EXPECT_LT((y - exact.y).cwiseAbs().maxCoeff(), 1e-12 * exact.y.cwiseAbs().maxCoeff()) << method;
    // With an ideal ADC the outputs are the linear map through the wires applied to x_q.
    const Eigen::MatrixXd x_q = tile.dac().quantize(workload.inputs.topRows(used));
    if (std::string(method) == "effective") {
      const Eigen::MatrixXd wires = tile.linear_map(used, true);
      EXPECT_LT((wires * x_q - y).cwiseAbs().maxCoeff(), 1e-12 * y.cwiseAbs().maxCoeff());
    } else {
      EXPECT_THROW(tile.linear_map(used, true), std::logic_error);
    }
    // Without wires the map is the represented weights of the read conductances (ideal device:
    // the clipped weights).
    const Eigen::MatrixXd plain = tile.linear_map(used, false);
    EXPECT_LT((plain - workload.weights.leftCols(used)).cwiseAbs().maxCoeff(), 1e-12) << method;
    // Calibrating the ranges from the batch sets each channel's range to its largest |i|.
    const core::Card quantised = card_with({"adc.bits=6", "adc.range=calibrated", "adc.calibration_percentile=100"});
    circuits::Tile q(quantised, devices::builtin_devices(), static_cast<int>(workload.weights.rows()));
    q.program(workload.weights);
    ASSERT_TRUE(q.begin_reads(0.0, 0).ok());
    q.read_outputs(workload.inputs.topRows(used), 0, true, summary);
    const Eigen::MatrixXd currents = q.mapping().channel_currents(
        circuits::ideal_currents(q.g_programmed(), q.dac().voltages(workload.inputs, 0)));
    for (int k = 0; k < q.adc().channels(); ++k)
      EXPECT_NEAR(q.adc().range()[k], currents.row(k).cwiseAbs().maxCoeff(), 1e-15) << k;
  }
}
