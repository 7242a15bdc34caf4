// The "rtn:..." uniform quantizer: bit-identity with the registry's scaled element formats for
// absmax/min-max dynamic scales, and the calibration knobs (percentile, MSE, static) on cases
// computed by hand or by brute force.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "quantizers/quantizer.hpp"

namespace lowbit::quant {
namespace {

MatrixF noisy(int64_t rows, int64_t cols, uint32_t seed, float outlier = 0) {
  MatrixF m(rows, cols);
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < m.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    m.data()[i] = (static_cast<float>(s >> 8) / 16777216.0f - 0.5f) * 3.0f;
  }
  if (outlier != 0)
    for (int64_t r = 0; r < rows; ++r) m(r, 3) *= outlier;
  return m;
}

void expect_bits_equal(const MatrixF& a, const MatrixF& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (int64_t i = 0; i < a.size(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, a.data() + i, 4);
    std::memcpy(&y, b.data() + i, 4);
    ASSERT_EQ(x, y) << what << " element " << i << ": " << a.data()[i] << " vs " << b.data()[i];
  }
}

TEST(Uniform, AbsmaxDynamicEqualsRegistryFormats) {
  const char* pairs[][2] = {
      {"rtn:elem=int4:g16", "int4:g16"},
      {"rtn:elem=int8:row:scale=fp16", "int8:row:scale=fp16"},
      {"rtn:elem=uint4:g32", "uint4:g32"},
      {"rtn:elem=int4:g32:asym:scale=bf16", "int4:g32:asym:scale=bf16"},
      {"rtn:elem=fp8_e4m3:g32:scale=e8m0", "fp8_e4m3:g32:scale=e8m0"},
      {"rtn:elem=fp4_e2m1:g16:scale=e4m3", "fp4_e2m1:g16:scale=e4m3"},
      {"rtn:elem=int4:col", "int4:col"},
      {"rtn:elem=int3:tensor:scale=bf16", "int3:tensor:scale=bf16"},
      {"rtn:elem=int4:g16:round=sr:seed=5", "int4:g16:round=sr:seed=5"},
      {"rtn:elem=int4:g16:round=away", "int4:g16:round=away"},
      {"rtn:elem=uint8:row:round=sr:seed=9", "uint8:row:round=sr:seed=9"},
  };
  for (uint32_t seed : {1u, 2u}) {
    const MatrixF x = noisy(24, 64, seed, seed == 2 ? 40.0f : 0.0f);
    for (const auto& p : pairs) expect_bits_equal(make_quantizer(p[0])->quantize(x), make_quantizer(p[1])->quantize(x), p[0]);
  }
}

TEST(Uniform, BitsPerElementMatchTheRegistry) {
  EXPECT_DOUBLE_EQ(make_quantizer("rtn:elem=int4:g64:scale=fp16")->bits_per_element(8, 256), 4.25);
  EXPECT_DOUBLE_EQ(make_quantizer("rtn:elem=int4:g64:scale=fp16")->bits_per_element(8, 256),
                   make_format("int4:g64:scale=fp16")->bits_per_element({8, 256}));
  EXPECT_DOUBLE_EQ(make_quantizer("rtn:elem=uint4:g32")->bits_per_element(8, 256),
                   make_format("uint4:g32")->bits_per_element({8, 256}));
  // Static group scales are shared by all rows: 16 bits per 64 columns over 8 rows.
  EXPECT_DOUBLE_EQ(make_quantizer("rtn:elem=int4:g64:scale=fp16:static")->bits_per_element(8, 256),
                   4.0 + 16.0 * 4 / (8 * 256));
}

TEST(Uniform, PercentileClipFollowsNumpyLinearInterpolation) {
  MatrixF x(1, 101);
  for (int i = 0; i < 101; ++i) x(0, i) = static_cast<float>(i + 1);  // |x| = 1..101
  // np.percentile(1..101, 90) = 91 exactly; int4 q_max 7 -> s = 13, 101 clips to 91.
  const MatrixF q = make_quantizer("rtn:elem=int4:row:clip=p90")->quantize(x);
  EXPECT_FLOAT_EQ(q(0, 100), 91.0f);
  EXPECT_FLOAT_EQ(q(0, 12), 13.0f);
  // p99.5: pos 99.5 -> 100.5.
  const MatrixF q2 = make_quantizer("rtn:elem=int8:row:clip=p99.5")->quantize(x);
  EXPECT_FLOAT_EQ(q2(0, 100), 100.5f / 127.0f * 127.0f);
}

TEST(Uniform, MseClipIsTheBestOfTheShrinkGrid) {
  const MatrixF x = noisy(1, 256, 7, 0);
  const MatrixF xo = x.array().cube().matrix();  // heavy-tailed: clipping the tail pays
  const double e_abs = sq_diff(xo, make_quantizer("rtn:elem=int4:row")->quantize(xo));
  const double e_mse = sq_diff(xo, make_quantizer("rtn:elem=int4:row:clip=mse")->quantize(xo));
  EXPECT_LT(e_mse, e_abs);
  // Brute force over c = 1 - i/100: the search's choice is the minimum.
  double best = 1e300;
  const float amax = xo.cwiseAbs().maxCoeff();
  for (int i = 0; i <= 80; ++i) {
    const float s = amax * (1.0f - static_cast<float>(i) / 100.0f) / 7.0f;
    double e = 0;
    for (int64_t c = 0; c < xo.cols(); ++c) {
      const float q = s * std::clamp(std::nearbyint(xo(0, c) / s), -7.0f, 7.0f);
      e += (static_cast<double>(xo(0, c)) - q) * (static_cast<double>(xo(0, c)) - q);
    }
    best = std::min(best, e);
  }
  EXPECT_DOUBLE_EQ(e_mse, best);
}

TEST(Uniform, StaticScalesAreFrozenAtCalibration) {
  const MatrixF x = noisy(16, 32, 3);
  const QuantizerPtr cal = make_quantizer("rtn:elem=int8:tensor:static")->calibrate(x);
  const MatrixF q = cal->quantize(2.0f * x);
  EXPECT_FLOAT_EQ(q.maxCoeff(), x.maxCoeff() > -x.minCoeff() ? x.cwiseAbs().maxCoeff() : q.maxCoeff());
  EXPECT_LE(q.cwiseAbs().maxCoeff(), x.cwiseAbs().maxCoeff() * (1 + 1e-6f));
  // Dynamic scales follow the input instead.
  EXPECT_GT(make_quantizer("rtn:elem=int8:tensor")->quantize(2.0f * x).cwiseAbs().maxCoeff(),
            1.9f * x.cwiseAbs().maxCoeff());
  // Static column scales: max over all calibration rows per column.
  const QuantizerPtr col = make_quantizer("rtn:elem=int4:col:static")->calibrate(x);
  const MatrixF qc = col->quantize(x.topRows(2));
  for (int64_t c = 0; c < x.cols(); ++c) {
    const float s = x.col(c).cwiseAbs().maxCoeff() / 7.0f;
    EXPECT_FLOAT_EQ(qc(0, c), s * std::nearbyint(x(0, c) / s));
  }
  // Per-row static scales only fit the same rows.
  const QuantizerPtr row = make_quantizer("rtn:elem=int8:row:static")->calibrate(x);
  EXPECT_THROW(row->quantize(x.topRows(3)), Error);
  EXPECT_THROW(make_quantizer("rtn:elem=int8:tensor:static")->calibrate(x.cwiseQuotient(x - x)), Error);
}

TEST(Uniform, NanPoisonsOnlyItsGroupAndBadShapesThrow) {
  MatrixF x = noisy(2, 32, 4);
  x(1, 17) = std::nanf("");
  const MatrixF q = make_quantizer("rtn:elem=int4:g16")->quantize(x);
  for (int c = 0; c < 32; ++c) {
    EXPECT_EQ(std::isnan(q(1, c)), c >= 16) << c;
    EXPECT_FALSE(std::isnan(q(0, c)));
  }
  try {
    make_quantizer("rtn:elem=int4:g24")->quantize(x);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisors: 1, 2, 4, 8, 16, 32"), std::string::npos) << e.what();
  }
}

TEST(Uniform, BadSpecsAreRejected) {
  for (const char* s : {"rtn:elem=int1", "rtn:elem=int17", "rtn:elem=foo", "rtn:g16:row", "rtn:elem=fp8_e4m3:asym",
                        "rtn:clip=p20", "rtn:clip=pxx", "rtn:clip=wide", "rtn:norm=2", "rtn:clip=mse:norm=0",
                        "rtn:scale=e5m2", "rtn:round=sideways", "rtn:bogus", "rtn:elem=e8m0"})
    EXPECT_THROW(make_quantizer(s), Error) << s;
  EXPECT_NO_THROW(make_quantizer("rtn:elem=fp6_e2m3:g32:clip=mse:norm=2.4:scale=e8m0:static:round=even"));
}

}  // namespace
}  // namespace lowbit::quant
