// DMQ power-of-two channel scaling: shift choice against a brute-force oracle, κ voting, static
// calibration, the error guarantees of the MSE choice, bits accounting and the linear algorithm.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/error.hpp"
#include "quantizers/pts.hpp"

namespace lowbit::quant {
namespace {

// Independent asymmetric min–max fake quantizer of one value with step Δ·2^−j (FORMATS.md §7.2).
float oracle_fq(float x, float step, float zp, int bits) {
  const float qmax = static_cast<float>((1 << bits) - 1);
  float q = std::nearbyint(x / step) + zp;
  q = q < 0 ? 0 : (q > qmax ? qmax : q);
  return step * (q - zp);
}

// Brute-force per-sample best shift of one channel: argmin_j Σ (x − x̂_j)², ties to the larger j.
int oracle_best(const MatrixF& x, int64_t r0, int64_t r1, int64_t k, float scale, float zp, int bits) {
  int best = -1;
  double best_err = 0;
  for (int j = 3; j >= 0; --j) {
    double e = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const double d = x(r, k) - oracle_fq(x(r, k), std::ldexp(scale, -j), zp, bits);
      e += d * d;
    }
    if (best < 0 || e < best_err) best = j, best_err = e;
  }
  return best;
}

// Columns with the given magnitudes; column 0 holds the ±max that fixes the base range.
MatrixF channels(int64_t rows, const std::vector<float>& mag, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  MatrixF x(rows, static_cast<int64_t>(mag.size()));
  for (int64_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < mag.size(); ++k) x(r, k) = mag[k] * u(gen);
  x(0, 0) = -mag[0];
  x(1, 0) = mag[0];
  return x;
}

TEST(Pts, BaseQuantizerIsAsymmetricMinMax) {
  const MatrixF x = channels(32, {3.0f, 1.0f, 0.2f}, 1);
  const auto [scale, zp] = pts_base_scale(x, 8);
  float lo = x(0, 0), hi = x(0, 0);
  for (int64_t i = 0; i < x.size(); ++i) lo = std::min(lo, x.data()[i]), hi = std::max(hi, x.data()[i]);
  EXPECT_FLOAT_EQ(scale, (hi - lo) / 255.0f);
  EXPECT_EQ(zp, std::nearbyint(-lo / scale));
  const std::vector<int> zero(3, 0);
  const MatrixF q = pts_fake_quant(x, scale, zp, zero, 8);
  for (int64_t r = 0; r < x.rows(); ++r)
    for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(q(r, k), oracle_fq(x(r, k), scale, zp, 8));
}

TEST(Pts, ChannelEightTimesSmallerGetsTheFinestScale) {
  // Columns 0, 1, 3 span ±8; column 2 spans ±0.9 (< 8/8, so Δ/8 does not clip it).
  const MatrixF x = channels(64, {8.0f, 8.0f, 0.9f, 8.0f}, 2);
  PtsOptions o;
  o.sample_rows = 16;
  const PtsCalibration c = pts_calibrate(x, o);
  ASSERT_EQ(c.samples, 4);
  EXPECT_EQ(c.delta, (std::vector<int>{0, 0, 3, 0}));
  // Every per-sample choice agrees with the brute-force oracle.
  const std::vector<double> err = pts_shift_errors(x, c.scale, c.zero_point, 8, 16, nullptr);
  const std::vector<int> best = pts_best_shifts(err, 4, 4);
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t k = 0; k < 4; ++k)
      EXPECT_EQ(best[n * 4 + k], oracle_best(x, n * 16, n * 16 + 16, k, c.scale, c.zero_point, 8)) << n << "," << k;
  // The small channel is quantized on the Δ/8 grid.
  const MatrixF q = PtsQuantizer(o).calibrate(x)->quantize(x);
  for (int64_t r = 0; r < x.rows(); ++r)
    EXPECT_EQ(q(r, 2), oracle_fq(x(r, 2), c.scale / 8, c.zero_point, 8));
}

