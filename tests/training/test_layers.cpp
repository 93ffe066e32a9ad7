// Tests of the digital layers (training/layers.hpp): forward values against direct loops, every
// backward pass against central finite differences (input and parameter gradients), the softmax
// cross-entropy on known cases, a LeNet-like Sequential end to end, and seeded initialisation.
#include "training/layers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <vector>

#include <tbb/global_control.h>

#include "core/random.hpp"
#include "tests/support/gradients.hpp"

namespace xbar::training {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;

using testing_support::central_differences;
using testing_support::gradient_check;
using testing_support::GradCheck;
using testing_support::random_matrix;
using testing_support::relative_error;

constexpr double kTol = 1e-6;

// Direct-loop reference of the convolution (cross-correlation with zero padding).
MatrixXd naive_conv(const MatrixXd& x, const MatrixXd& w, const MatrixXd& b, const Conv2dShape& s) {
  const int ho = s.out_height(), wo = s.out_width(), k = s.kernel;
  MatrixXd y = MatrixXd::Zero(s.out_channels * ho * wo, x.cols());
  for (Index n = 0; n < x.cols(); ++n)
    for (int o = 0; o < s.out_channels; ++o)
      for (int oy = 0; oy < ho; ++oy)
        for (int ox = 0; ox < wo; ++ox) {
          double acc = b(o, 0);
          for (int c = 0; c < s.in_channels; ++c)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                const int iy = oy + ky - s.padding, ix = ox + kx - s.padding;
                if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                acc += w(o, (c * k + ky) * k + kx) * x((c * s.height + iy) * s.width + ix, n);
              }
          y((o * ho + oy) * wo + ox, n) = acc;
        }
  return y;
}

// ---------------------------------------------------------------------------------------------
// The checker itself must catch a plausible bug.

// Linear whose bias gradient forgets the sum over the batch (uses the first sample only).
class BuggyLinear : public Linear {
 public:
  using Linear::Linear;
  MatrixXd backward(const MatrixXd& dy) override {
    const MatrixXd before = grad_bias();
    MatrixXd dx = Linear::backward(dy);
    *gradients()[1] = before + dy.col(0);
    return dx;
  }
};

TEST(GradientCheck, DetectsAWrongGradient) {
  core::RandomStream rng(1, "test");
  BuggyLinear layer(4, 3, rng);
  const GradCheck check = gradient_check(layer, random_matrix(4, 3, rng), rng);
  EXPECT_LT(check.input, kTol);
  EXPECT_LT(check.params[0], kTol);
  EXPECT_GT(check.params[1], 1e-2);
}

// ---------------------------------------------------------------------------------------------
// Linear

TEST(Linear, ForwardIsAffine) {
  core::RandomStream rng(2, "test");
  Linear layer(3, 2, rng);
  layer.bias() << 0.5, -1.0;
  const MatrixXd x = random_matrix(3, 4, rng);
  const MatrixXd y = layer.forward(x);
  ASSERT_EQ(y.rows(), 2);
  ASSERT_EQ(y.cols(), 4);
  for (Index n = 0; n < 4; ++n)
    for (Index o = 0; o < 2; ++o) {
      double expected = layer.bias()(o, 0);
      for (Index i = 0; i < 3; ++i) expected += layer.weight()(o, i) * x(i, n);
      EXPECT_NEAR(y(o, n), expected, 1e-14);
    }
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  core::RandomStream rng(3, "test");
  for (const auto& [in, out, batch] : std::vector<std::array<int, 3>>{{5, 3, 1}, {4, 7, 4}, {1, 1, 3}}) {
    Linear layer(in, out, rng, Init::glorot_uniform);
    layer.bias() = random_matrix(out, 1, rng);
    const GradCheck check = gradient_check(layer, random_matrix(in, batch, rng), rng);
    EXPECT_LT(check.max_error(), kTol) << layer.name() << " batch " << batch;
  }
}

