// Tests for sim/image_metrics: PSNR and SSIM against scikit-image (tests/data/
// metrics_reference.safetensors, from tests/data/make_metrics_reference.py), closed forms,
// the identical-image conventions, NaN, batch behaviour and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/bootstrap.hpp"
#include "sim/image_metrics.hpp"
#include "sim/safetensors.hpp"
#include "sim/tensor.hpp"

namespace fs = std::filesystem;
using lowbit::ImageBatch;

namespace {

const fs::path kRoot = LOWBIT_SOURCE_DIR;
const fs::path kFixture = kRoot / "tests/data/metrics_reference.safetensors";
constexpr double kInf = std::numeric_limits<double>::infinity();

void expect_error(const std::function<void()>& fn, const std::string& word) {
  try {
    fn();
    ADD_FAILURE() << "expected lowbit::Error containing '" << word << "'";
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << "message: " << e.what();
  }
}

// Holds the values an ImageBatch views.
struct Images {
  std::vector<float> v;
  std::vector<int64_t> shape;
  ImageBatch batch() const { return lowbit::image_batch(v, shape, "test images"); }
};

Images constant(std::vector<int64_t> shape, float value) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return Images{std::vector<float>(static_cast<size_t>(n), value), std::move(shape)};
}

Images random(std::vector<int64_t> shape, uint32_t seed) {
  Images im = constant(std::move(shape), 0);
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : im.v) x = u(g);
  return im;
}

// The float image of an 8-bit fixture image: float32(u8) / 127.5f - 1 in float32 arithmetic,
// as the generator computes it with numpy float32 operations.
Images from_u8(const lowbit::Tensor& t) {
  Images im;
  im.shape = {1};
  im.shape.insert(im.shape.end(), t.shape.begin(), t.shape.end());
  for (uint8_t b : t.data) im.v.push_back(static_cast<float>(b) / 127.5f - 1.0f);
  return im;
}

// skimage and this implementation both work in float64 on the same float32 values and differ
// only in summation order (filter taps, the crop mean): ~1e-16 relative per sum, amplified by
// the cancellation in E[x²] − E[x]² where an image is locally flat (|x|² / var up to ~1e3 here).
// The measured agreement is ~1e-15; the bound 1e-10 is far below any modelling difference (a
// wrong border mode or crop moves SSIM by >1e-3).
constexpr double kSsimTol = 1e-10;

TEST(ImageMetrics, MatchSkimageOnModelAndRealImages) {
  const auto t = lowbit::read_safetensors(kRoot / "tests/data/dit_reference.safetensors", {"featnet_in"})[0];
  const auto x = lowbit::to_f32(t);
  const auto ref = lowbit::read_safetensors(kFixture, {"ssim.pairs", "ssim.pairs_ssim", "psnr.pairs_psnr"});
  const auto pairs = lowbit::to_f64(ref[0]);
  const auto want_ssim = lowbit::to_f64(ref[1]), want_psnr = lowbit::to_f64(ref[2]);
  const size_t p = want_ssim.size();
  ASSERT_EQ(pairs.size(), 2 * p);
  // Two batches: images[k] = featnet_in[i_k], reference[k] = featnet_in[j_k].
  Images a, b;
  a.shape = b.shape = {static_cast<int64_t>(p), 3, 32, 32};
  for (size_t k = 0; k < p; ++k) {
    const auto i = static_cast<size_t>(pairs[2 * k]), j = static_cast<size_t>(pairs[2 * k + 1]);
    a.v.insert(a.v.end(), x.begin() + i * 3072, x.begin() + (i + 1) * 3072);
    b.v.insert(b.v.end(), x.begin() + j * 3072, x.begin() + (j + 1) * 3072);
  }
  const auto s = lowbit::ssim(a.batch(), b.batch());
  const auto q = lowbit::psnr(a.batch(), b.batch());
  double worst = 0;
  for (size_t k = 0; k < p; ++k) {
    SCOPED_TRACE(fmt::format("pair {} ({}, {})", k, pairs[2 * k], pairs[2 * k + 1]));
    EXPECT_NEAR(s[k], want_ssim[k], kSsimTol);
    worst = std::max(worst, std::abs(s[k] - want_ssim[k]));
    if (std::isinf(want_psnr[k]))
      EXPECT_EQ(q[k], kInf);  // the identical pair
    else
      EXPECT_NEAR(q[k], want_psnr[k], 1e-12 * want_psnr[k]);
  }
  RecordProperty("ssim_max_abs_diff", fmt::format("{:.3g}", worst));
  EXPECT_EQ(s[p - 1], 1.0);  // pair (3, 3): identical images
}

