// Transformer layers with explicit backward passes; see transformer.hpp for the layout.
#include "training/transformer.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace xbar::training {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

void require_rows(const MatrixXd& x, Index rows, const std::string& layer) {
  if (x.rows() != rows) {
    fail(layer + ": input has " + std::to_string(x.rows()) + " rows, expected " + std::to_string(rows));
  }
}

void require_shape(const MatrixXd& dy, Index rows, Index cols, const std::string& layer) {
  if (dy.rows() != rows || dy.cols() != cols) {
    fail(layer + ": gradient shape " + std::to_string(dy.rows()) + "x" + std::to_string(dy.cols()) +
         " does not match the last forward output " + std::to_string(rows) + "x" + std::to_string(cols));
  }
}

void require_positive(int value, const std::string& what) {
  if (value <= 0) fail(what + " = " + std::to_string(value) + ", must be > 0");
}

void fill_normal(MatrixXd& m, double stddev, core::RandomStream& rng) {
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = rng.normal(0.0, stddev);
}

void append(std::vector<MatrixXd*>& out, const std::vector<MatrixXd*>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

// Appends `named` with `prefix` before each name.
void append_prefixed(NamedMatrices& out, const std::string& prefix, const NamedMatrices& named) {
  for (const auto& [name, matrix] : named) out.emplace_back(prefix + name, matrix);
}

// Elements per GELU task: fixed, so the partition (and the result) never depends on threads.
constexpr Index gelu_chunk = 16384;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Embedding

Embedding::Embedding(int vocab_size, int width, core::RandomStream& rng, double init_stddev) {
  require_positive(vocab_size, "Embedding: vocab_size");
  require_positive(width, "Embedding: width");
  table_.resize(width, vocab_size);
  fill_normal(table_, init_stddev, rng);
  grad_table_ = MatrixXd::Zero(width, vocab_size);
}

MatrixXd Embedding::forward(const MatrixXd& ids) {
  std::vector<int> flat(static_cast<std::size_t>(ids.size()));
  for (Index i = 0; i < ids.size(); ++i) {
    const double v = ids.data()[i];
    if (!(v >= 0 && v < static_cast<double>(table_.cols())) || v != std::floor(v)) {
      fail(name() + ": id " + std::to_string(v) + " at position " + std::to_string(i) + " is not an integer in [0, " +
           std::to_string(table_.cols()) + ")");
    }
    flat[static_cast<std::size_t>(i)] = static_cast<int>(v);
  }
  MatrixXd y = forward(flat);
  ids_rows_ = ids.rows();
  ids_cols_ = ids.cols();
  return y;
}

MatrixXd Embedding::forward(const std::vector<int>& ids) {
  MatrixXd y(table_.rows(), static_cast<Index>(ids.size()));
  for (std::size_t j = 0; j < ids.size(); ++j) {
    const int id = ids[j];
    if (id < 0 || id >= table_.cols()) {
      fail(name() + ": id " + std::to_string(id) + " at position " + std::to_string(j) + " is outside [0, " +
           std::to_string(table_.cols()) + ")");
    }
    y.col(static_cast<Index>(j)) = table_.col(id);
  }
  ids_ = ids;
  ids_rows_ = 1;
  ids_cols_ = static_cast<Index>(ids.size());
  return y;
}

MatrixXd Embedding::backward(const MatrixXd& dy) {
  require_shape(dy, table_.rows(), static_cast<Index>(ids_.size()), name());
  for (std::size_t j = 0; j < ids_.size(); ++j) grad_table_.col(ids_[j]) += dy.col(static_cast<Index>(j));
  return MatrixXd::Zero(ids_rows_, ids_cols_);
}

std::string Embedding::name() const {
  return "Embedding(" + std::to_string(table_.cols()) + " -> " + std::to_string(table_.rows()) + ")";
}

// ---------------------------------------------------------------------------------------------
// PositionalEmbedding

PositionalEmbedding::PositionalEmbedding(int max_length, int width, core::RandomStream& rng, double init_stddev) {
  require_positive(max_length, "PositionalEmbedding: max_length");
  require_positive(width, "PositionalEmbedding: width");
  table_.resize(width, max_length);
  fill_normal(table_, init_stddev, rng);
  grad_table_ = MatrixXd::Zero(width, max_length);
}

void PositionalEmbedding::set_sequence_length(int length) {
  if (length < 1 || length > table_.cols()) {
    fail(name() + ": sequence length " + std::to_string(length) + " is outside [1, " + std::to_string(table_.cols()) +
         "]");
  }
  length_ = length;
}

MatrixXd PositionalEmbedding::forward(const MatrixXd& x) {
  require_rows(x, table_.rows(), name());
  if (x.cols() % length_ != 0) {
    fail(name() + ": " + std::to_string(x.cols()) + " columns are not a multiple of the sequence length " +
         std::to_string(length_));
  }
  MatrixXd y = x;
  const Index sequences = x.cols() / length_;
  for (Index n = 0; n < sequences; ++n) y.middleCols(n * length_, length_) += table_.leftCols(length_);
  return y;
}

MatrixXd PositionalEmbedding::backward(const MatrixXd& dy) {
  require_rows(dy, table_.rows(), name());
  const Index sequences = dy.cols() / length_;
  for (Index n = 0; n < sequences; ++n) grad_table_.leftCols(length_) += dy.middleCols(n * length_, length_);
  return dy;
}

std::string PositionalEmbedding::name() const {
  return "PositionalEmbedding(" + std::to_string(table_.cols()) + " x " + std::to_string(table_.rows()) + ")";
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

LayerNorm::LayerNorm(int width, double epsilon) : epsilon_(epsilon) {
  require_positive(width, "LayerNorm: width");
  if (!(epsilon > 0)) fail("LayerNorm: epsilon = " + std::to_string(epsilon) + ", must be > 0");
  gain_ = MatrixXd::Ones(width, 1);
  bias_ = MatrixXd::Zero(width, 1);
  grad_gain_ = MatrixXd::Zero(width, 1);
  grad_bias_ = MatrixXd::Zero(width, 1);
}

MatrixXd LayerNorm::forward(const MatrixXd& x) {
  require_rows(x, gain_.rows(), name());
  const Eigen::RowVectorXd mean = x.colwise().mean();
  normalized_ = x.rowwise() - mean;
  const Eigen::RowVectorXd variance = normalized_.array().square().colwise().mean();
  inv_stddev_ = (variance.array() + epsilon_).rsqrt();
  normalized_.array().rowwise() *= inv_stddev_.array();
  MatrixXd y = normalized_.array().colwise() * gain_.col(0).array();
  y.colwise() += bias_.col(0);
  return y;
}

MatrixXd LayerNorm::backward(const MatrixXd& dy) {
  require_shape(dy, normalized_.rows(), normalized_.cols(), name());
  grad_gain_ += dy.cwiseProduct(normalized_).rowwise().sum();
  grad_bias_ += dy.rowwise().sum();
  // dx = (1/σ) (dx̂ − mean(dx̂) − x̂ mean(dx̂ ⊙ x̂)), dx̂ = g ⊙ dy, means over each column.
  MatrixXd dxhat = dy.array().colwise() * gain_.col(0).array();
  const Eigen::RowVectorXd mean_d = dxhat.colwise().mean();
  const Eigen::RowVectorXd mean_dx = dxhat.cwiseProduct(normalized_).colwise().mean();
  dxhat.rowwise() -= mean_d;
  dxhat -= normalized_ * mean_dx.asDiagonal();
  dxhat.array().rowwise() *= inv_stddev_.array();
  return dxhat;
}

std::string LayerNorm::name() const { return "LayerNorm(" + std::to_string(gain_.rows()) + ")"; }

// ---------------------------------------------------------------------------------------------
// GELU

MatrixXd Gelu::forward(const MatrixXd& x) {
  input_ = x;
  MatrixXd y(x.rows(), x.cols());
  const double* in = x.data();
  double* out = y.data();
  const Index size = x.size();
  tbb::parallel_for(Index{0}, (size + gelu_chunk - 1) / gelu_chunk, [&](Index chunk) {
    const Index end = std::min(size, (chunk + 1) * gelu_chunk);
    for (Index i = chunk * gelu_chunk; i < end; ++i) {
      out[i] = 0.5 * in[i] * std::erfc(-in[i] * std::numbers::sqrt2 / 2);
    }
  });
  return y;
}

MatrixXd Gelu::backward(const MatrixXd& dy) {
  require_shape(dy, input_.rows(), input_.cols(), name());
  MatrixXd dx(dy.rows(), dy.cols());
  const double* in = input_.data();
  const double* d = dy.data();
  double* out = dx.data();
  const Index size = dy.size();
  const double inv_sqrt_2pi = std::numbers::inv_sqrtpi / std::numbers::sqrt2;
  tbb::parallel_for(Index{0}, (size + gelu_chunk - 1) / gelu_chunk, [&](Index chunk) {
    const Index end = std::min(size, (chunk + 1) * gelu_chunk);
    for (Index i = chunk * gelu_chunk; i < end; ++i) {
      const double x = in[i];
      const double cdf = 0.5 * std::erfc(-x * std::numbers::sqrt2 / 2);
      const double pdf = inv_sqrt_2pi * std::exp(-0.5 * x * x);
      out[i] = d[i] * (cdf + x * pdf);
    }
  });
  return dx;
}

// ---------------------------------------------------------------------------------------------
// CausalSelfAttention

CausalSelfAttention::CausalSelfAttention(int width, int heads, const LayerFactory& factory, core::RandomStream& rng,
                                         const std::string& name)
    : width_(width), heads_(heads), name_(name) {
  require_positive(width, "CausalSelfAttention: width");
  require_positive(heads, "CausalSelfAttention: heads");
  if (width % heads != 0) {
    fail("CausalSelfAttention: width = " + std::to_string(width) + " is not divisible by heads = " +
         std::to_string(heads));
  }
  head_width_ = width / heads;
  query_ = factory.linear(width, width, rng, Init::glorot_uniform, name + ".query");
  key_ = factory.linear(width, width, rng, Init::glorot_uniform, name + ".key");
  value_ = factory.linear(width, width, rng, Init::glorot_uniform, name + ".value");
  output_ = factory.linear(width, width, rng, Init::glorot_uniform, name + ".output");
}

void CausalSelfAttention::set_sequence_length(int length) {
  if (length < 1) fail(name() + ": sequence length " + std::to_string(length) + ", must be >= 1");
  length_ = length;
}

MatrixXd CausalSelfAttention::forward(const MatrixXd& x) {
  require_rows(x, width_, name());
  if (x.cols() % length_ != 0) {
    fail(name() + ": " + std::to_string(x.cols()) + " columns are not a multiple of the sequence length " +
         std::to_string(length_));
  }
  const Index T = length_, dh = head_width_;
  sequences_ = static_cast<int>(x.cols() / T);
  q_ = query_->forward(x);
  k_ = key_->forward(x);
  v_ = value_->forward(x);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  probabilities_.assign(static_cast<std::size_t>(sequences_) * heads_, MatrixXd());
  MatrixXd mixed(width_, x.cols());
  tbb::parallel_for(0, sequences_ * heads_, [&](int pair) {
    const Index n = pair / heads_, j = pair % heads_;
    const auto q = q_.block(j * dh, n * T, dh, T);
    const auto k = k_.block(j * dh, n * T, dh, T);
    const auto v = v_.block(j * dh, n * T, dh, T);
    MatrixXd p = (k.transpose() * q) * scale;  // row s = key, column t = query
    for (Index t = 0; t < T; ++t) {
      auto column = p.col(t);
      const double top = column.head(t + 1).maxCoeff();
      column.head(t + 1) = (column.head(t + 1).array() - top).exp().matrix();
      column.head(t + 1) /= column.head(t + 1).sum();
      column.tail(T - t - 1).setZero();
    }
    mixed.block(j * dh, n * T, dh, T).noalias() = v * p;
    probabilities_[static_cast<std::size_t>(pair)] = std::move(p);
  });
  return output_->forward(mixed);
}

MatrixXd CausalSelfAttention::backward(const MatrixXd& dy) {
  const MatrixXd dmixed = output_->backward(dy);
  const Index T = length_, dh = head_width_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  MatrixXd dq(width_, q_.cols()), dk(width_, k_.cols()), dv(width_, v_.cols());
  tbb::parallel_for(0, sequences_ * heads_, [&](int pair) {
    const Index n = pair / heads_, j = pair % heads_;
    const auto q = q_.block(j * dh, n * T, dh, T);
    const auto k = k_.block(j * dh, n * T, dh, T);
    const auto v = v_.block(j * dh, n * T, dh, T);
    const auto da = dmixed.block(j * dh, n * T, dh, T);
    const MatrixXd& p = probabilities_[static_cast<std::size_t>(pair)];
    dv.block(j * dh, n * T, dh, T).noalias() = da * p.transpose();
    MatrixXd ds = v.transpose() * da;  // dL/dP
    // Softmax per column: dS = P ⊙ (dP − (Pᵀ dP)); masked entries have P = 0.
    for (Index t = 0; t < T; ++t) {
      const double dot = p.col(t).dot(ds.col(t));
      ds.col(t) = p.col(t).cwiseProduct((ds.col(t).array() - dot).matrix());
    }
    dq.block(j * dh, n * T, dh, T).noalias() = (k * ds) * scale;
    dk.block(j * dh, n * T, dh, T).noalias() = (q * ds.transpose()) * scale;
  });
  MatrixXd dx = query_->backward(dq);
  dx += key_->backward(dk);
  dx += value_->backward(dv);
  return dx;
}

std::vector<MatrixXd*> CausalSelfAttention::parameters() {
  std::vector<MatrixXd*> out;
  for (Layer* layer : projections()) append(out, layer->parameters());
  return out;
}

std::vector<MatrixXd*> CausalSelfAttention::gradients() {
  std::vector<MatrixXd*> out;
  for (Layer* layer : projections()) append(out, layer->gradients());
  return out;
}

std::vector<MatrixXd*> CausalSelfAttention::buffers() {
  std::vector<MatrixXd*> out;
  for (Layer* layer : projections()) append(out, layer->buffers());
  return out;
}

std::string CausalSelfAttention::name() const {
  return "CausalSelfAttention(" + name_ + ": width " + std::to_string(width_) + ", " + std::to_string(heads_) + " heads)";
}

std::vector<Layer*> CausalSelfAttention::projections() const {
  return {query_.get(), key_.get(), value_.get(), output_.get()};
}

namespace {
const char* const projection_names[] = {"query.", "key.", "value.", "output."};
}  // namespace

NamedMatrices CausalSelfAttention::named_parameters() {
  NamedMatrices out;
  const std::vector<Layer*> layers = projections();
  for (std::size_t i = 0; i < layers.size(); ++i) append_prefixed(out, projection_names[i], layers[i]->named_parameters());
  return out;
}

NamedMatrices CausalSelfAttention::named_buffers() {
  NamedMatrices out;
  const std::vector<Layer*> layers = projections();
  for (std::size_t i = 0; i < layers.size(); ++i) append_prefixed(out, projection_names[i], layers[i]->named_buffers());
  return out;
}

const MatrixXd& CausalSelfAttention::probabilities(int sequence, int head) const {
  if (sequence < 0 || sequence >= sequences_ || head < 0 || head >= heads_) {
    throw std::out_of_range(name() + ": no probabilities for sequence " + std::to_string(sequence) + ", head " +
                            std::to_string(head));
  }
  return probabilities_[static_cast<std::size_t>(sequence) * heads_ + head];
}

// ---------------------------------------------------------------------------------------------
// TransformerBlock

TransformerBlock::TransformerBlock(int width, int heads, const LayerFactory& factory, core::RandomStream& rng,
                                   const std::string& name)
    : name_(name), ln1_(width), ln2_(width), attention_(width, heads, factory, rng, name + ".attention") {
  fc_ = factory.linear(width, 4 * width, rng, Init::he_normal, name + ".mlp.fc");
  proj_ = factory.linear(4 * width, width, rng, Init::glorot_uniform, name + ".mlp.proj");
}

MatrixXd TransformerBlock::forward(const MatrixXd& x) {
  MatrixXd h = x + attention_.forward(ln1_.forward(x));
  const MatrixXd hidden = gelu_.forward(fc_->forward(ln2_.forward(h)));
  h += proj_->forward(hidden);
  return h;
}

MatrixXd TransformerBlock::backward(const MatrixXd& dy) {
  MatrixXd dh = dy + ln2_.backward(fc_->backward(gelu_.backward(proj_->backward(dy))));
  dh += ln1_.backward(attention_.backward(dh));
  return dh;
}

std::vector<MatrixXd*> TransformerBlock::parameters() {
  std::vector<MatrixXd*> out = ln1_.parameters();
  append(out, attention_.parameters());
  append(out, ln2_.parameters());
  append(out, fc_->parameters());
  append(out, proj_->parameters());
  return out;
}

std::vector<MatrixXd*> TransformerBlock::gradients() {
  std::vector<MatrixXd*> out = ln1_.gradients();
  append(out, attention_.gradients());
  append(out, ln2_.gradients());
  append(out, fc_->gradients());
  append(out, proj_->gradients());
  return out;
}

std::vector<MatrixXd*> TransformerBlock::buffers() {
  std::vector<MatrixXd*> out = attention_.buffers();
  append(out, fc_->buffers());
  append(out, proj_->buffers());
  return out;
}

NamedMatrices TransformerBlock::named_parameters() {
  NamedMatrices out;
  append_prefixed(out, "ln1.", ln1_.named_parameters());
  append_prefixed(out, "attention.", attention_.named_parameters());
  append_prefixed(out, "ln2.", ln2_.named_parameters());
  append_prefixed(out, "mlp.fc.", fc_->named_parameters());
  append_prefixed(out, "mlp.proj.", proj_->named_parameters());
  return out;
}

NamedMatrices TransformerBlock::named_buffers() {
  NamedMatrices out;
  append_prefixed(out, "attention.", attention_.named_buffers());
  append_prefixed(out, "mlp.fc.", fc_->named_buffers());
  append_prefixed(out, "mlp.proj.", proj_->named_buffers());
  return out;
}

std::string TransformerBlock::name() const {
  return "TransformerBlock(" + name_ + ": width " + std::to_string(ln1_.gain_size()) + ")";
}

// ---------------------------------------------------------------------------------------------
// CharTransformer

void CharTransformerConfig::validate() const {
  auto positive = [](int value, const char* field) {
    if (value <= 0) fail(std::string("CharTransformerConfig.") + field + " = " + std::to_string(value) + ", must be > 0");
  };
  positive(vocab_size, "vocab_size");
  positive(context, "context");
  positive(width, "width");
  positive(heads, "heads");
  positive(layers, "layers");
  if (width % heads != 0) {
    fail("CharTransformerConfig.width = " + std::to_string(width) + " must be divisible by heads = " +
         std::to_string(heads));
  }
  if (!(embedding_init_stddev >= 0) || !std::isfinite(embedding_init_stddev)) {
    fail("CharTransformerConfig.embedding_init_stddev = " + std::to_string(embedding_init_stddev) +
         ", must be finite and >= 0");
  }
}

namespace {
const CharTransformerConfig& validated(const CharTransformerConfig& config) {
  config.validate();
  return config;
}
}  // namespace

CharTransformer::CharTransformer(const CharTransformerConfig& config, const LayerFactory& factory,
                                 core::RandomStream& rng)
    : config_(validated(config)),
      token_embedding_(config.vocab_size, config.width, rng, config.embedding_init_stddev),
      position_embedding_(config.context, config.width, rng, config.embedding_init_stddev),
      final_norm_(config.width) {
  for (int l = 0; l < config.layers; ++l) {
    blocks_.push_back(
        std::make_unique<TransformerBlock>(config.width, config.heads, factory, rng, "block" + std::to_string(l)));
  }
  head_ = factory.linear(config.width, config.vocab_size, rng, Init::glorot_uniform, "head");
}

MatrixXd CharTransformer::forward(const MatrixXd& ids) {
  if (ids.rows() < 1 || ids.rows() > config_.context || ids.cols() < 1) {
    fail(name() + ": ids are " + std::to_string(ids.rows()) + " x " + std::to_string(ids.cols()) +
         ", expected T x N with 1 <= T <= context = " + std::to_string(config_.context) + " and N >= 1");
  }
  const int length = static_cast<int>(ids.rows());
  position_embedding_.set_sequence_length(length);
  for (auto& block : blocks_) block->set_sequence_length(length);
  MatrixXd x = position_embedding_.forward(token_embedding_.forward(ids));
  for (auto& block : blocks_) x = block->forward(x);
  ids_rows_ = ids.rows();
  ids_cols_ = ids.cols();
  return head_->forward(final_norm_.forward(x));
}

MatrixXd CharTransformer::forward(const std::vector<int>& ids, int sequence_length) {
  if (sequence_length < 1 || ids.size() % static_cast<std::size_t>(sequence_length) != 0) {
    fail(name() + ": " + std::to_string(ids.size()) + " ids are not a whole number of sequences of length " +
         std::to_string(sequence_length));
  }
  MatrixXd matrix(sequence_length, static_cast<Index>(ids.size()) / sequence_length);
  for (std::size_t i = 0; i < ids.size(); ++i) matrix.data()[i] = ids[i];
  return forward(matrix);
}

MatrixXd CharTransformer::backward(const MatrixXd& dlogits) {
  MatrixXd dx = final_norm_.backward(head_->backward(dlogits));
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) dx = (*it)->backward(dx);
  token_embedding_.backward(position_embedding_.backward(dx));
  return MatrixXd::Zero(ids_rows_, ids_cols_);
}

std::vector<MatrixXd*> CharTransformer::parameters() {
  std::vector<MatrixXd*> out = token_embedding_.parameters();
  append(out, position_embedding_.parameters());
  for (auto& block : blocks_) append(out, block->parameters());
  append(out, final_norm_.parameters());
  append(out, head_->parameters());
  return out;
}

std::vector<MatrixXd*> CharTransformer::gradients() {
  std::vector<MatrixXd*> out = token_embedding_.gradients();
  append(out, position_embedding_.gradients());
  for (auto& block : blocks_) append(out, block->gradients());
  append(out, final_norm_.gradients());
  append(out, head_->gradients());
  return out;
}

std::vector<MatrixXd*> CharTransformer::buffers() {
  std::vector<MatrixXd*> out;
  for (auto& block : blocks_) append(out, block->buffers());
  append(out, head_->buffers());
  return out;
}

NamedMatrices CharTransformer::named_parameters() {
  NamedMatrices out;
  append_prefixed(out, "token_embedding.", token_embedding_.named_parameters());
  append_prefixed(out, "position_embedding.", position_embedding_.named_parameters());
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    append_prefixed(out, "block" + std::to_string(l) + ".", blocks_[l]->named_parameters());
  }
  append_prefixed(out, "ln_f.", final_norm_.named_parameters());
  append_prefixed(out, "head.", head_->named_parameters());
  return out;
}

NamedMatrices CharTransformer::named_buffers() {
  NamedMatrices out;
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    append_prefixed(out, "block" + std::to_string(l) + ".", blocks_[l]->named_buffers());
  }
  append_prefixed(out, "head.", head_->named_buffers());
  return out;
}

std::vector<std::string> CharTransformer::parameter_names() {
  std::vector<std::string> out;
  for (const auto& named : named_parameters()) out.push_back(named.first);
  return out;
}

std::string CharTransformer::name() const {
  return "CharTransformer(vocab " + std::to_string(config_.vocab_size) + ", context " +
         std::to_string(config_.context) + ", width " + std::to_string(config_.width) + ", " +
         std::to_string(config_.heads) + " heads, " + std::to_string(config_.layers) + " layers)";
}

}  // namespace xbar::training
