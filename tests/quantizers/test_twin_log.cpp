// Twin-Log (TLQ) and plain log2 quantizers: hand-computed rows, the grid search against a brute
// force over its 325 candidates, zeros, signs, storage bits and spec errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/error.hpp"
#include "quantizers/twin_log.hpp"

namespace lowbit::quant {
namespace {

std::vector<float> dequant(const std::vector<float>& row, const TwinLogOptions& opt, const TwinLogParams& p) {
  std::vector<float> out(row.size());
  tlq_dequant_row(row, opt, p, out);
  return out;
}

TwinLogOptions opts(int bits, TwinLogStats stats = TwinLogStats::Masked, bool flip = false) {
  TwinLogOptions o;
  o.bits = bits;
  o.stats = stats;
  o.sign_flip = flip;
  return o;
}

QuantizerPtr make(std::string_view text) {
  Spec spec(text);
  return make_twin_log_quantizer(spec);
}

// Weight-like rows: both signs, a spread of magnitudes, some exact zeros.
MatrixF weights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) {
    const double u = static_cast<double>(gen() >> 8) * 0x1p-24, v = static_cast<double>(gen() >> 8) * 0x1p-24;
    const double mag = 0.05 * std::exp2(6.0 * u - 4.0);  // 0.05·[2^-4, 2^2)
    m.data()[i] = (gen() % 11 == 0) ? 0.0f : static_cast<float>(v < 0.5 ? -mag : mag);
  }
  return m;
}

