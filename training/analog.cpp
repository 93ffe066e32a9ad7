// Analog layers over tiles and the training methods; see analog.hpp for the definitions.
#include "training/analog.hpp"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <mutex>
#include <numbers>
#include <stdexcept>

#include "circuits/crossbar_adjoint.hpp"
#include "circuits/tile.hpp"
#include "core/error.hpp"
#include "noise/noise.hpp"

namespace xbar::training {

TrainingMethod parse_training_method(const std::string& text) {
  if (text == "ideal") return TrainingMethod::ideal;
  if (text == "nat") return TrainingMethod::nat;
  if (text == "nat-full") return TrainingMethod::nat_full;
  if (text == "ste") return TrainingMethod::ste;
  throw core::UserError("--method: '" + text + "' is not a training method; expected ideal, nat, nat-full or ste");
}

std::string to_string(TrainingMethod method) {
  switch (method) {
    case TrainingMethod::ideal: return "ideal";
    case TrainingMethod::nat: return "nat";
    case TrainingMethod::nat_full: return "nat-full";
    case TrainingMethod::ste: return "ste";
  }
  return "?";
}

SteBackward parse_ste_backward(const std::string& text) {
  if (text == "clean") return SteBackward::clean;
  if (text == "programmed") return SteBackward::programmed;
  if (text == "effective") return SteBackward::effective;
  throw core::UserError("--ste-backward: '" + text + "' is not an STE backward; expected clean, programmed or effective");
}

std::string to_string(SteBackward backward) {
  switch (backward) {
    case SteBackward::clean: return "clean";
    case SteBackward::programmed: return "programmed";
    case SteBackward::effective: return "effective";
  }
  return "?";
}

CalibrationTarget parse_calibration_target(const std::string& text) {
  if (text == "ideal") return CalibrationTarget::ideal_layer;
  if (text == "nominal") return CalibrationTarget::nominal_hardware;
  throw core::UserError("--train-calibrate-onto = '" + text + "': expected ideal or nominal");
}

CalibrationTarget calibration_target_for(TrainingMethod method, bool train_column_calibration,
                                         CalibrationTarget train_target) {
  if (train_column_calibration) return train_target;
  return method == TrainingMethod::ste || method == TrainingMethod::nat_full ? CalibrationTarget::nominal_hardware
                                                                              : CalibrationTarget::ideal_layer;
}

namespace {

// The card of the nominal hardware: the same tiles, wires, access device and DAC, with ideal
// devices at their targets, no faults or variation, no drift compensation and an ideal ADC.
core::Card nominal_card(const core::Card& card) {
  core::Card nominal = card;
  nominal.device.model = "ideal";
  nominal.device.params.clear();
  nominal.device.variation_sigma_log = 0;
  nominal.device.stuck_low_rate = nominal.device.stuck_high_rate = 0;
  nominal.device.rtn_fraction = 0;
  nominal.adc.bits = 0;
  nominal.adc.offset_sigma = nominal.adc.gain_sigma = nominal.adc.noise_sigma = nominal.adc.inl_sigma_lsb = 0;
  nominal.adc.inl_lsb.clear();
  nominal.mapping.drift_compensation = false;
  return nominal;
}

// Mean and standard deviation of the read conductance against the target conductance, on a grid
// of targets, interpolated linearly (so the NAT noise model has a derivative everywhere).
struct ConductanceStatistics {
  std::vector<double> target, mean, sigma;

  // Value of `table` at g and its slope (constant extrapolation outside the grid).
  double at(const std::vector<double>& table, double g, double* slope) const {
    const std::size_t n = target.size();
    if (g <= target.front()) {
      if (slope) *slope = 0;
      return table.front();
    }
    if (g >= target.back()) {
      if (slope) *slope = 0;
      return table.back();
    }
    const double step = target[1] - target[0];
    const auto k = std::min<std::size_t>(static_cast<std::size_t>((g - target[0]) / step), n - 2);
    const double s = (table[k + 1] - table[k]) / step;
    if (slope) *slope = s;
    return table[k] + s * (g - target[k]);
  }
};

// Monte Carlo of the card's device: `cells` cells programmed to each of `levels` targets over
// [g_min, g_max] and read at `time_s` (programming error, drift, read noise; the card's extra
// variation field included as independent per-cell factors).
ConductanceStatistics tabulate_device(const core::Card& card, const devices::DeviceRegistry& registry,
                                      double time_s, int levels = 17, int cells = 2048) {
  const auto device = registry.create(card.device);
  const double g_min = card.device.g_min, g_max = card.device.g_max;
  Eigen::MatrixXd target(levels, cells);
  ConductanceStatistics table;
  for (int l = 0; l < levels; ++l) {
    table.target.push_back(g_min + (g_max - g_min) * l / (levels - 1.0));
    target.row(l).setConstant(table.target.back());
  }
  core::RandomStream program_rng(card.seed, "nat_table_programming");
  core::RandomStream read_rng(card.seed, "nat_table_read");
  const devices::ProgrammedArray state = device->program(target, program_rng);
  Eigen::MatrixXd g = device->read_conductance(state, time_s, read_rng);
  if (card.device.variation_sigma_log > 0) {
    core::RandomStream variation_rng(card.seed, "nat_table_variation");
    g.array() *= noise::lognormal_field(levels, cells, card.device.variation_sigma_log, 0, variation_rng).array();
  }
  for (int l = 0; l < levels; ++l) {
    const double mean = g.row(l).mean();
    table.mean.push_back(mean);
    table.sigma.push_back(std::sqrt((g.row(l).array() - mean).square().sum() / (cells - 1.0)));
  }
  return table;
}

// Least squares per output k (a row): target_k ≈ gain_k · y_k + offset_k over the columns (a
// constant output gets gain 1).
void fit_gain_offset(const Eigen::MatrixXd& y, const Eigen::MatrixXd& target, Eigen::VectorXd& gain,
                     Eigen::VectorXd& offset) {
  gain.resize(y.rows());
  offset.resize(y.rows());
  const double n = static_cast<double>(y.cols());
  for (Eigen::Index k = 0; k < y.rows(); ++k) {
    const double mh = y.row(k).mean(), mt = target.row(k).mean();
    const double var = (y.row(k).array() - mh).square().sum();
    const double cov = ((y.row(k).array() - mh) * (target.row(k).array() - mt)).sum();
    gain[k] = var > 1e-300 * n ? cov / var : 1.0;
    offset[k] = mt - gain[k] * mh;
  }
}

void apply_gain_offset(const Eigen::VectorXd& gain, const Eigen::VectorXd& offset, Eigen::MatrixXd& y) {
  y = (y.array().colwise() * gain.array()).colwise() + offset.array();
}

double percentile_abs(const Eigen::Ref<const Eigen::RowVectorXd>& values, double percentile) {
  const Eigen::Index n = values.size();
  if (n == 0) return 0;
  std::vector<double> magnitudes(values.size());
  for (Eigen::Index b = 0; b < n; ++b) magnitudes[b] = std::fabs(values[b]);
  const auto index = static_cast<std::size_t>(
      std::clamp<double>(std::ceil(percentile / 100.0 * static_cast<double>(n)) - 1.0, 0.0, static_cast<double>(n - 1)));
  std::nth_element(magnitudes.begin(), magnitudes.begin() + index, magnitudes.end());
  return magnitudes[index];
}

constexpr std::uint64_t kNoKey = std::numeric_limits<std::uint64_t>::max();

}  // namespace

// What every analog layer of one factory shares.
struct AnalogLayerFactory::Shared {
  core::Card card;
  const devices::DeviceRegistry* registry = nullptr;
  AnalogOptions options;
  std::shared_ptr<HardwareContext> context;
  mutable int next_layer = 0;
  std::once_flag table_once;
  ConductanceStatistics table;  // NAT noise model, built on first use

