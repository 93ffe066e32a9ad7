// Digital layers with explicit forward and backward passes (no autograd), the softmax
// cross-entropy loss and a Sequential container. These are the plain-training foundation the
// analog layers build on.
//
// Tensor layout
// -------------
// Every tensor is an Eigen::MatrixXd with the batch in columns: a dense activation is
// features × batch; an image is one column of length C·H·W per sample, stored row-major in
// (channel, row, column), i.e. element (c, y, x) of sample n is at row (c·H + y)·W + x, column n.
// Flatten is therefore the identity.
//
// Layer contract
// --------------
// forward(x) returns y and keeps what backward needs (the input, a mask, argmax indices ...).
// backward(dy) must follow the forward it refers to; it returns dL/dx and *adds* dL/dθ to the
// gradients (so gradients of several batches accumulate; call zero_grad() between steps).
// parameters() and gradients() list the trainable matrices and their gradients in the same order
// and with the same shapes; optimisers step over these lists. Biases are stored as out×1
// matrices so that both lists hold Eigen::MatrixXd only.
//
// Threads and determinism
// -----------------------
// Linear, Conv2d, ReLU, MaxPool2d, im2col and col2im run in parallel on oneTBB (the caller
// limits the threads, see core::ThreadSetup). The work is cut into blocks whose size depends only
// on the shapes (columns of the batch, samples, rows of a weight matrix), never on the thread
// count; each block is one single-threaded Eigen product or loop, and reductions over the batch
// (weight gradients) are computed per block and summed in block order. Results are therefore
// bitwise identical for any number of threads. Randomness (initialisation) comes from a
// core::RandomStream passed in by the caller.
#pragma once

#include <Eigen/Dense>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.hpp"

namespace xbar::training {

// A layer with an explicit backward pass.
class Layer {
 public:
  virtual ~Layer() = default;

  // y = f(x); keeps what backward() needs.
  virtual Eigen::MatrixXd forward(const Eigen::MatrixXd& x) = 0;
  // dL/dx from dL/dy (same shape as the last forward's output); adds dL/dθ to gradients().
  virtual Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) = 0;

  // Trainable parameters and their gradients, in matching order (empty for stateless layers).
  virtual std::vector<Eigen::MatrixXd*> parameters() { return {}; }
  virtual std::vector<Eigen::MatrixXd*> gradients() { return {}; }
  // Non-trainable state that a checkpoint must keep (e.g. an analog layer's input scale).
  virtual std::vector<Eigen::MatrixXd*> buffers() { return {}; }
  // parameters() / buffers() with names, in the same order, for checkpoints. By default a layer
  // with two parameters names them "weight" and "bias" (Linear, Conv2d, the analog layers), any
  // other count "param0", "param1", ...; buffers are "buffer0", ... Containers prefix the names
  // of their children ("conv1.weight").
  virtual std::vector<std::pair<std::string, Eigen::MatrixXd*>> named_parameters();
  virtual std::vector<std::pair<std::string, Eigen::MatrixXd*>> named_buffers();

  // Whether backward() must compute dL/dx. A model's first layer does not need it (nobody uses
  // the gradient of the data); a layer told so may skip that work and then returns an empty
  // (0×0) matrix from backward(). The default implementation ignores the hint and always
  // computes dL/dx, so a layer that does not override it stays correct.
  virtual void set_input_gradient_needed(bool needed) {}
  // Sets every gradient to zero.
  void zero_grad();

  // Short description, e.g. "Linear(16 -> 10)".
  virtual std::string name() const = 0;
};

// Weight initialisation schemes.
enum class Init {
  he_normal,       // N(0, 2 / fan_in): for layers followed by ReLU
  glorot_uniform,  // U(-a, a), a = sqrt(6 / (fan_in + fan_out)): for linear / softmax outputs
};

// Fills `w` (any shape) with draws of `init` for the given fans, in column-major order of `w`.
void initialize(Eigen::MatrixXd& w, Init init, int fan_in, int fan_out, core::RandomStream& rng);

