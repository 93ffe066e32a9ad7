// The character language model on the command line: `xbar train --model charlm`, `xbar eval` of
// a charlm checkpoint (perplexity and bits per character over read times), and `xbar generate`
// (text sampled with the forward pass on simulated hardware).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tools/train.hpp"

namespace xbar::tools {

// What `xbar train --model charlm` takes beyond TrainOptions. Shape options define the run: a
// resumed run keeps them (a different value is a UserError naming both).
struct CharLmTrainOptions {
  std::optional<std::int64_t> steps;             // optimiser steps the run trains to (default 2000)
  std::optional<int> context;                    // longest sequence T, characters (default 64)
  std::optional<int> width;                      // model width d (default 128)
  std::optional<int> heads;                      // attention heads (default 4; d divisible by it)
  std::optional<int> layers;                     // transformer blocks (default 2)
  std::optional<std::int64_t> validation_limit;  // validation characters per checkpoint (default 16384; 0 = all)
  bool epochs_given = false;                     // --epochs was given (an error: charlm counts steps)
};

// Default mini-batch of a charlm run: sequences of `context` characters per step.
inline constexpr int kCharLmDefaultBatch = 32;

// Trains the character language model on the Brown corpus (TrainOptions: card, method,
// ste_backward, batch (sequences), learning_rate, optimizer, seed, train_read_time_s, output,
// resume, overrides; epochs, train_limit, test_limit and lr_decay are for mlp / lenet and are
// user errors here). Writes the checkpoint every ceil(steps / 10) steps and at the end, with the
// validation loss at that step. Progress on stderr. Returns the summary. Throws core::UserError.
std::string charlm_train_command(const TrainOptions& options, const CharLmTrainOptions& lm);

// Whether `file` holds a charlm run (so `xbar train --resume` and `xbar eval` dispatch here).
bool is_charlm_checkpoint(const std::filesystem::path& file);

// What `xbar eval` of a charlm checkpoint takes beyond EvalOptions (whose test_limit counts test
// characters, calibrate_columns held-out training windows; batch is replaced by `batch` here).
struct CharLmEvalOptions {
  std::optional<int> batch;  // windows of `context` characters per forward (default 32)
  // A window every `stride` characters, scoring only the characters the previous one did not
  // (models::SequentialWindows); default: the context (non-overlapping windows).
  std::optional<int> stride;
  bool digital = false;      // score the network's digital function instead (no hardware; one row)
};

struct CharLmEvalRow {
  double time_s = 0;
  double perplexity_mean = 0, perplexity_std = 0;        // over programmings (std: n − 1; 0 for one)
  double bits_per_char_mean = 0, bits_per_char_std = 0;
  std::vector<double> perplexity, bits_per_char;          // one per programming
};

struct CharLmEvalReport {
  std::size_t characters = 0;  // test characters scored
  int stride = 0;              // characters between window starts
  bool digital = false;
  std::vector<CharLmEvalRow> rows;
};

// For each programming p of `repeats`: program, calibrate the ADC ranges with one forward of the
// card's adc.calibration_inputs held-out training windows at t = 0, then at every read time
// (optionally after column calibration) score the test split. With `digital`, one row (time 0)
// of the network's digital function: W x for an ideal run, the clipped weights W_c x of an analog
// run. Throws core::UserError.
CharLmEvalReport evaluate_charlm_checkpoint(const EvalOptions& options, const CharLmEvalOptions& lm);
std::string charlm_eval_table(const EvalOptions& options, const CharLmEvalReport& report);
// [{"time_s", "mean", "std", "repeats", "metric": "perplexity", "bits_per_char_mean",
//   "bits_per_char_std", "characters"}, ...]: mean and std are the perplexity's.
std::string charlm_eval_json(const EvalOptions& options, const CharLmEvalReport& report);

// `xbar generate`.
struct GenerateOptions {
  std::filesystem::path card;          // hardware to generate on
  std::vector<std::string> overrides;  // --set key=value on the card
  std::filesystem::path checkpoint;    // a charlm run
  std::string prompt = "The jury said";
  int length = 300;                    // characters generated after the prompt
  double temperature = 1.0;            // logits are divided by it; 0 = always the likeliest character
  std::uint64_t seed = 0;              // the programming of the hardware and the sampling stream
  double time_s = 0;                   // read time after programming (s)
  bool digital = false;                // the network's digital function instead of the hardware
};

// Programs the checkpoint's weights once (programming `seed` of the card), calibrates the ADC
// ranges on held-out training windows, reads at `time_s` and samples `length` characters
// autoregressively. Returns the prompt followed by the generated text. Throws core::UserError
// (e.g. a prompt character outside the vocabulary).
std::string generate_command(const GenerateOptions& options);

}  // namespace xbar::tools
