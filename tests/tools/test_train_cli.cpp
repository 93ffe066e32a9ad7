// `xbar train` and `xbar eval` as a user meets them, on a small generated IDX data set: one
// epoch writes a checkpoint with metrics, a resumed run equals a straight one bit for bit, the
// thread count changes nothing, a run started from a trained one's weights (--init) keeps them,
// eval scores the checkpoint on simulated hardware, and mistakes
// are one-line user errors that leave no file behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "core/trace.hpp"
#include "tests/support/cli.hpp"

namespace fs = std::filesystem;
using testing::HasSubstr;
using xbar::testing_support::Outcome;

namespace {

// Writes plain IDX files of `count` 28×28 images: class c is a bright 6×6 square at one of ten
// places over dim noise, so that a small network learns it within an epoch.
void write_split(const fs::path& folder, const std::string& prefix, int count, std::uint64_t seed) {
  xbar::core::RandomStream rng(seed, "idx_fixture");
  std::string images, labels;
  auto be32 = [](std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  be32(images, 2051);
  be32(images, static_cast<std::uint32_t>(count));
  be32(images, 28);
  be32(images, 28);
  be32(labels, 2049);
  be32(labels, static_cast<std::uint32_t>(count));
  for (int k = 0; k < count; ++k) {
    const int c = static_cast<int>(rng.uniform() * 10);
    labels.push_back(static_cast<char>(c));
    std::string pixels(784, '\0');
    for (char& p : pixels) p = static_cast<char>(rng.uniform() * 40);
    const int y0 = 4 + 6 * (c / 4), x0 = 4 + 6 * (c % 4);
    for (int y = y0; y < y0 + 6; ++y)
      for (int x = x0; x < x0 + 6; ++x) pixels[y * 28 + x] = static_cast<char>(200 + rng.uniform() * 55);
    images += pixels;
  }
  std::ofstream(folder / (prefix + "-images-idx3-ubyte"), std::ios::binary) << images;
  std::ofstream(folder / (prefix + "-labels-idx1-ubyte"), std::ios::binary) << labels;
}

class TrainCli : public xbar::testing_support::XbarCliTest {
 protected:
  void SetUp() override {
    XbarCliTest::SetUp();
    data_ = dir_ / "idx";
    fs::create_directories(data_);
    write_split(data_, "train", 300, 1);
    write_split(data_, "t10k", 100, 2);
    set_environment("XBAR_FASHION_MNIST_DIR", data_);
  }

  // Trains `run` for 2 epochs straight (straight.h5) and for 1 epoch (half.h5) resumed to 2
  // (resumed.h5, scoring `test_limit` test images), expects both to end in the same state (at
  // least `min_entries` parameter and optimiser arrays), and returns the 1-epoch run's outcome.
  // Callers stop on failure with ASSERT_FALSE(HasFailure()).
  Outcome train_half_and_resume(const std::string& run, int test_limit, std::size_t min_entries = 18) {
    EXPECT_EQ(xbar(run + " --epochs 2 -o " + out("straight.h5")).exit_code, 0);
    Outcome half = xbar(run + " --epochs 1 -o " + out("half.h5"));
    EXPECT_EQ(half.exit_code, 0) << half.err;
    const Outcome resumed = xbar("train --resume " + out("half.h5") + " --epochs 2 --test-limit " +
                                 std::to_string(test_limit) + " -o " + out("resumed.h5"));
    EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
    xbar::testing_support::expect_same_checkpoint_state(dir_ / "straight.h5", dir_ / "resumed.h5", {"/parameters"},
                                                        min_entries);
    return half;
  }

  fs::path data_;
};

// A small ideal-device card on the effective-matrix solver: analog runs take seconds.
const std::string kAnalogCard = "--card cards/ideal.yaml --set solver.method=effective";
const std::string kDigitalRun = "train --card cards/ideal.yaml --model mlp --test-limit 50 --batch 64";

// The parameters and the optimizer state of two checkpoints are equal bit for bit.
void expect_same_state(const fs::path& a, const fs::path& b) {
  // 6 or 8 parameters and Adam's two moments of each
  xbar::testing_support::expect_same_checkpoint_state(a, b, {"/parameters"}, 18u);
}

}  // namespace

TEST_F(TrainCli, OneEpochWritesACheckpointWithMetricsAndPrintsTheSummary) {
  const Outcome run = xbar(kDigitalRun + " --epochs 1 -o " + out("run.h5"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("s per epoch"));
  EXPECT_THAT(run.out, HasSubstr("peak resident memory"));
  EXPECT_THAT(run.out, HasSubstr("final: train loss"));
  // Not a terminal: plain log lines, one per ~10% of the epoch and one for the epoch.
  EXPECT_THAT(run.err, HasSubstr("epoch 1/1: train loss"));
  EXPECT_THAT(run.err, HasSubstr("steps) loss"));
  EXPECT_EQ(run.err.find('\r'), std::string::npos);

  const xbar::core::TraceReader trace(dir_ / "run.h5");
  EXPECT_EQ(trace.attribute_string("/", "model"), "mlp");
  EXPECT_EQ(trace.attribute_string("/", "method"), "ideal");
  EXPECT_EQ(trace.attribute_int("/", "epochs_completed"), 1);
  EXPECT_EQ(trace.attribute_int("/", "global_step"), 5);  // 300 images in batches of 64
  EXPECT_EQ(trace.attribute_int("/", "batch"), 64);
  EXPECT_EQ(trace.attribute_double("/", "lr_decay"), 1.0);
  EXPECT_THAT(trace.attribute_string("/", "card"), HasSubstr("g_max"));
  EXPECT_EQ(trace.shape("/parameters/fc1.weight"), (std::vector<std::size_t>{256, 784}));
  const Eigen::MatrixXd test_accuracy = trace.read_matrix("/metrics/test_accuracy");
  ASSERT_EQ(test_accuracy.size(), 1);
  EXPECT_GT(test_accuracy(0), 0.5) << "the fixture's classes are easy to tell apart";
  EXPECT_GT(trace.read_matrix("/metrics/wall_time_s")(0), 0.0);
  EXPECT_GT(trace.read_matrix("/metrics/peak_resident_memory_bytes")(0), 1e6);
  EXPECT_EQ(folder_listing(), (std::vector<std::string>{"idx", "run.h5", "stderr.txt", "stdout.txt"}));
}

TEST_F(TrainCli, ResumedRunEqualsTheStraightRunAndThreadsChangeNothing) {
  ASSERT_EQ(xbar("--threads 2 " + kDigitalRun + " --epochs 2 -o " + out("straight.h5")).exit_code, 0);
  ASSERT_EQ(xbar("--threads 1 " + kDigitalRun + " --epochs 1 -o " + out("half.h5")).exit_code, 0);
  const Outcome resumed = xbar("train --resume " + out("half.h5") + " --epochs 2 --test-limit 50 -o " + out("resumed.h5"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_state(dir_ / "straight.h5", dir_ / "resumed.h5");
  const xbar::core::TraceReader trace(dir_ / "resumed.h5");
  EXPECT_EQ(trace.attribute_int("/", "epochs_completed"), 2);
  EXPECT_EQ(trace.read_matrix("/metrics/train_loss").size(), 2);
  const xbar::core::TraceReader straight(dir_ / "straight.h5");
  EXPECT_EQ(trace.read_matrix("/metrics/test_accuracy"), straight.read_matrix("/metrics/test_accuracy"));

  // A resumed run keeps its configuration.
  const Outcome conflict = xbar("train --resume " + out("half.h5") + " --epochs 2 --model lenet -o " + out("x.h5"));
  EXPECT_EQ(conflict.exit_code, 2);
  EXPECT_THAT(conflict.err, HasSubstr("--model lenet"));
  EXPECT_THAT(conflict.err, HasSubstr("mlp"));
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
}

TEST_F(TrainCli, FlipAugmentationIsStoredAndResumesBitIdentically) {
  const std::string run = "train --card cards/ideal.yaml --model lenet --test-limit 20 --batch 64 --augment flip";
  const Outcome half = train_half_and_resume(run, 20, 24u);
  ASSERT_FALSE(HasFailure());
  EXPECT_THAT(half.out, HasSubstr("augment flip"));
  EXPECT_EQ(xbar::core::TraceReader(dir_ / "resumed.h5").attribute_string("/", "augment"), "flip");
  // The augmentation changes the run: the same run without it ends elsewhere.
  ASSERT_EQ(xbar("train --card cards/ideal.yaml --model lenet --test-limit 20 --batch 64 --epochs 1 -o " +
                 out("plain.h5")).exit_code, 0);
  const xbar::core::TraceReader plain(dir_ / "plain.h5"), flipped(dir_ / "half.h5");
  EXPECT_NE(plain.read_matrix("/parameters/conv1.weight"), flipped.read_matrix("/parameters/conv1.weight"));
  EXPECT_EQ(plain.attribute_string("/", "augment"), "none");
  // A resumed run keeps it.
  const Outcome conflict = xbar("train --resume " + out("half.h5") + " --epochs 2 --augment none -o " + out("x.h5"));
  EXPECT_EQ(conflict.exit_code, 2);
  EXPECT_THAT(conflict.err, HasSubstr("--augment"));
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
}

TEST_F(TrainCli, EvalScoresTheCheckpointOnFreshHardwarePerReadTime) {
  ASSERT_EQ(xbar("train --card cards/ideal.yaml --model lenet --test-limit 20 --epochs 2 -o " + out("run.h5")).exit_code, 0);
  const std::string eval = "eval " + kAnalogCard + " --checkpoint " + out("run.h5") + " --repeats 2 --test-limit 20";
  const Outcome json = xbar(eval + " --times 0,3600 --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const std::regex row(R"(\{"time_s": ([0-9.e+]+), "mean": ([0-9.e+-]+), "std": ([0-9.e+-]+), "repeats": 2)");
  std::vector<double> times, means;
  for (auto it = std::sregex_iterator(json.out.begin(), json.out.end(), row); it != std::sregex_iterator(); ++it) {
    times.push_back(std::stod((*it)[1]));
    means.push_back(std::stod((*it)[2]));
  }
  ASSERT_EQ(times, (std::vector<double>{0, 3600})) << json.out;
  EXPECT_EQ(json.out.front(), '[');
  // The ideal device with small wires keeps the network far above chance (10%).
  for (double m : means) EXPECT_GT(m, 0.5);
  EXPECT_THAT(json.err, testing::IsEmpty());

  const Outcome table = xbar(eval + " --times 0 --calibrate-columns 16");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("accuracy_mean"));
  EXPECT_THAT(table.out, HasSubstr("column calibration on 16"));
  EXPECT_THAT(table.err, HasSubstr("programming 2/2"));
}

TEST_F(TrainCli, AnalogTrainingRunsAndResumesOnTheCard) {
  const std::string run = "train " + kAnalogCard + " --model lenet --method ste --ste-backward effective --train-limit 32 "
                          "--batch 16 --test-limit 8";
  train_half_and_resume(run, 8);
  ASSERT_FALSE(HasFailure());
  const xbar::core::TraceReader trace(dir_ / "resumed.h5");
  EXPECT_EQ(trace.attribute_string("/", "method"), "ste");
  EXPECT_TRUE(trace.exists("/buffers/conv1.input_scale")) << "analog layers keep their buffers";
  EXPECT_EQ(trace.attribute_int("/", "train_column_calibration"), 0);
}

TEST_F(TrainCli, SteThroughCalibratedColumnsIsStoredResumedAndScored) {
  const std::string run = "train " + kAnalogCard + " --model lenet --method ste --train-limit 32 --batch 16 "
                          "--test-limit 8 --train-calibrate-columns";
  const Outcome half = train_half_and_resume(run, 8);
  ASSERT_FALSE(HasFailure());
  EXPECT_THAT(half.out, HasSubstr("ste (backward effective, columns calibrated in training)"));
  EXPECT_EQ(xbar::core::TraceReader(dir_ / "resumed.h5").attribute_int("/", "train_column_calibration"), 1);
  // The calibration changes what is trained: the run without it ends elsewhere.
  ASSERT_EQ(xbar("train " + kAnalogCard + " --model lenet --method ste --train-limit 32 --batch 16 --test-limit 8 "
                 "--epochs 1 -o " + out("plain.h5")).exit_code, 0);
  EXPECT_NE(xbar::core::TraceReader(dir_ / "plain.h5").read_matrix("/parameters/fc2.weight"),
            xbar::core::TraceReader(dir_ / "half.h5").read_matrix("/parameters/fc2.weight"));
  const Outcome scored = xbar("eval " + kAnalogCard + " --checkpoint " + out("resumed.h5") +
                              " --repeats 1 --test-limit 8 --calibrate-columns 8");
  ASSERT_EQ(scored.exit_code, 0) << scored.err;
  EXPECT_THAT(scored.out, HasSubstr("column calibration on 8"));
}

TEST_F(TrainCli, SteCalibratedInAFractionOfTheStepsOntoTheNominalHardwareIsStoredAndResumed) {
  const std::string run = "train " + kAnalogCard + " --model lenet --method ste --train-limit 64 --batch 16 "
                          "--test-limit 8 --train-calibrate-columns --train-calibrate-fraction 0.5 "
                          "--train-calibrate-onto nominal";
  const Outcome half = train_half_and_resume(run, 8);
  ASSERT_FALSE(HasFailure());
  EXPECT_THAT(half.out, HasSubstr("columns calibrated in a fraction 0.5 of the training steps onto the nominal hardware"));
  const xbar::core::TraceReader trace(dir_ / "resumed.h5");
  EXPECT_EQ(trace.attribute_double("/", "train_calibration_fraction"), 0.5);
  EXPECT_EQ(trace.attribute_string("/", "train_calibration_target"), "nominal");
  EXPECT_EQ(trace.attribute_int("/", "train_column_calibration"), 1);
  const Outcome conflict = xbar("train --resume " + out("half.h5") + " --epochs 2 --train-calibrate-fraction 0.25 -o " +
                                out("a.h5"));
  EXPECT_EQ(conflict.exit_code, 2);
  EXPECT_THAT(conflict.err, HasSubstr("--train-calibrate-fraction 0.25"));
  EXPECT_FALSE(fs::exists(dir_ / "a.h5"));
}

TEST_F(TrainCli, InitFineTunesATrainedRunOnTheCardFromItsWeights) {
  ASSERT_EQ(xbar(kDigitalRun + " --epochs 2 -o " + out("pretrained.h5")).exit_code, 0);
  // The model comes from the run; an epoch at a negligible step size keeps its weights.
  const std::string init = "train --init " + out("pretrained.h5") + " --test-limit 50 --batch 64";
  const Outcome still = xbar(init + " --card cards/ideal.yaml --lr 1e-12 -o " + out("still.h5"));
  ASSERT_EQ(still.exit_code, 0) << still.err;
  EXPECT_THAT(still.out, HasSubstr("xbar train: mlp"));
  EXPECT_THAT(still.out, HasSubstr("started from the weights of " + (dir_ / "pretrained.h5").string()));
  const xbar::core::TraceReader pretrained(dir_ / "pretrained.h5"), trace(dir_ / "still.h5");
  EXPECT_EQ(trace.attribute_string("/", "init_checkpoint"), (dir_ / "pretrained.h5").string());
  EXPECT_EQ(trace.attribute_int("/", "epochs_completed"), 1) << "the epochs start afresh";
  const Eigen::MatrixXd before = pretrained.read_matrix("/parameters/fc1.weight");
  EXPECT_LT((trace.read_matrix("/parameters/fc1.weight") - before).cwiseAbs().maxCoeff(), 1e-9);
  // The pretrained accuracy carries over (the seeded network is at chance after a still epoch).
  EXPECT_NEAR(trace.read_matrix("/metrics/test_accuracy")(0), pretrained.read_matrix("/metrics/test_accuracy")(1), 1e-12);

  // Fine-tuning with ste on the card resumes bit-identically from its own weights.
  train_half_and_resume(init + " " + kAnalogCard + " --method ste --train-limit 64", 50);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(xbar::core::TraceReader(dir_ / "resumed.h5").attribute_string("/", "init_checkpoint"), (dir_ / "pretrained.h5").string());

  const Outcome other_model = xbar(init + " --card cards/ideal.yaml --model lenet -o " + out("a.h5"));
  EXPECT_EQ(other_model.exit_code, 2);
  EXPECT_THAT(other_model.err, HasSubstr("--model lenet conflicts with --init"));
  const Outcome with_resume = xbar(init + " --resume " + out("half.h5") + " -o " + out("a.h5"));
  EXPECT_EQ(with_resume.exit_code, 2);
  EXPECT_THAT(with_resume.err, HasSubstr("--init"));
  EXPECT_FALSE(fs::exists(dir_ / "a.h5"));
}

TEST_F(TrainCli, MistakesAreUserErrorsThatLeaveNoFile) {
  struct Case {
    std::string args, expected;
  };
  const std::string base = "train --card cards/ideal.yaml --test-limit 50 --epochs 1";
  const std::vector<Case> cases = {
      {base + " --model resnet -o " + out("a.h5"), "resnet"},
      {base + " --model mlp --method magic -o " + out("a.h5"), "magic"},
      {base + " --model mlp --optimizer rmsprop -o " + out("a.h5"), "rmsprop"},
      {base + " --model mlp --batch 0 -o " + out("a.h5"), "--batch"},
      {base + " --model mlp --lr-decay 1.5 -o " + out("a.h5"), "--lr-decay"},
      {base + " --model mlp --augment crop -o " + out("a.h5"), "--augment"},
      {base + " --model mlp --method nat --train-calibrate-columns -o " + out("a.h5"), "--train-calibrate-columns"},
      {base + " --model mlp --method ste --train-calibrate-fraction 0.5 -o " + out("a.h5"), "--train-calibrate-columns"},
      {base + " --model mlp --method ste --train-calibrate-columns --train-calibrate-fraction 0 -o " + out("a.h5"),
       "--train-calibrate-fraction = 0"},
      {base + " --model mlp --method ste --train-calibrate-onto nominal -o " + out("a.h5"), "--train-calibrate-columns"},
      {base + " --model mlp --method ste --train-calibrate-columns --train-calibrate-onto wires -o " + out("a.h5"),
       "'wires': expected ideal or nominal"},
      {base + " --model mlp --data cifar -o " + out("a.h5"), "cifar"},
      {base + " --model mlp -o " + out("missing/a.h5"), "missing"},
      {base + " --model mlp --set tile.rows=-3 -o " + out("a.h5"), "tile.rows"},
      {base + " --model mlp", "-o"},
      {base + " -o " + out("a.h5"), "--model"},
      {"eval --card cards/ideal.yaml --checkpoint " + out("none.h5"), "none.h5"},
      {"eval --card cards/ideal.yaml --checkpoint " + out("none.h5") + " --times 0,soon", "soon"},
      {"eval --card cards/ideal.yaml --checkpoint " + out("none.h5") + " --stride 4", "--stride"},
  };
  for (const Case& c : cases) {
    const Outcome run = xbar(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.args << "\n" << run.err;
    EXPECT_THAT(run.err, HasSubstr(c.expected)) << c.args;
    EXPECT_FALSE(fs::exists(dir_ / "a.h5")) << c.args;
  }
  // Missing data: the loader's message, naming the folder and how to install the data.
  set_environment("XBAR_FASHION_MNIST_DIR", dir_ / "nowhere");
  const Outcome no_data = xbar(kDigitalRun + " -o " + out("a.h5"));
  EXPECT_EQ(no_data.exit_code, 2);
  EXPECT_THAT(no_data.err, HasSubstr("nowhere"));
  EXPECT_FALSE(fs::exists(dir_ / "a.h5"));
}
