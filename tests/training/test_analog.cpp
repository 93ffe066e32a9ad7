// Analog layers: tiling, each method's backward against its defined surrogate, evaluation phases.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <functional>
#include <tuple>

#include "core/error.hpp"
#include "devices/registry.hpp"
#include "training/analog.hpp"

using namespace xbar;
using training::HardwarePhase;

namespace {

// 6-row × 8-column tiles (4 differential outputs each), ideal parts unless overridden.
const char* kCard = R"(
seed: 3
tile: {rows: 6, cols: 8, wires: {r_wl_segment: 0, r_bl_segment: 0, r_source: 0, r_sense: 0}}
device: {model: ideal, g_min: 1.0e-6, g_max: 25.0e-6}
dac: {bits: 0, v_read: 0.2}
adc: {bits: 0, range: calibrated, calibration_percentile: 100}
mapping: {scheme: differential}
solver: {method: auto}
workload: {read_times: [0]}
)";

core::Card card_with(const std::vector<std::string>& overrides) {
  const auto& registry = devices::builtin_devices();
  return core::load_card_text(kCard, "analog-test.yaml", overrides, registry.param_lookup(), registry.names());
}

Eigen::MatrixXd random_matrix(int rows, int cols, std::uint64_t seed, double lo = -1, double hi = 1) {
  core::RandomStream rng(seed, "test");
  Eigen::MatrixXd m(rows, cols);
  for (Eigen::Index k = 0; k < m.size(); ++k) m.data()[k] = rng.uniform(lo, hi);
  return m;
}

struct Net {
  std::unique_ptr<training::AnalogLayerFactory> factory;
  std::unique_ptr<training::Layer> layer;
  std::shared_ptr<training::HardwareContext> context;
};

Net linear_layer(const core::Card& card, const training::AnalogOptions& options, int in, int out) {
  Net net;
  net.factory = std::make_unique<training::AnalogLayerFactory>(card, devices::builtin_devices(), options);
  core::RandomStream rng(11, "init");
  net.layer = net.factory->linear(in, out, rng, training::Init::he_normal, "fc");
  net.context = net.factory->context();
  return net;
}

Net linear_layer(const core::Card& card, training::TrainingMethod method, int in, int out,
                 training::SteBackward backward = training::SteBackward::effective,
                 bool train_column_calibration = false, double train_calibration_fraction = 1.0) {
  training::AnalogOptions options;
  options.method = method;
  options.ste_backward = backward;
  options.train_column_calibration = train_column_calibration;
  options.train_calibration_fraction = train_calibration_fraction;
  return linear_layer(card, options, in, out);
}

// Central finite differences of sum(dy ⊙ f(x)) with respect to every entry of `variable`.
Eigen::MatrixXd numeric_gradient(Eigen::MatrixXd& variable, const Eigen::MatrixXd& dy,
                                 const std::function<Eigen::MatrixXd()>& f, double h) {
  Eigen::MatrixXd grad(variable.rows(), variable.cols());
  for (Eigen::Index k = 0; k < variable.size(); ++k) {
    const double saved = variable.data()[k];
    variable.data()[k] = saved + h;
    const double plus = (f().array() * dy.array()).sum();
    variable.data()[k] = saved - h;
    const double minus = (f().array() * dy.array()).sum();
    variable.data()[k] = saved;
    grad.data()[k] = (plus - minus) / (2 * h);
  }
  return grad;
}

double relative_error(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1e-300, b.cwiseAbs().maxCoeff());
}

}  // namespace

TEST(AnalogLayer, RowsAndOutputsSplitOverTilesSumToTheIdealProduct) {
  // 10 inputs × 7 outputs on 6-row tiles holding 4 outputs: 2 × 2 tiles, rows summed digitally.
  for (auto method : {training::TrainingMethod::ste, training::TrainingMethod::ideal}) {
    Net net = linear_layer(card_with({}), method, 10, 7);
    net.layer->parameters()[1]->setConstant(0.25);
    const Eigen::MatrixXd x = random_matrix(10, 5, 1);
    net.context->phase = HardwarePhase::train;
    const Eigen::MatrixXd y = net.layer->forward(x);
    const double clip = (*net.layer->buffers()[1])(0, 0);
    ASSERT_GT(clip, 0);
    const Eigen::MatrixXd w = net.layer->parameters()[0]->cwiseMax(-clip).cwiseMin(clip);
    Eigen::MatrixXd expected = w * x;
    expected.array() += 0.25;
    EXPECT_LT(relative_error(y, expected), 1e-12) << training::to_string(method);
    // Weights beyond the clip exist (He initialisation, 2.5 sd clip), so clipping was exercised.
    EXPECT_GT(net.layer->parameters()[0]->cwiseAbs().maxCoeff(), clip);
  }
}

