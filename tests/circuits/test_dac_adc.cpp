#include <gtest/gtest.h>

#include <cmath>

#include "circuits/adc.hpp"
#include "circuits/dac.hpp"

using namespace xbar;

namespace {

core::DacOptions dac_options(int bits, core::Encoding encoding) {
  core::DacOptions o;
  o.bits = bits;
  o.v_read = 0.2;
  o.input_max = 2.0;
  o.encoding = encoding;
  return o;
}

core::AdcOptions adc_options(int bits) {
  core::AdcOptions o;
  o.bits = bits;
  o.range = core::AdcRange::fixed;
  o.i_max = 1e-4;
  return o;
}

circuits::Adc make_adc(const core::AdcOptions& options, int channels, std::uint64_t seed = 1) {
  core::RandomStream rng(seed, "adc_errors");
  return circuits::Adc(options, channels, 1e-4, rng);
}

}  // namespace

TEST(Dac, AmplitudeQuantisesToSymmetricCodesAndClips) {
  const circuits::Dac dac(dac_options(4, core::Encoding::amplitude));  // Q = 7
  Eigen::MatrixXd x(5, 1);
  x << 0.0, 1.0, -0.3, 2.5, -9.0;
  const Eigen::MatrixXd v = dac.voltages(x, 0);
  EXPECT_DOUBLE_EQ(v(0, 0), 0.0);
  EXPECT_DOUBLE_EQ(v(1, 0), std::nearbyint(0.5 * 7) / 7 * 0.2);  // 1.0 / input_max = 0.5 -> code 4
  EXPECT_DOUBLE_EQ(v(2, 0), -1.0 / 7 * 0.2);                     // -0.15 * 7 = -1.05 -> -1
  EXPECT_DOUBLE_EQ(v(3, 0), 0.2);                                // clipped
  EXPECT_DOUBLE_EQ(v(4, 0), -0.2);
  const Eigen::MatrixXd xq = dac.quantize(x);
  EXPECT_DOUBLE_EQ(xq(1, 0), 4.0 / 7 * 2.0);
  EXPECT_DOUBLE_EQ(xq(3, 0), 2.0);
  EXPECT_EQ(dac.planes(), 1);
}

TEST(Dac, IdealDacOnlyScalesAndClips) {
  const circuits::Dac dac(dac_options(0, core::Encoding::amplitude));
  Eigen::MatrixXd x(3, 1);
  x << 0.123456789, -1.9, 3.0;
  const Eigen::MatrixXd v = dac.voltages(x, 0);
  EXPECT_DOUBLE_EQ(v(0, 0), 0.123456789 * 0.1);
  EXPECT_DOUBLE_EQ(v(1, 0), -1.9 * 0.1);
  EXPECT_DOUBLE_EQ(v(2, 0), 0.2);
}

TEST(Dac, BitSerialPlanesShiftAndAddToTheAmplitudeCode) {
  const circuits::Dac serial(dac_options(5, core::Encoding::bit_serial));  // Q = 15, 4 planes
  const circuits::Dac amplitude(dac_options(5, core::Encoding::amplitude));
  ASSERT_EQ(serial.planes(), 4);
  Eigen::MatrixXd x(6, 2);
  x << 0.0, 1.7, -0.4, 2.0, 0.93, -2.0, -1.1, 0.05, 0.5, -0.5, 1.3, -1.3;
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(6, 2);
  for (int p = 0; p < serial.planes(); ++p) {
    const Eigen::MatrixXd v = serial.voltages(x, p);
    for (Eigen::Index k = 0; k < v.size(); ++k)  // each plane applies 0 or ±v_read
      EXPECT_TRUE(v.data()[k] == 0.0 || std::fabs(v.data()[k]) == 0.2);
    sum += serial.plane_weight(p) * v;
  }
  EXPECT_LT((sum - amplitude.voltages(x, 0)).cwiseAbs().maxCoeff(), 1e-15);
  EXPECT_LT((sum - serial.quantize(x) * serial.volts_per_input()).cwiseAbs().maxCoeff(), 1e-15);
}

TEST(Adc, QuantisesToNearestCodeAndClipsAtFullScale) {
  const circuits::Adc adc = make_adc(adc_options(4), 1);  // Q = 7, lsb = 1e-4 / 7
  const double lsb = 1e-4 / 7;
  Eigen::MatrixXd i(1, 6), code, i_hat;
  i << 0.0, 0.49 * lsb, 0.51 * lsb, -3.4 * lsb, 20 * lsb, -20 * lsb;
  core::RandomStream noise(1, "noise");
  adc.convert(i, noise, code, i_hat);
  const double expected[] = {0, 0, 1, -3, 7, -7};
  for (int b = 0; b < 6; ++b) {
    EXPECT_EQ(code(0, b), expected[b]) << b;
    EXPECT_DOUBLE_EQ(i_hat(0, b), expected[b] * lsb);
  }
}

