// The training loop (training/trainer.hpp): resume after a checkpoint continues bit-identically,
// the thread count changes nothing, the hardware context follows the global step, the last
// partial batch is kept, a learnable problem is learnt, and bad options are user errors.
#include "training/trainer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <memory>

#include "core/random.hpp"
#include "models/fashion_mnist.hpp"
#include "tests/support/files.hpp"
#include "training/checkpoint.hpp"

namespace xbar::training {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXi;
using testing::HasSubstr;
using testing_support::user_error_message;

constexpr int kFeatures = 20, kClasses = 4;

// A few hundred noisy samples around one prototype per class.
struct Data {
  MatrixXd inputs;
  VectorXi labels;
};
Data synthetic(int n, std::uint64_t seed) {
  core::RandomStream prototypes(99, "prototypes");
  MatrixXd centre(kFeatures, kClasses);
  for (Eigen::Index i = 0; i < centre.size(); ++i) centre.data()[i] = prototypes.normal();
  core::RandomStream rng(seed, "samples");
  Data d{MatrixXd(kFeatures, n), VectorXi(n)};
  for (int k = 0; k < n; ++k) {
    d.labels[k] = static_cast<int>(rng.uniform() * kClasses);
    for (int f = 0; f < kFeatures; ++f) d.inputs(f, k) = centre(f, d.labels[k]) + 0.8 * rng.normal();
  }
  return d;
}

std::unique_ptr<Sequential> tiny_mlp(const LayerFactory& factory, std::uint64_t seed) {
  core::RandomStream rng(seed, "model_init");
  auto net = std::make_unique<Sequential>();
  net->add(factory.linear(kFeatures, 16, rng, Init::he_normal, "fc1"), "fc1");
  net->emplace<ReLU>();
  net->add(factory.linear(16, kClasses, rng, Init::glorot_uniform, "fc2"), "fc2");
  return net;
}

std::vector<int> epoch_order(std::uint64_t seed, int epoch, std::size_t n) {
  core::RandomStream rng(seed, "data_order", {static_cast<std::uint64_t>(epoch)});
  return models::shuffled_order(n, rng);
}

std::vector<MatrixXd> values(const std::vector<MatrixXd*>& matrices) {
  std::vector<MatrixXd> out;
  for (const MatrixXd* m : matrices) out.push_back(*m);
  return out;
}

void expect_same_state(Sequential& a, const Trainer& ta, Sequential& b, const Trainer& tb) {
  const auto pa = values(a.parameters()), pb = values(b.parameters());
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i], pb[i]) << "parameter " << i;
  const OptimizerState sa = ta.optimizer_state(), sb = tb.optimizer_state();
  EXPECT_EQ(sa.steps, sb.steps);
  EXPECT_EQ(ta.global_step(), tb.global_step());
  ASSERT_EQ(sa.first_moment.size(), sb.first_moment.size());
  for (std::size_t i = 0; i < sa.first_moment.size(); ++i) {
    EXPECT_EQ(sa.first_moment[i], sb.first_moment[i]) << i;
    EXPECT_EQ(sa.second_moment[i], sb.second_moment[i]) << i;
  }
  ASSERT_EQ(sa.velocity.size(), sb.velocity.size());
  for (std::size_t i = 0; i < sa.velocity.size(); ++i) EXPECT_EQ(sa.velocity[i], sb.velocity[i]) << i;
}

class TrainerTest : public testing_support::TempDirTest {};