TEST(Pts, MediumChannelGetsTheBruteForceShift) {
  // A channel at 1/3 of the range: the oracle decides (Δ/2 covers it, Δ/4 clips it).
  const MatrixF x = channels(48, {6.0f, 2.0f, 0.5f}, 3);
  PtsOptions o;
  o.sample_rows = 48;
  o.bits = 6;
  const PtsCalibration c = pts_calibrate(x, o);
  for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(c.delta[k], oracle_best(x, 0, 48, k, c.scale, c.zero_point, 6));
  EXPECT_EQ(c.delta[1], 1);
}

TEST(Pts, VotingFollowsModeAgreementAndKappa) {
  // 20 samples × 5 channels.
  const int64_t N = 20, C = 5;
  std::vector<int> best(N * C);
  for (int64_t n = 0; n < N; ++n) {
    best[n * C + 0] = 3;                 // unanimous 3
    best[n * C + 1] = n < 17 ? 2 : 0;    // 17/20 = 0.85 agree on 2
    best[n * C + 2] = n < 16 ? 1 : 3;    // 16/20 = 0.80 agree on 1
    best[n * C + 3] = n % 2 ? 1 : 2;     // tie 10/10 → the larger shift, r = 0.5
    best[n * C + 4] = 0;
  }
  const PtsVote v85 = pts_vote(best, N, C, 0.85), v1 = pts_vote(best, N, C, 1.0), v0 = pts_vote(best, N, C, 0.0);
  EXPECT_EQ(v85.voted, (std::vector<int>{3, 2, 1, 2, 0}));
  EXPECT_EQ(v85.agreement, (std::vector<double>{1.0, 0.85, 0.8, 0.5, 1.0}));
  EXPECT_EQ(v85.delta, (std::vector<int>{3, 2, 0, 0, 0}));
  EXPECT_EQ(v1.delta, (std::vector<int>{3, 0, 0, 0, 0}));
  EXPECT_EQ(v0.delta, (std::vector<int>{3, 2, 1, 2, 0}));
  EXPECT_THROW(pts_vote(best, N, C, 1.5), Error);
  EXPECT_THROW(pts_vote(best, N, C + 1, 0.85), Error);
  best[3] = 4;
  EXPECT_THROW(pts_vote(best, N, C, 0.85), Error);
}

TEST(Pts, KappaOneAndDefaultDifferOnAlmostUnanimousChannel) {
  // 20 samples of 8 rows, base range ±8. Channel 1 has |x| ∈ [1.1, 1.9] (Δ/8 clips it, Δ/4 covers
  // it) in 17 samples and |x| ∈ [4.5, 7.5] (only Δ covers it) in 3 samples.
  const int64_t N = 20, R = 8;
  MatrixF x(N * R, 2);
  std::mt19937 gen(4);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), small(1.1f, 1.9f), large(4.5f, 7.5f);
  for (int64_t r = 0; r < N * R; ++r) {
    x(r, 0) = 8.0f * u(gen);
    x(r, 1) = (r % 2 ? 1.0f : -1.0f) * (r / R < 17 ? small(gen) : large(gen));
  }
  x(0, 0) = -8.0f;
  x(1, 0) = 8.0f;
  PtsOptions o;
  o.sample_rows = R;
  const PtsCalibration c85 = pts_calibrate(x, o);
  ASSERT_EQ(c85.samples, N);
  // The constructed pattern, as the per-sample MSE sees it.
  const std::vector<double> err = pts_shift_errors(x, c85.scale, c85.zero_point, 8, R, nullptr);
  const std::vector<int> best = pts_best_shifts(err, N, 2);
  for (int64_t n = 0; n < N; ++n) ASSERT_EQ(best[n * 2 + 1], n < 17 ? 2 : 0) << n;
  EXPECT_EQ(c85.delta[1], 2);
  EXPECT_DOUBLE_EQ(c85.agreement[1], 0.85);
  o.kappa = 1.0;
  const PtsCalibration c1 = pts_calibrate(x, o);
  EXPECT_EQ(c1.delta[1], 0);
  EXPECT_EQ(c1.voted[1], 2);
  EXPECT_GT(sq_diff(PtsQuantizer(o, c1).quantize(x), PtsQuantizer(o, c85).quantize(x)), 0.0);
}