  const ConductanceStatistics& statistics() {
    std::call_once(table_once, [&] { table = tabulate_device(card, *registry, options.train_read_time_s); });
    return table;
  }
};

namespace {

using Shared = AnalogLayerFactory::Shared;

// One block of the weight matrix on one tile.
struct Block {
  int in_begin = 0, in_count = 0, out_begin = 0, out_count = 0;
  std::unique_ptr<circuits::Tile> tile;
  std::unique_ptr<circuits::Tile> nominal;  // column calibration target of hardware-trained networks
  // nat-full state of the last forward
  std::unique_ptr<circuits::CrossbarJacobian> jacobian;
};

// The weight-matrix product y = W x of an analog layer, on tiles. Owns the tiles, the buffers
// (input scale, weight clip, column calibration) and what each method's backward keeps.
class AnalogMatrix {
 public:
  AnalogMatrix(std::shared_ptr<Shared> shared, int in, int out, std::string name)
      : shared_(std::move(shared)), in_(in), out_(out), name_(std::move(name)) {
    layer_index_ = shared_->next_layer++;
    input_scale_ = Eigen::MatrixXd::Zero(1, 1);
    weight_clip_ = Eigen::MatrixXd::Zero(1, 1);
    const core::Card& card = shared_->card;
    const int rows = card.tile.rows;
    const int per_tile = core::outputs_that_fit(card.mapping, card.tile.cols);
    if (per_tile <= 0)
      throw core::UserError(card.file.string() + ": tile.cols = " + std::to_string(card.tile.cols) +
                            " holds no output with mapping.scheme and slices of this card");
    for (int o = 0; o < out; o += per_tile)
      for (int i = 0; i < in; i += rows) {
        Block block;
        block.in_begin = i;
        block.in_count = std::min(rows, in - i);
        block.out_begin = o;
        block.out_count = std::min(per_tile, out - o);
        blocks_.push_back(std::move(block));
      }
  }

  std::vector<Eigen::MatrixXd*> buffers() { return {&input_scale_, &weight_clip_}; }
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> named_buffers() {
    return {{"input_scale", &input_scale_}, {"weight_clip", &weight_clip_}};
  }
  void set_input_gradient_needed(bool needed) { input_gradient_needed_ = needed; }
  const std::string& name() const { return name_; }

  // y (out × B) of W (out × in) on x (in × B), without bias.
  Eigen::MatrixXd forward(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    const HardwareContext& ctx = *shared_->context;
    if (ctx.phase == HardwarePhase::train) {
      derive_buffers_for_training(weight, x);
      switch (shared_->options.method) {
        case TrainingMethod::ideal: return forward_ideal(weight, x);
        case TrainingMethod::nat: return forward_nat(weight, x);
        case TrainingMethod::nat_full: return forward_nat_full(weight, x);
        case TrainingMethod::ste: return forward_ste(weight, x);
      }
    }
    return forward_evaluation(weight, x);
  }

  // dL/dx from dL/dy (out × B); adds dL/dW to grad_weight.
  Eigen::MatrixXd backward(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& dy, Eigen::MatrixXd& grad_weight) {
    if (saved_x_.size() == 0) throw std::logic_error(name_ + ": backward without a training forward");
    const double clip = weight_clip_(0, 0);
    const auto inside = (weight.array().abs() <= clip).cast<double>();
    Eigen::MatrixXd dx;
    switch (saved_method_) {
      case Saved::clean: {
        grad_weight.array() += (dy * saved_x_.transpose()).array() * inside;
        if (input_gradient_needed_) dx.noalias() = weight.cwiseMax(-clip).cwiseMin(clip).transpose() * dy;
        break;
      }
      case Saved::map: {
        grad_weight.array() += (dy * saved_x_.transpose()).array() * inside;
        if (input_gradient_needed_) dx.noalias() = saved_map_.transpose() * dy;
        break;
      }
      case Saved::nat: {
        grad_weight.array() += (dy * saved_x_.transpose()).array() * saved_factor_.array() * inside;
        if (input_gradient_needed_) dx.noalias() = saved_map_.transpose() * dy;
        break;
      }
      case Saved::nat_full: dx = backward_nat_full(dy, grad_weight, inside); break;
    }
    release();
    return dx;
  }