TEST(Linear, BackwardAccumulatesUntilZeroGrad) {
  core::RandomStream rng(4, "test");
  Linear layer(3, 2, rng);
  const MatrixXd x = random_matrix(3, 2, rng), dy = random_matrix(2, 2, rng);
  layer.forward(x);
  layer.backward(dy);
  const MatrixXd once = layer.grad_weight();
  layer.backward(dy);
  EXPECT_LT((layer.grad_weight() - 2 * once).norm(), 1e-14);
  layer.zero_grad();
  EXPECT_EQ(layer.grad_weight().norm(), 0.0);
  EXPECT_EQ(layer.grad_bias().norm(), 0.0);
}

TEST(Linear, RejectsWrongInputSize) {
  core::RandomStream rng(5, "test");
  Linear layer(3, 2, rng);
  EXPECT_THROW(layer.forward(MatrixXd::Zero(4, 1)), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Initialisation

TEST(Init, SameSeedSameWeightsOtherSeedOtherWeights) {
  core::RandomStream a(42, "init"), b(42, "init"), c(43, "init");
  Linear la(6, 5, a), lb(6, 5, b), lc(6, 5, c);
  EXPECT_EQ(la.weight(), lb.weight());
  EXPECT_GT((la.weight() - lc.weight()).norm(), 0.1);
  Conv2dShape s{2, 3, 3, 1, 5, 5};
  core::RandomStream d(7, "init"), e(7, "init");
  Conv2d ca(s, d), cb(s, e);
  EXPECT_EQ(ca.weight(), cb.weight());
  EXPECT_EQ(ca.bias().norm(), 0.0);
}

TEST(Init, HeNormalHasTheRightSpread) {
  core::RandomStream rng(8, "init");
  Linear layer(400, 300, rng, Init::he_normal);
  const MatrixXd& w = layer.weight();
  const double mean = w.mean();
  const double stddev = std::sqrt((w.array() - mean).square().mean());
  EXPECT_NEAR(mean, 0.0, 0.003);
  EXPECT_NEAR(stddev / std::sqrt(2.0 / 400), 1.0, 0.01);
}

TEST(Init, GlorotUniformFillsItsInterval) {
  core::RandomStream rng(9, "init");
  Linear layer(300, 100, rng, Init::glorot_uniform);
  const double a = std::sqrt(6.0 / 400);
  const MatrixXd& w = layer.weight();
  EXPECT_LE(w.maxCoeff(), a);
  EXPECT_GE(w.minCoeff(), -a);
  EXPECT_GT(w.maxCoeff(), 0.99 * a);
  EXPECT_LT(w.minCoeff(), -0.99 * a);
  EXPECT_NEAR(w.array().square().mean() / (a * a / 3), 1.0, 0.02);
}

// ---------------------------------------------------------------------------------------------
// Conv2d

TEST(Conv2d, BackwardAccumulatesUntilZeroGrad) {
  core::RandomStream rng(20, "test");
  const Conv2dShape s{2, 3, 3, 1, 4, 5};
  Conv2d conv(s, rng);
  const MatrixXd x = random_matrix(2 * 4 * 5, 2, rng), dy = random_matrix(3 * 4 * 5, 2, rng);
  conv.forward(x);
  conv.backward(dy);
  const MatrixXd w_once = conv.grad_weight(), b_once = conv.grad_bias();
  conv.backward(dy);
  EXPECT_LT((conv.grad_weight() - 2 * w_once).norm(), 1e-12);
  EXPECT_LT((conv.grad_bias() - 2 * b_once).norm(), 1e-12);
  EXPECT_GT(b_once.norm(), 0.0);
  conv.zero_grad();
  EXPECT_EQ(conv.grad_weight().norm(), 0.0);
  EXPECT_EQ(conv.grad_bias().norm(), 0.0);
}

TEST(Conv2d, ShapeValidationNamesTheField) {
  Conv2dShape s{1, 1, 5, 0, 3, 8};
  try {
    s.validate();
    FAIL() << "kernel larger than the padded input accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kernel"), std::string::npos) << e.what();
  }
  s.padding = 1;
  EXPECT_NO_THROW(s.validate());
  EXPECT_EQ(s.out_height(), 1);
  EXPECT_EQ(s.out_width(), 6);
}

