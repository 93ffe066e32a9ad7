// `xbar train` and `xbar eval`: train a network (digitally or against the tile simulator) with
// checkpoints, and score a trained network on freshly programmed simulated hardware over time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace xbar::tools {

// `xbar train`. Options that also define the run (model, method, ...) are optional: a fresh run
// takes the defaults noted, a resumed run takes them from the checkpoint, and an option given
// with a different value than the checkpoint's is a UserError naming both values.
struct TrainOptions {
  std::filesystem::path card;                 // device card (YAML); optional with --resume
  std::vector<std::string> overrides;         // --set key=value on the card
  std::optional<std::string> model;           // mlp | lenet (required for a fresh run)
  std::optional<std::string> data;            // data set: fashion-mnist (default)
  std::optional<std::string> method;          // ideal (default) | nat | nat-full | ste
  std::optional<std::string> ste_backward;    // clean | programmed | effective (default)
  int epochs = 1;                             // total epochs of the run (a resumed run continues to it)
  std::optional<int> batch;                   // default 128
  std::optional<double> learning_rate;        // default 1e-3
  std::optional<double> lr_decay;             // step size factor per epoch, in (0, 1] (default 1: constant)
  std::optional<std::string> optimizer;       // adam (default) | sgd
  std::optional<std::int64_t> train_limit;    // first N training images (default 0 = all)
  std::size_t test_limit = 0;                 // first N test images scored after each epoch (0 = all)
  std::optional<std::uint64_t> seed;          // default: the card's seed
  std::optional<double> train_read_time_s;    // read time of the training hardware (s; default 0)
  std::optional<std::string> augment;         // none (default) | flip (mlp, lenet)
  std::optional<bool> train_column_calibration;  // ste: per-column calibration in every training forward
  std::optional<double> train_calibration_fraction;  // of the steps so calibrated, in (0, 1] (default 1)
  std::optional<std::string> train_calibration_target;  // what it maps onto: ideal (default) | nominal
  std::filesystem::path output;               // -o RUN.h5 (default with --resume: the resumed file)
  std::filesystem::path resume;               // --resume RUN.h5
  std::filesystem::path init;                 // --init RUN.h5: a fresh run starting from that run's weights
};

// Runs the training, writing the checkpoint after every epoch; progress goes to stderr (a bar on
// a terminal, log lines otherwise). Returns the summary printed at the end. Throws
// core::UserError for bad options, cards, data or checkpoints.
std::string train_command(const TrainOptions& options);

// `xbar eval`.
struct EvalOptions {
  std::filesystem::path card;                 // card of the hardware to evaluate on
  std::vector<std::string> overrides;         // --set key=value on the card
  std::optional<std::uint64_t> seed;          // default: the card's seed
  std::filesystem::path checkpoint;           // RUN.h5 from xbar train
  std::vector<double> times_s = {0.0};        // read times after programming (s)
  int repeats = 5;                            // independent programmings
  std::size_t test_limit = 0;                 // first N test images (0 = all)
  int calibrate_columns = 0;                  // held-out images for per-column gain/offset (0 = off)
  int batch = 500;                            // images per forward
  bool json = false;                          // print only the JSON list
};

// The score of one read time over the programmings.
struct EvalRow {
  double time_s = 0;
  double mean = 0;                 // mean of the metric over the programmings
  double std = 0;                  // sample standard deviation (n − 1; 0 for one programming)
  std::vector<double> values;      // one per programming
};

struct EvalReport {
  std::string metric = "accuracy";
  std::vector<EvalRow> rows;
};

// Programs the checkpoint's network `repeats` times onto the card's simulated hardware and scores
// it at every read time. Throws core::UserError for bad options, cards, data or checkpoints.
EvalReport evaluate_checkpoint(const EvalOptions& options);
std::string eval_table(const EvalOptions& options, const EvalReport& report);
std::string eval_json(const EvalOptions& options, const EvalReport& report);

// "0,3600,86400" → {0, 3600, 86400}; throws core::UserError naming --times.
std::vector<double> parse_times(const std::string& text);

}  // namespace xbar::tools