  // Bytes held between forward and backward.
  std::size_t saved_bytes() const {
    std::size_t bytes = sizeof(double) * (saved_x_.size() + saved_map_.size() + saved_factor_.size());
    for (const auto& s : nat_full_) bytes += s.bytes();
    return bytes;
  }

 private:
  enum class Saved { clean, map, nat, nat_full };

  // The clipped weights in tile units (|w| <= w_max of the card).
  Eigen::MatrixXd tile_weights(const Eigen::MatrixXd& weight) const {
    const double clip = weight_clip_(0, 0);
    return weight.cwiseMax(-clip).cwiseMin(clip) * (shared_->card.mapping.w_max / clip);
  }
  double output_factor() const { return weight_clip_(0, 0) / shared_->card.mapping.w_max * input_scale_(0, 0); }

  void derive_buffers_for_training(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    if (weight_clip_(0, 0) <= 0) {
      // Clip at 2.5 standard deviations of the initial weights: the conductance range then
      // resolves the bulk of the distribution instead of its few extremes.
      const double mean = weight.mean();
      const double sd = std::sqrt((weight.array() - mean).square().sum() / std::max<Eigen::Index>(1, weight.size() - 1));
      weight_clip_(0, 0) = sd > 0 ? 2.5 * sd : 1.0;
    }
    // s_x: x / s_x spans the DAC's input range [-input_max, input_max] (moving average of the
    // batches' largest |x|, refreshed once per training step).
    if (scale_step_ == shared_->context->step) return;
    scale_step_ = shared_->context->step;
    const double batch_scale = (x.size() ? x.cwiseAbs().maxCoeff() : 0.0) / shared_->card.dac.input_max;
    if (input_scale_(0, 0) <= 0)
      input_scale_(0, 0) = batch_scale > 0 ? batch_scale : 1.0;
    else if (batch_scale > 0)
      input_scale_(0, 0) = 0.9 * input_scale_(0, 0) + 0.1 * batch_scale;
  }

  void derive_buffers_for_evaluation(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    // A model trained without these buffers (digitally): no clipping beyond its largest weight,
    // and the input range of the first (calibration) batch.
    if (weight_clip_(0, 0) <= 0) {
      const double m = weight.cwiseAbs().maxCoeff();
      weight_clip_(0, 0) = m > 0 ? m : 1.0;
    }
    if (input_scale_(0, 0) <= 0) {
      const double m = (x.size() ? x.cwiseAbs().maxCoeff() : 0.0) / shared_->card.dac.input_max;
      input_scale_(0, 0) = m > 0 ? m : 1.0;
    }
  }

  void release() {
    saved_x_.resize(0, 0);
    saved_map_.resize(0, 0);
    saved_factor_.resize(0, 0);
    nat_full_.clear();
  }

  Eigen::MatrixXd forward_ideal(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    saved_method_ = Saved::clean;
    saved_x_ = x;
    const double clip = weight_clip_(0, 0);
    return weight.cwiseMax(-clip).cwiseMin(clip) * x;
  }

  // ---- standard NAT --------------------------------------------------------------------------
  Eigen::MatrixXd forward_nat(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    const core::Card& card = shared_->card;
    const ConductanceStatistics& table = shared_->statistics();
    const double clip = weight_clip_(0, 0), g_min = card.device.g_min, dg = card.device.g_max - g_min;
    const double sigma_zero = table.at(table.sigma, g_min, nullptr);
    core::RandomStream rng(card.seed, "nat_weight_noise",
                           {static_cast<std::uint64_t>(layer_index_), shared_->context->step});
    Eigen::MatrixXd noisy(out_, in_), factor(out_, in_);
    for (Eigen::Index i = 0; i < in_; ++i)
      for (Eigen::Index o = 0; o < out_; ++o) {
        const double w = std::clamp(weight(o, i), -clip, clip);
        double slope = 0;
        const double g = g_min + std::fabs(w) / clip * dg;
        const double sigma_g = table.at(table.sigma, g, &slope);
        const double norm = std::sqrt(sigma_g * sigma_g + sigma_zero * sigma_zero);
        const double sigma_w = clip / dg * norm;
        // dσ_w/dw = (clip/dg) · σ_g σ_g' (dg/clip) sign(w) / norm
        const double dsigma = norm > 0 ? sigma_g * slope * (w < 0 ? -1.0 : 1.0) / norm : 0.0;
        const double eps = rng.normal();
        noisy(o, i) = w + sigma_w * eps;
        factor(o, i) = 1.0 + dsigma * eps;
      }
    Eigen::MatrixXd y = noisy * x;
    if (card.adc.bits > 0 && y.size() > 0) {
      // The ADC as additive noise: LSB/√12 of a range set to the batch's largest |y|.
      const double q = std::ldexp(1.0, card.adc.bits - 1) - 1.0;
      const double sigma_out = y.cwiseAbs().maxCoeff() / q / std::sqrt(12.0);
      core::RandomStream out_rng(card.seed, "nat_output_noise",
                                 {static_cast<std::uint64_t>(layer_index_), shared_->context->step});
      for (Eigen::Index k = 0; k < y.size(); ++k) y.data()[k] += sigma_out * out_rng.normal();
    }
    saved_method_ = Saved::nat;
    saved_x_ = x;
    saved_map_ = std::move(noisy);
    saved_factor_ = std::move(factor);
    return y;
  }

