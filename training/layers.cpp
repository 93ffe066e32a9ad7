// Digital layers with explicit backward passes; see layers.hpp for the layout and contract.
#include "training/layers.hpp"

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

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

// Block sizes of the parallel loops. They depend on the shapes only, never on the thread count,
// so every block computes the same numbers whichever thread runs it.
constexpr Eigen::Index kColumnsPerBlock = 32;      // batch columns per product (Linear)
constexpr Eigen::Index kRowsPerBlock = 32;         // weight rows per weight-gradient product (Linear)
constexpr Eigen::Index kConvRowsPerBlock = 576;    // unfolded rows (samples × output pixels) per block
constexpr Eigen::Index kSamplesPerPoolBlock = 4;   // samples per max-pool block
constexpr Eigen::Index kElementsPerBlock = 65536;  // elements per elementwise block (ReLU)
// A convolution block's backward skips the zeros of dy when fewer than 1 in this many entries
// are nonzero (after ReLU and max pooling typically 1 in 6 to 1 in 8 are).
constexpr Eigen::Index kSparseBackwardRatio = 3;

Eigen::Index elementwise_columns_per_block(Eigen::Index rows) {
  return std::max<Eigen::Index>(1, kElementsPerBlock / std::max<Eigen::Index>(1, rows));
}

