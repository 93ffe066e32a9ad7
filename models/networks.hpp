// The network definitions: a multilayer perceptron and a LeNet-style CNN for 28×28 grey images
// with 10 classes (Fashion-MNIST), built through a training::LayerFactory so that the same
// definition gives a digital model or one whose weight matrices live on simulated tiles.
//
// Every weight-matrix layer is drawn from `rng` in the order listed (weights in column-major
// order of the out×in matrix, see training::initialize), He-normal for a layer followed by ReLU,
// Glorot-uniform for the last layer; biases start at zero. Layer names ("fc1", "conv2", ...) are
// passed to the factory and used in checkpoints.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "training/layers.hpp"
#include "training/network.hpp"

namespace xbar::models {

// 784 → fc1 256 → ReLU → fc2 128 → ReLU → fc3 10 (logits). Input 784 × N (one image per column).
std::unique_ptr<training::Sequential> make_mlp(const training::LayerFactory& factory, core::RandomStream& rng);

// LeNet-style CNN, input 1×28×28 (784 × N):
//   conv1 1→6 5×5 (28→24) → max-pool 2×2 (→12) → ReLU
//   conv2 6→16 5×5 (12→8) → max-pool 2×2 (→4) → ReLU → flatten (16·4·4 = 256)
//   fc1 256→120 → ReLU → fc2 120→10 (logits).
// (Pooling before ReLU is the textbook ReLU-then-pool network exactly, forward and backward, at a
// quarter of the ReLU's work.)
// Every weight matrix has at most 256 inputs, so each fits one 256-row tile.
std::unique_ptr<training::Sequential> make_lenet(const training::LayerFactory& factory, core::RandomStream& rng);

// The same layout, wider: conv1 1→10, conv2 10→20 (flatten 20·4·4 = 320), fc1 320→128, fc2 128→10
// (about 1.8 times the arithmetic of make_lenet). The classic widths stop near 90 % on
// Fashion-MNIST; these pass it (README). conv2 (250 inputs) fits one 256-row tile, fc1 (320) spans two.
std::unique_ptr<training::Sequential> make_lenet_wide(const training::LayerFactory& factory, core::RandomStream& rng);

// The model names make_model accepts: "mlp", "lenet", "lenet-wide".
const std::vector<std::string>& model_names();

// make_mlp / make_lenet / make_lenet_wide by name; throws core::UserError naming the model and the choices.
std::unique_ptr<training::Sequential> make_model(const std::string& name, const training::LayerFactory& factory,
                                                 core::RandomStream& rng);

}  // namespace xbar::models
