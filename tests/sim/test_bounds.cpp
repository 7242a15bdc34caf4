// Tests for sim/bounds.hpp: Prop 4.1 LHS/RHS against an independent naive triple loop, at exact
// equality (rank-1 construction), on every sample of random and captured (X, W) pairs for several
// quantizers; Prop 4.2 measured ratio below the bound, the c formula and reproducibility; QuaRTZ
// on a hand-made tensor whose FLAGs and errors are known exactly, the triangle inequality and
// P(group FLAG > 0) >= P(|q8| >= 8) on synthetic and captured tensors; bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include "formats/error.hpp"
#include "quantizers/quantizer.hpp"
#include "sim/bounds.hpp"
#include "sim/synthetic.hpp"
#include "sim/tensor.hpp"
#include "sim/tensor_io.hpp"

namespace {

using lowbit::quant::make_quantizer;
using lowbit::quant::MatrixF;

const std::string kCapture =
    (std::filesystem::path(LOWBIT_SOURCE_DIR) / "data" / "captured" / "dit" / "tinydit_capture.safetensors").string();

MatrixF synth(const std::string& dist, int64_t rows, int64_t cols, uint64_t seed, float scale = 1.0f) {
  const std::vector<float> v = lowbit::synthetic_tensor(dist, {rows, cols}, seed);
  MatrixF m = lowbit::quant::matrix_from(v, rows, cols);
  return m * scale;
}

MatrixF load(const std::string& name) {
  const auto ts = lowbit::load_tensors(kCapture + ":" + name);
  EXPECT_EQ(ts.size(), 1u);
  EXPECT_EQ(ts[0].shape.size(), 2u);
  return lowbit::quant::matrix_from(lowbit::to_f32(ts[0]), ts[0].shape[0], ts[0].shape[1]);
}

// ‖XWᵀ − QX·QWᵀ‖_F by a plain triple loop in long double, independent of Eigen.
long double naive_lhs(const MatrixF& x, const MatrixF& qx, const MatrixF& w, const MatrixF& qw) {
  long double sum = 0;
  for (int64_t i = 0; i < x.rows(); ++i)
    for (int64_t j = 0; j < w.rows(); ++j) {
      long double a = 0, b = 0;
      for (int64_t k = 0; k < x.cols(); ++k) {
        a += static_cast<long double>(x(i, k)) * w(j, k);
        b += static_cast<long double>(qx(i, k)) * qw(j, k);
      }
      sum += (a - b) * (a - b);
    }
  return std::sqrt(sum);
}

long double naive_norm(const MatrixF& a, const MatrixF& b) {
  long double s = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    const long double d = static_cast<long double>(a.data()[i]) - b.data()[i];
    s += d * d;
  }
  return std::sqrt(s);
}

TEST(BoundsProp41, LhsAndRhsMatchNaiveTripleLoop) {
  const MatrixF x = synth("outlier_channels", 6, 64, 1);
  const MatrixF w = synth("gaussian", 5, 64, 2, 0.05f);
  const MatrixF qx = make_quantizer("int4:g32")->quantize(x);
  const MatrixF qw = make_quantizer("int4:g16")->quantize(w);
  const auto s = lowbit::prop41_terms(x, qx, w, qw);
  const MatrixF zx = MatrixF::Zero(x.rows(), x.cols()), zw = MatrixF::Zero(w.rows(), w.cols());
  EXPECT_NEAR(s.lhs, static_cast<double>(naive_lhs(x, qx, w, qw)), 1e-12 * s.lhs);
  const long double xn = naive_norm(x, zx), xe = naive_norm(x, qx), wn = naive_norm(w, zw), we = naive_norm(w, qw);
  EXPECT_NEAR(s.rhs, static_cast<double>(xn * we + xe * (wn + we)), 1e-12 * s.rhs);
  EXPECT_TRUE(s.held);
  EXPECT_GT(s.slack, 1.0);
  // The LHS is not symmetric in the roles of X and W: swapping Q(X) and X must change it.
  const auto swapped = lowbit::prop41_terms(qx, x, w, qw);
  EXPECT_GT(std::abs(swapped.lhs - static_cast<double>(naive_lhs(x, qx, w, qw))), 1e-6 * s.lhs);
  EXPECT_NEAR(swapped.lhs, static_cast<double>(naive_lhs(qx, x, w, qw)), 1e-12 * swapped.lhs);
}

