// Analog layers: weight matrices on simulated crossbar tiles, and the training methods that
// differ in how a gradient passes them.
//
// Mapping a layer onto tiles
// --------------------------
// A layer's float weight W (out × in) is clipped to ±w_max (the card's mapping.w_max) and split
// into blocks: rows of the crossbar are inputs, so the inputs are cut into groups of at most
// tile.rows and the outputs into groups of at most outputs_that_fit(mapping, tile.cols); each
// block is one circuits::Tile of the card's size (unused rows are driven at 0 V, unused columns
// hold g_min). A tile's digitised outputs are added digitally over the input groups, after each
// tile's ADC, as a chip does; the bias is added digitally.
// Input scaling: the layer's inputs x are divided by a per-layer input scale s_x before the DAC
// (inputs beyond s_x clip at the DAC's input_max): s_x is the largest |x| seen in the first
// training batch (kept in the checkpoint as a buffer, refreshed by an exponential moving average
// of each batch's maximum while training) so that the DAC's range covers the activations; the
// outputs are multiplied back by s_x. Weight-to-conductance scaling is the card's mapping:
// |w| = w_max ↔ g_max − g_min on one column of the differential pair.
// ADC ranges: training (ste, nat-full) sets every tile's column ranges from the current
// mini-batch itself (the card's calibration percentile of |i| over the batch: a dynamic range
// rule, as if the chip had been calibrated on inputs like these); evaluation calibrates them
// once per programming from held-out inputs (HardwarePhase::calibrate_adc) and then keeps them.
//
// Training methods (TrainingMethod)
// ---------------------------------
// ideal    : y = W_clip x + b, digital.
// nat      : standard noise-aware training. y = W̃ x + b + n, W̃ = W_clip + σ_w(W_clip) ⊙ ε,
//            ε ~ N(0, 1) per weight and mini-batch, σ_w from the card's device (programming and
//            read noise at the training read time, tabulated by Monte Carlo of the device model
//            and mapped to weight units through the differential pair), with dL/dW including
//            dσ_w/dW; n ~ N(0, σ_out²) with σ_out the card's ADC resolution in output units
//            (LSB/√12 of a range set to the batch's largest |y|). No IR drop, no ADC, no faults.
// nat-full : NAT differentiated through differentiable surrogates of the same high-fidelity
//            model: programming noise reparameterised per cell, stuck cells, the exact linear
//            circuit with IR drop (M(G) and its adjoint for dL/dG), a smooth ADC (soft rounding
//            and soft clipping). Stores the circuit sensitivities its backward needs.
// ste      : extended straight-through estimator. Forward: the full tile simulation (fresh
//            programming per step, faults, read noise, IR drop by the effective-matrix solver,
//            DAC, ADC). Backward (SteBackward), dL/dW masked to |W| <= w_max in every variant:
//              clean      dL/dx = W_clipᵀ dL/dy,  dL/dW = dL/dy xᵀ
//              programmed dL/dx = W_progᵀ dL/dy with W_prog the weights the step's read
//                         conductances represent (no wires), dL/dW = dL/dy xᵀ
//              effective  dL/dx = J_effᵀ dL/dy with J_eff the exact Jacobian of the tile's linear
//                         circuit (from the effective matrix M, IR drop included), dL/dW as above
//            Each stores x and, for programmed / effective, one out × in matrix per layer.
//            With column calibration in training (AnalogOptions::train_column_calibration), the
//            forward also fits one gain g and offset c per output on the mini-batch itself, by
//            least squares of the ideal layer W_clip x on the hardware outputs, and returns
//            g ⊙ y + c: the correction `xbar eval --calibrate-columns` applies, so the network
//            trains through the calibrated hardware it will be scored on. The backward's matrix
//            (programmed, effective) then carries the gains, diag(g) W_prog or diag(g) J_eff;
//            clean stays W_clip, which is what the calibration maps onto. With
//            train_calibration_fraction f < 1 only a drawn fraction f of the steps is calibrated;
//            with train_calibration_target nominal_hardware the fit maps onto the nominal tiles'
//            outputs instead of W_clip x.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/card.hpp"
#include "devices/registry.hpp"
#include "training/network.hpp"

namespace xbar::training {

enum class TrainingMethod { ideal, nat, nat_full, ste };
enum class SteBackward { clean, programmed, effective };

// "ideal", "nat", "nat-full", "ste"; throws core::UserError naming the option and the choices.
TrainingMethod parse_training_method(const std::string& text);
std::string to_string(TrainingMethod method);
// "clean", "programmed", "effective"; throws core::UserError.
SteBackward parse_ste_backward(const std::string& text);
std::string to_string(SteBackward backward);

// What per-output column calibration maps each analog layer's outputs onto: what the network
// was trained to expect.
enum class CalibrationTarget {
  ideal_layer,       // W_c x: networks trained digitally or with weight noise (ideal, nat)
  nominal_hardware,  // the same tiles without their random parts (devices exactly at their
                     // targets, no faults, no read noise or drift, ideal ADC) but with the
                     // wires: networks trained through the circuit (ste, nat-full)
};
// The target for a network trained with `method`, with or without column calibration in
// training (which calibrates onto `train_target`, so the network expects that).
CalibrationTarget calibration_target_for(TrainingMethod method, bool train_column_calibration = false,
                                         CalibrationTarget train_target = CalibrationTarget::ideal_layer);
// "ideal" / "nominal" for the targets above; throws core::UserError naming the option
// (--train-calibrate-onto) and the choices.
CalibrationTarget parse_calibration_target(const std::string& text);

struct AnalogOptions {
  TrainingMethod method = TrainingMethod::ste;
  SteBackward ste_backward = SteBackward::effective;
  double train_read_time_s = 0;  // read time of the hardware seen in training (s after programming)
  CalibrationTarget calibration_target = CalibrationTarget::ideal_layer;
  // ste: calibrate every output in the training forward (below: in which steps, onto what)
  bool train_column_calibration = false;
  // ste with train_column_calibration: the fraction of training steps whose forward is calibrated,
  // in (0, 1]; the others read the raw hardware, so the network learns to work both ways. Which
  // steps is drawn from (card seed, step), the same for every layer of a step.
  double train_calibration_fraction = 1.0;
  // ste with train_column_calibration: what the training calibration maps the outputs onto, the
  // ideal layer W_c x (default) or the nominal hardware (the wires kept: only the random parts of
  // the hardware are corrected, so the raw outputs stay close to what the network expects).
  CalibrationTarget train_calibration_target = CalibrationTarget::ideal_layer;
  int vectors_per_chunk = 2048;  // input vectors per tile call: bounds the working memory, keeps it in cache
};

// Makes AnalogLinear / AnalogConv2d on the card's tiles; all share one HardwareContext.
class AnalogLayerFactory final : public LayerFactory {
 public:
  AnalogLayerFactory(const core::Card& card, const devices::DeviceRegistry& registry, const AnalogOptions& options);
  ~AnalogLayerFactory() override;
  std::unique_ptr<Layer> linear(int in_features, int out_features, core::RandomStream& rng, Init init,
                                const std::string& name) const override;
  std::unique_ptr<Layer> conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init,
                                const std::string& name) const override;
  std::shared_ptr<HardwareContext> context() const override { return context_; }

  struct Shared;  // what the layers of one factory share (analog.cpp)

 private:
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<HardwareContext> context_;
};

}  // namespace xbar::training
