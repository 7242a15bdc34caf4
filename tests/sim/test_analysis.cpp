// Tests for sim/analysis.hpp: hand-computed metrics (cosine, relative MSE, SQNR, small-magnitude
// error and flush-to-zero fraction), NaN/Inf and empty-input handling, code entropy (whole-code
// and bit-wise) on hand-made histograms and on a packed int4 tensor, and the LZS FLAG histogram.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "sim/analysis.hpp"

namespace {

using lowbit::analyze_output;
using lowbit::analyze_tensor;
using lowbit::code_entropy;

constexpr float kNanF = std::numeric_limits<float>::quiet_NaN();
constexpr float kInfF = std::numeric_limits<float>::infinity();

TEST(AnalysisTest, CosineOfOrthogonalVectorsIsZero) {
  const std::vector<float> x{1, 0, 0, 0}, q{0, 1, 0, 0};
  const auto a = analyze_tensor(x, q);
  EXPECT_EQ(a.cosine, 0.0);
  EXPECT_DOUBLE_EQ(a.rel_mse, 2.0);  // Σ(x − q)² = 2, Σx² = 1
  EXPECT_DOUBLE_EQ(a.max_abs, 1.0);
  const auto b = analyze_tensor(x, x);
  EXPECT_DOUBLE_EQ(b.cosine, 1.0);
  EXPECT_TRUE(std::isinf(b.sqnr_db));
  const std::vector<float> neg{-1, 0, 0, 0};
  EXPECT_DOUBLE_EQ(analyze_tensor(x, neg).cosine, -1.0);
}

TEST(AnalysisTest, HandComputedMetrics) {
  const std::vector<float> x{1, 2, 3, 4}, q{1, 2, 3, 5};
  const auto a = analyze_tensor(x, q);
  EXPECT_EQ(a.count, 4);
  EXPECT_DOUBLE_EQ(a.mse, 0.25);
  EXPECT_DOUBLE_EQ(a.rel_mse, 1.0 / 30.0);
  EXPECT_NEAR(a.sqnr_db, 10.0 * std::log10(30.0), 1e-12);
  EXPECT_NEAR(a.cosine, 34.0 / (std::sqrt(30.0) * std::sqrt(39.0)), 1e-15);
  EXPECT_DOUBLE_EQ(a.mean_abs, 0.25);
  EXPECT_DOUBLE_EQ(a.zero_fraction, 0.0);
}

TEST(AnalysisTest, SmallMagnitudeErrorAndFlushedFraction) {
  // The 3 smallest |x|: 0.05 (index 4), 0.1 (0), -0.2 (1); 0.05 and 0.1 are flushed to 0.
  const std::vector<float> x{0.1f, -0.2f, 5, 6, 0.05f, 7}, q{0, -0.25f, 5, 6, 0, 7};
  const auto a = analyze_tensor(x, q);
  EXPECT_EQ(a.small_count, 3);
  EXPECT_FLOAT_EQ(static_cast<float>(a.small_threshold), 0.2f);
  EXPECT_EQ(a.small_nonzero, 3);
  EXPECT_DOUBLE_EQ(a.small_flushed, 2.0 / 3.0);
  const double x0 = 0.1f, x1 = -0.2f, x4 = 0.05f, d1 = x1 - double(-0.25f);
  EXPECT_NEAR(a.small_rel_mse, (x0 * x0 + d1 * d1 + x4 * x4) / (x0 * x0 + x1 * x1 + x4 * x4), 1e-15);
  EXPECT_DOUBLE_EQ(a.zero_fraction, 2.0 / 6.0);
}

TEST(AnalysisTest, SmallSetIsUniqueUnderTies) {
  // Many equal |x|: the set is the floor(n/2) first by index, so exact zeros stay out of the
  // flushed fraction (x = 0 has nothing to flush).
  const std::vector<float> x{0, 0, 0, 1, 1, 1, 1, 1}, q{0, 0, 0, 0, 1, 1, 1, 1};
  const auto a = analyze_tensor(x, q);
  EXPECT_EQ(a.small_count, 4);
  EXPECT_EQ(a.small_nonzero, 1);  // index 3
  EXPECT_DOUBLE_EQ(a.small_flushed, 1.0);
  EXPECT_DOUBLE_EQ(a.small_threshold, 1.0);
  EXPECT_DOUBLE_EQ(a.small_rel_mse, 1.0);
}

TEST(AnalysisTest, NonFiniteValuesAreCountedAndLeftOut) {
  const std::vector<float> x{kNanF, 1, 2, kInfF, 3}, q{0, 1, kInfF, 4, 3};
  const auto a = analyze_tensor(x, q);
  EXPECT_EQ(a.skipped, 2);
  EXPECT_EQ(a.nonfinite_out, 1);
  EXPECT_EQ(a.count, 2);
  EXPECT_DOUBLE_EQ(a.cosine, 1.0);
  EXPECT_EQ(a.mse, 0.0);
  const std::vector<float> all_nan{kNanF, kNanF};
  const auto b = analyze_tensor(all_nan, all_nan);
  EXPECT_EQ(b.count, 0);
  EXPECT_TRUE(std::isnan(b.rel_mse));
  EXPECT_TRUE(std::isnan(b.cosine));
  // JSON writes the undefined values as null.
  EXPECT_TRUE(lowbit::to_json(b)["rel_mse"].is_null());
}

TEST(AnalysisTest, ZeroSignalGivesNanRatios) {
  const std::vector<float> x{0, 0, 0}, q{0, 1, 0};
  const auto a = analyze_tensor(x, q);
  EXPECT_TRUE(std::isnan(a.rel_mse));
  EXPECT_TRUE(std::isnan(a.cosine));
  EXPECT_TRUE(std::isnan(a.sqnr_db));
  EXPECT_DOUBLE_EQ(a.mse, 1.0 / 3.0);
}

TEST(AnalysisTest, BadInputsThrow) {
  const std::vector<float> a{1, 2}, b{1};
  EXPECT_THROW(analyze_tensor(a, b), lowbit::Error);
  EXPECT_THROW(analyze_tensor(std::vector<float>{}, std::vector<float>{}), lowbit::Error);
  lowbit::quant::MatrixF y(2, 3), z(3, 2);
  y.setZero();
  z.setZero();
  EXPECT_THROW(analyze_output(y, z), lowbit::Error);
  EXPECT_THROW(code_entropy(std::vector<uint32_t>{}, 4), lowbit::Error);
  EXPECT_THROW(code_entropy(std::vector<uint32_t>{16}, 4), lowbit::Error);
  EXPECT_THROW(code_entropy(std::vector<uint32_t>{1}, 0), lowbit::Error);
}

TEST(AnalysisTest, LayerOutputMetrics) {
  lowbit::quant::MatrixF y(2, 2), yh(2, 2);
  y << 1, 0, 0, 1;
  yh << 0, 1, 1, 0;
  const auto a = analyze_output(y, yh);
  EXPECT_EQ(a.count, 4);
  EXPECT_EQ(a.cosine, 0.0);
  EXPECT_DOUBLE_EQ(a.rel_mse, 2.0);
}

TEST(AnalysisTest, EntropyOfUniformHistogramIsLog2OfCodes) {
  std::vector<uint32_t> all16(16);
  std::iota(all16.begin(), all16.end(), 0u);
  const auto e = code_entropy(all16, 4);
  EXPECT_DOUBLE_EQ(e.entropy_bits, 4.0);
  EXPECT_EQ(e.distinct, 16);
  ASSERT_EQ(e.bit_entropy.size(), 4u);
  for (const double b : e.bit_entropy) EXPECT_DOUBLE_EQ(b, 1.0);
  EXPECT_DOUBLE_EQ(e.mean_bit_entropy, 1.0);

  const std::vector<uint32_t> three{0, 1, 2, 2, 1, 0};
  EXPECT_NEAR(code_entropy(three, 4).entropy_bits, std::log2(3.0), 1e-15);
  const std::vector<uint32_t> one{5, 5, 5};
  const auto c = code_entropy(one, 4);
  EXPECT_EQ(c.entropy_bits, 0.0);
  EXPECT_EQ(c.mean_bit_entropy, 0.0);
  EXPECT_EQ(c.distinct, 1);
}

TEST(AnalysisTest, BitWiseEntropy) {
  // Bit 0 is a fair coin, bit 1 never set: per-bit entropies 1 and 0, mean 0.5.
  const auto a = code_entropy(std::vector<uint32_t>{0, 1, 0, 1}, 2);
  EXPECT_DOUBLE_EQ(a.bit_entropy[0], 1.0);
  EXPECT_DOUBLE_EQ(a.bit_entropy[1], 0.0);
  EXPECT_DOUBLE_EQ(a.mean_bit_entropy, 0.5);
  EXPECT_DOUBLE_EQ(a.entropy_bits, 1.0);
  // P(bit = 1) = 1/4: h = −(1/4)log2(1/4) − (3/4)log2(3/4).
  const auto b = code_entropy(std::vector<uint32_t>{0, 0, 0, 1}, 1);
  EXPECT_NEAR(b.bit_entropy[0], 0.25 * 2 + 0.75 * std::log2(4.0 / 3.0), 1e-15);
  // Wide codes: no dense histogram, same entropy.
  const auto w = code_entropy(std::vector<uint32_t>{0x10000u, 7u, 0x10000u, 7u}, 20);
  EXPECT_TRUE(w.histogram.empty());
  EXPECT_DOUBLE_EQ(w.entropy_bits, 1.0);
}

TEST(AnalysisTest, EntropyOfPackedInt4Tensor) {
  // int4:tensor, absmax 7 -> s = 1: codes of -7..7 once each and 0 twice (16 elements).
  std::vector<float> x;
  for (int v = -7; v <= 7; ++v) x.push_back(static_cast<float>(v));
  x.push_back(0.0f);
  const auto f = lowbit::make_format("int4:tensor");
  const auto p = f->encode(x, {4, 4});
  const auto e = code_entropy(*f, p);
  EXPECT_EQ(e.code_bits, 4);
  EXPECT_EQ(e.count, 16);
  EXPECT_EQ(e.distinct, 15);
  EXPECT_EQ(e.histogram[0], 2);
  EXPECT_EQ(e.histogram[8], 0);  // -8 is unused under the symmetric (restricted) range
  EXPECT_DOUBLE_EQ(e.entropy_bits, 14.0 / 16.0 * 4.0 + 2.0 / 16.0 * 3.0);
}

TEST(AnalysisTest, LzsFlagHistogram) {
  // lzs4:g4, s8 = 128/128 = 1: groups with max |q| 5, 100, 8, 20, 40, 127 -> FLAG 0, 4, 1, 2, 3, 4.
  const std::vector<float> x{3,  -2, 5, 0, 100, 3, -2, 10, 8, 1, 0, 0,
                             20, 0,  0, 0, -40, 0, 0,  0,  128, 0, 0, 0};
  const auto f = lowbit::make_format("lzs4:g4");
  const auto p = f->encode(x, {1, 24});
  const auto h = lowbit::lzs_flags(p);
  EXPECT_EQ(h.groups, 6);
  EXPECT_EQ(h.counts, (std::array<int64_t, 5>{1, 1, 1, 1, 2}));
  EXPECT_DOUBLE_EQ(h.p_flag_positive, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(h.fraction[4], 2.0 / 6.0);
  const auto j = lowbit::to_json(h);
  EXPECT_EQ(j["groups"], 6);
  // A non-LZS packed tensor has no flags section.
  const auto g = lowbit::make_format("int4:g4");
  EXPECT_THROW(lowbit::lzs_flags(g->encode(x, {1, 24})), lowbit::Error);
}

}  // namespace