TEST_F(TrainerTest, ResumeAfterACheckpointContinuesBitIdentically) {
  const Data data = synthetic(300, 1);
  DigitalLayerFactory factory;
  for (const std::string optimizer : {"adam", "sgd"}) {
    SCOPED_TRACE(optimizer);
    TrainerOptions options;
    options.batch = 32;  // 300 = 9 × 32 + 12: a partial last batch every epoch
    options.optimizer = optimizer;
    options.learning_rate = optimizer == "sgd" ? 0.01 : 1e-3;

    auto straight = tiny_mlp(factory, 7);
    Trainer straight_trainer(*straight, nullptr, options);
    for (int epoch = 1; epoch <= 2; ++epoch)
      straight_trainer.train_epoch(data.inputs, data.labels, epoch_order(7, epoch, 300), epoch);

    auto first = tiny_mlp(factory, 7);
    Trainer first_trainer(*first, nullptr, options);
    first_trainer.train_epoch(data.inputs, data.labels, epoch_order(7, 1, 300), 1);
    RunConfig config;
    config.model = "tiny";
    config.optimizer = optimizer;
    RunProgress progress;
    progress.epochs_completed = 1;
    progress.global_step = first_trainer.global_step();
    progress.history.push_back({1, 0.5, 0.5, 0.5, 1.0, 0.5, 1e8});
    const auto path = dir_ / ("run-" + optimizer + ".h5");
    save_checkpoint(path, config, progress, *first, first_trainer.optimizer_state());

    const Checkpoint checkpoint = read_checkpoint(path);
    auto resumed = tiny_mlp(factory, 12345);  // other initial weights: everything must come from the file
    Trainer resumed_trainer(*resumed, nullptr, options);
    load_model(checkpoint, *resumed);
    resumed_trainer.set_optimizer_state(checkpoint.optimizer, path.string());
    resumed_trainer.set_global_step(checkpoint.progress.global_step);
    resumed_trainer.train_epoch(data.inputs, data.labels, epoch_order(7, 2, 300), 2);

    expect_same_state(*straight, straight_trainer, *resumed, resumed_trainer);
    EXPECT_EQ(straight_trainer.global_step(), 20u);
  }
}

TEST(Trainer, ThreadCountChangesNothing) {
  const Data data = synthetic(200, 2);
  DigitalLayerFactory factory;
  auto train = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    auto net = tiny_mlp(factory, 3);
    Trainer trainer(*net, nullptr, TrainerOptions{});
    trainer.train_epoch(data.inputs, data.labels, epoch_order(3, 1, 200), 1);
    return values(net->parameters());
  };
  const auto one = train(1), two = train(2);
  for (std::size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i], two[i]) << "parameter " << i;
}

// A factory whose layers record the hardware context at every forward.
class ContextProbe : public Layer {
 public:
  ContextProbe(std::unique_ptr<Layer> inner, std::shared_ptr<HardwareContext> context, std::vector<std::uint64_t>* steps)
      : inner_(std::move(inner)), context_(std::move(context)), steps_(steps) {}
  MatrixXd forward(const MatrixXd& x) override {
    EXPECT_EQ(context_->phase, HardwarePhase::train);
    steps_->push_back(context_->step);
    return inner_->forward(x);
  }
  MatrixXd backward(const MatrixXd& dy) override { return inner_->backward(dy); }
  std::vector<MatrixXd*> parameters() override { return inner_->parameters(); }
  std::vector<MatrixXd*> gradients() override { return inner_->gradients(); }
  std::string name() const override { return "probe"; }

 private:
  std::unique_ptr<Layer> inner_;
  std::shared_ptr<HardwareContext> context_;
  std::vector<std::uint64_t>* steps_;
};

class ProbeFactory final : public LayerFactory {
 public:
  std::unique_ptr<Layer> linear(int in, int out, core::RandomStream& rng, Init init, const std::string& name) const override {
    return std::make_unique<ContextProbe>(digital_.linear(in, out, rng, init, name), context_, &steps);
  }
  std::unique_ptr<Layer> conv2d(const Conv2dShape& s, core::RandomStream& rng, Init init, const std::string& name) const override {
    return std::make_unique<ContextProbe>(digital_.conv2d(s, rng, init, name), context_, &steps);
  }
  std::shared_ptr<HardwareContext> context() const override { return context_; }
  mutable std::vector<std::uint64_t> steps;

 private:
  DigitalLayerFactory digital_;
  std::shared_ptr<HardwareContext> context_ = std::make_shared<HardwareContext>();
};

