// Statistical RRAM models: fitted programming error, its growth with time (retention /
// relaxation) and read noise.
//
// rram-wan2022: W. Wan et al., "A compute-in-memory chip based on resistive random-access memory",
//   Nature 608, 504 (2022) (NeuRRAM), programming error vs conductance after write-verify, read
//   1 s, 1 day and 2 days after programming; polynomial fits of the published figure as in IBM
//   aihwkit's ReRamWan2022NoiseModel, reference g_max 40 uS, x = g_T / g_max:
//     sigma(x, 1 s)    = 0.348 + 16.030 x - 43.853 x^2 + 45.393 x^3 - 16.815 x^4 uS,
//     sigma(x, 1 day)  = 0.701 + 22.086 x - 50.773 x^2 + 47.095 x^3 - 16.458 x^4 uS,
//     sigma(x, 2 days) = 0.782 + 20.274 x - 43.507 x^2 + 37.062 x^3 - 11.934 x^4 uS,
//   each scaled by device.g_max / 40 uS.
//   Decisions (the paper gives marginal distributions at three times only):
//   - Between the fit times sigma(x, t) is interpolated linearly in log10(t) (1 s - 1 day, 1 day -
//     2 days); for t <= 1 s the 1 s fit holds, beyond 2 days the 2-day fit holds (no
//     extrapolation of the measured growth).
//   - One programmed array is read consistently: at programming every cell draws two standard
//     normals z0 (cell_state "z_program") and z1 (cell_state "z_retention"); a read at t sees
//       g = max(g_T + z0 sigma(x, 1 s) + z1 sqrt(max(sigma(x, t)^2 - sigma(x, 1 s)^2, 0)), 0),
//     so the marginal standard deviation at each fit time is the published sigma (the 1-day and
//     2-day fits lie above the 1 s fit for every x in [0, 1]) and the 1 s error persists.
//   - g_programmed is the 1 s state, max(g_T + z0 sigma(x, 1 s), 0): a read at t <= 1 s returns it.
//   - No separate read noise: the fits are of single reads and already hold their fluctuation;
//     the read stream is not used.
//
// rram-hfox-ibm: analog filamentary conductive-metal-oxide (CMO)/HfOx RRAM of IBM Research Zurich,
//   statistical characterisation by Falcone et al. (in review at the time of aihwkit's release)
//   and 1/f read noise by Lombardo et al. (DRC 2024), as fitted in IBM aihwkit's
//   ReRamCMONoiseModel. Conductances in uS, characterised over 8-90 uS:
//     programming (write-verify band): sigma_p = 0.00081107 + 0.00106879 g uS (0.2 % band),
//                                      sigma_p = 0.0112185391 + 0.01129027418 g uS (2 % band),
//     relaxation after t seconds:     mean shift -0.08900206 ln t uS,
//                                      sigma 0.04201137 ln t + 0.41183342 uS (independent of g),
//     read noise:                      sigma_r = 0.0277316483 log10(g / 1 uS) sqrt(ln((t + t_r) / (2 t_r))) uS,
//                                      t_r = 1 us, fresh at every read, g the relaxed conductance.
//   Decisions:
//   - Absolute units: the fits are in physical uS (the programming sigma is proportional to g,
//     the relaxation independent of it), so they are NOT rescaled to the card's window; a window
//     outside 8-90 uS extrapolates the fits.
//   - Relaxation is consistent across reads of one array: each cell draws one standard normal at
//     programming (cell_state "z_relaxation"); at t the cell has moved by
//     drift_scale · (mean_shift(t) + sigma_rel(t) z).
//   - For t < 1 s the mean shift is held at 0 (the log fit would predict a rise) and the sigma fit
//     is extrapolated in ln t down to where it reaches 0 (t = 55 us), 0 below: continuous at 1 s
//     and exactly g_programmed at t = 0.
//   - The read-noise time factor is clamped at 0 for t <= t_r (ln < 0 there), and log10(g / 1 uS)
//     at 0 for g < 1 uS, so sigma_r >= 0.
//   - Every conductance is clamped at 0 (aihwkit clips to [g_min, g_max]; a physical cell can
//     leave the mapping window, so only the physical bound is applied).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "devices/cell_iv.hpp"
#include "devices/models.hpp"

