// `xbar train --model charlm`, `xbar eval` of a charlm run, `xbar generate`; see charlm.hpp.
#include "tools/charlm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "core/error.hpp"
#include "core/random.hpp"
#include "models/brown.hpp"
#include "models/charlm.hpp"
#include "tools/progress.hpp"
#include "tools/run_support.hpp"
#include "training/analog.hpp"
#include "training/checkpoint.hpp"
#include "training/network.hpp"
#include "training/trainer.hpp"
#include "training/transformer.hpp"

namespace xbar::tools {
namespace {

using core::UserError;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kDefaultSteps = 2000;
constexpr double kLrDecaySteps = 1000;  // --lr-decay is the step-size factor per this many steps
constexpr std::int64_t kDefaultValidationLimit = 16384;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Reserved HardwareContext::step of the validation pass at global step `step`: distinct from every
// training step (< 2^61) and from the classification test keys (training::test_step_key).
std::uint64_t validation_step_key(std::uint64_t step) { return (std::uint64_t{3} << 61) | step; }

void require_brown(const std::string& data) {
  if (data != models::kBrownData) {
    throw UserError(fmt::format("--data {}: --model charlm trains on the Brown corpus (--data {})", data,
                                models::kBrownData));
  }
}

void check_shape(const training::CharTransformerConfig& shape) {
  auto positive = [](const char* option, int value) {
    if (value < 1) throw UserError(fmt::format("{} = {}: must be >= 1", option, value));
  };
  positive("--context", shape.context);
  positive("--width", shape.width);
  positive("--heads", shape.heads);
  positive("--layers", shape.layers);
  if (shape.width % shape.heads != 0) {
    throw UserError(fmt::format("--width = {} must be divisible by --heads = {} (each head gets width / heads)",
                                shape.width, shape.heads));
  }
}

models::BrownCorpus load_corpus(std::uint64_t split_seed) {
  return models::load_brown(models::default_brown_dir(), split_seed);
}

std::string shape_text(const training::CharTransformerConfig& m) {
  return fmt::format("context {}, width {}, {} heads, {} layers", m.context, m.width, m.heads, m.layers);
}

std::size_t parameter_count(training::Layer& model) {
  std::size_t n = 0;
  for (const Eigen::MatrixXd* p : model.parameters()) n += static_cast<std::size_t>(p->size());
  return n;
}

std::string summary_text(const training::RunConfig& config, const models::CharLmRun& run, std::size_t parameters,
                         std::uint64_t global_step, const std::filesystem::path& output, bool trained) {
  std::string text = fmt::format(
      "xbar train: charlm ({}; {} parameters) on {} with method {}, seed {}, batch {} x {} characters, {} lr {}{}\n",
      shape_text(run.model), parameters, config.data, method_text(config), config.seed, config.batch,
      run.model.context, config.optimizer, config.learning_rate,
      config.lr_decay != 1.0 ? fmt::format(" × {}^(step/{})", config.lr_decay, kLrDecaySteps) : "");
  if (!config.init_checkpoint.empty()) text += fmt::format("started from the weights of {}\n", config.init_checkpoint);
  text += "   step  train_loss  val_loss  val_bits/char  wall_s  s_per_step  peak_memory\n";
  double train_time = 0;
  std::int64_t previous = 0, counted = 0;
  for (const models::CharLmMetrics& m : run.history) {
    text += fmt::format("{:7d}  {:10.4f}  {:8.4f}  {:13.4f}  {:6.1f}  {:10.4f}  {}\n", m.step, m.train_loss,
                        m.validation_loss, m.validation_bits_per_char, m.wall_time_s, m.train_time_per_step_s,
                        megabytes(m.peak_resident_memory_bytes));
    train_time += m.train_time_per_step_s * static_cast<double>(m.step - previous);
    counted += m.step - previous;
    previous = m.step;
  }
  if (!run.history.empty()) {
    const models::CharLmMetrics& last = run.history.back();
    text += fmt::format(
        "final: step {}, train loss {:.4f}, validation loss {:.4f} nats per character ({:.4f} bits per character, "
        "perplexity {:.3f}); {:.4f} s per training step; peak resident memory {}\n",
        last.step, last.train_loss, last.validation_loss, last.validation_bits_per_char,
        std::exp(last.validation_loss), counted > 0 ? train_time / static_cast<double>(counted) : 0.0,
        megabytes(last.peak_resident_memory_bytes));
  }
  if (!trained) text += fmt::format("nothing to train: the run has {} steps\n", global_step);
  text += fmt::format("checkpoint: {}\n", output.string());
  return text;
}

}  // namespace

bool is_charlm_checkpoint(const std::filesystem::path& file) { return models::is_char_lm_checkpoint(file); }

// ---------------------------------------------------------------------------------------------
// train

std::string charlm_train_command(const TrainOptions& options, const CharLmTrainOptions& lm) {
  if (lm.epochs_given)
    throw UserError("--epochs: a charlm run counts optimiser steps; use --steps N (the total steps of the run)");
  if (options.train_limit)
    throw UserError("--train-limit: applies to mlp and lenet; a charlm run samples windows of the whole training split");
  if (options.test_limit != 0)
    throw UserError("--test-limit: applies to mlp and lenet; a charlm run scores --validation-limit characters of "
                    "the validation split at each checkpoint");
  if (options.augment)
    throw UserError("--augment: applies to the images of mlp and lenet, not to a charlm run");

  training::RunConfig config;
  training::RunProgress progress;
  models::CharLmRun run;
  std::optional<training::Checkpoint> checkpoint;
  const std::optional<training::Checkpoint> pretrained = read_init_checkpoint(options.init, options.resume);
  core::Card card;
  if (!options.resume.empty()) {
    const auto& file = options.resume;
    checkpoint = training::read_checkpoint(file);
    config = checkpoint->config;
    if (config.model != models::kCharLmModel) {
      throw UserError(fmt::format("--resume {}: the run is a {} run, not charlm", file.string(), config.model));
    }
    run = models::read_char_lm_section(file);
    require_same("--method", options.method, config.method, file);
    require_same("--ste-backward", options.ste_backward, config.ste_backward, file);
    require_same("--batch", options.batch, config.batch, file);
    require_same("--lr", options.learning_rate, config.learning_rate, file);
    require_same("--lr-decay", options.lr_decay, config.lr_decay, file);
    require_same("--optimizer", options.optimizer, config.optimizer, file);
    require_same("--seed", options.seed, config.seed, file);
    require_same("--train-read-time", options.train_read_time_s, config.train_read_time_s, file);
    require_same("--train-calibrate-columns", options.train_column_calibration, config.train_column_calibration, file);
    require_same("--train-calibrate-fraction", options.train_calibration_fraction, config.train_calibration_fraction,
                 file);
    require_same("--train-calibrate-onto", options.train_calibration_target, config.train_calibration_target, file);
    require_same("--data", options.data, config.data, file);
    require_same("--context", lm.context, run.model.context, file);
    require_same("--width", lm.width, run.model.width, file);
    require_same("--heads", lm.heads, run.model.heads, file);
    require_same("--layers", lm.layers, run.model.layers, file);
    require_same("--validation-limit", lm.validation_limit, run.validation_limit, file);
    card = resumed_run_card(config, options.card, options.overrides, options.seed, file);
    progress = checkpoint->progress;
    if (lm.steps) run.steps = *lm.steps;
  } else {
    if (options.card.empty()) throw UserError("--card is required");
    card = load_card_with_seed(options.card, options.overrides, options.seed);
    config.model = models::kCharLmModel;
    config.data = options.data.value_or(models::kBrownData);
    config.method = options.method.value_or("ideal");
    config.ste_backward = options.ste_backward.value_or("effective");
    config.card_yaml = card.effective_yaml;
    config.card_path = options.card.string();
    config.seed = card.seed;
    config.batch = options.batch.value_or(kCharLmDefaultBatch);
    config.learning_rate = options.learning_rate.value_or(1e-3);
    config.lr_decay = options.lr_decay.value_or(1.0);
    config.optimizer = options.optimizer.value_or("adam");
    config.train_limit = 0;
    config.train_read_time_s = options.train_read_time_s.value_or(0.0);
    config.train_column_calibration = options.train_column_calibration.value_or(false);
    config.train_calibration_fraction = options.train_calibration_fraction.value_or(1.0);
    config.train_calibration_target = options.train_calibration_target.value_or("ideal");
    if (pretrained) {
      // The network of the run it starts from: its shape, and the split whose test documents
      // it never saw.
      const auto& file = options.init;
      if (pretrained->config.model != models::kCharLmModel) {
        throw UserError(
            fmt::format("--init {}: the run is a {} run, not charlm", file.string(), pretrained->config.model));
      }
      const models::CharLmRun pretrained_run = models::read_char_lm_section(file);
      require_init_same("--context", lm.context, pretrained_run.model.context, file);
      require_init_same("--width", lm.width, pretrained_run.model.width, file);
      require_init_same("--heads", lm.heads, pretrained_run.model.heads, file);
      require_init_same("--layers", lm.layers, pretrained_run.model.layers, file);
      run.model = pretrained_run.model;
      run.split_seed = pretrained_run.split_seed;
      config.init_checkpoint = file.string();
    } else {
      run.model.vocab_size = models::CharVocabulary::size;
      run.model.context = lm.context.value_or(run.model.context);
      run.model.width = lm.width.value_or(run.model.width);
      run.model.heads = lm.heads.value_or(run.model.heads);
      run.model.layers = lm.layers.value_or(run.model.layers);
      run.split_seed = models::kBrownSplitSeed;
    }
    run.steps = lm.steps.value_or(kDefaultSteps);
    run.validation_limit = lm.validation_limit.value_or(kDefaultValidationLimit);
  }
  require_brown(config.data);
  check_shape(run.model);
  if (run.steps < 1) throw UserError(fmt::format("--steps = {}: must be >= 1", run.steps));
  if (run.validation_limit < 0)
    throw UserError(fmt::format("--validation-limit = {}: must be >= 0 characters (0 = all)", run.validation_limit));
  const training::TrainerOptions trainer_options = checked_trainer_options(config);
  const std::filesystem::path output = checkpoint_output(options.output, options.resume);

  const models::BrownCorpus corpus = load_corpus(run.split_seed);
  const models::RandomWindowSampler sampler(corpus.train.ids, run.model.context, config.batch, config.seed);
  const models::SequentialWindows validation(corpus.validation.ids, run.model.context, config.batch,
                                             static_cast<std::size_t>(run.validation_limit));

  const std::unique_ptr<training::LayerFactory> factory = make_factory(card, config);
  core::RandomStream init = model_init_stream(config.seed);
  training::CharTransformer model(run.model, *factory, init);
  training::Trainer trainer(model, factory->context(), trainer_options);
  if (checkpoint) {
    training::load_model(*checkpoint, model);
    trainer.set_optimizer_state(checkpoint->optimizer, options.resume.string());
    trainer.set_global_step(progress.global_step);
  } else if (pretrained) {
    training::load_model(*pretrained, model);
  }
  const std::shared_ptr<training::HardwareContext> context = factory->context();
  auto save = [&] {
    progress.global_step = trainer.global_step();
    training::save_checkpoint(output, config, progress, model, trainer.optimizer_state(),
                              [&](core::TraceWriter& out) { models::write_char_lm_section(out, run); });
  };

  const std::uint64_t first = trainer.global_step();
  const std::uint64_t last = static_cast<std::uint64_t>(run.steps);
  const std::uint64_t interval = std::max<std::uint64_t>(1, (last + 9) / 10);
  ProgressDisplay display;
  const std::string title = fmt::format("charlm {}", config.method);
  if (first < last) display.start(title, last - first);
  auto interval_start = Clock::now();
  double loss_sum = 0, train_seconds = 0;
  std::uint64_t steps_in_interval = 0;
  for (std::uint64_t step = first; step < last; ++step) {
    const auto step_start = Clock::now();
    // Step s (0-based) uses lr · decay^(s / 1000): a function of the step alone, so resuming
    // continues the same schedule.
    trainer.set_learning_rate(config.learning_rate *
                              std::pow(config.lr_decay, static_cast<double>(step) / kLrDecaySteps));
    const models::TokenBatch batch = sampler.batch(step);
    const training::Trainer::StepResult result = trainer.train_step(models::token_matrix(batch), batch.targets);
    train_seconds += seconds_since(step_start);
    loss_sum += result.loss;
    ++steps_in_interval;
    // A bar on a terminal; in a log the checkpoint lines (every tenth of the run) are the progress.
    if (display.terminal())
      display.update(step + 1 - first, fmt::format("loss {:.4f}", loss_sum / static_cast<double>(steps_in_interval)));
    const std::uint64_t done = step + 1;
    if (done % interval != 0 && done != last) continue;

    // Validation in training mode on the hardware of a reserved step; the buffers (refreshed by
    // every training-mode forward) are restored, so validating never changes the run.
    const std::vector<Eigen::MatrixXd> buffers = copy_buffers(model);
    if (context) {
      context->phase = training::HardwarePhase::train;
      context->step = validation_step_key(done);
    }
    const models::TextScore score = models::score_text(model, validation);
    restore_buffers(model, buffers);

    models::CharLmMetrics m;
    m.step = static_cast<std::int64_t>(done);
    m.train_loss = loss_sum / static_cast<double>(steps_in_interval);
    m.validation_loss = score.nats_per_char;
    m.validation_bits_per_char = score.bits_per_char();
    m.train_time_per_step_s = train_seconds / static_cast<double>(steps_in_interval);
    m.peak_resident_memory_bytes = training::peak_resident_memory_bytes();
    m.wall_time_s = seconds_since(interval_start);
    run.history.push_back(m);
    save();
    display.print_line(fmt::format(
        "step {}/{}: train loss {:.4f}, validation loss {:.4f} ({:.3f} bits/char), {:.1f} s ({:.4f} s per training "
        "step), peak memory {}",
        done, last, m.train_loss, m.validation_loss, m.validation_bits_per_char, m.wall_time_s,
        m.train_time_per_step_s, megabytes(m.peak_resident_memory_bytes)));
    interval_start = Clock::now();
    loss_sum = train_seconds = 0;
    steps_in_interval = 0;
  }
  const bool trained = first < last;
  if (!trained && output != options.resume) save();
  return summary_text(config, run, parameter_count(model), trainer.global_step(), output, trained);
}

// ---------------------------------------------------------------------------------------------
// eval and generate

namespace {

// A charlm checkpoint rebuilt for evaluation: the network on the card's analog layers (every
// evaluation phase runs the full tile simulation), or its digital function.
struct LoadedCharLm {
  training::Checkpoint checkpoint;
  models::CharLmRun run;
  std::unique_ptr<training::LayerFactory> factory;
  std::unique_ptr<training::CharTransformer> model;
  std::shared_ptr<training::HardwareContext> context;  // nullptr for a digital ideal run
};

LoadedCharLm load_charlm(const std::filesystem::path& file, const core::Card& card, bool digital) {
  LoadedCharLm loaded;
  loaded.checkpoint = training::read_checkpoint(file);
  if (loaded.checkpoint.config.model != models::kCharLmModel) {
    throw UserError(fmt::format("--checkpoint {}: a {} run, not charlm", file.string(), loaded.checkpoint.config.model));
  }
  loaded.run = models::read_char_lm_section(file);
  const bool has_buffers = !loaded.checkpoint.buffers.empty();
  if (digital && !has_buffers) {
    // An ideal run: plain digital layers, exactly the trained function.
    loaded.factory = std::make_unique<training::DigitalLayerFactory>();
  } else {
    // Hardware evaluation, or the digital function of an analog run: the ideal forward of its
    // analog layers (method ideal), W_c x with the run's weight clips, in the training phase.
    loaded.factory = make_evaluation_factory(card, loaded.checkpoint.config);
  }
  loaded.context = loaded.factory->context();
  core::RandomStream init = model_init_stream(loaded.checkpoint.config.seed);
  loaded.model = std::make_unique<training::CharTransformer>(loaded.run.model, *loaded.factory, init);
  training::load_model(loaded.checkpoint, *loaded.model);
  if (digital && loaded.context) {
    loaded.context->phase = training::HardwarePhase::train;
    loaded.context->step = validation_step_key(0);
  }
  return loaded;
}

// The last `count` windows of `context` characters of the training split: held-out inputs for
// ADC range and column calibration, the same for every programming.
std::vector<std::uint8_t> heldout_tail(const models::BrownCorpus& corpus, int count, int context) {
  const std::size_t need = static_cast<std::size_t>(count) * static_cast<std::size_t>(context) + 1;
  const auto& ids = corpus.train.ids;
  if (ids.size() < need) {
    throw UserError(fmt::format("the training split of the Brown corpus has {} characters; calibration needs {} "
                                "windows of {} (adc.calibration_inputs, --calibrate-columns)",
                                ids.size(), count, context));
  }
  return {ids.end() - static_cast<std::ptrdiff_t>(need), ids.end()};
}

Eigen::MatrixXd heldout_windows(const std::vector<std::uint8_t>& tail, int count, int context) {
  const models::SequentialWindows windows(tail, context, count, 0);
  return models::token_matrix(windows.batch(0)).leftCols(count);
}

void mean_and_std(const std::vector<double>& values, double& mean, double& std) {
  const double n = static_cast<double>(values.size());
  double sum = 0;
  for (double v : values) sum += v;
  mean = sum / n;
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  std = values.size() > 1 ? std::sqrt(squares / (n - 1)) : 0.0;
}

}  // namespace

CharLmEvalReport evaluate_charlm_checkpoint(const EvalOptions& options, const CharLmEvalOptions& lm) {
  if (options.repeats < 1) throw UserError(fmt::format("--repeats = {}: must be >= 1", options.repeats));
  if (options.calibrate_columns < 0)
    throw UserError(fmt::format("--calibrate-columns = {}: must be >= 0", options.calibrate_columns));
  const int batch = lm.batch.value_or(32);
  if (batch < 1) throw UserError(fmt::format("--batch = {}: must be >= 1 windows per forward", batch));
  if (options.times_s.empty()) throw UserError("--times: expected at least one time");
  const core::Card card = load_card_with_seed(options.card, options.overrides, options.seed);
  LoadedCharLm loaded = load_charlm(options.checkpoint, card, lm.digital);
  const int context = loaded.run.model.context;
  const models::BrownCorpus corpus = load_corpus(loaded.run.split_seed);
  const int stride = lm.stride.value_or(context);
  if (stride < 1 || stride > context) {
    throw UserError(fmt::format("--stride = {}: must be in [1, {}] (the run's context) characters", stride, context));
  }
  const models::SequentialWindows test(corpus.test.ids, context, batch, options.test_limit, stride);
  training::CharTransformer& model = *loaded.model;

  CharLmEvalReport report;
  report.characters = test.characters();
  report.stride = stride;
  report.digital = lm.digital;
  auto finish = [&](CharLmEvalRow& row) {
    mean_and_std(row.perplexity, row.perplexity_mean, row.perplexity_std);
    mean_and_std(row.bits_per_char, row.bits_per_char_mean, row.bits_per_char_std);
  };
  if (lm.digital) {
    const models::TextScore score = models::score_text(model, test);
    CharLmEvalRow row;
    row.perplexity.push_back(score.perplexity());
    row.bits_per_char.push_back(score.bits_per_char());
    finish(row);
    report.rows.push_back(row);
    return report;
  }

  const int adc_count = card.adc.calibration_inputs;
  const int heldout_count = std::max(adc_count, options.calibrate_columns);
  const std::vector<std::uint8_t> tail = heldout_tail(corpus, heldout_count, context);
  const Eigen::MatrixXd adc_inputs = heldout_windows(tail, heldout_count, context).rightCols(adc_count);
  const Eigen::MatrixXd column_inputs =
      heldout_windows(tail, heldout_count, context).rightCols(options.calibrate_columns);

  training::HardwareContext& ctx = *loaded.context;
  for (double t : options.times_s) report.rows.push_back({t, 0, 0, 0, 0, {}, {}});
  for (int p = 0; p < options.repeats; ++p) {
    ctx.programming = static_cast<std::uint64_t>(p);
    ctx.column_calibration = false;
    ctx.read_time_s = 0;
    ctx.phase = training::HardwarePhase::calibrate_adc;
    model.forward(adc_inputs);
    for (CharLmEvalRow& row : report.rows) {
      ctx.read_time_s = row.time_s;
      ctx.column_calibration = false;
      if (options.calibrate_columns > 0) {
        ctx.phase = training::HardwarePhase::calibrate_columns;
        model.forward(column_inputs);
        ctx.column_calibration = true;
      }
      ctx.phase = training::HardwarePhase::evaluate;
      const models::TextScore score = models::score_text(model, test);
      row.perplexity.push_back(score.perplexity());
      row.bits_per_char.push_back(score.bits_per_char());
      if (!options.json) {
        std::fprintf(stderr, "programming %d/%d, t = %g s: perplexity %.4f (%.4f bits/char)\n", p + 1, options.repeats,
                     row.time_s, score.perplexity(), score.bits_per_char());
      }
    }
  }
  for (CharLmEvalRow& row : report.rows) finish(row);
  return report;
}

std::string charlm_eval_table(const EvalOptions& options, const CharLmEvalReport& report) {
  std::string text =
      report.digital
          ? fmt::format("xbar eval: {} digitally (no hardware), {} test characters, a window every {}\n",
                        options.checkpoint.string(), report.characters, report.stride)
          : fmt::format("xbar eval: {} on {}, {} programming(s), {} test characters, a window every {}{}\n",
                        options.checkpoint.string(), options.card.string(), options.repeats, report.characters,
                        report.stride,
                        options.calibrate_columns > 0
                            ? fmt::format(", column calibration on {} held-out windows", options.calibrate_columns)
                            : std::string());
  text += fmt::format("{:>12}  {:>15}  {:>9}  {:>18}  {:>9}\n", "time_s", "perplexity_mean", "std",
                      "bits_per_char_mean", "std");
  for (const CharLmEvalRow& row : report.rows) {
    text += fmt::format("{:>12g}  {:>15.4f}  {:>9.4f}  {:>18.4f}  {:>9.4f}\n", row.time_s, row.perplexity_mean,
                        row.perplexity_std, row.bits_per_char_mean, row.bits_per_char_std);
  }
  return text;
}

std::string charlm_eval_json(const EvalOptions& options, const CharLmEvalReport& report) {
  std::string text = "[";
  for (std::size_t i = 0; i < report.rows.size(); ++i) {
    const CharLmEvalRow& row = report.rows[i];
    text += fmt::format(
        "{}{{\"time_s\": {}, \"mean\": {}, \"std\": {}, \"repeats\": {}, \"metric\": \"perplexity\", "
        "\"bits_per_char_mean\": {}, \"bits_per_char_std\": {}, \"characters\": {}, \"stride\": {}, "
        "\"digital\": {}}}",
        i ? ", " : "", row.time_s, row.perplexity_mean, row.perplexity_std, row.perplexity.size(),
        row.bits_per_char_mean, row.bits_per_char_std, report.characters, report.stride,
        report.digital ? "true" : "false");
  }
  return text + "]\n";
}

std::string generate_command(const GenerateOptions& options) {
  if (options.length < 0) throw UserError(fmt::format("--length = {}: must be >= 0 characters", options.length));
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature))
    throw UserError(fmt::format("--temperature = {}: must be >= 0 (0 = always the likeliest character)",
                                options.temperature));
  if (!(options.time_s >= 0) || !std::isfinite(options.time_s))
    throw UserError(fmt::format("--time = {}: must be >= 0 s after programming", options.time_s));
  if (options.prompt.empty()) throw UserError("--prompt: must hold at least one character");
  std::vector<int> prompt_ids;
  for (char c : options.prompt) {
    const int id = models::CharVocabulary::id(c);
    if (id == models::CharVocabulary::dropped) {
      throw UserError(fmt::format("--prompt: character {:#04x} is not in the model's vocabulary (newline and printable "
                                  "ASCII)",
                                  static_cast<unsigned>(static_cast<unsigned char>(c))));
    }
    prompt_ids.push_back(id);
  }
  const core::Card card = load_card_with_seed(options.card, options.overrides, std::nullopt);
  LoadedCharLm loaded = load_charlm(options.checkpoint, card, options.digital);
  const int context = loaded.run.model.context;
  if (!options.digital) {
    // Program once (programming `seed`), set the ADC ranges from held-out training windows, read at
    // the chosen time: every forward below reads the same programmed conductances.
    const models::BrownCorpus corpus = load_corpus(loaded.run.split_seed);
    const int count = card.adc.calibration_inputs;
    const Eigen::MatrixXd adc_inputs = heldout_windows(heldout_tail(corpus, count, context), count, context);
    training::HardwareContext& ctx = *loaded.context;
    ctx.programming = options.seed;
    ctx.column_calibration = false;
    ctx.read_time_s = 0;
    ctx.phase = training::HardwarePhase::calibrate_adc;
    loaded.model->forward(adc_inputs);
    ctx.read_time_s = options.time_s;
    ctx.phase = training::HardwarePhase::evaluate;
  }
  core::RandomStream rng(options.seed, "charlm_sampling");
  const std::vector<int> generated =
      models::generate_ids(*loaded.model, context, prompt_ids, options.length, options.temperature, rng);
  return options.prompt + models::CharVocabulary::decode(generated);
}

}  // namespace xbar::tools
