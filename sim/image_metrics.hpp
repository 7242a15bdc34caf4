// Full-reference image metrics per image: PSNR and SSIM of each image of a batch against the
// reference image at the same index (same N, C, H, W). Batch means with a bootstrap CI come from
// bootstrap_mean (sim/bootstrap.hpp) on the returned per-image values.
//
// Data range: lowbit's model images are float in [-1, 1], so the default data_range is 2
// (max − min of the representable range), as skimage's `data_range=2`; images in [0, 1] need
// data_range = 1, 8-bit images 255. Both metrics compute in float64 from the float32 values.
// NaN in an image gives NaN for that image (values, not errors); shape mismatches, bad options
// and images smaller than the SSIM window throw lowbit::Error.
#pragma once
#include <limits>
#include <vector>

#include "sim/image_batch.hpp"

namespace lowbit {

struct PsnrOptions {
  double data_range = 2.0;  // R > 0
  // Identical images have MSE 0 and PSNR +Inf (the definition; skimage's
  // peak_signal_noise_ratio returns inf as well). Set max_db (e.g. 100) to cap every value at it,
  // so that batch means stay finite.
  double max_db = std::numeric_limits<double>::infinity();
};

// PSNR_i = 10·log10(R² / MSE_i), MSE_i = mean over C·H·W of (x − ref)², capped at max_db.
// Matches skimage.metrics.peak_signal_noise_ratio(ref, x, data_range=R) per image.
std::vector<double> psnr(const ImageBatch& images, const ImageBatch& reference,
                         const PsnrOptions& options = {});

// SSIM of Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 13(4), 2004, in the implementation of
// skimage.metrics.structural_similarity(x, ref, data_range=R, channel_axis=0,
// gaussian_weights=True, sigma=1.5, use_sample_covariance=False) (scikit-image 0.26):
//   * per channel, local statistics by a separable Gaussian filter (scipy.ndimage.gaussian_filter:
//     taps exp(−x²/(2σ²)) normalised to sum 1 for |x| <= r, r = int(truncate·σ + 0.5) = 5 for
//     σ = 1.5, truncate = 3.5 — the 11×11 window of Wang et al.);
//   * population (co)variances vx = E[x²] − E[x]², vxy = E[xy] − E[x]E[y];
//   * S = (2·ux·uy + C1)(2·vxy + C2) / ((ux² + uy² + C1)(vx + vy + C2)), C1 = (K1·R)²,
//     C2 = (K2·R)²;
//   * mean of S over the map cropped by r on every side (skimage's crop(S, (win_size − 1) // 2)),
//     then the mean over channels.
// The crop keeps exactly the positions whose window lies inside the image, so skimage's filter
// border mode ('reflect') never affects the value; only those positions are computed here.
// H and W must be at least 2r + 1 (11), as skimage requires.
struct SsimOptions {
  double data_range = 2.0;  // R > 0
  double sigma = 1.5;       // Gaussian standard deviation, > 0
  double truncate = 3.5;    // window radius r = int(truncate·sigma + 0.5)
  double k1 = 0.01, k2 = 0.03;  // >= 0
};

std::vector<double> ssim(const ImageBatch& images, const ImageBatch& reference,
                         const SsimOptions& options = {});

}  // namespace lowbit
