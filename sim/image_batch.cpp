// ImageBatch shape validation.
#include "sim/image_batch.hpp"

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/tensor.hpp"

namespace lowbit {

ImageBatch image_batch(std::span<const float> values, std::span<const int64_t> shape,
                       std::string_view what) {
  if (shape.size() != 4)
    throw Error(fmt::format("{}: images must be 4-D (N, C, H, W), got shape {}", what,
                            shape_to_string(shape)));
  const auto bytes = checked_byte_size(shape, 1);
  if (!bytes)
    throw Error(fmt::format("{}: invalid image shape {} (negative or overflowing dimension)", what,
                            shape_to_string(shape)));
  if (values.size() != *bytes)
    throw Error(fmt::format("{}: image shape {} needs {} values but {} were given", what,
                            shape_to_string(shape), *bytes, values.size()));
  return ImageBatch{values, shape[0], shape[1], shape[2], shape[3]};
}

}  // namespace lowbit