TEST(BoundsProp41, HandComputedAndEqualityCase) {
  MatrixF x(1, 1), qx(1, 1), w(1, 1), qw(1, 1);
  x << 1;
  qx << 0.5f;
  w << 1;
  qw << 0.5f;
  auto s = lowbit::prop41_terms(x, qx, w, qw);
  EXPECT_DOUBLE_EQ(s.lhs, 0.75);  // |1 − 0.25|
  EXPECT_DOUBLE_EQ(s.rhs, 1.25);  // 1·0.5 + 0.5·(1 + 0.5)
  // Equality: Q(X) = X and W − Q(W) parallel to x make the triangle and the Cauchy–Schwarz
  // steps tight: x = [1, 2, 2], W − Q(W) = [0.125, 0.25, 0.25] → LHS = RHS = 3·0.375 = 1.125.
  MatrixF x3(1, 3), w3(1, 3), qw3(1, 3);
  x3 << 1, 2, 2;
  w3 << 1, 1, 1;
  qw3 << 0.875f, 0.75f, 0.75f;
  s = lowbit::prop41_terms(x3, x3, w3, qw3);
  EXPECT_DOUBLE_EQ(s.lhs, 1.125);
  EXPECT_DOUBLE_EQ(s.rhs, 1.125);
  EXPECT_TRUE(s.held);
  EXPECT_DOUBLE_EQ(s.slack, 1.0);
  // Unquantised on both sides: LHS = RHS = 0, slack undefined, held.
  s = lowbit::prop41_terms(x3, x3, w3, w3);
  EXPECT_EQ(s.lhs, 0.0);
  EXPECT_TRUE(s.held);
  EXPECT_TRUE(std::isnan(s.slack));
}

void expect_every_sample_held(const MatrixF& x, const MatrixF& w, const std::string& aq, const std::string& wq,
                              int64_t sample_rows) {
  SCOPED_TRACE(aq + " / " + wq);
  const auto r = lowbit::check_prop41(x, w, make_quantizer(aq), make_quantizer(wq), sample_rows);
  const int64_t expected = (x.rows() + sample_rows - 1) / sample_rows;
  ASSERT_EQ(static_cast<int64_t>(r.samples.size()), expected);
  EXPECT_TRUE(r.whole.held);
  EXPECT_EQ(r.samples_held, expected);
  EXPECT_TRUE(r.all_held);
  for (const auto& s : r.samples) {
    EXPECT_TRUE(s.held) << "rows " << s.row_begin << "+" << s.rows << ": LHS " << s.lhs << " RHS " << s.rhs;
    EXPECT_GT(s.lhs, 0.0);
    EXPECT_GE(s.slack, 1.0);
  }
  EXPECT_GE(r.min_slack, 1.0);
  EXPECT_GE(r.median_slack, r.min_slack);
  EXPECT_GT(r.output.sqnr_db, 0.0);
  EXPECT_GT(r.output.cosine, 0.5);
}

TEST(BoundsProp41, HoldsOnEverySampleOfRandomPairs) {
  const MatrixF x = synth("outlier_channels", 12, 128, 11);
  const MatrixF w = synth("gaussian", 24, 128, 12, 0.02f);
  for (const char* q : {"int4:g64", "int8:row", "mxfp4", "nvfp4", "int4:tensor", "lzs4:g16"}) {
    expect_every_sample_held(x, w, q, q, 1);
    expect_every_sample_held(x, w, q, q, 5);  // samples of 5, 5, 2 rows
  }
  expect_every_sample_held(x, w, "none", "int4:g64", 1);
  const MatrixF xt = synth("student_t:3", 8, 64, 13);
  const MatrixF wt = synth("laplace", 16, 64, 14);
  expect_every_sample_held(xt, wt, "int4:g64", "nvfp4", 1);
}