TEST(Pts, StaticCalibrationIsFrozen) {
  const MatrixF calib = channels(64, {4.0f, 0.4f}, 5);
  MatrixF fresh = channels(64, {10.0f, 3.0f}, 6);
  fresh(5, 1) = 100.0f;
  fresh(6, 1) = -100.0f;
  const PtsQuantizer pts(PtsOptions{});
  EXPECT_TRUE(pts.is_static());
  const QuantizerPtr frozen = pts.calibrate(calib);
  const auto& cal = *dynamic_cast<const PtsQuantizer&>(*frozen).calibration();
  const MatrixF q = frozen->quantize(fresh);
  EXPECT_EQ(sq_diff(q, pts_fake_quant(fresh, cal.scale, cal.zero_point, cal.delta, 8)), 0.0);
  EXPECT_GT(sq_diff(q, pts.calibrate(fresh)->quantize(fresh)), 0.0);
  // Out-of-range values saturate at the calibrated code range of their channel.
  const float step1 = std::ldexp(cal.scale, -cal.delta[1]);
  EXPECT_FLOAT_EQ(q(5, 1), step1 * (255 - cal.zero_point));
  EXPECT_FLOAT_EQ(q(6, 1), step1 * (0 - cal.zero_point));
  // An uncalibrated quantizer calibrates on its input.
  EXPECT_EQ(sq_diff(pts.quantize(calib), frozen->quantize(calib)), 0.0);
  EXPECT_THROW(frozen->quantize(MatrixF::Zero(4, 3)), Error);
}

// Per-channel squared activation error on rows [r0, r1).
std::vector<double> channel_error(const MatrixF& x, const MatrixF& q, int64_t r0, int64_t r1) {
  std::vector<double> e(x.cols(), 0.0);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t k = 0; k < x.cols(); ++k) e[k] += std::pow(double(x(r, k)) - q(r, k), 2);
  return e;
}

TEST(Pts, MseChoiceNeverLosesToPlainPerTensor) {
  // Guarantee: j = 0 is plain per-tensor min–max, and it is among the candidates, so
  //  * mode=mse: every channel's total calibration error ≤ plain (hence the tensor total too);
  //  * mode=vote with κ = 1: a kept shift is every sample's own argmin, so the error of every
  //    (sample, channel) is ≤ plain. (κ < 1 has no such guarantee: the minority samples can lose.)
  MatrixF x = channels(96, {20.0f, 1.0f, 3.0f, 0.3f, 7.0f, 2.0f}, 7);
  for (int64_t r = 0; r < x.rows(); r += 7) x(r, 3) *= 20;  // heavy tail on a small channel
  for (const int bits : {4, 6, 8}) {
    PtsOptions o;
    o.bits = bits;
    o.sample_rows = 12;
    const auto [scale, zp] = pts_base_scale(x, bits);
    const MatrixF plain = pts_fake_quant(x, scale, zp, std::vector<int>(x.cols(), 0), bits);

    o.mode = PtsMode::Mse;
    const MatrixF q_mse = PtsQuantizer(o).quantize(x);
    const auto e_plain = channel_error(x, plain, 0, x.rows()), e_mse = channel_error(x, q_mse, 0, x.rows());
    for (int64_t k = 0; k < x.cols(); ++k) EXPECT_LE(e_mse[k], e_plain[k] * (1 + 1e-12)) << bits << "," << k;
    EXPECT_LT(sq_diff(x, q_mse), sq_diff(x, plain)) << bits;

    o.mode = PtsMode::Vote;
    o.kappa = 1.0;
    const MatrixF q_vote = PtsQuantizer(o).quantize(x);
    for (int64_t r0 = 0; r0 < x.rows(); r0 += 12) {
      const auto a = channel_error(x, plain, r0, r0 + 12), b = channel_error(x, q_vote, r0, r0 + 12);
      for (int64_t k = 0; k < x.cols(); ++k) EXPECT_LE(b[k], a[k] * (1 + 1e-12)) << bits << "," << r0 << "," << k;
    }
  }
}

