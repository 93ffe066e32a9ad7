#include "circuits/cell_model.hpp"

#include <cmath>

#include "circuits/nodal.hpp"

namespace xbar::circuits {

void cell_current(double g, double v, const CellModel& model, double& current, double& di_dv) {
  if (model.linear()) {
    di_dv = series_conductance(g, model.r_access);
    current = di_dv * v;
    return;
  }
  if (model.r_access <= 0) {
    model.iv->current(g, v, current, di_dv);
    return;
  }
  // Device voltage u with u + r I(u) = v: start from the linear split at the small-signal
  // conductance and iterate Newton on h(u) = u + r I(u) - v (h' = 1 + r I'(u) >= 1).
  const double r = model.r_access;
  double i0 = 0, g0 = 0;
  model.iv->current(g, 0.0, i0, g0);
  double u = v / (1.0 + r * g0);
  double derivative = g0;
  for (int k = 0; k < 60; ++k) {
    model.iv->current(g, u, current, derivative);
    const double step = (u + r * current - v) / (1.0 + r * derivative);
    u -= step;
    if (std::fabs(step) <= 1e-15 * std::fabs(v) + 1e-300) break;
  }
  model.iv->current(g, u, current, derivative);
  di_dv = derivative / (1.0 + r * derivative);
}

Eigen::MatrixXd small_signal_conductance(const Eigen::MatrixXd& g_device, const CellModel& model) {
  return g_device.unaryExpr([&model](double g) {
    double current = 0, di_dv = 0;
    cell_current(g, 0.0, model, current, di_dv);
    return di_dv;
  });
}

Eigen::MatrixXd ideal_currents(const Eigen::MatrixXd& g_device, const Eigen::MatrixXd& v_in, const CellModel& model) {
  if (model.linear()) return series_conductance(g_device, model.r_access).transpose() * v_in;
  Eigen::MatrixXd i_out = Eigen::MatrixXd::Zero(g_device.cols(), v_in.cols());
  for (Eigen::Index b = 0; b < v_in.cols(); ++b)
    for (Eigen::Index i = 0; i < g_device.rows(); ++i)
      for (Eigen::Index j = 0; j < g_device.cols(); ++j) {
        double current = 0, di_dv = 0;
        cell_current(g_device(i, j), v_in(i, b), model, current, di_dv);
        i_out(j, b) += current;
      }
  return i_out;
}

}  // namespace xbar::circuits
