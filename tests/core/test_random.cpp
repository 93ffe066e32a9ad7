#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/random.hpp"

using xbar::core::RandomStream;

TEST(RandomStream, SameSeedPurposeAndIndicesGiveSameNumbers) {
  RandomStream a(42, "programming", {0, 3}), b(42, "programming", {0, 3});
  for (int k = 0; k < 100; ++k) EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(RandomStream, DifferentPurposeIndexOrSeedGiveDifferentNumbers) {
  const auto first = [](RandomStream s) { return s.next_u64(); };
  const auto base = first(RandomStream(42, "programming", {0, 3}));
  EXPECT_NE(base, first(RandomStream(43, "programming", {0, 3})));
  EXPECT_NE(base, first(RandomStream(42, "read_noise", {0, 3})));
  EXPECT_NE(base, first(RandomStream(42, "programming", {0, 4})));
  EXPECT_NE(base, first(RandomStream(42, "programming", {3, 0})));
  EXPECT_NE(base, first(RandomStream(42, "programming", {0, 3, 0})));
}

TEST(RandomStream, DerivedStreamsAreReproducibleAndDistinct) {
  RandomStream parent(7, "tile");
  EXPECT_EQ(parent.derive("a", {1}).next_u64(), RandomStream(7, "tile").derive("a", {1}).next_u64());
  EXPECT_NE(parent.derive("a", {1}).next_u64(), parent.derive("a", {2}).next_u64());
}

TEST(RandomStream, UniformHasExpectedMomentsWithinSamplingError) {
  RandomStream rng(1, "test");
  const int n = 200000;
  double sum = 0, sum2 = 0;
  for (int k = 0; k < n; ++k) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum2 += u * u;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(var, 1.0 / 12, 5 * std::sqrt(1.0 / 180.0 / n));
}

TEST(RandomStream, NormalHasExpectedMomentsAndTails) {
  RandomStream rng(2, "test");
  const int n = 200000;
  double sum = 0, sum2 = 0, sum4 = 0;
  int beyond2 = 0;
  for (int k = 0; k < n; ++k) {
    const double z = rng.normal();
    sum += z;
    sum2 += z * z;
    sum4 += z * z * z * z;
    beyond2 += std::fabs(z) > 2.0;
  }
  const double tol = 5.0 / std::sqrt(n);
  EXPECT_NEAR(sum / n, 0.0, tol);
  EXPECT_NEAR(sum2 / n, 1.0, tol * std::sqrt(2.0));
  EXPECT_NEAR(sum4 / n, 3.0, tol * std::sqrt(96.0));
  const double p2 = 0.0455002638963584;  // P(|Z| > 2)
  EXPECT_NEAR(static_cast<double>(beyond2) / n, p2, 5 * std::sqrt(p2 * (1 - p2) / n));
}
