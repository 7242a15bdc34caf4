// Files of end-to-end runs: images as PNG (libpng) and sample tensors as NumPy .npz archives
// (uncompressed zip of NAME.npy members, as numpy.savez writes them; libzip).
//
// Images are float NCHW RGB in [-1, 1] (the DiT's output range); pixels are
// round((clamp(x, -1, 1) + 1) * 127.5) with ties to even, as the training code's to_uint8
// (torch.round) gives them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sim/tensor.hpp"

namespace lowbit {

struct Rgb8Image {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // height * width * 3, row-major RGB
};

uint8_t pixel_u8(float x);

// n images of 3 × h × w (NCHW, [-1, 1]) in a grid of `cols` columns, each scaled by `scale`
// (nearest) and separated by `pad` white pixels (also around the grid).
Rgb8Image image_grid(std::span<const float> images, int64_t n, int64_t h, int64_t w, int64_t cols, int64_t pad = 2,
                     int64_t scale = 1);

// 8-bit RGB PNG; lowbit::Error naming the file on failure.
void write_png(const std::filesystem::path& path, const Rgb8Image& image);
Rgb8Image read_png(const std::filesystem::path& path);

// Tensors as NAME.npy members of an uncompressed zip (numpy.load reads it); names must be
// unique and non-empty, and every dtype must have a .npy descr (sim/npy.hpp).
void write_npz(const std::filesystem::path& path, const std::vector<Tensor>& tensors);
// The members of a zip archive: (name, bytes), in archive order (for tests and tools).
std::vector<std::pair<std::string, std::vector<uint8_t>>> read_zip_members(const std::filesystem::path& path);

}  // namespace lowbit
