#include "circuits/direct_solver.hpp"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <cmath>

namespace xbar::circuits {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Largest change of any node voltage a Newton step may make (V).
constexpr double kMaxNewtonStep = 0.2;

template <typename Decomposition>
void quiet(Decomposition& cholesky) {  // failures are reported through the summary
  cholesky.cholmod().print = 0;
  cholesky.cholmod().error_handler = nullptr;
}

}  // namespace

Eigen::MatrixXd ideal_currents(const Eigen::MatrixXd& g_cell, const Eigen::MatrixXd& v_in) {
  return g_cell.transpose() * v_in;
}

struct DirectSolver::NewtonWorker {
  explicit NewtonWorker(const NodalSystem& source) : system(source) {
    quiet(cholesky);
    if (system.unknowns() > 0) cholesky.analyzePattern(system.matrix());
  }
  NodalSystem system;
  Cholesky cholesky;
};

DirectSolver::DirectSolver(int rows, int cols, const core::WireOptions& wires, double tol, int max_iter)
    : system_(rows, cols, wires), tol_(tol), max_iter_(max_iter) {
  state_.method = name();
  quiet(cholesky_);
  const auto start = std::chrono::steady_clock::now();
  if (system_.unknowns() > 0) cholesky_.analyzePattern(system_.matrix());
  state_.analyse_s = seconds_since(start);
  state_.status = core::SolveStatus::singular;
  state_.message = "no conductances set";
}

DirectSolver::~DirectSolver() = default;

std::size_t DirectSolver::memory_bytes() const {
  const auto& a = system_.matrix();
  const double factor = system_.unknowns() > 0 ? const_cast<Cholesky&>(cholesky_).cholmod().lnz : 0.0;
  return static_cast<std::size_t>(factor * (sizeof(double) + sizeof(int))) +
         static_cast<std::size_t>(a.nonZeros()) * (sizeof(double) + sizeof(int));
}

SolveSummary DirectSolver::set_cells(const Eigen::MatrixXd& g_device, const CellModel& model) {
  state_.status = core::SolveStatus::ok;
  state_.message.clear();
  state_.factorize_s = 0;
  if (g_device.rows() != system_.rows() || g_device.cols() != system_.cols()) {
    state_.status = core::SolveStatus::singular;
    state_.message = fmt::format("conductance matrix is {}x{}, the array is {}x{}", g_device.rows(), g_device.cols(),
                                 system_.rows(), system_.cols());
    return state_;
  }
  for (Eigen::Index i = 0; i < g_device.rows(); ++i)
    for (Eigen::Index j = 0; j < g_device.cols(); ++j)
      if (!std::isfinite(g_device(i, j)) || g_device(i, j) < 0) {
        state_.status = core::SolveStatus::non_finite;
        state_.message = fmt::format("cell ({},{}) has conductance {} S; expected a finite value >= 0", i, j,
                                     g_device(i, j));
        return state_;
      }
  g_device_ = g_device;
  model_ = model;
  // Linear cells: their conductance; nonlinear: the small-signal conductance at 0 V, which has the
  // same zero pattern (so the floating-node check holds for both).
  g_cell_ = small_signal_conductance(g_device, model);
  system_.refill(g_cell_);
  if (system_.unknowns() == 0) return state_;
  const std::string floating = system_.floating_node_description(g_cell_);
  if (!floating.empty()) {
    state_.status = core::SolveStatus::singular;
    state_.message = "floating circuit: " + floating;
    return state_;
  }
  if (!model.linear()) {
    workers_.reset();  // Newton factorises per vector; the workers copy the current system lazily
    return state_;
  }
  const auto start = std::chrono::steady_clock::now();
  cholesky_.factorize(system_.matrix());
  state_.factorize_s = seconds_since(start);
  if (cholesky_.info() != Eigen::Success) {
    state_.status = core::SolveStatus::singular;
    state_.message = "the nodal matrix is not positive definite (singular circuit)";
  }
  return state_;
}

SolveSummary DirectSolver::solve(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell,
                                 int probe) {
  SolveSummary summary = state_;
  summary.analyse_s = summary.factorize_s = 0;  // reported by the constructor and set_cells()
  if (!summary.ok()) return summary;
  if (v_in.rows() != system_.rows() || !v_in.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = v_in.rows() != system_.rows()
                          ? fmt::format("v_in has {} rows, the array {}", v_in.rows(), system_.rows())
                          : "v_in holds a non-finite voltage";
    return summary;
  }
  return model_.linear() ? solve_linear(v_in, i_out, v_cell, probe) : solve_nonlinear(v_in, i_out, v_cell, probe);
}

SolveSummary DirectSolver::solve_linear(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out, Eigen::MatrixXd* v_cell,
                                        int probe) {
  SolveSummary summary = state_;
  summary.analyse_s = summary.factorize_s = 0;
  summary.iterations = 1;
  const auto start = std::chrono::steady_clock::now();
  const Eigen::MatrixXd b = system_.rhs(v_in);
  Eigen::MatrixXd x(system_.unknowns(), v_in.cols());
  if (system_.unknowns() > 0) {
    x = cholesky_.solve(b);
    // Relative residual of the symmetric system, from its stored lower triangle.
    const Eigen::MatrixXd r = system_.matrix().selfadjointView<Eigen::Lower>() * x - b;
    for (Eigen::Index k = 0; k < x.cols(); ++k) {
      const double scale = b.col(k).norm();
      summary.residual = std::max(summary.residual, scale > 0 ? r.col(k).norm() / scale : r.col(k).norm());
    }
  }
  i_out = system_.column_currents(x, v_in, g_cell_, v_cell, probe);
  summary.solve_s = seconds_since(start);
  if (!i_out.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = "the solve produced non-finite currents";
  }
  return summary;
}