TEST(ImageMetrics, MatchSkimageOnOddShapes) {
  // (3, 32, 32) noise vs noisier; (1, 11, 13): the smallest image the 11x11 window fits (the
  // cropped map is 1x3); (3, 12, 20) smooth vs noisy.
  for (int k = 0; k < 3; ++k) {
    SCOPED_TRACE(fmt::format("noise{}", k));
    const auto t = lowbit::read_safetensors(
        kFixture, {fmt::format("ssim.noise{}_a", k), fmt::format("ssim.noise{}_b", k),
                   fmt::format("ssim.noise{}", k), fmt::format("psnr.noise{}", k)});
    const Images a = from_u8(t[0]), b = from_u8(t[1]);
    const double want_s = lowbit::to_f64(t[2])[0], want_p = lowbit::to_f64(t[3])[0];
    EXPECT_NEAR(lowbit::ssim(a.batch(), b.batch())[0], want_s, kSsimTol);
    EXPECT_NEAR(lowbit::psnr(a.batch(), b.batch())[0], want_p, 1e-12 * want_p);
  }
}

TEST(ImageMetrics, ClosedForms) {
  // Constant images c and d: all local variances vanish, so SSIM = (2cd + C1) / (c² + d² + C1).
  const Images a = constant({1, 2, 16, 16}, 0.5f), b = constant({1, 2, 16, 16}, -0.25f);
  const double c1 = (0.01 * 2) * (0.01 * 2);
  // (The filtered constants carry the taps' sum 1 ± 1e-16, and variances of ~1e-17 enter
  // against C2 = 3.6e-3: agreement to ~1e-14, bound 1e-12.)
  EXPECT_NEAR(lowbit::ssim(a.batch(), b.batch())[0], (2 * 0.5 * -0.25 + c1) / (0.25 + 0.0625 + c1), 1e-12);
  // PSNR of a constant offset δ: 10·log10(R² / δ²) = 20·log10(2 / 0.75).
  EXPECT_NEAR(lowbit::psnr(a.batch(), b.batch())[0], 20 * std::log10(2.0 / 0.75), 1e-13);
  EXPECT_NEAR(lowbit::psnr(a.batch(), b.batch(), {1.0})[0], 20 * std::log10(1.0 / 0.75), 1e-13);
  // SSIM is symmetric. An image x in [0, 1] against 1 − x (same local means ≈ 0.5, opposite
  // structure) has SSIM near −1. (Against −x it would be positive for zero-mean noise: the
  // luminance and structure factors are then both negative.)
  const Images x = random({1, 3, 20, 24}, 1), y = random({1, 3, 20, 24}, 2);
  EXPECT_EQ(lowbit::ssim(x.batch(), y.batch())[0], lowbit::ssim(y.batch(), x.batch())[0]);
  Images pos = x, inv = x;
  for (size_t i = 0; i < x.v.size(); ++i) {
    pos.v[i] = 0.5f * (x.v[i] + 1.0f);
    inv.v[i] = 1.0f - pos.v[i];
  }
  EXPECT_LT(lowbit::ssim(pos.batch(), inv.batch())[0], -0.9);
}

TEST(ImageMetrics, IdenticalImages) {
  const Images x = random({2, 3, 16, 16}, 4);
  for (double s : lowbit::ssim(x.batch(), x.batch())) EXPECT_EQ(s, 1.0);
  // PSNR: +Inf by definition (as skimage), or the cap when one is set.
  for (double p : lowbit::psnr(x.batch(), x.batch())) EXPECT_EQ(p, kInf);
  for (double p : lowbit::psnr(x.batch(), x.batch(), {2.0, 100.0})) EXPECT_EQ(p, 100.0);
  // The cap applies to every image, not only identical ones; a batch mean then stays finite.
  Images y = x;
  y.v[5] += 1e-3f;
  const auto capped = lowbit::psnr(y.batch(), x.batch(), {2.0, 80.0});
  EXPECT_EQ(capped[0], 80.0);  // 10·log10(4 / (1e-6 / 768)) ≈ 95 dB, capped
  EXPECT_EQ(capped[1], 80.0);
  EXPECT_TRUE(std::isfinite(lowbit::bootstrap_mean(capped).point));
}

