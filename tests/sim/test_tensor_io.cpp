// Tests for sim/tensor and sim/tensor_io: dtype table, shape arithmetic, F16/BF16 decoding of
// known bit patterns (and all 2^16 F16 codes against an ldexp oracle), integer widening, and
// the load_tensors() spec forms.
#include <gtest/gtest.h>

#include "tests/sim/temp_dir_test.hpp"
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/npy.hpp"
#include "sim/safetensors.hpp"
#include "sim/tensor.hpp"
#include "sim/tensor_io.hpp"

namespace fs = std::filesystem;
using lowbit::DType;
using lowbit::Tensor;

namespace {

void expect_error(const std::function<void()>& fn, const std::string& word) {
  try {
    fn();
    ADD_FAILURE() << "expected lowbit::Error containing '" << word << "'";
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << "message: " << e.what();
  }
}

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

template <typename T>
Tensor make(DType dt, std::vector<int64_t> shape, const std::vector<T>& v) {
  return lowbit::tensor_from_raw(dt, std::move(shape), std::as_bytes(std::span(v)));
}

TEST(DType, NamesSizesAndParse) {
  const std::vector<std::tuple<DType, std::string, size_t>> table = {
      {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
      {DType::I8, "I8", 1},   {DType::U8, "U8", 1},   {DType::U16, "U16", 2},
      {DType::U32, "U32", 4}, {DType::I32, "I32", 4}, {DType::F64, "F64", 8}};
  for (const auto& [dt, name, size] : table) {
    EXPECT_EQ(lowbit::dtype_name(dt), name);
    EXPECT_EQ(lowbit::dtype_size(dt), size);
    EXPECT_EQ(lowbit::parse_dtype(name), dt);
  }
  EXPECT_FALSE(lowbit::parse_dtype("f32"));
  EXPECT_FALSE(lowbit::parse_dtype("f64"));
  EXPECT_FALSE(lowbit::parse_dtype("I64"));
}

TEST(Shape, CheckedByteSizeAndNumel) {
  EXPECT_EQ(lowbit::checked_byte_size(std::vector<int64_t>{}, 4), 4u);
  EXPECT_EQ(lowbit::checked_byte_size(std::vector<int64_t>{2, 3, 4}, 2), 48u);
  EXPECT_EQ(lowbit::checked_byte_size(std::vector<int64_t>{5, 0, 7}, 4), 0u);
  EXPECT_FALSE(lowbit::checked_byte_size(std::vector<int64_t>{0, -1}, 1));
  EXPECT_FALSE(lowbit::checked_byte_size(std::vector<int64_t>{1ll << 31, 1ll << 31}, 2));
  EXPECT_FALSE(lowbit::checked_byte_size(std::vector<int64_t>{0, 1ll << 40, 1ll << 40}, 1));
  EXPECT_EQ(lowbit::checked_byte_size(std::vector<int64_t>{1ll << 31, 1ll << 31}, 1), 1ull << 62);

  Tensor t;
  EXPECT_EQ(t.numel(), 1);  // scalar
  t.shape = {3, 0};
  EXPECT_EQ(t.numel(), 0);
  t.shape = {2, 3, 4};
  EXPECT_EQ(t.numel(), 24);
  t.shape = {2, -3};
  expect_error([&] { (void)t.numel(); }, "invalid shape (2, -3)");

  EXPECT_EQ(lowbit::shape_to_string(std::vector<int64_t>{}), "()");
  EXPECT_EQ(lowbit::shape_to_string(std::vector<int64_t>{5}), "(5,)");
  EXPECT_EQ(lowbit::shape_to_string(std::vector<int64_t>{3, 4}), "(3, 4)");
}

TEST(Tensor, FromF32AndRawCheckSizes) {
  const std::vector<float> v = {1.5f, -2.f, 3.f};
  const Tensor t = lowbit::tensor_from_f32({3}, v, "x");
  EXPECT_EQ(t.name, "x");
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.data.size(), 12u);
  EXPECT_EQ(lowbit::to_f32(t), v);
  expect_error([&] { lowbit::tensor_from_f32({2, 2}, v); }, "needs 16 bytes but 12");
  expect_error([&] { lowbit::tensor_from_f32({-3}, v); }, "invalid shape");
  const std::vector<uint16_t> h = {0x3C00};
  expect_error([&] { make(DType::F32, {1}, h); }, "needs 4 bytes but 2");
  Tensor bad = t;
  bad.data.pop_back();
  expect_error([&] { lowbit::to_f32(bad); }, "holds 11 bytes");
}

TEST(Decode, F16KnownPatterns) {
  EXPECT_EQ(lowbit::f16_bits_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(lowbit::f16_bits_to_f32(0xC000), -2.0f);
  EXPECT_EQ(lowbit::f16_bits_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(lowbit::f16_bits_to_f32(0x0001), std::ldexp(1.0f, -24));   // min subnormal
  EXPECT_EQ(lowbit::f16_bits_to_f32(0x03FF), std::ldexp(1023.0f, -24));  // max subnormal
  EXPECT_EQ(lowbit::f16_bits_to_f32(0x0400), std::ldexp(1.0f, -14));   // min normal
  EXPECT_EQ(lowbit::f16_bits_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(bits(lowbit::f16_bits_to_f32(0x0000)), 0x00000000u);
  EXPECT_EQ(bits(lowbit::f16_bits_to_f32(0x8000)), 0x80000000u);  // -0
  EXPECT_EQ(lowbit::f16_bits_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(lowbit::f16_bits_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(lowbit::f16_bits_to_f32(0x7E00)));
  EXPECT_EQ(bits(lowbit::f16_bits_to_f32(0x7E00)), 0x7FC00000u);  // quiet NaN, payload kept
  EXPECT_EQ(bits(lowbit::f16_bits_to_f32(0xFD01)), 0xFFA02000u);  // signalling NaN kept as is
}

TEST(Decode, F16AllCodesMatchLdexpOracle) {
  for (uint32_t c = 0; c < 0x10000; ++c) {
    const int exp = (c >> 10) & 0x1F;
    const int mant = c & 0x3FF;
    const float sign = (c & 0x8000) ? -1.f : 1.f;
    const float got = lowbit::f16_bits_to_f32(static_cast<uint16_t>(c));
    if (exp == 0x1F) {
      EXPECT_EQ(std::isnan(got), mant != 0) << c;
      if (mant == 0) {
        EXPECT_EQ(got, sign * std::numeric_limits<float>::infinity()) << c;
      }
      continue;
    }
    const float want = exp == 0 ? sign * std::ldexp(static_cast<float>(mant), -24)
                                : sign * std::ldexp(static_cast<float>(1024 + mant), exp - 25);
    ASSERT_EQ(bits(got), bits(want)) << "code 0x" << std::hex << c;
  }
}

TEST(Decode, Bf16KnownPatterns) {
  EXPECT_EQ(lowbit::bf16_bits_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(lowbit::bf16_bits_to_f32(0xC040), -3.0f);
  EXPECT_EQ(lowbit::bf16_bits_to_f32(0x0001), std::ldexp(1.0f, -133));  // min subnormal
  EXPECT_EQ(lowbit::bf16_bits_to_f32(0x0080), std::ldexp(1.0f, -126));  // min normal
  EXPECT_EQ(lowbit::bf16_bits_to_f32(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(lowbit::bf16_bits_to_f32(0xFF80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(lowbit::bf16_bits_to_f32(0x7FC0)));
  EXPECT_EQ(bits(lowbit::bf16_bits_to_f32(0x8000)), 0x80000000u);
}

TEST(ToF32, EveryDtype) {
  EXPECT_EQ(lowbit::to_f32(make<uint16_t>(DType::F16, {2, 2}, {0x3C00, 0x0001, 0xFC00, 0x3555})),
            (std::vector<float>{1.f, std::ldexp(1.f, -24), -std::numeric_limits<float>::infinity(),
                                std::ldexp(static_cast<float>(1024 + 0x155), -12)}));  // ~1/3
  EXPECT_EQ(lowbit::to_f32(make<uint16_t>(DType::BF16, {2}, {0x3F80, 0x0001})),
            (std::vector<float>{1.f, std::ldexp(1.f, -133)}));
  EXPECT_EQ(lowbit::to_f32(make<int8_t>(DType::I8, {3}, {-128, 0, 127})),
            (std::vector<float>{-128.f, 0.f, 127.f}));
  EXPECT_EQ(lowbit::to_f32(make<uint8_t>(DType::U8, {2}, {0, 255})), (std::vector<float>{0.f, 255.f}));
  EXPECT_EQ(lowbit::to_f32(make<uint16_t>(DType::U16, {2}, {1, 65535})),
            (std::vector<float>{1.f, 65535.f}));
  // I32/U32 round to nearest even above 2^24.
  EXPECT_EQ(lowbit::to_f32(make<int32_t>(DType::I32, {3}, {std::numeric_limits<int32_t>::min(),
                                                           16777217, -7})),
            (std::vector<float>{-2147483648.f, 16777216.f, -7.f}));
  EXPECT_EQ(lowbit::to_f32(make<uint32_t>(DType::U32, {2}, {4294967295u, 16777219u})),
            (std::vector<float>{4294967296.f, 16777220.f}));
  EXPECT_TRUE(lowbit::to_f32(make<float>(DType::F32, {0, 4}, {})).empty());
  EXPECT_EQ(lowbit::to_f32(make<float>(DType::F32, {}, {0.25f})), std::vector<float>{0.25f});
}

TEST(ToF32, F64RoundsToNearestEven) {
  const double inf = std::numeric_limits<double>::infinity();
  // 1 + 2^-24 is the midpoint of 1 and 1 + 2^-23: ties to the even 1; 1 + 3*2^-24 ties up to
  // 1 + 2^-22; just above the midpoint rounds up. 1e300 overflows, 1e-300 underflows to +0.
  const std::vector<double> v = {1.0 + std::ldexp(1.0, -24), 1.0 + 3 * std::ldexp(1.0, -24),
                                 1.0 + std::ldexp(1.0, -24) + std::ldexp(1.0, -50),
                                 -1e300, 1e-300, -inf, 0.1};
  const auto f = lowbit::to_f32(make<double>(DType::F64, {7}, v));
  ASSERT_EQ(f.size(), 7u);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], 1.0f + std::ldexp(1.0f, -22));
  EXPECT_EQ(f[2], 1.0f + std::ldexp(1.0f, -23));
  EXPECT_EQ(f[3], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(bits(f[4]), 0u);
  EXPECT_EQ(f[5], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f[6], 0.1f);
  EXPECT_TRUE(std::isnan(lowbit::to_f32(make<double>(DType::F64, {}, {std::nan("")}))[0]));
}

TEST(ToF64, EveryDtypeExact) {
  // Values float32 cannot hold: F64 comes back bit for bit, I32/U32 without rounding.
  const std::vector<double> v = {0.1, -std::ldexp(1.0, -1074), 1.0 + std::ldexp(1.0, -52)};
  EXPECT_EQ(lowbit::to_f64(make<double>(DType::F64, {3}, v)), v);
  EXPECT_EQ(lowbit::to_f64(make<int32_t>(DType::I32, {2}, {16777217, -2147483647})),
            (std::vector<double>{16777217.0, -2147483647.0}));
  EXPECT_EQ(lowbit::to_f64(make<uint32_t>(DType::U32, {1}, {4294967295u})),
            std::vector<double>{4294967295.0});
  EXPECT_EQ(lowbit::to_f64(make<float>(DType::F32, {1}, {0.1f})),
            std::vector<double>{static_cast<double>(0.1f)});
  EXPECT_EQ(lowbit::to_f64(make<uint16_t>(DType::F16, {1}, {0x0001})),
            std::vector<double>{std::ldexp(1.0, -24)});
  EXPECT_EQ(lowbit::to_f64(make<uint16_t>(DType::BF16, {1}, {0xC040})), std::vector<double>{-3.0});
  EXPECT_EQ(lowbit::to_f64(make<int8_t>(DType::I8, {1}, {-128})), std::vector<double>{-128.0});
  EXPECT_EQ(lowbit::to_f64(make<uint8_t>(DType::U8, {1}, {255})), std::vector<double>{255.0});
  EXPECT_EQ(lowbit::to_f64(make<uint16_t>(DType::U16, {1}, {65535})), std::vector<double>{65535.0});
  // tensor_from_f64 builds the same bytes.
  EXPECT_EQ(lowbit::tensor_from_f64({3}, v).data, make<double>(DType::F64, {3}, v).data);
  Tensor bad = make<double>(DType::F64, {2}, {1.0, 2.0});
  bad.data.pop_back();
  expect_error([&] { lowbit::to_f64(bad); }, "inconsistent with shape");
}

class LoadTensorsTest : public lowbit::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    const std::vector<float> a = {1, 2, 3, 4, 5, 6};
    const std::vector<float> b = {-1};
    lowbit::write_npy(dir_ / "x.npy", lowbit::tensor_from_f32({2, 3}, a));
    lowbit::write_safetensors(dir_ / "m.safetensors", {lowbit::tensor_from_f32({2, 3}, a, "layer.0:w"),
                                                        lowbit::tensor_from_f32({}, b, "bias")});
  }
  std::string spec(const std::string& s) const { return (dir_ / s).string(); }
};

TEST_F(LoadTensorsTest, Npy) {
  const auto ts = lowbit::load_tensors(spec("x.npy"));
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_EQ(ts[0].name, "");
  EXPECT_EQ(ts[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(lowbit::to_f32(ts[0]), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST_F(LoadTensorsTest, SafetensorsAllAndByName) {
  const auto all = lowbit::load_tensors(spec("m.safetensors"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "layer.0:w");
  EXPECT_EQ(all[1].name, "bias");
  // The name may itself contain '.' and ':'.
  const auto one = lowbit::load_tensors(spec("m.safetensors:layer.0:w"));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].name, "layer.0:w");
  EXPECT_EQ(lowbit::to_f32(one[0]), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const auto bias = lowbit::load_tensors(spec("m.safetensors:bias"));
  ASSERT_EQ(bias.size(), 1u);
  EXPECT_EQ(lowbit::to_f32(bias[0]), std::vector<float>{-1.f});
}

TEST_F(LoadTensorsTest, Errors) {
  expect_error([&] { lowbit::load_tensors(spec("m.safetensors:nope")); },
               "no tensor named 'nope'; available: 'layer.0:w', 'bias'");
  expect_error([&] { lowbit::load_tensors(spec("m.safetensors:")); }, "empty tensor name");
  expect_error([&] { lowbit::load_tensors(spec("x.txt")); }, "unrecognised tensor spec");
  expect_error([&] { lowbit::load_tensors(spec("x.npy:a")); }, "unrecognised tensor spec");
  expect_error([&] { lowbit::load_tensors(spec("absent.npy")); }, "absent.npy: cannot open");
  fs::create_directory(dir_ / "d.npy");
  fs::create_directory(dir_ / "d.safetensors");
  expect_error([&] { lowbit::load_tensors(spec("d.safetensors")); }, "not a regular file");
  expect_error([&] { lowbit::load_tensors(spec("d.npy")); }, "not a regular file");
}

}  // namespace