DirectSolver::NewtonResult DirectSolver::newton(NewtonWorker& worker, const Eigen::VectorXd& v_in) const {
  NewtonResult result;
  SolveSummary& summary = result.summary;
  NodalSystem& system = worker.system;
  const int rows = system.rows(), cols = system.cols();
  Eigen::MatrixXd i_cell(rows, cols), g_diff(rows, cols);
  auto evaluate = [&](const Eigen::VectorXd& x) {  // cell currents and conductances at x; returns F(x)
    result.v_cell = system.cell_voltages(x, v_in);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) cell_current(g_device_(i, j), result.v_cell(i, j), model_, i_cell(i, j), g_diff(i, j));
    return system.residual(x, v_in, i_cell);
  };
  auto factorize_and_solve = [&](const Eigen::MatrixXd& g, const Eigen::VectorXd& b, Eigen::VectorXd& x) {
    system.refill(g);
    worker.cholesky.factorize(system.matrix());
    if (worker.cholesky.info() != Eigen::Success) return false;
    x = worker.cholesky.solve(b);
    return x.allFinite();
  };

  Eigen::VectorXd x = Eigen::VectorXd::Zero(system.unknowns());
  if (system.unknowns() > 0) {
    // Iteration 1: the linear circuit of small-signal conductances.
    system.refill(g_cell_);  // rhs() takes the cells' conductances from the system
    if (!factorize_and_solve(g_cell_, system.rhs(v_in), x)) {
      summary.status = core::SolveStatus::singular;
      summary.message = "the small-signal nodal matrix is not positive definite";
      return result;
    }
    summary.iterations = 1;
  }
  Eigen::VectorXd f = evaluate(x);
  double norm = f.norm();
  double scale = std::max(system.residual_scale(v_in, i_cell), 1e-300);
  while (norm > tol_ * scale) {
    if (summary.iterations >= max_iter_) {
      summary.status = core::SolveStatus::not_converged;
      summary.message = fmt::format("Newton did not converge in {} iterations (relative residual {:.3g}, tol {:.3g})",
                                    max_iter_, norm / scale, tol_);
      break;
    }
    Eigen::VectorXd step;
    if (!factorize_and_solve(g_diff, -f, step)) {
      summary.status = core::SolveStatus::singular;
      summary.message = "the Newton Jacobian is not positive definite (a cell has dI/dV <= 0?)";
      break;
    }
    ++summary.iterations;
    const double largest = step.cwiseAbs().maxCoeff();
    double lambda = largest > kMaxNewtonStep ? kMaxNewtonStep / largest : 1.0;
    Eigen::VectorXd trial = x + lambda * step;
    Eigen::VectorXd f_trial = evaluate(trial);
    for (int halving = 0; halving < 30 && !(f_trial.norm() <= (1.0 - 1e-4 * lambda) * norm); ++halving) {
      lambda *= 0.5;
      trial = x + lambda * step;
      f_trial = evaluate(trial);
    }
    x = std::move(trial);
    f = std::move(f_trial);
    norm = f.norm();
    scale = std::max(system.residual_scale(v_in, i_cell), 1e-300);
  }
  summary.residual = norm / scale;
  result.x = std::move(x);
  result.i_cell = i_cell;
  return result;
}

SolveSummary DirectSolver::solve_nonlinear(const Eigen::MatrixXd& v_in, Eigen::MatrixXd& i_out,
                                           Eigen::MatrixXd* v_cell, int probe) {
  SolveSummary summary = state_;
  summary.analyse_s = summary.factorize_s = 0;
  const auto start = std::chrono::steady_clock::now();
  if (!workers_)
    workers_ = std::make_unique<tbb::enumerable_thread_specific<std::unique_ptr<NewtonWorker>>>();
  const Eigen::Index batch = v_in.cols();
  std::vector<NewtonResult> results(batch);
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, batch), [&](const tbb::blocked_range<Eigen::Index>& range) {
    auto& worker = workers_->local();
    if (!worker) worker = std::make_unique<NewtonWorker>(system_);
    for (Eigen::Index b = range.begin(); b != range.end(); ++b) results[b] = newton(*worker, v_in.col(b));
  });
  i_out.resize(system_.cols(), batch);
  double max_voltage = 0;
  for (Eigen::Index b = 0; b < batch; ++b) {
    const NewtonResult& r = results[b];
    if (summary.ok() && !r.summary.ok()) {
      summary.status = r.summary.status;
      summary.message = fmt::format("input vector {}: {}", b, r.summary.message);
    }
    summary.iterations = std::max(summary.iterations, r.summary.iterations);
    summary.residual = std::max(summary.residual, r.summary.residual);
    if (r.i_cell.size() > 0) {
      i_out.col(b) = r.i_cell.colwise().sum().transpose();
      max_voltage = std::max(max_voltage, r.v_cell.cwiseAbs().maxCoeff());
    }
  }
  if (v_cell && batch > 0) *v_cell = results[probe].v_cell;
  if (max_voltage > model_.iv->max_voltage())
    summary.warning = fmt::format("cells see up to {:.3g} V, beyond the I-V model's validity ({:.3g} V)", max_voltage,
                                  model_.iv->max_voltage());
  summary.solve_s = seconds_since(start);
  if (summary.ok() && !i_out.allFinite()) {
    summary.status = core::SolveStatus::non_finite;
    summary.message = "the solve produced non-finite currents";
  }
  return summary;
}


}  // namespace xbar::circuits
