// Tests of the character language model task (models/charlm.hpp): sampling with temperature,
// scoring by per-character cross-entropy, autoregressive generation over the context window, and
// the checkpoint section.
#include "models/charlm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.hpp"
#include "core/trace.hpp"
#include "tests/support/files.hpp"
#include "training/checkpoint.hpp"

namespace xbar::models {
namespace {

namespace fs = std::filesystem;
using testing_support::TempDirTest;
using testing_support::user_error_message;

training::CharTransformerConfig tiny_config() {
  training::CharTransformerConfig config;
  config.context = 4;
  config.width = 8;
  config.heads = 2;
  config.layers = 1;
  config.embedding_init_stddev = 0.5;  // large enough that predictions differ by position and history
  return config;
}

TEST(SampleCharacter, TemperatureZeroTakesTheFirstLargestLogit) {
  core::RandomStream rng(1, "test");
  Eigen::VectorXd logits(4);
  logits << 0.5, 2.0, 2.0, -1.0;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(sample_character(logits, 0.0, rng), 1);
}

TEST(SampleCharacter, FrequenciesFollowTheSoftmaxOfLogitsOverTemperature) {
  core::RandomStream rng(7, "test");
  Eigen::VectorXd logits(3);
  logits << 0.0, 1.0, 2.0;
  for (double temperature : {0.5, 2.0}) {
    const Eigen::VectorXd weights = (logits / temperature).array().exp();
    const Eigen::VectorXd p = weights / weights.sum();
    const int n = 40000;
    std::vector<int> counts(3, 0);
    for (int i = 0; i < n; ++i) ++counts[static_cast<std::size_t>(sample_character(logits, temperature, rng))];
    for (int k = 0; k < 3; ++k) {
      const double tolerance = 4.0 * std::sqrt(p[k] * (1 - p[k]) / n);
      EXPECT_NEAR(counts[static_cast<std::size_t>(k)] / static_cast<double>(n), p[k], tolerance)
          << "temperature " << temperature << ", id " << k;
    }
  }
}

TEST(SampleCharacter, RejectsNegativeTemperatureAndEmptyLogits) {
  core::RandomStream rng(1, "test");
  EXPECT_THROW(sample_character(Eigen::VectorXd::Zero(3), -1.0, rng), std::invalid_argument);
  EXPECT_THROW(sample_character(Eigen::VectorXd::Zero(3), std::nan(""), rng), std::invalid_argument);
  EXPECT_THROW(sample_character(Eigen::VectorXd(), 1.0, rng), std::invalid_argument);
}

TEST(ScoreText, EqualsTheMeanCrossEntropyOfEveryPredictedCharacterOneWindowAtATime) {
  training::DigitalLayerFactory factory;
  core::RandomStream init(3, "model_init");
  training::CharTransformer model(tiny_config(), factory, init);
  std::vector<std::uint8_t> ids;
  for (int i = 0; i < 23; ++i) ids.push_back(static_cast<std::uint8_t>((i * 7 + i * i) % CharVocabulary::size));
  // −ln p(ids[start + t + 1]) predicted at position t of the window ids[start .. start+length−1].
  auto nats_at = [&](std::size_t start, std::size_t length, std::size_t t) {
    Eigen::MatrixXd x(static_cast<Eigen::Index>(length), 1);
    for (std::size_t k = 0; k < length; ++k) x(static_cast<Eigen::Index>(k), 0) = ids[start + k];
    const Eigen::VectorXd column = model.forward(x).col(static_cast<Eigen::Index>(t));
    const double top = column.maxCoeff();
    return top + std::log((column.array() - top).exp().sum()) - column[ids[start + t + 1]];
  };

  // 22 predicted characters, non-overlapping windows of 4: five windows from 0 to 16, then one
  // ending at 22 (from 18) that scores the last two; batches of 2.
  const SequentialWindows windows(ids, 4, 2, 0);
  const TextScore score = score_text(model, windows);
  ASSERT_EQ(score.characters, 22u);
  double nats = 0;
  for (std::size_t start = 0; start + 4 <= 20; start += 4)
    for (std::size_t t = 0; t < 4; ++t) nats += nats_at(start, 4, t);
  nats += nats_at(18, 4, 2) + nats_at(18, 4, 3);
  EXPECT_NEAR(score.nats_per_char, nats / 22.0, 1e-12 * nats);
  EXPECT_NEAR(score.bits_per_char(), score.nats_per_char / std::log(2.0), 1e-12);
  EXPECT_NEAR(score.perplexity(), std::exp(score.nats_per_char), 1e-12 * score.perplexity());
  // An untrained model with these embeddings is worse than knowing the answer, better than nothing.
  EXPECT_GT(score.perplexity(), 1.0);

  // Stride 1: every character after the first four is predicted with the full context of 4.
  const TextScore sliding = score_text(model, SequentialWindows(ids, 4, 3, 0, 1));
  ASSERT_EQ(sliding.characters, 22u);
  double sliding_nats = 0;
  for (std::size_t i = 0; i < 22; ++i) sliding_nats += i < 4 ? nats_at(0, 4, i) : nats_at(i - 3, 4, 3);
  EXPECT_NEAR(sliding.nats_per_char, sliding_nats / 22.0, 1e-12 * sliding_nats);
  EXPECT_NE(sliding.nats_per_char, score.nats_per_char);
}

// Predicts (last id of each position + 1) mod vocab with certainty, and records the windows it saw.
class CountingModel : public training::Layer {
 public:
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override {
    windows.push_back(x);
    Eigen::MatrixXd logits = Eigen::MatrixXd::Zero(CharVocabulary::size, x.rows() * x.cols());
    for (Eigen::Index j = 0; j < x.size(); ++j)
      logits(static_cast<Eigen::Index>((static_cast<int>(x.data()[j]) + 1) % CharVocabulary::size), j) = 50.0;
    return logits;
  }
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override { return dy; }
  std::string name() const override { return "CountingModel"; }
  std::vector<Eigen::MatrixXd> windows;
};

TEST(GenerateIds, AppendsLengthCharactersReadingTheLastContextCharacters) {
  CountingModel model;
  core::RandomStream rng(1, "sampling");
  const std::vector<int> generated = generate_ids(model, 3, {10, 20}, 5, 1.0, rng);
  EXPECT_EQ(generated, (std::vector<int>{21, 22, 23, 24, 25}));
  ASSERT_EQ(model.windows.size(), 5u);
  EXPECT_EQ(model.windows[0].rows(), 2);  // the prompt alone
  for (std::size_t i = 1; i < 5; ++i) EXPECT_EQ(model.windows[i].rows(), 3) << "context 3";
  EXPECT_EQ(model.windows[4](0, 0), 22);  // ... 22 23 24 -> 25
  EXPECT_EQ(model.windows[4](2, 0), 24);
  EXPECT_TRUE(generate_ids(model, 3, {1}, 0, 1.0, rng).empty());
  EXPECT_THROW(generate_ids(model, 3, {}, 2, 1.0, rng), std::invalid_argument);
}

TEST(GenerateIds, TheSeedDecidesTheSample) {
  training::DigitalLayerFactory factory;
  core::RandomStream init(3, "model_init");
  training::CharTransformer model(tiny_config(), factory, init);
  auto sample = [&](std::uint64_t seed) {
    core::RandomStream rng(seed, "sampling");
    return generate_ids(model, 4, {40, 41}, 40, 1.0, rng);
  };
  EXPECT_EQ(sample(1), sample(1));
  EXPECT_NE(sample(1), sample(2));
}

class CharLmCheckpoint : public TempDirTest {};

TEST_F(CharLmCheckpoint, TheSectionRoundTripsThroughSaveCheckpoint) {
  training::DigitalLayerFactory factory;
  core::RandomStream init(3, "model_init");
  training::CharTransformer model(tiny_config(), factory, init);
  CharLmRun run;
  run.model = tiny_config();
  run.steps = 40;
  run.validation_limit = 1000;
  run.history.push_back({20, 3.5, 3.4, 3.4 / std::log(2.0), 1.5, 0.01, 3e7});
  run.history.push_back({40, 3.0, 2.9, 2.9 / std::log(2.0), 1.25, 0.0125, 3.5e7});
  training::RunConfig config;
  config.model = kCharLmModel;
  config.data = kBrownData;
  training::RunProgress progress;
  progress.global_step = 40;
  training::OptimizerState optimizer;
  optimizer.kind = "sgd";
  for (const Eigen::MatrixXd* p : model.parameters()) optimizer.velocity.push_back(Eigen::MatrixXd::Zero(p->rows(), p->cols()));
  const fs::path file = dir_ / "run.h5";
  training::save_checkpoint(file, config, progress, model, optimizer,
                            [&](core::TraceWriter& out) { write_char_lm_section(out, run); });

  EXPECT_TRUE(is_char_lm_checkpoint(file));
  const CharLmRun read = read_char_lm_section(file);
  EXPECT_EQ(read.vocabulary, CharVocabulary::symbols());
  EXPECT_EQ(read.model.context, 4);
  EXPECT_EQ(read.model.width, 8);
  EXPECT_EQ(read.model.heads, 2);
  EXPECT_EQ(read.model.layers, 1);
  EXPECT_EQ(read.model.embedding_init_stddev, 0.5);
  EXPECT_EQ(read.split_seed, kBrownSplitSeed);
  EXPECT_EQ(read.steps, 40);
  EXPECT_EQ(read.validation_limit, 1000);
  ASSERT_EQ(read.history.size(), 2u);
  EXPECT_EQ(read.history[1].step, 40);
  EXPECT_EQ(read.history[1].validation_loss, 2.9);
  EXPECT_EQ(read.history[1].train_time_per_step_s, 0.0125);
  EXPECT_EQ(read.history[0].peak_resident_memory_bytes, 3e7);
  // The rest of the checkpoint is the ordinary one.
  const training::Checkpoint checkpoint = training::read_checkpoint(file);
  EXPECT_EQ(checkpoint.config.model, "charlm");
  EXPECT_EQ(checkpoint.progress.global_step, 40u);
  EXPECT_TRUE(checkpoint.progress.history.empty());
}

TEST_F(CharLmCheckpoint, OtherFilesAreNotCharLmRunsAndAForeignVocabularyIsAUserError) {
  EXPECT_FALSE(is_char_lm_checkpoint(dir_ / "none.h5"));
  std::ofstream(dir_ / "text.h5") << "not hdf5";
  EXPECT_FALSE(is_char_lm_checkpoint(dir_ / "text.h5"));
  {
    core::TraceWriter out(dir_ / "trace.h5");
    out.set_attribute("/", "model", std::string("charlm"));  // no checkpoint format
    out.set_attribute("/charlm", "vocabulary", std::string("abc"));
    out.commit();
  }
  EXPECT_FALSE(is_char_lm_checkpoint(dir_ / "trace.h5"));
  const std::string message = user_error_message([&] { read_char_lm_section(dir_ / "trace.h5"); });
  EXPECT_NE(message.find("vocabulary"), std::string::npos) << message;
  EXPECT_NE(message.find("trace.h5"), std::string::npos) << message;
}

}  // namespace
}  // namespace xbar::models
