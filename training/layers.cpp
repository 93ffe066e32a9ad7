// Digital layers with explicit backward passes; see layers.hpp for the layout and contract.
#include "training/layers.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace xbar::training {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

void require_rows(const Eigen::MatrixXd& x, Eigen::Index rows, const std::string& layer) {
  if (x.rows() != rows) {
    fail(layer + ": input has " + std::to_string(x.rows()) + " rows, expected " + std::to_string(rows));
  }
}

void require_same_shape(const Eigen::MatrixXd& dy, Eigen::Index rows, Eigen::Index cols,
                        const std::string& layer) {
  if (dy.rows() != rows || dy.cols() != cols) {
    fail(layer + ": gradient shape " + std::to_string(dy.rows()) + "x" + std::to_string(dy.cols()) +
         " does not match the last forward output " + std::to_string(rows) + "x" + std::to_string(cols));
  }
}

}  // namespace

void Layer::zero_grad() {
  for (Eigen::MatrixXd* g : gradients()) g->setZero();
}

void initialize(Eigen::MatrixXd& w, Init init, int fan_in, int fan_out, core::RandomStream& rng) {
  if (fan_in <= 0 || fan_out <= 0) fail("initialize: fan_in and fan_out must be positive");
  double* data = w.data();
  switch (init) {
    case Init::he_normal: {
      const double stddev = std::sqrt(2.0 / fan_in);
      for (Eigen::Index i = 0; i < w.size(); ++i) data[i] = rng.normal(0.0, stddev);
      break;
    }
    case Init::glorot_uniform: {
      const double a = std::sqrt(6.0 / (fan_in + fan_out));
      for (Eigen::Index i = 0; i < w.size(); ++i) data[i] = rng.uniform(-a, a);
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Linear

Linear::Linear(int in_features, int out_features, core::RandomStream& rng, Init init) {
  if (in_features <= 0) fail("Linear: in_features = " + std::to_string(in_features) + ", must be > 0");
  if (out_features <= 0) fail("Linear: out_features = " + std::to_string(out_features) + ", must be > 0");
  weight_.resize(out_features, in_features);
  initialize(weight_, init, in_features, out_features, rng);
  bias_ = Eigen::MatrixXd::Zero(out_features, 1);
  grad_weight_ = Eigen::MatrixXd::Zero(out_features, in_features);
  grad_bias_ = Eigen::MatrixXd::Zero(out_features, 1);
}

Eigen::MatrixXd Linear::forward(const Eigen::MatrixXd& x) {
  require_rows(x, weight_.cols(), name());
  input_ = x;
  Eigen::MatrixXd y = weight_ * x;
  y.colwise() += bias_.col(0);
  return y;
}

Eigen::MatrixXd Linear::backward(const Eigen::MatrixXd& dy) {
  require_same_shape(dy, weight_.rows(), input_.cols(), name());
  grad_weight_.noalias() += dy * input_.transpose();
  grad_bias_ += dy.rowwise().sum();
  return weight_.transpose() * dy;
}

std::string Linear::name() const {
  return "Linear(" + std::to_string(weight_.cols()) + " -> " + std::to_string(weight_.rows()) + ")";
}

// ---------------------------------------------------------------------------------------------
// Conv2d

void Conv2dShape::validate() const {
  auto positive = [](const char* field, int value) {
    if (value <= 0) fail(std::string("Conv2dShape.") + field + " = " + std::to_string(value) + ", must be > 0");
  };
  positive("in_channels", in_channels);
  positive("out_channels", out_channels);
  positive("kernel", kernel);
  positive("height", height);
  positive("width", width);
  if (padding < 0) fail("Conv2dShape.padding = " + std::to_string(padding) + ", must be >= 0");
  if (out_height() <= 0) {
    fail("Conv2dShape.kernel = " + std::to_string(kernel) + ", must be <= height + 2*padding = " +
         std::to_string(height + 2 * padding));
  }
  if (out_width() <= 0) {
    fail("Conv2dShape.kernel = " + std::to_string(kernel) + ", must be <= width + 2*padding = " +
         std::to_string(width + 2 * padding));
  }
}

Eigen::MatrixXd im2col(const Eigen::MatrixXd& x, const Conv2dShape& s) {
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width();
  const Eigen::Index plane = static_cast<Eigen::Index>(ho) * wo;
  Eigen::MatrixXd cols = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(s.in_channels) * k * k, plane * x.cols());
  for (Eigen::Index n = 0; n < x.cols(); ++n) {
    for (int c = 0; c < s.in_channels; ++c) {
      for (int ky = 0; ky < k; ++ky) {
        for (int kx = 0; kx < k; ++kx) {
          const Eigen::Index row = (static_cast<Eigen::Index>(c) * k + ky) * k + kx;
          for (int oy = 0; oy < ho; ++oy) {
            const int iy = oy + ky - s.padding;
            if (iy < 0 || iy >= s.height) continue;
            for (int ox = 0; ox < wo; ++ox) {
              const int ix = ox + kx - s.padding;
              if (ix < 0 || ix >= s.width) continue;
              cols(row, n * plane + static_cast<Eigen::Index>(oy) * wo + ox) =
                  x((static_cast<Eigen::Index>(c) * s.height + iy) * s.width + ix, n);
            }
          }
        }
      }
    }
  }
  return cols;
}

Eigen::MatrixXd col2im(const Eigen::MatrixXd& cols, const Conv2dShape& s, Eigen::Index batch) {
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width();
  const Eigen::Index plane = static_cast<Eigen::Index>(ho) * wo;
  Eigen::MatrixXd x = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(s.in_channels) * s.height * s.width, batch);
  for (Eigen::Index n = 0; n < batch; ++n) {
    for (int c = 0; c < s.in_channels; ++c) {
      for (int ky = 0; ky < k; ++ky) {
        for (int kx = 0; kx < k; ++kx) {
          const Eigen::Index row = (static_cast<Eigen::Index>(c) * k + ky) * k + kx;
          for (int oy = 0; oy < ho; ++oy) {
            const int iy = oy + ky - s.padding;
            if (iy < 0 || iy >= s.height) continue;
            for (int ox = 0; ox < wo; ++ox) {
              const int ix = ox + kx - s.padding;
              if (ix < 0 || ix >= s.width) continue;
              x((static_cast<Eigen::Index>(c) * s.height + iy) * s.width + ix, n) +=
                  cols(row, n * plane + static_cast<Eigen::Index>(oy) * wo + ox);
            }
          }
        }
      }
    }
  }
  return x;
}

Conv2d::Conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init) : shape_(shape) {
  shape_.validate();
  const int fan_in = shape_.in_channels * shape_.kernel * shape_.kernel;
  const int fan_out = shape_.out_channels * shape_.kernel * shape_.kernel;
  weight_.resize(shape_.out_channels, fan_in);
  initialize(weight_, init, fan_in, fan_out, rng);
  bias_ = Eigen::MatrixXd::Zero(shape_.out_channels, 1);
  grad_weight_ = Eigen::MatrixXd::Zero(shape_.out_channels, fan_in);
  grad_bias_ = Eigen::MatrixXd::Zero(shape_.out_channels, 1);
}