TEST(BoundsProp41, HoldsOnEverySampleOfCapturedPairs) {
  const MatrixF x = load("step033.blocks.3.mlp.fc2.input");
  const MatrixF w = load("blocks.3.mlp.fc2.weight");
  ASSERT_EQ(x.cols(), 1024);
  ASSERT_EQ(w.rows(), 256);
  for (const char* q : {"int4:g64", "int8:row", "mxfp4", "nvfp4"}) expect_every_sample_held(x, w, q, q, 1);
  const MatrixF x2 = load("step000.blocks.0.attn.qkv.input");
  const MatrixF w2 = load("blocks.0.attn.qkv.weight");
  for (const char* q : {"int4:g64", "nvfp4"}) expect_every_sample_held(x2, w2, q, q, 8);
}

TEST(BoundsProp41, BadInputsThrow) {
  const MatrixF x = synth("gaussian", 4, 32, 1), w = synth("gaussian", 3, 16, 2);
  const auto q = make_quantizer("int4:g16");
  EXPECT_THROW(lowbit::check_prop41(x, w, q, q), lowbit::Error);
  const MatrixF w2 = synth("gaussian", 3, 32, 2);
  EXPECT_THROW(lowbit::check_prop41(x, w2, q, q, 0), lowbit::Error);
  EXPECT_THROW(lowbit::check_prop41(MatrixF(0, 32), w2, q, q), lowbit::Error);
  MatrixF xn = x;
  xn(1, 2) = std::numeric_limits<float>::quiet_NaN();
  try {
    lowbit::check_prop41(xn, w2, q, q);
    ADD_FAILURE() << "no error for a NaN in X";
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  EXPECT_THROW(lowbit::check_prop41(x, w2, nullptr, q), lowbit::Error);
}

TEST(BoundsProp42, GaussianRatioBelowBoundAndConstants) {
  lowbit::Prop42Options o;
  o.sizes = {4096, 65536};
  o.qmax = {7, 127};
  o.groups = {0, 64};
  o.trials = 3;
  o.seed = 5;
  const auto rows = lowbit::check_prop42(o);
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& r : rows) {
    SCOPED_TRACE(testing::Message() << "n " << r.n << " G " << r.group << " qmax " << r.qmax);
    const double N = static_cast<double>(r.group ? r.group : r.n);
    EXPECT_EQ(r.bound_size, static_cast<int64_t>(N));
    EXPECT_DOUBLE_EQ(r.bound, std::sqrt(std::log(N) * std::numbers::pi) / r.qmax);
    EXPECT_DOUBLE_EQ(r.c, std::sqrt(std::numbers::pi * std::log(N) / N));
    EXPECT_NEAR(r.c * std::sqrt(N) / r.qmax, r.bound, 1e-15 * r.bound);
    EXPECT_NEAR(r.c_meas * std::sqrt(N) / r.qmax, r.ratio, 1e-14 * r.ratio);
    EXPECT_TRUE(r.held);
    EXPECT_LT(r.ratio, r.bound);
    EXPECT_LT(r.ratio_max, r.bound);
    EXPECT_LE(r.ratio_min, r.ratio_max);
    // Rounding error ≈ uniform on ±s/2: ratio ≈ (E max|R_g| / q_max)/sqrt(12), with E max|R| of
    // n = 4096 or 65536 Gaussians ≈ 3.6–4.4 and of G = 64 ≈ 2.4; allow ±25 %.
    const double emax = r.group ? 2.4 : (r.n == 4096 ? 3.6 : 4.35);
    EXPECT_NEAR(r.ratio, emax / r.qmax / std::sqrt(12.0), 0.25 * emax / r.qmax / std::sqrt(12.0));
    EXPECT_GT(r.slack, 1.0);
  }
}

TEST(BoundsProp42, ReproducibleAndSeedDependent) {
  lowbit::Prop42Options o;
  o.sizes = {4096};
  o.qmax = {7};
  o.groups = {0};
  o.trials = 2;
  const auto a = lowbit::check_prop42(o), b = lowbit::check_prop42(o);
  EXPECT_EQ(a[0].ratio, b[0].ratio);
  o.seed = 1;
  EXPECT_NE(lowbit::check_prop42(o)[0].ratio, a[0].ratio);
  const auto j = lowbit::to_json(a[0]);
  EXPECT_EQ(j["n"], 4096);
  EXPECT_TRUE(j["held"].get<bool>());
}

