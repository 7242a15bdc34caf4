// Smoothing, the SVD low-rank branch, SVDQuant refinement and LoRC: invariants that must hold
// exactly (smoothing keeps XWᵀ, branch + residual reconstruct W, Eckart–Young) and the search
// and refinement rules checked against brute force.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/error.hpp"
#include "quantizers/linear.hpp"
#include "quantizers/smoothing.hpp"
#include "quantizers/svd_lowrank.hpp"

namespace lowbit::quant {
namespace {

MatrixF gauss(int64_t rows, int64_t cols, uint32_t seed, float sd = 1) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0, sd);
  MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(g);
  return m;
}

// A layer with a few outlier activation channels and a weight with a strong low-rank part.
LinearProblem outlier_layer(const char* wq, const char* aq) {
  MatrixF x = gauss(64, 128, 1);
  for (int c : {5, 40, 77}) x.col(c) *= 30.0f;
  MatrixF w = gauss(96, 128, 2, 0.05f) + gauss(96, 4, 3) * gauss(4, 128, 4) * 0.2f;
  return LinearProblem{x, w, VectorF(), make_quantizer(wq), make_quantizer(aq)};
}

double rel_err(const LinearProblem& p, const QuantizedLinear& q) {
  return calibration_error(p, q) / sq_norm(linear_forward(p.x, p.w, p.bias));
}

TEST(Smoothing, FactorsByHand) {
  VectorF sx(3), sw(3);
  sx << 4, 1, 0;
  sw << 1, 4, 2;
  const VectorF l = smoothing_factors(sx, sw, 0.5, 0.5);
  EXPECT_FLOAT_EQ(l(0), 2.0f);
  EXPECT_FLOAT_EQ(l(1), 0.5f);
  EXPECT_FLOAT_EQ(l(2), 1.0f);  // zero span -> 1
  const auto grid = svdquant_smooth_grid(20);
  ASSERT_EQ(grid.size(), 39u);
  EXPECT_EQ(grid[0].alpha, 0.0);
  EXPECT_DOUBLE_EQ(grid[1].alpha, 0.05);
  EXPECT_EQ(grid[1].beta, 0.0);
  EXPECT_DOUBLE_EQ(grid[20].alpha, 0.05);
  EXPECT_DOUBLE_EQ(grid[20].beta, 0.95);
}

TEST(Smoothing, KeepsTheProductExactBeforeQuantisation) {
  LinearProblem p = outlier_layer("none", "none");
  p.bias = VectorF::LinSpaced(96, -1, 1);
  for (const char* s : {"smoothquant", "smoothquant:alpha=0.8:span=rms", "smoothquant:alpha=0.3:beta=0.2"}) {
    const QuantizedLinear q = quantize_linear(s, p);
    EXPECT_LT(rel_err(p, q), 1e-10) << s;
    EXPECT_GT((q.smooth.array() - 1).abs().maxCoeff(), 0.1f) << s;  // λ is far from 1: a real test
  }
}

TEST(Smoothing, SearchKeepsTheArgmin) {
  const LinearProblem p = outlier_layer("int4:g16", "int4:g16");
  const QuantizedLinear q = quantize_linear("smoothquant:alpha=search", p);
  double best = 1e300;
  const VectorF sx = channel_span(p.x, Span::AbsMax), sw = channel_span(p.w, Span::AbsMax);
  for (const auto& c : svdquant_smooth_grid(20))
    best = std::min(best, calibration_error(p, smoothed_linear(p, smoothing_factors(sx, sw, c.alpha, c.beta))));
  EXPECT_DOUBLE_EQ(calibration_error(p, q), best);
  EXPECT_EQ(q.info["smooth_search"].size(), 39u);
  // Smoothing helps on outlier channels: better than naive RTN.
  EXPECT_LT(rel_err(p, q), 0.5 * rel_err(p, quantize_linear("rtn", p)));
}

