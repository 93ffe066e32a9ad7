// Tests of the optimisers (training/optim.hpp): one and two steps against hand-computed values,
// convergence on a quadratic, state save/restore, option validation, and a small network trained
// with both.
#include "training/optim.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "training/layers.hpp"

namespace xbar::training {
namespace {

using Eigen::MatrixXd;

MatrixXd scalar(double v) { return MatrixXd::Constant(1, 1, v); }

// ---------------------------------------------------------------------------------------------
// SGD

TEST(Sgd, MomentumTwoStepsByHand) {
  // θ = 1, constant gradient 0.5, η = 0.1, μ = 0.9:
  // step 1: v = 0.5,                θ = 1 − 0.05 = 0.95
  // step 2: v = 0.9·0.5 + 0.5 = 0.95, θ = 0.95 − 0.095 = 0.855
  MatrixXd p = scalar(1.0), g = scalar(0.5);
  Sgd sgd({&p}, {&g}, {.learning_rate = 0.1, .momentum = 0.9});
  sgd.step();
  EXPECT_NEAR(p(0, 0), 0.95, 1e-15);
  EXPECT_NEAR(sgd.velocity()[0](0, 0), 0.5, 1e-15);
  sgd.step();
  EXPECT_NEAR(p(0, 0), 0.855, 1e-15);
  EXPECT_NEAR(sgd.velocity()[0](0, 0), 0.95, 1e-15);
  EXPECT_EQ(sgd.steps(), 2);
}

TEST(Sgd, WeightDecayTwoStepsByHand) {
  // As above with λ = 0.1: g1 = 0.5 + 0.1·1 = 0.6, v = 0.6, θ = 0.94;
  // g2 = 0.5 + 0.1·0.94 = 0.594, v = 0.54 + 0.594 = 1.134, θ = 0.94 − 0.1134 = 0.8266.
  MatrixXd p = scalar(1.0), g = scalar(0.5);
  Sgd sgd({&p}, {&g}, {.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 0.1});
  sgd.step();
  EXPECT_NEAR(p(0, 0), 0.94, 1e-15);
  sgd.step();
  EXPECT_NEAR(p(0, 0), 0.8266, 1e-15);
  EXPECT_NEAR(sgd.velocity()[0](0, 0), 1.134, 1e-15);
}

TEST(Sgd, PlainStepUpdatesEveryParameter) {
  MatrixXd a(2, 2), ga(2, 2), b = scalar(3.0), gb = scalar(-1.0);
  a << 1, 2, 3, 4;
  ga << 1, -1, 0.5, 0;
  Sgd sgd({&a, &b}, {&ga, &gb}, {.learning_rate = 0.5});
  sgd.step();
  MatrixXd expected(2, 2);
  expected << 0.5, 2.5, 2.75, 4;
  EXPECT_EQ(a, expected);
  EXPECT_EQ(b(0, 0), 3.5);
  sgd.zero_grad();
  EXPECT_EQ(ga.norm(), 0.0);
  EXPECT_EQ(gb.norm(), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Adam

TEST(Adam, TwoStepsByHand) {
  // θ = 1, η = 0.1, β1 = 0.9, β2 = 0.999, ε = 1e-8; gradients 0.5 then −0.2.
  // step 1: m = 0.05, v = 2.5e-4, m̂ = 0.5, v̂ = 0.25, θ = 1 − 0.1·0.5/(0.5 + 1e-8) = 0.900000002
  // step 2: m = 0.045 − 0.02 = 0.025, v = 2.4975e-4 + 4e-5 = 2.8975e-4,
  //         m̂ = 0.025/0.19, v̂ = 2.8975e-4/0.001999, θ = 0.8654394181165108
  MatrixXd p = scalar(1.0), g = scalar(0.5);
  Adam adam({&p}, {&g}, {.learning_rate = 0.1});
  adam.step();
  EXPECT_NEAR(p(0, 0), 0.900000002, 1e-12);
  EXPECT_NEAR(adam.first_moment()[0](0, 0), 0.05, 1e-15);
  EXPECT_NEAR(adam.second_moment()[0](0, 0), 2.5e-4, 1e-18);
  g(0, 0) = -0.2;
  adam.step();
  EXPECT_NEAR(p(0, 0), 0.8654394181165108, 1e-12);
  EXPECT_NEAR(adam.first_moment()[0](0, 0), 0.025, 1e-15);
  EXPECT_NEAR(adam.second_moment()[0](0, 0), 2.8975e-4, 1e-18);
  EXPECT_EQ(adam.steps(), 2);
}

TEST(Adam, BiasCorrectionMakesTheFirstStepTheLearningRate) {
  // With bias correction the first step is η·g/(|g| + ε) ≈ η·sign(g) whatever |g|; without it,
  // it would be η·(1 − β1)/sqrt(1 − β2) ≈ 3.16 η.
  for (double grad : {1e-3, 1.0, -250.0}) {
    MatrixXd p = scalar(0.0), g = scalar(grad);
    Adam adam({&p}, {&g}, {.learning_rate = 0.01});
    adam.step();
    EXPECT_NEAR(p(0, 0), -0.01 * grad / (std::abs(grad) + 1e-8), 1e-15) << grad;
  }
}

TEST(Adam, WeightDecayIsAddedToTheGradient) {
  // g = 0 + λθ = 0.5, so the first step is −η·0.5/(0.5 + ε).
  MatrixXd p = scalar(5.0), g = scalar(0.0);
  Adam adam({&p}, {&g}, {.learning_rate = 0.1, .weight_decay = 0.1});
  adam.step();
  EXPECT_NEAR(p(0, 0), 5.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-14);
}

// ---------------------------------------------------------------------------------------------
// Both: convergence, state, determinism, validation

// L(θ) = ½ Σ a_i (θ_i − c_i)², an ill-conditioned quadratic; gradient a ∘ (θ − c).
struct Quadratic {
  Eigen::VectorXd a = (Eigen::VectorXd(4) << 1.0, 10.0, 0.1, 3.0).finished();
  Eigen::VectorXd c = (Eigen::VectorXd(4) << 1.0, -2.0, 0.5, 3.0).finished();
  double loss(const MatrixXd& p) const { return 0.5 * (a.array() * (p.col(0) - c).array().square()).sum(); }
  void gradient(const MatrixXd& p, MatrixXd& g) const { g = (a.array() * (p.col(0) - c).array()).matrix(); }
};

template <class Opt, class Options>
double minimise(const Options& options, int steps) {
  Quadratic q;
  MatrixXd p = MatrixXd::Zero(4, 1), g = MatrixXd::Zero(4, 1);
  Opt opt({&p}, {&g}, options);
  const double initial = q.loss(p);
  for (int i = 0; i < steps; ++i) {
    q.gradient(p, g);
    opt.step();
  }
  return q.loss(p) / initial;
}

TEST(Optimisers, ReduceAQuadratic) {
  EXPECT_LT((minimise<Sgd>(SgdOptions{.learning_rate = 0.05, .momentum = 0.9}, 400)), 1e-8);
  EXPECT_LT((minimise<Sgd>(SgdOptions{.learning_rate = 0.05}, 1)), 1.0);
  EXPECT_LT((minimise<Adam>(AdamOptions{.learning_rate = 0.05}, 1000)), 1e-4);
  EXPECT_LT((minimise<Adam>(AdamOptions{.learning_rate = 0.05}, 1)), 1.0);
}

TEST(Optimisers, RestoredStateContinuesIdentically) {
  Quadratic q;
  MatrixXd p = MatrixXd::Zero(4, 1), g(4, 1);
  Adam adam({&p}, {&g}, {.learning_rate = 0.05});
  MatrixXd ps = MatrixXd::Zero(4, 1), gs(4, 1);
  Sgd sgd({&ps}, {&gs}, {.learning_rate = 0.05, .momentum = 0.9});
  for (int i = 0; i < 3; ++i) {
    q.gradient(p, g);
    adam.step();
    q.gradient(ps, gs);
    sgd.step();
  }
  // A fresh optimiser over a copy of the parameters, given the saved state.
  MatrixXd p2 = p, g2(4, 1);
  Adam adam2({&p2}, {&g2}, {.learning_rate = 0.05});
  adam2.set_state(adam.first_moment(), adam.second_moment(), adam.steps());
  MatrixXd ps2 = ps, gs2(4, 1);
  Sgd sgd2({&ps2}, {&gs2}, {.learning_rate = 0.05, .momentum = 0.9});
  sgd2.set_velocity(sgd.velocity());
  for (int i = 0; i < 5; ++i) {
    q.gradient(p, g);
    adam.step();
    q.gradient(p2, g2);
    adam2.step();
    q.gradient(ps, gs);
    sgd.step();
    q.gradient(ps2, gs2);
    sgd2.step();
  }
  EXPECT_EQ(p, p2);
  EXPECT_EQ(ps, ps2);
  // Without the state the trajectories differ, so the comparison above means something.
  MatrixXd p3 = MatrixXd::Zero(4, 1), g3(4, 1);
  Adam fresh({&p3}, {&g3}, {.learning_rate = 0.05});
  for (int i = 0; i < 3; ++i) {
    q.gradient(p3, g3);
    fresh.step();
  }
  MatrixXd p4 = p3, g4(4, 1);
  Adam no_state({&p4}, {&g4}, {.learning_rate = 0.05});
  q.gradient(p3, g3);
  fresh.step();
  q.gradient(p4, g4);
  no_state.step();
  EXPECT_GT((p3 - p4).norm(), 1e-6);
}

TEST(Optimisers, RejectMismatchedStateAndLists) {
  MatrixXd p(2, 2), g(2, 2), wrong(3, 1);
  EXPECT_THROW(Sgd({&p}, {&g, &g}), std::invalid_argument);
  EXPECT_THROW(Adam({&p}, {&wrong}), std::invalid_argument);
  Sgd sgd({&p}, {&g});
  EXPECT_THROW(sgd.set_velocity({wrong}), std::invalid_argument);
  Adam adam({&p}, {&g});
  EXPECT_THROW(adam.set_state({p}, {wrong}, 1), std::invalid_argument);
  EXPECT_THROW(adam.set_state({p}, {p}, -1), std::invalid_argument);
}

TEST(Optimisers, ValidationNamesTheField) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { SgdOptions{.momentum = 1.0}.validate(); }).find("SgdOptions.momentum"), std::string::npos);
  EXPECT_NE(message([] { SgdOptions{.learning_rate = 0.0}.validate(); }).find("learning_rate"), std::string::npos);
  EXPECT_NE(message([] { SgdOptions{.weight_decay = -1}.validate(); }).find("weight_decay"), std::string::npos);
  EXPECT_NE(message([] { AdamOptions{.beta2 = 1.0}.validate(); }).find("AdamOptions.beta2"), std::string::npos);
  EXPECT_NE(message([] { AdamOptions{.epsilon = 0.0}.validate(); }).find("epsilon"), std::string::npos);
  EXPECT_NO_THROW(SgdOptions{}.validate());
  EXPECT_NO_THROW(AdamOptions{}.validate());
}

// A small MLP on a seeded two-class problem: both optimisers lower the loss a lot, and two runs
// from the same seed end bit-for-bit identical.
template <class Opt, class Options>
std::pair<double, MatrixXd> train_mlp(const Options& options, int steps) {
  core::RandomStream data(5, "data"), init(5, "init");
  MatrixXd x(2, 32);
  std::vector<int> labels(32);
  for (int n = 0; n < 32; ++n) {
    x(0, n) = data.normal();
    x(1, n) = data.normal();
    labels[n] = x(0, n) * x(1, n) > 0 ? 1 : 0;  // XOR-like quadrants
  }
  Sequential net;
  net.emplace<Linear>(2, 16, init);
  net.emplace<ReLU>();
  net.emplace<Linear>(16, 2, init, Init::glorot_uniform);
  Opt opt(net.parameters(), net.gradients(), options);
  const double initial = softmax_cross_entropy(net.forward(x), labels).loss;
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    net.backward(softmax_cross_entropy(net.forward(x), labels).grad);
    opt.step();
  }
  const double final_loss = softmax_cross_entropy(net.forward(x), labels).loss;
  return {final_loss / initial, *net.parameters()[0]};
}

TEST(Optimisers, TrainASmallNetworkDeterministically) {
  const auto [sgd_ratio, sgd_w] = train_mlp<Sgd>(SgdOptions{.learning_rate = 0.1, .momentum = 0.9}, 300);
  const auto [adam_ratio, adam_w] = train_mlp<Adam>(AdamOptions{.learning_rate = 0.02}, 300);
  EXPECT_LT(sgd_ratio, 0.3);
  EXPECT_LT(adam_ratio, 0.3);
  EXPECT_EQ(train_mlp<Adam>(AdamOptions{.learning_rate = 0.02}, 300).second, adam_w);
  EXPECT_EQ(train_mlp<Sgd>(SgdOptions{.learning_rate = 0.1, .momentum = 0.9}, 300).second, sgd_w);
}

}  // namespace
}  // namespace xbar::training