TEST(AnalogLayer, SteCleanBackwardIsTheGradientOfTheClippedIdealLayer) {
  Net net = linear_layer(card_with({"tile.wires.r_wl_segment=5", "tile.wires.r_bl_segment=5", "adc.bits=5",
                                    "dac.bits=6", "device.faults.stuck_low_rate=0.1"}),
                         training::TrainingMethod::ste, 10, 7, training::SteBackward::clean);
  const Eigen::MatrixXd x = random_matrix(10, 4, 2), dy = random_matrix(7, 4, 3);
  net.layer->forward(x);
  net.layer->zero_grad();
  const Eigen::MatrixXd dx = net.layer->backward(dy);
  const Eigen::MatrixXd& w = *net.layer->parameters()[0];
  const double clip = (*net.layer->buffers()[1])(0, 0);
  const Eigen::MatrixXd w_clip = w.cwiseMax(-clip).cwiseMin(clip);
  EXPECT_LT(relative_error(dx, w_clip.transpose() * dy), 1e-14);
  const Eigen::MatrixXd dw = (dy * x.transpose()).array() * (w.array().abs() <= clip).cast<double>();
  EXPECT_LT(relative_error(*net.layer->gradients()[0], dw), 1e-14);
  EXPECT_LT(relative_error(*net.layer->gradients()[1], dy.rowwise().sum()), 1e-14);
}

TEST(AnalogLayer, SteEffectiveBackwardIsTheExactJacobianOfTheLinearCircuit) {
  // Wires and an access device, ideal converters: the forward is linear in x, so its finite
  // differences are the circuit's Jacobian, which the effective backward must reproduce.
  const core::Card card = card_with({"tile.wires.r_wl_segment=40", "tile.wires.r_bl_segment=40",
                                     "tile.wires.r_source=100", "tile.wires.r_sense=100", "tile.access.type=transistor",
                                     "tile.access.r_on=5000"});
  Net effective = linear_layer(card, training::TrainingMethod::ste, 10, 7);
  Net programmed = linear_layer(card, training::TrainingMethod::ste, 10, 7, training::SteBackward::programmed);
  Eigen::MatrixXd x = random_matrix(10, 3, 4, 0, 1);
  const Eigen::MatrixXd dy = random_matrix(7, 3, 5);
  auto forward = [&](Net& net) { return net.layer->forward(x); };
  // Prime the input scale well above max|x| so that no finite difference clips at the DAC.
  effective.layer->forward(3 * x);
  const Eigen::MatrixXd numeric = numeric_gradient(x, dy, [&] { return forward(effective); }, 1e-4);
  forward(effective);
  const Eigen::MatrixXd dx = effective.layer->backward(dy);
  EXPECT_LT(relative_error(dx, numeric), 1e-7);
  // The wires matter here: the programmed backward (no wires) differs from the exact one.
  forward(programmed);
  EXPECT_GT(relative_error(programmed.layer->backward(dy), numeric), 0.05);
}