TEST(LowRank, EckartYoungAndReconstruction) {
  const MatrixF w = gauss(40, 24, 7);
  const LowRank full = low_rank(w, 24, false);
  EXPECT_LT(std::sqrt(sq_diff(w, full.up * full.down)), 1e-4);
  for (int64_t r : {0, 1, 5, 12}) {
    const LowRank l = low_rank(w, r, false);
    const MatrixF res = r ? MatrixF(w - l.up * l.down) : w;
    const double tail = std::sqrt(l.singular.tail(24 - r).squaredNorm());
    EXPECT_NEAR(std::sqrt(sq_norm(res)), tail, 1e-4 * tail) << r;
  }
  EXPECT_THROW(low_rank(w, 25), Error);
  // fp16 factors: every entry is an fp16 value.
  const LowRank h = low_rank(w, 5, true);
  EXPECT_EQ(sq_diff(h.up, round_fp16(h.up)), 0.0);
  EXPECT_EQ(sq_diff(h.down, round_fp16(h.down)), 0.0);
}

TEST(SvdQuant, BranchPlusResidualReconstructsTheWeight) {
  // With an identity weight quantizer the stored residual is R exactly, so lr_up·lr_down + R = Ŵ.
  const LinearProblem p = outlier_layer("none", "none");
  const QuantizedLinear q = quantize_linear("svdquant:rank=16:smooth=0.5", p);
  ASSERT_EQ(q.rank(), 16);
  const MatrixF ws = (p.w.array().rowwise() * q.smooth.transpose().array()).matrix();
  const MatrixF recon = (q.lr_up.cast<double>() * q.lr_down.cast<double>()).cast<float>() + q.weight;
  EXPECT_LT(std::sqrt(sq_diff(recon, ws) / sq_norm(ws)), 1e-6);
  EXPECT_DOUBLE_EQ(q.weight_bits_per_element(), 32.0 + 16.0 * 16 * (96 + 128) / (96.0 * 128));
}

TEST(SvdQuant, AblationOrderOnAnOutlierLayer) {
  const LinearProblem p = outlier_layer("int4:g16", "int4:g16");
  const double naive = rel_err(p, quantize_linear("rtn", p));
  const double svd = rel_err(p, quantize_linear("svd:rank=16", p));
  const double full = rel_err(p, quantize_linear("svdquant:rank=16", p));
  const double lorc = rel_err(p, quantize_linear("lorc:rank=16", p));
  EXPECT_LT(svd, naive);
  EXPECT_LT(full, svd);
  EXPECT_LT(lorc, naive);
}

TEST(SvdQuant, RefinementKeepsTheBestAndStopsEarly) {
  const LinearProblem p = outlier_layer("int4:g16", "int4:g16");
  const QuantizedLinear one = quantize_linear("svdquant:rank=8:smooth=off", p);
  const QuantizedLinear many = quantize_linear("svdquant:rank=8:smooth=off:iters=30", p);
  const auto errs = many.info["iteration_errors"].get<std::vector<double>>();
  ASSERT_GE(errs.size(), 1u);
  EXPECT_DOUBLE_EQ(errs[0], calibration_error(p, one));
  // Early stop: every iteration before the last improved on (or tied) the best so far, the last did not
  // (unless all 30 ran).
  double best = errs[0];
  for (size_t k = 1; k + 1 < errs.size(); ++k) {
    EXPECT_LE(errs[k], best) << k;
    best = std::min(best, errs[k]);
  }
  if (errs.size() < 30) EXPECT_GT(errs.back(), best);
  EXPECT_DOUBLE_EQ(calibration_error(p, many), best);
  EXPECT_LE(calibration_error(p, many), calibration_error(p, one));
  // Without early stop all iterations run.
  const QuantizedLinear all = quantize_linear("svdquant:rank=8:smooth=off:iters=6:early_stop=off", p);
  EXPECT_EQ(all.info["iterations_run"], 6);
}

TEST(SvdQuant, BadOptionsAreRejected) {
  const LinearProblem p = outlier_layer("int4:g16", "int4:g16");
  for (const char* s : {"svdquant:rank=97", "svdquant:rank=200", "svdquant:smooth=2", "svdquant:early_stop=maybe",
                        "svd:rank=8:iters=3", "lorc:rank=500", "smoothquant:alpha=1.5", "smoothquant:alpha=search:beta=1",
                        "smoothquant:span=max"})
    EXPECT_THROW(quantize_linear(s, p), Error) << s;
}

}  // namespace
}  // namespace lowbit::quant
