// The xbar command-line interface.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/card_schema.hpp"
#include "core/error.hpp"
#include "core/threading.hpp"
#include "core/version.hpp"
#include "devices/registry.hpp"
#include "tools/bench_solvers.hpp"
#include "tools/charlm.hpp"
#include "tools/measured.hpp"
#include "tools/simulate.hpp"
#include "tools/train.hpp"
#include "tools/validate.hpp"

namespace {

// Exit codes: 0 success, 1 command-line error (CLI11), 2 bad input (card, file), 3 simulation failure.
constexpr int kExitUserError = 2;
constexpr int kExitSimulationFailed = 3;

std::string card_reference() {
  std::string text = "### Common keys\n\n" + xbar::core::markdown_reference(xbar::core::card_schema());
  for (const auto& model : xbar::devices::builtin_devices().models()) {
    text += fmt::format("\n### Device model `{}`\n\n{}\n", model.name, model.description);
    if (!model.reference.empty()) text += fmt::format("\nSource: {}\n", model.reference);
    if (model.params.empty()) {
      text += "\nNo parameters beyond the common `device.` keys.\n";
    } else {
      std::vector<xbar::core::ParamSpec> specs = model.params;
      for (auto& spec : specs) spec.key = "device." + spec.key;
      text += "\n" + xbar::core::markdown_reference(specs);
    }
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"xbar: physics-level simulator of analog compute-in-memory crossbar tiles"};
  app.set_version_flag("--version", std::string("xbar ") + xbar::core::kVersion);
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "Worker threads (0 = all cores); results do not depend on it")
      ->check(CLI::NonNegativeNumber);

  std::filesystem::path card_file, output;
  std::vector<std::string> overrides;
  std::string seed;
  auto add_card_options = [&](CLI::App* command) {
    command->add_option("card", card_file, "Device card (YAML)")->required();
    command->add_option("--seed", seed, "Seed of every random stream (overrides the card's seed)")
        ->check(CLI::NonNegativeNumber);
    command->add_option("--set", overrides,
                        "Override a card value, key.path=value (YAML value), e.g. --set tile.rows=24; repeatable")
        ->allow_extra_args(false);
  };

  CLI::App* simulate = app.add_subcommand("simulate", "Simulate a tile from a card and write an HDF5 trace");
  add_card_options(simulate);
  simulate->add_option("-o,--output", output, "Trace file (default: out/<card name>.h5)");
  bool quiet = false;
  simulate->add_flag("-q,--quiet", quiet, "Print nothing on success");

  CLI::App* spice = app.add_subcommand("spice", "Export the programmed array and one input vector as an ngspice netlist");
  add_card_options(spice);
  spice->add_option("-o,--output", output, "Netlist file")->required();
  int read_vector = 0, plane = -1;
  spice->add_option("--read", read_vector, "Index K of the workload's input vector to apply (default 0)");
  spice->add_option("--plane", plane, "Bit-serial DAC plane to apply (default: the most significant)");

  CLI::App* reference = app.add_subcommand("card-reference", "Print the card reference (Markdown) from the schema");

  CLI::App* bench = app.add_subcommand("bench", "Benchmarks measured side by side in one run");
  bench->require_subcommand(1);
  CLI::App* bench_solvers = bench->add_subcommand(
      "solvers", "Time the ideal product and every solver on one random array, with errors against the direct solver");
  xbar::tools::BenchOptions bench_options;
  bool bench_as_json = false;
  bench_solvers->add_option("--rows", bench_options.rows, "Rows of the array (default 256)")->check(CLI::PositiveNumber);
  bench_solvers->add_option("--cols", bench_options.cols, "Columns of the array (default 256)")->check(CLI::PositiveNumber);
  bench_solvers->add_option("--batch", bench_options.batch, "Input vectors per batch (default 64)")
      ->check(CLI::PositiveNumber);
  double r_wire = -1;
  bench_solvers->add_option("--r-wire", r_wire, "Ohm per word- and bit-line segment, and for source and sense (default 1)")
      ->check(CLI::NonNegativeNumber);
  bench_solvers->add_option("--repeats", bench_options.repeats, "Timings are the median of this many runs (default 5)")
      ->check(CLI::PositiveNumber);
  bench_solvers->add_option("--seed", bench_options.seed, "Seed of the random array and inputs");
  bench_solvers->add_flag("--json", bench_as_json, "Print a JSON array instead of the table");
  bench_solvers->add_flag("--ngspice", bench_options.ngspice, "Also run ngspice on the same circuit (64 x 64 or smaller)");