TEST(Trainer, EveryStepRunsOnTheHardwareOfItsGlobalStepAndKeepsThePartialBatch) {
  const Data data = synthetic(10, 3);
  ProbeFactory factory;
  auto net = tiny_mlp(factory, 4);
  TrainerOptions options;
  options.batch = 4;
  Trainer trainer(*net, factory.context(), options);
  trainer.set_global_step(40);
  factory.context()->phase = HardwarePhase::evaluate;  // the trainer must set the phase itself
  std::vector<std::size_t> images;
  trainer.train_epoch(data.inputs, data.labels, epoch_order(4, 1, 10), 1,
                      [&](const StepProgress& p) { images.push_back(p.images_done); });
  // Two layers per step, three steps (4 + 4 + 2 images).
  EXPECT_EQ(factory.steps, (std::vector<std::uint64_t>{40, 40, 41, 41, 42, 42}));
  EXPECT_EQ(trainer.global_step(), 43u);
  EXPECT_EQ(images, (std::vector<std::size_t>{4, 8, 10}));
  EXPECT_NE(test_step_key(1), test_step_key(2));
  EXPECT_GE(test_step_key(1), std::uint64_t{1} << 62);
}

TEST(Trainer, LearnsASeparableProblem) {
  const Data train = synthetic(400, 5), test = synthetic(200, 6);
  DigitalLayerFactory factory;
  auto net = tiny_mlp(factory, 8);
  TrainerOptions options;
  options.batch = 16;
  options.learning_rate = 1e-2;
  Trainer trainer(*net, nullptr, options);
  const double before = classification_accuracy(*net, test.inputs, test.labels, 64);
  std::vector<double> losses;
  for (int epoch = 1; epoch <= 3; ++epoch)
    losses.push_back(trainer.train_epoch(train.inputs, train.labels, epoch_order(8, epoch, 400), epoch).mean_loss);
  const double after = classification_accuracy(*net, test.inputs, test.labels, 64);
  EXPECT_LT(losses.back(), losses.front());
  EXPECT_GT(after, 0.9);
  EXPECT_GT(after, before);
  // Scoring in batches of any size gives the same accuracy.
  EXPECT_EQ(classification_accuracy(*net, test.inputs, test.labels, 7), after);
}

TEST(Trainer, LearningRateCanChangeBetweenEpochs) {
  // Adam's first step moves every weight with a nonzero gradient by the learning rate.
  const Data data = synthetic(8, 10);
  DigitalLayerFactory factory;
  for (const double lr : {1e-3, 4e-3}) {
    auto net = tiny_mlp(factory, 10);
    const MatrixXd before = *net->parameters()[2];
    TrainerOptions options;
    options.batch = 8;
    Trainer trainer(*net, nullptr, options);
    trainer.set_learning_rate(lr);
    trainer.train_epoch(data.inputs, data.labels, epoch_order(10, 1, 8), 1);
    EXPECT_NEAR((*net->parameters()[2] - before).cwiseAbs().maxCoeff(), lr, 1e-3 * lr) << lr;
  }
}

TEST(Trainer, BadOptionsAreUserErrorsNamingTheOption) {
  TrainerOptions options;
  options.batch = 0;
  EXPECT_THAT(user_error_message([&] { options.validate(); }), HasSubstr("--batch"));
  options = {};
  options.learning_rate = -1;
  EXPECT_THAT(user_error_message([&] { options.validate(); }), HasSubstr("--lr"));
  options = {};
  options.optimizer = "rmsprop";
  const std::string message = user_error_message([&] { options.validate(); });
  EXPECT_THAT(message, HasSubstr("rmsprop"));
  EXPECT_THAT(message, HasSubstr("adam"));
}

TEST_F(TrainerTest, OptimizerStateOfAnotherKindIsRefused) {
  DigitalLayerFactory factory;
  auto net = tiny_mlp(factory, 9);
  Trainer adam(*net, nullptr, TrainerOptions{});
  TrainerOptions sgd_options;
  sgd_options.optimizer = "sgd";
  Trainer sgd(*net, nullptr, sgd_options);
  EXPECT_THAT(user_error_message([&] { adam.set_optimizer_state(sgd.optimizer_state(), "run.h5"); }),
              HasSubstr("run.h5"));
}

}  // namespace
}  // namespace xbar::training