namespace xbar::devices {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

constexpr double kMicro = 1e-6;

void check_time(double time_s, const char* model) {
  if (!(time_s >= 0) || !std::isfinite(time_s))
    throw std::invalid_argument(std::string(model) + " read: time since programming must be a finite number >= 0 s");
}

const Eigen::MatrixXd& state_of(const ProgrammedArray& state, const char* key, const char* model) {
  const auto it = state.cell_state.find(key);
  if (it == state.cell_state.end())
    throw std::invalid_argument(std::string(model) + " read: the programmed array has no '" + key + "'");
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// NeuRRAM (Wan et al. 2022)

constexpr double kWanGMaxRefUs = 40.0;
constexpr double kWanT1 = 1.0, kWanT2 = 86400.0, kWanT3 = 172800.0;  // s: the fit times
constexpr double kWanFits[3][5] = {
    {0.348, 16.030, -43.853, 45.393, -16.815},  // 1 s
    {0.701, 22.086, -50.773, 47.095, -16.458},  // 1 day
    {0.782, 20.274, -43.507, 37.062, -11.934},  // 2 days
};

double wan_fit_us(int k, double x) {
  const double* c = kWanFits[k];
  return std::max(c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * c[4]))), 0.0);
}

class WanDevice final : public Device {
 public:
  explicit WanDevice(const core::DeviceOptions& options) {
    g_max_ = options.g_max;
    if (!(g_max_ > 0)) throw std::invalid_argument(options.model + ": device.g_max must be > 0");
    noise_scale_ = options.param("noise_scale");
    iv_ = make_cell_iv(options);
  }

  // Programming-error sigma (S) at x = g_T / g_max and t seconds after programming.
  double sigma(double x, double t) const {
    const double unit = noise_scale_ * g_max_ / kWanGMaxRefUs;  // S per published uS
    if (t <= kWanT1) return unit * wan_fit_us(0, x);
    if (t >= kWanT3) return unit * wan_fit_us(2, x);
    const bool first = t <= kWanT2;
    const double lo = first ? kWanT1 : kWanT2, hi = first ? kWanT2 : kWanT3;
    const double w = std::log10(t / lo) / std::log10(hi / lo);
    const int k = first ? 0 : 1;
    return unit * ((1.0 - w) * wan_fit_us(k, x) + w * wan_fit_us(k + 1, x));
  }

  ProgrammedArray program(const Eigen::MatrixXd& g_target, core::RandomStream& rng) const override {
    core::RandomStream z0_rng = rng.derive("rram_programming_error");
    core::RandomStream z1_rng = rng.derive("rram_retention");
    const Eigen::Index rows = g_target.rows(), cols = g_target.cols();
    ProgrammedArray out;
    out.g_target = g_target;
    out.g_programmed.resize(rows, cols);
    Eigen::MatrixXd z0(rows, cols), z1(rows, cols);
    for (Eigen::Index i = 0; i < rows; ++i) {
      for (Eigen::Index j = 0; j < cols; ++j) {
        z0(i, j) = z0_rng.normal();
        z1(i, j) = z1_rng.normal();
        const double g_t = g_target(i, j);
        out.g_programmed(i, j) = std::max(g_t + z0(i, j) * sigma(relative(g_t), kWanT1), 0.0);
      }
    }
    out.cell_state["z_program"] = std::move(z0);
    out.cell_state["z_retention"] = std::move(z1);
    return out;
  }

  Eigen::MatrixXd read_conductance(const ProgrammedArray& state, double time_s, core::RandomStream&) const override {
    check_time(time_s, "rram-wan2022");
    const Eigen::MatrixXd& z0 = state_of(state, "z_program", "rram-wan2022");
    const Eigen::MatrixXd& z1 = state_of(state, "z_retention", "rram-wan2022");
    const Eigen::Index rows = state.g_target.rows(), cols = state.g_target.cols();
    Eigen::MatrixXd g(rows, cols);
    for (Eigen::Index i = 0; i < rows; ++i) {
      for (Eigen::Index j = 0; j < cols; ++j) {
        const double g_t = state.g_target(i, j);
        const double x = relative(g_t);
        const double s1 = sigma(x, kWanT1);
        const double st = sigma(x, time_s);
        const double growth = std::sqrt(std::max(st * st - s1 * s1, 0.0));
        g(i, j) = std::max(g_t + z0(i, j) * s1 + z1(i, j) * growth, 0.0);
      }
    }
    return g;
  }

