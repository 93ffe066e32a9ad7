// Reusable stochastic processes, shared by every device model and the tile: variation fields,
// stuck-at fault maps and random telegraph noise. Every function takes its random stream as an
// argument and draws in a fixed (row-major) order, so a seed gives the same result everywhere.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "core/random.hpp"

namespace xbar::noise {

using MatrixI = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic>;

// A zero-mean Gaussian field over an R×C array with standard deviation `sigma` (exactly, as a
// distribution: the marginal of every cell is N(0, sigma^2)). With correlation_length_cells > 0
// the field is spatially correlated with a Gaussian kernel of that length (in cells), normalised
// so the marginal variance stays sigma^2; 0 gives independent cells.
Eigen::MatrixXd gaussian_field(int rows, int cols, double sigma, double correlation_length_cells,
                               core::RandomStream& rng);

// A lognormal multiplicative field: exp(N(-s^2/2, s^2)) with s = sigma_log, so its mean is 1.
Eigen::MatrixXd lognormal_field(int rows, int cols, double sigma_log, double correlation_length_cells,
                                core::RandomStream& rng);

// Stuck-at fault map: each cell independently stuck low with probability rate_low, stuck high
// with probability rate_high (rate_low + rate_high <= 1), else healthy. Values: 0 healthy,
// -1 stuck low, +1 stuck high.
MatrixI stuck_at_map(int rows, int cols, double rate_low, double rate_high, core::RandomStream& rng);

// Overwrites stuck cells of g with g_low / g_high.
void apply_stuck_at(Eigen::MatrixXd& g, const MatrixI& fault_map, double g_low, double g_high);

// Random telegraph noise: a two-state trap (capture rate lambda_c, emission rate lambda_e, Hz)
// in a fraction of the cells; an occupied trap lowers the cell's conductance by amplitude_rel·G.
struct RtnOptions {
  double fraction = 0;        // share of cells with an active trap
  double amplitude_rel = 0;   // relative conductance change while occupied
  double capture_rate = 1;    // Hz
  double emission_rate = 1;   // Hz
  // Stationary occupancy probability lambda_c / (lambda_c + lambda_e).
  double occupancy() const { return capture_rate / (capture_rate + emission_rate); }
};

// Which cells carry a trap (drawn once per tile): 1 or 0.
MatrixI rtn_trap_map(int rows, int cols, const RtnOptions& options, core::RandomStream& rng);

// Trap occupancy at a sequence of read times (s, increasing): the two-state Markov chain sampled
// exactly: the first read from the stationary distribution, each later one conditioned on the
// previous with P(stay) from exp(-(lambda_c + lambda_e) dt). Returns one R×C 0/1 map per time.
std::vector<MatrixI> rtn_occupancy(const MatrixI& trap_map, const RtnOptions& options,
                                   const std::vector<double>& times_s, core::RandomStream& rng);

// Applies occupancy to conductances: g *= (1 - amplitude_rel) where a trap is occupied.
void apply_rtn(Eigen::MatrixXd& g, const MatrixI& occupied, const RtnOptions& options);

}  // namespace xbar::noise
