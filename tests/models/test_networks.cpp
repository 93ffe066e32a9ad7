// The network definitions (models/networks.hpp): shapes, parameter counts, layer names and
// initialisations through the factory, equivalence with hand-built layers and with the analog
// factory, and a whole-model gradient check.
#include "models/networks.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/random.hpp"
#include "devices/registry.hpp"
#include "tests/support/cards.hpp"
#include "tests/support/files.hpp"
#include "tests/support/gradients.hpp"
#include "training/analog.hpp"
#include "training/layers.hpp"
#include "training/network.hpp"

namespace xbar::models {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using training::Conv2dShape;
using training::Init;

using testing_support::random_matrix;

std::vector<std::pair<Index, Index>> shapes_of(training::Layer& model) {
  std::vector<std::pair<Index, Index>> shapes;
  for (MatrixXd* p : model.parameters()) shapes.emplace_back(p->rows(), p->cols());
  return shapes;
}

Index parameter_count(training::Layer& model) {
  Index count = 0;
  for (MatrixXd* p : model.parameters()) count += p->size();
  return count;
}

std::vector<std::string> names_of(training::Layer& model) {
  std::vector<std::string> names;
  for (const auto& [name, p] : model.named_parameters()) names.push_back(name);
  return names;
}

// A digital factory that records what the model asked for.
class RecordingFactory final : public training::LayerFactory {
 public:
  struct Request {
    std::string kind, name;
    Init init;
    int in, out;
  };
  std::unique_ptr<training::Layer> linear(int in, int out, core::RandomStream& rng, Init init,
                                          const std::string& name) const override {
    requests.push_back({"linear", name, init, in, out});
    return digital_.linear(in, out, rng, init, name);
  }
  std::unique_ptr<training::Layer> conv2d(const Conv2dShape& s, core::RandomStream& rng, Init init,
                                          const std::string& name) const override {
    requests.push_back({"conv2d", name, init, s.in_channels * s.kernel * s.kernel, s.out_channels});
    return digital_.conv2d(s, rng, init, name);
  }
  mutable std::vector<Request> requests;

