// The layers of a small decoder-only transformer over characters, with explicit backward passes,
// in the conventions of layers.hpp (batch in columns, gradients accumulate, parameters() and
// gradients() in matching order).
//
// Sequence layout
// ---------------
// A batch of N sequences of length T is a width × (T·N) matrix whose column n·T + t holds
// position t of sequence n. Token ids come as a T × N matrix (row t, column n: its column-major
// storage is the same n·T + t order) or a flat vector in that order. Layers that mix positions
// (PositionalEmbedding, CausalSelfAttention, TransformerBlock) are told T with
// set_sequence_length() before forward(); CharTransformer does it from the ids' shape.
//
// Which parts are matrices on (possibly analog) tiles
// ---------------------------------------------------
// Every weight matrix that multiplies activations — the query, key, value and output
// projections, the two MLP matrices and the output head — is made by
// LayerFactory::linear(...), so a digital factory gives Linear and an analog one gives layers
// whose forward runs on simulated tiles. The embeddings (table look-ups), the layer norms, GELU,
// and attention's activation-by-activation products and softmax are digital, as on CIM chips.
//
// Parallelism: attention runs one task per (sequence, head) with oneTBB; the tasks write disjoint
// blocks, so the result is bitwise identical for any thread count. GELU and LayerNorm run over
// fixed column/element chunks, also thread-count independent.
#pragma once

#include <Eigen/Dense>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.hpp"
#include "training/layers.hpp"
#include "training/network.hpp"

namespace xbar::training {

using NamedMatrices = std::vector<std::pair<std::string, Eigen::MatrixXd*>>;

// Token embedding: ids (any shape, integer values in [0, vocab)) -> width × ids.size(), column j
// the table column of the j-th id in column-major order. Table width × vocab, drawn N(0, σ²).
// backward() adds dy's columns to the table columns of their ids and returns zeros of the ids'
// shape (ids are not differentiable).
class Embedding : public Layer {
 public:
  Embedding(int vocab_size, int width, core::RandomStream& rng, double init_stddev = 0.02);

  // Throws std::invalid_argument for a value that is not an integer id in [0, vocab).
  Eigen::MatrixXd forward(const Eigen::MatrixXd& ids) override;
  Eigen::MatrixXd forward(const std::vector<int>& ids);
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::vector<Eigen::MatrixXd*> parameters() override { return {&table_}; }
  std::vector<Eigen::MatrixXd*> gradients() override { return {&grad_table_}; }
  NamedMatrices named_parameters() override { return {{"weight", &table_}}; }
  std::string name() const override;

  Eigen::MatrixXd& table() { return table_; }

 private:
  Eigen::MatrixXd table_, grad_table_;
  std::vector<int> ids_;
  Eigen::Index ids_rows_ = 0, ids_cols_ = 0;
};

// Learned positional embedding: y = x + P[:, t] for column n·T + t. Table width × max_length,
// drawn N(0, σ²); T <= max_length.
class PositionalEmbedding : public Layer {
 public:
  PositionalEmbedding(int max_length, int width, core::RandomStream& rng, double init_stddev = 0.02);

  void set_sequence_length(int length);  // T in [1, max_length]
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::vector<Eigen::MatrixXd*> parameters() override { return {&table_}; }
  std::vector<Eigen::MatrixXd*> gradients() override { return {&grad_table_}; }
  NamedMatrices named_parameters() override { return {{"weight", &table_}}; }
  std::string name() const override;

  Eigen::MatrixXd& table() { return table_; }

 private:
  Eigen::MatrixXd table_, grad_table_;
  int length_ = 1;
};

// Layer normalisation per column: y = g ⊙ (x − μ) / sqrt(σ² + ε) + b, μ and σ² the mean and the
// (biased) variance of the column's `width` entries; gain g = 1 and bias b = 0 at start (width × 1).
class LayerNorm : public Layer {
 public:
  explicit LayerNorm(int width, double epsilon = 1e-5);

  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::vector<Eigen::MatrixXd*> parameters() override { return {&gain_, &bias_}; }
  std::vector<Eigen::MatrixXd*> gradients() override { return {&grad_gain_, &grad_bias_}; }
  NamedMatrices named_parameters() override { return {{"gain", &gain_}, {"bias", &bias_}}; }
  std::string name() const override;