TEST(TwinLog, HandComputedRowEtaZeroFullClip) {
  // Positive ℓ: 0, −1, 1, −3; masked row sorted [−3, −1, 0, 0, 0, 0, 0, 1]: lo −3, hi 1,
  // Δ = 4/2^2 = 1, z = −3, codes clamp at 3 so 2.0 → 2^0 = 1.
  // Negative ℓ: −2, 0, 2 → lo −2, hi 2, Δ = 1, z = −2; codes up to 4 (one more level): −4 kept.
  const std::vector<float> row = {1.0f, 0.5f, -0.25f, 0.0f, 2.0f, -1.0f, 0.125f, -4.0f};
  const TwinLogOptions o = opts(3);
  const TwinLogParams p = tlq_candidate(row, o, 0.0, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(p.pos.delta, 1.0);
  EXPECT_DOUBLE_EQ(p.pos.zero, -3.0);
  EXPECT_DOUBLE_EQ(p.neg.delta, 1.0);
  EXPECT_DOUBLE_EQ(p.neg.zero, -2.0);
  const std::vector<float> want = {1.0f, 0.5f, -0.25f, 0.0f, 1.0f, -1.0f, 0.125f, -4.0f};
  EXPECT_EQ(dequant(row, o, p), want);
}

TEST(TwinLog, HandComputedRowPercentileClip) {
  // clip 0.9 over 8 entries: rank round(6.3) = 6 → sorted[6] = 0 (a placeholder): hi 0, lo −3,
  // Δ = 3/4, z = round(−4) = −4; ℓ = 0, −1, 1 → codes 4, 3, 5 → clamp 3 → 2^{−0.75}; ℓ = −3 → 0.
  const std::vector<float> row = {1.0f, 0.5f, -0.25f, 0.0f, 2.0f, -1.0f, 0.125f, -4.0f};
  const TwinLogOptions o = opts(3);
  const TwinLogParams p = tlq_candidate(row, o, 0.0, 0.9, 1.0);
  EXPECT_DOUBLE_EQ(p.pos.delta, 0.75);
  EXPECT_DOUBLE_EQ(p.pos.zero, -4.0);
  const std::vector<float> out = dequant(row, o, p);
  const float c = static_cast<float>(std::exp2(-0.75));
  EXPECT_FLOAT_EQ(out[0], c);
  EXPECT_FLOAT_EQ(out[1], c);
  EXPECT_FLOAT_EQ(out[4], c);
  EXPECT_FLOAT_EQ(out[6], 0.125f);
  EXPECT_FLOAT_EQ(out[7], -4.0f);
}

TEST(TwinLog, HandComputedRowWithOffset) {
  // η = 0.5: positive ℓ = log2(1) = 0, log2(4) = 2 → Δ = 0.5, z = 0, 3.5 → code 4 → clamp 3 →
  // 2^1.5 − 0.5; negative ℓ = log2(2) = 1 with placeholders 0 → Δ = 0.25, z = 0, code 4 → −1.5.
  const std::vector<float> row = {0.5f, -1.5f, 0.0f, 3.5f};
  const TwinLogOptions o = opts(3);
  const TwinLogParams p = tlq_candidate(row, o, 0.5, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(p.pos.delta, 0.5);
  EXPECT_DOUBLE_EQ(p.neg.delta, 0.25);
  const std::vector<float> out = dequant(row, o, p);
  EXPECT_FLOAT_EQ(out[0], 0.5f);
  EXPECT_FLOAT_EQ(out[1], -1.5f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_FLOAT_EQ(out[3], static_cast<float>(std::exp2(1.5) - 0.5));
}

TEST(TwinLog, SideStatisticsIgnoreTheOtherSide) {
  // Positive ℓ = −2, −1. Masked: placeholders make hi = 0 → Δ = 0.5, z = −4.
  // Side: hi = −1 → Δ = 0.25, z = −8.
  const std::vector<float> row = {0.25f, 0.5f, -0.5f, -0.5f};
  const TwinLogParams m = tlq_candidate(row, opts(3), 0.0, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(m.pos.delta, 0.5);
  EXPECT_DOUBLE_EQ(m.pos.zero, -4.0);
  const TwinLogParams s = tlq_candidate(row, opts(3, TwinLogStats::Side), 0.0, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(s.pos.delta, 0.25);
  EXPECT_DOUBLE_EQ(s.pos.zero, -8.0);
}

TEST(TwinLog, SignFlipOnlyWhenAsked) {
  // η = 0.5, ℓ = log2(0.501) ≈ −0.997 and log2(3.5) ≈ 1.807, Δ ≈ 1.402, z = −1: the small weight
  // gets code 0 → 2^{−1.402} − 0.5 < 0 in the released code; clamped to 0 by default.
  const std::vector<float> row = {0.001f, 3.0f};
  const TwinLogParams p = tlq_candidate(row, opts(2), 0.5, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(p.pos.zero, -1.0);
  const float flipped = dequant(row, opts(2, TwinLogStats::Masked, true), p)[0];
  EXPECT_FLOAT_EQ(flipped, static_cast<float>(std::exp2(-p.pos.delta) - 0.5));
  EXPECT_LT(flipped, 0.0f);
  EXPECT_EQ(dequant(row, opts(2), p)[0], 0.0f);
}

double row_error(const std::vector<float>& row, const std::vector<float>& q) {
  double e = 0;
  for (size_t i = 0; i < row.size(); ++i) e += std::pow(static_cast<double>(q[i]) - row[i], 2);
  return e;
}

TEST(TwinLog, SearchFindsTheBruteForceMinimum) {
  const MatrixF w = weights(6, 40, 7);
  for (TwinLogStats stats : {TwinLogStats::Masked, TwinLogStats::Side}) {
    const TwinLogOptions o = opts(4, stats);
    const std::vector<TwinLogParams> chosen = tlq_search(w, o);
    std::vector<double> totals(325, 0.0);
    for (int64_t r = 0; r < w.rows(); ++r) {
      const std::vector<float> row(w.row(r).data(), w.row(r).data() + w.cols());
      double best = INFINITY;
      size_t k = 0;
      for (double eta : {0.0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5})
        for (double cp : {0.98, 0.99, 0.999, 0.9999, 0.99999})
          for (double cn : {0.98, 0.99, 0.999, 0.9999, 0.99999}) {
            const double e = row_error(row, dequant(row, o, tlq_candidate(row, o, eta, cp, cn)));
            best = std::min(best, e);
            totals[k++] += e;
          }
      const double got = row_error(row, dequant(row, o, chosen[static_cast<size_t>(r)]));
      EXPECT_NEAR(got, best, 1e-12 * best) << "row " << r;
    }
    // select=tensor: one candidate for all rows, the minimum of the summed errors.
    TwinLogOptions ot = o;
    ot.select = TwinLogSelect::Tensor;
    const std::vector<TwinLogParams> one = tlq_search(w, ot);
    double total = 0;
    for (int64_t r = 0; r < w.rows(); ++r) {
      const std::vector<float> row(w.row(r).data(), w.row(r).data() + w.cols());
      total += row_error(row, dequant(row, ot, one[static_cast<size_t>(r)]));
      EXPECT_EQ(one[static_cast<size_t>(r)].eta, one[0].eta);
    }
    const double best_total = *std::min_element(totals.begin(), totals.end());
    EXPECT_NEAR(total, best_total, 1e-12 * best_total);
  }
}

TEST(TwinLog, QuantizerKeepsZerosAndSigns) {
  const MatrixF w = weights(8, 64, 9);
  for (const char* text : {"tlq", "tlq:bits=3:stats=side", "tlq:select=tensor", "log2:bits=3"}) {
    const QuantizerPtr q = make(text);
    const MatrixF out = q->quantize(w);
    for (int64_t i = 0; i < w.size(); ++i) {
      const float x = w.data()[i], y = out.data()[i];
      if (x == 0) EXPECT_EQ(y, 0.0f) << text;
      else EXPECT_GE(static_cast<double>(x) * y, 0.0) << text << " element " << i;
    }
    EXPECT_GT(sq_diff(out, w), 0.0) << text;
    EXPECT_LT(sq_diff(out, w), 0.5 * sq_norm(w)) << text;
  }
  // More bits, less error.
  EXPECT_LT(sq_diff(make("tlq:bits=5")->quantize(w), w), sq_diff(make("tlq:bits=3")->quantize(w), w));
  EXPECT_LT(sq_diff(make("log2:bits=5")->quantize(w), w), sq_diff(make("log2:bits=3")->quantize(w), w));
}

TEST(TwinLog, QuantizeUsesThePerRowSearch) {
  const MatrixF w = weights(3, 32, 10);
  const TwinLogOptions o = opts(4);
  const std::vector<TwinLogParams> p = tlq_search(w, o);
  const MatrixF out = make("tlq:bits=4")->quantize(w);
  for (int64_t r = 0; r < w.rows(); ++r) {
    const std::vector<float> row(w.row(r).data(), w.row(r).data() + w.cols());
    const std::vector<float> want = dequant(row, o, p[static_cast<size_t>(r)]);
    for (int64_t j = 0; j < w.cols(); ++j) EXPECT_EQ(out(r, j), want[static_cast<size_t>(j)]);
  }
}

TEST(Log2, HandComputedRows) {
  // e = 0, 1, 2, 3 with 4 levels: Δ = 1, every magnitude is a level.
  MatrixF a(1, 5);
  a << 1.0f, -2.0f, 4.0f, 0.0f, -8.0f;
  EXPECT_TRUE(make("log2:bits=3")->quantize(a) == a);
  // e = 0, log2 0.75, 4: lo = log2 0.75, Δ = (4 − lo)/3; 1 sits 0.28 codes above lo → 0.75.
  MatrixF b(1, 3);
  b << 1.0f, -0.75f, 16.0f;
  const MatrixF qb = make("log2:bits=3")->quantize(b);
  EXPECT_FLOAT_EQ(qb(0, 0), 0.75f);
  EXPECT_FLOAT_EQ(qb(0, 1), -0.75f);
  EXPECT_FLOAT_EQ(qb(0, 2), 16.0f);
}

TEST(TwinLog, BitsCountPerRowParameters) {
  EXPECT_DOUBLE_EQ(make("tlq:bits=4")->bits_per_element(8, 64), 4.0 + 160.0 / 64);
  EXPECT_DOUBLE_EQ(make("tlq:bits=3:select=tensor")->bits_per_element(8, 64), 3.0 + 128.0 / 64 + 32.0 / 512);
  EXPECT_DOUBLE_EQ(make("log2:bits=4")->bits_per_element(8, 64), 4.0 + 64.0 / 64);
}

TEST(TwinLog, SpecsAreCanonicalAndBadOnesThrow) {
  EXPECT_EQ(make("tlq")->spec(), "tlq:bits=4");
  EXPECT_EQ(make("tlq:stats=side:bits=3:signflip:select=tensor")->spec(), "tlq:bits=3:select=tensor:stats=side:signflip");
  EXPECT_EQ(make("log2:bits=5")->spec(), "log2:bits=5");
  const MatrixF w = weights(2, 8, 1);
  EXPECT_TRUE(make("tlq")->calibrate(w)->quantize(w) == make("tlq")->quantize(w));
  for (const char* bad : {"tlq:bits=9", "tlq:bits=1", "tlq:foo", "tlq:select=col", "tlq:stats=all", "log2:select=row",
                          "log2:bits=x", "rtn"})
    EXPECT_THROW(make(bad), Error) << bad;
  const std::vector<float> row = {1.0f, -1.0f};
  EXPECT_THROW(tlq_candidate(row, opts(1), 0.0, 1.0, 1.0), Error);
  EXPECT_THROW(tlq_candidate(row, opts(4), -0.1, 1.0, 1.0), Error);
  EXPECT_THROW(tlq_candidate(row, opts(4), 0.0, 0.0, 1.0), Error);
  EXPECT_THROW(tlq_candidate(row, opts(4), 0.0, 1.0, 1.5), Error);
  std::vector<float> out(3);
  EXPECT_THROW(tlq_dequant_row(row, opts(4), TwinLogParams{}, out), Error);
}

}  // namespace
}  // namespace lowbit::quant
