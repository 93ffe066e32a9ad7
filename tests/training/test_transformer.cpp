// Tests of the transformer layers (training/transformer.hpp): every backward pass against central
// finite differences (inputs and every parameter), forward values against direct loops,
// causality, the factory making every weight matrix, parameter order and names, thread-count
// independence, and a tiny model learning a repeating text.
#include "training/transformer.hpp"

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "tests/support/gradients.hpp"
#include "training/network.hpp"
#include "training/optim.hpp"

namespace xbar::training {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;

using testing_support::central_differences;
using testing_support::GradCheck;
using testing_support::random_matrix;
using testing_support::relative_error;

// The shared gradient check (tests/support/gradients.hpp), its worst relative error printed so
// that a run shows how close it is, and every error expected below 1e-6. `zero_gradient` lists the
// attention key biases: the key bias of attention adds k_s·b = b·q_t to every score of query t,
// which the softmax cancels.
GradCheck gradient_check(Layer& layer, const MatrixXd& x, core::RandomStream& rng, bool check_input = true,
                         const std::set<std::size_t>& zero_gradient = {}, double h = 1e-6) {
  const GradCheck out = testing_support::gradient_check(layer, x, rng, check_input, zero_gradient, h);
  std::printf("[ GRADCHK  ] %-50s worst relative error %.2e\n", layer.name().c_str(), out.max_error());
  EXPECT_LT(out.input, 1e-6) << layer.name() << ": input gradient";
  for (std::size_t k = 0; k < out.params.size(); ++k) {
    EXPECT_LT(out.params[k], 1e-6) << layer.name() << ": gradient of parameter " << k;
  }
  return out;
}

constexpr double kTol = 1e-6;

// Random values for every parameter (gains and biases start at 1 and 0, which would hide bugs).
void randomize_parameters(Layer& layer, core::RandomStream& rng, double stddev = 0.5) {
  for (MatrixXd* p : layer.parameters()) *p = random_matrix(p->rows(), p->cols(), rng, stddev);
}

// A factory that records the name of every layer it makes (digital layers).
class RecordingFactory final : public LayerFactory {
 public:
  std::unique_ptr<Layer> linear(int in, int out, core::RandomStream& rng, Init init,
                                const std::string& name) const override {
    made.push_back(name + " " + std::to_string(in) + "->" + std::to_string(out));
    return std::make_unique<Linear>(in, out, rng, init);
  }
  std::unique_ptr<Layer> conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init,
                                const std::string& name) const override {
    ADD_FAILURE() << "the transformer has no convolution";
    return std::make_unique<Conv2d>(shape, rng, init);
  }
  mutable std::vector<std::string> made;
};

// A Linear with one buffer (like an analog layer's input scale), to check that containers list
// their factory layers' buffers.
class BufferedLinear final : public Linear {
 public:
  using Linear::Linear;
  std::vector<MatrixXd*> buffers() override { return {&scale_}; }

 private:
  MatrixXd scale_ = MatrixXd::Ones(1, 1);
};

class BufferedFactory final : public LayerFactory {
 public:
  std::unique_ptr<Layer> linear(int in, int out, core::RandomStream& rng, Init init, const std::string&) const override {
    return std::make_unique<BufferedLinear>(in, out, rng, init);
  }
  std::unique_ptr<Layer> conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init,
                                const std::string&) const override {
    return std::make_unique<Conv2d>(shape, rng, init);
  }
};

CharTransformerConfig tiny_config() {
  CharTransformerConfig c;
  c.vocab_size = 7;
  c.context = 5;
  c.width = 8;
  c.heads = 2;
  c.layers = 2;
  c.embedding_init_stddev = 0.5;
  return c;
}

// Indices of the attention key biases (whose gradient is zero) among parameter_names().
std::set<std::size_t> key_biases(const std::vector<std::string>& names) {
  std::set<std::size_t> out;
  for (std::size_t k = 0; k < names.size(); ++k)
    if (names[k].ends_with("attention.key.bias")) out.insert(k);
  return out;
}

