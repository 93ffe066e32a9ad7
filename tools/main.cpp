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
#include "tools/simulate.hpp"

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

  CLI11_PARSE(app, argc, argv);
  xbar::core::ThreadSetup thread_setup(threads);
  try {
    if (reference->parsed()) {
      std::cout << card_reference();
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