TEST(Conv2d, Im2colAndCol2imAreAdjoint) {
  core::RandomStream rng(10, "test");
  const Conv2dShape s{2, 1, 3, 2, 4, 5};
  const MatrixXd x = random_matrix(2 * 4 * 5, 3, rng);
  const MatrixXd cols = im2col(x, s);
  ASSERT_EQ(cols.rows(), 2 * 3 * 3);
  ASSERT_EQ(cols.cols(), s.out_height() * s.out_width() * 3);
  const MatrixXd c = random_matrix(cols.rows(), cols.cols(), rng);
  EXPECT_NEAR(cols.cwiseProduct(c).sum(), x.cwiseProduct(col2im(c, s, 3)).sum(), 1e-11);
}

TEST(Conv2d, ForwardMatchesDirectConvolution) {
  core::RandomStream rng(11, "test");
  for (const Conv2dShape& s : {Conv2dShape{2, 3, 3, 0, 5, 7}, Conv2dShape{1, 2, 3, 2, 4, 6},
                               Conv2dShape{3, 2, 2, 1, 3, 5}}) {
    Conv2d conv(s, rng);
    conv.bias() = random_matrix(s.out_channels, 1, rng);
    const MatrixXd x = random_matrix(s.in_channels * s.height * s.width, 2, rng);
    const MatrixXd y = conv.forward(x);
    ASSERT_EQ(y.rows(), s.out_channels * s.out_height() * s.out_width());
    EXPECT_LT((y - naive_conv(x, conv.weight(), conv.bias(), s)).norm(), 1e-12) << conv.name();
  }
}

TEST(Conv2d, GradientsMatchFiniteDifferences) {
  core::RandomStream rng(12, "test");
  struct Case {
    Conv2dShape shape;
    int batch;
  };
  const std::vector<Case> cases = {
      {{2, 3, 3, 0, 5, 7}, 2},  // padding 0, non-square
      {{1, 2, 3, 2, 4, 6}, 3},  // padding 2, non-square, batch 3
      {{3, 2, 2, 1, 3, 3}, 1},  // even kernel
      {{2, 2, 1, 0, 3, 4}, 2},  // 1×1 kernel
      {{1, 1, 5, 2, 5, 5}, 2},  // "same" padding
  };
  for (const Case& c : cases) {
    Conv2d conv(c.shape, rng);
    conv.bias() = random_matrix(c.shape.out_channels, 1, rng);
    const MatrixXd x = random_matrix(c.shape.in_channels * c.shape.height * c.shape.width, c.batch, rng);
    const GradCheck check = gradient_check(conv, x, rng);
    EXPECT_LT(check.input, kTol) << conv.name();
    EXPECT_LT(check.params[0], kTol) << conv.name();
    EXPECT_LT(check.params[1], kTol) << conv.name();
  }
}

// The convolution's gradients from the definition: dout (C_out × plane·N) rearranged from dy,
// dL/dW = dout · im2col(x)ᵀ, dL/db = row sums of dout, dL/dx = col2im(Wᵀ dout).
struct ConvGradients {
  MatrixXd weight, bias, input;
};
ConvGradients reference_conv_gradients(const MatrixXd& x, const MatrixXd& w, const MatrixXd& dy, const Conv2dShape& s) {
  const Index plane = s.out_height() * s.out_width(), batch = x.cols();
  MatrixXd dout(s.out_channels, plane * batch);
  for (Index n = 0; n < batch; ++n)
    for (int o = 0; o < s.out_channels; ++o)
      dout.row(o).segment(n * plane, plane) = dy.col(n).segment(o * plane, plane).transpose();
  return {dout * im2col(x, s).transpose(), dout.rowwise().sum(), col2im(w.transpose() * dout, s, batch)};
}

