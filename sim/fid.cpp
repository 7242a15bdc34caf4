// Fréchet distance, feature statistics and their files, bootstrap CI (see fid.hpp for the
// mathematics and how it relates to the scipy.linalg.sqrtm formula of pytorch-fid).
#include "sim/fid.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/safetensors.hpp"
#include "sim/tensor.hpp"

namespace lowbit {

namespace {

constexpr double kMaxAsymmetry = 1e-8;  // relative to max |Σ|: beyond rounding of a covariance

// R = Σ^{1/2} = Q·diag(sqrt(max(d, 0)))·Qᵀ of a symmetric PSD matrix (negative eigenvalues are
// rounding noise and clamped).
Eigen::MatrixXd psd_sqrt(const Eigen::MatrixXd& sym) {
  if (sym.size() == 0) return sym;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(sym);
  if (es.info() != Eigen::Success) throw Error("frechet_distance: eigendecomposition did not converge");
  const Eigen::VectorXd d = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return es.eigenvectors() * d.asDiagonal() * es.eigenvectors().transpose();
}

Eigen::MatrixXd symmetrised(const Eigen::MatrixXd& s) { return 0.5 * (s + s.transpose()); }

// Checks a statistics pair: a non-empty mean, a matching square covariance, finite values and
// symmetry up to kMaxAsymmetry.
void check_stats(const FeatureStats& s, const std::string& what) {
  const Eigen::Index d = s.mu.size();
  if (d < 1) throw Error(fmt::format("{}: empty mean vector", what));
  if (s.sigma.rows() != d || s.sigma.cols() != d)
    throw Error(fmt::format("{}: covariance is {}x{} but the mean has {} dims", what,
                            s.sigma.rows(), s.sigma.cols(), d));
  for (Eigen::Index i = 0; i < d; ++i)
    if (!std::isfinite(s.mu[i])) throw Error(fmt::format("{}: mean[{}] is {}", what, i, s.mu[i]));
  double max_abs = 0.0, max_asym = 0.0;
  for (Eigen::Index i = 0; i < d; ++i)
    for (Eigen::Index j = 0; j < d; ++j) {
      const double v = s.sigma(i, j);
      if (!std::isfinite(v)) throw Error(fmt::format("{}: covariance[{}, {}] is {}", what, i, j, v));
      max_abs = std::max(max_abs, std::abs(v));
      max_asym = std::max(max_asym, std::abs(v - s.sigma(j, i)));
    }
  if (max_asym > kMaxAsymmetry * max_abs)
    throw Error(fmt::format("{}: covariance is not symmetric (max |S - S^T| = {:.3g}, max |S| = {:.3g})",
                            what, max_asym, max_abs));
}

// The reference side of FD(a, b), prepared once (the bootstrap reuses it for every replicate).
// Features whose row of Σb is exactly zero (dead ReLUs) are left out of the square root: R has
// a zero row and column there, so M = R·Σa·R has too and those eigenvalues are exactly 0 —
// dropping them is exact, where an eigensolver would return them as rounding noise whose square
// roots reach the trace (how much depends on the build's vectorisation: 2.4e-8 relative on the
// shipped real statistics without AVX).
struct Reference {
  Eigen::VectorXd mu;
  std::vector<Eigen::Index> live;  // features with a nonzero row of Σb
  Eigen::MatrixXd root;            // (Σb restricted to live)^{1/2}
  double trace = 0;                // tr Σb
};

Reference make_reference(const FeatureStats& b) {
  const Eigen::MatrixXd s = symmetrised(b.sigma);
  Reference r{b.mu, {}, {}, s.trace()};
  for (Eigen::Index i = 0; i < s.rows(); ++i)
    if (!(s.row(i).array() == 0.0).all()) r.live.push_back(i);
  r.root = psd_sqrt(s(r.live, r.live));
  return r;
}

// FD with the reference's square root precomputed: M = R·Σa·R (live features), tr sqrt =
// Σ sqrt(max(λ, 0)). NaN if the eigensolver fails (it runs inside parallel loops, where nothing
// may throw).
double frechet_to(const Eigen::VectorXd& mu, const Eigen::MatrixXd& sigma_sym, const Reference& ref) {
  const Eigen::MatrixXd m = symmetrised(ref.root * sigma_sym(ref.live, ref.live) * ref.root);
  if (m.size() == 0) return (mu - ref.mu).squaredNorm() + sigma_sym.trace() + ref.trace;  // Σb = 0
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(m, Eigen::EigenvaluesOnly);
  if (es.info() != Eigen::Success) return std::numeric_limits<double>::quiet_NaN();
  double tr_sqrt = 0.0;
  for (Eigen::Index i = 0; i < es.eigenvalues().size(); ++i) tr_sqrt += std::sqrt(std::max(es.eigenvalues()[i], 0.0));
  return (mu - ref.mu).squaredNorm() + sigma_sym.trace() + ref.trace - 2.0 * tr_sqrt;
}

// Weighted statistics: weight c_j per row (resampling counts), N = Σ c_j samples.
FeatureStats weighted_stats(const quant::MatrixD& x, const Eigen::VectorXd& c, int64_t n) {
  FeatureStats s;
  s.n = n;
  s.mu = (x.transpose() * c) / static_cast<double>(n);
  const quant::MatrixD xc = x.rowwise() - s.mu.transpose();
  const quant::MatrixD wx = xc.array().colwise() * c.array();
  s.sigma = symmetrised(wx.transpose() * xc) / static_cast<double>(n - 1);
  return s;
}

Tensor f64_tensor(std::string name, std::vector<int64_t> shape, const double* p, size_t count) {
  return tensor_from_f64(std::move(shape), std::span<const double>(p, count), std::move(name));
}

}  // namespace

FeatureStats feature_stats_f64(const quant::MatrixD& x) {
  const int64_t n = x.rows(), d = x.cols();
  if (n < 2) throw Error(fmt::format("feature_stats: {} sample(s); a covariance needs at least 2", n));
  if (d < 1) throw Error("feature_stats: features have no columns");
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      if (!std::isfinite(x(i, j)))
        throw Error(fmt::format("feature_stats: feature (row {}, column {}) is {}", i, j, x(i, j)));
  return weighted_stats(x, Eigen::VectorXd::Ones(n), n);
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  check_stats(a, "frechet_distance: first statistics");
  check_stats(b, "frechet_distance: second statistics");
  if (a.mu.size() != b.mu.size())
    throw Error(fmt::format("frechet_distance: dimension mismatch ({} vs {} features)", a.mu.size(),
                            b.mu.size()));
  const double fd = frechet_to(a.mu, symmetrised(a.sigma), make_reference(b));
  if (std::isnan(fd)) throw Error("frechet_distance: eigendecomposition did not converge");
  return fd;
}

FeatureStats read_feature_stats(const std::filesystem::path& path, const std::string& prefix) {
  if (prefix.empty()) throw Error(fmt::format("{}: empty statistics prefix", path.string()));
  const auto t = read_safetensors(path, {prefix + ".mu", prefix + ".sigma", prefix + ".n"});
  const std::string file = path.string();
  for (int k = 0; k < 2; ++k)
    if (t[k].dtype != DType::F64 && t[k].dtype != DType::F32)
      throw Error(fmt::format("{}: tensor '{}' is {}, expected F64", file, t[k].name, dtype_name(t[k].dtype)));
  if (t[0].shape.size() != 1 || t[0].shape[0] < 1)
    throw Error(fmt::format("{}: tensor '{}' has shape {}, expected (D,) with D >= 1", file, t[0].name,
                            shape_to_string(t[0].shape)));
  const int64_t d = t[0].shape[0];
  if (t[1].shape != std::vector<int64_t>{d, d})
    throw Error(fmt::format("{}: tensor '{}' has shape {}, expected ({}, {}) to match '{}'", file,
                            t[1].name, shape_to_string(t[1].shape), d, d, t[0].name));
  if (t[2].dtype != DType::I32 || t[2].numel() != 1 || t[2].shape.size() > 1)
    throw Error(fmt::format("{}: tensor '{}' must be an I32 of shape (1,) or (), got {} {}", file,
                            t[2].name, dtype_name(t[2].dtype), shape_to_string(t[2].shape)));
  FeatureStats s;
  const auto mu = to_f64(t[0]);
  const auto sigma = to_f64(t[1]);
  s.mu = Eigen::Map<const Eigen::VectorXd>(mu.data(), d);
  // Row-major file layout into the column-major matrix.
  s.sigma = Eigen::Map<const quant::MatrixD>(sigma.data(), d, d);
  int32_t n = 0;
  std::memcpy(&n, t[2].data.data(), sizeof n);
  if (n < 2)
    throw Error(fmt::format("{}: tensor '{}' = {}; statistics need at least 2 samples", file, t[2].name, n));
  s.n = n;
  check_stats(s, fmt::format("{}: statistics '{}'", file, prefix));
  return s;
}

void write_feature_stats(const std::filesystem::path& path,
                         const std::vector<std::pair<std::string, FeatureStats>>& stats,
                         const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  std::vector<Tensor> tensors;
  for (const auto& [prefix, s] : stats) {
    if (prefix.empty()) throw Error(fmt::format("{}: empty statistics prefix", file));
    check_stats(s, fmt::format("{}: statistics '{}'", file, prefix));
    if (s.n < 2 || s.n > std::numeric_limits<int32_t>::max())
      throw Error(fmt::format("{}: statistics '{}' have n = {}; the file stores 2 <= n < 2^31",
                              file, prefix, s.n));
    const auto d = static_cast<int64_t>(s.mu.size());
    const quant::MatrixD sigma = s.sigma;  // row-major copy: the file's C order
    tensors.push_back(f64_tensor(prefix + ".mu", {d}, s.mu.data(), static_cast<size_t>(d)));
    tensors.push_back(f64_tensor(prefix + ".sigma", {d, d}, sigma.data(), static_cast<size_t>(d * d)));
    const auto n = static_cast<int32_t>(s.n);
    tensors.push_back(tensor_from_raw(DType::I32, {1}, std::as_bytes(std::span(&n, 1)), prefix + ".n"));
  }
  write_safetensors(path, tensors, metadata);
}

namespace {

// The bootstrap loop of the Fréchet distances: replicate b resamples n rows with
// bootstrap_indices(seed, n, b), given to `fd` as resampling counts (parallel over replicates,
// independent of the thread count).
template <class Fd>
BootstrapResult fd_bootstrap(double point, int64_t n, const BootstrapOptions& o, const Fd& fd) {
  bootstrap_index(o.seed, n, o.replicates - 1, n - 1);  // counter range checked before the loop
  std::vector<double> samples(static_cast<size_t>(o.replicates));
#pragma omp parallel for schedule(dynamic)
  for (int64_t b = 0; b < o.replicates; ++b) {
    Eigen::VectorXd counts = Eigen::VectorXd::Zero(n);
    for (int64_t i : bootstrap_indices(o.seed, n, b)) counts[i] += 1.0;
    samples[static_cast<size_t>(b)] = fd(counts);
  }
  BootstrapResult r = summarize_bootstrap(point, std::move(samples), o.level);
  r.seed = o.seed;
  return r;
}

}  // namespace

BootstrapResult frechet_bootstrap(const quant::MatrixD& generated, const FeatureStats& reference,
                                  const BootstrapOptions& o) {
  check_bootstrap_options(o, "frechet_bootstrap");
  check_stats(reference, "frechet_bootstrap: reference statistics");
  const FeatureStats gen = feature_stats_f64(generated);  // validates N >= 2 and finiteness
  if (gen.mu.size() != reference.mu.size())
    throw Error(fmt::format("frechet_bootstrap: dimension mismatch ({} generated vs {} reference features)",
                            gen.mu.size(), reference.mu.size()));
  const Reference ref = make_reference(reference);
  const int64_t n = generated.rows();
  return fd_bootstrap(frechet_to(gen.mu, gen.sigma, ref), n, o, [&](const Eigen::VectorXd& counts) {
    const FeatureStats s = weighted_stats(generated, counts, n);
    return frechet_to(s.mu, s.sigma, ref);
  });
}

BootstrapResult frechet_bootstrap(const quant::MatrixD& generated, const quant::MatrixD& reference,
                                  const BootstrapOptions& o) {
  return frechet_bootstrap(generated, feature_stats_f64(reference), o);
}

BootstrapResult frechet_bootstrap_paired(const quant::MatrixD& generated, const quant::MatrixD& reference,
                                         const BootstrapOptions& o) {
  check_bootstrap_options(o, "frechet_bootstrap_paired");
  if (generated.rows() != reference.rows() || generated.cols() != reference.cols())
    throw Error(fmt::format("frechet_bootstrap_paired: {} x {} generated vs {} x {} reference features (paired rows)",
                            generated.rows(), generated.cols(), reference.rows(), reference.cols()));
  const int64_t n = generated.rows();
  return fd_bootstrap(frechet_distance(feature_stats_f64(generated), feature_stats_f64(reference)), n, o,
                      [&](const Eigen::VectorXd& counts) {
                        return frechet_distance(weighted_stats(generated, counts, n), weighted_stats(reference, counts, n));
                      });
}

}  // namespace lowbit
