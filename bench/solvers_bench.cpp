// Google Benchmark programs for the solver stages at 64, 128, 256 and 512 rows (square arrays,
// 1 ohm per wire segment, conductances 1-25 uS, batches of 64 vectors): assembly, factorisation,
// each solver's batch, and the ideal dense product they are measured against. Compare the
// numbers of one run: these machines are noisy. `xbar bench solvers` prints the same comparison
// as ratios with errors against the direct solver.
#include <benchmark/benchmark.h>

#include "circuits/direct_solver.hpp"
#include "circuits/effective_solver.hpp"
#include "circuits/iterative_solver.hpp"
#include "core/random.hpp"
#include "core/threading.hpp"

namespace {

using namespace xbar;

constexpr int kBatch = 64;
const core::WireOptions kWires{1.0, 1.0, 1.0, 1.0};

struct Problem {
  Eigen::MatrixXd g, v;
  explicit Problem(int n) : g(n, n), v(n, kBatch) {
    core::pin_libraries_to_one_thread();
    core::RandomStream rng(1, "bench");
    for (Eigen::Index k = 0; k < g.size(); ++k) g.data()[k] = rng.uniform(1e-6, 25e-6);
    for (Eigen::Index k = 0; k < v.size(); ++k) v.data()[k] = rng.uniform(-0.2, 0.2);
  }
};

void check(benchmark::State& state, const circuits::SolveSummary& summary) {
  if (!summary.ok()) state.SkipWithError(summary.message.c_str());
}

void BM_IdealGemm(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  const Eigen::MatrixXd gt = p.g.transpose();
  Eigen::MatrixXd i;
  for (auto _ : state) {
    i.noalias() = gt * p.v;
    benchmark::DoNotOptimize(i.data());
  }
}

void BM_Assembly(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    circuits::NodalSystem system(static_cast<int>(p.g.rows()), static_cast<int>(p.g.cols()), kWires);
    system.refill(p.g);
    benchmark::DoNotOptimize(system.matrix().valuePtr());
  }
}

void BM_DirectFactorize(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  circuits::DirectSolver solver(static_cast<int>(p.g.rows()), static_cast<int>(p.g.cols()), kWires);
  for (auto _ : state) check(state, solver.set_conductances(p.g));
}

void BM_DirectBatch(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  circuits::DirectSolver solver(static_cast<int>(p.g.rows()), static_cast<int>(p.g.cols()), kWires);
  check(state, solver.set_conductances(p.g));
  Eigen::MatrixXd i;
  for (auto _ : state) check(state, solver.solve(p.v, i));
}

void BM_EffectiveBuild(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  circuits::EffectiveSolver solver(static_cast<int>(p.g.rows()), static_cast<int>(p.g.cols()), kWires);
  for (auto _ : state) check(state, solver.set_conductances(p.g));
}

void BM_EffectiveBatch(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  circuits::EffectiveSolver solver(static_cast<int>(p.g.rows()), static_cast<int>(p.g.cols()), kWires);
  check(state, solver.set_conductances(p.g));
  Eigen::MatrixXd i;
  for (auto _ : state) check(state, solver.solve(p.v, i));
}

void BM_IterativeCold(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  circuits::IterativeSolver solver(static_cast<int>(p.g.rows()), static_cast<int>(p.g.cols()), kWires, 1e-10, 10000,
                                   true);
  check(state, solver.set_conductances(p.g));
  Eigen::MatrixXd i;
  for (auto _ : state) {
    solver.reset_warm_start();
    check(state, solver.solve(p.v, i));
  }
}

void BM_IterativeWarm(benchmark::State& state) {
  const Problem p(static_cast<int>(state.range(0)));
  Eigen::MatrixXd changed = p.g;
  core::RandomStream rng(2, "bench_change");
  for (Eigen::Index k = 0; k < changed.size(); ++k) changed.data()[k] *= 1.0 + 0.01 * rng.normal();
  circuits::IterativeSolver solver(static_cast<int>(p.g.rows()), static_cast<int>(p.g.cols()), kWires, 1e-10, 10000,
                                   true);
  Eigen::MatrixXd i;
  for (auto _ : state) {
    state.PauseTiming();
    check(state, solver.set_conductances(p.g));
    solver.reset_warm_start();
    check(state, solver.solve(p.v, i));
    check(state, solver.set_conductances(changed));
    state.ResumeTiming();
    check(state, solver.solve(p.v, i));
  }
}

#define XBAR_SIZES ->Arg(64)->Arg(128)->Arg(256)->Arg(512)->Unit(benchmark::kMillisecond)
BENCHMARK(BM_IdealGemm) XBAR_SIZES;
BENCHMARK(BM_Assembly) XBAR_SIZES;
BENCHMARK(BM_DirectFactorize) XBAR_SIZES;
BENCHMARK(BM_DirectBatch) XBAR_SIZES;
BENCHMARK(BM_EffectiveBuild) XBAR_SIZES;
BENCHMARK(BM_EffectiveBatch) XBAR_SIZES;
BENCHMARK(BM_IterativeCold) XBAR_SIZES;
BENCHMARK(BM_IterativeWarm) XBAR_SIZES;

}  // namespace

BENCHMARK_MAIN();