  // ---- hardware (STE forward and evaluation) ---------------------------------------------------
  std::uint64_t tile_seed(std::uint64_t key, std::size_t block) const {
    return core::mix64(shared_->card.seed ^ core::mix64(key ^ core::mix64(
        (static_cast<std::uint64_t>(layer_index_) << 32) + static_cast<std::uint64_t>(block) + 0x9e37)));
  }

  void make_tiles() {
    if (blocks_.front().tile) return;
    for (std::size_t b = 0; b < blocks_.size(); ++b)
      blocks_[b].tile = std::make_unique<circuits::Tile>(shared_->card, *shared_->registry, blocks_[b].out_count,
                                                          static_cast<int>(b), shared_->options.vectors_per_chunk);
  }

  // Programs the tiles with fresh hardware for `key` (unless already done for it).
  void program(const Eigen::MatrixXd& weight, std::uint64_t key, bool take_reference) {
    make_tiles();
    if (programmed_key_ == key) return;
    const Eigen::MatrixXd w_tile = tile_weights(weight);
    const int rows = shared_->card.tile.rows;
    tbb::parallel_for(std::size_t{0}, blocks_.size(), [&](std::size_t b) {
      Block& block = blocks_[b];
      Eigen::MatrixXd padded = Eigen::MatrixXd::Zero(block.out_count, rows);
      padded.leftCols(block.in_count) = w_tile.block(block.out_begin, block.in_begin, block.out_count, block.in_count);
      block.tile->reseed(tile_seed(key, b));
      block.tile->program(padded, take_reference);
    });
    programmed_key_ = key;
    read_key_ = kNoKey;
  }

  void begin_reads(double time_s, int read_index) {
    const std::uint64_t key = core::mix64(std::bit_cast<std::uint64_t>(time_s) ^ static_cast<std::uint64_t>(read_index));
    if (read_key_ == key) return;
    std::vector<std::string> failures(blocks_.size());
    tbb::parallel_for(std::size_t{0}, blocks_.size(), [&](std::size_t b) {
      const circuits::SolveSummary s = blocks_[b].tile->begin_reads(time_s, read_index);
      if (!s.ok()) failures[b] = s.message;
    });
    for (const auto& f : failures)
      if (!f.empty()) throw std::runtime_error(name_ + ": tile read failed: " + f);
    read_key_ = key;
    batches_read_ = 0;
  }

  // Hardware outputs (out × B, weight units, no bias) of the programmed tiles for inputs x.
  Eigen::MatrixXd read_hardware(const Eigen::MatrixXd& x, bool calibrate_ranges) {
    const double scale = input_scale_(0, 0);
    const Eigen::MatrixXd x_scaled = x / scale;
    const Eigen::Index batch = x.cols(), chunk = std::max(1, shared_->options.vectors_per_chunk);
    const std::uint64_t batch_key = batches_read_++;
    std::vector<Eigen::MatrixXd> partial(blocks_.size());
    std::vector<std::string> failures(blocks_.size());
    tbb::parallel_for(std::size_t{0}, blocks_.size(), [&](std::size_t b) {
      Block& block = blocks_[b];
      partial[b].resize(block.out_count, batch);
      circuits::SolveSummary summary;
      for (Eigen::Index start = 0, c = 0; start < batch; start += chunk, ++c) {
        const Eigen::Index n = std::min(chunk, batch - start);
        partial[b].middleCols(start, n) = block.tile->read_outputs(
            x_scaled.block(block.in_begin, start, block.in_count, n), (batch_key << 24) + static_cast<std::uint64_t>(c),
            calibrate_ranges && c == 0, summary);
        if (!summary.ok()) {
          failures[b] = summary.message;
          return;
        }
      }
    });
    for (const auto& f : failures)
      if (!f.empty()) throw std::runtime_error(name_ + ": tile read failed: " + f);
    Eigen::MatrixXd y = Eigen::MatrixXd::Zero(out_, batch);
    for (std::size_t b = 0; b < blocks_.size(); ++b)  // digital sum over input groups, in block order
      y.middleRows(blocks_[b].out_begin, blocks_[b].out_count) += partial[b];
    return y * output_factor();
  }

  // The linear map x -> y (out × in) of the current reads (through the wires or not).
  Eigen::MatrixXd hardware_map(bool through_wires) const {
    Eigen::MatrixXd map = Eigen::MatrixXd::Zero(out_, in_);
    for (const Block& block : blocks_)
      map.block(block.out_begin, block.in_begin, block.out_count, block.in_count) =
          block.tile->linear_map(block.in_count, through_wires);
    return map * (weight_clip_(0, 0) / shared_->card.mapping.w_max);
  }

  // Whether the STE forward of training step `step` is column-calibrated: always with
  // train_column_calibration and fraction 1, a draw from (card seed, step) below 1.
  bool calibrated_training_step(std::uint64_t step) const {
    const AnalogOptions& options = shared_->options;
    if (!options.train_column_calibration) return false;
    if (options.train_calibration_fraction >= 1) return true;
    core::RandomStream draw(shared_->card.seed, "train_calibrated_steps", {step});
    return draw.uniform() < options.train_calibration_fraction;
  }

