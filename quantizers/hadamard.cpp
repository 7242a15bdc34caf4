// Hadamard matrices and rotations, the DuQuant-style rotation, J, and the rotate / ARS linear
// algorithms (see hadamard.hpp).
#include "quantizers/hadamard.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <numeric>
#include <tuple>

#include "formats/error.hpp"
#include "formats/philox.hpp"

namespace lowbit::quant {
namespace {

constexpr const char* kSupportedOrders =
    "n = 2^k, or m·2^k with m = q + 1 (q prime, q ≡ 3 mod 4: Paley I, e.g. 12, 20, 24, 44) or "
    "m = 2(q + 1) (q prime, q ≡ 1 mod 4: Paley II, e.g. 28, 36, 60)";

bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

bool is_prime(int64_t q) {
  if (q < 2) return false;
  for (int64_t d = 2; d * d <= q; ++d)
    if (q % d == 0) return false;
  return true;
}

// Paley I needs q prime ≡ 3 (mod 4) with m = q + 1; Paley II q prime ≡ 1 (mod 4) with m = 2(q + 1).
bool paley1_order(int64_t m) { return m >= 4 && is_prime(m - 1) && (m - 1) % 4 == 3; }
bool paley2_order(int64_t m) { return m % 2 == 0 && is_prime(m / 2 - 1) && (m / 2 - 1) % 4 == 1; }

// Jacobsthal matrix Q_ij = χ(j − i) with χ the quadratic character of GF(q) (χ(0) = 0).
MatrixF jacobsthal(int64_t q) {
  std::vector<int> chi(static_cast<size_t>(q), -1);
  chi[0] = 0;
  for (int64_t a = 1; a < q; ++a) chi[static_cast<size_t>((a * a) % q)] = 1;
  MatrixF m(q, q);
  for (int64_t i = 0; i < q; ++i)
    for (int64_t j = 0; j < q; ++j) m(i, j) = static_cast<float>(chi[static_cast<size_t>(((j - i) % q + q) % q)]);
  return m;
}

// Paley construction I (q ≡ 3 mod 4): H = I + [[0, 1ᵀ], [−1, Q]]; the bordered matrix S is skew
// with S·Sᵀ = q·I, so H·Hᵀ = (q + 1)·I.
MatrixF paley1(int64_t q) {
  const int64_t n = q + 1;
  MatrixF h = MatrixF::Zero(n, n);
  h.block(0, 1, 1, q).setOnes();
  h.block(1, 0, q, 1).setConstant(-1.0f);
  h.block(1, 1, q, q) = jacobsthal(q);
  h += MatrixF::Identity(n, n);
  return h;
}

// Paley construction II (q ≡ 1 mod 4): the symmetric conference matrix C = [[0, 1ᵀ], [1, Q]]
// with each 0 replaced by [[1, −1], [−1, −1]] and each ±1 by ±[[1, 1], [1, −1]]; order 2(q + 1).
MatrixF paley2(int64_t q) {
  const int64_t c = q + 1;
  MatrixF conf = MatrixF::Zero(c, c);
  conf.block(0, 1, 1, q).setOnes();
  conf.block(1, 0, q, 1).setOnes();
  conf.block(1, 1, q, q) = jacobsthal(q);
  MatrixF h(2 * c, 2 * c);
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = 0; j < c; ++j) {
      const float v = conf(i, j);
      const float a = v == 0 ? 1.0f : v, b = v == 0 ? -1.0f : v, d = v == 0 ? -1.0f : -v;
      h(2 * i, 2 * j) = a;
      h(2 * i, 2 * j + 1) = b;
      h(2 * i + 1, 2 * j) = b;
      h(2 * i + 1, 2 * j + 1) = d;
    }
  return h;
}

// The ±1 Hadamard matrix of the non-power-of-two factor m.
MatrixF base_hadamard(int64_t m) {
  if (m == 1) return MatrixF::Ones(1, 1);
  if (paley1_order(m)) return paley1(m - 1);
  if (paley2_order(m)) return paley2(m / 2 - 1);
  throw Error(fmt::format("no Hadamard construction for order {}", m));
}

// v ← v·H_n/sqrt(n) for `rows` consecutive vectors of length n (a power of two).
void fwht_raw(float* data, int64_t rows, int64_t n) {
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t r = 0; r < rows; ++r) {
    float* v = data + r * n;
    for (int64_t h = 1; h < n; h <<= 1)
      for (int64_t i = 0; i < n; i += 2 * h)
        for (int64_t j = i; j < i + h; ++j) {
          const float a = v[j], b = v[j + h];
          v[j] = a + b;
          v[j + h] = a - b;
        }
    for (int64_t j = 0; j < n; ++j) v[j] *= scale;
  }
}