TEST(AnalogLayer, SteProgrammedBackwardIsTheMapOfTheReadConductances) {
  // No wires, a noisy PCM device: the forward is linear in x with the weights the read
  // conductances represent; the programmed backward must be that map, not the clean weights.
  const core::Card card = card_with({"device.model=pcm-joshi2020", "device.g_min=0", "device.faults.stuck_high_rate=0.05"});
  Net net = linear_layer(card, training::TrainingMethod::ste, 10, 7, training::SteBackward::programmed);
  Eigen::MatrixXd x = random_matrix(10, 3, 6, 0, 1);
  const Eigen::MatrixXd dy = random_matrix(7, 3, 7);
  net.layer->forward(3 * x);  // input scale above max|x|: no clipping at the DAC
  const Eigen::MatrixXd numeric = numeric_gradient(x, dy, [&] { return net.layer->forward(x); }, 1e-4);
  net.layer->forward(x);
  const Eigen::MatrixXd dx = net.layer->backward(dy);
  EXPECT_LT(relative_error(dx, numeric), 1e-7);
  const double clip = (*net.layer->buffers()[1])(0, 0);
  const Eigen::MatrixXd clean = net.layer->parameters()[0]->cwiseMax(-clip).cwiseMin(clip).transpose() * dy;
  EXPECT_GT(relative_error(dx, clean), 0.01);  // programming noise and stuck cells shape it
  // A new step draws new hardware: the map changes.
  net.context->step = 1;
  net.layer->forward(x);
  EXPECT_GT(relative_error(net.layer->backward(dy), dx), 1e-3);
}

TEST(AnalogLayer, SteWithColumnCalibrationInTrainingFitsEachOutputOntoTheIdealLayer) {
  // Wires, stuck cells and PCM noise, ideal converters; the same hardware (card, seed, step) with
  // and without the calibration in the forward.
  const core::Card card = card_with({"tile.wires.r_wl_segment=40", "tile.wires.r_bl_segment=40",
                                     "device.model=pcm-joshi2020", "device.g_min=0",
                                     "device.faults.stuck_high_rate=0.05"});
  for (auto backward : {training::SteBackward::effective, training::SteBackward::programmed,
                        training::SteBackward::clean}) {
    SCOPED_TRACE(training::to_string(backward));
    Net raw = linear_layer(card, training::TrainingMethod::ste, 10, 7, backward);
    Net cal = linear_layer(card, training::TrainingMethod::ste, 10, 7, backward, true);
    const Eigen::MatrixXd x = random_matrix(10, 40, 8, 0, 1), dy = random_matrix(7, 40, 9);
    const Eigen::MatrixXd y_raw = raw.layer->forward(x), y_cal = cal.layer->forward(x);  // zero biases
    const Eigen::MatrixXd& w = *cal.layer->parameters()[0];
    const double clip = (*cal.layer->buffers()[1])(0, 0);
    const Eigen::MatrixXd ideal = w.cwiseMax(-clip).cwiseMin(clip) * x;
    Eigen::VectorXd gain(7);
    for (Eigen::Index k = 0; k < 7; ++k) {
      // y_cal is an affine function of y_raw per output ...
      const Eigen::ArrayXd r = y_raw.row(k).array() - y_raw.row(k).mean();
      const Eigen::ArrayXd c = y_cal.row(k).array() - y_cal.row(k).mean();
      gain[k] = (r * c).sum() / r.square().sum();
      EXPECT_LT((c - gain[k] * r).abs().maxCoeff(), 1e-12 * c.abs().maxCoeff()) << k;
      // ... and the least-squares one onto the ideal layer: the residual has zero mean and is
      // uncorrelated with the hardware output.
      const Eigen::ArrayXd e = ideal.row(k).array() - y_cal.row(k).array();
      EXPECT_LT(std::fabs(e.mean()), 1e-12 * ideal.row(k).cwiseAbs().maxCoeff()) << k;
      EXPECT_LT(std::fabs((e * r).sum()), 1e-10 * std::sqrt(e.square().sum() * r.square().sum()) + 1e-300) << k;
    }
    EXPECT_GT((gain.array() - 1).abs().maxCoeff(), 0.05) << "the wires take part of the signal: gains above 1";
    // Calibrated, the outputs are closer to the ideal layer.
    EXPECT_LT((y_cal - ideal).norm(), 0.9 * (y_raw - ideal).norm());

    // Backward: the uncalibrated matrix with the gains folded in (clean: the clipped weights).
    cal.layer->zero_grad();
    raw.layer->zero_grad();
    const Eigen::MatrixXd dx_cal = cal.layer->backward(dy);
    const Eigen::MatrixXd dx_raw =
        raw.layer->backward(backward == training::SteBackward::clean ? dy : Eigen::MatrixXd(gain.asDiagonal() * dy));
    EXPECT_LT(relative_error(dx_cal, dx_raw), 1e-9);
    const Eigen::MatrixXd dw = (dy * x.transpose()).array() * (w.array().abs() <= clip).cast<double>();
    EXPECT_LT(relative_error(*cal.layer->gradients()[0], dw), 1e-14);
  }
  EXPECT_THROW(linear_layer(card, training::TrainingMethod::nat, 10, 7, training::SteBackward::effective, true),
               std::invalid_argument);
}