  // `xbar import ramps | pulse-response`: measured data into the HDF5 schema (tools/measured.hpp).
  CLI::App* import = app.add_subcommand("import", "Import measured device data into an HDF5 file (trace schema)");
  import->require_subcommand(1);
  xbar::tools::ImportRampsOptions import_ramps_options;
  CLI::App* import_ramps = import->add_subcommand(
      "ramps", "Pulse ramps: CSVs with header rmp1..rmpK and one column of read currents (A) per ramp");
  import_ramps->add_option("--set", import_ramps_options.set_csv, "SET (up) ramps CSV")->required();
  import_ramps->add_option("--reset", import_ramps_options.reset_csv, "RESET (down) ramps CSV")->required();
  import_ramps->add_option("--read-voltage", import_ramps_options.read_voltage, "Read voltage (V) of the currents")
      ->required();
  import_ramps->add_option("-o,--output", import_ramps_options.output, "HDF5 file to write")->required();
  import_ramps->add_option("--heldout-set", import_ramps_options.heldout_set,
                           "SET ramps held out for validation, e.g. 28-39 (default: none)");
  import_ramps->add_option("--heldout-reset", import_ramps_options.heldout_reset,
                           "RESET ramps held out for validation, e.g. 29-40 (default: none)");
  import_ramps->add_option("--description", import_ramps_options.description, "What the experiment is");
  import_ramps->add_option("--licence", import_ramps_options.licence_file,
                           "File with the data's licence text (default: recorded as unknown)");
  xbar::tools::ImportPulseResponseOptions import_pulse_options;
  CLI::App* import_pulse = import->add_subcommand(
      "pulse-response", "Normalised two-column pulse response (up, down), cut into ramps, every third held out");
  import_pulse->add_option("csv", import_pulse_options.csv, "CSV: state after each up pulse, after each down pulse")
      ->required();
  import_pulse->add_option("-o,--output", import_pulse_options.output, "HDF5 file to write")->required();
  import_pulse->add_option("--g-min", import_pulse_options.g_min, "Conductance (S) of normalised state -1 (default 1e-6)");
  import_pulse->add_option("--g-max", import_pulse_options.g_max, "Conductance (S) of normalised state +1 (default 1e-4)");
  import_pulse->add_option("--segment", import_pulse_options.segment, "Pulses per ramp (default 100)");
  import_pulse->add_option("--description", import_pulse_options.description, "What the experiment is");
  import_pulse->add_option("--licence", import_pulse_options.licence_file,
                           "File with the data's licence text (default: recorded as unknown)");