  const CellIv* iv() const override { return iv_.get(); }

 private:
  double relative(double g_t) const { return std::clamp(g_t / g_max_, 0.0, 1.0); }

  double g_max_ = 0;
  double noise_scale_ = 1;
  std::unique_ptr<CellIv> iv_;
};

// ---------------------------------------------------------------------------------------------
// IBM CMO/HfOx (aihwkit ReRamCMONoiseModel)

struct HfoxFit {
  double prog_c0_us;  // sigma_p = c0 + c1 · g[uS]  (uS)
  double prog_c1;
};
constexpr HfoxFit kHfoxBand02{0.00081107, 0.00106879};
constexpr HfoxFit kHfoxBand2{0.0112185391, 0.01129027418};
constexpr double kHfoxRelaxMeanPerLn = -0.08900206;  // uS per ln(t / 1 s)
constexpr double kHfoxRelaxSigmaPerLn = 0.04201137;  // uS per ln(t / 1 s)
constexpr double kHfoxRelaxSigma0 = 0.41183342;      // uS at t = 1 s
constexpr double kHfoxReadK = 0.0277316483;          // uS per decade of g / 1 uS

class HfoxDevice final : public Device {
 public:
  explicit HfoxDevice(const core::DeviceOptions& options) {
    const std::string& band = options.text_param("verify_band");
    if (band == "0.2%") {
      fit_ = kHfoxBand02;
    } else if (band == "2%") {
      fit_ = kHfoxBand2;
    } else {
      throw std::invalid_argument("rram-hfox-ibm: device.verify_band must be 0.2% or 2%, got " + band);
    }
    prog_noise_scale_ = options.param("prog_noise_scale");
    drift_scale_ = options.param("drift_scale");
    read_noise_scale_ = options.param("read_noise_scale");
    t_read_ = options.param("t_read");
    iv_ = make_cell_iv(options);
  }

  // Programming sigma (S) at target g_t (S).
  double sigma_program(double g_t) const {
    return prog_noise_scale_ * (fit_.prog_c0_us + fit_.prog_c1 * (g_t / kMicro)) * kMicro;
  }
  // Relaxation mean shift and sigma (S) at t seconds after programming, before drift_scale.
  static double relax_mean(double t) { return t >= 1.0 ? kHfoxRelaxMeanPerLn * std::log(t) * kMicro : 0.0; }
  static double relax_sigma(double t) {
    if (t <= 0) return 0.0;
    return std::max(kHfoxRelaxSigmaPerLn * std::log(t) + kHfoxRelaxSigma0, 0.0) * kMicro;
  }
  // Read-noise sigma (S) of a cell of conductance g (S) read t seconds after programming.
  double sigma_read(double g, double t) const {
    const double decades = g > kMicro ? std::log10(g / kMicro) : 0.0;
    const double time_factor = std::sqrt(std::max(std::log((t + t_read_) / (2.0 * t_read_)), 0.0));
    return read_noise_scale_ * kHfoxReadK * decades * time_factor * kMicro;
  }

  ProgrammedArray program(const Eigen::MatrixXd& g_target, core::RandomStream& rng) const override {
    core::RandomStream error_rng = rng.derive("rram_programming_error");
    core::RandomStream relax_rng = rng.derive("rram_relaxation");
    const Eigen::Index rows = g_target.rows(), cols = g_target.cols();
    ProgrammedArray out;
    out.g_target = g_target;
    out.g_programmed.resize(rows, cols);
    Eigen::MatrixXd z(rows, cols);
    for (Eigen::Index i = 0; i < rows; ++i) {
      for (Eigen::Index j = 0; j < cols; ++j) {
        const double g_t = g_target(i, j);
        out.g_programmed(i, j) = std::max(g_t + sigma_program(std::max(g_t, 0.0)) * error_rng.normal(), 0.0);
        z(i, j) = relax_rng.normal();
      }
    }
    out.cell_state["z_relaxation"] = std::move(z);
    return out;
  }

