#include "models/networks.hpp"

#include "core/error.hpp"

namespace xbar::models {

using training::Conv2dShape;
using training::Init;

std::unique_ptr<training::Sequential> make_mlp(const training::LayerFactory& factory, core::RandomStream& rng) {
  auto net = std::make_unique<training::Sequential>();
  net->add(factory.linear(784, 256, rng, Init::he_normal, "fc1"), "fc1");
  net->emplace<training::ReLU>();
  net->add(factory.linear(256, 128, rng, Init::he_normal, "fc2"), "fc2");
  net->emplace<training::ReLU>();
  net->add(factory.linear(128, 10, rng, Init::glorot_uniform, "fc3"), "fc3");
  return net;
}

namespace {

// The LeNet layout with `c1` and `c2` convolution channels and `hidden` units in fc1.
std::unique_ptr<training::Sequential> lenet_with(const training::LayerFactory& factory, core::RandomStream& rng,
                                                 int c1, int c2, int hidden) {
  auto net = std::make_unique<training::Sequential>();
  Conv2dShape conv1;
  conv1.in_channels = 1;
  conv1.out_channels = c1;
  conv1.kernel = 5;
  conv1.height = conv1.width = 28;
  net->add(factory.conv2d(conv1, rng, Init::he_normal, "conv1"), "conv1");
  // Pooling before the ReLU: max-pool(ReLU(z)) = ReLU(max-pool(z)) exactly, forward and backward
  // (both route the gradient to the first maximum of the window, and to nothing when it is <= 0),
  // and the ReLU then touches a quarter of the values.
  net->emplace<training::MaxPool2d>(c1, conv1.out_height(), conv1.out_width());  // 24 → 12
  net->emplace<training::ReLU>();
  Conv2dShape conv2;
  conv2.in_channels = c1;
  conv2.out_channels = c2;
  conv2.kernel = 5;
  conv2.height = conv2.width = 12;
  net->add(factory.conv2d(conv2, rng, Init::he_normal, "conv2"), "conv2");
  net->emplace<training::MaxPool2d>(c2, conv2.out_height(), conv2.out_width());  // 8 → 4
  net->emplace<training::ReLU>();
  net->emplace<training::Flatten>();
  net->add(factory.linear(c2 * 4 * 4, hidden, rng, Init::he_normal, "fc1"), "fc1");
  net->emplace<training::ReLU>();
  net->add(factory.linear(hidden, 10, rng, Init::glorot_uniform, "fc2"), "fc2");
  return net;
}

}  // namespace

std::unique_ptr<training::Sequential> make_lenet(const training::LayerFactory& factory, core::RandomStream& rng) {
  return lenet_with(factory, rng, 6, 16, 120);
}

std::unique_ptr<training::Sequential> make_lenet_wide(const training::LayerFactory& factory, core::RandomStream& rng) {
  return lenet_with(factory, rng, 10, 20, 128);
}

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"mlp", "lenet", "lenet-wide"};
  return names;
}

namespace {

[[noreturn]] void unknown_model(const std::string& name) {
  std::string choices;
  for (const auto& n : model_names()) choices += (choices.empty() ? "" : ", ") + n;
  throw core::UserError("--model: unknown model '" + name + "'; expected one of: " + choices +
                        " (image classification) or charlm (the character language model)");
}

}  // namespace

std::unique_ptr<training::Sequential> make_model(const std::string& name, const training::LayerFactory& factory,
                                                 core::RandomStream& rng) {
  if (name == "mlp") return make_mlp(factory, rng);
  if (name == "lenet") return make_lenet(factory, rng);
  if (name == "lenet-wide") return make_lenet_wide(factory, rng);
  unknown_model(name);
}

}  // namespace xbar::models