void check_cols(const MatrixF& x, int64_t dim, std::string_view what) {
  if (x.cols() != dim)
    throw Error(fmt::format("{} rotation of dimension {} applied to a matrix with {} columns", what, dim, x.cols()));
}

// x ← x·H with H = diag(ε)·(H_m ⊗ H_p)/sqrt(m·p) (ε empty: no signs).
class HadamardRotation final : public Rotation {
 public:
  HadamardRotation(int64_t dim, bool randomized, uint64_t seed) : dim_(dim), randomized_(randomized), seed_(seed) {
    std::tie(m_, p_) = hadamard_factors(dim);
    // Z ← Hmᵀ·Z/sqrt(m) acts on the m × p view of a row (see apply).
    hm_t_ = (base_hadamard(m_).transpose() / std::sqrt(static_cast<float>(m_))).eval();
    if (randomized_) {
      signs_.resize(dim);
      for (int64_t i = 0; i < dim; ++i)
        signs_(i) = (sr_bits(seed, static_cast<uint64_t>(i)) & 1u) ? -1.0f : 1.0f;
    }
  }
  std::string spec() const override {
    return randomized_ ? fmt::format("rht:dim={}:seed={}", dim_, seed_) : fmt::format("hadamard:dim={}", dim_);
  }
  int64_t dim() const override { return dim_; }
  // With the row viewed as an m × p matrix Z (index a·p + b), (x·(H_m ⊗ H_p))[c·p + d] =
  // Σ_{a,b} Z[a,b]·H_m[a,c]·H_p[b,d] = (H_mᵀ·Z·H_p)[c, d]: FWHT of the m sub-rows, then H_mᵀ.
  void apply(MatrixF& x) const override {
    check_cols(x, dim_, randomized_ ? "rht" : "hadamard");
    if (x.rows() == 0) return;
    if (randomized_) x.array().rowwise() *= signs_.transpose().array();
    fwht_raw(x.data(), x.rows() * m_, p_);
    if (m_ == 1) return;
    for (int64_t r = 0; r < x.rows(); ++r) {
      Eigen::Map<MatrixF> z(x.data() + r * dim_, m_, p_);
      const MatrixF t = hm_t_ * z;
      z = t;
    }
  }

 private:
  int64_t dim_, m_ = 1, p_ = 1;
  bool randomized_;
  uint64_t seed_;
  MatrixF hm_t_;
  VectorF signs_;
};

class BlockHadamardRotation final : public Rotation {
 public:
  BlockHadamardRotation(int64_t dim, int64_t block) : dim_(dim), block_(block) {}
  std::string spec() const override { return fmt::format("block:dim={}:block={}", dim_, block_); }
  int64_t dim() const override { return dim_; }
  void apply(MatrixF& x) const override {
    check_cols(x, dim_, "block Hadamard");
    fwht_raw(x.data(), x.rows() * (dim_ / block_), block_);
  }

 private:
  int64_t dim_, block_;
};

void check_block(int64_t dim, int64_t block, std::string_view what) {
  if (!is_pow2(block) || block < 2)
    throw Error(fmt::format("{}: block size {} must be a power of two >= 2", what, block));
  if (dim % block != 0)
    throw Error(fmt::format("{}: block size {} does not divide the dimension {}", what, block, dim));
}

// ---- DuQuant helpers -----------------------------------------------------------------------

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Independent Philox stream per (seed, stage, block).
uint64_t stream_seed(uint64_t seed, uint64_t stage, uint64_t block) {
  return splitmix64(seed ^ splitmix64((stage << 32) + block + 1));
}