  Eigen::MatrixXd& gain() { return gain_; }
  int gain_size() const { return static_cast<int>(gain_.rows()); }
  Eigen::MatrixXd& bias() { return bias_; }

 private:
  double epsilon_;
  Eigen::MatrixXd gain_, bias_, grad_gain_, grad_bias_;
  Eigen::MatrixXd normalized_;     // x̂ of the last forward
  Eigen::RowVectorXd inv_stddev_;  // 1 / sqrt(σ² + ε) per column
};

// GELU, the exact form: y = x Φ(x) = x (1 + erf(x/√2)) / 2, dy/dx = Φ(x) + x φ(x).
class Gelu : public Layer {
 public:
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::string name() const override { return "GELU"; }

 private:
  Eigen::MatrixXd input_;
};

// Causal multi-head self-attention of width d with h heads (d_h = d / h):
//   q = W_q x + b_q, k = W_k x + b_k, v = W_v x + b_v        (factory layers <name>.query/.key/.value)
//   per sequence n and head j (rows j·d_h .. (j+1)·d_h − 1 of its T columns):
//     S = kᵀ q / sqrt(d_h)  (T × T: row s = key position, column t = query position)
//     P = softmax over s <= t of column t (entries s > t are 0: the causal mask)
//     a = v P
//   y = W_o a + b_o                                          (factory layer <name>.output)
// parameters(): query.weight, query.bias, key.weight, key.bias, value.weight, value.bias,
// output.weight, output.bias (each factory layer's parameters() in that layer order; the names
// are named_parameters(), the factory layers' own names prefixed with "query." ...). The key
// bias has no effect (it adds b·q_t to every score of query t, which the softmax cancels): its
// gradient is zero; it is kept so that every projection is the same kind of factory layer.
class CausalSelfAttention : public Layer {
 public:
  CausalSelfAttention(int width, int heads, const LayerFactory& factory, core::RandomStream& rng,
                      const std::string& name = "attention");

  void set_sequence_length(int length);
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::vector<Eigen::MatrixXd*> parameters() override;
  std::vector<Eigen::MatrixXd*> gradients() override;
  std::vector<Eigen::MatrixXd*> buffers() override;
  NamedMatrices named_parameters() override;
  NamedMatrices named_buffers() override;
  std::string name() const override;

  // The factory layers, in parameter order: query, key, value, output.
  std::vector<Layer*> projections() const;
  // Attention probabilities P of the last forward for sequence n, head j (T × T).
  const Eigen::MatrixXd& probabilities(int sequence, int head) const;

 private:
  int width_, heads_, head_width_, length_ = 1;
  std::string name_;
  std::unique_ptr<Layer> query_, key_, value_, output_;
  Eigen::MatrixXd q_, k_, v_;
  std::vector<Eigen::MatrixXd> probabilities_;  // index n·h + j
  int sequences_ = 0;
};

// Pre-LN transformer block: h = x + Attn(LN1(x)); y = h + W_2 GELU(W_1 LN2(h) + b_1) + b_2, with
// W_1 (4d × d, factory layer <name>.mlp.fc, He-normal) and W_2 (d × 4d, <name>.mlp.proj).
// parameters(): ln1 gain, bias; attention (8, see above); ln2 gain, bias; fc weight, bias;
// proj weight, bias; named "ln1.gain", "ln1.bias", "attention.query.weight", ..., "mlp.proj.bias".
class TransformerBlock : public Layer {
 public:
  TransformerBlock(int width, int heads, const LayerFactory& factory, core::RandomStream& rng,
                   const std::string& name = "block");

