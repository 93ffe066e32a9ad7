// `xbar bench solvers`: every solver on one random array, side by side in one run, against the
// ideal dense product and against each other (and optionally ngspice).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xbar::tools {

struct BenchOptions {
  int rows = 256, cols = 256, batch = 64;
  double r_wire = 1.0;      // ohm per word- and bit-line segment
  double r_source = 1.0;    // ohm
  double r_sense = 1.0;     // ohm
  double g_min = 1e-6, g_max = 25e-6;  // S, conductances uniform in between
  int repeats = 5;          // timings are the median of this many runs
  std::uint64_t seed = 1;
  bool ngspice = false;     // also run ngspice on the same circuit (64×64 or smaller)
};

struct BenchRow {
  std::string solver;       // "ideal gemm", "direct", "effective", "iterative (cold)", "iterative (warm, 1 % change)"
  double setup_s = 0;       // per conductance state: analysis + factorisation / build of M / line factorisation
  double batch_s = 0;       // one batch of reads
  double ratio_to_gemm = 0; // batch_s over the ideal product's batch time
  double max_rel_err = 0;   // max |i - i_direct| / max |i_direct|
  int iterations = 0;       // iterative: CG iterations (max over the batch)
  std::size_t memory_bytes = 0;
  std::string note;
};

struct BenchReport {
  BenchOptions options;
  std::vector<BenchRow> rows;
  // ngspice (when asked): its whole run for one read, xbar's fastest exact mode for one read with
  // its set-up, and their agreement.
  double ngspice_s = 0, xbar_one_read_s = 0, ngspice_max_rel_err = 0;
  std::string xbar_one_read_mode;
};

// Runs the benchmark; throws UserError for bad options, std::runtime_error if a solver fails.
BenchReport bench_solvers(const BenchOptions& options);
std::string bench_table(const BenchReport& report);
std::string bench_json(const BenchReport& report);

}  // namespace xbar::tools
