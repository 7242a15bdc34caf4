// ImageBatch — a read-only view of N images in NCHW float32 layout (C order: image, channel,
// row, column), the input of the feature network (sim/featnet.hpp) and the image metrics
// (sim/image_metrics.hpp). The model's images are float in [-1, 1]; the view itself assumes no
// range.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>

namespace lowbit {

struct ImageBatch {
  std::span<const float> values;  // n * c * h * w floats
  int64_t n = 0, c = 0, h = 0, w = 0;

  int64_t image_size() const { return c * h * w; }
  int64_t plane_size() const { return h * w; }
  // The c·h·w values of image i.
  std::span<const float> image(int64_t i) const {
    return values.subspan(static_cast<size_t>(i * image_size()), static_cast<size_t>(image_size()));
  }
};

// Checks that `shape` is 4-D (N, C, H, W) with non-negative dims and that values holds exactly
// their product; throws lowbit::Error starting with `what` otherwise.
ImageBatch image_batch(std::span<const float> values, std::span<const int64_t> shape,
                       std::string_view what);

}  // namespace lowbit