TEST(AnalogLayer, SteCalibratedOntoTheNominalHardwareCorrectsOnlyTheRandomParts) {
  auto layer = [](const core::Card& card, bool calibrate, training::CalibrationTarget target) {
    training::AnalogOptions options;
    options.method = training::TrainingMethod::ste;
    options.train_column_calibration = calibrate;
    options.train_calibration_target = target;
    return linear_layer(card, options, 10, 7);
  };
  const auto nominal = training::CalibrationTarget::nominal_hardware, ideal = training::CalibrationTarget::ideal_layer;
  const std::vector<std::string> wires = {"tile.wires.r_wl_segment=40", "tile.wires.r_bl_segment=40", "device.g_min=0"};
  const Eigen::MatrixXd x = random_matrix(10, 40, 8, 0, 1);

  // Deterministic tiles (ideal devices, ideal converters): the hardware is its own nominal, so
  // the calibration onto it changes nothing, while the one onto the ideal layer undoes the wires.
  const core::Card exact = card_with(wires);
  const Eigen::MatrixXd y_exact = layer(exact, false, ideal).layer->forward(x);
  EXPECT_LT((layer(exact, true, nominal).layer->forward(x) - y_exact).norm(), 1e-9 * y_exact.norm());
  EXPECT_GT((layer(exact, true, ideal).layer->forward(x) - y_exact).norm(), 1e-3 * y_exact.norm());

  // Noisy tiles with stuck cells: the fit onto the nominal outputs (the exact tiles' outputs) is
  // the least-squares one per output.
  std::vector<std::string> noisy = wires;
  noisy.insert(noisy.end(), {"device.model=pcm-joshi2020", "device.faults.stuck_high_rate=0.05"});
  const Eigen::MatrixXd y_raw = layer(card_with(noisy), false, ideal).layer->forward(x);
  const Eigen::MatrixXd y_cal = layer(card_with(noisy), true, nominal).layer->forward(x);
  for (Eigen::Index k = 0; k < 7; ++k) {
    const Eigen::ArrayXd e = y_exact.row(k).array() - y_cal.row(k).array();
    const Eigen::ArrayXd r = y_raw.row(k).array() - y_raw.row(k).mean();
    EXPECT_LT(std::fabs(e.mean()), 1e-9 * y_exact.row(k).cwiseAbs().maxCoeff()) << k;
    EXPECT_LT(std::fabs((e * r).sum()), 1e-9 * std::sqrt(e.square().sum() * r.square().sum()) + 1e-300) << k;
  }
  EXPECT_LT((y_cal - y_exact).norm(), 0.9 * (y_raw - y_exact).norm());
  // Scored with column calibration, such a network is mapped onto the nominal hardware too.
  EXPECT_EQ(training::calibration_target_for(training::TrainingMethod::ste, true, nominal), nominal);
  EXPECT_EQ(training::calibration_target_for(training::TrainingMethod::ste, true), ideal);
  EXPECT_EQ(training::parse_calibration_target("nominal"), nominal);
  EXPECT_THROW(training::parse_calibration_target("ideal-layer"), core::UserError);
}