  Eigen::MatrixXd forward_ste(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    const double t = shared_->options.train_read_time_s;
    const std::uint64_t step = shared_->context->step;
    program(weight, core::mix64(step * 2 + 1), t > 0);
    begin_reads(t, 0);
    Eigen::MatrixXd y = read_hardware(x, true);
    saved_x_ = x;
    switch (shared_->options.ste_backward) {
      case SteBackward::clean: saved_method_ = Saved::clean; break;
      case SteBackward::programmed:
        saved_method_ = Saved::map;
        saved_map_ = hardware_map(false);
        break;
      case SteBackward::effective:
        saved_method_ = Saved::map;
        saved_map_ = hardware_map(true);
        break;
    }
    if (calibrated_training_step(step)) {
      const double clip = weight_clip_(0, 0);
      Eigen::VectorXd gain, offset;
      const Eigen::MatrixXd target =
          shared_->options.train_calibration_target == CalibrationTarget::nominal_hardware
              ? nominal_outputs(weight, x)
              : Eigen::MatrixXd(weight.cwiseMax(-clip).cwiseMin(clip) * x);
      fit_gain_offset(y, target, gain, offset);
      apply_gain_offset(gain, offset, y);
      if (saved_map_.size()) saved_map_ = gain.asDiagonal() * saved_map_;
    }
    return y;
  }

  Eigen::MatrixXd forward_evaluation(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    const HardwareContext& ctx = *shared_->context;
    derive_buffers_for_evaluation(weight, x);
    program(weight, core::mix64(ctx.programming * 2), true);
    const double t = ctx.phase == HardwarePhase::calibrate_adc ? 0.0 : ctx.read_time_s;
    begin_reads(t, ctx.phase == HardwarePhase::calibrate_adc ? 1 : 2);
    if (ctx.phase == HardwarePhase::calibrate_columns) {
      // The previous layer's correction changed this layer's inputs (IR drop alone takes half of
      // a harsh tile's signal): set the DAC input range and the ADC ranges again on them before
      // fitting, or the corrected signals would clip.
      const double m = (x.size() ? x.cwiseAbs().maxCoeff() : 0.0) / shared_->card.dac.input_max;
      if (m > 0) input_scale_(0, 0) = m;
    }
    Eigen::MatrixXd y = read_hardware(x, ctx.phase == HardwarePhase::calibrate_adc ||
                                             ctx.phase == HardwarePhase::calibrate_columns);
    // The fit is applied at once, so the next layer calibrates on the corrected outputs it will
    // get when scoring.
    if (ctx.phase == HardwarePhase::calibrate_columns) fit_columns(weight, x, y);
    const bool corrected = ctx.phase == HardwarePhase::calibrate_columns || ctx.column_calibration;
    if (corrected && column_gain_.size() == out_) apply_gain_offset(column_gain_, column_offset_, y);
    return y;
  }

  // The nominal hardware's outputs (out × B, weight units) for inputs x: programmed once per
  // weights (the ideal device makes them exact), read through the wires with an ideal ADC.
  Eigen::MatrixXd nominal_outputs(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    const core::Card card = nominal_card(shared_->card);
    const Eigen::MatrixXd w_tile = tile_weights(weight);
    const Eigen::MatrixXd x_scaled = x / input_scale_(0, 0);
    std::vector<Eigen::MatrixXd> partial(blocks_.size());
    std::vector<std::string> failures(blocks_.size());
    tbb::parallel_for(std::size_t{0}, blocks_.size(), [&](std::size_t b) {
      Block& block = blocks_[b];
      if (!block.nominal)
        block.nominal = std::make_unique<circuits::Tile>(card, *shared_->registry, block.out_count,
                                                         static_cast<int>(b), shared_->options.vectors_per_chunk);
      Eigen::MatrixXd padded = Eigen::MatrixXd::Zero(block.out_count, card.tile.rows);
      padded.leftCols(block.in_count) = w_tile.block(block.out_begin, block.in_begin, block.out_count, block.in_count);
      block.nominal->program(padded, false);
      circuits::SolveSummary summary = block.nominal->begin_reads(0.0, 0);
      if (summary.ok())
        partial[b] = block.nominal->read_outputs(x_scaled.middleRows(block.in_begin, block.in_count), 0, false, summary);
      if (!summary.ok()) failures[b] = summary.message;
    });
    for (const auto& f : failures)
      if (!f.empty()) throw std::runtime_error(name_ + ": nominal tile read failed: " + f);
    Eigen::MatrixXd y = Eigen::MatrixXd::Zero(out_, x.cols());
    for (std::size_t b = 0; b < blocks_.size(); ++b)
      y.middleRows(blocks_[b].out_begin, blocks_[b].out_count) += partial[b];
    return y * output_factor();
  }

  // Least squares per output: target ≈ gain · hardware + offset, the target being what the
  // network was trained to expect (AnalogOptions::calibration_target).
  void fit_columns(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
    const double clip = weight_clip_(0, 0);
    const Eigen::MatrixXd target = shared_->options.calibration_target == CalibrationTarget::nominal_hardware
                                       ? nominal_outputs(weight, x)
                                       : Eigen::MatrixXd(weight.cwiseMax(-clip).cwiseMin(clip) * x);
    fit_gain_offset(y, target, column_gain_, column_offset_);
  }

  // ---- nat-full --------------------------------------------------------------------------------
  struct NatFullBlock {
    Eigen::MatrixXd v;            // used_rows × B, row voltages (V)
    Eigen::MatrixXd chan_factor;  // out_count × B, d i_hat / d channel current of the smooth ADC
    Eigen::MatrixXd dg_dtarget;   // R × C: d g / d g_target (0 for stuck cells)
    Eigen::MatrixXd w_tile;       // out_count × in_count, the clipped tile weights
    std::size_t bytes() const {
      return sizeof(double) * (v.size() + chan_factor.size() + dg_dtarget.size() + w_tile.size());
    }
  };

  static constexpr double kSoftRounding = 0.9;  // κ of the soft staircase r(u) = u − κ sin(2πu)/(2π)

