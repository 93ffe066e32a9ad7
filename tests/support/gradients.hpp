// Finite-difference gradient checks of layers with explicit backward passes (training/layers.hpp
// and the layers built on it): random matrices, the relative error of a whole gradient, central
// differences of any loss, and the check of a layer's backward against them.
#pragma once

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <set>
#include <vector>

#include "core/random.hpp"
#include "training/layers.hpp"

namespace xbar::testing_support {

// A rows × cols matrix of independent normal(0, stddev) entries, drawn in storage order.
inline Eigen::MatrixXd random_matrix(Eigen::Index rows, Eigen::Index cols, core::RandomStream& rng,
                                     double stddev = 1.0) {
  Eigen::MatrixXd m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng.normal(0.0, stddev);
  return m;
}

// ‖a − b‖ / max(‖a‖, ‖b‖): the relative error of a whole gradient (0 when both are zero).
inline double relative_error(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  const double scale = std::max(a.norm(), b.norm());
  return scale == 0.0 ? 0.0 : (a - b).norm() / scale;
}

// Central differences (step h) of `loss()` with respect to each entry of `values`:
// (L(v + h e_i) − L(v − h e_i)) / 2h. `loss` reads `values`, which are changed in place during the
// call (one entry at a time) and restored exactly.
template <typename Loss>
Eigen::MatrixXd central_differences(Eigen::MatrixXd& values, Loss&& loss, double h) {
  Eigen::MatrixXd num(values.rows(), values.cols());
  for (Eigen::Index i = 0; i < values.size(); ++i) {
    const double keep = values.data()[i];
    values.data()[i] = keep + h;
    const double lp = loss();
    values.data()[i] = keep - h;
    const double lm = loss();
    values.data()[i] = keep;
    num.data()[i] = (lp - lm) / (2 * h);
  }
  return num;
}

// The relative errors of a gradient check.
struct GradCheck {
  double input = 0.0;          // relative error of dL/dx (0 when the input is not checked)
  std::vector<double> params;  // relative error of each parameter's gradient, in parameters() order
  double max_error() const {
    double e = input;
    for (double p : params) e = std::max(e, p);
    return e;
  }
};

// Compares layer.backward with central differences (step h) of L = Σ R∘forward(x), R random (drawn
// from `rng`, the shape of the output). `check_input` false for layers whose input is ids (not
// differentiable). Parameters listed in `zero_gradient` must have a zero gradient (both ways, to
// rounding) instead, and report 0. Every other gradient must not be identically zero.
inline GradCheck gradient_check(training::Layer& layer, Eigen::MatrixXd x, core::RandomStream& rng,
                                bool check_input = true, const std::set<std::size_t>& zero_gradient = {},
                                double h = 1e-6) {
  const Eigen::MatrixXd y = layer.forward(x);
  const Eigen::MatrixXd r = random_matrix(y.rows(), y.cols(), rng);
  auto loss = [&] { return r.cwiseProduct(layer.forward(x)).sum(); };
  layer.zero_grad();
  layer.forward(x);
  const Eigen::MatrixXd dx = layer.backward(r);
  std::vector<Eigen::MatrixXd> grads;
  for (Eigen::MatrixXd* g : layer.gradients()) grads.push_back(*g);

  GradCheck out;
  if (check_input) {
    const Eigen::MatrixXd num = central_differences(x, loss, h);
    EXPECT_GT(dx.norm(), 0.0) << layer.name() << ": input gradient is identically zero";
    out.input = relative_error(dx, num);
  }
  const std::vector<Eigen::MatrixXd*> params = layer.parameters();
  EXPECT_EQ(params.size(), grads.size());
  for (std::size_t k = 0; k < params.size(); ++k) {
    Eigen::MatrixXd& p = *params[k];
    EXPECT_EQ(p.rows(), grads[k].rows());
    EXPECT_EQ(p.cols(), grads[k].cols());
    const Eigen::MatrixXd num = central_differences(p, loss, h);
    if (zero_gradient.count(k)) {
      EXPECT_LT(grads[k].norm(), 1e-12) << layer.name() << ": parameter " << k << " must have no gradient";
      EXPECT_LT(num.norm(), 1e-7) << layer.name() << ": parameter " << k << " changes the loss";
      out.params.push_back(0.0);
      continue;
    }
    EXPECT_GT(grads[k].norm(), 0.0) << layer.name() << ": gradient of parameter " << k << " is zero";
    out.params.push_back(relative_error(grads[k], num));
  }
  return out;
}

}  // namespace xbar::testing_support
