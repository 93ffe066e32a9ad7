// The training loop; see trainer.hpp.
#include "training/trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/error.hpp"

namespace xbar::training {
namespace {

std::variant<Adam, Sgd> make_optimizer(Layer& model, const TrainerOptions& options) {
  options.validate();
  if (options.optimizer == "sgd") {
    SgdOptions sgd;
    sgd.learning_rate = options.learning_rate;
    sgd.momentum = 0.9;
    return std::variant<Adam, Sgd>(std::in_place_type<Sgd>, model.parameters(), model.gradients(), sgd);
  }
  AdamOptions adam;
  adam.learning_rate = options.learning_rate;
  return std::variant<Adam, Sgd>(std::in_place_type<Adam>, model.parameters(), model.gradients(), adam);
}

std::vector<int> labels_of(const Eigen::VectorXi& labels, const std::vector<int>& order, std::size_t begin,
                           std::size_t end) {
  std::vector<int> out;
  out.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) out.push_back(labels[order[i]]);
  return out;
}

}  // namespace

void TrainerOptions::validate() const {
  if (batch <= 0) throw core::UserError(fmt::format("--batch = {}: must be a positive number of images", batch));
  if (!(learning_rate > 0))
    throw core::UserError(fmt::format("--lr = {}: the learning rate must be > 0", learning_rate));
  if (optimizer != "adam" && optimizer != "sgd")
    throw core::UserError(fmt::format("--optimizer = '{}': expected adam or sgd", optimizer));
  if (test_batch <= 0) throw core::UserError(fmt::format("test batch = {}: must be > 0", test_batch));
}

std::uint64_t test_step_key(int epoch) { return (std::uint64_t{1} << 62) | static_cast<std::uint64_t>(epoch); }

Trainer::Trainer(Layer& model, std::shared_ptr<HardwareContext> context, const TrainerOptions& options)
    : model_(model), context_(std::move(context)), options_(options), optimizer_(make_optimizer(model, options)) {
  model_.set_input_gradient_needed(false);
}

EpochTrainResult Trainer::train_epoch(const Eigen::MatrixXd& inputs, const Eigen::VectorXi& labels,
                                      const std::vector<int>& order, int epoch, const ProgressCallback& progress) {
  if (labels.size() != inputs.cols())
    throw std::invalid_argument(fmt::format("train_epoch: {} labels for {} inputs", labels.size(), inputs.cols()));
  const std::size_t n = order.size();
  const std::size_t batch = static_cast<std::size_t>(options_.batch);
  const std::size_t steps = (n + batch - 1) / batch;
  double loss_sum = 0;  // Σ batch loss × batch size
  std::size_t correct = 0, seen = 0;
  Eigen::MatrixXd x;
  for (std::size_t step = 0; step < steps; ++step) {
    const std::size_t begin = step * batch, end = std::min(n, begin + batch);
    x.resize(inputs.rows(), static_cast<Eigen::Index>(end - begin));
    for (std::size_t i = begin; i < end; ++i) x.col(static_cast<Eigen::Index>(i - begin)) = inputs.col(order[i]);
    if (options_.augment) options_.augment(x, global_step_);
    const std::vector<int> y = labels_of(labels, order, begin, end);
    const StepResult result = train_step(x, y);
    const Eigen::MatrixXd& logits = result.logits;

    loss_sum += result.loss * static_cast<double>(end - begin);
    for (Eigen::Index j = 0; j < logits.cols(); ++j) {
      Eigen::Index best = 0;
      logits.col(j).maxCoeff(&best);
      if (best == y[static_cast<std::size_t>(j)]) ++correct;
    }
    seen += end - begin;
    if (progress) {
      progress({epoch, step + 1, steps, seen, loss_sum / static_cast<double>(seen),
                static_cast<double>(correct) / static_cast<double>(seen)});
    }
  }
  EpochTrainResult result;
  if (seen > 0) {
    result.mean_loss = loss_sum / static_cast<double>(seen);
    result.accuracy = static_cast<double>(correct) / static_cast<double>(seen);
  }
  return result;
}

Trainer::StepResult Trainer::train_step(const Eigen::MatrixXd& inputs, const std::vector<int>& targets) {
  if (context_) {
    context_->phase = HardwarePhase::train;
    context_->step = global_step_;
  }
  std::visit([](auto& opt) { opt.zero_grad(); }, optimizer_);
  StepResult result;
  result.logits = model_.forward(inputs);
  const LossResult loss = softmax_cross_entropy(result.logits, targets);
  model_.backward(loss.grad);
  std::visit([](auto& opt) { opt.step(); }, optimizer_);
  ++global_step_;
  result.loss = loss.loss;
  return result;
}

void Trainer::set_learning_rate(double learning_rate) {
  if (!(learning_rate > 0))
    throw core::UserError(fmt::format("learning rate = {}: must be > 0", learning_rate));
  std::visit([&](auto& opt) { opt.set_learning_rate(learning_rate); }, optimizer_);
}

OptimizerState Trainer::optimizer_state() const {
  OptimizerState state;
  if (const Adam* adam = std::get_if<Adam>(&optimizer_)) {
    state.kind = "adam";
    state.steps = adam->steps();
    state.first_moment = adam->first_moment();
    state.second_moment = adam->second_moment();
  } else {
    const Sgd& sgd = std::get<Sgd>(optimizer_);
    state.kind = "sgd";
    state.steps = sgd.steps();
    state.velocity = sgd.velocity();
  }
  return state;
}

void Trainer::set_optimizer_state(const OptimizerState& state, const std::string& file) {
  const std::string kind = std::holds_alternative<Adam>(optimizer_) ? "adam" : "sgd";
  if (state.kind != kind) {
    throw core::UserError(fmt::format("checkpoint {}: /optimizer kind is {}, the run uses {}", file, state.kind, kind));
  }
  try {
    if (Adam* adam = std::get_if<Adam>(&optimizer_)) {
      adam->set_state(state.first_moment, state.second_moment, state.steps);
    } else {
      Sgd& sgd = std::get<Sgd>(optimizer_);
      sgd.set_velocity(state.velocity);
      sgd.set_steps(state.steps);
    }
  } catch (const std::invalid_argument& error) {
    throw core::UserError(fmt::format("checkpoint {}: /optimizer does not fit the model: {}", file, error.what()));
  }
}

double classification_accuracy(Layer& model, const Eigen::MatrixXd& inputs, const Eigen::VectorXi& labels, int batch) {
  if (batch <= 0) throw std::invalid_argument("classification_accuracy: batch must be > 0");
  if (labels.size() != inputs.cols())
    throw std::invalid_argument(fmt::format("classification_accuracy: {} labels for {} inputs", labels.size(),
                                            inputs.cols()));
  if (inputs.cols() == 0) return 0.0;
  std::size_t correct = 0;
  for (Eigen::Index begin = 0; begin < inputs.cols(); begin += batch) {
    const Eigen::Index count = std::min<Eigen::Index>(batch, inputs.cols() - begin);
    const Eigen::MatrixXd logits = model.forward(inputs.middleCols(begin, count));
    for (Eigen::Index j = 0; j < count; ++j) {
      Eigen::Index best = 0;
      logits.col(j).maxCoeff(&best);
      if (best == labels[begin + j]) ++correct;
    }
  }
  return static_cast<double>(correct) / static_cast<double>(inputs.cols());
}

}  // namespace xbar::training