  // `xbar calibrate` and `xbar validate`: fit the rram-step model to measured ramps, score a card
  // against them (tools/validate.hpp).
  xbar::tools::CalibrateOptions calibrate_options;
  CLI::App* calibrate = app.add_subcommand(
      "calibrate", "Fit the rram-step model to the fitting split of measured ramps and write a complete card");
  calibrate->add_option("--card", calibrate_options.card, "Base card (YAML) with device.model: rram-step")->required();
  calibrate->add_option("--measured", calibrate_options.measured, "Measured ramps (HDF5 from xbar import)")->required();
  calibrate->add_option("--split", calibrate_options.split,
                        "Ramps to fit: only 'fit' (the held-out ramps are for validate) (default fit)");
  calibrate->add_option("--bins", calibrate_options.bins, "Conductance bins of the step tables (default 10)");
  calibrate->add_option("--set", calibrate_options.overrides, "Override a base-card value, key.path=value; repeatable")
      ->allow_extra_args(false);
  calibrate->add_option("-o,--output", calibrate_options.output, "Fitted card (YAML) to write")->required();
  xbar::tools::ValidateOptions validate_options;
  CLI::App* validate = app.add_subcommand(
      "validate", "Replay measured ramps with a card's rram-step model and score it (RMSE, KS, band coverage)");
  validate->add_option("--card", validate_options.card, "Card (YAML) with device.model: rram-step")->required();
  validate->add_option("--measured", validate_options.measured, "Measured ramps (HDF5 from xbar import)")->required();
  validate->add_option("--split", validate_options.settings.split, "Ramps to score: heldout, fit or all (default heldout)");
  validate->add_option("--repetitions", validate_options.settings.repetitions,
                       "Simulated ramps per measured ramp (default 200)");
  validate->add_option("--bins", validate_options.settings.ks_bins,
                       "Conductance bins of the KS statistic over the measured range (default 10)");
  validate->add_option("--seed", validate_options.seed, "Seed of the replays (overrides the card's seed)")
      ->check(CLI::NonNegativeNumber);
  validate->add_option("--set", validate_options.overrides, "Override a card value, key.path=value; repeatable")
      ->allow_extra_args(false);
  validate->add_flag("--json", validate_options.json, "Print one JSON object keyed by experiment (set, reset)");
  validate->add_option("-o,--output", validate_options.output, "Report (HDF5) to write");
  validate->add_option("--plot", validate_options.plot, "Picture (PNG) of measured ramps and the simulated band");