// Calls f(block, begin, end) for the blocks [b·size, min(n, (b+1)·size)) of [0, n), in parallel
// on TBB. Each block must write only its own outputs.
template <class F>
void for_blocks(Eigen::Index n, Eigen::Index size, const F& f) {
  if (n <= 0) return;
  const Eigen::Index blocks = (n + size - 1) / size;
  if (blocks == 1) {
    f(Eigen::Index{0}, Eigen::Index{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, blocks, 1), [&](const tbb::blocked_range<Eigen::Index>& r) {
    for (Eigen::Index b = r.begin(); b != r.end(); ++b) f(b, b * size, std::min(n, (b + 1) * size));
  });
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
  Eigen::MatrixXd y(weight_.rows(), x.cols());
  for_blocks(x.cols(), kColumnsPerBlock, [&](Eigen::Index, Eigen::Index c0, Eigen::Index c1) {
    auto out = y.middleCols(c0, c1 - c0);
    out.noalias() = weight_ * x.middleCols(c0, c1 - c0);
    out.colwise() += bias_.col(0);
  });
  return y;
}

Eigen::MatrixXd Linear::backward(const Eigen::MatrixXd& dy) {
  require_same_shape(dy, weight_.rows(), input_.cols(), name());
  // dL/dW = dy xᵀ by fixed blocks of output rows: each block is one product over the whole batch.
  for_blocks(weight_.rows(), kRowsPerBlock, [&](Eigen::Index, Eigen::Index r0, Eigen::Index r1) {
    grad_weight_.middleRows(r0, r1 - r0).noalias() += dy.middleRows(r0, r1 - r0) * input_.transpose();
  });
  grad_bias_ += dy.rowwise().sum();
  if (!input_gradient_needed_) return {};
  Eigen::MatrixXd dx(weight_.cols(), dy.cols());
  for_blocks(dy.cols(), kColumnsPerBlock, [&](Eigen::Index, Eigen::Index c0, Eigen::Index c1) {
    dx.middleCols(c0, c1 - c0).noalias() = weight_.transpose() * dy.middleCols(c0, c1 - c0);
  });
  return dx;
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

namespace {

// The valid output columns [ox0, ox1) of kernel column kx: those whose input column
// ix = ox + kx − p lies inside the image.
struct ValidColumns {
  int ox0, ox1;
};
ValidColumns valid_columns(const Conv2dShape& s, int kx) {
  return {std::max(0, s.padding - kx), std::min(s.out_width(), s.width + s.padding - kx)};
}

// Unfolds samples [n0, n1) of x into colsT, (samples·H_out·W_out) × (C_in·k·k): row
// (n − n0)·plane + oy·W_out + ox, column (c·k + ky)·k + kx holds x(c, oy + ky − p, ox + kx − p) of
// sample n (zero outside the image). It is the transpose of those samples' im2col columns, so
// colsT · Wᵀ is the convolution's output in the (channel-major) output layout.
void unfold_block(const Eigen::MatrixXd& x, const Conv2dShape& s, Eigen::Index n0, Eigen::Index n1,
                  Eigen::MatrixXd& colsT) {
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width(), h = s.height, w = s.width, p = s.padding;
  const Eigen::Index plane = static_cast<Eigen::Index>(ho) * wo;
  colsT.resize((n1 - n0) * plane, static_cast<Eigen::Index>(s.in_channels) * k * k);
  for (int c = 0; c < s.in_channels; ++c) {
    for (int ky = 0; ky < k; ++ky) {
      for (int kx = 0; kx < k; ++kx) {
        const Eigen::Index r = (static_cast<Eigen::Index>(c) * k + ky) * k + kx;
        const auto [ox0, ox1] = valid_columns(s, kx);
        for (Eigen::Index n = n0; n < n1; ++n) {
          const double* image = x.col(n).data() + static_cast<Eigen::Index>(c) * h * w;
          double* out = colsT.col(r).data() + (n - n0) * plane;
          for (int oy = 0; oy < ho; ++oy) {
            double* row = out + static_cast<Eigen::Index>(oy) * wo;
            const int iy = oy + ky - p;
            if (iy < 0 || iy >= h || ox0 >= ox1) {
              std::fill(row, row + wo, 0.0);
              continue;
            }
            std::fill(row, row + ox0, 0.0);
            const double* in = image + static_cast<Eigen::Index>(iy) * w + (ox0 + kx - p);
            std::copy(in, in + (ox1 - ox0), row + ox0);
            std::fill(row + ox1, row + wo, 0.0);
          }
        }
      }
    }
  }
}

// Adjoint of unfold_block: sets columns [n0, n1) of dx to the sums of dcolsT's entries over the
// image positions they came from (in (c, ky, kx, oy, ox) order).
void fold_block(const Eigen::MatrixXd& dcolsT, const Conv2dShape& s, Eigen::Index n0, Eigen::Index n1,
                Eigen::MatrixXd& dx) {
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width(), h = s.height, w = s.width, p = s.padding;
  const Eigen::Index plane = static_cast<Eigen::Index>(ho) * wo;
  dx.middleCols(n0, n1 - n0).setZero();
  for (int c = 0; c < s.in_channels; ++c) {
    for (int ky = 0; ky < k; ++ky) {
      for (int kx = 0; kx < k; ++kx) {
        const Eigen::Index r = (static_cast<Eigen::Index>(c) * k + ky) * k + kx;
        const auto [ox0, ox1] = valid_columns(s, kx);
        if (ox0 >= ox1) continue;
        for (Eigen::Index n = n0; n < n1; ++n) {
          double* image = dx.col(n).data() + static_cast<Eigen::Index>(c) * h * w;
          const double* in = dcolsT.col(r).data() + (n - n0) * plane;
          for (int oy = 0; oy < ho; ++oy) {
            const int iy = oy + ky - p;
            if (iy < 0 || iy >= h) continue;
            const double* row = in + static_cast<Eigen::Index>(oy) * wo;
            double* out = image + static_cast<Eigen::Index>(iy) * w + (ox0 + kx - p);
            for (int ox = ox0; ox < ox1; ++ox) out[ox - ox0] += row[ox];
          }
        }
      }
    }
  }
}

// The backward pass of a convolution over samples [n0, n1) that visits only the nonzero entries
// of dy: per output position, the input patch is gathered once (K = C_in·k·k values), every
// output channel o with a nonzero gradient g adds g·patch to column o of grad_weight_t (K × C_out)
// and g to grad_bias(o), and the patch's gradient Σ g·weight_t.col(o) is scattered back into dx
// (when dx is given; its columns [n0, n1) are overwritten).
void sparse_conv_backward(const Eigen::MatrixXd& x, const Eigen::MatrixXd& dy, const Eigen::MatrixXd& weight_t,
                          const Conv2dShape& s, Eigen::Index n0, Eigen::Index n1, Eigen::MatrixXd& grad_weight_t,
                          Eigen::VectorXd& grad_bias, Eigen::MatrixXd* dx) {
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width(), h = s.height, w = s.width, p = s.padding;
  const Eigen::Index plane = static_cast<Eigen::Index>(ho) * wo;
  const Eigen::Index patch_size = weight_t.rows();
  Eigen::VectorXd patch(patch_size), dpatch(patch_size);
  if (dx) dx->middleCols(n0, n1 - n0).setZero();
  for (Eigen::Index n = n0; n < n1; ++n) {
    const double* image = x.col(n).data();
    const double* grad = dy.col(n).data();
    double* dimage = dx ? dx->col(n).data() : nullptr;
    for (int oy = 0; oy < ho; ++oy) {
      for (int ox = 0; ox < wo; ++ox) {
        const Eigen::Index position = static_cast<Eigen::Index>(oy) * wo + ox;
        bool gathered = false;
        bool any = false;
        for (int o = 0; o < s.out_channels; ++o) {
          const double g = grad[o * plane + position];
          if (g == 0.0) continue;
          if (!gathered) {
            // patch(c, ky, kx) = x(c, oy + ky − p, ox + kx − p), zero outside the image
            const int kx0 = std::max(0, p - ox), kx1 = std::min(k, w + p - ox);
            double* out = patch.data();
            for (int c = 0; c < s.in_channels; ++c) {
              for (int ky = 0; ky < k; ++ky, out += k) {
                const int iy = oy + ky - p;
                if (iy < 0 || iy >= h || kx0 >= kx1) {
                  std::fill(out, out + k, 0.0);
                  continue;
                }
                const double* in = image + (static_cast<Eigen::Index>(c) * h + iy) * w + (ox - p);
                for (int kx = 0; kx < kx0; ++kx) out[kx] = 0.0;
                for (int kx = kx0; kx < kx1; ++kx) out[kx] = in[kx];
                for (int kx = kx1; kx < k; ++kx) out[kx] = 0.0;
              }
            }
            gathered = true;
          }
          grad_weight_t.col(o) += g * patch;
          grad_bias[o] += g;
          if (dimage) {
            if (any) {
              dpatch += g * weight_t.col(o);
            } else {
              dpatch = g * weight_t.col(o);
              any = true;
            }
          }
        }
        if (!any) continue;
        const int kx0 = std::max(0, p - ox), kx1 = std::min(k, w + p - ox);
        const double* in = dpatch.data();
        for (int c = 0; c < s.in_channels; ++c) {
          for (int ky = 0; ky < k; ++ky, in += k) {
            const int iy = oy + ky - p;
            if (iy < 0 || iy >= h) continue;
            double* out = dimage + (static_cast<Eigen::Index>(c) * h + iy) * w + (ox - p);
            for (int kx = kx0; kx < kx1; ++kx) out[kx] += in[kx];
          }
        }
      }
    }
  }
}

// Samples per block of a convolution: about kConvRowsPerBlock unfolded rows, from the shape only.
Eigen::Index conv_samples_per_block(const Conv2dShape& s) {
  const Eigen::Index plane = static_cast<Eigen::Index>(s.out_height()) * s.out_width();
  return std::max<Eigen::Index>(1, kConvRowsPerBlock / plane);
}

}  // namespace

Eigen::MatrixXd im2col(const Eigen::MatrixXd& x, const Conv2dShape& s) {
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width();
  const Eigen::Index plane = static_cast<Eigen::Index>(ho) * wo;
  Eigen::MatrixXd cols(static_cast<Eigen::Index>(s.in_channels) * k * k, plane * x.cols());
  for_blocks(x.cols(), 1, [&](Eigen::Index, Eigen::Index n, Eigen::Index) {
    cols.middleCols(n * plane, plane).setZero();
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
  });
  return cols;
}

Eigen::MatrixXd col2im(const Eigen::MatrixXd& cols, const Conv2dShape& s, Eigen::Index batch) {
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width();
  const Eigen::Index plane = static_cast<Eigen::Index>(ho) * wo;
  Eigen::MatrixXd x(static_cast<Eigen::Index>(s.in_channels) * s.height * s.width, batch);
  for_blocks(batch, 1, [&](Eigen::Index, Eigen::Index n, Eigen::Index) {
    x.col(n).setZero();
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
  });
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
  input_ = x;
  const Eigen::Index plane = static_cast<Eigen::Index>(s.out_height()) * s.out_width();
  Eigen::MatrixXd y(s.out_channels * plane, x.cols());
  tbb::enumerable_thread_specific<Eigen::MatrixXd> cols_of_thread, out_of_thread;
  for_blocks(x.cols(), conv_samples_per_block(s), [&](Eigen::Index, Eigen::Index n0, Eigen::Index n1) {
    Eigen::MatrixXd& colsT = cols_of_thread.local();
    Eigen::MatrixXd& out = out_of_thread.local();
    unfold_block(x, s, n0, n1, colsT);
    out.noalias() = colsT * weight_.transpose();  // (samples·plane) × C_out
    for (Eigen::Index n = n0; n < n1; ++n) {
      for (int o = 0; o < s.out_channels; ++o) {
        y.col(n).segment(o * plane, plane) = out.col(o).segment((n - n0) * plane, plane).array() + bias_(o, 0);
      }
    }
  });
  return y;
}

Eigen::MatrixXd Conv2d::backward(const Eigen::MatrixXd& dy) {
  const Conv2dShape& s = shape_;
  const Eigen::Index plane = static_cast<Eigen::Index>(s.out_height()) * s.out_width();
  const Eigen::Index batch = input_.cols();
  require_same_shape(dy, s.out_channels * plane, batch, name());
  const Eigen::Index per_block = conv_samples_per_block(s);
  const Eigen::Index blocks = (batch + per_block - 1) / per_block;
  std::vector<Eigen::MatrixXd> block_grad_weight(blocks), block_grad_bias(blocks);
  Eigen::MatrixXd dx;
  if (input_gradient_needed_) dx.resize(input_.rows(), batch);
  const Eigen::MatrixXd weight_t = weight_.transpose();  // column o: kernel o in (c, ky, kx) order
  tbb::enumerable_thread_specific<Eigen::MatrixXd> dout_of_thread, cols_of_thread, dcols_of_thread;
  for_blocks(batch, per_block, [&](Eigen::Index b, Eigen::Index n0, Eigen::Index n1) {
    // A gradient that comes through ReLU and max pooling is mostly exact zeros; such blocks skip
    // them (same sums, without the zero terms) instead of running dense products.
    const Eigen::Index nonzeros = (dy.middleCols(n0, n1 - n0).array() != 0.0).count();
    if (nonzeros * kSparseBackwardRatio < dy.rows() * (n1 - n0)) {
      Eigen::MatrixXd grad_weight_t = Eigen::MatrixXd::Zero(weight_t.rows(), weight_t.cols());
      Eigen::VectorXd grad_bias = Eigen::VectorXd::Zero(s.out_channels);
      sparse_conv_backward(input_, dy, weight_t, s, n0, n1, grad_weight_t, grad_bias,
                           input_gradient_needed_ ? &dx : nullptr);
      block_grad_weight[b] = grad_weight_t.transpose();
      block_grad_bias[b] = grad_bias;
      return;
    }
    Eigen::MatrixXd& dout = dout_of_thread.local();  // (samples·plane) × C_out, as the forward's product
    dout.resize((n1 - n0) * plane, s.out_channels);
    for (Eigen::Index n = n0; n < n1; ++n) {
      for (int o = 0; o < s.out_channels; ++o) {
        dout.col(o).segment((n - n0) * plane, plane) = dy.col(n).segment(o * plane, plane);
      }
    }
    Eigen::MatrixXd& colsT = cols_of_thread.local();
    unfold_block(input_, s, n0, n1, colsT);
    block_grad_weight[b].noalias() = dout.transpose() * colsT;
    block_grad_bias[b] = dout.colwise().sum().transpose();
    if (input_gradient_needed_) {
      Eigen::MatrixXd& dcolsT = dcols_of_thread.local();
      dcolsT.noalias() = dout * weight_;
      fold_block(dcolsT, s, n0, n1, dx);
    }
  });
  for (Eigen::Index b = 0; b < blocks; ++b) {
    grad_weight_ += block_grad_weight[b];
    grad_bias_ += block_grad_bias[b];
  }
  return dx;
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
  positive_.resize(x.rows(), x.cols());
  Eigen::MatrixXd y(x.rows(), x.cols());
  for_blocks(x.cols(), elementwise_columns_per_block(x.rows()), [&](Eigen::Index, Eigen::Index c0, Eigen::Index c1) {
    const Eigen::Index begin = c0 * x.rows(), end = c1 * x.rows();
    const double* in = x.data();
    double* out = y.data();
    bool* mask = positive_.data();
    for (Eigen::Index i = begin; i < end; ++i) {
      const bool positive = in[i] > 0.0;
      mask[i] = positive;
      out[i] = positive ? in[i] : 0.0;
    }
  });
  return y;
}

Eigen::MatrixXd ReLU::backward(const Eigen::MatrixXd& dy) {
  require_same_shape(dy, positive_.rows(), positive_.cols(), name());
  Eigen::MatrixXd dx(dy.rows(), dy.cols());
  for_blocks(dy.cols(), elementwise_columns_per_block(dy.rows()), [&](Eigen::Index, Eigen::Index c0, Eigen::Index c1) {
    const Eigen::Index begin = c0 * dy.rows(), end = c1 * dy.rows();
    const double* in = dy.data();
    double* out = dx.data();
    const bool* mask = positive_.data();
    for (Eigen::Index i = begin; i < end; ++i) out[i] = mask[i] ? in[i] : 0.0;
  });
  return dx;
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
  for_blocks(x.cols(), kSamplesPerPoolBlock, [&](Eigen::Index, Eigen::Index n0, Eigen::Index n1) {
    for (Eigen::Index n = n0; n < n1; ++n) {
      const double* in = x.col(n).data();
      double* out = y.col(n).data();
      Eigen::Index* arg = argmax_.col(n).data();
      for (int c = 0; c < channels_; ++c) {
        for (int oy = 0; oy < ho; ++oy) {
          const Eigen::Index top = (static_cast<Eigen::Index>(c) * height_ + 2 * oy) * width_;
          const Eigen::Index o = (static_cast<Eigen::Index>(c) * ho + oy) * wo;
          for (int ox = 0; ox < wo; ++ox) {
            // window in (dy, dx) scan order; the first maximum wins ties
            const Eigen::Index i00 = top + 2 * ox, i01 = i00 + 1, i10 = i00 + width_, i11 = i10 + 1;
            Eigen::Index best = i00;
            if (in[i01] > in[best]) best = i01;
            if (in[i10] > in[best]) best = i10;
            if (in[i11] > in[best]) best = i11;
            out[o + ox] = in[best];
            arg[o + ox] = best;
          }
        }
      }
    }
  });
  return y;
}

Eigen::MatrixXd MaxPool2d::backward(const Eigen::MatrixXd& dy) {
  require_same_shape(dy, argmax_.rows(), argmax_.cols(), name());
  Eigen::MatrixXd dx(input_rows_, dy.cols());
  for_blocks(dy.cols(), kSamplesPerPoolBlock, [&](Eigen::Index, Eigen::Index n0, Eigen::Index n1) {
    for (Eigen::Index n = n0; n < n1; ++n) {
      dx.col(n).setZero();
      for (Eigen::Index o = 0; o < dy.rows(); ++o) dx(argmax_(o, n), n) += dy(o, n);
    }
  });
  return dx;
}

std::string MaxPool2d::name() const {
  return "MaxPool2d(" + std::to_string(channels_) + "x" + std::to_string(height_) + "x" + std::to_string(width_) + ")";
}

// ---------------------------------------------------------------------------------------------
// Names

std::vector<std::pair<std::string, Eigen::MatrixXd*>> Layer::named_parameters() {
  const std::vector<Eigen::MatrixXd*> params = parameters();
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> named;
  for (std::size_t k = 0; k < params.size(); ++k) {
    named.emplace_back(params.size() == 2 ? (k == 0 ? "weight" : "bias") : "param" + std::to_string(k), params[k]);
  }
  return named;
}

std::vector<std::pair<std::string, Eigen::MatrixXd*>> Layer::named_buffers() {
  const std::vector<Eigen::MatrixXd*> buffers = this->buffers();
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> named;
  for (std::size_t k = 0; k < buffers.size(); ++k) named.emplace_back("buffer" + std::to_string(k), buffers[k]);
  return named;
}

// ---------------------------------------------------------------------------------------------
// Sequential

void Sequential::set_input_gradient_needed(bool needed) {
  if (!layers_.empty()) layers_.front()->set_input_gradient_needed(needed);
}

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

std::vector<std::pair<std::string, Eigen::MatrixXd*>> Sequential::named_parameters() {
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> all;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    for (auto& [name, p] : layers_[i]->named_parameters()) all.emplace_back(layer_names_[i] + "." + name, p);
  }
  return all;
}

std::vector<std::pair<std::string, Eigen::MatrixXd*>> Sequential::named_buffers() {
  std::vector<std::pair<std::string, Eigen::MatrixXd*>> all;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    for (auto& [name, b] : layers_[i]->named_buffers()) all.emplace_back(layer_names_[i] + "." + name, b);
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