TEST(BoundsProp42, BadOptionsThrow) {
  lowbit::Prop42Options o;
  o.sizes = {1000};
  o.groups = {64};
  EXPECT_THROW(lowbit::check_prop42(o), lowbit::Error);
  o.groups = {0};
  o.trials = 0;
  EXPECT_THROW(lowbit::check_prop42(o), lowbit::Error);
  o.trials = 1;
  o.qmax = {0};
  EXPECT_THROW(lowbit::check_prop42(o), lowbit::Error);
  o.qmax = {7};
  o.sizes = {1};
  EXPECT_THROW(lowbit::check_prop42(o), lowbit::Error);
}

TEST(BoundsQuartz, HandMadeTensorWithKnownFlags) {
  // lzs4:g4, s8 = amax/128 = 1, so q8 = x except 128 -> 127. Groups (max |q8|):
  //   [3, -2, 5, 0] (5) FLAG 0, lossless      [100, 3, -2, 10] (100) FLAG 4: 96, 0, 0, 0
  //   [8, 1, 0, 0] (8) FLAG 1: 8, 0, 0, 0      [20, 0, 0, 0] FLAG 2 exact
  //   [-40, 0, 0, 0] FLAG 3 exact              [128, 0, 0, 0] q8 127, FLAG 4: 112
  const std::vector<float> x{3, -2, 5, 0, 100, 3, -2, 10, 8, 1, 0, 0, 20, 0, 0, 0, -40, 0, 0, 0, 128, 0, 0, 0};
  const auto r = lowbit::check_quartz(x, 1, 24, "lzs4:g4");
  EXPECT_EQ(r.group, 4);
  EXPECT_FALSE(r.per_token);
  EXPECT_EQ(r.round, "trunc");
  EXPECT_EQ(r.s8_min, 1.0);
  EXPECT_EQ(r.flags.counts, (std::array<int64_t, 5>{1, 1, 1, 1, 2}));
  EXPECT_DOUBLE_EQ(r.p_group_flag, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(r.p_elem_ge8, 6.0 / 24.0);  // 100, 10, 8, 20, 40, 127
  // Truncated: 100 -> 96, 3, -2, 10 -> 0, 1 -> 0, 127 -> 112: 6 elements, residuals 4+3+2+10+1+15.
  EXPECT_DOUBLE_EQ(r.p_elem_truncated, 6.0 / 24.0);
  EXPECT_DOUBLE_EQ(r.e_lzs, 35.0 / 24.0);
  EXPECT_DOUBLE_EQ(r.e_lzs_in_s8, 35.0 / 24.0);
  EXPECT_DOUBLE_EQ(r.e_q8, 1.0 / 24.0);    // 128 -> 127
  EXPECT_DOUBLE_EQ(r.e_total, 36.0 / 24.0);  // 4+3+2+10+1 + |128 - 112|
  // Here the triangle inequality is an equality (every error has the same sign).
  EXPECT_TRUE(r.triangle_held);
  EXPECT_EQ(r.triangle_violations, 0);
  EXPECT_DOUBLE_EQ(r.triangle_slack, 1.0);
  // INT4 per tensor: s4 = 128/7 in fp32, q = rne(x/s4) clamped to ±7.
  const float s4 = 128.0f / 7.0f;
  double e4 = 0;
  for (const float v : x) {
    const float q = std::min(7.0f, std::max(-7.0f, std::nearbyint(v / s4)));
    e4 += std::abs(static_cast<double>(v) - static_cast<double>(s4 * q));
  }
  EXPECT_NEAR(r.e_q4_mean, e4 / 24.0, 1e-12);
  EXPECT_NEAR(r.e_q4_bound, 0.5 * s4, 1e-12);
  EXPECT_NEAR(r.s4_over_s8, 128.0 / 7.0, 1e-5);
  EXPECT_NEAR(r.threshold_actual, 64.0 / 7.0 - 0.5, 1e-5);
  EXPECT_NEAR(r.threshold_spec, 127.0 / 14.0 - 0.5, 1e-15);
  EXPECT_EQ(r.beats_int4_mean, r.e_q8 + r.e_lzs < r.e_q4_mean);
  EXPECT_EQ(r.total_beats_int4, r.e_total < r.e_q4_mean);
  EXPECT_GT(r.lzs_codes.entropy_bits, 0.0);
  EXPECT_LE(r.lzs_codes.entropy_bits, 4.0);
}

TEST(BoundsQuartz, TriangleAndGroupProbabilityOnManyTensors) {
  std::vector<std::pair<std::string, std::vector<float>>> tensors;
  for (const char* d : {"gaussian", "laplace", "student_t:3", "outlier_channels"})
    tensors.emplace_back(d, lowbit::synthetic_tensor(d, {32, 256}, 7));
  const MatrixF cap = load("step033.blocks.3.mlp.fc2.input");  // 64 x 1024
  const std::vector<float> capv(cap.data(), cap.data() + cap.size());
  for (const auto& [name, v] : tensors)
    for (const char* spec : {"lzs4:g16", "lzs4:g32:s8=token", "lzs4:g16:round=rne", "lzs4:g16:calib=minmax"}) {
      SCOPED_TRACE(name + " " + spec);
      const auto r = lowbit::check_quartz(v, 32, 256, spec);
      EXPECT_TRUE(r.triangle_held);
      EXPECT_GE(r.triangle_slack, 1.0);
      EXPECT_GE(r.p_group_flag, r.p_elem_ge8);
      EXPECT_GE(r.p_elem_truncated, 0.0);
      EXPECT_LE(r.e_lzs_in_s8, 15.0);
    }
  for (const char* spec : {"lzs4:g16", "lzs4:g16:s8=token", "lzs4:g32:s8=token:round=rne"}) {
    SCOPED_TRACE(spec);
    const auto r = lowbit::check_quartz(capv, 64, 1024, spec);
    EXPECT_TRUE(r.triangle_held);
    EXPECT_GE(r.p_group_flag, r.p_elem_ge8);
    EXPECT_EQ(r.flags.groups, 64 * 1024 / r.group);
    // LZS keeps a per-group 2^FLAG scale below the int8 step: it flushes fewer of the
    // small-magnitude half to zero than per-tensor/per-token INT4 does.
    EXPECT_LT(r.lzs.small_flushed, r.int4.small_flushed);
  }
}

TEST(BoundsQuartz, BadInputsThrow) {
  const std::vector<float> x(64, 1.0f);
  EXPECT_THROW(lowbit::check_quartz(x, 4, 16, "int4:g16"), lowbit::Error);
  EXPECT_THROW(lowbit::check_quartz(x, 4, 16, "lzs4:g32"), lowbit::Error);  // 32 does not divide 16
  EXPECT_THROW(lowbit::check_quartz(x, 4, 15, "lzs4:g16"), lowbit::Error);
  EXPECT_THROW(lowbit::check_quartz(std::vector<float>{}, 0, 16, "lzs4:g16"), lowbit::Error);
  std::vector<float> y = x;
  y[5] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(lowbit::check_quartz(y, 4, 16, "lzs4:g16"), lowbit::Error);
  EXPECT_THROW(lowbit::check_quartz(x, 4, 16, "lzs4:g16:bogus"), lowbit::Error);
}

TEST(BoundsQuartz, JsonHasTheKeyFigures) {
  const std::vector<float> v = lowbit::synthetic_tensor("gaussian", {4, 64}, 3);
  const auto j = lowbit::to_json(lowbit::check_quartz(v, 4, 64, "lzs4:g16"));
  for (const char* k : {"e_q8", "e_lzs", "e_total", "e_q4_mean", "e_q4_bound", "p_elem_ge8", "p_group_flag",
                        "threshold_paper", "threshold_spec", "triangle_held", "beats_int4_mean", "flags", "lzs_codes"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_TRUE(j["triangle_held"].get<bool>());
}

}  // namespace
