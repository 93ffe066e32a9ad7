// Nonlinear cell I-V characteristics: the sinh filament conduction and the polynomial (Milo 2021 form).
#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>

#include "devices/cell_iv.hpp"

using namespace xbar;

namespace {

constexpr double kUs = 1e-6;

double current(const devices::CellIv& iv, double g, double v) {
  double i = 0, di_dv = 0;
  iv.current(g, v, i, di_dv);
  return i;
}

double slope(const devices::CellIv& iv, double g, double v) {
  double i = 0, di_dv = 0;
  iv.current(g, v, i, di_dv);
  return di_dv;
}

// Central difference with a step small against the curvature scale, compared relatively.
void expect_derivative_matches_finite_difference(const devices::CellIv& iv, double g, double v, double h) {
  const double numeric = (current(iv, g, v + h) - current(iv, g, v - h)) / (2 * h);
  EXPECT_NEAR(slope(iv, g, v), numeric, 1e-7 * std::abs(numeric)) << "g=" << g << " v=" << v;
}

double number(const std::string& text) { return std::stod(text); }

// ------------------------------------------------------------------------------------------
// sinh

TEST(SinhIv, ReadConductanceIsExactAtTheReadVoltage) {
  for (double v0 : {0.1, 0.25, 0.4}) {
    for (double v_read : {0.05, 0.2, 0.3}) {
      const auto iv = devices::make_sinh_iv(v0, v_read);
      for (double g : {1 * kUs, 40 * kUs, 200 * kUs}) {
        EXPECT_NEAR(current(*iv, g, v_read), g * v_read, 1e-14 * g * v_read) << "v0=" << v0 << " v_read=" << v_read;
      }
    }
  }
}

TEST(SinhIv, FollowsTheSinhLawAndIsOddInVoltage) {
  const double v0 = 0.25, v_read = 0.2, g = 30 * kUs;
  const auto iv = devices::make_sinh_iv(v0, v_read);
  for (double v : {0.0, 0.01, 0.1, 0.35, 0.8}) {
    const double expected = g * v_read * std::sinh(v / v0) / std::sinh(v_read / v0);
    EXPECT_NEAR(current(*iv, g, v), expected, 1e-14 * std::abs(expected) + 1e-30) << v;
    EXPECT_DOUBLE_EQ(current(*iv, g, -v), -current(*iv, g, v)) << v;
    EXPECT_DOUBLE_EQ(slope(*iv, g, -v), slope(*iv, g, v)) << v;
  }
  // Superlinear: below v_read the chord conductance is below g, above it is larger.
  EXPECT_LT(current(*iv, g, 0.1) / 0.1, g);
  EXPECT_GT(current(*iv, g, 0.4) / 0.4, g);
  // Small-signal conductance at 0 V.
  EXPECT_NEAR(slope(*iv, g, 0.0), g * (v_read / v0) / std::sinh(v_read / v0), 1e-14 * g);
}

TEST(SinhIv, DerivativeMatchesCentralFiniteDifference) {
  const auto iv = devices::make_sinh_iv(0.25, 0.2);
  for (double v : {-0.6, -0.2, 0.0, 0.05, 0.2, 0.45, 0.9}) expect_derivative_matches_finite_difference(*iv, 25 * kUs, v, 1e-5);
}

TEST(SinhIv, SpiceExpressionCarriesTheCoefficientsAndEvaluatesToTheCurrent) {
  const double v0 = 0.25, v_read = 0.2, g = 30 * kUs;
  const auto iv = devices::make_sinh_iv(v0, v_read);
  const std::string expression = iv->spice_current(g, "V(w_0_0,b_0_0)");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(expression, m, std::regex(R"(^\s*([-+0-9.eE]+)\s*\*\s*sinh\(\s*\((.*)\)\s*/\s*([-+0-9.eE]+)\s*\)\s*$)")))
      << expression;
  EXPECT_EQ(m[2].str(), "V(w_0_0,b_0_0)");
  const double amplitude = number(m[1]), v0_text = number(m[3]);
  EXPECT_NEAR(amplitude, g * v_read / std::sinh(v_read / v0), 1e-15 * amplitude);
  EXPECT_DOUBLE_EQ(v0_text, v0);
  for (double v : {-0.3, 0.1, 0.5}) {
    EXPECT_NEAR(amplitude * std::sinh(v / v0_text), current(*iv, g, v), 1e-14 * std::abs(current(*iv, g, v))) << v;
  }
}

