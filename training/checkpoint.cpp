// Checkpoints of training runs; see checkpoint.hpp for the file layout.
#include "training/checkpoint.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "core/trace.hpp"
#include "core/version.hpp"

namespace xbar::training {
namespace {

std::string join_lines(const std::vector<std::string>& names) {
  std::string text;
  for (std::size_t i = 0; i < names.size(); ++i) text += (i ? "\n" : "") + names[i];
  return text;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> names;
  if (text.empty()) return names;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) names.push_back(line);
  return names;
}

std::string shape_text(Eigen::Index rows, Eigen::Index cols) { return fmt::format("{}x{}", rows, cols); }

void write_metrics(core::TraceWriter& out, const std::vector<EpochMetrics>& history) {
  if (history.empty()) return;
  write_metric_column(out, history, "epoch", &EpochMetrics::epoch, "1");
  write_metric_column(out, history, "train_loss", &EpochMetrics::train_loss, "1");
  write_metric_column(out, history, "train_accuracy", &EpochMetrics::train_accuracy, "1");
  write_metric_column(out, history, "test_accuracy", &EpochMetrics::test_accuracy, "1");
  write_metric_column(out, history, "wall_time_s", &EpochMetrics::wall_time_s, "s");
  write_metric_column(out, history, "train_time_s", &EpochMetrics::train_time_s, "s");
  write_metric_column(out, history, "peak_resident_memory_bytes", &EpochMetrics::peak_resident_memory_bytes, "B");
}

std::vector<double> read_vector(const core::TraceReader& in, const std::string& path, std::size_t expected,
                                const std::filesystem::path& file) {
  std::vector<double> values = in.read_flat(path);
  if (values.size() != expected) {
    throw core::UserError(fmt::format("checkpoint {}: {} has {} entries, expected {} (one per completed epoch)",
                                      file.string(), path, values.size(), expected));
  }
  return values;
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const RunConfig& config, const RunProgress& progress,
                     Layer& model, const OptimizerState& optimizer, const CheckpointExtras& extras) {
  const auto params = model.named_parameters();
  const auto buffers = model.named_buffers();
  core::TraceWriter out(path);
  out.set_attribute("/", "format", std::string(kCheckpointFormat));
  out.set_attribute("/", "xbar_version", std::string(core::kVersion));
  out.set_attribute("/", "model", config.model);
  out.set_attribute("/", "data", config.data);
  out.set_attribute("/", "method", config.method);
  out.set_attribute("/", "ste_backward", config.ste_backward);
  out.set_attribute("/", "card", config.card_yaml);
  out.set_attribute("/", "card_path", config.card_path);
  out.set_attribute("/", "seed", static_cast<std::int64_t>(config.seed));
  out.set_attribute("/", "batch", static_cast<std::int64_t>(config.batch));
  out.set_attribute("/", "learning_rate", config.learning_rate);
  out.set_attribute("/", "lr_decay", config.lr_decay);
  out.set_attribute("/", "optimizer", config.optimizer);
  out.set_attribute("/", "train_limit", config.train_limit);
  out.set_attribute("/", "train_read_time_s", config.train_read_time_s);
  out.set_attribute("/", "augment", config.augment);
  out.set_attribute("/", "train_column_calibration", static_cast<std::int64_t>(config.train_column_calibration));
  out.set_attribute("/", "train_calibration_fraction", config.train_calibration_fraction);
  out.set_attribute("/", "train_calibration_target", config.train_calibration_target);
  out.set_attribute("/", "init_checkpoint", config.init_checkpoint);
  out.set_attribute("/", "epochs_completed", static_cast<std::int64_t>(progress.epochs_completed));
  out.set_attribute("/", "global_step", static_cast<std::int64_t>(progress.global_step));

  std::vector<std::string> names;
  for (const auto& [name, p] : params) {
    names.push_back(name);
    out.write("/parameters/" + name, *p, "1");
  }
  out.set_attribute("/parameters", "names", join_lines(names));
  names.clear();
  for (const auto& [name, b] : buffers) {
    if (b->size() == 0) continue;  // not derived yet: nothing to keep
    names.push_back(name);
    out.write("/buffers/" + name, *b, "1");
  }
  out.set_attribute("/buffers", "names", join_lines(names));

  out.set_attribute("/optimizer", "kind", optimizer.kind);
  out.set_attribute("/optimizer", "steps", optimizer.steps);
  auto write_state = [&](const std::string& group, const std::vector<Eigen::MatrixXd>& state) {
    if (state.size() != params.size()) {
      throw std::logic_error(fmt::format("save_checkpoint: {} {} matrices for {} parameters", state.size(), group,
                                         params.size()));
    }
    for (std::size_t i = 0; i < state.size(); ++i) out.write("/optimizer/" + group + "/" + params[i].first, state[i], "1");
  };
  if (optimizer.kind == "adam") {
    write_state("first_moment", optimizer.first_moment);
    write_state("second_moment", optimizer.second_moment);
  } else {
    write_state("velocity", optimizer.velocity);
  }
  write_metrics(out, progress.history);
  if (extras) extras(out);
  out.commit();
}

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) {
    throw core::UserError(fmt::format("checkpoint {}: no such file", path.string()));
  }
  std::ifstream probe(path, std::ios::binary);
  char magic[8] = {};
  probe.read(magic, sizeof magic);
  if (std::string(magic, 8) != std::string("\x89HDF\r\n\x1a\n", 8)) {
    throw core::UserError(fmt::format("checkpoint {}: not an HDF5 file (expected a run written by xbar train)",
                                      path.string()));
  }
  const core::TraceReader in(path);
  Checkpoint c;
  c.file = path;
  const bool has_format = [&] {
    try {
      return in.attribute_string("/", "format") == kCheckpointFormat;
    } catch (const core::UserError&) {
      return false;
    }
  }();
  if (!has_format) {
    throw core::UserError(fmt::format("checkpoint {}: attribute /format is not '{}': not a run written by xbar train",
                                      path.string(), kCheckpointFormat));
  }
  RunConfig& config = c.config;
  config.model = in.attribute_string("/", "model");
  config.data = in.attribute_string("/", "data");
  config.method = in.attribute_string("/", "method");
  config.ste_backward = in.attribute_string("/", "ste_backward");
  config.card_yaml = in.attribute_string("/", "card");
  config.card_path = in.attribute_string("/", "card_path");
  config.seed = static_cast<std::uint64_t>(in.attribute_int("/", "seed"));
  config.batch = static_cast<int>(in.attribute_int("/", "batch"));
  config.learning_rate = in.attribute_double("/", "learning_rate");
  try {
    config.lr_decay = in.attribute_double("/", "lr_decay");
  } catch (const core::UserError&) {
    config.lr_decay = 1.0;  // runs written before the schedule existed trained at a constant step size
  }
  config.optimizer = in.attribute_string("/", "optimizer");
  config.train_limit = in.attribute_int("/", "train_limit");
  config.train_read_time_s = in.attribute_double("/", "train_read_time_s");
  try {
    config.augment = in.attribute_string("/", "augment");
  } catch (const core::UserError&) {
    config.augment = "none";  // runs written before augmentation existed trained without it
  }
  try {
    config.train_column_calibration = in.attribute_int("/", "train_column_calibration") != 0;
  } catch (const core::UserError&) {
    config.train_column_calibration = false;  // written before the option existed
  }
  try {
    config.train_calibration_fraction = in.attribute_double("/", "train_calibration_fraction");
  } catch (const core::UserError&) {
    config.train_calibration_fraction = 1.0;  // written before the option existed: every step calibrated
  }
  try {
    config.train_calibration_target = in.attribute_string("/", "train_calibration_target");
  } catch (const core::UserError&) {
    config.train_calibration_target = "ideal";  // written before the option existed
  }
  try {
    config.init_checkpoint = in.attribute_string("/", "init_checkpoint");
  } catch (const core::UserError&) {
    config.init_checkpoint.clear();  // written before --init existed: every run started from the seeded weights
  }
  c.progress.epochs_completed = static_cast<int>(in.attribute_int("/", "epochs_completed"));
  c.progress.global_step = static_cast<std::uint64_t>(in.attribute_int("/", "global_step"));

  const std::vector<std::string> param_names = split_lines(in.attribute_string("/parameters", "names"));
  for (const std::string& name : param_names) c.parameters.emplace_back(name, in.read_matrix("/parameters/" + name));
  for (const std::string& name : split_lines(in.attribute_string("/buffers", "names")))
    c.buffers.emplace_back(name, in.read_matrix("/buffers/" + name));

  OptimizerState& opt = c.optimizer;
  opt.kind = in.attribute_string("/optimizer", "kind");
  opt.steps = in.attribute_int("/optimizer", "steps");
  auto read_state = [&](const std::string& group) {
    std::vector<Eigen::MatrixXd> state;
    for (const std::string& name : param_names) state.push_back(in.read_matrix("/optimizer/" + group + "/" + name));
    return state;
  };
  if (opt.kind == "adam") {
    opt.first_moment = read_state("first_moment");
    opt.second_moment = read_state("second_moment");
  } else if (opt.kind == "sgd") {
    opt.velocity = read_state("velocity");
  } else {
    throw core::UserError(fmt::format("checkpoint {}: /optimizer kind '{}' is neither adam nor sgd", path.string(),
                                      opt.kind));
  }

  const auto epochs = static_cast<std::size_t>(std::max(0, c.progress.epochs_completed));
  if (epochs > 0) {
    const std::vector<double> epoch = read_vector(in, "/metrics/epoch", epochs, path);
    const std::vector<double> loss = read_vector(in, "/metrics/train_loss", epochs, path);
    const std::vector<double> train_accuracy = read_vector(in, "/metrics/train_accuracy", epochs, path);
    const std::vector<double> test_accuracy = read_vector(in, "/metrics/test_accuracy", epochs, path);
    const std::vector<double> wall = read_vector(in, "/metrics/wall_time_s", epochs, path);
    const std::vector<double> train_time = read_vector(in, "/metrics/train_time_s", epochs, path);
    const std::vector<double> memory = read_vector(in, "/metrics/peak_resident_memory_bytes", epochs, path);
    for (std::size_t e = 0; e < epochs; ++e) {
      c.progress.history.push_back(
          {static_cast<int>(epoch[e]), loss[e], train_accuracy[e], test_accuracy[e], wall[e], train_time[e], memory[e]});
    }
  }
  return c;
}

