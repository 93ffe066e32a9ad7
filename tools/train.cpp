// `xbar train` and `xbar eval`; see train.hpp.
#include "tools/train.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/error.hpp"
#include "core/random.hpp"
#include "devices/registry.hpp"
#include "models/fashion_mnist.hpp"
#include "models/networks.hpp"
#include "tools/progress.hpp"
#include "tools/run_support.hpp"
#include "tools/simulate.hpp"
#include "training/analog.hpp"
#include "training/checkpoint.hpp"
#include "training/network.hpp"
#include "training/trainer.hpp"

namespace xbar::tools {
namespace {

using core::UserError;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A labelled classification split.
struct Labelled {
  Eigen::MatrixXd inputs;  // features × N
  Eigen::VectorXi labels;  // N
};

void require_known_data(const std::string& data) {
  if (data != "fashion-mnist")
    throw UserError(fmt::format("--data: unknown data set '{}'; expected fashion-mnist", data));
}

Labelled load_split(const std::string& data, models::Split split, std::size_t limit) {
  require_known_data(data);
  models::Dataset d = models::load_fashion_mnist(split, limit);
  return {std::move(d.images), std::move(d.labels)};
}

// Progress on stderr per epoch (tools/progress.hpp): a bar redrawn in place on a terminal, plain
// lines (every ~10% of an epoch) otherwise.
class ProgressReporter {
 public:
  explicit ProgressReporter(int epochs) : epochs_(epochs) {}

  void start_epoch(int epoch, std::size_t steps) { display_.start(fmt::format("epoch {}/{}", epoch, epochs_), steps); }

  void step(const training::StepProgress& p) {
    display_.update(p.step_in_epoch, fmt::format("loss {:.4f} acc {:.4f}", p.mean_loss, p.accuracy));
  }

  void end_epoch(const training::EpochMetrics& m) {
    display_.print_line(fmt::format(
        "epoch {}/{}: train loss {:.4f} acc {:.4f}, test acc {:.4f}, {:.1f} s (training {:.1f} s), peak memory {}",
        m.epoch, epochs_, m.train_loss, m.train_accuracy, m.test_accuracy, m.wall_time_s, m.train_time_s,
        megabytes(m.peak_resident_memory_bytes)));
  }

