// Optimisers stepping over a layer's parameters() / gradients() lists: SGD with momentum and
// weight decay, and Adam with bias correction. Updates are elementwise and single-threaded, so
// a step is deterministic. The state (momentum buffers, Adam moments and step count) is exposed
// for inspection and can be replaced, so checkpoints can save and restore it.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <vector>

namespace xbar::training {

// SGD options (PyTorch convention, no dampening).
struct SgdOptions {
  double learning_rate = 0.01;  // step size η (> 0)
  double momentum = 0.0;        // μ in [0, 1); 0 disables the velocity buffer's effect
  double weight_decay = 0.0;    // L2 coefficient λ (>= 0), added to the gradient as λ·θ
  // Throws std::invalid_argument naming the field, the value and the violated constraint.
  void validate() const;
};

// g = ∇θ + λθ;  v ← μ v + g;  θ ← θ − η v   (v starts at zero, so the first step is θ − η g).
class Sgd {
 public:
  // `params` and `grads` must have matching length and shapes; they are not owned and must
  // outlive the optimiser (e.g. from Layer::parameters() / Layer::gradients()).
  Sgd(std::vector<Eigen::MatrixXd*> params, std::vector<Eigen::MatrixXd*> grads, const SgdOptions& options = {});

  void step();       // one update from the current gradients
  void zero_grad();  // sets every gradient to zero

  const SgdOptions& options() const { return options_; }
  void set_learning_rate(double lr);

  // State, one velocity per parameter (same shapes). set_velocity checks the shapes.
  const std::vector<Eigen::MatrixXd>& velocity() const { return velocity_; }
  void set_velocity(std::vector<Eigen::MatrixXd> velocity);
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps) { steps_ = steps; }

 private:
  std::vector<Eigen::MatrixXd*> params_, grads_;
  SgdOptions options_;
  std::vector<Eigen::MatrixXd> velocity_;
  std::int64_t steps_ = 0;
};

// Adam options.
struct AdamOptions {
  double learning_rate = 1e-3;  // step size η (> 0)
  double beta1 = 0.9;           // first-moment decay β1 in [0, 1)
  double beta2 = 0.999;         // second-moment decay β2 in [0, 1)
  double epsilon = 1e-8;        // ε (> 0) added to sqrt(v̂)
  double weight_decay = 0.0;    // L2 coefficient λ (>= 0), added to the gradient as λ·θ
  // Throws std::invalid_argument naming the field, the value and the violated constraint.
  void validate() const;
};

// t ← t + 1;  g = ∇θ + λθ;  m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
// m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t);  θ ← θ − η m̂ / (sqrt(v̂) + ε).
class Adam {
 public:
  Adam(std::vector<Eigen::MatrixXd*> params, std::vector<Eigen::MatrixXd*> grads, const AdamOptions& options = {});

  void step();
  void zero_grad();

  const AdamOptions& options() const { return options_; }
  void set_learning_rate(double lr);

  // State: first and second moments per parameter and the step count t.
  const std::vector<Eigen::MatrixXd>& first_moment() const { return m_; }
  const std::vector<Eigen::MatrixXd>& second_moment() const { return v_; }
  std::int64_t steps() const { return steps_; }
  // Restores a saved state; checks the number and shapes of the moments.
  void set_state(std::vector<Eigen::MatrixXd> first, std::vector<Eigen::MatrixXd> second, std::int64_t steps);

 private:
  std::vector<Eigen::MatrixXd*> params_, grads_;
  AdamOptions options_;
  std::vector<Eigen::MatrixXd> m_, v_;
  std::int64_t steps_ = 0;
};

}  // namespace xbar::training
