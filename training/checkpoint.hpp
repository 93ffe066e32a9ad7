// Checkpoints of a training run in HDF5 (written through core::TraceWriter: to a temporary file
// that is renamed when complete, so an interrupted save never leaves a file that looks whole).
//
// A checkpoint holds everything needed to rebuild the run and continue it bit-identically: the
// configuration, every parameter and buffer of the model, the optimiser's state, the progress
// (epochs completed, global step) and the per-epoch metrics. It holds no random-generator state:
// every random stream of a run is derived from the seed, the epoch and the global step.
//
// File layout
// -----------
// | path                         | contents |
// | ---------------------------- | -------- |
// | `/` attributes               | `format` ("xbar-checkpoint-1"), `xbar_version`, `model`, `data`, `method`, `ste_backward`, `card` (effective card YAML), `card_path`, `seed`, `batch`, `learning_rate`, `lr_decay`, `optimizer`, `train_limit` (0 = all), `train_read_time_s`, `augment`, `train_column_calibration`, `train_calibration_fraction`, `train_calibration_target`, `init_checkpoint` (the run whose weights this run started from; "" for the seeded initialisation), `epochs_completed`, `global_step` |
// | `/parameters` attribute `names` | the parameter names in parameters() order, one per line |
// | `/parameters/<name>`         | each parameter (e.g. `conv1.weight`, C_out × C_in·k·k; `fc2.bias`, out × 1), units "1" |
// | `/buffers` attribute `names` | the buffer names in buffers() order, one per line ("" when none) |
// | `/buffers/<name>`            | each non-empty buffer (e.g. an analog layer's input scale) |
// | `/optimizer` attributes      | `kind` ("adam" or "sgd"), `steps` |
// | `/optimizer/first_moment/<name>`, `/optimizer/second_moment/<name>` | Adam's moments, per parameter |
// | `/optimizer/velocity/<name>` | SGD's velocity, per parameter |
// | `/metrics/epoch`             | 1, 2, ... (one entry per completed epoch) |
// | `/metrics/train_loss`, `/metrics/train_accuracy`, `/metrics/test_accuracy` | per epoch, units "1" |
// | `/metrics/wall_time_s`       | wall time of each epoch (training and test), s |
// | `/metrics/train_time_s`      | wall time of each epoch's training steps alone, s |
// | `/metrics/peak_resident_memory_bytes` | the process's peak resident memory (VmHWM) at the end of the epoch, B |
//
// Buffers: a checkpoint written from a model without buffers (an ideal digital run) loads into a
// model that has them (the same network on analog layers, for evaluation): those buffers are
// left at their defaults, which analog layers derive lazily from the first inputs they see.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/trace.hpp"
#include "training/layers.hpp"