TEST(Conv2d, SparseAndDenseGradientsFollowTheDefinition) {
  // A gradient that is mostly zeros (as after ReLU and max pooling) takes the zero-skipping path,
  // a dense one the block products; both must give the gradients of the definition, with padding
  // at the image edges and several input channels.
  core::RandomStream rng(31, "test");
  for (const Conv2dShape& s : {Conv2dShape{3, 4, 3, 1, 7, 6}, Conv2dShape{2, 5, 5, 0, 12, 12}}) {
    Conv2d conv(s, rng);
    const Index batch = 37;
    const MatrixXd x = random_matrix(s.in_channels * s.height * s.width, batch, rng);
    for (const double keep_fraction : {1.0, 0.1}) {
      MatrixXd dy = random_matrix(s.out_channels * s.out_height() * s.out_width(), batch, rng);
      for (Index i = 0; i < dy.size(); ++i)
        if (rng.uniform() >= keep_fraction) dy.data()[i] = 0.0;
      conv.zero_grad();
      conv.forward(x);
      const MatrixXd dx = conv.backward(dy);
      const ConvGradients expected = reference_conv_gradients(x, conv.weight(), dy, s);
      EXPECT_LT(relative_error(conv.grad_weight(), expected.weight), 1e-13) << conv.name() << " kept " << keep_fraction;
      EXPECT_LT(relative_error(conv.grad_bias(), expected.bias), 1e-13) << conv.name() << " kept " << keep_fraction;
      EXPECT_LT(relative_error(dx, expected.input), 1e-13) << conv.name() << " kept " << keep_fraction;
    }
  }
}

TEST(Conv2d, SkipsTheInputGradientWhenNotNeeded) {
  core::RandomStream rng(32, "test");
  const Conv2dShape s{1, 3, 3, 0, 6, 6};
  Conv2d conv(s, rng);
  const MatrixXd x = random_matrix(36, 4, rng), dy = random_matrix(3 * 16, 4, rng);
  conv.forward(x);
  conv.backward(dy);
  const MatrixXd grad_weight = conv.grad_weight();
  conv.zero_grad();
  conv.set_input_gradient_needed(false);
  conv.forward(x);
  EXPECT_EQ(conv.backward(dy).size(), 0);
  EXPECT_EQ(conv.grad_weight(), grad_weight);
}

// ---------------------------------------------------------------------------------------------
// ReLU

// Values at least `margin` away from zero, so that ±h never crosses the kink.
MatrixXd away_from_zero(Index rows, Index cols, core::RandomStream& rng, double margin = 0.05) {
  MatrixXd m = random_matrix(rows, cols, rng);
  for (Index i = 0; i < m.size(); ++i) {
    double& v = m.data()[i];
    v = (v >= 0 ? 1.0 : -1.0) * (margin + std::abs(v));
  }
  return m;
}

TEST(ReLU, ForwardAndGradient) {
  core::RandomStream rng(13, "test");
  ReLU relu;
  MatrixXd x(2, 2);
  x << -1.0, 2.0, 0.0, -3.0;
  MatrixXd expected(2, 2);
  expected << 0.0, 2.0, 0.0, 0.0;
  EXPECT_EQ(relu.forward(x), expected);
  MatrixXd dy(2, 2);
  dy << 5.0, 6.0, 7.0, 8.0;
  MatrixXd dx_expected(2, 2);
  dx_expected << 0.0, 6.0, 0.0, 0.0;
  EXPECT_EQ(relu.backward(dy), dx_expected);

  const GradCheck check = gradient_check(relu, away_from_zero(7, 3, rng), rng);
  EXPECT_LT(check.input, kTol);
  EXPECT_TRUE(check.params.empty());
}

// ---------------------------------------------------------------------------------------------
// MaxPool2d