Eigen::MatrixXd Conv2d::forward(const Eigen::MatrixXd& x) {
  const Conv2dShape& s = shape_;
  require_rows(x, static_cast<Eigen::Index>(s.in_channels) * s.height * s.width, name());
  batch_ = x.cols();
  cols_ = im2col(x, s);
  Eigen::MatrixXd out = weight_ * cols_;  // C_out × (plane·N)
  out.colwise() += bias_.col(0);
  // Rearrange C_out × (plane·N) into (C_out·plane) × N.
  const Eigen::Index plane = static_cast<Eigen::Index>(s.out_height()) * s.out_width();
  Eigen::MatrixXd y(s.out_channels * plane, batch_);
  for (Eigen::Index n = 0; n < batch_; ++n) {
    for (int o = 0; o < s.out_channels; ++o) {
      y.col(n).segment(o * plane, plane) = out.row(o).segment(n * plane, plane).transpose();
    }
  }
  return y;
}

Eigen::MatrixXd Conv2d::backward(const Eigen::MatrixXd& dy) {
  const Conv2dShape& s = shape_;
  const Eigen::Index plane = static_cast<Eigen::Index>(s.out_height()) * s.out_width();
  require_same_shape(dy, s.out_channels * plane, batch_, name());
  Eigen::MatrixXd dout(s.out_channels, plane * batch_);  // inverse of the forward rearrangement
  for (Eigen::Index n = 0; n < batch_; ++n) {
    for (int o = 0; o < s.out_channels; ++o) {
      dout.row(o).segment(n * plane, plane) = dy.col(n).segment(o * plane, plane).transpose();
    }
  }
  grad_weight_.noalias() += dout * cols_.transpose();
  grad_bias_ += dout.rowwise().sum();
  const Eigen::MatrixXd dcols = weight_.transpose() * dout;
  return col2im(dcols, s, batch_);
}

