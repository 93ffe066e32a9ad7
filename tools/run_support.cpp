// Shared parts of the training commands; see run_support.hpp.
#include "tools/run_support.hpp"

#include "devices/registry.hpp"
#include "tools/simulate.hpp"

namespace xbar::tools {

core::Card load_card_with_seed(const std::filesystem::path& file, const std::vector<std::string>& overrides,
                               const std::optional<std::uint64_t>& seed) {
  return load_card_for_cli(file, overrides, seed ? std::to_string(*seed) : std::string());
}

core::Card resumed_run_card(const training::RunConfig& config, const std::filesystem::path& card,
                            const std::vector<std::string>& overrides, const std::optional<std::uint64_t>& seed,
                            const std::filesystem::path& file) {
  const auto& registry = devices::builtin_devices();
  core::Card stored =
      core::load_card_text(config.card_yaml, config.card_path, {}, registry.param_lookup(), registry.names());
  if (!card.empty()) {
    const core::Card given = load_card_with_seed(card, overrides, seed);
    if (given.effective_yaml != config.card_yaml) {
      throw core::UserError(fmt::format("--card {} differs from the card the run in {} was trained with ({}); a "
                                        "resumed run keeps its card (omit --card)",
                                        card.string(), file.string(), config.card_path));
    }
  } else if (!overrides.empty()) {
    throw core::UserError("--set needs --card; a resumed run keeps the card stored in its checkpoint");
  }
  return stored;
}

std::unique_ptr<training::LayerFactory> make_factory(const core::Card& card, const training::RunConfig& config) {
  const training::TrainingMethod method = training::parse_training_method(config.method);
  if (method == training::TrainingMethod::ideal) return std::make_unique<training::DigitalLayerFactory>();
  training::AnalogOptions options;
  options.method = method;
  options.ste_backward = training::parse_ste_backward(config.ste_backward);
  options.train_read_time_s = config.train_read_time_s;
  options.train_column_calibration = config.train_column_calibration;
  options.train_calibration_fraction = config.train_calibration_fraction;
  options.train_calibration_target = training::parse_calibration_target(config.train_calibration_target);
  return std::make_unique<training::AnalogLayerFactory>(card, devices::builtin_devices(), options);
}

std::unique_ptr<training::AnalogLayerFactory> make_evaluation_factory(const core::Card& card,
                                                                      const training::RunConfig& config) {
  training::AnalogOptions analog;
  analog.method = training::TrainingMethod::ideal;
  analog.train_read_time_s = config.train_read_time_s;
  analog.calibration_target =
      training::calibration_target_for(training::parse_training_method(config.method), config.train_column_calibration,
                                       training::parse_calibration_target(config.train_calibration_target));
  return std::make_unique<training::AnalogLayerFactory>(card, devices::builtin_devices(), analog);
}

std::vector<Eigen::MatrixXd> copy_buffers(training::Layer& model) {
  std::vector<Eigen::MatrixXd> copies;
  for (Eigen::MatrixXd* b : model.buffers()) copies.push_back(*b);
  return copies;
}

void restore_buffers(training::Layer& model, const std::vector<Eigen::MatrixXd>& copies) {
  const std::vector<Eigen::MatrixXd*> buffers = model.buffers();
  for (std::size_t i = 0; i < buffers.size(); ++i) *buffers[i] = copies[i];
}

void require_writable_folder(const std::filesystem::path& output) {
  const std::filesystem::path folder = output.has_parent_path() ? output.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(folder))
    throw core::UserError(fmt::format("-o {}: the folder {} does not exist", output.string(), folder.string()));
}

training::TrainerOptions checked_trainer_options(const training::RunConfig& config) {
  training::parse_training_method(config.method);
  training::parse_ste_backward(config.ste_backward);
  if (!(config.train_read_time_s >= 0))
    throw core::UserError(fmt::format("--train-read-time = {}: must be >= 0 s", config.train_read_time_s));
  if (!(config.lr_decay > 0 && config.lr_decay <= 1))
    throw core::UserError(fmt::format("--lr-decay = {}: must be in (0, 1]", config.lr_decay));
  if (config.train_column_calibration && config.method != "ste")
    throw core::UserError(fmt::format("--train-calibrate-columns: calibrates the hardware outputs of --method ste; "
                                      "the run's method is {}", config.method));
  if (!(config.train_calibration_fraction > 0 && config.train_calibration_fraction <= 1))
    throw core::UserError(fmt::format("--train-calibrate-fraction = {}: must be in (0, 1]",
                                      config.train_calibration_fraction));
  if (config.train_calibration_fraction != 1 && !config.train_column_calibration)
    throw core::UserError("--train-calibrate-fraction: the fraction of steps calibrated by --train-calibrate-columns; "
                          "give that too");
  if (training::parse_calibration_target(config.train_calibration_target) != training::CalibrationTarget::ideal_layer &&
      !config.train_column_calibration)
    throw core::UserError("--train-calibrate-onto: the target of --train-calibrate-columns; give that too");
  training::TrainerOptions trainer_options;
  trainer_options.batch = config.batch;
  trainer_options.learning_rate = config.learning_rate;
  trainer_options.optimizer = config.optimizer;
  trainer_options.validate();
  return trainer_options;
}

std::string method_text(const training::RunConfig& config) {
  if (config.method != "ste") return config.method;
  std::string calibration;
  if (config.train_column_calibration) {
    calibration = config.train_calibration_fraction < 1
                      ? fmt::format(", columns calibrated in a fraction {} of the training steps",
                                    config.train_calibration_fraction)
                      : ", columns calibrated in training";
    if (config.train_calibration_target == "nominal") calibration += " onto the nominal hardware";
  }
  return fmt::format("ste (backward {}{})", config.ste_backward, calibration);
}

std::filesystem::path checkpoint_output(const std::filesystem::path& output, const std::filesystem::path& resume) {
  const std::filesystem::path path = output.empty() ? resume : output;
  if (path.empty()) throw core::UserError("-o RUN.h5 is required (where the checkpoint is written)");
  require_writable_folder(path);
  return path;
}

std::optional<training::Checkpoint> read_init_checkpoint(const std::filesystem::path& init,
                                                         const std::filesystem::path& resume) {
  if (init.empty()) return std::nullopt;
  if (!resume.empty())
    throw core::UserError(fmt::format("--init {} with --resume {}: --init starts a new run from a trained one's "
                                      "weights, --resume continues a run; give one",
                                      init.string(), resume.string()));
  return training::read_checkpoint(init);
}

std::string megabytes(double bytes) { return fmt::format("{:.0f} MB", bytes / 1e6); }

}  // namespace xbar::tools