 private:
  training::DigitalLayerFactory digital_;
};

TEST(Networks, MlpHasTheDocumentedShapesAndNames) {
  training::DigitalLayerFactory factory;
  core::RandomStream rng(1, "model_init");
  auto mlp = make_mlp(factory, rng);
  const std::vector<std::pair<Index, Index>> expected = {{256, 784}, {256, 1}, {128, 256}, {128, 1}, {10, 128}, {10, 1}};
  EXPECT_EQ(shapes_of(*mlp), expected);
  EXPECT_EQ(parameter_count(*mlp), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(names_of(*mlp), (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                                      "fc3.weight", "fc3.bias"}));
  EXPECT_EQ(mlp->forward(MatrixXd::Zero(784, 3)).rows(), 10);
}

TEST(Networks, LeNetHasTheDocumentedShapesAndNames) {
  training::DigitalLayerFactory factory;
  core::RandomStream rng(1, "model_init");
  auto lenet = make_lenet(factory, rng);
  const std::vector<std::pair<Index, Index>> expected = {{6, 25},    {6, 1},   {16, 150}, {16, 1},
                                                         {120, 256}, {120, 1}, {10, 120}, {10, 1}};
  EXPECT_EQ(shapes_of(*lenet), expected);
  EXPECT_EQ(parameter_count(*lenet), 6 * 25 + 6 + 16 * 150 + 16 + 120 * 256 + 120 + 10 * 120 + 10);
  EXPECT_EQ(names_of(*lenet), (std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                                        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  core::RandomStream data(2, "data");
  const MatrixXd logits = lenet->forward(random_matrix(784, 4, data));
  EXPECT_EQ(logits.rows(), 10);
  EXPECT_EQ(logits.cols(), 4);
}

TEST(Networks, AskTheFactoryForHeBeforeReluAndGlorotLast) {
  for (const std::string model : {"mlp", "lenet", "lenet-wide"}) {
    RecordingFactory factory;
    core::RandomStream rng(3, "model_init");
    make_model(model, factory, rng);
    ASSERT_GE(factory.requests.size(), 3u) << model;
    for (std::size_t i = 0; i + 1 < factory.requests.size(); ++i)
      EXPECT_EQ(factory.requests[i].init, Init::he_normal) << model << " " << factory.requests[i].name;
    EXPECT_EQ(factory.requests.back().init, Init::glorot_uniform) << model;
    EXPECT_EQ(factory.requests.back().out, 10) << model;
  }
  RecordingFactory factory;
  core::RandomStream rng(3, "model_init");
  make_lenet(factory, rng);
  std::vector<std::string> names;
  for (const auto& r : factory.requests) names.push_back(r.kind + ":" + r.name);
  EXPECT_EQ(names, (std::vector<std::string>{"conv2d:conv1", "conv2d:conv2", "linear:fc1", "linear:fc2"}));
  for (const auto& r : factory.requests) EXPECT_LE(r.in, 256) << r.name << " does not fit one 256-row tile";
  // The wide LeNet: the same layers, 10 and 20 channels, fc1 320 -> 128.
  RecordingFactory wide;
  core::RandomStream rng_wide(3, "model_init");
  make_lenet_wide(wide, rng_wide);
  ASSERT_EQ(wide.requests.size(), 4u);
  EXPECT_EQ(wide.requests[0].out, 10);
  EXPECT_EQ(wide.requests[1].in, 10 * 25);
  EXPECT_EQ(wide.requests[1].out, 20);
  EXPECT_EQ(wide.requests[2].in, 20 * 4 * 4);
  EXPECT_EQ(wide.requests[2].out, 128);
  EXPECT_EQ(wide.requests[3].in, 128);
}

TEST(Networks, FactoryModelEqualsTheHandBuiltLayersOfTheSameSeed) {
  training::DigitalLayerFactory factory;
  core::RandomStream rng_model(7, "model_init");
  auto lenet = make_lenet(factory, rng_model);
  core::RandomStream rng(7, "model_init");
  training::Sequential by_hand;
  by_hand.emplace<training::Conv2d>(Conv2dShape{1, 6, 5, 0, 28, 28}, rng, Init::he_normal);
  by_hand.emplace<training::ReLU>();
  by_hand.emplace<training::MaxPool2d>(6, 24, 24);
  by_hand.emplace<training::Conv2d>(Conv2dShape{6, 16, 5, 0, 12, 12}, rng, Init::he_normal);
  by_hand.emplace<training::ReLU>();
  by_hand.emplace<training::MaxPool2d>(16, 8, 8);
  by_hand.emplace<training::Flatten>();
  by_hand.emplace<training::Linear>(256, 120, rng, Init::he_normal);
  by_hand.emplace<training::ReLU>();
  by_hand.emplace<training::Linear>(120, 10, rng, Init::glorot_uniform);
  const auto a = lenet->parameters(), b = by_hand.parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(*a[i], *b[i]) << "parameter " << i;
  core::RandomStream data(8, "data");
  const MatrixXd x = random_matrix(784, 5, data);
  EXPECT_EQ(lenet->forward(x), by_hand.forward(x));
  // The model pools before its ReLUs, the hand-built one after (the textbook order): the same
  // function, and the same gradients, bit for bit.
  const MatrixXd dlogits = random_matrix(10, 5, data);
  lenet->zero_grad();
  by_hand.zero_grad();
  lenet->backward(dlogits);
  by_hand.backward(dlogits);
  const auto ga = lenet->gradients(), gb = by_hand.gradients();
  for (std::size_t i = 0; i < ga.size(); ++i) EXPECT_EQ(*ga[i], *gb[i]) << "gradient " << i;

  core::RandomStream other(8, "model_init");
  auto different = make_lenet(factory, other);
  EXPECT_NE(*different->parameters()[0], *a[0]) << "another seed must give other weights";
}

TEST(Networks, AnalogFactoryDrawsTheSameParametersAsTheDigitalOne) {
  // The same definition on tiles: same draws in the same order, same names, so a checkpoint of
  // either loads into the other.
  const core::Card card = testing_support::device_card("ideal", {}, 64, 64);
  training::AnalogOptions options;
  options.method = training::TrainingMethod::ste;
  options.ste_backward = training::SteBackward::clean;
  training::AnalogLayerFactory analog(card, devices::builtin_devices(), options);
  training::DigitalLayerFactory digital;
  for (const std::string model : {"mlp", "lenet", "lenet-wide"}) {
    core::RandomStream rng_a(5, "model_init"), rng_d(5, "model_init");
    auto on_tiles = make_model(model, analog, rng_a);
    auto plain = make_model(model, digital, rng_d);
    EXPECT_EQ(names_of(*on_tiles), names_of(*plain)) << model;
    const auto a = on_tiles->parameters(), d = plain->parameters();
    ASSERT_EQ(a.size(), d.size()) << model;
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(*a[i], *d[i]) << model << " parameter " << i;
  }
}

TEST(Networks, UnknownModelNamesTheChoices) {
  training::DigitalLayerFactory factory;
  core::RandomStream rng(1, "model_init");
  const std::string message = testing_support::user_error_message([&] { make_model("resnet", factory, rng); });
  EXPECT_THAT(message, testing::HasSubstr("resnet"));
  EXPECT_THAT(message, testing::HasSubstr("mlp"));
  EXPECT_THAT(message, testing::HasSubstr("lenet"));
}

// Central differences of the loss of the whole model with respect to a sample of the weights of
// every parameter matrix (all of them would take too long for the MLP).
void check_model_gradients(training::Sequential& model, const MatrixXd& x, const std::vector<int>& labels,
                           core::RandomStream& rng) {
  auto loss = [&] { return training::softmax_cross_entropy(model.forward(x), labels).loss; };
  model.zero_grad();
  model.backward(training::softmax_cross_entropy(model.forward(x), labels).grad);
  const auto params = model.parameters();
  const auto grads = model.gradients();
  const double h = 1e-6;
  for (std::size_t k = 0; k < params.size(); ++k) {
    MatrixXd& p = *params[k];
    double max_error = 0, max_grad = 0;
    for (int sample = 0; sample < 40; ++sample) {
      const Index i = static_cast<Index>(rng.uniform() * static_cast<double>(p.size()));
      const double keep = p.data()[i];
      p.data()[i] = keep + h;
      const double lp = loss();
      p.data()[i] = keep - h;
      const double lm = loss();
      p.data()[i] = keep;
      const double numeric = (lp - lm) / (2 * h);
      max_error = std::max(max_error, std::abs(numeric - grads[k]->data()[i]));
      max_grad = std::max(max_grad, std::abs(numeric));
    }
    EXPECT_GT(grads[k]->norm(), 0.0) << "parameter " << k;
    EXPECT_LT(max_error, 1e-6 * std::max(1.0, max_grad)) << "parameter " << k;
  }
}

TEST(Networks, WholeModelGradientsMatchFiniteDifferences) {
  training::DigitalLayerFactory factory;
  core::RandomStream rng(11, "model_init");
  core::RandomStream data(12, "data");
  const std::vector<int> labels = {3, 7, 0};
  for (const std::string name : {"mlp", "lenet"}) {
    auto model = make_model(name, factory, rng);
    for (MatrixXd* p : model->parameters())
      if (p->cols() == 1) *p = random_matrix(p->rows(), 1, data, 0.1);  // exercise the bias gradients
    MatrixXd x = random_matrix(784, 3, data).cwiseAbs();
    SCOPED_TRACE(name);
    check_model_gradients(*model, x, labels, data);
  }
}

}  // namespace
}  // namespace xbar::models
