// SGD with momentum and Adam; see optim.hpp for the update rules.
#include "training/optim.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

namespace xbar::training {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Checks that params and grads pair up and returns zero state matrices of the same shapes.
std::vector<Eigen::MatrixXd> zero_state(const std::vector<Eigen::MatrixXd*>& params,
                                        const std::vector<Eigen::MatrixXd*>& grads, const char* who) {
  if (params.size() != grads.size()) {
    fail(std::string(who) + ": " + std::to_string(params.size()) + " parameters but " +
         std::to_string(grads.size()) + " gradients");
  }
  std::vector<Eigen::MatrixXd> state;
  state.reserve(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!params[i] || !grads[i]) fail(std::string(who) + ": null parameter or gradient " + std::to_string(i));
    if (params[i]->rows() != grads[i]->rows() || params[i]->cols() != grads[i]->cols()) {
      fail(std::string(who) + ": parameter " + std::to_string(i) + " and its gradient differ in shape");
    }
    state.push_back(Eigen::MatrixXd::Zero(params[i]->rows(), params[i]->cols()));
  }
  return state;
}

void check_state(const std::vector<Eigen::MatrixXd>& state, const std::vector<Eigen::MatrixXd*>& params,
                 const std::string& what) {
  if (state.size() != params.size()) {
    fail(what + ": " + std::to_string(state.size()) + " matrices for " + std::to_string(params.size()) +
         " parameters");
  }
  for (std::size_t i = 0; i < state.size(); ++i) {
    if (state[i].rows() != params[i]->rows() || state[i].cols() != params[i]->cols()) {
      fail(what + ": matrix " + std::to_string(i) + " does not match its parameter's shape");
    }
  }
}

void zero_all(const std::vector<Eigen::MatrixXd*>& grads) {
  for (Eigen::MatrixXd* g : grads) g->setZero();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SGD

void SgdOptions::validate() const {
  if (!(learning_rate > 0)) fail("SgdOptions.learning_rate = " + num(learning_rate) + ", must be > 0");
  if (!(momentum >= 0 && momentum < 1)) fail("SgdOptions.momentum = " + num(momentum) + ", must be in [0, 1)");
  if (!(weight_decay >= 0)) fail("SgdOptions.weight_decay = " + num(weight_decay) + ", must be >= 0");
}

Sgd::Sgd(std::vector<Eigen::MatrixXd*> params, std::vector<Eigen::MatrixXd*> grads, const SgdOptions& options)
    : params_(std::move(params)), grads_(std::move(grads)), options_(options) {
  options_.validate();
  velocity_ = zero_state(params_, grads_, "Sgd");
}

void Sgd::step() {
  const double lr = options_.learning_rate, mu = options_.momentum, wd = options_.weight_decay;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Eigen::MatrixXd& p = *params_[i];
    Eigen::MatrixXd& v = velocity_[i];
    if (wd != 0.0) {
      v = mu * v + *grads_[i] + wd * p;
    } else {
      v = mu * v + *grads_[i];
    }
    p -= lr * v;
  }
  ++steps_;
}

void Sgd::zero_grad() { zero_all(grads_); }

void Sgd::set_learning_rate(double lr) {
  SgdOptions o = options_;
  o.learning_rate = lr;
  o.validate();
  options_ = o;
}

void Sgd::set_velocity(std::vector<Eigen::MatrixXd> velocity) {
  check_state(velocity, params_, "Sgd::set_velocity");
  velocity_ = std::move(velocity);
}

// ---------------------------------------------------------------------------------------------
// Adam

void AdamOptions::validate() const {
  if (!(learning_rate > 0)) fail("AdamOptions.learning_rate = " + num(learning_rate) + ", must be > 0");
  if (!(beta1 >= 0 && beta1 < 1)) fail("AdamOptions.beta1 = " + num(beta1) + ", must be in [0, 1)");
  if (!(beta2 >= 0 && beta2 < 1)) fail("AdamOptions.beta2 = " + num(beta2) + ", must be in [0, 1)");
  if (!(epsilon > 0)) fail("AdamOptions.epsilon = " + num(epsilon) + ", must be > 0");
  if (!(weight_decay >= 0)) fail("AdamOptions.weight_decay = " + num(weight_decay) + ", must be >= 0");
}

Adam::Adam(std::vector<Eigen::MatrixXd*> params, std::vector<Eigen::MatrixXd*> grads, const AdamOptions& options)
    : params_(std::move(params)), grads_(std::move(grads)), options_(options) {
  options_.validate();
  m_ = zero_state(params_, grads_, "Adam");
  v_ = m_;
}

void Adam::step() {
  ++steps_;
  const AdamOptions& o = options_;
  const double t = static_cast<double>(steps_);
  const double c1 = 1.0 - std::pow(o.beta1, t);
  const double c2 = 1.0 - std::pow(o.beta2, t);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Eigen::MatrixXd& p = *params_[i];
    Eigen::MatrixXd g = *grads_[i];
    if (o.weight_decay != 0.0) g += o.weight_decay * p;
    m_[i] = o.beta1 * m_[i] + (1.0 - o.beta1) * g;
    v_[i] = o.beta2 * v_[i] + (1.0 - o.beta2) * g.cwiseProduct(g);
    const Eigen::ArrayXXd m_hat = m_[i].array() / c1;
    const Eigen::ArrayXXd v_hat = v_[i].array() / c2;
    p.array() -= o.learning_rate * m_hat / (v_hat.sqrt() + o.epsilon);
  }
}

void Adam::zero_grad() { zero_all(grads_); }

void Adam::set_learning_rate(double lr) {
  AdamOptions o = options_;
  o.learning_rate = lr;
  o.validate();
  options_ = o;
}

void Adam::set_state(std::vector<Eigen::MatrixXd> first, std::vector<Eigen::MatrixXd> second, std::int64_t steps) {
  check_state(first, params_, "Adam::set_state (first moment)");
  check_state(second, params_, "Adam::set_state (second moment)");
  if (steps < 0) fail("Adam::set_state: steps = " + std::to_string(steps) + ", must be >= 0");
  m_ = std::move(first);
  v_ = std::move(second);
  steps_ = steps;
}

}  // namespace xbar::training
