// The character language model task; see charlm.hpp.
#include "models/charlm.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "core/error.hpp"
#include "core/trace.hpp"
#include "training/checkpoint.hpp"

namespace xbar::models {
namespace {

const std::vector<std::string>& metric_datasets() {
  static const std::vector<std::string> names = {
      "step",        "train_loss",           "validation_loss",           "validation_bits_per_char",
      "wall_time_s", "train_time_per_step_s", "peak_resident_memory_bytes"};
  return names;
}

bool is_hdf5(const std::filesystem::path& file) {
  std::ifstream probe(file, std::ios::binary);
  char magic[8] = {};
  probe.read(magic, sizeof magic);
  return probe && std::string(magic, 8) == std::string("\x89HDF\r\n\x1a\n", 8);
}

}  // namespace

void write_char_lm_section(core::TraceWriter& out, const CharLmRun& run) {
  out.set_attribute("/charlm", "vocabulary", run.vocabulary);
  out.set_attribute("/charlm", "context", static_cast<std::int64_t>(run.model.context));
  out.set_attribute("/charlm", "width", static_cast<std::int64_t>(run.model.width));
  out.set_attribute("/charlm", "heads", static_cast<std::int64_t>(run.model.heads));
  out.set_attribute("/charlm", "layers", static_cast<std::int64_t>(run.model.layers));
  out.set_attribute("/charlm", "embedding_init_stddev", run.model.embedding_init_stddev);
  out.set_attribute("/charlm", "split_seed", static_cast<std::int64_t>(run.split_seed));
  out.set_attribute("/charlm", "steps", run.steps);
  out.set_attribute("/charlm", "validation_limit", run.validation_limit);
  if (run.history.empty()) return;
  const std::vector<CharLmMetrics>& h = run.history;
  training::write_metric_column(out, h, "step", &CharLmMetrics::step, "1");
  training::write_metric_column(out, h, "train_loss", &CharLmMetrics::train_loss, "1");
  training::write_metric_column(out, h, "validation_loss", &CharLmMetrics::validation_loss, "1");
  training::write_metric_column(out, h, "validation_bits_per_char", &CharLmMetrics::validation_bits_per_char, "1");
  training::write_metric_column(out, h, "wall_time_s", &CharLmMetrics::wall_time_s, "s");
  training::write_metric_column(out, h, "train_time_per_step_s", &CharLmMetrics::train_time_per_step_s, "s");
  training::write_metric_column(out, h, "peak_resident_memory_bytes", &CharLmMetrics::peak_resident_memory_bytes,
                                "B");
}

CharLmRun read_char_lm_section(const std::filesystem::path& file) {
  const core::TraceReader in(file);
  if (!in.exists("/charlm")) {
    throw core::UserError(fmt::format("checkpoint {}: no /charlm group: not a run of xbar train --model {}",
                                      file.string(), kCharLmModel));
  }
  CharLmRun run;
  run.vocabulary = in.attribute_string("/charlm", "vocabulary");
  if (run.vocabulary != CharVocabulary::symbols()) {
    throw core::UserError(fmt::format(
        "checkpoint {}: /charlm vocabulary ({} characters) is not this program's character vocabulary ({} "
        "characters: newline and printable ASCII)",
        file.string(), run.vocabulary.size(), CharVocabulary::size));
  }
  run.model.vocab_size = CharVocabulary::size;
  run.model.context = static_cast<int>(in.attribute_int("/charlm", "context"));
  run.model.width = static_cast<int>(in.attribute_int("/charlm", "width"));
  run.model.heads = static_cast<int>(in.attribute_int("/charlm", "heads"));
  run.model.layers = static_cast<int>(in.attribute_int("/charlm", "layers"));
  run.model.embedding_init_stddev = in.attribute_double("/charlm", "embedding_init_stddev");
  try {
    run.model.validate();
  } catch (const std::invalid_argument& error) {
    throw core::UserError(fmt::format("checkpoint {}: /charlm: {}", file.string(), error.what()));
  }
  run.split_seed = static_cast<std::uint64_t>(in.attribute_int("/charlm", "split_seed"));
  run.steps = in.attribute_int("/charlm", "steps");
  run.validation_limit = in.attribute_int("/charlm", "validation_limit");
  if (!in.exists("/metrics/step")) return run;
  std::vector<std::vector<double>> columns;
  for (const std::string& name : metric_datasets()) {
    columns.push_back(in.read_flat("/metrics/" + name));
    if (columns.back().size() != columns.front().size()) {
      throw core::UserError(fmt::format("checkpoint {}: /metrics/{} has {} entries, /metrics/step {}", file.string(),
                                        name, columns.back().size(), columns.front().size()));
    }
  }
  for (std::size_t i = 0; i < columns.front().size(); ++i) {
    run.history.push_back({static_cast<std::int64_t>(columns[0][i]), columns[1][i], columns[2][i], columns[3][i],
                           columns[4][i], columns[5][i], columns[6][i]});
  }
  return run;
}

bool is_char_lm_checkpoint(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec) || !is_hdf5(file)) return false;
  try {
    const core::TraceReader in(file);
    return in.attribute_string("/", "format") == training::kCheckpointFormat &&
           in.attribute_string("/", "model") == kCharLmModel;
  } catch (const core::UserError&) {
    return false;
  }
}