std::string Conv2d::name() const {
  const Conv2dShape& s = shape_;
  return "Conv2d(" + std::to_string(s.in_channels) + " -> " + std::to_string(s.out_channels) + ", k=" +
         std::to_string(s.kernel) + ", p=" + std::to_string(s.padding) + ", " + std::to_string(s.height) + "x" +
         std::to_string(s.width) + ")";
}

// ---------------------------------------------------------------------------------------------
// ReLU

Eigen::MatrixXd ReLU::forward(const Eigen::MatrixXd& x) {
  positive_ = x.array() > 0.0;
  return x.cwiseMax(0.0);
}

Eigen::MatrixXd ReLU::backward(const Eigen::MatrixXd& dy) {
  require_same_shape(dy, positive_.rows(), positive_.cols(), name());
  return positive_.select(dy.array(), 0.0).matrix();
}

// ---------------------------------------------------------------------------------------------
// MaxPool2d

MaxPool2d::MaxPool2d(int channels, int height, int width) : channels_(channels), height_(height), width_(width) {
  if (channels <= 0) fail("MaxPool2d: channels = " + std::to_string(channels) + ", must be > 0");
  if (height < 2) fail("MaxPool2d: height = " + std::to_string(height) + ", must be >= 2");
  if (width < 2) fail("MaxPool2d: width = " + std::to_string(width) + ", must be >= 2");
}

Eigen::MatrixXd MaxPool2d::forward(const Eigen::MatrixXd& x) {
  input_rows_ = static_cast<Eigen::Index>(channels_) * height_ * width_;
  require_rows(x, input_rows_, name());
  const int ho = out_height(), wo = out_width();
  Eigen::MatrixXd y(static_cast<Eigen::Index>(channels_) * ho * wo, x.cols());
  argmax_.resize(y.rows(), y.cols());
  for (Eigen::Index n = 0; n < x.cols(); ++n) {
    for (int c = 0; c < channels_; ++c) {
      for (int oy = 0; oy < ho; ++oy) {
        for (int ox = 0; ox < wo; ++ox) {
          Eigen::Index best = (static_cast<Eigen::Index>(c) * height_ + 2 * oy) * width_ + 2 * ox;
          for (int dy = 0; dy < 2; ++dy) {
            for (int dx = 0; dx < 2; ++dx) {
              const Eigen::Index i = (static_cast<Eigen::Index>(c) * height_ + 2 * oy + dy) * width_ + 2 * ox + dx;
              if (x(i, n) > x(best, n)) best = i;
            }
          }
          const Eigen::Index o = (static_cast<Eigen::Index>(c) * ho + oy) * wo + ox;
          y(o, n) = x(best, n);
          argmax_(o, n) = best;
        }
      }
    }
  }
  return y;
}

Eigen::MatrixXd MaxPool2d::backward(const Eigen::MatrixXd& dy) {
  require_same_shape(dy, argmax_.rows(), argmax_.cols(), name());
  Eigen::MatrixXd dx = Eigen::MatrixXd::Zero(input_rows_, dy.cols());
  for (Eigen::Index n = 0; n < dy.cols(); ++n) {
    for (Eigen::Index o = 0; o < dy.rows(); ++o) dx(argmax_(o, n), n) += dy(o, n);
  }
  return dx;
}