// Distinct values 0.1 apart in random order (no ties, no argmax change under ±h).
MatrixXd distinct_values(Index rows, Index cols, core::RandomStream& rng) {
  std::vector<double> v(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * static_cast<double>(i) - 1.0;
  for (std::size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[rng.next_u64() % (i + 1)]);
  return Eigen::Map<MatrixXd>(v.data(), rows, cols);
}

TEST(MaxPool2d, ForwardPicksTheWindowMaximum) {
  core::RandomStream rng(14, "test");
  const int c = 2, h = 5, w = 7;  // odd sizes: the last row and column are dropped
  MaxPool2d pool(c, h, w);
  const MatrixXd x = distinct_values(c * h * w, 2, rng);
  const MatrixXd y = pool.forward(x);
  ASSERT_EQ(y.rows(), c * 2 * 3);
  for (Index n = 0; n < 2; ++n)
    for (int ch = 0; ch < c; ++ch)
      for (int oy = 0; oy < 2; ++oy)
        for (int ox = 0; ox < 3; ++ox) {
          double best = -1e300;
          Index arg = -1;
          for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx) {
              const Index i = (ch * h + 2 * oy + dy) * w + 2 * ox + dx;
              if (x(i, n) > best) best = x(i, n), arg = i;
            }
          const Index o = (ch * 2 + oy) * 3 + ox;
          EXPECT_EQ(y(o, n), best);
          EXPECT_EQ(pool.argmax()(o, n), arg);
        }
}

TEST(MaxPool2d, GradientsMatchFiniteDifferences) {
  core::RandomStream rng(15, "test");
  for (const auto& [c, h, w, batch] : std::vector<std::array<int, 4>>{{1, 4, 4, 1}, {3, 6, 4, 2}, {2, 5, 7, 3}}) {
    MaxPool2d pool(c, h, w);
    const GradCheck check = gradient_check(pool, distinct_values(c * h * w, batch, rng), rng);
    EXPECT_LT(check.input, kTol) << pool.name();
  }
}

TEST(MaxPool2d, BackwardRoutesToTheArgmaxOnly) {
  MaxPool2d pool(1, 2, 2);
  MatrixXd x(4, 1);
  x << 1.0, 4.0, 3.0, 2.0;
  EXPECT_EQ(pool.forward(x)(0, 0), 4.0);
  const MatrixXd dx = pool.backward(MatrixXd::Constant(1, 1, 2.5));
  MatrixXd expected(4, 1);
  expected << 0.0, 2.5, 0.0, 0.0;
  EXPECT_EQ(dx, expected);
}

// ---------------------------------------------------------------------------------------------
// Flatten