// Fully connected layer: y = W x + b, W out×in, b out×1. Weights drawn with `init`, bias zero.
class Linear : public Layer {
 public:
  Linear(int in_features, int out_features, core::RandomStream& rng, Init init = Init::he_normal);

  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::vector<Eigen::MatrixXd*> parameters() override { return {&weight_, &bias_}; }
  std::vector<Eigen::MatrixXd*> gradients() override { return {&grad_weight_, &grad_bias_}; }
  std::string name() const override;
  void set_input_gradient_needed(bool needed) override { input_gradient_needed_ = needed; }

  Eigen::MatrixXd& weight() { return weight_; }
  Eigen::MatrixXd& bias() { return bias_; }
  const Eigen::MatrixXd& grad_weight() const { return grad_weight_; }
  const Eigen::MatrixXd& grad_bias() const { return grad_bias_; }

 private:
  Eigen::MatrixXd weight_, bias_, grad_weight_, grad_bias_;
  Eigen::MatrixXd input_;  // x of the last forward
  bool input_gradient_needed_ = true;
};

// Shape of a 2-D convolution (stride 1, zero padding on every side).
struct Conv2dShape {
  int in_channels = 1;   // C_in
  int out_channels = 1;  // C_out
  int kernel = 3;        // square kernel k×k
  int padding = 0;       // zero padding p on each side
  int height = 1;        // input height H
  int width = 1;         // input width W

  int out_height() const { return height + 2 * padding - kernel + 1; }  // H_out
  int out_width() const { return width + 2 * padding - kernel + 1; }    // W_out
  // Throws std::invalid_argument naming the field, the value and the violated constraint.
  void validate() const;
};

// im2col of a batch: x is (C·H·W) × N in the image layout; the result is (C·k·k) × (H_out·W_out·N)
// with row (c·k + ky)·k + kx and column n·(H_out·W_out) + oy·W_out + ox holding
// x(c, oy + ky − p, ox + kx − p) of sample n (zero outside the image).
Eigen::MatrixXd im2col(const Eigen::MatrixXd& x, const Conv2dShape& s);
// Adjoint of im2col: sums each column entry back into the image position it came from.
Eigen::MatrixXd col2im(const Eigen::MatrixXd& cols, const Conv2dShape& s, Eigen::Index batch);

// 2-D convolution (cross-correlation, as in every deep-learning framework) via im2col: the
// convolution is the matrix product W · cols with W of shape C_out × (C_in·k·k) (row o holds
// kernel o in (c, ky, kx) order) and cols the im2col of the batch. Input (C_in·H·W) × N, output
// (C_out·H_out·W_out) × N. He-normal initialisation by default (fan_in = C_in·k·k), bias zero.
// The digital layer computes that product per fixed block of samples (each block unfolded into a
// thread-local (samples·H_out·W_out) × (C_in·k·k) matrix, so the product lands directly in the
// output layout) and keeps only its input for backward, where the blocks are unfolded again.
class Conv2d : public Layer {
 public:
  Conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init = Init::he_normal);

  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::vector<Eigen::MatrixXd*> parameters() override { return {&weight_, &bias_}; }
  std::vector<Eigen::MatrixXd*> gradients() override { return {&grad_weight_, &grad_bias_}; }
  std::string name() const override;
  void set_input_gradient_needed(bool needed) override { input_gradient_needed_ = needed; }

  const Conv2dShape& shape() const { return shape_; }
  Eigen::MatrixXd& weight() { return weight_; }
  Eigen::MatrixXd& bias() { return bias_; }
  const Eigen::MatrixXd& grad_weight() const { return grad_weight_; }
  const Eigen::MatrixXd& grad_bias() const { return grad_bias_; }

 private:
  Conv2dShape shape_;
  Eigen::MatrixXd weight_, bias_, grad_weight_, grad_bias_;
  Eigen::MatrixXd input_;  // x of the last forward
  bool input_gradient_needed_ = true;
};

