// Checkpoints (training/checkpoint.hpp): a bitwise round trip of parameters, buffers, optimiser
// state, configuration and metrics; mismatches and unreadable files as user errors naming the
// file and the dataset; buffers missing from a checkpoint left at their defaults.
#include "training/checkpoint.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>

#include "core/random.hpp"
#include "core/trace.hpp"
#include "tests/support/files.hpp"
#include "training/layers.hpp"
#include "training/optim.hpp"

namespace xbar::training {
namespace {

using Eigen::MatrixXd;
using testing::HasSubstr;
using testing_support::user_error_message;

Sequential tiny_model(std::uint64_t seed, int hidden = 5) {
  core::RandomStream rng(seed, "model_init");
  Sequential net;
  net.add(std::make_unique<Linear>(6, hidden, rng), "fc1");
  net.emplace<ReLU>();
  net.add(std::make_unique<Linear>(hidden, 3, rng, Init::glorot_uniform), "fc2");
  return net;
}

// A layer with a weight and a buffer (standing in for an analog layer's input scale).
class BufferedLayer : public Layer {
 public:
  BufferedLayer() : weight_(MatrixXd::Constant(2, 2, 0.5)), grad_(MatrixXd::Zero(2, 2)), scale_(MatrixXd::Zero(1, 1)) {}
  MatrixXd forward(const MatrixXd& x) override { return weight_ * x; }
  MatrixXd backward(const MatrixXd& dy) override { return weight_.transpose() * dy; }
  std::vector<MatrixXd*> parameters() override { return {&weight_}; }
  std::vector<MatrixXd*> gradients() override { return {&grad_}; }
  std::vector<MatrixXd*> buffers() override { return {&scale_}; }
  std::string name() const override { return "Buffered"; }
  MatrixXd& scale() { return scale_; }