void load_model(const Checkpoint& checkpoint, Layer& model) {
  const std::string file = checkpoint.file.string();
  const auto params = model.named_parameters();
  if (params.size() != checkpoint.parameters.size()) {
    throw core::UserError(fmt::format("checkpoint {}: /parameters holds {} matrices, the model ({}) has {}", file,
                                      checkpoint.parameters.size(), checkpoint.config.model, params.size()));
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto& [saved_name, saved] = checkpoint.parameters[i];
    const auto& [name, p] = params[i];
    if (saved_name != name) {
      throw core::UserError(fmt::format("checkpoint {}: parameter {} is /parameters/{}, the model expects {}", file, i,
                                        saved_name, name));
    }
    if (saved.rows() != p->rows() || saved.cols() != p->cols()) {
      throw core::UserError(fmt::format("checkpoint {}: /parameters/{} is {}, the model expects {}", file, name,
                                        shape_text(saved.rows(), saved.cols()), shape_text(p->rows(), p->cols())));
    }
  }
  const auto buffers = model.named_buffers();
  std::vector<std::pair<Eigen::MatrixXd*, const Eigen::MatrixXd*>> buffer_copies;
  for (const auto& [saved_name, saved] : checkpoint.buffers) {
    Eigen::MatrixXd* target = nullptr;
    for (const auto& [name, b] : buffers)
      if (name == saved_name) target = b;
    if (target == nullptr) {
      throw core::UserError(fmt::format("checkpoint {}: /buffers/{} has no counterpart in the model ({})", file,
                                        saved_name, checkpoint.config.model));
    }
    if (target->size() != 0 && (target->rows() != saved.rows() || target->cols() != saved.cols())) {
      throw core::UserError(fmt::format("checkpoint {}: /buffers/{} is {}, the model expects {}", file, saved_name,
                                        shape_text(saved.rows(), saved.cols()),
                                        shape_text(target->rows(), target->cols())));
    }
    buffer_copies.emplace_back(target, &saved);
  }
  for (std::size_t i = 0; i < params.size(); ++i) *params[i].second = checkpoint.parameters[i].second;
  for (auto& [target, saved] : buffer_copies) *target = *saved;
}

double peak_resident_memory_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      double kib = 0;
      fields >> kib;
      return kib * 1024.0;
    }
  }
  return 0.0;
}

}  // namespace xbar::training