  Eigen::MatrixXd forward_nat_full(const Eigen::MatrixXd& weight, const Eigen::MatrixXd& x) {
    const core::Card& card = shared_->card;
    if (card.mapping.scheme != core::MappingScheme::differential || card.mapping.slices != 1 ||
        card.mapping.bits_per_slice != 0)
      throw core::UserError(card.file.string() + ": --method nat-full supports mapping.scheme: differential with one "
                            "analog slice (mapping.slices: 1, mapping.bits_per_slice: 0)");
    const ConductanceStatistics& table = shared_->statistics();
    const int rows = card.tile.rows, cols = card.tile.cols;
    const double g_min = card.device.g_min, dg = card.device.g_max - g_min, w_max = card.mapping.w_max;
    const double g_floor = std::max(1e-3 * dg, 0.01 * g_min);
    const double vpi = card.dac.v_read / card.dac.input_max;
    const circuits::Dac dac(card.dac);
    const Eigen::MatrixXd w_tile = tile_weights(weight);
    const Eigen::MatrixXd x_scaled = x / input_scale_(0, 0);
    const Eigen::Index batch = x.cols();
    const std::uint64_t step = shared_->context->step;
    const double q = card.adc.bits > 0 ? std::ldexp(1.0, card.adc.bits - 1) - 1.0 : 0.0;
    nat_full_.assign(blocks_.size(), {});
    std::vector<Eigen::MatrixXd> partial(blocks_.size());
    std::vector<std::string> failures(blocks_.size());
    tbb::parallel_for(std::size_t{0}, blocks_.size(), [&](std::size_t b) {
      Block& block = blocks_[b];
      NatFullBlock& saved = nat_full_[b];
      const auto keys = {static_cast<std::uint64_t>(layer_index_), static_cast<std::uint64_t>(b), step};
      core::RandomStream rng(card.seed, "nat_full_programming", keys);
      core::RandomStream fault_rng(card.seed, "nat_full_faults", keys);
      core::RandomStream adc_rng(card.seed, "nat_full_adc", keys);
      saved.w_tile = w_tile.block(block.out_begin, block.in_begin, block.out_count, block.in_count);
      // Targets of the differential pairs, then the reparameterised programming noise.
      Eigen::MatrixXd g = Eigen::MatrixXd::Constant(rows, cols, g_min);
      saved.dg_dtarget.resize(rows, cols);
      for (int c = 0; c < cols; ++c)
        for (int r = 0; r < rows; ++r) {
          double target = g_min;
          if (r < block.in_count && c < 2 * block.out_count) {
            const double w = saved.w_tile(c / 2, r);
            const double magnitude = (c % 2 == 0) ? std::max(w, 0.0) : std::max(-w, 0.0);
            target = g_min + magnitude / w_max * dg;
          }
          double mean_slope = 0, sigma_slope = 0;
          const double eps = rng.normal();
          const double value = table.at(table.mean, target, &mean_slope) + table.at(table.sigma, target, &sigma_slope) * eps;
          g(r, c) = std::max(value, g_floor);
          saved.dg_dtarget(r, c) = value > g_floor ? mean_slope + sigma_slope * eps : 0.0;
        }
      if (card.device.variation_sigma_log > 0) {
        core::RandomStream variation_rng(card.seed, "nat_full_variation", keys);
        const Eigen::MatrixXd field = noise::lognormal_field(rows, cols, card.device.variation_sigma_log,
                                                             card.device.variation_correlation_cells, variation_rng);
        g.array() *= field.array();
        saved.dg_dtarget.array() *= field.array();
      }
      const noise::MatrixI stuck =
          noise::stuck_at_map(rows, cols, card.device.stuck_low_rate, card.device.stuck_high_rate, fault_rng);
      noise::apply_stuck_at(g, stuck, card.device.g_min, card.device.g_max);
      for (Eigen::Index k = 0; k < stuck.size(); ++k)
        if (stuck.data()[k] != 0) saved.dg_dtarget.data()[k] = 0;
      // The exact linear circuit and its sensitivities.
      if (!block.jacobian)
        block.jacobian = std::make_unique<circuits::CrossbarJacobian>(rows, cols, card.tile.wires, card.tile.r_access_on);
      const circuits::SolveSummary s = block.jacobian->set_conductances(g, block.in_count, 2 * block.out_count);
      if (!s.ok()) {
        failures[b] = s.message;
        return;
      }
      saved.v = dac.quantize(x_scaled.middleRows(block.in_begin, block.in_count)) * vpi;
      const Eigen::MatrixXd i = block.jacobian->matrix() * saved.v;  // 2·out_count × B
      Eigen::MatrixXd chan(block.out_count, batch);
      for (int k = 0; k < block.out_count; ++k) chan.row(k) = i.row(2 * k) - i.row(2 * k + 1);
      // The smooth ADC: gain and offset errors, soft rounding and soft clipping, noise.
      saved.chan_factor.resize(block.out_count, batch);
      Eigen::MatrixXd i_hat(block.out_count, batch);
      for (int k = 0; k < block.out_count; ++k) {
        const double gain = 1.0 + card.adc.gain_sigma * adc_rng.normal();
        const double offset = card.adc.offset_sigma * adc_rng.normal();
        double range = card.adc.range == core::AdcRange::calibrated
                           ? percentile_abs(chan.row(k), card.adc.calibration_percentile)
                           : (card.adc.i_max > 0 ? card.adc.i_max : rows * dg * card.dac.v_read);
        if (range <= 0) range = rows * dg * card.dac.v_read;
        const double lsb = q > 0 ? range / q : 1.0;
        for (Eigen::Index n = 0; n < batch; ++n) {
          const double measured = gain * chan(k, n) + offset + card.adc.noise_sigma * adc_rng.normal();
          if (q <= 0) {
            i_hat(k, n) = measured;
            saved.chan_factor(k, n) = gain;
            continue;
          }
          const double u = measured / lsb;
          const double r = u - kSoftRounding * std::sin(2 * std::numbers::pi * u) / (2 * std::numbers::pi);
          const double t = std::tanh(r / q);
          i_hat(k, n) = q * t * lsb;
          saved.chan_factor(k, n) = gain * (1 - kSoftRounding * std::cos(2 * std::numbers::pi * u)) * (1 - t * t);
        }
      }
      partial[b] = i_hat * (w_max / (dg * vpi));
    });
    for (const auto& f : failures)
      if (!f.empty()) throw std::runtime_error(name_ + ": nat-full circuit failed: " + f);
    Eigen::MatrixXd y = Eigen::MatrixXd::Zero(out_, batch);
    for (std::size_t b = 0; b < blocks_.size(); ++b)
      y.middleRows(blocks_[b].out_begin, blocks_[b].out_count) += partial[b];
    saved_method_ = Saved::nat_full;
    saved_x_ = x;  // kept for the shape check; the backward uses the row voltages
    return y * output_factor();
  }

