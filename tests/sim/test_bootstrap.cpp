// Tests for sim/bootstrap: resampling indices (range, uniformity, determinism, counter checks),
// numpy's linear quantile, the percentile summary and the bootstrap of a mean.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "formats/error.hpp"
#include "sim/bootstrap.hpp"

namespace {

void expect_error(const std::function<void()>& fn, const std::string& word) {
  try {
    fn();
    ADD_FAILURE() << "expected lowbit::Error containing '" << word << "'";
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << "message: " << e.what();
  }
}

TEST(Bootstrap, IndicesAreDeterministicInRangeAndUniform) {
  const int64_t n = 7;
  const auto a = lowbit::bootstrap_indices(42, n, 3);
  EXPECT_EQ(a, lowbit::bootstrap_indices(42, n, 3));
  EXPECT_NE(a, lowbit::bootstrap_indices(43, n, 3));
  EXPECT_NE(a, lowbit::bootstrap_indices(42, n, 4));
  for (int64_t j = 0; j < n; ++j) EXPECT_EQ(lowbit::bootstrap_index(42, n, 3, j), a[static_cast<size_t>(j)]);

  // 70000 draws over 7 values: each count is 10000 ± 3 standard deviations (sqrt(10000·6/7)).
  std::vector<int64_t> count(n, 0);
  for (int64_t b = 0; b < 10000; ++b)
    for (int64_t i : lowbit::bootstrap_indices(1, n, b)) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, n);
      ++count[static_cast<size_t>(i)];
    }
  for (int64_t c : count) EXPECT_NEAR(static_cast<double>(c), 10000.0, 3 * std::sqrt(10000.0 * 6 / 7));

  expect_error([] { lowbit::bootstrap_indices(0, 0, 0); }, "sample size 0");
  expect_error([] { lowbit::bootstrap_index(0, 5, 0, 5); }, "out of range");
  expect_error([] { lowbit::bootstrap_indices(0, int64_t{1} << 40, int64_t{1} << 30); }, "overflows");
}

TEST(Bootstrap, QuantileIsNumpyLinear) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(lowbit::quantile_sorted(v, 0.25), 1.75);  // numpy.quantile([1,2,3,4], .25)
  EXPECT_DOUBLE_EQ(lowbit::quantile_sorted(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(lowbit::quantile_sorted(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(lowbit::quantile_sorted(v, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(lowbit::quantile_sorted(std::vector<double>{5}, 0.3), 5.0);
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(lowbit::quantile_sorted(std::vector<double>{1, inf}, 0.5), inf);
  EXPECT_EQ(lowbit::quantile_sorted(std::vector<double>{-inf, 1}, 0.5), -inf);
  EXPECT_EQ(lowbit::quantile_sorted(std::vector<double>{inf, inf}, 0.5), inf);
  expect_error([] { lowbit::quantile_sorted(std::vector<double>{}, 0.5); }, "empty");
  expect_error([] { lowbit::quantile_sorted(std::vector<double>{1}, 1.5); }, "outside [0, 1]");
}

TEST(Bootstrap, SummaryOfReplicates) {
  // 0..100: mean 50, sample std sqrt(850.0·101/100), 95% interval at positions 2.5 and 97.5.
  std::vector<double> s;
  for (int i = 100; i >= 0; --i) s.push_back(i);
  const auto r = lowbit::summarize_bootstrap(7.0, s, 0.95);
  EXPECT_EQ(r.point, 7.0);
  EXPECT_DOUBLE_EQ(r.mean, 50.0);
  EXPECT_NEAR(r.std_error, std::sqrt(858.5), 1e-12);
  EXPECT_NEAR(r.lo, 2.5, 1e-12);  // (1 − 0.95)/2·100 = 2.5000000000000022 in float64
  EXPECT_NEAR(r.hi, 97.5, 1e-12);
  EXPECT_EQ(r.replicates, 101);
  EXPECT_EQ(r.samples, s);  // replicate order kept
  s[3] = std::nan("");
  const auto n = lowbit::summarize_bootstrap(7.0, s, 0.95);
  EXPECT_TRUE(std::isnan(n.mean) && std::isnan(n.lo) && std::isnan(n.hi) && std::isnan(n.std_error));
}

TEST(Bootstrap, MeanOfValues) {
  std::mt19937_64 g(3);
  std::normal_distribution<double> nd(2.0, 1.0);
  auto values = [&](int n) {
    std::vector<double> v(static_cast<size_t>(n));
    for (double& x : v) x = nd(g);
    return v;
  };
  const auto v = values(400);
  const lowbit::BootstrapOptions o{2000, 11, 0.9};
  const auto r = lowbit::bootstrap_mean(v, o);
  double mean = 0;
  for (double x : v) mean += x;
  mean /= 400;
  EXPECT_DOUBLE_EQ(r.point, mean);
  EXPECT_LT(r.lo, mean);
  EXPECT_GT(r.hi, mean);
  // The bootstrap standard error of a mean is about sigma / sqrt(n) = 0.05.
  EXPECT_NEAR(r.std_error, 0.05, 0.01);
  EXPECT_EQ(r.seed, 11u);
  EXPECT_EQ(r.level, 0.9);
  // Replicate 5 is the mean of the values at bootstrap_indices(11, 400, 5).
  double m5 = 0;
  for (int64_t i : lowbit::bootstrap_indices(11, 400, 5)) m5 += v[static_cast<size_t>(i)];
  EXPECT_DOUBLE_EQ(r.samples[5], m5 / 400);
  // Deterministic, and independent of the thread count.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto serial = lowbit::bootstrap_mean(v, o);
  omp_set_num_threads(threads);
  EXPECT_EQ(serial.samples, r.samples);
  // A larger sample gives a narrower interval (width ~ 1/sqrt(n)).
  const auto big = lowbit::bootstrap_mean(values(6400), o);
  EXPECT_LT(big.hi - big.lo, 0.5 * (r.hi - r.lo));

  expect_error([&] { lowbit::bootstrap_mean(std::vector<double>{}, o); }, "no values");
  expect_error([&] { lowbit::bootstrap_mean(v, {0, 1, 0.95}); }, "replicates must be at least 1");
  expect_error([&] { lowbit::bootstrap_mean(v, {10, 1, 1.0}); }, "level must lie in (0, 1)");
}

}  // namespace
