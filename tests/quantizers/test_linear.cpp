// QuantizedLinear and the RTN baseline on hand-computable cases.
#include <gtest/gtest.h>

#include <cmath>

#include "formats/error.hpp"
#include "quantizers/linear.hpp"

namespace lowbit::quant {
namespace {

MatrixF ramp(int64_t rows, int64_t cols, float scale) {
  MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = scale * static_cast<float>((i * 37) % 23 - 11);
  return m;
}

TEST(Linear, ForwardMatchesDoubleGemm) {
  const MatrixF x = ramp(3, 8, 0.25f), w = ramp(5, 8, 0.5f);
  VectorF b(5);
  b << 1, 2, 3, 4, 5;
  const MatrixF y = linear_forward(x, w, b);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) {
      double acc = b(j);
      for (int k = 0; k < 8; ++k) acc += static_cast<double>(x(i, k)) * w(j, k);
      EXPECT_EQ(y(i, j), static_cast<float>(acc));
    }
}

TEST(Linear, RtnWithNoQuantizersIsExact) {
  LinearProblem p{ramp(4, 16, 0.1f), ramp(6, 16, 0.3f), VectorF(), make_quantizer("none"), make_quantizer("none")};
  const QuantizedLinear q = quantize_linear("rtn", p);
  EXPECT_EQ(calibration_error(p, q), 0.0);
  EXPECT_EQ(q.weight_bits_per_element(), 32.0);
}

TEST(Linear, RtnQuantizesBothSidesWithTheFormat) {
  LinearProblem p{ramp(4, 16, 0.1f), ramp(6, 16, 0.3f), VectorF(), make_quantizer("int4:g8"),
                  make_quantizer("int4:g8")};
  const QuantizedLinear q = quantize_linear("rtn", p);
  const MatrixF want = linear_forward(p.aq->quantize(p.x), p.wq->quantize(p.w));
  EXPECT_EQ(sq_diff(q.forward(p.x), want), 0.0);
  EXPECT_GT(calibration_error(p, q), 0.0);
  EXPECT_DOUBLE_EQ(q.weight_bits, 4.0 + 32.0 / 8);  // int4 codes + one fp32 scale per 8
}

// float32_products: the same layer with float32 GEMMs. Each output differs from the float64
// path by at most the float32 accumulation error (K + r + 2)·2⁻²⁴ of its magnitudes, plus one fp16
// step of the branch's rounded product (float vs double before the fp16 rounding can land on
// either side of a rounding boundary), plus the final rounding.
TEST(Linear, Float32ProductsAgreeWithFloat64ToFloatRounding) {
  const int64_t b = 64, m = 256, n = 128, r = 8;
  MatrixF x = ramp(b, m, 0.01f), w = ramp(n, m, 0.02f);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] += 0.003f * static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] *= 1.0f + 0.5f * static_cast<float>(std::cos(0.11 * static_cast<double>(i)));
  VectorF bias = ramp(1, n, 0.05f).row(0).transpose();
  LinearProblem p{x, w, bias, make_quantizer("int4:g64"), make_quantizer("int4:g64")};
  QuantizedLinear q = quantize_linear("svdquant:rank=8:smooth=0.5", p);
  ASSERT_EQ(q.rank(), r);
  const MatrixF y64 = q.forward(x);
  q.float32_products = true;
  const MatrixF y32 = q.forward(x);
  const MatrixF xt = q.transform(x);
  const MatrixD a = q.act->quantize(xt).cast<double>().cwiseAbs() * q.weight.cast<double>().cwiseAbs().transpose();
  const MatrixD down = round_fp16(xt).cast<double>() * q.lr_down.cast<double>().transpose();
  const MatrixD br = down.cwiseAbs() * q.lr_up.cast<double>().cwiseAbs().transpose();
  const double u = std::ldexp(1.0, -24);
  int differ = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const double d = std::fabs(static_cast<double>(y32(i, j)) - y64(i, j));
      const double bound = static_cast<double>(m + r + 2) * u * (a(i, j) + br(i, j) + std::fabs(bias(j))) +
                           std::ldexp(1.0, -10) * br(i, j) + u * std::fabs(static_cast<double>(y64(i, j)));
      EXPECT_LE(d, bound) << i << "," << j;
      differ += d > 0;
    }
  EXPECT_GT(differ, 0);  // the float32 path is a different computation
}

TEST(Linear, LowRankBranchBitsAreCounted) {
  QuantizedLinear q;
  q.weight = MatrixF::Zero(64, 128);
  q.lr_up = MatrixF::Zero(64, 8);
  q.lr_down = MatrixF::Zero(8, 128);
  q.weight_bits = 4.25;
  EXPECT_DOUBLE_EQ(q.weight_bits_per_element(), 4.25 + 16.0 * 8 * (64 + 128) / (64.0 * 128));
}

TEST(Linear, BadProblemsGetClearErrors) {
  LinearProblem p{ramp(4, 16, 0.1f), ramp(6, 8, 0.3f), VectorF(), make_quantizer("none"), make_quantizer("none")};
  EXPECT_THROW(quantize_linear("rtn", p), Error);
  p.w = ramp(6, 16, 0.3f);
  EXPECT_THROW(quantize_linear("nosuch", p), Error);
  EXPECT_THROW(quantize_linear("rtn:rank=3", p), Error);
}

}  // namespace
}  // namespace lowbit::quant

namespace lowbit::quant {
namespace {

TEST(Linear, QuartzUsesTheLzsFormatOnActivationsAndTheChosenWeightScheme) {
  const MatrixF x = ramp(8, 64, 0.07f), w = ramp(16, 64, 0.02f);
  LinearProblem p{x, w, VectorF(), make_quantizer("int8:row"), make_quantizer("none")};
  const QuantizedLinear q = quantize_linear("quartz", p);
  EXPECT_EQ(sq_diff(q.act->quantize(x), make_quantizer("lzs4:g16:s8=token")->quantize(x)), 0.0);
  EXPECT_EQ(sq_diff(q.weight, make_quantizer("int8:row")->quantize(w)), 0.0);
  const QuantizedLinear q2 = quantize_linear("quartz:g=32:s8=tensor:round=rne:w=int4_g64", p);
  EXPECT_EQ(sq_diff(q2.act->quantize(x), make_quantizer("lzs4:g32:s8=tensor:round=rne")->quantize(x)), 0.0);
  EXPECT_EQ(sq_diff(q2.weight, make_quantizer("int4:g64")->quantize(w)), 0.0);
  EXPECT_EQ(q2.info["weight_format"], "int4:g64");
  EXPECT_THROW(quantize_linear("quartz:w=int3", p), Error);
  EXPECT_THROW(quantize_linear("quartz:s8=row", p), Error);
}

}  // namespace
}  // namespace lowbit::quant
