// How a model is built and driven independently of where its weight matrices live.
//
// A model (models/) asks a LayerFactory for every weight-matrix layer (fully connected or
// convolution); the digital factory returns Linear / Conv2d, the analog factory (analog.hpp)
// returns AnalogLinear / AnalogConv2d whose forward pass runs on simulated tiles. Both draw their
// initial weights from the same stream in the same order and expose the same parameters()
// (weight, then bias), so a checkpoint trained one way loads into a model built the other way.
//
// The trainer and the evaluator steer every analog layer of a model at once through the
// HardwareContext the analog factory shares with them: which training step (mini-batch) is
// running — each step draws fresh programming noise, faults, read noise — or which independent
// programming is being evaluated, at which read time, and which calibration phase the next
// forward passes belong to. Digital models ignore it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "training/layers.hpp"

namespace xbar::training {

// What the next forward passes of the analog layers do.
enum class HardwarePhase {
  train,               // training: the hardware of step `step` (fresh draws per step)
  calibrate_adc,       // evaluation: set each tile's ADC ranges from this batch, then read
  calibrate_columns,   // evaluation: fit each output's gain and offset on this batch, then read
  evaluate,            // evaluation: read the hardware of programming `programming` at `read_time_s`
};

struct HardwareContext {
  HardwarePhase phase = HardwarePhase::train;
  std::uint64_t step = 0;         // training step (mini-batch index since the start of training)
  std::uint64_t programming = 0;  // evaluation: which independent programming of the trained weights
  double read_time_s = 0;         // seconds after programming at which the tiles are read
  bool column_calibration = false;  // evaluation: apply the fitted per-output gain and offset
};

// Makes the weight-matrix layers of a model.
class LayerFactory {
 public:
  virtual ~LayerFactory() = default;
  // y = W x + b with W out×in (see Linear); `name` identifies the layer in logs and checkpoints.
  virtual std::unique_ptr<Layer> linear(int in_features, int out_features, core::RandomStream& rng, Init init,
                                        const std::string& name) const = 0;
  // Convolution as one matrix product on im2col columns (see Conv2d).
  virtual std::unique_ptr<Layer> conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init,
                                        const std::string& name) const = 0;
  // The context its analog layers follow (nullptr for a digital factory).
  virtual std::shared_ptr<HardwareContext> context() const { return nullptr; }
};

// Plain digital layers: Linear and Conv2d.
class DigitalLayerFactory final : public LayerFactory {
 public:
  std::unique_ptr<Layer> linear(int in_features, int out_features, core::RandomStream& rng, Init init,
                                const std::string& name) const override;
  std::unique_ptr<Layer> conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init,
                                const std::string& name) const override;
};

}  // namespace xbar::training