TEST(ImageMetrics, BatchIsPerImageAndNanStaysInItsImage) {
  Images a = random({3, 3, 12, 12}, 7), b = random({3, 3, 12, 12}, 8);
  const auto s = lowbit::ssim(a.batch(), b.batch());
  const auto p = lowbit::psnr(a.batch(), b.batch());
  for (int64_t i = 0; i < 3; ++i) {
    Images ai{std::vector<float>(a.v.begin() + i * 432, a.v.begin() + (i + 1) * 432), {1, 3, 12, 12}};
    Images bi{std::vector<float>(b.v.begin() + i * 432, b.v.begin() + (i + 1) * 432), {1, 3, 12, 12}};
    EXPECT_EQ(lowbit::ssim(ai.batch(), bi.batch())[0], s[static_cast<size_t>(i)]);
    EXPECT_EQ(lowbit::psnr(ai.batch(), bi.batch())[0], p[static_cast<size_t>(i)]);
  }
  a.v[432 + 50] = std::nan("");
  const auto s2 = lowbit::ssim(a.batch(), b.batch());
  const auto p2 = lowbit::psnr(a.batch(), b.batch());
  EXPECT_EQ(s2[0], s[0]);
  EXPECT_TRUE(std::isnan(s2[1]));
  EXPECT_EQ(s2[2], s[2]);
  EXPECT_TRUE(std::isnan(p2[1]));
  EXPECT_EQ(p2[2], p[2]);
  // Batch summary: mean with a bootstrap percentile interval.
  const auto r = lowbit::bootstrap_mean(s, {500, 1, 0.95});
  EXPECT_DOUBLE_EQ(r.point, (s[0] + s[1] + s[2]) / 3);
  EXPECT_LE(r.lo, r.point);
  EXPECT_GE(r.hi, r.point);
  EXPECT_TRUE(std::isnan(lowbit::bootstrap_mean(s2, {500, 1, 0.95}).lo));
}

TEST(ImageMetrics, WindowFollowsSigmaAndTruncate) {
  // r = int(truncate·sigma + 0.5): 5 for (1.5, 3.5) -> 11x11; 4 for (1.0, 3.5) -> 9x9.
  const Images a9 = random({1, 1, 9, 9}, 1), b9 = random({1, 1, 9, 9}, 2);
  expect_error([&] { lowbit::ssim(a9.batch(), b9.batch()); }, "smaller than the 11x11 Gaussian window");
  lowbit::SsimOptions o;
  o.sigma = 1.0;
  EXPECT_TRUE(std::isfinite(lowbit::ssim(a9.batch(), b9.batch(), o)[0]));
  const Images a8 = random({1, 1, 8, 9}, 1), b8 = random({1, 1, 8, 9}, 2);
  expect_error([&] { lowbit::ssim(a8.batch(), b8.batch(), o); }, "smaller than the 9x9 Gaussian window");
}

TEST(ImageMetrics, RejectsBadInput) {
  const Images a = random({2, 3, 16, 16}, 1), b = random({2, 3, 16, 17}, 2), c = random({1, 3, 16, 16}, 3);
  expect_error([&] { lowbit::ssim(a.batch(), b.batch()); }, "ssim: images (2, 3, 16, 16) and reference (2, 3, 16, 17) differ");
  expect_error([&] { lowbit::psnr(a.batch(), c.batch()); }, "psnr: images (2, 3, 16, 16) and reference (1, 3, 16, 16) differ");
  expect_error([&] { lowbit::psnr(a.batch(), a.batch(), {0.0}); }, "data_range must be positive");
  const ImageBatch short_view{std::span<const float>(a.v).first(100), 2, 3, 16, 16};
  expect_error([&] { lowbit::ssim(short_view, short_view); }, "do not match its shape");
  expect_error([&] { lowbit::psnr(a.batch(), a.batch(), {2.0, std::nan("")}); }, "max_db is NaN");
  lowbit::SsimOptions o;
  o.data_range = -2;
  expect_error([&] { lowbit::ssim(a.batch(), a.batch(), o); }, "data_range must be positive");
  o = {};
  o.sigma = 0;
  expect_error([&] { lowbit::ssim(a.batch(), a.batch(), o); }, "sigma must be positive");
  o = {};
  o.k2 = -0.03;
  expect_error([&] { lowbit::ssim(a.batch(), a.batch(), o); }, "K1 and K2 must be non-negative");
}

}  // namespace