TEST(Pts, BitsAccounting) {
  PtsOptions o;
  o.bits = 6;
  const PtsQuantizer q(o);
  // 6-bit codes + 2-bit δ per channel over 64 rows + fp32 Δ and zero point per tensor.
  EXPECT_DOUBLE_EQ(q.bits_per_element(64, 128), 6 + 2.0 / 64 + 64.0 / (64 * 128));
  EXPECT_DOUBLE_EQ(q.bits_per_element(1, 1), 6 + 2.0 + 64.0);
}

TEST(Pts, SpecParsing) {
  Spec s("pts:bits=6:kappa=1:mode=mse:sample_rows=8");
  const QuantizerPtr q = make_pts_quantizer(s);
  EXPECT_EQ(q->spec(), "pts:bits=6:kappa=1:mode=mse:sample_rows=8");
  Spec d("pts");
  EXPECT_EQ(make_pts_quantizer(d)->spec(), "pts:bits=8:kappa=0.85:mode=vote:sample_rows=64");
  for (const char* bad : {"pts:kappa=1.5", "pts:kappa=x", "pts:mode=median", "pts:bits=1", "pts:sample_rows=0",
                          "pts:abits=8"}) {
    Spec b(bad);
    EXPECT_THROW(make_pts_quantizer(b), Error) << bad;
  }
}

TEST(Pts, LinearAlgorithmUsesPtsActivationsAndWeightQuantizer) {
  const MatrixF x = channels(64, {8.0f, 0.5f, 2.0f, 8.0f, 0.1f, 1.0f, 4.0f, 0.9f}, 8);
  MatrixF w = channels(16, {1, 1, 1, 1, 1, 1, 1, 1}, 9);
  LinearProblem p{x, w, VectorF(), make_quantizer("int4:g8"), make_quantizer("int8:row")};
  Spec spec("pts:abits=6:kappa=1:sample_rows=16");
  const QuantizedLinear q = pts_linear(p, spec);
  spec.finish(kPtsLinearOptions);
  EXPECT_EQ(q.algorithm, "pts:abits=6:kappa=1:mode=vote:sample_rows=16");
  PtsOptions o;
  o.bits = 6;
  o.kappa = 1;
  o.sample_rows = 16;
  const MatrixF want = linear_forward(PtsQuantizer(o).calibrate(x)->quantize(x), p.wq->quantize(w));
  EXPECT_EQ(sq_diff(q.forward(x), want), 0.0);
  EXPECT_DOUBLE_EQ(q.weight_bits, p.wq->bits_per_element(16, 8));
  EXPECT_DOUBLE_EQ(q.act_bits, 6 + 2.0 / 64 + 64.0 / (64 * 8));
  EXPECT_EQ(q.info["replaced_act_quantizer"], p.aq->spec());
  EXPECT_EQ(q.info["kappa"], 1.0);
  EXPECT_EQ(q.info["samples"], 4);
  int64_t total = 0;
  for (const auto& h : q.info["delta_histogram"]) total += h.get<int64_t>();
  EXPECT_EQ(total, 8);
  EXPECT_GT(q.info["delta_histogram"][3].get<int64_t>(), 0);  // the 0.1 channel
  // New activations go through the frozen scales.
  const MatrixF x2 = channels(8, {9.0f, 0.5f, 2.0f, 8.0f, 0.1f, 1.0f, 4.0f, 0.9f}, 10);
  EXPECT_EQ(sq_diff(q.forward(x2), linear_forward(q.act->quantize(x2), q.weight)), 0.0);

  Spec bad("pts:kappa=2");
  EXPECT_THROW(pts_linear(p, bad), Error);
  p.w = MatrixF::Zero(4, 3);
  Spec ok("pts");
  EXPECT_THROW(pts_linear(p, ok), Error);
}

}  // namespace
}  // namespace lowbit::quant