MatrixXd random_ids(Index rows, Index cols, int vocab, core::RandomStream& rng) {
  MatrixXd ids(rows, cols);
  for (Index i = 0; i < ids.size(); ++i) ids.data()[i] = static_cast<double>(rng.next_u64() % vocab);
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Embeddings

TEST(Embedding, LooksUpColumnsInColumnMajorOrderOfTheIds) {
  core::RandomStream rng(1, "test");
  Embedding e(5, 3, rng);
  MatrixXd ids(2, 2);
  ids << 4, 1, 0, 4;  // column-major: 4, 0, 1, 4
  const MatrixXd y = e.forward(ids);
  ASSERT_EQ(y.cols(), 4);
  EXPECT_EQ(y.col(0), e.table().col(4));
  EXPECT_EQ(y.col(1), e.table().col(0));
  EXPECT_EQ(y.col(2), e.table().col(1));
  EXPECT_EQ(y.col(3), e.table().col(4));
  MatrixXd bad = ids;
  bad(0, 0) = 5;
  EXPECT_THROW(e.forward(bad), std::invalid_argument);
  bad(0, 0) = 1.5;
  EXPECT_THROW(e.forward(bad), std::invalid_argument);
}

TEST(Embedding, TableGradientMatchesFiniteDifferences) {
  core::RandomStream rng(2, "test");
  Embedding e(6, 4, rng, 1.0);
  const MatrixXd ids = random_ids(3, 4, 6, rng);  // repeated ids: gradients must add
  const GradCheck check = gradient_check(e, ids, rng, /*check_input=*/false);
  EXPECT_LT(check.max_error(), kTol);
  e.forward(ids);
  EXPECT_EQ(e.backward(MatrixXd::Ones(4, 12)), MatrixXd::Zero(3, 4));
}

TEST(PositionalEmbedding, AddsThePositionColumnAndChecksGradients) {
  core::RandomStream rng(3, "test");
  PositionalEmbedding p(6, 4, rng, 1.0);
  p.set_sequence_length(3);
  const MatrixXd x = random_matrix(4, 6, rng);  // N = 2 sequences of T = 3
  const MatrixXd y = p.forward(x);
  for (Index n = 0; n < 2; ++n)
    for (Index t = 0; t < 3; ++t) EXPECT_LT((y.col(n * 3 + t) - x.col(n * 3 + t) - p.table().col(t)).norm(), 1e-15);
  EXPECT_LT(gradient_check(p, x, rng).max_error(), kTol);
  EXPECT_THROW(p.set_sequence_length(7), std::invalid_argument);
  p.set_sequence_length(4);
  EXPECT_THROW(p.forward(x), std::invalid_argument);  // 6 columns are not sequences of 4
}

// ---------------------------------------------------------------------------------------------
// LayerNorm and GELU

TEST(LayerNorm, NormalisesEachColumn) {
  core::RandomStream rng(4, "test");
  LayerNorm ln(6);
  const MatrixXd x = random_matrix(6, 5, rng, 3.0).array() + 2.0;
  const MatrixXd y = ln.forward(x);
  for (Index c = 0; c < 5; ++c) {
    EXPECT_NEAR(y.col(c).mean(), 0.0, 1e-12);
    const double variance = (y.col(c).array() - y.col(c).mean()).square().mean();
    const double x_variance = (x.col(c).array() - x.col(c).mean()).square().mean();
    EXPECT_NEAR(variance, x_variance / (x_variance + 1e-5), 1e-12);
  }
}

TEST(LayerNorm, GradientsMatchFiniteDifferences) {
  core::RandomStream rng(5, "test");
  LayerNorm ln(6);
  randomize_parameters(ln, rng);
  EXPECT_LT(gradient_check(ln, random_matrix(6, 5, rng, 2.0), rng).max_error(), kTol);
}

TEST(Gelu, ExactValuesAndGradient) {
  Gelu g;
  MatrixXd x(1, 4);
  x << -1.0, 0.0, 1.0, 2.0;
  const MatrixXd y = g.forward(x);
  // x Φ(x): Φ(1) = 0.841344746068543, Φ(2) = 0.977249868051821.
  EXPECT_NEAR(y(0, 0), -(1 - 0.841344746068543), 1e-14);
  EXPECT_EQ(y(0, 1), 0.0);
  EXPECT_NEAR(y(0, 2), 0.841344746068543, 1e-14);
  EXPECT_NEAR(y(0, 3), 2 * 0.977249868051821, 1e-14);
  core::RandomStream rng(6, "test");
  EXPECT_LT(gradient_check(g, random_matrix(7, 9, rng, 2.0), rng).max_error(), kTol);
}

// ---------------------------------------------------------------------------------------------
// Attention

// Direct-loop reference of causal multi-head attention given the projection weights.
MatrixXd naive_attention(CausalSelfAttention& a, const MatrixXd& x, int T, int heads) {
  const std::vector<MatrixXd*> p = a.parameters();  // Wq bq Wk bk Wv bv Wo bo
  const MatrixXd q = (*p[0] * x).colwise() + p[1]->col(0);
  const MatrixXd k = (*p[2] * x).colwise() + p[3]->col(0);
  const MatrixXd v = (*p[4] * x).colwise() + p[5]->col(0);
  const Index d = x.rows(), dh = d / heads, N = x.cols() / T;
  MatrixXd mixed = MatrixXd::Zero(d, x.cols());
  for (Index n = 0; n < N; ++n)
    for (Index j = 0; j < heads; ++j)
      for (Index t = 0; t < T; ++t) {
        std::vector<double> w(static_cast<std::size_t>(t + 1));
        double total = 0;
        for (Index s = 0; s <= t; ++s) {
          double dot = 0;
          for (Index r = 0; r < dh; ++r) dot += q(j * dh + r, n * T + t) * k(j * dh + r, n * T + s);
          w[s] = std::exp(dot / std::sqrt(static_cast<double>(dh)));
          total += w[s];
        }
        for (Index s = 0; s <= t; ++s)
          for (Index r = 0; r < dh; ++r) mixed(j * dh + r, n * T + t) += w[s] / total * v(j * dh + r, n * T + s);
      }
  return (*p[6] * mixed).colwise() + p[7]->col(0);
}

TEST(CausalSelfAttention, ForwardMatchesDirectLoops) {
  core::RandomStream rng(7, "test");
  CausalSelfAttention a(8, 2, DigitalLayerFactory(), rng);
  randomize_parameters(a, rng);
  a.set_sequence_length(4);
  const MatrixXd x = random_matrix(8, 12, rng);
  const MatrixXd y = a.forward(x);
  EXPECT_LT(relative_error(y, naive_attention(a, x, 4, 2)), 1e-13);
  for (int n = 0; n < 3; ++n)
    for (int j = 0; j < 2; ++j) {
      const MatrixXd& p = a.probabilities(n, j);
      for (Index t = 0; t < 4; ++t) {
        EXPECT_NEAR(p.col(t).sum(), 1.0, 1e-14);
        for (Index s = t + 1; s < 4; ++s) EXPECT_EQ(p(s, t), 0.0);
      }
    }
}

TEST(CausalSelfAttention, GradientsMatchFiniteDifferences) {
  core::RandomStream rng(8, "test");
  CausalSelfAttention a(8, 2, DigitalLayerFactory(), rng);
  randomize_parameters(a, rng);
  a.set_sequence_length(5);
  const GradCheck check = gradient_check(a, random_matrix(8, 10, rng), rng, true, {3});  // 3: key bias
  ASSERT_EQ(check.params.size(), 8u);
  EXPECT_LT(check.max_error(), kTol);
}

TEST(CausalSelfAttention, RejectsWidthNotDivisibleByHeads) {
  core::RandomStream rng(9, "test");
  EXPECT_THROW(CausalSelfAttention(10, 4, DigitalLayerFactory(), rng), std::invalid_argument);
}

TEST(TransformerBlock, GradientsMatchFiniteDifferences) {
  core::RandomStream rng(10, "test");
  TransformerBlock b(8, 2, DigitalLayerFactory(), rng, "block0");
  randomize_parameters(b, rng);
  b.set_sequence_length(5);
  const GradCheck check = gradient_check(b, random_matrix(8, 10, rng), rng, true, {5});  // 5: key bias
  ASSERT_EQ(check.params.size(), 16u);
  EXPECT_LT(check.max_error(), kTol);
}

// ---------------------------------------------------------------------------------------------
// CharTransformer

TEST(CharTransformer, GradientsOfEveryParameterMatchFiniteDifferences) {
  core::RandomStream rng(11, "test");
  CharTransformer model(tiny_config(), DigitalLayerFactory(), rng);
  randomize_parameters(model, rng, 0.4);
  const MatrixXd ids = random_ids(5, 3, 7, rng);
  const std::vector<std::string> names = model.parameter_names();
  const GradCheck check = gradient_check(model, ids, rng, /*check_input=*/false, key_biases(names), 1e-5);
  ASSERT_EQ(check.params.size(), names.size());
  for (std::size_t k = 0; k < check.params.size(); ++k) {
    EXPECT_LT(check.params[k], kTol) << names[k];
    if (check.params[k] > 1e-8) std::printf("[ GRADCHK  ]   %-40s %.2e\n", names[k].c_str(), check.params[k]);
  }
}

TEST(CharTransformer, CrossEntropyGradientMatchesFiniteDifferences) {
  // The training loss itself: mean softmax cross-entropy over T·N characters.
  core::RandomStream rng(12, "test");
  CharTransformer model(tiny_config(), DigitalLayerFactory(), rng);
  randomize_parameters(model, rng, 0.4);
  const MatrixXd ids = random_ids(4, 2, 7, rng);
  std::vector<int> targets(8);
  for (int& t : targets) t = static_cast<int>(rng.next_u64() % 7);
  model.zero_grad();
  model.backward(softmax_cross_entropy(model.forward(ids), targets).grad);
  const double h = 1e-5;  // the whole model: rounding of the loss dominates below this step
  double worst = 0;
  const std::vector<MatrixXd*> params = model.parameters(), grads = model.gradients();
  const std::set<std::size_t> zero = key_biases(model.parameter_names());
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (zero.count(k)) {
      EXPECT_LT(grads[k]->norm(), 1e-12);
      continue;
    }
    const MatrixXd num =
        central_differences(*params[k], [&] { return softmax_cross_entropy(model.forward(ids), targets).loss; }, h);
    worst = std::max(worst, relative_error(*grads[k], num));
  }
  std::printf("[ GRADCHK  ] CharTransformer cross-entropy, worst relative error %.2e\n", worst);
  EXPECT_LT(worst, kTol);
}

