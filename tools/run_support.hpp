// What `xbar train`, `xbar eval` and `xbar generate` share whatever the model (the image
// classifiers of tools/train.cpp, the character model of tools/charlm.cpp): cards with a seed,
// the card and configuration checks of a resumed run, the layer factories of training and
// evaluation, the initial-weight stream, buffer snapshots, output checks and formatting.
#pragma once

#include <Eigen/Dense>
#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/card.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "training/analog.hpp"
#include "training/checkpoint.hpp"
#include "training/layers.hpp"
#include "training/network.hpp"
#include "training/trainer.hpp"

namespace xbar::tools {

// The card with --set overrides and, when given, --seed.
core::Card load_card_with_seed(const std::filesystem::path& file, const std::vector<std::string>& overrides,
                               const std::optional<std::uint64_t>& seed);

// The card of a run resumed from `file`: the one stored in its checkpoint. A --card given must
// give the same effective card; --set without --card is a UserError.
core::Card resumed_run_card(const training::RunConfig& config, const std::filesystem::path& card,
                            const std::vector<std::string>& overrides, const std::optional<std::uint64_t>& seed,
                            const std::filesystem::path& file);

// The factory a run trains with: digital layers for ideal, the card's analog layers otherwise.
std::unique_ptr<training::LayerFactory> make_factory(const core::Card& card, const training::RunConfig& config);

// The factory a trained run is evaluated with: the card's analog layers, whose evaluation phases
// simulate the tiles whatever the run's method was (method ideal, so that no training-only check
// applies), with the column-calibration target of the run's method.
std::unique_ptr<training::AnalogLayerFactory> make_evaluation_factory(const core::Card& card,
                                                                      const training::RunConfig& config);

// The stream the model's initial weights are drawn from (the same for every factory).
inline core::RandomStream model_init_stream(std::uint64_t seed) { return core::RandomStream(seed, "model_init"); }

// Copies of a model's buffers, and their restoration (e.g. around a scoring pass in training mode,
// which refreshes the analog layers' input scales).
std::vector<Eigen::MatrixXd> copy_buffers(training::Layer& model);
void restore_buffers(training::Layer& model, const std::vector<Eigen::MatrixXd>& copies);

// Throws a UserError naming -o when the folder of `output` does not exist.
void require_writable_folder(const std::filesystem::path& output);

// The checks every model's run configuration shares (--method, --ste-backward, --train-read-time,
// --lr-decay, --train-calibrate-columns, --train-calibrate-fraction, --train-calibrate-onto) and
// the optimiser settings it gives the trainer (checked too); UserError naming the option.
training::TrainerOptions checked_trainer_options(const training::RunConfig& config);

// The method as the summaries name it: "nat", "ste (backward effective)", "ste (backward
// effective, columns calibrated in training)", "ste (backward effective, columns calibrated in a
// fraction 0.5 of the training steps)".
std::string method_text(const training::RunConfig& config);

// Where `xbar train` writes its checkpoint: -o, or else the run being resumed; a UserError when
// neither is given or the folder does not exist.
std::filesystem::path checkpoint_output(const std::filesystem::path& output, const std::filesystem::path& resume);

// The run a fresh run starts from (--init FILE; std::nullopt when `init` is empty): its
// parameters and buffers become the new run's initial weights, while the method, optimiser, step
// size and step count start afresh (fine-tuning a pretrained network on the hardware). A UserError
// when `resume` is also given. The caller checks the run's model and shape.
std::optional<training::Checkpoint> read_init_checkpoint(const std::filesystem::path& init,
                                                         const std::filesystem::path& resume);

// "123 MB".
std::string megabytes(double bytes);

template <class T>
std::string show_option_value(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return value;
  } else {
    return fmt::format("{}", value);
  }
}

// A resumed run keeps its configuration: an option given with another value is a mistake.
template <class T>
void require_same(const char* option, const std::optional<T>& given, const T& saved, const std::filesystem::path& file) {
  if (given && *given != saved) {
    throw core::UserError(fmt::format("{} {} conflicts with the run being resumed ({} was trained with {} {}); a "
                                      "resumed run keeps its configuration",
                                      option, show_option_value(*given), file.string(), option,
                                      show_option_value(saved)));
  }
}

// A run started from another's weights (--init) has that run's network: an option that shapes
// the network given with another value is a mistake.
template <class T>
void require_init_same(const char* option, const std::optional<T>& given, const T& saved,
                       const std::filesystem::path& file) {
  if (given && *given != saved) {
    throw core::UserError(fmt::format("{} {} conflicts with --init {}, a run with {} {}: the new run starts from its "
                                      "weights, so its network must be the same",
                                      option, show_option_value(*given), file.string(), option,
                                      show_option_value(saved)));
  }
}

}  // namespace xbar::tools