// Standard normal number i of a stream: Box–Muller on two Philox words (24-bit uniforms).
double philox_normal(uint64_t seed, uint64_t i) {
  const double u1 = (static_cast<double>(sr_bits(seed, 2 * i) >> 8) + 1.0) * 0x1p-24;  // (0, 1]
  const double u2 = static_cast<double>(sr_bits(seed, 2 * i + 1) >> 8) * 0x1p-24;        // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// R = H_B/sqrt(B)·diag(1, Q') with Q' the Q factor of a Gaussian (B−1)×(B−1) matrix.
MatrixF duquant_base(int64_t b, uint64_t seed) {
  MatrixD g(b - 1, b - 1);
  for (int64_t i = 0; i < g.size(); ++i) g.data()[i] = philox_normal(seed, static_cast<uint64_t>(i));
  const MatrixD q = g.householderQr().householderQ() * MatrixD::Identity(b - 1, b - 1);
  MatrixD h = hadamard_matrix(b).cast<double>() / std::sqrt(static_cast<double>(b));
  MatrixD r(b, b);
  r.col(0) = h.col(0);
  r.rightCols(b - 1) = h.rightCols(b - 1) * q;
  return r.cast<float>();
}

struct Greedy {
  MatrixF r;
  int steps = 0;
};

// The greedy search of DuQuantRotation step 1 on calibration columns c (rows × B).
Greedy greedy_rotation(MatrixF c, const MatrixF& base, int max_steps) {
  const int64_t b = base.rows();
  std::vector<int64_t> ids;
  std::vector<double> peaks;
  for (int step = 0;; ++step) {
    Eigen::Index r1 = 0, c1 = 0, r2 = 0, c2 = 0;
    const float mx = c.maxCoeff(&r1, &c1), mn = c.minCoeff(&r2, &c2);
    peaks.push_back(static_cast<double>(mx) - static_cast<double>(mn));
    if (step == max_steps) break;
    const int64_t id = std::abs(mx) > std::abs(mn) ? c1 : c2;
    ids.push_back(id);
    // C ← C·E_id·R·E_id
    if (id != 0) c.col(0).swap(c.col(id));
    const MatrixF t = c * base;
    c = t;
    if (id != 0) c.col(0).swap(c.col(id));
  }
  Greedy g;
  g.steps = static_cast<int>(std::min_element(peaks.begin(), peaks.end()) - peaks.begin());
  g.r = MatrixF::Identity(b, b);
  for (int k = 0; k < g.steps; ++k) {
    MatrixF e = base;  // E·R·E: swap rows and columns 0 and id
    const int64_t id = ids[static_cast<size_t>(k)];
    if (id != 0) {
      e.row(0).swap(e.row(id));
      e.col(0).swap(e.col(id));
    }
    const MatrixF t = g.r * e;
    g.r = t;
  }
  return g;
}

// x ← x·blockdiag(mats) (one matrix shared by every block, or one per block).
void apply_blocks(MatrixF& x, const std::vector<MatrixF>& mats, int64_t block) {
  const int64_t nb = x.cols() / block;
  if (mats.size() == 1) {
    Eigen::Map<MatrixF> v(x.data(), x.rows() * nb, block);
    const MatrixF t = v * mats[0];
    v = t;
    return;
  }
  for (int64_t k = 0; k < nb; ++k) {
    const MatrixF t = x.middleCols(k * block, block) * mats[static_cast<size_t>(k)];
    x.middleCols(k * block, block) = t;
  }
}

struct Stage {
  std::vector<MatrixF> mats;
  std::vector<int> steps;
};

Stage greedy_stage(const MatrixF& x, int64_t block, int max_steps, uint64_t seed, uint64_t stage, bool shared) {
  Stage s;
  const int64_t nb = x.cols() / block;
  if (shared) {
    const MatrixF stacked = Eigen::Map<const MatrixF>(x.data(), x.rows() * nb, block);
    Greedy g = greedy_rotation(stacked, duquant_base(block, stream_seed(seed, stage, 0)), max_steps);
    s.mats.push_back(std::move(g.r));
    s.steps.push_back(g.steps);
    return s;
  }
  for (int64_t k = 0; k < nb; ++k) {
    Greedy g = greedy_rotation(x.middleCols(k * block, block),
                               duquant_base(block, stream_seed(seed, stage, static_cast<uint64_t>(k))), max_steps);
    s.mats.push_back(std::move(g.r));
    s.steps.push_back(g.steps);
  }
  return s;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int i : v) {
    if (!s.empty()) s.push_back(',');
    s.append(std::to_string(i));
  }
  return s;
}