  Eigen::MatrixXd read_conductance(const ProgrammedArray& state, double time_s,
                                   core::RandomStream& rng) const override {
    check_time(time_s, "rram-hfox-ibm");
    const Eigen::MatrixXd& z = state_of(state, "z_relaxation", "rram-hfox-ibm");
    const double mean = drift_scale_ * relax_mean(time_s);
    const double spread = drift_scale_ * relax_sigma(time_s);
    const Eigen::Index rows = state.g_programmed.rows(), cols = state.g_programmed.cols();
    Eigen::MatrixXd g(rows, cols);
    for (Eigen::Index i = 0; i < rows; ++i) {
      for (Eigen::Index j = 0; j < cols; ++j) {
        const double relaxed = std::max(state.g_programmed(i, j) + mean + spread * z(i, j), 0.0);
        g(i, j) = std::max(relaxed + sigma_read(relaxed, time_s) * rng.normal(), 0.0);
      }
    }
    return g;
  }

  const CellIv* iv() const override { return iv_.get(); }

 private:
  HfoxFit fit_{};
  double prog_noise_scale_ = 1;
  double drift_scale_ = 1;
  double read_noise_scale_ = 1;
  double t_read_ = 1e-6;
  std::unique_ptr<CellIv> iv_;
};

// Appends the cell I-V parameters every statistical model takes.
DeviceModelInfo with_cell_iv(DeviceModelInfo info) {
  for (auto& spec : cell_iv_params()) info.params.push_back(std::move(spec));
  return info;
}

}  // namespace

DeviceModelInfo rram_wan2022_info() {
  return with_cell_iv(
      {"rram-wan2022",
       "Statistical RRAM (NeuRRAM): write-verify error vs conductance at 1 s, 1 day and 2 days, interpolated "
       "in log time and consistent across reads; device.g_max stands for the fit's 40 uS.",
       "W. Wan et al., Nature 608, 504 (2022), doi:10.1038/s41586-022-04992-8 (polynomial fits as in IBM "
       "aihwkit ReRamWan2022NoiseModel)",
       {
           core::spec::number("noise_scale", "1", "1", 0, kInfinity,
                              "multiplies every published sigma (uS at g_max 40 uS, scaled by device.g_max / 40 uS); "
                              "1 = published, 0 = exact programming and no retention loss",
                              false),
       },
       [](const core::DeviceOptions& options) { return std::make_unique<WanDevice>(options); }});
}

DeviceModelInfo rram_hfox_info() {
  return with_cell_iv(
      {"rram-hfox-ibm",
       "Statistical CMO/HfOx RRAM (IBM): write-verify error for a 0.2 % or 2 % band, log-time relaxation "
       "consistent across reads, fresh 1/f read noise; absolute uS fits over 8-90 uS (not rescaled to the window).",
       "Falcone et al. (IBM Research Zurich, CMO/HfOx statistics) and Lombardo et al., DRC 2024 (1/f noise), as "
       "fitted in IBM aihwkit ReRamCMONoiseModel (aihwkit.inference.noise.reram)",
       {
           core::spec::choice(
               "verify_band", "2%", {"0.2%", "2%"},
               "acceptance band of the program-and-verify loop: sigma_p = 0.000811 + 0.00106879 g (0.2%) or "
               "0.01122 + 0.01129 g (2%), g and sigma_p in uS"),
           core::spec::number("prog_noise_scale", "1", "1", 0, kInfinity,
                              "multiplies the programming sigma; 1 = published", false),
           core::spec::number("drift_scale", "1", "1", 0, kInfinity,
                              "multiplies the relaxation (mean shift -0.089 ln t uS and sigma 0.042 ln t + 0.412 uS); "
                              "1 = published, 0 = none",
                              false),
           core::spec::number("read_noise_scale", "1", "1", 0, kInfinity,
                              "multiplies the 1/f read sigma 0.0277 log10(g/uS) sqrt(ln((t + t_read)/(2 t_read))) uS; "
                              "1 = published, 0 = none",
                              false),
           core::spec::number("t_read", "1e-6", "s", 0, kInfinity, "read duration of the 1/f fit", true),
       },
       [](const core::DeviceOptions& options) { return std::make_unique<HfoxDevice>(options); }});
}

}  // namespace xbar::devices
