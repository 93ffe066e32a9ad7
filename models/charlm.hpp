// The character language model as a task: its section of a training checkpoint, scoring by
// per-character cross-entropy (bits per character, perplexity), and autoregressive sampling.
// The network is training::CharTransformer; the data is the Brown corpus (models/brown.hpp).
//
// Checkpoint section (added to training/checkpoint.hpp's layout through CheckpointExtras)
// ----------------------------------------------------------------------------------------
// A charlm run counts optimiser steps, not epochs: its `epochs_completed` is 0 and it has no
// per-epoch metrics; `global_step` is the number of steps taken. It adds:
//
// | path                             | contents |
// | -------------------------------- | -------- |
// | `/charlm` attributes             | `vocabulary` (CharVocabulary::symbols(), 96 characters), `context`, `width`, `heads`, `layers`, `embedding_init_stddev` (the CharTransformerConfig), `split_seed` (of the Brown corpus split), `steps` (optimiser steps the run trains to), `validation_limit` (validation characters scored at each checkpoint, 0 = all) |
// | `/metrics/step`                  | global step of each checkpoint (1 per entry) |
// | `/metrics/train_loss`            | mean training loss of the steps since the previous checkpoint, nats per character |
// | `/metrics/validation_loss`       | loss on the validation characters at that step (the training forward of the run's method, on the hardware of a reserved step), nats per character |
// | `/metrics/validation_bits_per_char` | the same in bits per character |
// | `/metrics/wall_time_s`           | wall time since the previous checkpoint (training, validation, saving), s |
// | `/metrics/train_time_per_step_s` | wall time of the training steps alone since the previous checkpoint, per step, s |
// | `/metrics/peak_resident_memory_bytes` | the process's peak resident memory (VmHWM) at the checkpoint, B |
#pragma once

#include <Eigen/Dense>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "models/brown.hpp"
#include "training/layers.hpp"
#include "training/transformer.hpp"

namespace xbar::core {
class TraceWriter;
}

namespace xbar::models {

// The `model` name of a character language model run (xbar train --model charlm).
inline constexpr const char* kCharLmModel = "charlm";
// The `data` name of the Brown corpus.
inline constexpr const char* kBrownData = "brown";
// The corpus split every charlm run uses (stored in the checkpoint, so evaluation scores the
// documents the run never trained on even if this default changes).
inline constexpr std::uint64_t kBrownSplitSeed = 1;

// Metrics of one checkpoint of a charlm run (see the layout above).
struct CharLmMetrics {
  std::int64_t step = 0;
  double train_loss = 0;
  double validation_loss = 0;
  double validation_bits_per_char = 0;
  double wall_time_s = 0;
  double train_time_per_step_s = 0;
  double peak_resident_memory_bytes = 0;
};

// The charlm section of a checkpoint.
struct CharLmRun {
  training::CharTransformerConfig model;
  std::string vocabulary = CharVocabulary::symbols();
  std::uint64_t split_seed = kBrownSplitSeed;
  std::int64_t steps = 0;             // optimiser steps the run trains to
  std::int64_t validation_limit = 0;  // validation characters per checkpoint (0 = all)
  std::vector<CharLmMetrics> history;  // one entry per checkpoint written
};

// Writes the section (group /charlm and the /metrics datasets of `run.history`).
void write_char_lm_section(core::TraceWriter& out, const CharLmRun& run);
// Reads it from a checkpoint file. Throws core::UserError naming the file and the missing or
// inconsistent attribute or dataset, and when the vocabulary is not CharVocabulary's.
CharLmRun read_char_lm_section(const std::filesystem::path& file);
// Whether `file` is a checkpoint of a charlm run (false for any file that is not a checkpoint).
bool is_char_lm_checkpoint(const std::filesystem::path& file);

// A token batch as the transformer's input: ids T × N (column n is sequence n).
Eigen::MatrixXd token_matrix(const TokenBatch& batch);

// Per-character cross-entropy of a model's predictions.
struct TextScore {
  std::size_t characters = 0;  // predicted characters
  double nats_per_char = 0;    // mean −ln p(next character)
  double bits_per_char() const;
  double perplexity() const;   // exp(nats_per_char)
};

// Scores every window of `windows` with `model` (whatever the hardware context is set to: the
// caller chooses the phase); each forward is one batch of the windows, and each window's
// predictions from TokenBatch::first_scored on count (each of the P characters once).
TextScore score_text(training::Layer& model, const SequentialWindows& windows);

// Samples an id from logits / temperature by inverse transform of one uniform draw of `rng`;
// temperature 0 takes the arg-max (the first on ties). Throws std::invalid_argument for a
// negative or non-finite temperature or empty logits.
int sample_character(const Eigen::VectorXd& logits, double temperature, core::RandomStream& rng);

// Appends `length` sampled characters to `prompt_ids` (non-empty): each step forwards the last
// min(context, ids so far) ids as one sequence and samples the character after the last one.
// Returns the generated ids alone.
std::vector<int> generate_ids(training::Layer& model, int context, const std::vector<int>& prompt_ids, int length,
                              double temperature, core::RandomStream& rng);

}  // namespace xbar::models
