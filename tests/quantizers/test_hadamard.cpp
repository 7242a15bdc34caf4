// Hadamard matrices, rotations, J and the rotate / ARS linear algorithms against independently
// built references (Sylvester by Kronecker recursion, explicit sign vectors, dense products).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "formats/error.hpp"
#include "formats/philox.hpp"
#include "quantizers/hadamard.hpp"

namespace lowbit::quant {
namespace {

// Gaussian-ish test data from a fixed generator (uniform sums; no library distribution).
MatrixF noise(int64_t rows, int64_t cols, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) {
    double s = 0;
    for (int k = 0; k < 4; ++k) s += static_cast<double>(gen() >> 8) * 0x1p-24 - 0.5;
    m.data()[i] = scale * static_cast<float>(s * std::sqrt(3.0));
  }
  return m;
}

// Sylvester H_n by Kronecker recursion H_2n = H_2 ⊗ H_n, in double.
MatrixD sylvester(int64_t n) {
  MatrixD h = MatrixD::Ones(1, 1);
  while (h.rows() < n) {
    const int64_t k = h.rows();
    MatrixD g(2 * k, 2 * k);
    g << h, h, h, -h;
    h = g;
  }
  return h;
}

double rel_err(const MatrixD& got, const MatrixD& want) { return (got - want).norm() / want.norm(); }

TEST(Hadamard, FwhtEqualsSylvesterProduct) {
  for (int64_t n = 1; n <= 512; n *= 2) {
    MatrixF x = noise(5, n, static_cast<uint32_t>(n));
    const MatrixD want = x.cast<double>() * sylvester(n) / std::sqrt(static_cast<double>(n));
    fwht_rows(x);
    EXPECT_LT(rel_err(x.cast<double>(), want), 1e-6) << "n = " << n;
  }
  MatrixF one(1, 4);
  one << 1, 0, 0, 0;  // first row of H_4/2
  fwht_rows(one);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(one(0, j), 0.5f);
}

TEST(Hadamard, FwhtRejectsNonPowerOfTwo) {
  MatrixF x = MatrixF::Zero(2, 12);
  EXPECT_THROW(fwht_rows(x), Error);
  MatrixF y = MatrixF::Zero(2, 0);
  EXPECT_THROW(fwht_rows(y), Error);
}

TEST(Hadamard, DenseMatricesAreHadamardForEverySupportedOrder) {
  // Required: 2^k and 12·2^k, 20·2^k, 36·2^k up to 144.
  std::set<int64_t> required = {1, 2, 4, 8, 16, 32, 64, 128, 12, 24, 48, 96, 20, 40, 80, 36, 72, 144};
  int supported = 0;
  for (int64_t n = 1; n <= 144; ++n) {
    MatrixF h;
    try {
      h = hadamard_matrix(n);
    } catch (const Error&) {
      EXPECT_EQ(required.count(n), 0u) << "order " << n << " must be supported";
      continue;
    }
    ++supported;
    ASSERT_EQ(h.rows(), n);
    EXPECT_TRUE((h.array().abs() == 1.0f).all()) << n;
    // Integer sums of ±1 up to 144 terms are exact in float.
    const MatrixF g = h * h.transpose();
    EXPECT_TRUE(g == static_cast<float>(n) * MatrixF::Identity(n, n)) << "H·Hᵀ != n·I for n = " << n;
  }
  EXPECT_GE(supported, 18);
  for (int64_t n : {3, 5, 6, 7, 10, 14, 18}) EXPECT_THROW(hadamard_matrix(n), Error) << n;
  EXPECT_THROW(hadamard_matrix(0), Error);
}

TEST(Hadamard, DiTDimensionsFactorAsDocumented) {
  EXPECT_EQ(hadamard_factors(1152), std::make_pair(int64_t{36}, int64_t{32}));
  EXPECT_EQ(hadamard_factors(4608), std::make_pair(int64_t{36}, int64_t{128}));
  EXPECT_EQ(hadamard_factors(3072), std::make_pair(int64_t{12}, int64_t{256}));
  EXPECT_EQ(hadamard_factors(320), std::make_pair(int64_t{20}, int64_t{16}));
  EXPECT_EQ(hadamard_factors(1280), std::make_pair(int64_t{20}, int64_t{64}));
  EXPECT_EQ(hadamard_factors(256), std::make_pair(int64_t{1}, int64_t{256}));
}

void expect_orthogonal_and_consistent(const Rotation& r, uint32_t seed) {
  const int64_t n = r.dim();
  const MatrixF h = r.matrix();
  EXPECT_LT((h.cast<double>() * h.cast<double>().transpose() - MatrixD::Identity(n, n)).cwiseAbs().maxCoeff(), 1e-5)
      << r.spec();
  MatrixF x = noise(7, n, seed);
  const MatrixD want = x.cast<double>() * h.cast<double>();
  r.apply(x);
  EXPECT_LT(rel_err(x.cast<double>(), want), 1e-5) << r.spec();
}

TEST(Rotation, HadamardIsTheNormalizedKroneckerMatrix) {
  for (int64_t n : {1, 64, 12, 24, 36, 144, 160, 96}) {
    const RotationPtr r = make_rotation("hadamard", n, 0);
    expect_orthogonal_and_consistent(*r, 11);
    const MatrixD want = hadamard_matrix(n).cast<double>() / std::sqrt(static_cast<double>(n));
    EXPECT_LT((r->matrix().cast<double>() - want).cwiseAbs().maxCoeff(), 1e-6) << n;
  }
}

TEST(Rotation, RhtIsSignsThenHadamard) {
  const int64_t n = 48;
  const RotationPtr r = make_rotation("rht", n, 1234);
  expect_orthogonal_and_consistent(*r, 12);
  MatrixD d = MatrixD::Zero(n, n);
  for (int64_t i = 0; i < n; ++i) d(i, i) = (sr_bits(1234, static_cast<uint64_t>(i)) & 1u) ? -1.0 : 1.0;
  const MatrixD want = d * hadamard_matrix(n).cast<double>() / std::sqrt(static_cast<double>(n));
  EXPECT_LT((r->matrix().cast<double>() - want).cwiseAbs().maxCoeff(), 1e-6);
  const int negatives = static_cast<int>((d.diagonal().array() < 0).count());
  EXPECT_GT(negatives, 0);
  EXPECT_LT(negatives, n);
}

TEST(Rotation, RhtSeedIsDeterministic) {
  const MatrixF a = make_rotation("rht", 128, 7)->matrix();
  const MatrixF b = make_rotation("rht", 128, 7)->matrix();
  const MatrixF c = make_rotation("rht", 128, 8)->matrix();
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
}

TEST(Rotation, BlockIsBlockDiagonalSylvester) {
  const RotationPtr r = make_rotation("block", 256, 0, 64);
  expect_orthogonal_and_consistent(*r, 13);
  MatrixD want = MatrixD::Zero(256, 256);
  for (int k = 0; k < 4; ++k) want.block(64 * k, 64 * k, 64, 64) = sylvester(64) / 8.0;
  EXPECT_LT((r->matrix().cast<double>() - want).cwiseAbs().maxCoeff(), 1e-7);
}

MatrixF outlier_activations(int64_t rows, int64_t cols, int64_t channel, float factor, uint32_t seed) {
  MatrixF x = noise(rows, cols, seed);
  x.col(channel) *= factor;
  return x;
}

TEST(Rotation, DuQuantIsOrthogonalAndRecordsItsChoices) {
  const MatrixF calib = outlier_activations(32, 256, 37, 100.0f, 3);
  for (bool shared : {false, true}) {
    const RotationPtr r = make_duquant_rotation(calib, 64, 32, 5, shared);
    expect_orthogonal_and_consistent(*r, 14);
    const auto& d = dynamic_cast<const DuQuantRotation&>(*r);
    EXPECT_EQ(d.first_steps().size(), shared ? 1u : 4u);
    // The permutation is a permutation.
    std::vector<int64_t> p = d.permutation();
    std::sort(p.begin(), p.end());
    for (int64_t i = 0; i < 256; ++i) EXPECT_EQ(p[static_cast<size_t>(i)], i);
  }
  // The block holding the outlier channel takes at least one greedy step.
  const RotationPtr r = make_duquant_rotation(calib, 64, 32, 5);
  const auto& d = dynamic_cast<const DuQuantRotation&>(*r);
  EXPECT_GT(d.first_steps()[0], 0);
  EXPECT_EQ(r->spec().rfind("duquant:dim=256:block=64:shared=0:steps1=", 0), 0u) << r->spec();
}

TEST(Rotation, RotationsShrinkAnOutlierChannel) {
  const MatrixF x = outlier_activations(64, 256, 37, 100.0f, 4);
  const float before = x.cwiseAbs().maxCoeff();
  std::vector<RotationPtr> rots = {make_rotation("hadamard", 256, 0), make_rotation("rht", 256, 9),
                                   make_rotation("block", 256, 0, 64), make_duquant_rotation(x, 64, 64, 1)};
  for (const auto& r : rots) {
    MatrixF y = x;
    r->apply(y);
    EXPECT_LT(y.cwiseAbs().maxCoeff(), 0.5f * before) << r->spec();
    // Orthogonal: the Frobenius norm is kept.
    EXPECT_NEAR(std::sqrt(sq_norm(y)), std::sqrt(sq_norm(x)), 1e-5 * std::sqrt(sq_norm(x))) << r->spec();
  }
}

TEST(Rotation, BadRequestsGetClearErrors) {
  EXPECT_THROW(make_rotation("nosuch", 64, 0), Error);
  EXPECT_THROW(make_rotation("hadamard", 6, 0), Error);
  EXPECT_THROW(make_rotation("hadamard", 0, 0), Error);
  EXPECT_THROW(make_rotation("block", 96, 0, 64), Error);  // 64 does not divide 96
  EXPECT_THROW(make_rotation("block", 96, 0, 48), Error);  // not a power of two
  EXPECT_THROW(make_rotation("duquant", 64, 0), Error);
  EXPECT_THROW(make_duquant_rotation(MatrixF::Zero(4, 96), 64, 8), Error);
  EXPECT_THROW(make_duquant_rotation(MatrixF::Zero(0, 64), 64, 8), Error);
  EXPECT_THROW(make_duquant_rotation(MatrixF::Ones(4, 64), 64, -1), Error);
  MatrixF x = MatrixF::Zero(2, 32);
  EXPECT_THROW(make_rotation("hadamard", 64, 0)->apply(x), Error);
  EXPECT_THROW(make_rotation("block", 64, 0, 32)->apply(x), Error);
}

TEST(Fluctuation, JIsTheRms) {
  EXPECT_DOUBLE_EQ(fluctuation_j(MatrixF::Constant(5, 7, -3.0f)), 3.0);
  MatrixF x(1, 4);
  x << 1, -1, 3, -3;
  EXPECT_DOUBLE_EQ(fluctuation_j(x), std::sqrt(5.0));
  EXPECT_THROW(fluctuation_j(MatrixF(0, 3)), Error);
}

LinearProblem exact_problem(const MatrixF& x, const MatrixF& w) {
  return LinearProblem{x, w, VectorF::LinSpaced(w.rows(), -1.0f, 1.0f), make_quantizer("none"), make_quantizer("none"), 3};
}

double output_rel_err(const LinearProblem& p, const QuantizedLinear& q) {
  const MatrixF y = linear_forward(p.x, p.w, p.bias);
  return std::sqrt(sq_diff(q.forward(p.x), y) / sq_norm(y));
}

TEST(RotateLinear, UnquantizedLayerIsReproducedForEveryKind) {
  const MatrixF x = outlier_activations(24, 128, 5, 50.0f, 21), w = noise(16, 128, 22, 0.1f);
  const LinearProblem p = exact_problem(x, w);
  for (const char* text : {"rotate", "rotate:kind=rht:seed=4", "rotate:kind=block:block=64",
                           "rotate:kind=duquant:block=64:steps=16", "rotate:kind=duquant:block=32:steps=8:shared"}) {
    Spec spec(text);
    const QuantizedLinear q = rotate_linear(p, spec);
    EXPECT_LT(output_rel_err(p, q), 1e-5) << text;  // relative 1e-5 in Frobenius norm
    ASSERT_TRUE(q.rotation) << text;
    EXPECT_EQ(q.weight_bits, 32.0);
  }
  // Non-power-of-two input features: 96 = 12·8.
  const LinearProblem p96 = exact_problem(noise(8, 96, 23), noise(5, 96, 24));
  Spec spec("rotate:kind=rht");
  EXPECT_LT(output_rel_err(p96, rotate_linear(p96, spec)), 1e-5);
}

TEST(RotateLinear, QuantizesTheRotatedSides) {
  const MatrixF x = noise(16, 64, 31), w = noise(8, 64, 32, 0.2f);
  LinearProblem p{x, w, VectorF(), make_quantizer("int4:g16"), make_quantizer("int4:g16"), 0};
  Spec spec("rotate:kind=block:block=32");
  const QuantizedLinear q = rotate_linear(p, spec);
  MatrixF xr = x, wr = w;
  make_rotation("block", 64, 0, 32)->apply(xr);
  make_rotation("block", 64, 0, 32)->apply(wr);
  EXPECT_EQ(sq_diff(q.weight, p.wq->quantize(wr)), 0.0);
  EXPECT_EQ(sq_diff(q.forward(x), linear_forward(p.aq->quantize(xr), p.wq->quantize(wr))), 0.0);
  EXPECT_DOUBLE_EQ(q.weight_bits, 4.0 + 32.0 / 16);
  EXPECT_EQ(q.info["kind"], "block");
  EXPECT_EQ(q.info["block"], 32);
}

TEST(RotateLinear, BadOptionsThrow) {
  const LinearProblem p = exact_problem(noise(4, 64, 1), noise(4, 64, 2));
  Spec a("rotate:kind=spiral");
  EXPECT_THROW(rotate_linear(p, a), Error);
  Spec b("rotate:kind=block:block=3");
  EXPECT_THROW(rotate_linear(p, b), Error);
  Spec c("rotate:block=x");
  EXPECT_THROW(rotate_linear(p, c), Error);
}

TEST(Ars, SmallJPicksBlockHadamardAndLargeJPicksDuQuant) {
  // Small activations and weights: J of the smoothed X ≈ 0.01.
  const LinearProblem small = exact_problem(noise(32, 128, 41, 0.01f), noise(8, 128, 42, 0.01f));
  Spec s1("ars:block=64");
  const QuantizedLinear q1 = ars_linear(small, s1);
  EXPECT_EQ(q1.info["choice"], "hadamard");
  EXPECT_LT(q1.info["J"].get<double>(), 1.0);
  EXPECT_EQ(q1.rotation->spec().rfind("block:", 0), 0u) << q1.rotation->spec();
  EXPECT_LT(output_rel_err(small, q1), 1e-5);

  // Large activations with a salient channel: J ≫ 1 after smoothing.
  const LinearProblem big = exact_problem(outlier_activations(32, 128, 9, 50.0f, 43) * 20.0f, noise(8, 128, 44));
  Spec s2("ars:block=64:steps=16");
  const QuantizedLinear q2 = ars_linear(big, s2);
  EXPECT_EQ(q2.info["choice"], "duquant");
  EXPECT_GE(q2.info["J"].get<double>(), 1.0);
  EXPECT_EQ(q2.rotation->spec().rfind("duquant:", 0), 0u) << q2.rotation->spec();
  EXPECT_LT(output_rel_err(big, q2), 1e-5);

  // The threshold decides: τ above J turns the same layer to the Hadamard path.
  Spec s3(fmt::format("ars:block=64:tau={}", q2.info["J"].get<double>() * 2));
  EXPECT_EQ(ars_linear(big, s3).info["choice"], "hadamard");
}

TEST(Ars, SmoothingFactorsFollowSmoothQuant) {
  MatrixF x = noise(8, 64, 51), w = noise(4, 64, 52);
  x.col(3).setZero();  // max|X_3| = 0 → λ = 1
  const LinearProblem p = exact_problem(x, w);
  Spec spec("ars:block=32:alpha=0.25");
  const QuantizedLinear q = ars_linear(p, spec);
  ASSERT_EQ(q.smooth.size(), 64);
  for (int64_t j : {0, 10, 63}) {
    const double xm = x.col(j).cwiseAbs().maxCoeff(), wm = w.col(j).cwiseAbs().maxCoeff();
    EXPECT_FLOAT_EQ(q.smooth(j), static_cast<float>(std::pow(xm, 0.25) / std::pow(wm, 0.75))) << j;
  }
  EXPECT_EQ(q.smooth(3), 1.0f);
  EXPECT_DOUBLE_EQ(q.info["J"].get<double>(),
                   fluctuation_j((x.array().rowwise() / q.smooth.transpose().array()).matrix()));
  EXPECT_LT(output_rel_err(p, q), 1e-5);
  Spec bad("ars:tau=abc");
  EXPECT_THROW(ars_linear(p, bad), Error);
  Spec bad2("ars:small=duquant");
  EXPECT_THROW(ars_linear(p, bad2), Error);
  Spec bad3("ars:alpha=1.5");
  EXPECT_THROW(ars_linear(p, bad3), Error);
}

}  // namespace
}  // namespace lowbit::quant