TEST(AnalogLayer, SteCalibratesADrawnFractionOfTheTrainingStepsTheSameForEveryLayer) {
  const core::Card card = card_with({"tile.wires.r_wl_segment=40", "tile.wires.r_bl_segment=40",
                                     "device.model=pcm-joshi2020", "device.g_min=0"});
  // Two layers per factory, made in the same order (so on the same hardware): raw, always
  // calibrated, calibrated in half of the steps.
  struct TwoLayers {
    Net first;
    std::unique_ptr<training::Layer> second;
  };
  auto two_layers = [&](bool calibrate, double fraction) {
    TwoLayers net{linear_layer(card, training::TrainingMethod::ste, 10, 7, training::SteBackward::effective, calibrate,
                               fraction),
                  nullptr};
    core::RandomStream rng(12, "init");
    net.second = net.first.factory->linear(7, 5, rng, training::Init::he_normal, "fc2");
    return net;
  };
  TwoLayers raw = two_layers(false, 1.0), cal = two_layers(true, 1.0), half = two_layers(true, 0.5);
  const Eigen::MatrixXd x = random_matrix(10, 30, 8, 0, 1), h = random_matrix(7, 30, 9, 0, 1);
  int calibrated = 0;
  const int steps = 40;
  for (int step = 0; step < steps; ++step) {
    for (TwoLayers* net : {&raw, &cal, &half}) net->first.context->step = static_cast<std::uint64_t>(step);
    const Eigen::MatrixXd y_raw = raw.first.layer->forward(x), y_cal = cal.first.layer->forward(x);
    const Eigen::MatrixXd y = half.first.layer->forward(x);
    ASSERT_NE(y_raw, y_cal);
    const bool is_calibrated = y == y_cal;
    EXPECT_TRUE(is_calibrated || y == y_raw) << "step " << step << ": neither the raw nor the calibrated forward";
    calibrated += is_calibrated;
    // The second layer is calibrated in the same steps.
    const Eigen::MatrixXd z_raw = raw.second->forward(h), z_cal = cal.second->forward(h), z = half.second->forward(h);
    EXPECT_EQ(z, is_calibrated ? z_cal : z_raw) << "step " << step;
  }
  EXPECT_GT(calibrated, 10);
  EXPECT_LT(calibrated, 30);
  EXPECT_THROW(linear_layer(card, training::TrainingMethod::ste, 10, 7, training::SteBackward::effective, true, 0.0),
               std::invalid_argument);
  EXPECT_THROW(linear_layer(card, training::TrainingMethod::ste, 10, 7, training::SteBackward::effective, true, 1.5),
               std::invalid_argument);
}

TEST(AnalogLayer, NatBackwardIsTheGradientOfItsNoisyForwardIncludingTheNoiseScale) {
  const core::Card card = card_with({"device.model=pcm-joshi2020", "device.g_min=0"});
  Net net = linear_layer(card, training::TrainingMethod::nat, 10, 7);
  Eigen::MatrixXd x = random_matrix(10, 3, 8);
  const Eigen::MatrixXd dy = random_matrix(7, 3, 9);
  net.layer->forward(x);  // derives the clip
  Eigen::MatrixXd& w = *net.layer->parameters()[0];
  const Eigen::MatrixXd numeric_w = numeric_gradient(w, dy, [&] { return net.layer->forward(x); }, 1e-6);
  const Eigen::MatrixXd numeric_x = numeric_gradient(x, dy, [&] { return net.layer->forward(x); }, 1e-6);
  net.layer->forward(x);
  net.layer->zero_grad();
  const Eigen::MatrixXd dx = net.layer->backward(dy);
  EXPECT_LT(relative_error(dx, numeric_x), 1e-6);
  EXPECT_LT(relative_error(*net.layer->gradients()[0], numeric_w), 1e-5);
  // The σ(W) term matters: dL/dW differs from the plain dy xᵀ.
  const double clip = (*net.layer->buffers()[1])(0, 0);
  const Eigen::MatrixXd plain = (dy * x.transpose()).array() * (w.array().abs() <= clip).cast<double>();
  EXPECT_GT(relative_error(*net.layer->gradients()[0], plain), 1e-3);
}

