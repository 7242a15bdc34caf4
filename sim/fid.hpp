// Fréchet distance between Gaussians fitted to feature sets ("FID", Heusel et al., NeurIPS 2017)
// on the featnet features (sim/featnet.hpp), with cached statistics files and a bootstrap CI.
//
//   FD(a, b) = |mu_a − mu_b|² + tr(Σa) + tr(Σb) − 2·tr((Σa Σb)^{1/2})
//
// The reference implementation (pytorch-fid; experiments/tinydit/featnet.py frechet_distance)
// takes scipy.linalg.sqrtm(Σa·Σb), retries with Σ + 1e-6·I when the result is not finite, and
// keeps the real part of its trace. Here tr((Σa Σb)^{1/2}) = Σ_i sqrt(max(λ_i, 0)) over the
// eigenvalues λ_i of the symmetric matrix M = R·Σa·R with R = Σb^{1/2}, computed by Eigen's
// SelfAdjointEigenSolver (eigenvalues of Σb below 0, rounding noise of a PSD matrix, clamped
// to 0). Why the two agree: Σa Σb = (Σa R)·R and M = R·(Σa R) are products XY and YX, which have
// the same eigenvalues (with multiplicities, singular or not). M is symmetric PSD, so these are
// real and ≥ 0, and Σa Σb is diagonalisable (for invertible Σb it is similar to M). Its principal
// square root, which sqrtm returns, therefore has the eigenvalues sqrt(λ_i) and the trace
// Σ sqrt(λ_i). Where they differ: sqrtm works on the non-symmetric product with a complex Schur
// form, so rounding yields small imaginary parts (dropped there) and, for singular covariances,
// can fail and trigger the eps retry, which shifts the result by O(1e-6·tr); the symmetric form
// has no complex part and needs no retry. On full-rank covariances the two agree to ~1e-15
// relative. On singular ones both are only sqrt(rounding)-accurate: a zero eigenvalue computed as
// ±ε·|Σ| adds up to sqrt(ε·|Σ|) to the trace (random rank-deficient 16×16 pairs: 8e-9
// relative). Featnet has dead ReLU features, i.e. exactly zero rows and columns of Σ (31 and 32
// of 128 in models/featnet/real_stats.safetensors). Features whose row of Σb is exactly zero are
// left out of R and M (their eigenvalues of M are exactly 0, so this is exact); the result then
// agrees with sqrtm to 2e-10 there in any build, where an eigensolver given the zero rows
// smears their eigenvalues into rounding noise (numpy.linalg.eigh: 2e-7 off; Eigen: 6e-11 with
// AVX, 2.4e-8 without) (tests/sim/test_fid.cpp).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "quantizers/matrix.hpp"
#include "sim/bootstrap.hpp"

namespace lowbit {

struct FeatureStats {
  Eigen::VectorXd mu;     // D
  Eigen::MatrixXd sigma;  // D × D, symmetric
  int64_t n = 0;          // samples behind the statistics
};

// Mean and unbiased covariance (divisor N − 1, numpy.cov(rowvar=False)) of an N × D feature
// matrix, one sample per row, accumulated in float64 (two passes: mean, then centred products).
// Throws lowbit::Error if N < 2, D < 1 or a feature is NaN/Inf (naming its row and column).
// Any real Eigen matrix expression works (e.g. FeatNet's float MatrixF, or x.topRows(k)).
FeatureStats feature_stats_f64(const quant::MatrixD& features);
template <typename Derived>
FeatureStats feature_stats(const Eigen::MatrixBase<Derived>& features) {
  return feature_stats_f64(features.template cast<double>());
}

// FD(a, b) as above; b plays the reference (its square root is taken), so FD(a, b) and
// FD(b, a) agree to rounding. Throws lowbit::Error on a dimension mismatch, D < 1, non-finite
// statistics or a covariance that is not symmetric (relative asymmetry above 1e-8); the
// covariances are symmetrised ((Σ + Σᵀ)/2) before use. Not clamped: for (nearly) equal
// statistics the result is 0 up to rounding of size ~1e-15·(tr Σa + tr Σb) and may be negative.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// Statistics files: safetensors with `<prefix>.mu` (D) F64, `<prefix>.sigma` (D, D) F64 and
// `<prefix>.n` (1,) I32 — the layout of models/featnet/real_stats.safetensors (prefixes
// "train", "heldout"; experiments/tinydit/make_reference.py). The reader also accepts F32
// mu/sigma and a scalar-shaped n, and checks shapes, n >= 2, finiteness and symmetry.
FeatureStats read_feature_stats(const std::filesystem::path& path, const std::string& prefix);
// Writes one or more prefixed statistics (n must fit in int32) plus string metadata.
void write_feature_stats(const std::filesystem::path& path,
                         const std::vector<std::pair<std::string, FeatureStats>>& stats,
                         const std::map<std::string, std::string>& metadata = {});

// Bootstrap CI of FD(generated, reference): the N generated rows are resampled with replacement
// (bootstrap_indices(seed, N, b) for replicate b), the reference is held fixed. point =
// frechet_distance(feature_stats(generated), reference) exactly; replicate b = the FD of the
// statistics of the resampled rows (computed from resampling counts, equal to feature_stats of
// the resampled matrix up to rounding). Replicates run in parallel and do not depend on the
// thread count. The bootstrap distribution of FD is biased upwards (resampling adds noise to the
// mean and covariance), so the percentile interval may sit above the point estimate when FD is
// small relative to its sampling noise.
BootstrapResult frechet_bootstrap(const quant::MatrixD& generated, const FeatureStats& reference,
                                  const BootstrapOptions& options = {});
// The same with reference features (reduced to feature_stats(reference) once).
BootstrapResult frechet_bootstrap(const quant::MatrixD& generated, const quant::MatrixD& reference,
                                  const BootstrapOptions& options = {});
// Paired sets (row i of both from the same noise and label, e.g. a quantized model's images and
// the full-precision model's): each replicate draws the same rows from both, so the sampling
// noise common to both sets cancels (two identical sets give 0 in every replicate) instead of
// being charged to the difference.
BootstrapResult frechet_bootstrap_paired(const quant::MatrixD& generated, const quant::MatrixD& reference,
                                         const BootstrapOptions& options = {});

}  // namespace lowbit
