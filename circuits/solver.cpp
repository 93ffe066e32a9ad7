#include "circuits/solver.hpp"

#include "circuits/direct_solver.hpp"
#include "circuits/effective_solver.hpp"
#include "circuits/iterative_solver.hpp"

namespace xbar::circuits {

std::string resolve_method(const core::SolverOptions& options, bool nonlinear_cells, int vectors_per_state) {
  if (options.method != "auto") return options.method;
  if (nonlinear_cells) return "iterative";  // Newton with line-preconditioned CG steps: no factorisation per step
  return vectors_per_state >= 8 ? "effective" : "iterative";
}

std::unique_ptr<Solver> make_solver(const core::SolverOptions& options, int rows, int cols,
                                    const core::WireOptions& wires) {
  if (options.method == "direct")
    return std::make_unique<DirectSolver>(rows, cols, wires, options.tol, options.newton_max_iter);
  if (options.method == "effective") return std::make_unique<EffectiveSolver>(rows, cols, wires);
  if (options.method == "iterative")
    return std::make_unique<IterativeSolver>(rows, cols, wires, options.tol, options.max_iter, options.warm_start,
                                             options.newton_max_iter);
  throw core::UserError("solver method '" + options.method + "' has no solver (auto is resolved by the tile)");
}

}  // namespace xbar::circuits