Eigen::MatrixXd token_matrix(const TokenBatch& batch) {
  Eigen::MatrixXd ids(batch.sequence_length, batch.sequences);
  for (std::size_t i = 0; i < batch.inputs.size(); ++i) ids.data()[i] = batch.inputs[i];
  return ids;
}

double TextScore::bits_per_char() const { return nats_per_char / std::log(2.0); }
double TextScore::perplexity() const { return std::exp(nats_per_char); }

TextScore score_text(training::Layer& model, const SequentialWindows& windows) {
  double nats = 0;
  std::size_t characters = 0;
  for (std::size_t b = 0; b < windows.batches(); ++b) {
    const TokenBatch batch = windows.batch(b);
    const Eigen::MatrixXd logits = model.forward(token_matrix(batch));
    const int T = batch.sequence_length;
    for (int n = 0; n < batch.sequences; ++n) {
      for (int t = batch.first_scored[static_cast<std::size_t>(n)]; t < T; ++t) {
        // −ln softmax(column)[target], shifted by the column's largest logit.
        const Eigen::Index column = static_cast<Eigen::Index>(n) * T + t;
        const auto logit = logits.col(column).array();
        const double top = logit.maxCoeff();
        nats += top + std::log((logit - top).exp().sum()) - logit[batch.targets[static_cast<std::size_t>(column)]];
        ++characters;
      }
    }
  }
  TextScore score;
  score.characters = characters;
  score.nats_per_char = characters > 0 ? nats / static_cast<double>(characters) : 0.0;
  return score;
}

int sample_character(const Eigen::VectorXd& logits, double temperature, core::RandomStream& rng) {
  if (logits.size() == 0) throw std::invalid_argument("sample_character: no logits");
  if (!(temperature >= 0) || !std::isfinite(temperature))
    throw std::invalid_argument(fmt::format("sample_character: temperature {} must be finite and >= 0", temperature));
  Eigen::Index best = 0;
  const double top = logits.maxCoeff(&best);
  if (temperature == 0) return static_cast<int>(best);
  const Eigen::VectorXd weights = ((logits.array() - top) / temperature).exp();
  const double u = rng.uniform() * weights.sum();
  double cumulative = 0;
  for (Eigen::Index k = 0; k < weights.size(); ++k) {
    cumulative += weights[k];
    if (u < cumulative) return static_cast<int>(k);
  }
  return static_cast<int>(best);  // u at the rounding edge of the sum
}

std::vector<int> generate_ids(training::Layer& model, int context, const std::vector<int>& prompt_ids, int length,
                              double temperature, core::RandomStream& rng) {
  if (prompt_ids.empty()) throw std::invalid_argument("generate_ids: empty prompt");
  if (context < 1) throw std::invalid_argument("generate_ids: context must be >= 1");
  std::vector<int> ids = prompt_ids;
  ids.reserve(prompt_ids.size() + static_cast<std::size_t>(std::max(0, length)));
  for (int i = 0; i < length; ++i) {
    const std::size_t window = std::min(ids.size(), static_cast<std::size_t>(context));
    Eigen::MatrixXd x(static_cast<Eigen::Index>(window), 1);
    for (std::size_t t = 0; t < window; ++t) x(static_cast<Eigen::Index>(t), 0) = ids[ids.size() - window + t];
    const Eigen::MatrixXd logits = model.forward(x);
    ids.push_back(sample_character(logits.col(logits.cols() - 1), temperature, rng));
  }
  return {ids.begin() + static_cast<std::ptrdiff_t>(prompt_ids.size()), ids.end()};
}

}  // namespace xbar::models
