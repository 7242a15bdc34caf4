// Bootstrap resampling and percentile intervals (see bootstrap.hpp).
#include "sim/bootstrap.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "formats/philox.hpp"

namespace lowbit {

namespace {

constexpr uint32_t kBootTag = 0x626f6f74u;  // "boot": keeps these streams apart from SR bits

uint64_t checked_counter(int64_t n, int64_t replicate, int64_t j) {
  if (n < 1) throw Error(fmt::format("bootstrap: sample size {} must be at least 1", n));
  if (replicate < 0 || j < 0 || j >= n)
    throw Error(fmt::format("bootstrap: replicate {} / position {} out of range for n = {}",
                            replicate, j, n));
  if (replicate > (std::numeric_limits<int64_t>::max() - j) / n)
    throw Error(fmt::format("bootstrap: replicate {} of n = {} overflows the 64-bit counter",
                            replicate, n));
  return static_cast<uint64_t>(replicate) * static_cast<uint64_t>(n) + static_cast<uint64_t>(j);
}

int64_t draw(uint64_t seed, int64_t n, uint64_t k) {
  const uint32_t ctr[4] = {static_cast<uint32_t>(k), static_cast<uint32_t>(k >> 32), kBootTag, 0u};
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  uint32_t out[4];
  Philox4x32::generate(ctr, key, out);
  const uint64_t u = (static_cast<uint64_t>(out[0]) << 32) | out[1];
  return static_cast<int64_t>((static_cast<unsigned __int128>(u) * static_cast<uint64_t>(n)) >> 64);
}

}  // namespace

void check_bootstrap_options(const BootstrapOptions& o, const char* what) {
  if (o.replicates < 1)
    throw Error(fmt::format("{}: bootstrap replicates must be at least 1, got {}", what, o.replicates));
  if (!(o.level > 0.0 && o.level < 1.0))
    throw Error(fmt::format("{}: bootstrap level must lie in (0, 1), got {}", what, o.level));
}

int64_t bootstrap_index(uint64_t seed, int64_t n, int64_t replicate, int64_t j) {
  return draw(seed, n, checked_counter(n, replicate, j));
}

std::vector<int64_t> bootstrap_indices(uint64_t seed, int64_t n, int64_t replicate) {
  const uint64_t k0 = checked_counter(n, replicate, n - 1) - static_cast<uint64_t>(n - 1);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) idx[static_cast<size_t>(j)] = draw(seed, n, k0 + static_cast<uint64_t>(j));
  return idx;
}

double quantile_sorted(std::span<const double> sorted, double q) {
  if (sorted.empty()) throw Error("quantile of an empty set of values");
  if (!(q >= 0.0 && q <= 1.0)) throw Error(fmt::format("quantile {} outside [0, 1]", q));
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto i = static_cast<size_t>(std::floor(pos));
  if (i + 1 >= sorted.size()) return sorted.back();
  const double frac = pos - static_cast<double>(i);
  const double a = sorted[i], b = sorted[i + 1];
  if (frac == 0.0 || a == b) return a;
  // Between an infinity and a finite value the interpolant is that infinity (a + frac·(b − a)
  // would give Inf − Inf = NaN for a = −Inf); between −Inf and +Inf it is undefined.
  if (std::isinf(a) && std::isinf(b)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(a)) return a;
  if (std::isinf(b)) return b;
  return a + frac * (b - a);
}

BootstrapResult summarize_bootstrap(double point, std::vector<double> samples, double level) {
  BootstrapResult r;
  r.point = point;
  r.level = level;
  r.replicates = static_cast<int64_t>(samples.size());
  if (samples.empty()) throw Error("bootstrap: no replicates to summarise");
  const bool has_nan = std::any_of(samples.begin(), samples.end(), [](double v) { return std::isnan(v); });
  if (has_nan) {
    r.mean = r.std_error = r.lo = r.hi = std::numeric_limits<double>::quiet_NaN();
  } else {
    double s = 0.0;
    for (double v : samples) s += v;
    r.mean = s / static_cast<double>(samples.size());
    double ss = 0.0;
    for (double v : samples) ss += (v - r.mean) * (v - r.mean);
    r.std_error = samples.size() > 1 ? std::sqrt(ss / static_cast<double>(samples.size() - 1)) : 0.0;
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    r.lo = quantile_sorted(sorted, (1.0 - level) / 2.0);
    r.hi = quantile_sorted(sorted, (1.0 + level) / 2.0);
  }
  r.samples = std::move(samples);
  return r;
}

BootstrapResult bootstrap_mean(std::span<const double> values, const BootstrapOptions& o) {
  check_bootstrap_options(o, "bootstrap_mean");
  const auto n = static_cast<int64_t>(values.size());
  if (n < 1) throw Error("bootstrap_mean: no values");
  double s = 0.0;
  for (double v : values) s += v;
  const double point = s / static_cast<double>(n);
  checked_counter(n, o.replicates - 1, n - 1);  // no throw inside the parallel loop
  std::vector<double> samples(static_cast<size_t>(o.replicates));
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < o.replicates; ++b) {
    const auto idx = bootstrap_indices(o.seed, n, b);
    double acc = 0.0;
    for (int64_t i : idx) acc += values[static_cast<size_t>(i)];
    samples[static_cast<size_t>(b)] = acc / static_cast<double>(n);
  }
  BootstrapResult r = summarize_bootstrap(point, std::move(samples), o.level);
  r.seed = o.seed;
  return r;
}

}  // namespace lowbit