// ---- linear algorithms ---------------------------------------------------------------------

double take_double(Spec& spec, std::string_view key, double fallback, double lo, double hi) {
  const auto v = spec.take(key);
  if (!v) return fallback;
  double out = 0;
  const auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || ptr != v->data() + v->size() || v->empty() || !std::isfinite(out))
    spec.fail(fmt::format("option '{}' needs a number, got '{}'", key, *v));
  if (out < lo || out > hi) spec.fail(fmt::format("option '{}' = {} is outside [{}, {}]", key, out, lo, hi));
  return out;
}

void check_linear(const LinearProblem& p, std::string_view what) {
  if (!p.wq || !p.aq) throw Error(fmt::format("{}: weight and activation quantizers must be set", what));
  if (p.w.size() == 0 || p.x.size() == 0) throw Error(fmt::format("{}: empty activations or weight", what));
  if (p.x.cols() != p.w.cols())
    throw Error(fmt::format("{}: activations have {} columns but the weight has {} input features", what,
                            p.x.cols(), p.w.cols()));
}

// Rotates (already smoothed) x and w with rot and quantizes both sides.
QuantizedLinear rotated_layer(const LinearProblem& p, const MatrixF& x, const MatrixF& w, RotationPtr rot) {
  QuantizedLinear q;
  MatrixF xr = x, wr = w;
  rot->apply(xr);
  rot->apply(wr);
  q.rotation = std::move(rot);
  q.act = p.aq->calibrate(xr);
  q.weight = p.wq->quantize(wr);
  q.bias = p.bias;
  q.weight_bits = p.wq->bits_per_element(p.w.rows(), p.w.cols());
  q.act_bits = p.aq->bits_per_element(p.x.rows(), p.x.cols());
  return q;
}

}  // namespace

// ---- public API ------------------------------------------------------------------------------

void fwht_rows(MatrixF& x) {
  if (!is_pow2(x.cols()))
    throw Error(fmt::format("fast Walsh-Hadamard transform: row length {} is not a power of two", x.cols()));
  fwht_raw(x.data(), x.rows(), x.cols());
}

std::pair<int64_t, int64_t> hadamard_factors(int64_t n) {
  if (n <= 0) throw Error(fmt::format("Hadamard matrix of order {}: the order must be positive", n));
  int64_t odd = n, pow2 = 1;
  while (odd % 2 == 0) {
    odd /= 2;
    pow2 *= 2;
  }
  if (odd == 1) return {1, n};
  for (int64_t t = 1; t <= pow2; t *= 2) {
    const int64_t m = odd * t;
    if (m % 4 == 0 && (paley1_order(m) || paley2_order(m))) return {m, n / m};
  }
  throw Error(fmt::format("no Hadamard matrix of order {} (supported: {})", n, kSupportedOrders));
}

MatrixF hadamard_matrix(int64_t n) {
  const auto [m, p] = hadamard_factors(n);
  const MatrixF hm = base_hadamard(m);
  MatrixF h(n, n);
  // H[(a, b), (c, d)] = H_m[a, c]·S_p[b, d], Sylvester S_p[b, d] = (−1)^popcount(b & d).
  for (int64_t a = 0; a < m; ++a)
    for (int64_t b = 0; b < p; ++b)
      for (int64_t c = 0; c < m; ++c)
        for (int64_t d = 0; d < p; ++d)
          h(a * p + b, c * p + d) = hm(a, c) * ((__builtin_popcountll(static_cast<uint64_t>(b & d)) & 1) ? -1.0f : 1.0f);
  return h;
}

RotationPtr make_rotation(std::string_view kind, int64_t dim, uint64_t seed, int64_t block) {
  if (dim <= 0) throw Error(fmt::format("{} rotation: dimension {} must be positive", kind, dim));
  if (kind == "hadamard") return std::make_shared<HadamardRotation>(dim, false, seed);
  if (kind == "rht") return std::make_shared<HadamardRotation>(dim, true, seed);
  if (kind == "block") {
    check_block(dim, block, "block Hadamard rotation");
    return std::make_shared<BlockHadamardRotation>(dim, block);
  }
  if (kind == "duquant")
    throw Error("duquant rotation needs calibration activations (make_duquant_rotation)");
  throw Error(fmt::format("unknown rotation '{}' (known: hadamard, rht, block, duquant)", kind));
}