  // `xbar train` and `xbar eval`: train a network against the simulator, score it on fresh
  // hardware over time (tools/train.hpp).
  xbar::tools::TrainOptions train_options;
  std::string train_model, train_data, train_method, train_ste_backward, train_optimizer, train_augment;
  int train_batch = 128;
  double train_lr = 1e-3, train_lr_decay = 1, train_read_time = 0;
  std::int64_t train_limit = 0;
  std::uint64_t train_seed = 0;
  CLI::App* train = app.add_subcommand("train", "Train a network (digitally or on the simulated tiles of a card)");
  train->fallthrough();
  train->add_option("--card", train_options.card, "Device card (YAML); a resumed run keeps the card it was trained with");
  CLI::Option* train_model_opt = train->add_option("--model", train_model, "Network: mlp, lenet, lenet-wide or charlm");
  CLI::Option* train_data_opt = train->add_option(
      "--data", train_data,
      "Data set: fashion-mnist (default for mlp, lenet; $XBAR_FASHION_MNIST_DIR or the Debian package) or brown "
      "(charlm; $XBAR_BROWN_DIR or scripts/setup.sh)");
  CLI::Option* train_method_opt =
      train->add_option("--method", train_method, "Training method: ideal (default), nat, nat-full or ste");
  CLI::Option* train_ste_opt = train->add_option("--ste-backward", train_ste_backward,
                                                 "Backward of ste: clean, programmed or effective (default)");
  CLI::Option* train_epochs_opt =
      train->add_option("--epochs", train_options.epochs, "Total epochs of the run (default 1; mlp, lenet)");
  CLI::Option* train_batch_opt = train->add_option("--batch", train_batch, "Mini-batch size (default 128)");
  CLI::Option* train_lr_opt = train->add_option("--lr", train_lr, "Learning rate of the first epoch (default 1e-3)");
  CLI::Option* train_lr_decay_opt = train->add_option(
      "--lr-decay", train_lr_decay,
      "Learning-rate factor per epoch: epoch e uses lr * decay^(e-1); charlm: per 1000 steps, step s uses "
      "lr * decay^(s/1000) (default 1)");
  CLI::Option* train_optimizer_opt =
      train->add_option("--optimizer", train_optimizer, "adam (default) or sgd (momentum 0.9)");
  CLI::Option* train_limit_opt =
      train->add_option("--train-limit", train_limit, "Use the first N training images (default all)");
  train->add_option("--test-limit", train_options.test_limit, "Score the first N test images after each epoch (default all)");
  CLI::Option* train_seed_opt = train->add_option("--seed", train_seed, "Seed of every random stream (default: the card's)");
  CLI::Option* train_read_time_opt = train->add_option(
      "--train-read-time", train_read_time, "Seconds after programming at which the training hardware is read (default 0)");
  CLI::Option* train_augment_opt = train->add_option(
      "--augment", train_augment,
      "Training-image augmentation: none (default) or flip (each image mirrored left-right with probability 1/2)");
  bool train_calibrate = false;
  CLI::Option* train_calibrate_opt = train->add_flag(
      "--train-calibrate-columns", train_calibrate,
      "ste: fit and apply a gain and offset per output onto the ideal layer in every training forward (the "
      "correction of xbar eval --calibrate-columns), so the network trains through calibrated hardware");
  double train_calibrate_fraction = 1;
  CLI::Option* train_calibrate_fraction_opt = train->add_option(
      "--train-calibrate-fraction", train_calibrate_fraction,
      "With --train-calibrate-columns: calibrate only this fraction of the training steps (drawn per step), "
      "the others read the raw hardware (default 1)");
  std::string train_calibrate_onto;
  CLI::Option* train_calibrate_onto_opt = train->add_option(
      "--train-calibrate-onto", train_calibrate_onto,
      "With --train-calibrate-columns: map the outputs onto the ideal layer (ideal, default) or onto the nominal "
      "hardware, wires kept (nominal: only the random errors are corrected)");
  train->add_option("--set", train_options.overrides, "Override a card value, key.path=value; repeatable")
      ->allow_extra_args(false);
  train->add_option("-o,--output", train_options.output, "Checkpoint to write (HDF5; rewritten after every epoch)");
  train->add_option("--resume", train_options.resume, "Continue the run in this checkpoint up to --epochs (--steps)");
  train->add_option("--init", train_options.init,
                    "Start a new run from the weights of this trained run (same network; fresh optimiser and "
                    "steps): e.g. fine-tune an ideal network with --method ste");
  // --model charlm (tools/charlm.hpp).
  xbar::tools::CharLmTrainOptions charlm_options;
  std::int64_t charlm_steps = 0, charlm_validation_limit = 0;
  int charlm_context = 0, charlm_width = 0, charlm_heads = 0, charlm_layers = 0;
  const std::vector<CLI::Option*> charlm_opts = {
      train->add_option("--steps", charlm_steps, "charlm: total optimiser steps of the run (default 2000)"),
      train->add_option("--context", charlm_context, "charlm: longest sequence, characters (default 64)"),
      train->add_option("--width", charlm_width, "charlm: model width (default 128)"),
      train->add_option("--heads", charlm_heads, "charlm: attention heads (default 4)"),
      train->add_option("--layers", charlm_layers, "charlm: transformer blocks (default 2)"),
      train->add_option("--validation-limit", charlm_validation_limit,
                        "charlm: validation characters scored at each checkpoint (default 16384; 0 = all)")};