 private:
  int epochs_;
  ProgressDisplay display_;
};

std::string summary_text(const training::RunConfig& config, const training::RunProgress& progress,
                         const std::filesystem::path& output, int epochs_this_run) {
  std::string text = fmt::format("xbar train: {} on {} with method {}, seed {}, batch {}, {} lr {}{}\n", config.model,
                                 config.data, method_text(config), config.seed,
                                 config.batch, config.optimizer, config.learning_rate,
                                 config.lr_decay != 1.0 ? fmt::format(" × {}^(epoch−1)", config.lr_decay) : "");
  if (config.augment != "none") text.insert(text.size() - 1, ", augment " + config.augment);
  if (!config.init_checkpoint.empty()) text += fmt::format("started from the weights of {}\n", config.init_checkpoint);
  text += "epoch  train_loss  train_acc  test_acc  wall_s  train_s  peak_memory\n";
  for (const auto& m : progress.history) {
    text += fmt::format("{:5d}  {:10.4f}  {:9.4f}  {:8.4f}  {:6.1f}  {:7.1f}  {}\n", m.epoch, m.train_loss,
                        m.train_accuracy, m.test_accuracy, m.wall_time_s, m.train_time_s,
                        megabytes(m.peak_resident_memory_bytes));
  }
  if (!progress.history.empty()) {
    const auto& last = progress.history.back();
    double total = 0, training = 0;
    for (const auto& m : progress.history) {
      total += m.wall_time_s;
      training += m.train_time_s;
    }
    const double epochs = static_cast<double>(progress.history.size());
    text += fmt::format(
        "final: train loss {:.4f}, train accuracy {:.4f}, test accuracy {:.4f}; {:.2f} s per epoch ({:.2f} s "
        "training); peak resident memory {}\n",
        last.train_loss, last.train_accuracy, last.test_accuracy, total / epochs, training / epochs,
        megabytes(last.peak_resident_memory_bytes));
  }
  if (epochs_this_run == 0) text += fmt::format("nothing to train: the run has {} epochs\n", progress.epochs_completed);
  text += fmt::format("checkpoint: {}\n", output.string());
  return text;
}

}  // namespace

std::string train_command(const TrainOptions& options) {
  training::RunConfig config;
  training::RunProgress progress;
  std::optional<training::Checkpoint> checkpoint;
  const std::optional<training::Checkpoint> pretrained = read_init_checkpoint(options.init, options.resume);
  core::Card card;
  if (!options.resume.empty()) {
    checkpoint = training::read_checkpoint(options.resume);
    config = checkpoint->config;
    const auto& file = options.resume;
    require_same("--model", options.model, config.model, file);
    require_same("--method", options.method, config.method, file);
    require_same("--ste-backward", options.ste_backward, config.ste_backward, file);
    require_same("--batch", options.batch, config.batch, file);
    require_same("--lr", options.learning_rate, config.learning_rate, file);
    require_same("--lr-decay", options.lr_decay, config.lr_decay, file);
    require_same("--optimizer", options.optimizer, config.optimizer, file);
    require_same("--train-limit", options.train_limit, config.train_limit, file);
    require_same("--seed", options.seed, config.seed, file);
    require_same("--train-read-time", options.train_read_time_s, config.train_read_time_s, file);
    require_same("--train-calibrate-columns", options.train_column_calibration, config.train_column_calibration, file);
    require_same("--train-calibrate-fraction", options.train_calibration_fraction, config.train_calibration_fraction,
                 file);
    require_same("--train-calibrate-onto", options.train_calibration_target, config.train_calibration_target, file);
    require_same("--data", options.data, config.data, file);
    require_same("--augment", options.augment, config.augment, file);
    card = resumed_run_card(config, options.card, options.overrides, options.seed, file);
    progress = checkpoint->progress;
  } else {
    if (!options.model && !pretrained) throw UserError("--model is required (expected one of: mlp, lenet)");
    if (options.card.empty()) throw UserError("--card is required");
    card = load_card_with_seed(options.card, options.overrides, options.seed);
    config.model = options.model.value_or(pretrained ? pretrained->config.model : "");
    if (pretrained) {
      require_init_same("--model", options.model, pretrained->config.model, options.init);
      config.init_checkpoint = options.init.string();
    }
    config.data = options.data.value_or("fashion-mnist");
    config.method = options.method.value_or("ideal");
    config.ste_backward = options.ste_backward.value_or("effective");
    config.card_yaml = card.effective_yaml;
    config.card_path = options.card.string();
    config.seed = card.seed;
    config.batch = options.batch.value_or(128);
    config.learning_rate = options.learning_rate.value_or(1e-3);
    config.lr_decay = options.lr_decay.value_or(1.0);
    config.optimizer = options.optimizer.value_or("adam");
    config.train_limit = options.train_limit.value_or(0);
    config.train_read_time_s = options.train_read_time_s.value_or(0.0);
    config.train_column_calibration = options.train_column_calibration.value_or(false);
    config.train_calibration_fraction = options.train_calibration_fraction.value_or(1.0);
    config.train_calibration_target = options.train_calibration_target.value_or("ideal");
    config.augment = options.augment.value_or("none");
  }
  require_known_data(config.data);
  if (config.augment != "none" && config.augment != "flip")
    throw UserError(fmt::format("--augment = '{}': expected none or flip", config.augment));
  if (config.train_limit < 0) throw UserError(fmt::format("--train-limit = {}: must be >= 0", config.train_limit));
  if (options.epochs < 1) throw UserError(fmt::format("--epochs = {}: must be >= 1", options.epochs));
  training::TrainerOptions trainer_options = checked_trainer_options(config);
  if (config.augment == "flip") {
    trainer_options.augment = [seed = config.seed](Eigen::MatrixXd& images, std::uint64_t step) {
      core::RandomStream rng(seed, "augment_flip", {step});
      models::random_horizontal_flip(images, models::fashion_mnist_rows, models::fashion_mnist_cols, rng);
    };
  }
  const std::filesystem::path output = checkpoint_output(options.output, options.resume);

  const std::unique_ptr<training::LayerFactory> factory = make_factory(card, config);
  core::RandomStream init = model_init_stream(config.seed);
  const std::unique_ptr<training::Sequential> model = models::make_model(config.model, *factory, init);
  training::Trainer trainer(*model, factory->context(), trainer_options);
  if (checkpoint) {
    training::load_model(*checkpoint, *model);
    trainer.set_optimizer_state(checkpoint->optimizer, options.resume.string());
    trainer.set_global_step(progress.global_step);
  } else if (pretrained) {
    training::load_model(*pretrained, *model);
  }

  const Labelled train = load_split(config.data, models::Split::train, static_cast<std::size_t>(config.train_limit));
  const Labelled test = load_split(config.data, models::Split::test, options.test_limit);
  const std::shared_ptr<training::HardwareContext> context = factory->context();

  ProgressReporter reporter(options.epochs);
  const int first_epoch = progress.epochs_completed + 1;
  for (int epoch = first_epoch; epoch <= options.epochs; ++epoch) {
    const auto start = Clock::now();
    const auto batch = static_cast<std::size_t>(config.batch);
    reporter.start_epoch(epoch, (static_cast<std::size_t>(train.inputs.cols()) + batch - 1) / batch);
    trainer.set_learning_rate(config.learning_rate * std::pow(config.lr_decay, epoch - 1));
    core::RandomStream order_rng(config.seed, "data_order", {static_cast<std::uint64_t>(epoch)});
    const std::vector<int> order = models::shuffled_order(static_cast<std::size_t>(train.inputs.cols()), order_rng);
    const training::EpochTrainResult result =
        trainer.train_epoch(train.inputs, train.labels, order, epoch,
                            [&](const training::StepProgress& p) { reporter.step(p); });
    const double train_time_s = seconds_since(start);
    // Score the test split in training mode on the hardware of a reserved step; the buffers (e.g.
    // input scales refreshed by every training-mode forward) are restored, so scoring never
    // changes the training run.
    const std::vector<Eigen::MatrixXd> buffers = copy_buffers(*model);
    if (context) {
      context->phase = training::HardwarePhase::train;
      context->step = training::test_step_key(epoch);
    }
    const double test_accuracy =
        training::classification_accuracy(*model, test.inputs, test.labels, trainer_options.test_batch);
    restore_buffers(*model, buffers);

    training::EpochMetrics metrics;
    metrics.epoch = epoch;
    metrics.train_loss = result.mean_loss;
    metrics.train_accuracy = result.accuracy;
    metrics.test_accuracy = test_accuracy;
    metrics.wall_time_s = seconds_since(start);
    metrics.train_time_s = train_time_s;
    metrics.peak_resident_memory_bytes = training::peak_resident_memory_bytes();
    progress.history.push_back(metrics);
    progress.epochs_completed = epoch;
    progress.global_step = trainer.global_step();
    training::save_checkpoint(output, config, progress, *model, trainer.optimizer_state());
    reporter.end_epoch(metrics);
  }
  if (first_epoch > options.epochs && output != options.resume) {
    training::save_checkpoint(output, config, progress, *model, trainer.optimizer_state());
  }
  return summary_text(config, progress, output, std::max(0, options.epochs - first_epoch + 1));
}

// ---------------------------------------------------------------------------------------------
// eval

std::vector<double> parse_times(const std::string& text) {
  std::vector<double> times;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    std::size_t used = 0;
    double value = 0;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    while (used < item.size() && item[used] == ' ') ++used;
    if (item.empty() || used != item.size() || !(value >= 0) || !std::isfinite(value)) {
      throw UserError(fmt::format("--times: '{}' is not a time in seconds >= 0 (expected e.g. 0,3600,86400)", item));
    }
    times.push_back(value);
  }
  if (times.empty()) throw UserError("--times: expected at least one time in seconds, e.g. 0,3600,86400");
  return times;
}