namespace xbar::training {

inline constexpr const char* kCheckpointFormat = "xbar-checkpoint-1";

// What a run is (fixed when it starts; a resumed run keeps it).
struct RunConfig {
  std::string model;                     // network name ("mlp", "lenet", ...)
  std::string data = "fashion-mnist";    // data set name
  std::string method = "ideal";          // training method ("ideal", "nat", "nat-full", "ste")
  std::string ste_backward = "effective";  // STE backward variant (meaningful for method ste)
  std::string card_yaml;                 // the effective card (after --set overrides), YAML text
  std::string card_path;                 // the card file as given
  std::uint64_t seed = 0;                // seed of every random stream of the run
  int batch = 128;                       // mini-batch size
  double learning_rate = 1e-3;           // optimiser step size of the first epoch
  double lr_decay = 1.0;                 // the step size of epoch e is learning_rate · lr_decay^(e−1)
  std::string optimizer = "adam";        // "adam" or "sgd" (momentum 0.9)
  std::int64_t train_limit = 0;          // training images used (the first N; 0 = all)
  double train_read_time_s = 0;          // read time of the hardware seen in training (s)
  bool train_column_calibration = false; // ste: outputs calibrated per column in training
  double train_calibration_fraction = 1; // the fraction of training steps calibrated so, in (0, 1]
  std::string train_calibration_target = "ideal";  // what that calibration maps onto: "ideal" or "nominal"
  std::string augment = "none";          // training images: "none" or "flip" (mirrored left-right with p = 1/2)
  std::string init_checkpoint;           // run whose weights this run started from (--init); "" = seeded initialisation
};

// Metrics of one completed epoch.
struct EpochMetrics {
  int epoch = 0;                    // 1-based
  double train_loss = 0;            // mean mini-batch loss over the epoch
  double train_accuracy = 0;        // fraction of training images classified right during the epoch
  double test_accuracy = 0;         // fraction of the test split classified right after the epoch
  double wall_time_s = 0;           // wall time of the epoch, training and test (s)
  double train_time_s = 0;          // wall time of the epoch's training steps alone (s)
  double peak_resident_memory_bytes = 0;  // peak resident memory of the process so far (B)
};

// Writes /metrics/<name>: the member `field` of every record of a run's history (one per epoch or
// per checkpoint), as int32 for an integer member (epoch, step), else as double, with its unit.
template <class Record, class Field>
void write_metric_column(core::TraceWriter& out, const std::vector<Record>& history, const std::string& name,
                         Field Record::*field, const std::string& unit) {
  if constexpr (std::is_integral_v<Field>) {
    std::vector<std::int32_t> column;
    for (const Record& record : history) column.push_back(static_cast<std::int32_t>(record.*field));
    out.write("/metrics/" + name, column, {column.size()}, unit);
  } else {
    std::vector<double> column;
    for (const Record& record : history) column.push_back(record.*field);
    out.write("/metrics/" + name, column, unit);
  }
}

// Where a run is.
struct RunProgress {
  int epochs_completed = 0;
  std::uint64_t global_step = 0;     // optimiser steps taken since the start of the run
  std::vector<EpochMetrics> history;  // one entry per completed epoch
};

// An optimiser's state, by parameter in parameters() order.
struct OptimizerState {
  std::string kind = "adam";                  // "adam" or "sgd"
  std::int64_t steps = 0;                     // steps taken
  std::vector<Eigen::MatrixXd> first_moment;  // Adam
  std::vector<Eigen::MatrixXd> second_moment; // Adam
  std::vector<Eigen::MatrixXd> velocity;      // SGD
};

// A checkpoint as read from a file.
struct Checkpoint {
  std::filesystem::path file;
  RunConfig config;
  RunProgress progress;
  std::vector<std::pair<std::string, Eigen::MatrixXd>> parameters;  // in parameters() order
  std::vector<std::pair<std::string, Eigen::MatrixXd>> buffers;     // non-empty buffers, in buffers() order
  OptimizerState optimizer;
};

// What a model kind adds to the layout above (e.g. the character language model's shape and its
// per-step metrics, models/charlm.hpp), written into the same file before it is committed.
using CheckpointExtras = std::function<void(core::TraceWriter&)>;

// Writes `model`'s named parameters and buffers with the run's configuration, progress and
// optimiser state (and `extras`) to `path` atomically. Throws core::UserError naming the path
// when it cannot be written.
void save_checkpoint(const std::filesystem::path& path, const RunConfig& config, const RunProgress& progress,
                     Layer& model, const OptimizerState& optimizer, const CheckpointExtras& extras = {});

// Reads a checkpoint. Throws core::UserError naming the file (and the dataset or attribute) when
// it is missing, not a checkpoint, or incomplete.
Checkpoint read_checkpoint(const std::filesystem::path& path);

// Copies the checkpoint's parameters and buffers into `model`. The parameter names and shapes
// must match the model's named_parameters() exactly; buffers the checkpoint holds must exist in
// the model with the same shape (a model buffer that is still empty takes the saved shape);
// model buffers the checkpoint lacks keep their values (see the file comment). Throws
// core::UserError naming the file and the dataset on any mismatch, before changing anything.
void load_model(const Checkpoint& checkpoint, Layer& model);

// VmHWM of /proc/self/status in bytes (0 where it cannot be read).
double peak_resident_memory_bytes();

}  // namespace xbar::training