  xbar::tools::EvalOptions eval_options;
  std::string eval_times = "0";
  std::uint64_t eval_seed = 0;
  CLI::App* eval = app.add_subcommand("eval", "Program a trained network onto fresh simulated hardware and score it over time");
  eval->fallthrough();
  eval->add_option("--card", eval_options.card, "Card of the hardware to evaluate on")->required();
  eval->add_option("--checkpoint", eval_options.checkpoint, "Run written by xbar train")->required();
  eval->add_option("--times", eval_times, "Read times after programming, s, comma-separated (default 0)");
  eval->add_option("--repeats", eval_options.repeats, "Independent programmings (default 5)");
  eval->add_option("--test-limit", eval_options.test_limit, "Score the first N test images (default all)");
  eval->add_option("--calibrate-columns", eval_options.calibrate_columns,
                   "Fit a gain and offset per output on N held-out training images before scoring (default off)");
  int eval_batch = 500;
  CLI::Option* eval_batch_opt =
      eval->add_option("--batch", eval_batch, "Images per forward pass (default 500; charlm: windows, default 32)");
  CLI::Option* eval_seed_opt = eval->add_option("--seed", eval_seed, "Seed of the hardware (default: the card's)");
  eval->add_option("--set", eval_options.overrides, "Override a card value, key.path=value; repeatable")
      ->allow_extra_args(false);
  eval->add_flag("--json", eval_options.json, "Print only a JSON list of {time_s, mean, std, repeats}");
  xbar::tools::CharLmEvalOptions charlm_eval_options;
  int eval_stride = 0;
  CLI::Option* eval_stride_opt = eval->add_option(
      "--stride", eval_stride,
      "charlm: a test window every S characters, each scoring the characters the previous one did not predict "
      "(default: the context, non-overlapping windows; smaller S gives every character more context and costs "
      "context/S times the forwards)");
  eval->add_flag("--digital", charlm_eval_options.digital,
                 "charlm: score the network's digital function instead of the hardware (reference)");

  // `xbar generate`: text from a charlm run on simulated hardware (tools/charlm.hpp).
  xbar::tools::GenerateOptions generate_options;
  CLI::App* generate = app.add_subcommand("generate", "Sample text from a charlm run on simulated hardware");
  generate->add_option("--card", generate_options.card, "Card of the hardware to generate on")->required();
  generate->add_option("--checkpoint", generate_options.checkpoint, "Run written by xbar train --model charlm")
      ->required();
  generate->add_option("--prompt", generate_options.prompt, "Text the sample continues (default \"The jury said\")");
  generate->add_option("--length", generate_options.length, "Characters generated after the prompt (default 300)");
  generate->add_option("--temperature", generate_options.temperature,
                       "Logits are divided by it before sampling; 0 = the likeliest character (default 1)");
  generate->add_option("--seed", generate_options.seed,
                       "Programming of the hardware and seed of the sampling (default 0)");
  generate->add_option("--time", generate_options.time_s, "Read time after programming, s (default 0)");
  generate->add_option("--set", generate_options.overrides, "Override a card value, key.path=value; repeatable")
      ->allow_extra_args(false);
  generate->add_flag("--digital", generate_options.digital, "Use the network's digital function instead of the hardware");