TEST(CharTransformer, LaterTokensDoNotChangeEarlierLogits) {
  core::RandomStream rng(13, "test");
  CharTransformer model(tiny_config(), DigitalLayerFactory(), rng);
  randomize_parameters(model, rng, 0.5);
  const MatrixXd ids = random_ids(5, 2, 7, rng);
  const MatrixXd before = model.forward(ids);
  for (Index changed = 0; changed < 5; ++changed) {
    MatrixXd other = ids;
    other(changed, 1) = std::fmod(other(changed, 1) + 3, 7);  // sequence 1, position `changed`
    const MatrixXd after = model.forward(other);
    for (Index t = 0; t < 5; ++t) {
      const double difference = (after.col(5 + t) - before.col(5 + t)).norm();
      if (t < changed) EXPECT_LT(difference, 1e-12 * before.col(5 + t).norm()) << "position " << t;
      else EXPECT_GT(difference, 1e-6) << "position " << t << " must see the change at " << changed;
      EXPECT_LT((after.col(t) - before.col(t)).norm(), 1e-12 * before.col(t).norm()) << "sequence 0 is independent";
    }
  }
}

TEST(CharTransformer, EveryWeightMatrixComesFromTheFactoryInDrawOrder) {
  RecordingFactory factory;
  core::RandomStream rng(14, "test");
  CharTransformer model(tiny_config(), factory, rng);
  const std::vector<std::string> expected = {
      "block0.attention.query 8->8", "block0.attention.key 8->8", "block0.attention.value 8->8",
      "block0.attention.output 8->8", "block0.mlp.fc 8->32",       "block0.mlp.proj 32->8",
      "block1.attention.query 8->8", "block1.attention.key 8->8", "block1.attention.value 8->8",
      "block1.attention.output 8->8", "block1.mlp.fc 8->32",       "block1.mlp.proj 32->8",
      "head 8->7"};
  EXPECT_EQ(factory.made, expected);
  // Same seed, same weights with the digital factory: the draws follow the same order.
  core::RandomStream rng2(14, "test");
  CharTransformer digital(tiny_config(), DigitalLayerFactory(), rng2);
  const auto a = model.parameters(), b = digital.parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_EQ(*a[k], *b[k]);
}