DuQuantRotation::DuQuantRotation(int64_t dim, int64_t block, std::vector<MatrixF> first, std::vector<int64_t> perm,
                                 std::vector<MatrixF> second, std::vector<int> first_steps,
                                 std::vector<int> second_steps)
    : dim_(dim),
      block_(block),
      first_(std::move(first)),
      second_(std::move(second)),
      perm_(std::move(perm)),
      first_steps_(std::move(first_steps)),
      second_steps_(std::move(second_steps)) {}

std::string DuQuantRotation::spec() const {
  return fmt::format("duquant:dim={}:block={}:shared={}:steps1={}:steps2={}", dim_, block_, first_.size() == 1 ? 1 : 0,
                     join(first_steps_), join(second_steps_));
}

void DuQuantRotation::apply(MatrixF& x) const {
  check_cols(x, dim_, "duquant");
  apply_blocks(x, first_, block_);
  MatrixF t(x.rows(), x.cols());
  for (int64_t i = 0; i < dim_; ++i) t.col(i) = x.col(perm_[static_cast<size_t>(i)]);
  x = std::move(t);
  apply_blocks(x, second_, block_);
}

RotationPtr make_duquant_rotation(const MatrixF& x_calib, int64_t block, int max_steps, uint64_t seed, bool shared,
                                  int64_t buckets) {
  const int64_t dim = x_calib.cols();
  if (x_calib.size() == 0) throw Error("duquant rotation: empty calibration activations");
  check_block(dim, block, "duquant rotation");
  if (max_steps < 0) throw Error(fmt::format("duquant rotation: greedy steps {} must be >= 0", max_steps));
  if (buckets < 0) throw Error(fmt::format("duquant rotation: buckets {} must be >= 1", buckets));
  if (!x_calib.allFinite()) throw Error("duquant rotation: calibration activations contain NaN or Inf");
  const int64_t k = buckets == 0 ? dim / block : buckets;

  Stage first = greedy_stage(x_calib, block, max_steps, seed, 1, shared);
  MatrixF x1 = x_calib;
  apply_blocks(x1, first.mats, block);

  // Channels by range (descending), runs of k dealt round-robin (released permutation_zigzag).
  std::vector<double> range(static_cast<size_t>(dim));
  for (int64_t j = 0; j < dim; ++j)
    range[static_cast<size_t>(j)] = static_cast<double>(x1.col(j).maxCoeff()) - x1.col(j).minCoeff();
  std::vector<int64_t> order(static_cast<size_t>(dim));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return range[static_cast<size_t>(a)] > range[static_cast<size_t>(b)]; });
  std::vector<int64_t> perm;
  perm.reserve(static_cast<size_t>(dim));
  const int64_t runs = (dim + k - 1) / k;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t r = 0; r < runs; ++r)
      if (r * k + i < dim) perm.push_back(order[static_cast<size_t>(r * k + i)]);

  MatrixF x2(x1.rows(), dim);
  for (int64_t i = 0; i < dim; ++i) x2.col(i) = x1.col(perm[static_cast<size_t>(i)]);
  Stage second = greedy_stage(x2, block, max_steps, seed, 2, shared);
  return std::make_shared<DuQuantRotation>(dim, block, std::move(first.mats), std::move(perm), std::move(second.mats),
                                           std::move(first.steps), std::move(second.steps));
}

double fluctuation_j(const MatrixF& x) {
  if (x.size() == 0) throw Error("fluctuation J of an empty matrix");
  return std::sqrt(sq_norm(x) / static_cast<double>(x.size()));
}