  CLI11_PARSE(app, argc, argv);
  xbar::core::ThreadSetup thread_setup(threads);
  try {
    if (reference->parsed()) {
      std::cout << card_reference();
      return 0;
    }
    if (bench_solvers->parsed()) {
      if (r_wire >= 0) bench_options.r_wire = bench_options.r_source = bench_options.r_sense = r_wire;
      const auto report = xbar::tools::bench_solvers(bench_options);
      std::cout << (bench_as_json ? xbar::tools::bench_json(report) : xbar::tools::bench_table(report));
      return 0;
    }
    if (import_ramps->parsed()) {
      std::cout << xbar::tools::import_ramps_command(import_ramps_options);
      return 0;
    }
    if (import_pulse->parsed()) {
      std::cout << xbar::tools::import_pulse_response_command(import_pulse_options);
      return 0;
    }
    if (calibrate->parsed()) {
      std::cout << xbar::tools::calibrate_command(calibrate_options);
      return 0;
    }
    if (validate->parsed()) {
      std::cout << xbar::tools::validate_command(validate_options);
      return 0;
    }
    if (train->parsed()) {
      if (train_model_opt->count()) train_options.model = train_model;
      if (train_data_opt->count()) train_options.data = train_data;
      if (train_method_opt->count()) train_options.method = train_method;
      if (train_ste_opt->count()) train_options.ste_backward = train_ste_backward;
      if (train_batch_opt->count()) train_options.batch = train_batch;
      if (train_lr_opt->count()) train_options.learning_rate = train_lr;
      if (train_lr_decay_opt->count()) train_options.lr_decay = train_lr_decay;
      if (train_optimizer_opt->count()) train_options.optimizer = train_optimizer;
      if (train_limit_opt->count()) train_options.train_limit = train_limit;
      if (train_seed_opt->count()) train_options.seed = train_seed;
      if (train_read_time_opt->count()) train_options.train_read_time_s = train_read_time;
      if (train_augment_opt->count()) train_options.augment = train_augment;
      if (train_calibrate_opt->count()) train_options.train_column_calibration = true;
      if (train_calibrate_fraction_opt->count()) train_options.train_calibration_fraction = train_calibrate_fraction;
      if (train_calibrate_onto_opt->count()) train_options.train_calibration_target = train_calibrate_onto;
      if (train_options.model == std::string("charlm") ||
          (!train_options.model && (xbar::tools::is_charlm_checkpoint(train_options.resume) ||
                                    xbar::tools::is_charlm_checkpoint(train_options.init)))) {
        if (charlm_opts[0]->count()) charlm_options.steps = charlm_steps;
        if (charlm_opts[1]->count()) charlm_options.context = charlm_context;
        if (charlm_opts[2]->count()) charlm_options.width = charlm_width;
        if (charlm_opts[3]->count()) charlm_options.heads = charlm_heads;
        if (charlm_opts[4]->count()) charlm_options.layers = charlm_layers;
        if (charlm_opts[5]->count()) charlm_options.validation_limit = charlm_validation_limit;
        charlm_options.epochs_given = train_epochs_opt->count() > 0;
        std::cout << xbar::tools::charlm_train_command(train_options, charlm_options);
        return 0;
      }
      for (const CLI::Option* option : charlm_opts) {
        if (option->count())
          throw xbar::core::UserError(option->get_name() + ": applies to --model charlm only");
      }
      std::cout << xbar::tools::train_command(train_options);
      return 0;
    }
    if (eval->parsed()) {
      eval_options.times_s = xbar::tools::parse_times(eval_times);
      if (eval_seed_opt->count()) eval_options.seed = eval_seed;
      if (xbar::tools::is_charlm_checkpoint(eval_options.checkpoint)) {
        if (eval_batch_opt->count()) charlm_eval_options.batch = eval_batch;
        if (eval_stride_opt->count()) charlm_eval_options.stride = eval_stride;
        const auto report = xbar::tools::evaluate_charlm_checkpoint(eval_options, charlm_eval_options);
        std::cout << (eval_options.json ? xbar::tools::charlm_eval_json(eval_options, report)
                                        : xbar::tools::charlm_eval_table(eval_options, report));
        return 0;
      }
      if (charlm_eval_options.digital) throw xbar::core::UserError("--digital: applies to charlm checkpoints only");
      if (eval_stride_opt->count()) throw xbar::core::UserError("--stride: applies to charlm checkpoints only");
      eval_options.batch = eval_batch;
      const auto report = xbar::tools::evaluate_checkpoint(eval_options);
      std::cout << (eval_options.json ? xbar::tools::eval_json(eval_options, report)
                                      : xbar::tools::eval_table(eval_options, report));
      return 0;
    }
    if (generate->parsed()) {
      std::cout << xbar::tools::generate_command(generate_options) << "\n";
      return 0;
    }
    const xbar::core::Card card = xbar::tools::load_card_for_cli(card_file, overrides, seed);
    if (spice->parsed()) {
      xbar::tools::write_spice(card, read_vector, plane, output);
      return 0;
    }
    if (output.empty()) {
      output = std::filesystem::path("out") / (card_file.stem().string() + ".h5");
      std::filesystem::create_directories(output.parent_path());
    }
    const xbar::tools::Simulation simulation = xbar::tools::simulate(card);
    xbar::tools::write_trace(simulation, output);
    if (!quiet) std::cout << xbar::tools::summary_text(simulation, output);
    return 0;
  } catch (const xbar::core::UserError& error) {
    std::cerr << "xbar: " << error.what() << "\n";
    return kExitUserError;
  } catch (const std::exception& error) {
    std::cerr << "xbar: " << error.what() << "\n";
    return kExitSimulationFailed;
  }
}
