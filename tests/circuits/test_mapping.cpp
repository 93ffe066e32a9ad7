// Mapping round trip: weights -> conductances -> ideal column currents -> outputs = W_rep x.
#include <gtest/gtest.h>

#include <cmath>

#include "circuits/direct_solver.hpp"
#include "circuits/mapping.hpp"
#include "circuits/workload.hpp"
#include "core/random.hpp"

using namespace xbar;

namespace {

struct Case {
  core::MappingScheme scheme;
  int slices;
  int bits_per_slice;
};

Eigen::MatrixXd round_trip(const circuits::Mapping& mapping, const Eigen::MatrixXd& w, const Eigen::MatrixXd& x,
                           double volts_per_input) {
  const Eigen::MatrixXd g = mapping.target_conductances(w);
  const Eigen::MatrixXd i_cols = circuits::ideal_currents(g, x * volts_per_input);
  return mapping.outputs_from_channels(mapping.channel_currents(i_cols), x, volts_per_input);
}

}  // namespace

TEST(Mapping, RoundTripGivesRepresentedWeightsTimesInputs) {
  const std::vector<Case> cases = {{core::MappingScheme::differential, 1, 0},
                                   {core::MappingScheme::reference, 1, 0},
                                   {core::MappingScheme::differential, 1, 4},
                                   {core::MappingScheme::differential, 3, 2},
                                   {core::MappingScheme::reference, 2, 3}};
  core::RandomStream rng(3, "mapping");
  for (const Case& c : cases) {
    core::MappingOptions options;
    options.scheme = c.scheme;
    options.w_max = 0.8;
    options.slices = c.slices;
    options.bits_per_slice = c.bits_per_slice;
    const int rows = 10, cols = 40;
    const int outputs = core::outputs_that_fit(options, cols);
    const circuits::Mapping mapping(options, 2e-6, 30e-6, rows, cols, outputs);
    core::MatrixSource uniform;
    const Eigen::MatrixXd w = circuits::random_matrix(outputs, rows, uniform, rng);  // some beyond w_max
    const Eigen::MatrixXd x = circuits::random_matrix(rows, 3, uniform, rng);
    const Eigen::MatrixXd w_rep = mapping.represented_weights(w);
    const Eigen::MatrixXd y = round_trip(mapping, w, x, 0.25);
    EXPECT_LT((y - w_rep * x).cwiseAbs().maxCoeff(), 1e-12) << "slices " << c.slices;
    // Represented weights are the clipped weights, within half a quantisation step.
    const double levels = c.bits_per_slice ? std::pow(2.0, c.bits_per_slice * c.slices) - 1 : 0;
    const double span = c.scheme == core::MappingScheme::differential ? 0.8 : 1.6;
    const double step = levels > 0 ? span / levels : 0.0;
    const Eigen::MatrixXd clipped = w.cwiseMax(-0.8).cwiseMin(0.8);
    EXPECT_LE((w_rep - clipped).cwiseAbs().maxCoeff(), step / 2 + 1e-12) << "slices " << c.slices;
  }
}

TEST(Mapping, DifferentialPairsHoldSignOnOneColumnAndGminOnTheOther) {
  core::MappingOptions options;
  options.w_max = 1.0;
  const circuits::Mapping mapping(options, 1e-6, 11e-6, 2, 4, 2);
  Eigen::MatrixXd w(2, 2);
  w << 0.5, -1.0, 0.0, 2.0;
  const Eigen::MatrixXd g = mapping.target_conductances(w);
  // Output 0 on columns 0 (+) and 1 (-); output 1 on columns 2 and 3.
  EXPECT_DOUBLE_EQ(g(0, 0), 6e-6);
  EXPECT_DOUBLE_EQ(g(0, 1), 1e-6);
  EXPECT_DOUBLE_EQ(g(1, 0), 1e-6);
  EXPECT_DOUBLE_EQ(g(1, 1), 11e-6);
  EXPECT_DOUBLE_EQ(g(0, 2), 1e-6);
  EXPECT_DOUBLE_EQ(g(0, 3), 1e-6);
  EXPECT_DOUBLE_EQ(g(1, 2), 11e-6);  // clipped to w_max
  EXPECT_EQ(mapping.column_sign(), (std::vector<int>{1, -1, 1, -1}));
  EXPECT_EQ(mapping.column_output(), (std::vector<int>{0, 0, 1, 1}));
}

TEST(Mapping, ReferenceSchemeUsesLastColumnAtGmin) {
  core::MappingOptions options;
  options.scheme = core::MappingScheme::reference;
  const circuits::Mapping mapping(options, 1e-6, 11e-6, 3, 5, 3);
  Eigen::MatrixXd w = Eigen::MatrixXd::Zero(3, 3);
  w(1, 2) = -1.0;
  const Eigen::MatrixXd g = mapping.target_conductances(w);
  EXPECT_DOUBLE_EQ(g(0, 0), 6e-6);   // w = 0 sits mid-range
  EXPECT_DOUBLE_EQ(g(2, 1), 1e-6);   // w = -w_max at g_min
  EXPECT_DOUBLE_EQ(g(0, 3), 1e-6);   // unused column
  EXPECT_TRUE((g.col(4).array() == 1e-6).all());  // reference
  EXPECT_EQ(mapping.column_sign()[4], 0);
  EXPECT_EQ(mapping.column_output()[3], -1);
}

TEST(Mapping, SlicesHoldBaseLDigitsMostSignificantFirst) {
  core::MappingOptions options;
  options.slices = 2;
  options.bits_per_slice = 2;  // L = 4, N = 15
  options.w_max = 15.0;
  const circuits::Mapping mapping(options, 0.0, 3e-6, 1, 4, 1);
  Eigen::MatrixXd w(1, 1);
  w << 9.0;  // 9 = 2*4 + 1
  const Eigen::MatrixXd g = mapping.target_conductances(w);
  EXPECT_NEAR(g(0, 0), 2e-6, 1e-20);  // slice 0 positive column: digit 2 of 3
  EXPECT_NEAR(g(0, 2), 1e-6, 1e-20);  // slice 1 positive column: digit 1 of 3
  EXPECT_EQ(g(0, 1), 0.0);
  EXPECT_EQ(g(0, 3), 0.0);
}