TEST(AnalogLayer, NatFullBackwardIsTheGradientOfItsSmoothCircuitForward) {
  // Wires, access device, PCM programming noise, variation, stuck cells and a 5-bit smooth ADC
  // with a fixed range: every part of the surrogate is differentiable for a fixed step.
  const core::Card card = card_with({"device.model=pcm-joshi2020", "device.g_min=0", "tile.wires.r_wl_segment=30",
                                     "tile.wires.r_bl_segment=30", "tile.wires.r_source=50", "tile.wires.r_sense=50",
                                     "tile.access.type=transistor", "tile.access.r_on=3000", "device.faults.stuck_low_rate=0.05",
                                     "device.variation.sigma_log=0.05", "adc.bits=5", "adc.range=fixed",
                                     "adc.i_max=8e-6", "adc.gain_sigma=0.02", "adc.offset_sigma=1e-8"});
  Net net = linear_layer(card, training::TrainingMethod::nat_full, 10, 7);
  Eigen::MatrixXd x = random_matrix(10, 3, 10, 0, 1);
  const Eigen::MatrixXd dy = random_matrix(7, 3, 11);
  net.layer->forward(3 * x);  // input scale above max|x|: no clipping at the DAC
  Eigen::MatrixXd& w = *net.layer->parameters()[0];
  // Freeze the input scale: finite differences must not move the DAC range.
  const Eigen::MatrixXd numeric_w = numeric_gradient(w, dy, [&] { return net.layer->forward(x); }, 1e-6);
  const Eigen::MatrixXd numeric_x = numeric_gradient(x, dy, [&] { return net.layer->forward(x); }, 1e-6);
  net.layer->forward(x);
  net.layer->zero_grad();
  const Eigen::MatrixXd dx = net.layer->backward(dy);
  EXPECT_LT(relative_error(dx, numeric_x), 1e-5);
  EXPECT_LT(relative_error(*net.layer->gradients()[0], numeric_w), 1e-5);
}

TEST(AnalogLayer, EvaluationCalibratesAdcRangesAndColumnCalibrationRemovesGainErrors) {
  // A fixed range with head room, so that the gain errors do not saturate the converter.
  const core::Card card = card_with({"adc.bits=8", "adc.range=fixed", "adc.i_max=6e-5", "adc.gain_sigma=0.2",
                                     "adc.offset_sigma=2e-7"});
  Net net = linear_layer(card, training::TrainingMethod::ste, 10, 7);
  const Eigen::MatrixXd calibration = random_matrix(10, 64, 12, 0, 1), test = random_matrix(10, 32, 13, 0, 1);
  net.context->phase = HardwarePhase::calibrate_adc;
  net.layer->forward(calibration);
  const double clip = (*net.layer->buffers()[1])(0, 0);
  EXPECT_DOUBLE_EQ(clip, net.layer->parameters()[0]->cwiseAbs().maxCoeff());  // no buffers: no clipping
  const Eigen::MatrixXd ideal = *net.layer->parameters()[0] * test;
  net.context->phase = HardwarePhase::evaluate;
  auto rms_error = [&](const Eigen::MatrixXd& y) { return (y - ideal).norm() / ideal.norm(); };
  const double raw = rms_error(net.layer->forward(test));
  EXPECT_GT(raw, 0.05);  // 20 % gain errors
  net.context->phase = HardwarePhase::calibrate_columns;
  net.layer->forward(calibration);
  net.context->column_calibration = true;
  net.context->phase = HardwarePhase::evaluate;
  const double calibrated = rms_error(net.layer->forward(test));
  EXPECT_LT(calibrated, 0.5 * raw);  // what is left is mostly the 8-bit quantisation
  // Another programming is other hardware.
  net.context->column_calibration = false;
  const Eigen::MatrixXd first = net.layer->forward(test);
  net.context->programming = 1;
  EXPECT_GT(relative_error(net.layer->forward(test), first), 1e-3);
}

TEST(AnalogLayer, ConvolutionOnTilesEqualsTheDigitalConvolution) {
  const core::Card card = card_with({});
  training::AnalogOptions options;
  options.ste_backward = training::SteBackward::clean;
  training::AnalogLayerFactory factory(card, devices::builtin_devices(), options);
  training::DigitalLayerFactory digital;
  const training::Conv2dShape shape{2, 3, 3, 1, 5, 5};
  core::RandomStream rng_a(21, "init"), rng_b(21, "init");
  auto analog = factory.conv2d(shape, rng_a, training::Init::he_normal, "conv");
  auto reference = digital.conv2d(shape, rng_b, training::Init::he_normal, "conv");
  ASSERT_TRUE(*analog->parameters()[0] == *reference->parameters()[0]);  // same initialisation
  // Evaluate with no clipping: equal to the digital layer.
  const Eigen::MatrixXd x = random_matrix(2 * 25, 3, 22, 0, 1), dy = random_matrix(3 * 25, 3, 23);
  factory.context()->phase = HardwarePhase::calibrate_adc;
  EXPECT_LT(relative_error(analog->forward(x), reference->forward(x)), 1e-12);
  // Training with the clean STE: the backward is the digital one at the clipped weights.
  factory.context()->phase = HardwarePhase::train;
  analog->forward(x);
  const Eigen::MatrixXd dx = analog->backward(dy);
  reference->forward(x);
  EXPECT_LT(relative_error(dx, reference->backward(dy)), 1e-12);
}