 private:
  MatrixXd weight_, grad_, scale_;
};

RunConfig sample_config() {
  RunConfig c;
  c.model = "tiny";
  c.method = "ste";
  c.ste_backward = "programmed";
  c.card_yaml = "seed: 9\ntile: {rows: 8}\n";
  c.card_path = "cards/some card.yaml";
  c.seed = 123456789012345ULL;
  c.batch = 17;
  c.learning_rate = 3.5e-4;
  c.optimizer = "adam";
  c.train_limit = 300;
  c.train_read_time_s = 3600;
  return c;
}

RunProgress sample_progress() {
  RunProgress p;
  p.epochs_completed = 2;
  p.global_step = 36;
  p.history = {{1, 1.25, 0.5, 0.625, 1.5, 1.0, 1.0e8}, {2, 0.75, 0.75, 0.8125, 1.25, 1.125, 1.5e8}};
  return p;
}

// Two Adam steps on random gradients, so that the state is not trivial.
OptimizerState stepped_adam(Sequential& net, core::RandomStream& rng) {
  Adam adam(net.parameters(), net.gradients());
  for (int s = 0; s < 2; ++s) {
    for (MatrixXd* g : net.gradients())
      for (Eigen::Index i = 0; i < g->size(); ++i) g->data()[i] = rng.normal();
    adam.step();
  }
  return {"adam", adam.steps(), adam.first_moment(), adam.second_moment(), {}};
}

class Checkpoints : public testing_support::TempDirTest {};

TEST_F(Checkpoints, RoundTripIsBitwise) {
  core::RandomStream rng(1, "test");
  Sequential net = tiny_model(1);
  const OptimizerState adam = stepped_adam(net, rng);
  const auto path = dir_ / "run.h5";
  save_checkpoint(path, sample_config(), sample_progress(), net, adam);

  const Checkpoint c = read_checkpoint(path);
  const RunConfig expected = sample_config();
  EXPECT_EQ(c.config.model, expected.model);
  EXPECT_EQ(c.config.data, expected.data);
  EXPECT_EQ(c.config.method, expected.method);
  EXPECT_EQ(c.config.ste_backward, expected.ste_backward);
  EXPECT_EQ(c.config.card_yaml, expected.card_yaml);
  EXPECT_EQ(c.config.card_path, expected.card_path);
  EXPECT_EQ(c.config.seed, expected.seed);
  EXPECT_EQ(c.config.batch, expected.batch);
  EXPECT_EQ(c.config.learning_rate, expected.learning_rate);
  EXPECT_EQ(c.config.optimizer, expected.optimizer);
  EXPECT_EQ(c.config.train_limit, expected.train_limit);
  EXPECT_EQ(c.config.train_read_time_s, expected.train_read_time_s);
  EXPECT_EQ(c.progress.epochs_completed, 2);
  EXPECT_EQ(c.progress.global_step, 36u);
  ASSERT_EQ(c.progress.history.size(), 2u);
  EXPECT_EQ(c.progress.history[1].epoch, 2);
  EXPECT_EQ(c.progress.history[1].train_loss, 0.75);
  EXPECT_EQ(c.progress.history[1].test_accuracy, 0.8125);
  EXPECT_EQ(c.progress.history[0].wall_time_s, 1.5);
  EXPECT_EQ(c.progress.history[1].train_time_s, 1.125);
  EXPECT_EQ(c.progress.history[0].peak_resident_memory_bytes, 1.0e8);

  EXPECT_EQ(c.optimizer.kind, "adam");
  EXPECT_EQ(c.optimizer.steps, 2);
  ASSERT_EQ(c.optimizer.first_moment.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(c.optimizer.first_moment[i], adam.first_moment[i]) << i;
    EXPECT_EQ(c.optimizer.second_moment[i], adam.second_moment[i]) << i;
  }

  Sequential other = tiny_model(2);
  ASSERT_NE(*other.parameters()[0], *net.parameters()[0]);
  load_model(c, other);
  for (std::size_t i = 0; i < net.parameters().size(); ++i) EXPECT_EQ(*other.parameters()[i], *net.parameters()[i]);

  // The file is self-describing: the datasets are named after the layers, with units.
  const core::TraceReader trace(path);
  EXPECT_EQ(trace.shape("/parameters/fc1.weight"), (std::vector<std::size_t>{5, 6}));
  EXPECT_EQ(trace.units("/metrics/wall_time_s"), "s");
  EXPECT_EQ(trace.units("/metrics/peak_resident_memory_bytes"), "B");
  EXPECT_EQ(folder_listing(), (std::vector<std::string>{"run.h5"}));
}

TEST_F(Checkpoints, SgdVelocityRoundTrips) {
  Sequential net = tiny_model(3);
  Sgd sgd(net.parameters(), net.gradients(), {0.1, 0.9, 0.0});
  for (MatrixXd* g : net.gradients()) g->setConstant(0.25);
  sgd.step();
  RunConfig config = sample_config();
  config.optimizer = "sgd";
  save_checkpoint(dir_ / "sgd.h5", config, {}, net, {"sgd", sgd.steps(), {}, {}, sgd.velocity()});
  const Checkpoint c = read_checkpoint(dir_ / "sgd.h5");
  EXPECT_EQ(c.optimizer.kind, "sgd");
  EXPECT_EQ(c.optimizer.steps, 1);
  ASSERT_EQ(c.optimizer.velocity.size(), 4u);
  EXPECT_EQ(c.optimizer.velocity[2], sgd.velocity()[2]);
  EXPECT_TRUE(c.progress.history.empty());
}

TEST_F(Checkpoints, MismatchedModelNamesTheFileAndTheDataset) {
  core::RandomStream rng(4, "test");
  Sequential net = tiny_model(4);
  const auto path = dir_ / "run.h5";
  save_checkpoint(path, sample_config(), sample_progress(), net, stepped_adam(net, rng));
  const Checkpoint c = read_checkpoint(path);

  Sequential wider = tiny_model(4, 7);
  const MatrixXd before = *wider.parameters()[0];
  const std::string shape = user_error_message([&] { load_model(c, wider); });
  EXPECT_THAT(shape, HasSubstr(path.string()));
  EXPECT_THAT(shape, HasSubstr("/parameters/fc1.weight"));
  EXPECT_THAT(shape, HasSubstr("5x6"));
  EXPECT_THAT(shape, HasSubstr("7x6"));
  EXPECT_EQ(*wider.parameters()[0], before) << "a failed load must change nothing";

  core::RandomStream init(4, "model_init");
  Sequential renamed;
  renamed.add(std::make_unique<Linear>(6, 5, init), "dense1");
  renamed.emplace<ReLU>();
  renamed.add(std::make_unique<Linear>(5, 3, init), "fc2");
  const std::string name = user_error_message([&] { load_model(c, renamed); });
  EXPECT_THAT(name, HasSubstr("fc1.weight"));
  EXPECT_THAT(name, HasSubstr("dense1.weight"));
}

TEST_F(Checkpoints, UnreadableFilesAreUserErrorsNamingTheFile) {
  const auto missing = dir_ / "missing.h5";
  EXPECT_THAT(user_error_message([&] { read_checkpoint(missing); }), HasSubstr(missing.string()));
  const auto text = dir_ / "notes.h5";
  std::ofstream(text) << "not a checkpoint\n";
  const std::string not_hdf5 = user_error_message([&] { read_checkpoint(text); });
  EXPECT_THAT(not_hdf5, HasSubstr(text.string()));
  EXPECT_THAT(not_hdf5, HasSubstr("not an HDF5 file"));
  const auto trace = dir_ / "trace.h5";
  {
    core::TraceWriter out(trace);
    out.set_attribute("/", "card", std::string("seed: 1"));
    out.commit();
  }
  const std::string foreign = user_error_message([&] { read_checkpoint(trace); });
  EXPECT_THAT(foreign, HasSubstr(trace.string()));
  EXPECT_THAT(foreign, HasSubstr("format"));
}

TEST_F(Checkpoints, SaveIntoAMissingFolderFailsAndWritesNothing) {
  Sequential net = tiny_model(5);
  const auto path = dir_ / "no" / "run.h5";
  EXPECT_THAT(user_error_message([&] { save_checkpoint(path, sample_config(), {}, net, OptimizerState{"adam", 0, {}, {}, {}}); }),
              HasSubstr(path.string()));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(Checkpoints, BuffersAreKeptOrLeftAtTheirDefaultsWhenTheCheckpointHasNone) {
  Sequential buffered;
  BufferedLayer& layer = buffered.add(std::make_unique<BufferedLayer>(), "layer");
  layer.scale()(0, 0) = 2.5;
  save_checkpoint(dir_ / "with_buffer.h5", sample_config(), {}, buffered, {"sgd", 0, {}, {}, {MatrixXd::Zero(2, 2)}});
  const Checkpoint with_buffer = read_checkpoint(dir_ / "with_buffer.h5");
  ASSERT_EQ(with_buffer.buffers.size(), 1u);
  EXPECT_EQ(with_buffer.buffers[0].first, "layer.buffer0");

  Sequential fresh;
  BufferedLayer& fresh_layer = fresh.add(std::make_unique<BufferedLayer>(), "layer");
  load_model(with_buffer, fresh);
  EXPECT_EQ(fresh_layer.scale()(0, 0), 2.5);

  // Without buffers in the checkpoint the model's buffer keeps its default.
  Checkpoint without = with_buffer;
  without.buffers.clear();
  Sequential defaulted;
  BufferedLayer& defaulted_layer = defaulted.add(std::make_unique<BufferedLayer>(), "layer");
  load_model(without, defaulted);
  EXPECT_EQ(defaulted_layer.scale()(0, 0), 0.0);

  // A saved buffer the model does not have, or of another shape, is a mismatch.
  Checkpoint wrong = with_buffer;
  wrong.buffers[0].second = MatrixXd::Zero(2, 3);
  EXPECT_THAT(user_error_message([&] { load_model(wrong, defaulted); }), HasSubstr("/buffers/layer.buffer0"));
  Checkpoint foreign = with_buffer;
  foreign.buffers[0].first = "other.buffer0";
  EXPECT_THAT(user_error_message([&] { load_model(foreign, defaulted); }), HasSubstr("/buffers/other.buffer0"));
}

TEST(PeakMemory, IsReadFromTheProcessStatus) {
  const double bytes = peak_resident_memory_bytes();
  EXPECT_GT(bytes, 1e6);     // a running test binary holds more than a megabyte
  EXPECT_LT(bytes, 64e9);
}

}  // namespace
}  // namespace xbar::training