  Eigen::MatrixXd backward_nat_full(const Eigen::MatrixXd& dy, Eigen::MatrixXd& grad_weight,
                                    const Eigen::ArrayXXd& inside) {
    const core::Card& card = shared_->card;
    const double g_min = card.device.g_min, dg = card.device.g_max - g_min, w_max = card.mapping.w_max;
    const double vpi = card.dac.v_read / card.dac.input_max;
    const double to_current = output_factor() * (w_max / (dg * vpi));  // dy/d i_hat
    const Eigen::Index batch = dy.cols();
    std::vector<Eigen::MatrixXd> dx_part(blocks_.size()), dw_part(blocks_.size());
    tbb::parallel_for(std::size_t{0}, blocks_.size(), [&](std::size_t b) {
      const Block& block = blocks_[b];
      const NatFullBlock& saved = nat_full_[b];
      const Eigen::MatrixXd dchan =
          (dy.middleRows(block.out_begin, block.out_count) * to_current).cwiseProduct(saved.chan_factor);
      Eigen::MatrixXd di(2 * block.out_count, batch);
      for (int k = 0; k < block.out_count; ++k) {
        di.row(2 * k) = dchan.row(k);
        di.row(2 * k + 1) = -dchan.row(k);
      }
      // Inputs: through Mᵀ (the DAC's rounding passed straight through), back to x units.
      dx_part[b] = (block.jacobian->matrix().transpose() * di) * (vpi / input_scale_(0, 0));
      // Conductances: the adjoint of the circuit, then the programming model and the mapping.
      const Eigen::MatrixXd dg_device = block.jacobian->conductance_gradient(di * saved.v.transpose());
      const Eigen::MatrixXd dtarget = dg_device.cwiseProduct(saved.dg_dtarget);
      Eigen::MatrixXd dw(block.out_count, block.in_count);
      for (int k = 0; k < block.out_count; ++k)
        for (int r = 0; r < block.in_count; ++r) {
          const double w = saved.w_tile(k, r);
          dw(k, r) = (w >= 0 ? dtarget(r, 2 * k) : -dtarget(r, 2 * k + 1)) * (dg / w_max);
        }
      dw_part[b] = dw * (w_max / weight_clip_(0, 0));
    });
    Eigen::MatrixXd dx = Eigen::MatrixXd::Zero(in_, batch);
    Eigen::MatrixXd dw = Eigen::MatrixXd::Zero(out_, in_);
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      const Block& block = blocks_[b];
      dx.middleRows(block.in_begin, block.in_count) += dx_part[b];
      dw.block(block.out_begin, block.in_begin, block.out_count, block.in_count) += dw_part[b];
    }
    grad_weight.array() += dw.array() * inside;
    return dx;
  }

  std::shared_ptr<Shared> shared_;
  Eigen::Index in_, out_;
  std::string name_;
  int layer_index_ = 0;
  std::vector<Block> blocks_;
  Eigen::MatrixXd input_scale_, weight_clip_;  // buffers (1×1; 0 = not yet derived)
  std::uint64_t programmed_key_ = kNoKey, read_key_ = kNoKey, batches_read_ = 0, scale_step_ = kNoKey;
  Eigen::VectorXd column_gain_, column_offset_;
  bool input_gradient_needed_ = true;
  Saved saved_method_ = Saved::clean;
  Eigen::MatrixXd saved_x_, saved_map_, saved_factor_;
  std::vector<NatFullBlock> nat_full_;
};

// y = W x + b with W on tiles.
class AnalogLinear final : public Layer {
 public:
  AnalogLinear(std::shared_ptr<Shared> shared, int in, int out, core::RandomStream& rng, Init init, std::string name)
      : matrix_(std::move(shared), in, out, std::move(name)) {
    if (in <= 0 || out <= 0) throw std::invalid_argument("AnalogLinear: features must be positive");
    weight_.resize(out, in);
    initialize(weight_, init, in, out, rng);
    bias_ = Eigen::MatrixXd::Zero(out, 1);
    grad_weight_ = Eigen::MatrixXd::Zero(out, in);
    grad_bias_ = Eigen::MatrixXd::Zero(out, 1);
  }
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override {
    if (x.rows() != weight_.cols())
      throw std::invalid_argument(matrix_.name() + ": input has " + std::to_string(x.rows()) + " rows, expected " +
                                  std::to_string(weight_.cols()));
    Eigen::MatrixXd y = matrix_.forward(weight_, x);
    y.colwise() += bias_.col(0);
    return y;
  }
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override {
    grad_bias_ += dy.rowwise().sum();
    return matrix_.backward(weight_, dy, grad_weight_);
  }
  std::vector<Eigen::MatrixXd*> parameters() override { return {&weight_, &bias_}; }
  std::vector<Eigen::MatrixXd*> gradients() override { return {&grad_weight_, &grad_bias_}; }
  std::vector<Eigen::MatrixXd*> buffers() override { return matrix_.buffers(); }
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> named_buffers() override { return matrix_.named_buffers(); }
  void set_input_gradient_needed(bool needed) override { matrix_.set_input_gradient_needed(needed); }
  std::string name() const override {
    return "AnalogLinear(" + std::to_string(weight_.cols()) + " -> " + std::to_string(weight_.rows()) + ")";
  }