  void set_sequence_length(int length) { attention_.set_sequence_length(length); }
  Eigen::MatrixXd forward(const Eigen::MatrixXd& x) override;
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dy) override;
  std::vector<Eigen::MatrixXd*> parameters() override;
  std::vector<Eigen::MatrixXd*> gradients() override;
  std::vector<Eigen::MatrixXd*> buffers() override;
  NamedMatrices named_parameters() override;
  NamedMatrices named_buffers() override;
  std::string name() const override;

  CausalSelfAttention& attention() { return attention_; }

 private:
  std::string name_;
  LayerNorm ln1_, ln2_;
  CausalSelfAttention attention_;
  std::unique_ptr<Layer> fc_, proj_;
  Gelu gelu_;
};

// Shape of a CharTransformer.
struct CharTransformerConfig {
  int vocab_size = 96;               // characters (models::CharVocabulary::size)
  int context = 64;                  // longest sequence T (positional table length)
  int width = 128;                   // model width d
  int heads = 4;                     // attention heads h (d divisible by h)
  int layers = 2;                    // transformer blocks L
  double embedding_init_stddev = 0.02;  // σ of the token and positional tables at start
  // Throws std::invalid_argument naming the field, the value and the violated constraint.
  void validate() const;
};

// Character language model: ids (T × N) -> logits vocab × (T·N), column n·T + t predicting the
// character after position t of sequence n:
//   x = E[id] + P[t];  x = block_l(x) for l = 0..L−1;  logits = W_head LN_f(x) + b_head
// (head: factory layer "head", Glorot-uniform). softmax_cross_entropy(logits, targets) gives the
// mean per-character loss in nats.
// Initial draws from `rng`, in this order: token table, positional table, then per block
// query, key, value, output, fc, proj, then the head — the same for every factory.
// parameters() / named_parameters() (and parameter_names(), the names alone), in this fixed order:
//   token_embedding.weight, position_embedding.weight,
//   block<l>.{ln1.gain, ln1.bias, attention.{query,key,value,output}.{weight,bias}, ln2.gain,
//             ln2.bias, mlp.fc.{weight,bias}, mlp.proj.{weight,bias}} for l = 0..L−1,
//   ln_f.gain, ln_f.bias, head.weight, head.bias.
// buffers() / named_buffers(): the factory layers' buffers in the same layer order, named
// "<layer>.<the layer's own buffer name>", e.g. "block0.attention.query.buffer0" (none for digital
// layers).
class CharTransformer : public Layer {
 public:
  CharTransformer(const CharTransformerConfig& config, const LayerFactory& factory, core::RandomStream& rng);

  // ids: T × N (1 <= T <= context) integer ids. Returns logits vocab × (T·N).
  Eigen::MatrixXd forward(const Eigen::MatrixXd& ids) override;
  // ids.size() = T·N in order n·T + t.
  Eigen::MatrixXd forward(const std::vector<int>& ids, int sequence_length);
  // dlogits: vocab × (T·N). Accumulates every parameter gradient; returns zeros of the ids'
  // shape (T × N): ids are not differentiable.
  Eigen::MatrixXd backward(const Eigen::MatrixXd& dlogits) override;
  std::vector<Eigen::MatrixXd*> parameters() override;
  std::vector<Eigen::MatrixXd*> gradients() override;
  std::vector<Eigen::MatrixXd*> buffers() override;
  NamedMatrices named_parameters() override;
  NamedMatrices named_buffers() override;
  std::vector<std::string> parameter_names();
  std::string name() const override;

  const CharTransformerConfig& config() const { return config_; }
  Embedding& token_embedding() { return token_embedding_; }
  PositionalEmbedding& position_embedding() { return position_embedding_; }
  TransformerBlock& block(int l) { return *blocks_[static_cast<std::size_t>(l)]; }
  LayerNorm& final_norm() { return final_norm_; }
  Layer& head() { return *head_; }

 private:
  CharTransformerConfig config_;
  Embedding token_embedding_;
  PositionalEmbedding position_embedding_;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;
  LayerNorm final_norm_;
  std::unique_ptr<Layer> head_;
  Eigen::Index ids_rows_ = 0, ids_cols_ = 0;
};

}  // namespace xbar::training