TEST(CharTransformer, ParameterNamesFollowTheDocumentedOrder) {
  core::RandomStream rng(15, "test");
  CharTransformer model(tiny_config(), DigitalLayerFactory(), rng);
  const std::vector<std::string> names = model.parameter_names();
  const std::vector<MatrixXd*> params = model.parameters();
  ASSERT_EQ(names.size(), params.size());
  ASSERT_EQ(names.size(), model.gradients().size());
  ASSERT_EQ(names.size(), 2u + 2 * 16 + 4);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  EXPECT_EQ(names[0], "token_embedding.weight");
  EXPECT_EQ(names[1], "position_embedding.weight");
  const std::vector<std::string> block0 = {
      "block0.ln1.gain",  "block0.ln1.bias",  "block0.attention.query.weight", "block0.attention.query.bias",
      "block0.attention.key.weight", "block0.attention.key.bias", "block0.attention.value.weight",
      "block0.attention.value.bias", "block0.attention.output.weight", "block0.attention.output.bias",
      "block0.ln2.gain", "block0.ln2.bias", "block0.mlp.fc.weight", "block0.mlp.fc.bias",
      "block0.mlp.proj.weight", "block0.mlp.proj.bias"};
  EXPECT_EQ(std::vector<std::string>(names.begin() + 2, names.begin() + 18), block0);
  EXPECT_EQ(names[18], "block1.ln1.gain");
  EXPECT_EQ(std::vector<std::string>(names.end() - 4, names.end()),
            (std::vector<std::string>{"ln_f.gain", "ln_f.bias", "head.weight", "head.bias"}));
  // Shapes of a few: the table is width × vocab, the head vocab × width, fc 4d × d.
  EXPECT_EQ(params[0]->rows(), 8);
  EXPECT_EQ(params[0]->cols(), 7);
  EXPECT_EQ(params[1]->cols(), 5);
  EXPECT_EQ(params[14]->rows(), 32);
  EXPECT_EQ(params[params.size() - 2]->rows(), 7);
  const NamedMatrices named = model.named_parameters();
  for (std::size_t k = 0; k < named.size(); ++k) EXPECT_EQ(named[k].second, params[k]) << names[k];
  EXPECT_TRUE(model.buffers().empty());  // digital layers keep no buffers
}