QuantizedLinear rotate_linear(const LinearProblem& p, Spec& spec) {
  check_linear(p, "rotate");
  const std::string kind = spec.take("kind").value_or("hadamard");
  const int64_t block = spec.take_int("block", 2, int64_t{1} << 24).value_or(128);
  const uint64_t seed = spec.take_u64("seed").value_or(p.seed);
  const int steps = static_cast<int>(spec.take_int("steps", 0, 1 << 20).value_or(256));
  const bool shared = spec.take_flag("shared");
  const int64_t m = p.w.cols();
  RotationPtr rot = kind == "duquant" ? make_duquant_rotation(p.x, block, steps, seed, shared)
                                      : make_rotation(kind, m, seed, block);
  QuantizedLinear q = rotated_layer(p, p.x, p.w, rot);
  q.algorithm = fmt::format("rotate:kind={}:block={}:seed={}", kind, block, seed);
  q.info = {{"kind", kind}, {"block", block}, {"seed", seed}, {"rotation", q.rotation->spec()}};
  if (kind == "duquant") {
    const auto& d = static_cast<const DuQuantRotation&>(*q.rotation);
    q.algorithm += fmt::format(":steps={}{}", steps, shared ? ":shared" : "");
    q.info["steps"] = steps;
    q.info["shared"] = shared;
    q.info["steps_kept_first"] = d.first_steps();
    q.info["steps_kept_second"] = d.second_steps();
  }
  return q;
}

QuantizedLinear ars_linear(const LinearProblem& p, Spec& spec) {
  check_linear(p, "ars");
  const double tau = take_double(spec, "tau", 1.0, 0.0, 1e30);
  const double alpha = take_double(spec, "alpha", 0.5, 0.0, 1.0);
  const int64_t block = spec.take_int("block", 2, int64_t{1} << 24).value_or(128);
  const std::string small = spec.take("small").value_or("block");
  if (small != "block" && small != "rht") spec.fail(fmt::format("option 'small' must be block or rht, got '{}'", small));
  const int steps = static_cast<int>(spec.take_int("steps", 0, 1 << 20).value_or(256));
  const bool shared = spec.take_flag("shared");
  const uint64_t seed = spec.take_u64("seed").value_or(p.seed);

  // SmoothQuant balancing (ALGORITHMS.md §7): λ_j = max|X_j|^α / max|W_j|^{1−α}.
  const int64_t m = p.w.cols();
  std::vector<double> xmax(static_cast<size_t>(m), 0.0), wmax(static_cast<size_t>(m), 0.0);
  for (int64_t i = 0; i < p.x.rows(); ++i)
    for (int64_t j = 0; j < m; ++j) xmax[static_cast<size_t>(j)] = std::max(xmax[static_cast<size_t>(j)], std::fabs(static_cast<double>(p.x(i, j))));
  for (int64_t i = 0; i < p.w.rows(); ++i)
    for (int64_t j = 0; j < m; ++j) wmax[static_cast<size_t>(j)] = std::max(wmax[static_cast<size_t>(j)], std::fabs(static_cast<double>(p.w(i, j))));
  VectorF lambda(m);
  for (int64_t j = 0; j < m; ++j) {
    const double l = std::pow(xmax[static_cast<size_t>(j)], alpha) / std::pow(wmax[static_cast<size_t>(j)], 1.0 - alpha);
    const float lf = static_cast<float>(l);
    lambda(j) = (std::isfinite(lf) && lf > 0) ? lf : 1.0f;
  }
  const MatrixF xs = (p.x.array().rowwise() / lambda.transpose().array()).matrix();
  const MatrixF ws = (p.w.array().rowwise() * lambda.transpose().array()).matrix();

  const double j = fluctuation_j(xs);
  const bool hadamard = j < tau;
  RotationPtr rot = hadamard ? make_rotation(small, m, seed, block) : make_duquant_rotation(xs, block, steps, seed, shared);
  QuantizedLinear q = rotated_layer(p, xs, ws, rot);
  q.smooth = lambda;
  q.algorithm = fmt::format("ars:tau={}:block={}:alpha={}:small={}:steps={}{}:seed={}", tau, block, alpha, small, steps,
                            shared ? ":shared" : "", seed);
  q.info = {{"J", j},         {"tau", tau},       {"alpha", alpha}, {"block", block},
            {"seed", seed},   {"choice", hadamard ? "hadamard" : "duquant"}, {"rotation", q.rotation->spec()}};
  return q;
}

}  // namespace lowbit::quant
