// The training loop: mini-batches in a given order, softmax cross-entropy, backward, optimiser
// step, with the hardware context of analog layers steered per step; and batched scoring.
//
// Reproducibility: a step's randomness (the analog layers' programming, faults and read noise)
// is keyed by the global step the trainer puts into the HardwareContext; the data order is
// chosen by the caller (tools/train.cpp: core::RandomStream(seed, "data_order", {epoch}) and
// models::shuffled_order). So a run that is saved after an epoch (parameters, buffers, optimiser
// state, global step) and resumed continues bit-identically, and the digital layers give the
// same numbers for any thread count.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "training/checkpoint.hpp"
#include "training/layers.hpp"
#include "training/network.hpp"
#include "training/optim.hpp"

namespace xbar::training {

// Training options (the run's configuration, see RunConfig, holds the same values).
struct TrainerOptions {
  int batch = 128;                // mini-batch size (> 0); the last partial batch of an epoch is kept
  double learning_rate = 1e-3;    // optimiser step size (> 0)
  std::string optimizer = "adam"; // "adam" (β1 0.9, β2 0.999, ε 1e-8) or "sgd" (momentum 0.9)
  int test_batch = 500;           // images per forward when scoring (bounds the memory; > 0)
  // Training-time augmentation applied by train_epoch to each assembled mini-batch (features ×
  // images) before its step, given the global step (so a resumed run draws the same); none if empty.
  std::function<void(Eigen::MatrixXd& batch, std::uint64_t global_step)> augment;
  // Throws core::UserError naming the option ("--batch", "--lr", "--optimizer") and the value.
  void validate() const;
};

// Reserved HardwareContext::step of the scoring pass after epoch `epoch`: distinct from every
// training step (those stay below 2^62), so the test accuracy of an epoch is reproducible.
std::uint64_t test_step_key(int epoch);

// Progress inside an epoch, reported after every step.
struct StepProgress {
  int epoch = 0;                 // 1-based
  std::size_t step_in_epoch = 0; // steps done in this epoch (1-based)
  std::size_t steps_in_epoch = 0;
  std::size_t images_done = 0;
  double mean_loss = 0;          // over the epoch so far
  double accuracy = 0;           // over the epoch so far
};
using ProgressCallback = std::function<void(const StepProgress&)>;

// Train-epoch results.
struct EpochTrainResult {
  double mean_loss = 0;   // mean of the mini-batch losses (each batch weighs by its size)
  double accuracy = 0;    // fraction of images classified right in training mode during the epoch
};

class Trainer {
 public:
  // `model` must outlive the trainer; `context` is the factory's (nullptr for digital models).
  // Tells the model that it needs no gradient for its input (see Layer::set_input_gradient_needed).
  Trainer(Layer& model, std::shared_ptr<HardwareContext> context, const TrainerOptions& options);

  // One pass over inputs(:, order[i]) (inputs features × N, labels in [0, classes)) in mini-batches
  // of options.batch; each step sets the context to (train, global_step), runs forward, loss,
  // backward and the optimiser step, and increments the global step.
  EpochTrainResult train_epoch(const Eigen::MatrixXd& inputs, const Eigen::VectorXi& labels,
                               const std::vector<int>& order, int epoch, const ProgressCallback& progress = {});

  // One optimiser step on one mini-batch, the step train_epoch takes (and a step-based loop, e.g.
  // the character language model's, calls directly): sets the context to (train, global_step),
  // runs forward on `inputs`, softmax cross-entropy of the logits against `targets` (one class per
  // logits column), backward and the optimiser step, and increments the global step.
  struct StepResult {
    double loss = 0;         // mean loss over the logits columns
    Eigen::MatrixXd logits;  // the forward's output (classes × columns)
  };
  StepResult train_step(const Eigen::MatrixXd& inputs, const std::vector<int>& targets);

  // Changes the optimiser's step size from the next step on (a schedule over epochs).
  void set_learning_rate(double learning_rate);

  std::uint64_t global_step() const { return global_step_; }
  void set_global_step(std::uint64_t step) { global_step_ = step; }

  OptimizerState optimizer_state() const;
  // Restores a saved state; throws core::UserError naming `file` when the kind or the shapes
  // do not match this trainer's optimiser.
  void set_optimizer_state(const OptimizerState& state, const std::string& file);

 private:
  Layer& model_;
  std::shared_ptr<HardwareContext> context_;
  TrainerOptions options_;
  std::variant<Adam, Sgd> optimizer_;
  std::uint64_t global_step_ = 0;
};

// Fraction of the columns of `inputs` that `model` classifies as `labels`, forwarding `batch`
// columns at a time (whatever the context is set to: the caller chooses the phase).
double classification_accuracy(Layer& model, const Eigen::MatrixXd& inputs, const Eigen::VectorXi& labels, int batch);

}  // namespace xbar::training