TEST(CharTransformer, BuffersOfTheFactoryLayersAreListedWithTheirNames) {
  core::RandomStream rng(20, "test");
  CharTransformer model(tiny_config(), BufferedFactory(), rng);
  const std::vector<MatrixXd*> buffers = model.buffers();
  const NamedMatrices named = model.named_buffers();
  ASSERT_EQ(buffers.size(), 13u);  // 6 factory layers per block, and the head
  ASSERT_EQ(named.size(), buffers.size());
  for (std::size_t k = 0; k < named.size(); ++k) EXPECT_EQ(named[k].second, buffers[k]);
  EXPECT_EQ(named[0].first, "block0.attention.query.buffer0");
  EXPECT_EQ(named[3].first, "block0.attention.output.buffer0");
  EXPECT_EQ(named[5].first, "block0.mlp.proj.buffer0");
  EXPECT_EQ(named[6].first, "block1.attention.query.buffer0");
  EXPECT_EQ(named[12].first, "head.buffer0");
}

TEST(CharTransformer, ShapesAndConfigValidation) {
  core::RandomStream rng(16, "test");
  CharTransformer model(tiny_config(), DigitalLayerFactory(), rng);
  const std::vector<int> flat = {1, 2, 3, 4, 5, 6};  // N = 2 sequences of T = 3
  const MatrixXd logits = model.forward(flat, 3);
  EXPECT_EQ(logits.rows(), 7);
  EXPECT_EQ(logits.cols(), 6);
  MatrixXd ids(3, 2);
  ids << 1, 4, 2, 5, 3, 6;
  EXPECT_EQ(model.forward(ids), logits);
  EXPECT_EQ(model.backward(MatrixXd::Ones(7, 6)), MatrixXd::Zero(3, 2));
  EXPECT_THROW(model.forward(MatrixXd::Zero(6, 1)), std::invalid_argument);  // T > context
  EXPECT_THROW(model.forward(flat, 4), std::invalid_argument);
  CharTransformerConfig bad = tiny_config();
  bad.heads = 3;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  bad = tiny_config();
  bad.layers = 0;
  try {
    bad.validate();
    ADD_FAILURE() << "layers = 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("layers = 0"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(CharTransformerConfig().validate());
}

TEST(CharTransformer, SameResultForAnyThreadCount) {
  CharTransformerConfig config;
  config.width = 32;
  config.heads = 4;
  config.context = 16;
  config.vocab_size = 20;
  core::RandomStream data(17, "test");
  const MatrixXd ids = random_ids(16, 8, 20, data);
  const MatrixXd dlogits = random_matrix(20, 128, data);
  auto run = [&](int threads) {
    core::RandomStream rng(18, "test");
    CharTransformer model(config, DigitalLayerFactory(), rng);
    std::vector<MatrixXd> out;
    tbb::task_arena arena(threads);
    arena.execute([&] {
      out.push_back(model.forward(ids));
      model.zero_grad();
      model.backward(dlogits);
    });
    for (MatrixXd* g : model.gradients()) out.push_back(*g);
    return out;
  };
  const std::vector<MatrixXd> one = run(1), two = run(2), four = run(4);
  ASSERT_EQ(one.size(), two.size());
  for (std::size_t k = 0; k < one.size(); ++k) {
    EXPECT_TRUE(one[k] == two[k]) << "output " << k << " differs between 1 and 2 threads";
    EXPECT_TRUE(one[k] == four[k]) << "output " << k << " differs between 1 and 4 threads";
  }
}

TEST(CharTransformer, TinyModelLearnsARepeatingText) {
  // "abcdeabcde...": after one character of context the next is certain, so Adam must bring the
  // loss from about ln 7 = 1.95 nats far down within 150 steps.
  core::RandomStream rng(19, "test");
  CharTransformer model(tiny_config(), DigitalLayerFactory(), rng);
  Adam adam(model.parameters(), model.gradients(), AdamOptions{.learning_rate = 1e-2});
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    std::vector<int> inputs, targets;
    for (int n = 0; n < 4; ++n)
      for (int t = 0; t < 5; ++t) {
        const int start = (step + 2 * n) % 5;
        inputs.push_back((start + t) % 5);
        targets.push_back((start + t + 1) % 5);
      }
    adam.zero_grad();
    const LossResult loss = softmax_cross_entropy(model.forward(inputs, 5), targets);
    model.backward(loss.grad);
    adam.step();
    if (step == 0) first = loss.loss;
    last = loss.loss;
  }
  std::printf("[ TRAIN    ] repeating text: loss %.3f -> %.4f nats\n", first, last);
  EXPECT_GT(first, 1.0);
  EXPECT_LT(last, 0.05);
}

}  // namespace
}  // namespace xbar::training
