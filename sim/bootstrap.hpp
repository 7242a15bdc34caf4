// Nonparametric bootstrap (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 6
// and 13): resampling indices, percentile intervals and the bootstrap of a batch mean. Used for
// confidence intervals of the Fréchet distance (sim/fid.hpp) and of per-image PSNR / SSIM
// (sim/image_metrics.hpp).
//
// Reproducibility: row j of replicate b is a pure function of (seed, n, b, j), drawn from
// Philox4x32-10 (formats/philox.hpp), so replicates can run in parallel in any order and on any
// number of threads and still give identical results.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace lowbit {

struct BootstrapOptions {
  int64_t replicates = 1000;  // B >= 1
  uint64_t seed = 0;
  double level = 0.95;  // central interval coverage, in (0, 1)
};

struct BootstrapResult {
  double point = 0;      // the statistic on the data as given
  double mean = 0;       // mean of the B replicates
  double std_error = 0;  // standard deviation of the replicates (ddof 1; 0 when B = 1)
  double lo = 0, hi = 0; // percentile interval: replicate quantiles (1 ∓ level) / 2
  double level = 0;
  int64_t replicates = 0;
  uint64_t seed = 0;
  std::vector<double> samples;  // the B replicate values, in replicate order
};

// Row drawn at position j (0 <= j < n) of bootstrap replicate b, uniform in [0, n): the 64-bit
// word (out[0] << 32 | out[1]) of Philox4x32-10 with counter (k low, k high, 0x626f6f74 "boot",
// 0), k = b·n + j, key (seed low, seed high), mapped to [0, n) by the multiply-shift
// floor(u·n / 2^64) (bias at most n / 2^64). Throws lowbit::Error if n < 1 or b·n overflows.
int64_t bootstrap_index(uint64_t seed, int64_t n, int64_t replicate, int64_t j);
// All n rows of replicate b.
std::vector<int64_t> bootstrap_indices(uint64_t seed, int64_t n, int64_t replicate);

// Quantile q in [0, 1] of ascending `sorted` values by linear interpolation between closest
// ranks (numpy.quantile's default method "linear": position q·(n − 1)). n >= 1.
double quantile_sorted(std::span<const double> sorted, double q);

// Fills mean, std_error, lo, hi, level, replicates and samples from the replicate values and
// `point`. A NaN replicate makes mean, std_error, lo and hi NaN; ±Inf are ordered values.
BootstrapResult summarize_bootstrap(double point, std::vector<double> samples, double level);

// Bootstrap of the mean of `values` (e.g. per-image PSNR): point = the sample mean, replicates =
// means of n values resampled with replacement. n >= 1 (lowbit::Error otherwise).
BootstrapResult bootstrap_mean(std::span<const double> values, const BootstrapOptions& options = {});

// Throws lowbit::Error naming `what` unless replicates >= 1 and 0 < level < 1.
void check_bootstrap_options(const BootstrapOptions& options, const char* what);

}  // namespace lowbit