TEST(Flatten, IsTheIdentity) {
  core::RandomStream rng(16, "test");
  Flatten flatten;
  const MatrixXd x = random_matrix(12, 3, rng);
  EXPECT_EQ(flatten.forward(x), x);
  EXPECT_EQ(flatten.backward(x), x);
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy

TEST(SoftmaxCrossEntropy, KnownValues) {
  // Equal logits over 3 classes: loss ln 3, gradient (1/3 − onehot).
  const LossResult uniform = softmax_cross_entropy(MatrixXd::Zero(3, 1), {1});
  EXPECT_NEAR(uniform.loss, std::log(3.0), 1e-15);
  EXPECT_NEAR(uniform.grad(0, 0), 1.0 / 3, 1e-15);
  EXPECT_NEAR(uniform.grad(1, 0), 1.0 / 3 - 1.0, 1e-15);

  // Two samples, mean over the batch: logits (1, 2, 3) with labels 2 and 0.
  MatrixXd z(3, 2);
  z << 1, 1, 2, 2, 3, 3;
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const LossResult r = softmax_cross_entropy(z, {2, 0});
  EXPECT_NEAR(r.loss, 0.5 * ((lse - 3.0) + (lse - 1.0)), 1e-14);
  EXPECT_NEAR(r.loss, 0.5 * (0.40760596444437994 + 2.40760596444438), 1e-14);
  EXPECT_NEAR(r.grad(2, 0), 0.5 * (std::exp(3.0 - lse) - 1.0), 1e-15);
  EXPECT_NEAR(r.grad(2, 1), 0.5 * std::exp(3.0 - lse), 1e-15);
}

TEST(SoftmaxCrossEntropy, StableForLargeLogits) {
  MatrixXd z(2, 2);
  z << 1000.0, 1000.0, 0.0, 0.0;
  const LossResult r = softmax_cross_entropy(z, {0, 1});
  ASSERT_TRUE(std::isfinite(r.loss));
  EXPECT_NEAR(r.loss, 0.5 * (0.0 + 1000.0), 1e-9);
  EXPECT_TRUE(r.grad.allFinite());
  EXPECT_NEAR(r.grad(1, 1), -0.5, 1e-15);
}

TEST(SoftmaxCrossEntropy, GradientMatchesFiniteDifferences) {
  core::RandomStream rng(17, "test");
  MatrixXd z = random_matrix(5, 4, rng, 2.0);
  const std::vector<int> labels = {0, 3, 4, 3};
  const LossResult r = softmax_cross_entropy(z, labels);
  const MatrixXd num = central_differences(z, [&] { return softmax_cross_entropy(z, labels).loss; }, 1e-6);
  EXPECT_LT(relative_error(r.grad, num), kTol);
  EXPECT_LT(r.grad.colwise().sum().norm(), 1e-15);  // softmax − onehot sums to zero
}

TEST(SoftmaxCrossEntropy, RejectsBadLabels) {
  EXPECT_THROW(softmax_cross_entropy(MatrixXd::Zero(3, 2), {0, 3}), std::invalid_argument);
  EXPECT_THROW(softmax_cross_entropy(MatrixXd::Zero(3, 2), {0}), std::invalid_argument);
}

TEST(Accuracy, CountsArgmaxMatches) {
  MatrixXd z(3, 4);
  z << 0.9, 0.1, 0.0, 0.2,
       0.05, 0.8, 0.1, 0.7,
       0.05, 0.1, 0.9, 0.1;
  EXPECT_DOUBLE_EQ(accuracy(z, {0, 1, 2, 2}), 0.75);
  EXPECT_DOUBLE_EQ(accuracy(z, {1, 0, 0, 0}), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Sequential: a LeNet-like stack on 1×12×12 inputs

Sequential lenet(core::RandomStream& rng) {
  Sequential net;
  net.emplace<Conv2d>(Conv2dShape{1, 3, 3, 1, 12, 12}, rng);  // 3×12×12
  net.emplace<ReLU>();
  net.emplace<MaxPool2d>(3, 12, 12);                           // 3×6×6
  net.emplace<Conv2d>(Conv2dShape{3, 4, 3, 0, 6, 6}, rng);    // 4×4×4
  net.emplace<ReLU>();
  net.emplace<MaxPool2d>(4, 4, 4);                             // 4×2×2
  net.emplace<Flatten>();                                      // 16
  net.emplace<Linear>(16, 8, rng);
  net.emplace<ReLU>();
  net.emplace<Linear>(8, 5, rng, Init::glorot_uniform);
  // Non-zero biases so that their gradients are exercised.
  for (MatrixXd* p : net.parameters())
    if (p->cols() == 1) *p = random_matrix(p->rows(), 1, rng, 0.1);
  return net;
}

TEST(Sequential, ListsParametersLayerByLayer) {
  core::RandomStream rng(18, "init");
  Sequential net = lenet(rng);
  EXPECT_EQ(net.size(), 10u);
  const auto params = net.parameters();
  const auto grads = net.gradients();
  ASSERT_EQ(params.size(), 8u);
  ASSERT_EQ(grads.size(), 8u);
  const std::vector<std::pair<Index, Index>> shapes = {{3, 9}, {3, 1}, {4, 27}, {4, 1},
                                                       {8, 16}, {8, 1}, {5, 8}, {5, 1}};
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(params[i]->rows(), shapes[i].first) << i;
    EXPECT_EQ(params[i]->cols(), shapes[i].second) << i;
    EXPECT_EQ(grads[i]->rows(), shapes[i].first) << i;
    EXPECT_EQ(grads[i]->cols(), shapes[i].second) << i;
  }
  EXPECT_EQ(net.forward(MatrixXd::Zero(144, 2)).rows(), 5);
}

TEST(Sequential, LeNetEndToEndGradientCheck) {
  core::RandomStream rng(19, "test");
  Sequential net = lenet(rng);
  MatrixXd x = random_matrix(144, 3, rng);
  const std::vector<int> labels = {4, 0, 2};
  auto loss = [&] { return softmax_cross_entropy(net.forward(x), labels).loss; };

  net.zero_grad();
  const MatrixXd dx = net.backward(softmax_cross_entropy(net.forward(x), labels).grad);
  std::vector<MatrixXd> grads;
  for (MatrixXd* g : net.gradients()) grads.push_back(*g);

  const double h = 1e-6;
  const MatrixXd num_dx = central_differences(x, loss, h);
  ASSERT_GT(dx.norm(), 0.0);
  EXPECT_LT(relative_error(dx, num_dx), kTol);

  const auto params = net.parameters();
  for (std::size_t k = 0; k < params.size(); ++k) {
    const MatrixXd num = central_differences(*params[k], loss, h);
    ASSERT_GT(grads[k].norm(), 0.0) << "parameter " << k;
    EXPECT_LT(relative_error(grads[k], num), kTol) << "parameter " << k;
  }
}

// Forward and backward of a LeNet-sized network with 1 and with 2 threads: the batch spans
// several blocks of every layer, and results must agree to the last bit.
TEST(Sequential, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  struct Run {
    MatrixXd logits, dx;
    std::vector<MatrixXd> grads;
  };
  auto run = [](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    core::RandomStream rng(40, "init");
    Sequential net;
    net.emplace<Conv2d>(Conv2dShape{1, 6, 5, 0, 28, 28}, rng);
    net.emplace<ReLU>();
    net.emplace<MaxPool2d>(6, 24, 24);
    net.emplace<Conv2d>(Conv2dShape{6, 16, 5, 0, 12, 12}, rng);
    net.emplace<ReLU>();
    net.emplace<MaxPool2d>(16, 8, 8);
    net.emplace<Flatten>();
    net.emplace<Linear>(256, 120, rng);
    net.emplace<ReLU>();
    net.emplace<Linear>(120, 10, rng, Init::glorot_uniform);
    core::RandomStream data(41, "data");
    const MatrixXd x = random_matrix(784, 75, data);
    std::vector<int> labels(75);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % 10);
    Run r;
    r.logits = net.forward(x);
    r.dx = net.backward(softmax_cross_entropy(r.logits, labels).grad);
    for (MatrixXd* g : net.gradients()) r.grads.push_back(*g);
    return r;
  };
  const Run one = run(1), two = run(2);
  EXPECT_EQ(one.logits, two.logits);
  EXPECT_EQ(one.dx, two.dx);
  ASSERT_EQ(one.grads.size(), two.grads.size());
  for (std::size_t k = 0; k < one.grads.size(); ++k) {
    EXPECT_GT(one.grads[k].norm(), 0.0) << "gradient " << k;
    EXPECT_EQ(one.grads[k], two.grads[k]) << "gradient " << k;
  }
}

TEST(Sequential, NamesParametersAndTellsOnlyTheFirstLayerItNeedsNoInputGradient) {
  core::RandomStream rng(42, "init");
  Sequential net;
  net.add(std::make_unique<Linear>(4, 3, rng), "fc1");
  net.emplace<ReLU>();
  net.add(std::make_unique<Linear>(3, 2, rng), "fc2");
  std::vector<std::string> names;
  for (const auto& [name, p] : net.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_EQ(net.layer_name(1), "layer1");
  EXPECT_EQ(net.named_parameters()[2].second, net.parameters()[2]);

  const MatrixXd x = random_matrix(4, 5, rng), dy = random_matrix(2, 5, rng);
  net.forward(x);
  const MatrixXd dx = net.backward(dy);
  const std::vector<MatrixXd*> grads = net.gradients();
  const MatrixXd first_grad = *grads[0], last_grad = *grads[2];
  net.zero_grad();
  net.set_input_gradient_needed(false);
  net.forward(x);
  EXPECT_EQ(net.backward(dy).size(), 0);
  EXPECT_EQ(*grads[0], first_grad);
  EXPECT_EQ(*grads[2], last_grad);
  EXPECT_EQ(dx.rows(), 4);
}

}  // namespace
}  // namespace xbar::training