TEST(SinhIv, RejectsNonPositiveParameters) {
  EXPECT_THROW(devices::make_sinh_iv(0.0, 0.2), std::invalid_argument);
  EXPECT_THROW(devices::make_sinh_iv(-0.25, 0.2), std::invalid_argument);
  EXPECT_THROW(devices::make_sinh_iv(0.25, 0.0), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------
// The polynomial I-V (the form of Milo et al. IRPS 2021), here with NL2 = 0.3 G0 / V, NL3 = 1.5 G0 / V^2

// NL2 and NL3 recovered from the characteristic itself (even and odd parts at +-v).
void recover_nl(const devices::CellIv& iv, double g0, double& nl2, double& nl3) {
  const double v = 0.25;
  const double plus = current(iv, g0, v), minus = current(iv, g0, -v);
  nl2 = 0.5 * (plus + minus) / (v * v);
  nl3 = (0.5 * (plus - minus) - g0 * v) / (v * v * v);
}

TEST(PolynomialIv, IsTheCubicPolynomialWithLinearTermG0) {
  const auto iv = devices::make_polynomial_iv(0.3, 1.5, 0.5);
  for (double g0 : {50 * kUs, 120 * kUs, 225 * kUs}) {
    EXPECT_EQ(current(*iv, g0, 0.0), 0.0);
    EXPECT_NEAR(slope(*iv, g0, 0.0), g0, 1e-15 * g0);
    double nl2 = 0, nl3 = 0;
    recover_nl(*iv, g0, nl2, nl3);
    for (double v : {-0.5, -0.37, -0.1, 0.03, 0.2, 0.44, 0.5}) {
      const double expected = g0 * v + nl2 * v * v + nl3 * v * v * v;
      EXPECT_NEAR(current(*iv, g0, v), expected, 1e-12 * g0 * std::abs(v)) << "G0=" << g0 << " V=" << v;
    }
    EXPECT_NEAR(nl2, 0.3 * g0, 1e-12 * g0);
    EXPECT_NEAR(nl3, 1.5 * g0, 1e-10 * g0);
  }
}

TEST(PolynomialIv, DerivativeMatchesCentralFiniteDifference) {
  const auto iv = devices::make_polynomial_iv(0.3, 1.5, 0.5);
  for (double g0 : {50 * kUs, 225 * kUs}) {
    for (double v : {-0.5, -0.2, 0.0, 0.1, 0.3, 0.5}) {
      const double h = 1e-5;
      const double numeric = (current(*iv, g0, v + h) - current(*iv, g0, v - h)) / (2 * h);
      // A cubic: the central difference is exact up to NL3 h^2 and rounding.
      EXPECT_NEAR(slope(*iv, g0, v), numeric, 1e-9 * g0) << "G0=" << g0 << " V=" << v;
    }
  }
}

TEST(PolynomialIv, ValidUpToHalfAVolt) { EXPECT_DOUBLE_EQ(devices::make_polynomial_iv(0.3, 1.5, 0.5)->max_voltage(), 0.5); }

TEST(PolynomialIv, SpiceExpressionCarriesTheCoefficientsAndEvaluatesToTheCurrent) {
  const auto iv = devices::make_polynomial_iv(0.3, 1.5, 0.5);
  const double g0 = 100 * kUs;
  const std::string v = "V(w_1_2,b_1_2)";
  const std::string expression = iv->spice_current(g0, v);
  const std::string num = R"(([-+0-9.eE]+))";
  const std::string var = R"(\(V\(w_1_2,b_1_2\)\))";
  std::smatch m;
  ASSERT_TRUE(std::regex_match(expression, m,
                               std::regex("^\\s*" + num + "\\s*\\*\\s*" + var + "\\s*\\+\\s*" + num + "\\s*\\*\\s*" +
                                          var + "\\s*\\*\\s*" + var + "\\s*\\+\\s*" + num + "\\s*\\*\\s*" + var +
                                          "\\s*\\*\\s*" + var + "\\s*\\*\\s*" + var + "\\s*$")))
      << expression;
  double nl2 = 0, nl3 = 0;
  recover_nl(*iv, g0, nl2, nl3);
  EXPECT_DOUBLE_EQ(number(m[1]), g0);
  EXPECT_NEAR(number(m[2]), nl2, 1e-12 * g0);
  EXPECT_NEAR(number(m[3]), nl3, 1e-10 * g0);
  for (double u : {-0.4, 0.15, 0.5}) {
    const double evaluated = number(m[1]) * u + number(m[2]) * u * u + number(m[3]) * u * u * u;
    EXPECT_NEAR(evaluated, current(*iv, g0, u), 1e-14 * g0) << u;
  }
}

}  // namespace