TEST(Adc, OffsetAndGainErrorsShiftTheTransfer) {
  core::AdcOptions options = adc_options(0);  // ideal conversion exposes the analog errors
  options.offset_sigma = 1e-6;
  options.gain_sigma = 0.05;
  const circuits::Adc adc = make_adc(options, 3);
  EXPECT_GT(adc.offset().cwiseAbs().maxCoeff(), 0.0);
  EXPECT_GT(adc.gain_error().cwiseAbs().maxCoeff(), 0.0);
  Eigen::MatrixXd i(3, 1), code, i_hat;
  i << 1e-5, -2e-5, 3e-5;
  core::RandomStream noise(1, "noise");
  adc.convert(i, noise, code, i_hat);
  for (int k = 0; k < 3; ++k)
    EXPECT_NEAR(i_hat(k, 0), (1 + adc.gain_error()[k]) * i(k, 0) + adc.offset()[k], 1e-20);
  // Same seed, same errors; another seed, other errors.
  EXPECT_EQ(make_adc(options, 3).offset(), adc.offset());
  EXPECT_NE(make_adc(options, 3, 2).offset(), adc.offset());
}

TEST(Adc, InlMovesCodeCentres) {
  core::AdcOptions options = adc_options(3);  // Q = 3, codes -3..3
  options.inl_lsb = {0, 0, 0, 0, 0.4, 0, 0};   // code +1's centre at 1.4 LSB
  const circuits::Adc adc = make_adc(options, 1);
  const double lsb = 1e-4 / 3;
  Eigen::MatrixXd i(1, 3), code, i_hat;
  i << 0.8 * lsb, 0.6 * lsb, 1.8 * lsb;  // 0.8 is nearer 0 (0.8) than 1.4 (0.6): code 0
  core::RandomStream noise(1, "noise");
  adc.convert(i, noise, code, i_hat);
  EXPECT_EQ(code(0, 0), 1);  // |0.8 - 1.4| = 0.6 < 0.8
  EXPECT_EQ(code(0, 1), 0);  // |0.6 - 1.4| = 0.8 > 0.6
  EXPECT_EQ(code(0, 2), 2);  // |1.8 - 2| = 0.2 < 0.4
  // The periphery does not know the INL: the estimate is the nominal code times lsb.
  EXPECT_DOUBLE_EQ(i_hat(0, 0), lsb);
}

TEST(Adc, NoiseHasTheCardStandardDeviation) {
  core::AdcOptions options = adc_options(0);
  options.noise_sigma = 2e-7;
  const circuits::Adc adc = make_adc(options, 1);
  const int n = 100000;
  Eigen::MatrixXd i = Eigen::MatrixXd::Constant(1, n, 1e-5), code, i_hat;
  core::RandomStream noise(4, "noise");
  adc.convert(i, noise, code, i_hat);
  const double mean = i_hat.mean();
  const double stddev = std::sqrt((i_hat.array() - mean).square().sum() / (n - 1));
  EXPECT_NEAR(mean, 1e-5, 5 * 2e-7 / std::sqrt(n));
  EXPECT_NEAR(stddev, 2e-7, 5 * 2e-7 / std::sqrt(2.0 * n));
}

TEST(Adc, CalibrationSetsEachChannelsRangeToThePercentile) {
  core::AdcOptions options = adc_options(6);
  options.range = core::AdcRange::calibrated;
  options.calibration_percentile = 50;
  circuits::Adc adc = make_adc(options, 2);
  Eigen::MatrixXd currents(2, 5);
  currents << 1, -2, 3, -4, 5, 0, 0, 0, 0, 0;
  adc.calibrate(currents * 1e-6);
  EXPECT_DOUBLE_EQ(adc.range()[0], 3e-6);  // median of |i|
  EXPECT_DOUBLE_EQ(adc.range()[1], 1e-4);  // all zero: falls back to the default full scale
  options.calibration_percentile = 100;
  circuits::Adc max_adc = make_adc(options, 2);
  max_adc.calibrate(currents * 1e-6);
  EXPECT_DOUBLE_EQ(max_adc.range()[0], 5e-6);
}
