#include "tools/bench_solvers.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "circuits/direct_solver.hpp"
#include "circuits/effective_solver.hpp"
#include "circuits/iterative_solver.hpp"
#include "circuits/spice.hpp"
#include "core/error.hpp"
#include "core/random.hpp"

namespace xbar::tools {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

template <typename Work>
double median_time(int repeats, Work&& work) {
  std::vector<double> times;
  for (int k = 0; k < repeats; ++k) {
    const auto start = Clock::now();
    work();
    times.push_back(seconds(start));
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

void require(const circuits::SolveSummary& summary, const std::string& what) {
  if (!summary.ok()) throw std::runtime_error(fmt::format("{}: {}", what, summary.message));
}

double rel_err(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& reference) {
  return (actual - reference).cwiseAbs().maxCoeff() / reference.cwiseAbs().maxCoeff();
}

// Runs ngspice on the netlist of (g, v) and returns its column currents and wall time.
Eigen::VectorXd run_ngspice(const circuits::SpiceCircuit& circuit, double& wall_s) {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("xbar-bench-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto netlist = dir / "bench.cir", output = dir / "ngspice.out";
  {
    std::ofstream out(netlist);
    circuits::write_spice_netlist(out, circuit);
  }
  const std::string command = fmt::format("ngspice -b '{}' > '{}' 2>&1", netlist.string(), output.string());
  const auto start = Clock::now();
  const int status = std::system(command.c_str());
  wall_s = seconds(start);
  std::ifstream in(output);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove_all(dir);
  if (status != 0) throw std::runtime_error("ngspice failed (is it installed? apt-get install ngspice):\n" + text.str());
  Eigen::VectorXd currents = Eigen::VectorXd::Constant(circuit.cols, std::nan(""));
  static const std::regex line(R"(i\(vsense_(\d+)\)\s*=\s*([-+0-9.eE]+))", std::regex::icase);
  const std::string all = text.str();
  for (std::sregex_iterator it(all.begin(), all.end(), line), end; it != end; ++it)
    currents[std::stoi((*it)[1])] = std::stod((*it)[2]);
  if (!currents.allFinite()) throw std::runtime_error("ngspice printed no current for some column:\n" + all);
  return currents;
}

}  // namespace

BenchReport bench_solvers(const BenchOptions& o) {
  if (o.rows < 1 || o.cols < 1 || o.batch < 1) throw core::UserError("--rows, --cols and --batch must be >= 1");
  if (o.ngspice && (o.rows > 64 || o.cols > 64))
    throw core::UserError("--ngspice: ngspice takes minutes beyond 64 x 64; use --rows and --cols <= 64");
  BenchReport report;
  report.options = o;
  const core::WireOptions wires{o.r_wire, o.r_wire, o.r_source, o.r_sense};
  core::RandomStream rng(o.seed, "bench");
  Eigen::MatrixXd g(o.rows, o.cols), v(o.rows, o.batch);
  for (Eigen::Index k = 0; k < g.size(); ++k) g.data()[k] = rng.uniform(o.g_min, o.g_max);
  for (Eigen::Index k = 0; k < v.size(); ++k) v.data()[k] = rng.uniform(-0.2, 0.2);
  Eigen::MatrixXd g_changed = g;  // every conductance moved by 1 %
  for (Eigen::Index k = 0; k < g.size(); ++k) g_changed.data()[k] *= 1.0 + 0.01 * rng.normal();
  const int repeats = std::max(1, o.repeats);

  // The floor: the ideal dense product (many repeats: it is sub-millisecond).
  Eigen::MatrixXd i_gemm;
  const Eigen::MatrixXd gt = g.transpose();
  const double gemm_s = median_time(std::max(21, repeats), [&] { i_gemm.noalias() = gt * v; });

  // Direct: the reference.
  BenchRow direct;
  direct.solver = "direct";
  Eigen::MatrixXd i_ref, i_ref_changed, i_out;
  {
    auto start = Clock::now();
    circuits::DirectSolver solver(o.rows, o.cols, wires);
    const double analyse_s = seconds(start);
    start = Clock::now();
    require(solver.set_conductances(g), "direct");
    direct.setup_s = analyse_s + median_time(repeats, [&] { require(solver.set_conductances(g), "direct"); });
    direct.batch_s = median_time(repeats, [&] { require(solver.solve(v, i_ref), "direct"); });
    direct.memory_bytes = solver.memory_bytes();
    direct.iterations = 1;
    require(solver.set_conductances(g_changed), "direct");
    require(solver.solve(v, i_ref_changed), "direct");
  }
  BenchRow gemm;
  gemm.solver = "ideal gemm";
  gemm.batch_s = gemm_s;
  gemm.max_rel_err = rel_err(i_gemm, i_ref);
  gemm.memory_bytes = static_cast<std::size_t>(g.size()) * sizeof(double);
  gemm.note = "G^T v without wires (its error is the IR drop)";
  direct.max_rel_err = 0;
  direct.note = "analysis + factorisation per state, exact reference";

  BenchRow effective;
  effective.solver = "effective";
  {
    circuits::EffectiveSolver solver(o.rows, o.cols, wires);
    effective.setup_s = median_time(repeats, [&] { require(solver.set_conductances(g), "effective"); });
    effective.batch_s = median_time(std::max(21, repeats), [&] { require(solver.solve(v, i_out), "effective"); });
    effective.max_rel_err = rel_err(i_out, i_ref);
    effective.memory_bytes = solver.memory_bytes();
    effective.iterations = 1;
    effective.note = "build of M per state, then one GEMM per batch";
  }

  BenchRow cold, warm;
  cold.solver = "iterative (cold)";
  warm.solver = "iterative (warm, 1 % change)";
  {
    circuits::IterativeSolver solver(o.rows, o.cols, wires, 1e-10, 10000, true);
    circuits::SolveSummary summary;
    cold.setup_s = median_time(repeats, [&] { require(solver.set_conductances(g), "iterative"); });
    cold.batch_s = median_time(repeats, [&] {
      solver.reset_warm_start();
      summary = solver.solve(v, i_out);
      require(summary, "iterative");
    });
    cold.max_rel_err = rel_err(i_out, i_ref);
    cold.iterations = summary.iterations;
    cold.memory_bytes = solver.memory_bytes();
    cold.note = "line-preconditioned CG, tol 1e-10";
    // Each repetition: solve the first state cold, change every conductance by 1 %, time the warm solve.
    std::vector<double> warm_times;
    for (int k = 0; k < repeats; ++k) {
      require(solver.set_conductances(g), "iterative");
      solver.reset_warm_start();
      require(solver.solve(v, i_out), "iterative");
      require(solver.set_conductances(g_changed), "iterative");
      const auto start = Clock::now();
      summary = solver.solve(v, i_out);
      warm_times.push_back(seconds(start));
      require(summary, "iterative");
    }
    std::nth_element(warm_times.begin(), warm_times.begin() + repeats / 2, warm_times.end());
    warm.batch_s = warm_times[repeats / 2];
    warm.setup_s = cold.setup_s;
    warm.max_rel_err = rel_err(i_out, i_ref_changed);
    warm.iterations = summary.iterations;
    warm.memory_bytes = solver.memory_bytes();
    warm.note = "after all conductances moved by 1 %, from the previous solution";
  }
  for (BenchRow* row : {&gemm, &direct, &effective, &cold, &warm}) {
    row->ratio_to_gemm = row->batch_s / gemm_s;
    report.rows.push_back(*row);
  }

  if (o.ngspice) {
    circuits::SpiceCircuit circuit;
    circuit.rows = o.rows;
    circuit.cols = o.cols;
    circuit.wires = wires;
    circuit.g_device = g;
    circuit.v_in = v.col(0);
    circuit.title = "xbar bench solvers";
    const Eigen::VectorXd spice_i = run_ngspice(circuit, report.ngspice_s);
    report.ngspice_max_rel_err = rel_err(i_ref.col(0), spice_i);
    // xbar's fastest exact mode for one read, set-up included.
    const Eigen::MatrixXd one = v.col(0);
    const double direct_one = median_time(repeats, [&] {
      circuits::DirectSolver solver(o.rows, o.cols, wires);
      require(solver.set_conductances(g), "direct");
      require(solver.solve(one, i_out), "direct");
    });
    const double iterative_one = median_time(repeats, [&] {
      circuits::IterativeSolver solver(o.rows, o.cols, wires, 1e-10, 10000, false);
      require(solver.set_conductances(g), "iterative");
      require(solver.solve(one, i_out), "iterative");
    });
    report.xbar_one_read_s = std::min(direct_one, iterative_one);
    report.xbar_one_read_mode = direct_one <= iterative_one ? "direct" : "iterative";
  }
  return report;
}

std::string bench_table(const BenchReport& r) {
  const BenchOptions& o = r.options;
  std::string text = fmt::format(
      "xbar bench solvers: {} x {} array, batch of {}, {:g} ohm per segment (source {:g}, sense {:g}), "
      "g uniform {:g}-{:g} uS, median of {} runs\n",
      o.rows, o.cols, o.batch, o.r_wire, o.r_source, o.r_sense, o.g_min * 1e6, o.g_max * 1e6, o.repeats);
  text += fmt::format("{:<30} {:>11} {:>11} {:>11} {:>12} {:>6} {:>10}  {}\n", "solver", "setup (s)", "batch (s)",
                      "x gemm", "max rel err", "iters", "memory", "");
  for (const BenchRow& row : r.rows)
    text += fmt::format("{:<30} {:>11.4g} {:>11.4g} {:>11.3g} {:>12.2e} {:>6} {:>8.1f}MB  {}\n", row.solver, row.setup_s,
                        row.batch_s, row.ratio_to_gemm, row.max_rel_err, row.iterations, row.memory_bytes / 1e6,
                        row.note);
  const auto find = [&](const std::string& name) -> const BenchRow& {
    return *std::find_if(r.rows.begin(), r.rows.end(), [&](const BenchRow& row) { return row.solver == name; });
  };
  const BenchRow &direct = find("direct"), &cold = find("iterative (cold)"),
                 &warm = find("iterative (warm, 1 % change)"), &effective = find("effective");
  const double direct_changed = direct.setup_s + direct.batch_s;
  text += fmt::format("conductances changed: direct factorisation + batch {:.4g} s; iterative cold {:.3g}x faster, "
                      "warm {:.3g}x faster\n",
                      direct_changed, direct_changed / cold.batch_s, direct_changed / warm.batch_s);
  text += fmt::format("conductances fixed: effective batch {:.3g}x the ideal product; build of M {:.3g}x one "
                      "factorisation\n",
                      effective.ratio_to_gemm, effective.setup_s / std::max(direct.setup_s, 1e-300));
  if (r.ngspice_s > 0)
    text += fmt::format("ngspice: {:.4g} s for one read; xbar {} with set-up {:.4g} s: {:.4g}x faster; agreement "
                        "{:.2e}\n",
                        r.ngspice_s, r.xbar_one_read_mode, r.xbar_one_read_s, r.ngspice_s / r.xbar_one_read_s,
                        r.ngspice_max_rel_err);
  return text;
}

std::string bench_json(const BenchReport& r) {
  std::string text = "[\n";
  for (std::size_t k = 0; k < r.rows.size(); ++k) {
    const BenchRow& row = r.rows[k];
    text += fmt::format(
        "  {{\"solver\": \"{}\", \"setup_s\": {:.6g}, \"batch_s\": {:.6g}, \"ratio_to_gemm\": {:.6g}, "
        "\"max_rel_err\": {:.6g}, \"iterations\": {}, \"memory_bytes\": {}}}{}\n",
        row.solver, row.setup_s, row.batch_s, row.ratio_to_gemm, row.max_rel_err, row.iterations, row.memory_bytes,
        k + 1 < r.rows.size() || r.ngspice_s > 0 ? "," : "");
  }
  if (r.ngspice_s > 0)
    text += fmt::format(
        "  {{\"solver\": \"ngspice\", \"setup_s\": 0, \"batch_s\": {:.6g}, \"ratio_to_gemm\": {:.6g}, "
        "\"max_rel_err\": {:.6g}, \"speedup_of_xbar\": {:.6g}, \"xbar_mode\": \"{}\", \"xbar_one_read_s\": {:.6g}}}\n",
        r.ngspice_s, r.ngspice_s / r.rows.front().batch_s, r.ngspice_max_rel_err, r.ngspice_s / r.xbar_one_read_s,
        r.xbar_one_read_mode, r.xbar_one_read_s);
  return text + "]\n";
}

}  // namespace xbar::tools