TEST(AnalogLayer, SameSeedSameResultWhateverTheThreadCount) {
  const core::Card card = card_with({"device.model=pcm-joshi2020", "device.g_min=0", "tile.wires.r_wl_segment=3",
                                     "tile.wires.r_bl_segment=3", "adc.bits=5", "adc.noise_sigma=1e-7",
                                     "dac.bits=6"});
  auto run = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    Net net = linear_layer(card, training::TrainingMethod::ste, 20, 9);
    const Eigen::MatrixXd x = random_matrix(20, 8, 30, 0, 1);
    Eigen::MatrixXd y = net.layer->forward(x);
    Eigen::MatrixXd dx = net.layer->backward(random_matrix(9, 8, 31));
    return std::make_pair(y, dx);
  };
  const auto one = run(1), two = run(2);
  EXPECT_TRUE(one.first == two.first);
  EXPECT_TRUE(one.second == two.second);
}

TEST(AnalogLayer, OptionErrorsNameTheOptionAndTheChoices) {
  EXPECT_THROW(training::parse_training_method("sta"), core::UserError);
  EXPECT_THROW(training::parse_ste_backward("exact"), core::UserError);
  training::AnalogOptions options;
  options.ste_backward = training::SteBackward::effective;
  EXPECT_THROW(training::AnalogLayerFactory(card_with({"solver.method=direct"}), devices::builtin_devices(), options),
               core::UserError);
}

TEST(AnalogLayer, ColumnCalibrationMapsOntoWhatTheNetworkWasTrainedToExpect) {
  // Wires only (ideal devices and converters): the hardware is its own nominal hardware.
  const core::Card card = card_with({"tile.wires.r_wl_segment=200", "tile.wires.r_bl_segment=200"});
  const Eigen::MatrixXd calibration = random_matrix(10, 64, 40, 0, 1), test = random_matrix(10, 32, 41, 0, 1);
  auto scores = [&](training::CalibrationTarget target) {
    training::AnalogOptions options;
    options.calibration_target = target;
    training::AnalogLayerFactory factory(card, devices::builtin_devices(), options);
    core::RandomStream rng(11, "init");
    auto layer = factory.linear(10, 7, rng, training::Init::he_normal, "fc");
    auto ctx = factory.context();
    ctx->phase = HardwarePhase::calibrate_adc;
    layer->forward(calibration);
    ctx->phase = HardwarePhase::evaluate;
    const Eigen::MatrixXd raw = layer->forward(test);
    ctx->phase = HardwarePhase::calibrate_columns;
    layer->forward(calibration);
    ctx->column_calibration = true;
    ctx->phase = HardwarePhase::evaluate;
    return std::make_tuple(raw, layer->forward(test), Eigen::MatrixXd(*layer->parameters()[0] * test));
  };
  EXPECT_EQ(training::calibration_target_for(training::TrainingMethod::ste),
            training::CalibrationTarget::nominal_hardware);
  EXPECT_EQ(training::calibration_target_for(training::TrainingMethod::nat), training::CalibrationTarget::ideal_layer);
  // A network trained through calibrated hardware expects what the training calibration mapped onto.
  EXPECT_EQ(training::calibration_target_for(training::TrainingMethod::ste, true),
            training::CalibrationTarget::ideal_layer);
  {
    const auto [raw, calibrated, ideal] = scores(training::CalibrationTarget::nominal_hardware);
    EXPECT_LT(relative_error(calibrated, raw), 1e-9);  // nothing to correct
    EXPECT_GT(relative_error(raw, ideal), 0.02);       // although the wires distort the outputs
  }
  {
    const auto [raw, calibrated, ideal] = scores(training::CalibrationTarget::ideal_layer);
    EXPECT_LT((calibrated - ideal).norm(), 0.5 * (raw - ideal).norm());  // towards the ideal layer
  }
}
