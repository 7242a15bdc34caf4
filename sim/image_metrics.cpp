// PSNR and SSIM per image (see image_metrics.hpp for the definitions and the skimage/scipy
// behaviour matched: Gaussian taps, window radius, border crop).
#include "sim/image_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "formats/error.hpp"

namespace lowbit {

namespace {

void check_same_shape(const ImageBatch& a, const ImageBatch& b, std::string_view what) {
  if (a.n != b.n || a.c != b.c || a.h != b.h || a.w != b.w)
    throw Error(fmt::format("{}: images ({}, {}, {}, {}) and reference ({}, {}, {}, {}) differ in shape",
                            what, a.n, a.c, a.h, a.w, b.n, b.c, b.h, b.w));
  if (a.n < 0 || a.c < 0 || a.h < 0 || a.w < 0 ||
      static_cast<int64_t>(a.values.size()) != a.n * a.image_size() ||
      static_cast<int64_t>(b.values.size()) != b.n * b.image_size())
    throw Error(fmt::format("{}: image batch values do not match its shape", what));
}

bool positive_finite(double v) { return std::isfinite(v) && v > 0.0; }

// scipy.ndimage._filters._gaussian_kernel1d(sigma, 0, radius): exp(-0.5 / σ² · x²) / sum.
std::vector<double> gaussian_taps(double sigma, int64_t radius) {
  std::vector<double> g(static_cast<size_t>(2 * radius + 1));
  const double sigma2 = sigma * sigma;
  double sum = 0.0;
  for (int64_t x = -radius; x <= radius; ++x) {
    const double v = std::exp(-0.5 / sigma2 * static_cast<double>(x * x));
    g[static_cast<size_t>(x + radius)] = v;
    sum += v;
  }
  for (double& v : g) v /= sum;
  return g;
}

// Separable Gaussian filter of an h × w plane at the "valid" positions only, i.e. those whose
// (2r + 1)² window lies inside the plane: out is (h − 2r) × (w − 2r) with out[y, x] =
// Σ_{k,l=0..2r} g[k]·g[l]·in[y + k, x + l], i.e. the filtered value at (y + r, x + r). The axis-0 pass (over rows) runs first, then axis 1, as in
// scipy.ndimage.gaussian_filter. These are the only positions skimage averages after its crop,
// so scipy's border mode ('reflect') never enters the result. tmp holds (h − 2r) × w.
void gaussian_filter_valid(const double* in, double* out, double* tmp, int64_t h, int64_t w,
                           const std::vector<double>& g, int64_t r) {
  const int64_t ho = h - 2 * r, wo = w - 2 * r;
  for (int64_t y = 0; y < ho; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double s = 0.0;
      for (int64_t k = 0; k <= 2 * r; ++k) s += g[static_cast<size_t>(k)] * in[(y + k) * w + x];
      tmp[y * w + x] = s;
    }
  for (int64_t y = 0; y < ho; ++y)
    for (int64_t x = 0; x < wo; ++x) {
      double s = 0.0;
      for (int64_t k = 0; k <= 2 * r; ++k) s += g[static_cast<size_t>(k)] * tmp[y * w + x + k];
      out[y * wo + x] = s;
    }
}

}  // namespace

std::vector<double> psnr(const ImageBatch& images, const ImageBatch& reference, const PsnrOptions& o) {
  check_same_shape(images, reference, "psnr");
  if (!positive_finite(o.data_range))
    throw Error(fmt::format("psnr: data_range must be positive and finite, got {}", o.data_range));
  if (std::isnan(o.max_db)) throw Error("psnr: max_db is NaN");
  std::vector<double> out(static_cast<size_t>(images.n));
  const int64_t m = images.image_size();
#pragma omp parallel for schedule(static) if (images.n * m > 65536)
  for (int64_t i = 0; i < images.n; ++i) {
    const auto a = images.image(i), b = reference.image(i);
    double se = 0.0;
    for (int64_t j = 0; j < m; ++j) {
      const double d = static_cast<double>(a[static_cast<size_t>(j)]) - static_cast<double>(b[static_cast<size_t>(j)]);
      se += d * d;
    }
    // An empty image (C·H·W = 0) has no MSE: NaN, as numpy's mean of nothing.
    const double mse = se / static_cast<double>(m);
    const double db = mse == 0.0 ? std::numeric_limits<double>::infinity()
                                 : 10.0 * std::log10(o.data_range * o.data_range / mse);
    out[static_cast<size_t>(i)] = std::isnan(db) ? db : std::min(db, o.max_db);
  }
  return out;
}

std::vector<double> ssim(const ImageBatch& images, const ImageBatch& reference, const SsimOptions& o) {
  check_same_shape(images, reference, "ssim");
  if (!positive_finite(o.data_range))
    throw Error(fmt::format("ssim: data_range must be positive and finite, got {}", o.data_range));
  if (!positive_finite(o.sigma)) throw Error(fmt::format("ssim: sigma must be positive and finite, got {}", o.sigma));
  if (!positive_finite(o.truncate) || o.truncate * o.sigma > 1e6)
    throw Error(fmt::format("ssim: truncate must be positive with truncate*sigma <= 1e6, got {}", o.truncate));
  if (!(o.k1 >= 0.0 && std::isfinite(o.k1)) || !(o.k2 >= 0.0 && std::isfinite(o.k2)))
    throw Error(fmt::format("ssim: K1 and K2 must be non-negative, got {} and {}", o.k1, o.k2));
  const auto r = static_cast<int64_t>(o.truncate * o.sigma + 0.5);  // scipy: int(truncate*sd + 0.5)
  const int64_t win = 2 * r + 1;
  if (images.n > 0 && (images.h < win || images.w < win))
    throw Error(fmt::format("ssim: images of {}x{} are smaller than the {}x{} Gaussian window "
                            "(sigma {}, truncate {})", images.h, images.w, win, win, o.sigma, o.truncate));
  if (images.n > 0 && images.c < 1) throw Error("ssim: images have no channels");
  const auto g = gaussian_taps(o.sigma, r);
  const double c1 = (o.k1 * o.data_range) * (o.k1 * o.data_range);
  const double c2 = (o.k2 * o.data_range) * (o.k2 * o.data_range);
  const int64_t h = images.h, w = images.w, hw = h * w;
  std::vector<double> out(static_cast<size_t>(images.n));

#pragma omp parallel
  {
    // x, y, x², y², xy (h·w each), their filtered values at the valid positions, and scratch.
    const int64_t vo = (h - 2 * r) * (w - 2 * r);
    std::vector<double> buf(static_cast<size_t>(5 * hw + 5 * vo + (h - 2 * r) * w));
    double* in[5];
    double* f[5];
    for (int k = 0; k < 5; ++k) {
      in[k] = buf.data() + k * hw;
      f[k] = buf.data() + 5 * hw + k * vo;
    }
    double* tmp = buf.data() + 5 * hw + 5 * vo;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < images.n; ++i) {
      double channel_sum = 0.0;
      for (int64_t ch = 0; ch < images.c; ++ch) {
        const float* a = images.image(i).data() + ch * hw;
        const float* b = reference.image(i).data() + ch * hw;
        for (int64_t j = 0; j < hw; ++j) {
          const double x = a[j], y = b[j];
          in[0][j] = x;
          in[1][j] = y;
          in[2][j] = x * x;
          in[3][j] = y * y;
          in[4][j] = x * y;
        }
        for (int k = 0; k < 5; ++k) gaussian_filter_valid(in[k], f[k], tmp, h, w, g, r);
        double s = 0.0;
        for (int64_t j = 0; j < vo; ++j) {
          const double ux = f[0][j], uy = f[1][j];
          const double vx = f[2][j] - ux * ux, vy = f[3][j] - uy * uy, vxy = f[4][j] - ux * uy;
          const double a1 = 2.0 * ux * uy + c1, a2 = 2.0 * vxy + c2;
          const double b1 = ux * ux + uy * uy + c1, b2 = vx + vy + c2;
          s += (a1 * a2) / (b1 * b2);
        }
        channel_sum += s / static_cast<double>(vo);
      }
      out[static_cast<size_t>(i)] = channel_sum / static_cast<double>(images.c);
    }
  }
  return out;
}

}  // namespace lowbit