// Elementwise max(x, 0). The gradient at exactly 0 is taken as 0.
class ReLU : public Layer {
 public:
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::string name() const override { return "ReLU"; }

 private:
  Eigen::Array<bool, Eigen::Dynamic, Eigen::Dynamic> positive_;
};

// 2×2 max pooling with stride 2 over (C·H·W) × N images; the output is C × ⌊H/2⌋ × ⌊W/2⌋ (a last
// odd row or column is dropped). Forward stores, per output element, the input row of the
// maximum (the first one in (dy, dx) scan order on ties); backward routes dy there.
class MaxPool2d : public Layer {
 public:
  MaxPool2d(int channels, int height, int width);

  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::string name() const override;

  int out_height() const { return height_ / 2; }
  int out_width() const { return width_ / 2; }
  // Input row index of the maximum for each output element, same shape as the output.
  const Eigen::Matrix<Eigen::Index, Eigen::Dynamic, Eigen::Dynamic>& argmax() const { return argmax_; }

 private:
  int channels_, height_, width_;
  Eigen::Index input_rows_ = 0;
  Eigen::Matrix<Eigen::Index, Eigen::Dynamic, Eigen::Dynamic> argmax_;
};

// Flatten (C·H·W) × N images into features × N: with this layout it is the identity.
class Flatten : public Layer {
 public:
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override { return x; }
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override { return dy; }
  std::string name() const override { return "Flatten"; }
};

// Layers applied in order; owns them.
class Sequential : public Layer {
 public:
  Sequential() = default;

  // Appends a layer and returns a reference to it. `layer_name` names it in checkpoints and
  // messages (e.g. "conv1"); when empty, "layer<i>" with i its position is used.
  template <class L>
  L& add(std::unique_ptr<L> layer, std::string layer_name = {}) {
    L& ref = *layer;
    if (layer_name.empty()) layer_name = "layer" + std::to_string(layers_.size());
    layers_.push_back(std::move(layer));
    layer_names_.push_back(std::move(layer_name));
    return ref;
  }
  // Constructs a layer in place: seq.emplace<Linear>(16, 10, rng).
  template <class L, class... Args>
  L& emplace(Args&&... args) {
    return add(std::make_unique<L>(std::forward<Args>(args)...));
  }

  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  // The parameters (gradients) of all layers, layer by layer.
  std::vector<Eigen::MatrixXd*> parameters() override;
  std::vector<Eigen::MatrixXd*> gradients() override;
  std::vector<Eigen::MatrixXd*> buffers() override;
  std::string name() const override;
  // Passes the hint to the first layer only (the others always feed a gradient to their
  // predecessor).
  void set_input_gradient_needed(bool needed) override;

  std::size_t size() const { return layers_.size(); }
  Layer& operator[](std::size_t i) { return *layers_[i]; }
  const std::string& layer_name(std::size_t i) const { return layer_names_[i]; }

  // "<layer name>.<the layer's own name>", e.g. "conv1.weight", "fc2.bias", "layer3.buffer0".
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> named_parameters() override;
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> named_buffers() override;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::string> layer_names_;
};

// Loss value and its gradient with respect to the logits.
struct LossResult {
  double loss = 0.0;          // mean over the batch
  Eigen::MatrixXd grad;       // dL/dlogits, classes × N
};

// Softmax cross-entropy of logits (classes × N) against integer labels (one per column, in
// [0, classes)), averaged over the batch. Numerically stable (log-sum-exp with the column max
// subtracted). grad = (softmax(logits) − onehot(labels)) / N.
LossResult softmax_cross_entropy(const Eigen::MatrixXd& logits, const std::vector<int>& labels);

// Fraction of columns whose arg-max (first on ties) equals the label.
double accuracy(const Eigen::MatrixXd& logits, const std::vector<int>& labels);

}  // namespace xbar::training