std::string MaxPool2d::name() const {
  return "MaxPool2d(" + std::to_string(channels_) + "x" + std::to_string(height_) + "x" + std::to_string(width_) + ")";
}

// ---------------------------------------------------------------------------------------------
// Sequential

Eigen::MatrixXd Sequential::forward(const Eigen::MatrixXd& x) {
  Eigen::MatrixXd y = x;
  for (auto& layer : layers_) y = layer->forward(y);
  return y;
}

Eigen::MatrixXd Sequential::backward(const Eigen::MatrixXd& dy) {
  Eigen::MatrixXd d = dy;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) d = (*it)->backward(d);
  return d;
}

std::vector<Eigen::MatrixXd*> Sequential::parameters() {
  std::vector<Eigen::MatrixXd*> all;
  for (auto& layer : layers_) {
    for (Eigen::MatrixXd* p : layer->parameters()) all.push_back(p);
  }
  return all;
}

std::vector<Eigen::MatrixXd*> Sequential::gradients() {
  std::vector<Eigen::MatrixXd*> all;
  for (auto& layer : layers_) {
    for (Eigen::MatrixXd* g : layer->gradients()) all.push_back(g);
  }
  return all;
}

std::vector<Eigen::MatrixXd*> Sequential::buffers() {
  std::vector<Eigen::MatrixXd*> all;
  for (auto& layer : layers_) {
    for (Eigen::MatrixXd* b : layer->buffers()) all.push_back(b);
  }
  return all;
}

std::string Sequential::name() const {
  std::string s = "Sequential(";
  for (std::size_t i = 0; i < layers_.size(); ++i) s += (i ? ", " : "") + layers_[i]->name();
  return s + ")";
}

// ---------------------------------------------------------------------------------------------
// Loss

namespace {

void check_labels(const Eigen::MatrixXd& logits, const std::vector<int>& labels, const char* fn) {
  if (static_cast<Eigen::Index>(labels.size()) != logits.cols()) {
    fail(std::string(fn) + ": " + std::to_string(labels.size()) + " labels for a batch of " +
         std::to_string(logits.cols()));
  }
  if (logits.cols() == 0 || logits.rows() == 0) fail(std::string(fn) + ": empty logits");
  for (std::size_t n = 0; n < labels.size(); ++n) {
    if (labels[n] < 0 || labels[n] >= logits.rows()) {
      fail(std::string(fn) + ": label " + std::to_string(labels[n]) + " of sample " + std::to_string(n) +
           " is outside [0, " + std::to_string(logits.rows()) + ")");
    }
  }
}

}  // namespace

LossResult softmax_cross_entropy(const Eigen::MatrixXd& logits, const std::vector<int>& labels) {
  check_labels(logits, labels, "softmax_cross_entropy");
  const Eigen::Index batch = logits.cols();
  LossResult r;
  r.grad.resize(logits.rows(), batch);
  double total = 0.0;
  for (Eigen::Index n = 0; n < batch; ++n) {
    const double m = logits.col(n).maxCoeff();
    const Eigen::ArrayXd e = (logits.col(n).array() - m).exp();
    const double sum = e.sum();
    // −log softmax_label = log Σ exp(z − m) − (z_label − m)
    total += std::log(sum) - (logits(labels[n], n) - m);
    r.grad.col(n) = (e / sum).matrix();
    r.grad(labels[n], n) -= 1.0;
  }
  r.loss = total / static_cast<double>(batch);
  r.grad /= static_cast<double>(batch);
  return r;
}

double accuracy(const Eigen::MatrixXd& logits, const std::vector<int>& labels) {
  check_labels(logits, labels, "accuracy");
  Eigen::Index correct = 0;
  for (Eigen::Index n = 0; n < logits.cols(); ++n) {
    Eigen::Index best = 0;
    logits.col(n).maxCoeff(&best);
    if (best == labels[n]) ++correct;
  }
  return static_cast<double>(correct) / static_cast<double>(logits.cols());
}

}  // namespace xbar::training
