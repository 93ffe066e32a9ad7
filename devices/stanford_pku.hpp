// The Stanford-PKU metal-oxide RRAM compact model (model `rram-stanford-pku`): a filament gap g
// between the filament tip and the electrode sets the current, I = I0 exp(-g/g0) sinh(V/V0), and
// moves under field and heat, dg/dt = -v0 exp(-q Ea/(k T)) sinh(gamma a0 q V/(tox k T)).
// Exposed here so that tests can reach the right-hand side and the pulse integrator; the model
// registers through rram_stanford_pku_info() (models.hpp). Equations, choices and units are
// documented in stanford_pku.cpp.
#pragma once

#include <memory>
#include <vector>

#include "core/card.hpp"
#include "core/card_schema.hpp"
#include "devices/device.hpp"
#include "devices/pulse.hpp"

namespace xbar::devices {

// Parameters of the model (SI units; card keys under `device.` named like the fields). The
// defaults are the published ones (Stanford RRAM model v1.0.0, Jiang et al. 2014/2016) unless a
// comment says otherwise; this struct is the one place they are written.
struct StanfordPkuParams {
  double i0 = 1e-3;          // A, current prefactor I0 (before the window rescaling)
  double g0 = 0.25e-9;       // m, gap decay length of the current
  double v0 = 0.25;          // V, voltage scale of the sinh conduction
  double vel0 = 10.0;        // m/s, gap velocity prefactor (Vel0)
  double ea = 0.6;           // eV, activation energy of vacancy generation/migration
  double a0 = 0.25e-9;       // m, atomic hopping distance
  double gamma0 = 16.0;      // 1, field enhancement factor at zero gap
  double beta = 0.8;         // 1, enhancement loss with gap: gamma = gamma0 - beta (g / 1 nm)^3
  double tox = 12e-9;        // m, oxide thickness
  double r_th = 2.1e3;       // K/W, effective thermal resistance: T = T0 + |V I| r_th
  double t0 = 298.0;         // K, ambient temperature
  double f_min = 1.4e9;      // V/m, minimum field gamma |V| / tox for the gap to move
  double gap_min = 0.2e-9;   // m, smallest gap (most conductive state)
  double gap_max = 1.7e-9;   // m, largest gap
  double v_read = 0.1;       // V, read voltage at which the read conductance I/V is defined
  double d2d_sigma_vel0 = 0.05;    // 1, sigma of ln(vel0) between devices (lognormal, median vel0)
  double d2d_sigma_gamma0 = 0.01;  // 1, relative sigma of gamma0 between devices (Gaussian)
  double gap_noise_rel = 0.1;      // 1, per-pulse gap kick sigma relative to the pulse's gap change
  double gap_noise_sigma = 1e-12;  // m, per-pulse gap kick sigma added whenever a pulse moves the gap
  double read_noise_rel = 0.005;   // 1, relative sigma of the read noise of read_conductance()
  double ode_abs_tol = 1e-17;      // m, absolute tolerance of the adaptive pulse integrator
  double ode_rel_tol = 1e-8;       // 1, relative tolerance of the adaptive pulse integrator
};

// The model's parameter table (its own keys, then write_verify_params() with this model's
// write-verify defaults).
std::vector<core::ParamSpec> stanford_pku_params();
StanfordPkuParams stanford_pku_params_from(const core::DeviceOptions& options);

// What one pulse integration did.
struct PulseIntegration {
  double gap = 0;      // m, gap at the end of the pulse (deterministic part, no noise)
  int steps = 0;       // accepted integrator steps
  int rejected = 0;    // rejected integrator steps
  bool moved = false;  // the field exceeded f_min: the gap could move during the pulse
};

class StanfordPkuDevice final : public Device, public PulseDevice {
 public:
  // CellState layout: [0] gap (m), [1] the device's vel0 (m/s), [2] the device's gamma0.
  static constexpr int kGap = 0;
  static constexpr int kVel0 = 1;
  static constexpr int kGamma0 = 2;

  // g_min, g_max: the card's analog window (S), read conductances at params.v_read.
  StanfordPkuDevice(const StanfordPkuParams& params, double g_min, double g_max, const WriteVerifyOptions& write_verify);

  // Device
  ProgrammedArray program(const Eigen::MatrixXd& g_target, core::RandomStream& rng) const override;
  Eigen::MatrixXd read_conductance(const ProgrammedArray& state, double time_s, core::RandomStream& rng) const override;
  const CellIv* iv() const override { return iv_.get(); }
  std::string cell_state_units(const std::string& name) const override { return name == "gap" ? "m" : "1"; }

  // PulseDevice
  CellState initial_state(double g_start, core::RandomStream& rng) const override;
  void apply_pulse(CellState& state, const Pulse& pulse, core::RandomStream& rng) const override;
  double conductance(const CellState& state) const override { return conductance_of_gap(state[kGap]); }

  // A device with the nominal parameters (no device-to-device variation) at gap `gap` (m).
  CellState nominal_state(double gap) const;

  // The model equations.
  double current(double gap, double voltage) const;      // A, cell current (rescaled to the window)
  double temperature(double gap, double voltage) const;  // K, local temperature T0 + |V I| r_th
  // dg/dt (m/s) of a device at gap `gap` under `voltage`: zero below the minimum field and at a
  // bound when pushing outward.
  double gap_rate(const CellState& device, double voltage, double gap) const;
  // The deterministic gap after `pulse` from state[kGap], integrated with the adaptive
  // Dormand-Prince 5(4) stepper at the given tolerances (abs_tol in m), clamped at the bounds.
  PulseIntegration integrate_pulse(const CellState& state, const Pulse& pulse, double abs_tol, double rel_tol) const;

  // The read window: G(gap) = s I0 exp(-gap/g0) sinh(v_read/V0) / v_read.
  double conductance_of_gap(double gap) const;
  double gap_of_conductance(double g) const;  // inverse, clamped to [gap_min, gap_max]
  double current_scale() const { return current_scale_; }   // s
  double gap_usable_max() const { return gap_usable_max_; }  // m, G(gap_usable_max) = g_min (or gap_max)

  const StanfordPkuParams& params() const { return p_; }
  const WriteVerifyOptions& write_verify_options() const { return wv_; }

 private:
  StanfordPkuParams p_;
  double g_min_ = 0, g_max_ = 0;
  WriteVerifyOptions wv_;
  double current_scale_ = 1;
  double gap_usable_max_ = 0;
  std::unique_ptr<CellIv> iv_;
};

}  // namespace xbar::devices