 private:
  AnalogMatrix matrix_;
  Eigen::MatrixXd weight_, bias_, grad_weight_, grad_bias_;
};

// Convolution as one product on im2col columns, that product on tiles.
class AnalogConv2d final : public Layer {
 public:
  AnalogConv2d(std::shared_ptr<Shared> shared, const Conv2dShape& shape, core::RandomStream& rng, Init init,
               std::string name)
      : shape_(shape),
        matrix_(std::move(shared), shape.in_channels * shape.kernel * shape.kernel, shape.out_channels,
                std::move(name)) {
    shape.validate();
    const int fan_in = shape.in_channels * shape.kernel * shape.kernel;
    weight_.resize(shape.out_channels, fan_in);
    initialize(weight_, init, fan_in, shape.out_channels * shape.kernel * shape.kernel, rng);
    bias_ = Eigen::MatrixXd::Zero(shape.out_channels, 1);
    grad_weight_ = Eigen::MatrixXd::Zero(shape.out_channels, fan_in);
    grad_bias_ = Eigen::MatrixXd::Zero(shape.out_channels, 1);
  }
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override {
    const Conv2dShape& s = shape_;
    if (x.rows() != static_cast<Eigen::Index>(s.in_channels) * s.height * s.width)
      throw std::invalid_argument(matrix_.name() + ": input has " + std::to_string(x.rows()) + " rows");
    batch_ = x.cols();
    Eigen::MatrixXd out = matrix_.forward(weight_, im2col(x, s));  // C_out × (plane·N)
    out.colwise() += bias_.col(0);
    const Eigen::Index plane = static_cast<Eigen::Index>(s.out_height()) * s.out_width();
    Eigen::MatrixXd y(s.out_channels * plane, batch_);
    for (Eigen::Index n = 0; n < batch_; ++n)
      for (int o = 0; o < s.out_channels; ++o)
        y.col(n).segment(o * plane, plane) = out.row(o).segment(n * plane, plane).transpose();
    return y;
  }
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override {
    const Conv2dShape& s = shape_;
    const Eigen::Index plane = static_cast<Eigen::Index>(s.out_height()) * s.out_width();
    Eigen::MatrixXd dout(s.out_channels, plane * batch_);
    for (Eigen::Index n = 0; n < batch_; ++n)
      for (int o = 0; o < s.out_channels; ++o)
        dout.row(o).segment(n * plane, plane) = dy.col(n).segment(o * plane, plane).transpose();
    grad_bias_ += dout.rowwise().sum();
    const Eigen::MatrixXd dcols = matrix_.backward(weight_, dout, grad_weight_);
    if (dcols.size() == 0) return {};  // the model's first layer: nobody needs dL/dx
    return col2im(dcols, s, batch_);
  }
  std::vector<Eigen::MatrixXd*> parameters() override { return {&weight_, &bias_}; }
  std::vector<Eigen::MatrixXd*> gradients() override { return {&grad_weight_, &grad_bias_}; }
  std::vector<Eigen::MatrixXd*> buffers() override { return matrix_.buffers(); }
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> named_buffers() override { return matrix_.named_buffers(); }
  void set_input_gradient_needed(bool needed) override { matrix_.set_input_gradient_needed(needed); }
  std::string name() const override { return "AnalogConv2d(" + matrix_.name() + ")"; }

 private:
  Conv2dShape shape_;
  AnalogMatrix matrix_;
  Eigen::MatrixXd weight_, bias_, grad_weight_, grad_bias_;
  Eigen::Index batch_ = 0;
};

}  // namespace

AnalogLayerFactory::AnalogLayerFactory(const core::Card& card, const devices::DeviceRegistry& registry,
                                       const AnalogOptions& options)
    : shared_(std::make_shared<Shared>()), context_(std::make_shared<HardwareContext>()) {
  shared_->card = card;
  shared_->registry = &registry;
  shared_->options = options;
  shared_->context = context_;
  if (options.train_column_calibration && options.method != TrainingMethod::ste)
    throw std::invalid_argument("AnalogOptions::train_column_calibration calibrates the ste forward; method is " +
                                to_string(options.method));
  if (!(options.train_calibration_fraction > 0 && options.train_calibration_fraction <= 1))
    throw std::invalid_argument(fmt::format("AnalogOptions::train_calibration_fraction = {}: must be in (0, 1]",
                                            options.train_calibration_fraction));
  if (options.method == TrainingMethod::ste && options.ste_backward == SteBackward::effective) {
    if (card.solver.method != "auto" && card.solver.method != "effective")
      throw core::UserError(card.file.string() + ": --ste-backward effective reads the exact Jacobian from the "
                            "effective-matrix solver; solver.method is '" + card.solver.method +
                            "', expected auto or effective");
    const auto device = registry.create(card.device);
    if (device->iv() != nullptr)
      throw core::UserError(card.file.string() + ": --ste-backward effective needs linear cells (the exact Jacobian "
                            "of a linear circuit); device." + card.device.model +
                            " has a nonlinear I-V: use --ste-backward programmed");
  }
}

AnalogLayerFactory::~AnalogLayerFactory() = default;

std::unique_ptr<Layer> AnalogLayerFactory::linear(int in_features, int out_features, core::RandomStream& rng, Init init,
                                                  const std::string& name) const {
  return std::make_unique<AnalogLinear>(shared_, in_features, out_features, rng, init, name);
}

std::unique_ptr<Layer> AnalogLayerFactory::conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init,
                                                  const std::string& name) const {
  return std::make_unique<AnalogConv2d>(shared_, shape, rng, init, name);
}

}  // namespace xbar::training