namespace {

// What evaluation needs from the data of a run: held-out inputs for calibration and the score
// of a model on the test split. Kept behind this small interface so that other tasks (a language
// model scored by perplexity) can be added beside classification.
struct EvalTask {
  std::string metric;
  Eigen::MatrixXd heldout;  // held-out training inputs, the last ones of the training split
  std::function<double(training::Layer&)> score;
};

EvalTask classification_task(const std::string& data, std::size_t heldout_count, std::size_t test_limit, int batch) {
  Labelled train = load_split(data, models::Split::train, 0);
  if (static_cast<std::size_t>(train.inputs.cols()) < heldout_count) {
    throw UserError(fmt::format("the training split of {} has {} images, calibration needs {} (adc.calibration_inputs "
                                "and --calibrate-columns)",
                                data, train.inputs.cols(), heldout_count));
  }
  auto test = std::make_shared<Labelled>(load_split(data, models::Split::test, test_limit));
  EvalTask task;
  task.metric = "accuracy";
  task.heldout = train.inputs.rightCols(static_cast<Eigen::Index>(heldout_count));
  task.score = [test, batch](training::Layer& model) {
    return training::classification_accuracy(model, test->inputs, test->labels, batch);
  };
  return task;
}

}  // namespace

EvalReport evaluate_checkpoint(const EvalOptions& options) {
  if (options.repeats < 1) throw UserError(fmt::format("--repeats = {}: must be >= 1", options.repeats));
  if (options.calibrate_columns < 0)
    throw UserError(fmt::format("--calibrate-columns = {}: must be >= 0", options.calibrate_columns));
  if (options.batch < 1) throw UserError(fmt::format("--batch = {}: must be >= 1", options.batch));
  if (options.times_s.empty()) throw UserError("--times: expected at least one time");
  const training::Checkpoint checkpoint = training::read_checkpoint(options.checkpoint);
  const core::Card card = load_card_with_seed(options.card, options.overrides, options.seed);

  // The evaluation phases run the full tile simulation whatever the method was; the training-only
  // checks of a method (e.g. the effective-matrix solver of ste/effective) do not apply here.
  const std::unique_ptr<training::AnalogLayerFactory> factory_owner = make_evaluation_factory(card, checkpoint.config);
  training::AnalogLayerFactory& factory = *factory_owner;
  core::RandomStream init = model_init_stream(checkpoint.config.seed);
  const std::unique_ptr<training::Sequential> model = models::make_model(checkpoint.config.model, factory, init);
  training::load_model(checkpoint, *model);

  const int adc_count = card.adc.calibration_inputs;
  const std::size_t heldout_count = static_cast<std::size_t>(std::max(adc_count, options.calibrate_columns));
  const EvalTask task = classification_task(checkpoint.config.data, heldout_count, options.test_limit, options.batch);
  const Eigen::MatrixXd adc_inputs = task.heldout.rightCols(adc_count);
  const Eigen::MatrixXd column_inputs = task.heldout.rightCols(options.calibrate_columns);

  training::HardwareContext& context = *factory.context();
  EvalReport report;
  report.metric = task.metric;
  for (double t : options.times_s) report.rows.push_back({t, 0, 0, {}});
  for (int p = 0; p < options.repeats; ++p) {
    context.programming = static_cast<std::uint64_t>(p);
    context.column_calibration = false;
    context.read_time_s = 0;
    context.phase = training::HardwarePhase::calibrate_adc;
    model->forward(adc_inputs);
    for (EvalRow& row : report.rows) {
      context.read_time_s = row.time_s;
      context.column_calibration = false;
      if (options.calibrate_columns > 0) {
        context.phase = training::HardwarePhase::calibrate_columns;
        model->forward(column_inputs);
        context.column_calibration = true;
      }
      context.phase = training::HardwarePhase::evaluate;
      row.values.push_back(task.score(*model));
      if (!options.json) {
        std::fprintf(stderr, "programming %d/%d, t = %g s: %s %.4f\n", p + 1, options.repeats, row.time_s,
                     task.metric.c_str(), row.values.back());
      }
    }
  }
  for (EvalRow& row : report.rows) {
    const double n = static_cast<double>(row.values.size());
    double sum = 0;
    for (double v : row.values) sum += v;
    row.mean = sum / n;
    double squares = 0;
    for (double v : row.values) squares += (v - row.mean) * (v - row.mean);
    row.std = row.values.size() > 1 ? std::sqrt(squares / (n - 1)) : 0.0;
  }
  return report;
}

std::string eval_table(const EvalOptions& options, const EvalReport& report) {
  std::string text = fmt::format("xbar eval: {} on {}, {} programming(s){}\n", options.checkpoint.string(),
                                 options.card.string(), options.repeats,
                                 options.calibrate_columns > 0
                                     ? fmt::format(", column calibration on {} held-out images", options.calibrate_columns)
                                     : std::string());
  text += fmt::format("{:>12}  {:>13}  {:>9}\n", "time_s", report.metric + "_mean", "std");
  for (const EvalRow& row : report.rows) text += fmt::format("{:>12g}  {:>13.4f}  {:>9.4f}\n", row.time_s, row.mean, row.std);
  return text;
}

std::string eval_json(const EvalOptions& options, const EvalReport& report) {
  std::string text = "[";
  for (std::size_t i = 0; i < report.rows.size(); ++i) {
    const EvalRow& row = report.rows[i];
    text += fmt::format("{}{{\"time_s\": {}, \"mean\": {}, \"std\": {}, \"repeats\": {}, \"metric\": \"{}\"}}",
                        i ? ", " : "", row.time_s, row.mean, row.std, options.repeats, report.metric);
  }
  return text + "]\n";
}

}  // namespace xbar::tools
