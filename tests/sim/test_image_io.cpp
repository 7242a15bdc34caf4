// PNG and .npz output (sim/image_io.hpp): the pixel rule of the training code (ties to even,
// clamping, NaN), grid layout, PNG round trip through libpng, npz members equal to write_npy's
// bytes, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <vector>

#include "formats/error.hpp"
#include "sim/image_io.hpp"
#include "sim/npy.hpp"
#include "tests/sim/temp_dir_test.hpp"

namespace lowbit {
namespace {

using ImageIoTest = testing::TempDirTest;

TEST(ImageIo, PixelRuleIsTheTrainingCodes) {
  EXPECT_EQ(pixel_u8(-1.0f), 0);
  EXPECT_EQ(pixel_u8(1.0f), 255);
  EXPECT_EQ(pixel_u8(-7.0f), 0);
  EXPECT_EQ(pixel_u8(3.0f), 255);
  EXPECT_EQ(pixel_u8(std::numeric_limits<float>::quiet_NaN()), 0);
  // (x + 1) * 127.5 = k + 0.5 exactly: ties to even (torch.round).
  for (int k = 0; k < 255; ++k) {
    const float x = (static_cast<float>(k) + 0.5f) / 127.5f - 1.0f;
    const float v = (x + 1.0f) * 127.5f;
    if (v != static_cast<float>(k) + 0.5f) continue;  // not an exact tie in float
    EXPECT_EQ(pixel_u8(x), k % 2 == 0 ? k : k + 1) << k;
  }
  EXPECT_EQ(pixel_u8(0.0f), 128);  // 127.5 -> 128 (even)
}

TEST_F(ImageIoTest, GridLayoutAndPngRoundTrip) {
  // 3 images of 3 x 2 x 2, values chosen per image and channel.
  const int64_t n = 3, h = 2, w = 2;
  std::vector<float> im(static_cast<size_t>(n * 3 * h * w));
  for (int64_t k = 0; k < n; ++k)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < h * w; ++i) im[static_cast<size_t>((k * 3 + c) * h * w + i)] = -1.0f + 0.25f * (k * 3 + c) + 0.01f * i;
  const Rgb8Image g = image_grid(im, n, h, w, /*cols=*/2, /*pad=*/1, /*scale=*/2);
  EXPECT_EQ(g.width, 2 * (2 * 2 + 1) + 1);
  EXPECT_EQ(g.height, 2 * (2 * 2 + 1) + 1);
  auto px = [&](int64_t x, int64_t y, int64_t c) { return g.pixels[static_cast<size_t>((y * g.width + x) * 3 + c)]; };
  EXPECT_EQ(px(0, 0, 0), 255);  // padding
  // image 1 (column 1, row 0) starts at x = 1 + 5, y = 1; pixel (0,0) scaled by 2.
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_EQ(px(6, 1, c), pixel_u8(im[static_cast<size_t>((1 * 3 + c) * h * w + 0)]));
    EXPECT_EQ(px(7, 2, c), pixel_u8(im[static_cast<size_t>((1 * 3 + c) * h * w + 0)]));
    EXPECT_EQ(px(8, 1, c), pixel_u8(im[static_cast<size_t>((1 * 3 + c) * h * w + 1)]));
  }
  // image 2 (row 1, column 0); the empty cell stays white.
  EXPECT_EQ(px(1, 6, 2), pixel_u8(im[static_cast<size_t>((2 * 3 + 2) * h * w)]));
  EXPECT_EQ(px(6, 6, 0), 255);

  write_png(file("g.png"), g);
  const Rgb8Image back = read_png(file("g.png"));
  EXPECT_EQ(back.width, g.width);
  EXPECT_EQ(back.height, g.height);
  EXPECT_EQ(back.pixels, g.pixels);
}

TEST_F(ImageIoTest, NpzMembersAreTheNpyBytes) {
  const std::vector<float> a = {1.0f, -2.5f, 3.0f, 0.0f, 5.0f, 6.0f};
  const std::vector<Tensor> ts = {tensor_from_f32({2, 3}, a, "images"), tensor_from_f32({1}, std::vector<float>{7.0f}, "seed")};
  write_npz(file("s.npz"), ts);
  const auto members = read_zip_members(file("s.npz"));
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].first, "images.npy");
  EXPECT_EQ(members[1].first, "seed.npy");
  EXPECT_EQ(members[0].second, npy_bytes(ts[0], "x"));
  EXPECT_EQ(members[1].second, npy_bytes(ts[1], "x"));
  // The member read back as .npy gives the tensor.
  {
    std::ofstream out(file("m.npy"), std::ios::binary);
    out.write(reinterpret_cast<const char*>(members[0].second.data()), static_cast<std::streamsize>(members[0].second.size()));
  }
  const Tensor r = read_npy(file("m.npy"));
  EXPECT_EQ(r.shape, ts[0].shape);
  EXPECT_EQ(r.data, ts[0].data);
}

TEST_F(ImageIoTest, BadInputIsAClearError) {
  const std::vector<float> a = {1.0f};
  EXPECT_THROW(write_npz(file("a.npz"), {tensor_from_f32({1}, a, "")}), Error);
  EXPECT_THROW(write_npz(file("a.npz"), {tensor_from_f32({1}, a, "x"), tensor_from_f32({1}, a, "x")}), Error);
  Tensor bf = tensor_from_f32({1}, a, "b");
  bf.dtype = DType::BF16;
  bf.data.resize(2);
  EXPECT_THROW(write_npz(file("a.npz"), {bf}), Error);  // no .npy descr
  EXPECT_THROW(write_npz(file("no_such_dir") / "a.npz", {tensor_from_f32({1}, a, "x")}), Error);
  EXPECT_THROW(image_grid(a, 1, 2, 2, 1), Error);  // 1 value for 3 x 2 x 2
  EXPECT_THROW(image_grid({}, 0, 0, 2, 1), Error);
  Rgb8Image bad;
  bad.width = 2;
  bad.height = 2;
  EXPECT_THROW(write_png(file("b.png"), bad), Error);
  EXPECT_THROW(read_png(write_raw("junk.png", "not a png")), Error);
  EXPECT_THROW(read_zip_members(write_raw("junk.npz", "not a zip")), Error);
}

}  // namespace
}  // namespace lowbit
