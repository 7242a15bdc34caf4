// QuaRTZ LZS (lzs4): the paper's worked example, the FLAG table, truncation vs round-to-nearest,
// error bounds, storage accounting, per-token vs per-tensor INT8 scales, packing round trips,
// idempotence, special values and shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "tests/formats/test_util.hpp"
#include "formats/error.hpp"
#include "formats/lzs.hpp"
#include "formats/registry.hpp"

using namespace lowbit;

namespace {

bool same_bits(float a, float b) { return f32_bits(a) == f32_bits(b); }
float up(float x) { return std::nextafter(x, std::numeric_limits<float>::infinity()); }

std::vector<float> fq(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  const auto f = make_format(spec);
  std::vector<float> y(x.size());
  f->fake_quant(x, shape, y);
  return y;
}

// Heavy-tailed data with outliers so every FLAG occurs.
std::vector<float> outlier_data(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g) * (u(g) < 0.05f ? 40.0f : (u(g) < 0.5f ? 0.05f : 1.0f));
  return v;
}

}  // namespace

TEST(Lzs, PaperExampleGroup) {
  // Group [100, 3, -2, 10] -> OR 0b1101111 -> FLAG 4 -> codes [6, 0, -0, 0] = 0x6, 0x0, 0x8, 0x0.
  const int32_t q[4] = {100, 3, -2, 10};
  uint32_t codes[4];
  EXPECT_EQ(lzs_encode_group(q, 4, LzsRound::Trunc, codes), 4);
  EXPECT_EQ(codes[0], 0x6u);
  EXPECT_EQ(codes[1], 0x0u);
  EXPECT_EQ(codes[2], 0x8u);  // negative truncated to 0 keeps its sign bit
  EXPECT_EQ(codes[3], 0x0u);
  EXPECT_EQ(lzs_decode_int(codes[0], 4), 96);
  EXPECT_EQ(lzs_decode_int(codes[2], 4), 0);
  EXPECT_TRUE(same_bits(lzs_decode(codes[2], 4, 1.0f), 0.0f));  // -0 decodes to 0

  // Through the tensor format: a second group holding 128 makes amax = 128, so s8 = 1 exactly.
  const std::vector<float> x = {100.0f, 3.0f, -2.0f, 10.0f, 128.0f, 0.0f, 0.0f, 0.0f};
  const auto f = make_format("lzs4:g4");
  const PackedTensor p = f->encode(x, {8});
  EXPECT_EQ(section_f32(p.at("s8")), (std::vector<float>{1.0f}));
  EXPECT_EQ(section_u32(p.at("flags")), (std::vector<uint32_t>{4, 4}));
  EXPECT_EQ(element_codes(p), (std::vector<uint32_t>{6, 0, 8, 0, 7, 0, 0, 0}));
  EXPECT_EQ(p.at("codes").bytes, (std::vector<uint8_t>{0x06, 0x08, 0x07, 0x00}));  // element 0 in the low nibble
  std::vector<float> y(8);
  f->decode(p, y);
  EXPECT_EQ(y, (std::vector<float>{96.0f, 0.0f, 0.0f, 0.0f, 112.0f, 0.0f, 0.0f, 0.0f}));
  // [3, -2, 5, 0] has FLAG 0 and is lossless.
  const int32_t q0[4] = {3, -2, 5, 0};
  EXPECT_EQ(lzs_encode_group(q0, 4, LzsRound::Trunc, codes), 0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(lzs_decode_int(codes[i], 0), q0[i]);
}

TEST(Lzs, FlagForEveryGroupMax) {
  // FORMATS.md §6.2: 0-7 -> 0, 8-15 -> 1, 16-31 -> 2, 32-63 -> 3, 64-127 -> 4.
  auto table = [](int m) { return m < 8 ? 0 : m < 16 ? 1 : m < 32 ? 2 : m < 64 ? 3 : 4; };
  for (int m = 0; m <= 127; ++m) {
    EXPECT_EQ(lzs_flag(static_cast<uint32_t>(m)), table(m)) << m;
    EXPECT_EQ(std::max(29 - (m ? clz32(static_cast<uint32_t>(m)) : 32), 0), table(m)) << m;  // paper Eq. 2
  }
  // Through the format: group m = [m, -1, 0, 1] for m = 0..127 plus a group [128, 0, 0, 0] (s8 = 1).
  std::vector<float> x;
  for (int m = 0; m <= 127; ++m) x.insert(x.end(), {static_cast<float>(m), -1.0f, 0.0f, 1.0f});
  x.insert(x.end(), {128.0f, 0.0f, 0.0f, 0.0f});
  const PackedTensor p = make_format("lzs4:g4")->encode(x, {129, 4});
  const auto flags = section_u32(p.at("flags"));
  ASSERT_EQ(flags.size(), 129u);
  for (int m = 0; m <= 127; ++m) EXPECT_EQ(flags[m], static_cast<uint32_t>(table(std::max(m, 1)))) << m;
  EXPECT_EQ(flags[128], 4u);  // 128 clamps to 127
  const auto h = lzs_flag_histogram(p);
  EXPECT_EQ(h, (std::array<int64_t, 5>{8, 8, 16, 32, 65}));
}

TEST(Lzs, TruncationVersusRoundToNearest) {
  struct Case {
    int32_t m;
    int flag;
    uint32_t trunc, rne;
  };
  const Case cases[] = {
      {100, 4, 6, 6},  // 6.25
      {104, 4, 6, 6},  // 6.5: tie -> even 6
      {120, 4, 7, 7},  // 7.5: tie -> 8 -> clamped to 7 (clips at the group max)
      {127, 4, 7, 7},  // 7.94 -> 8 -> clamped to 7
      {24, 4, 1, 2},   // 1.5: tie -> even 2
      {8, 4, 0, 0},    // 0.5: tie -> even 0
      {9, 4, 0, 1},    // 0.5625
      {15, 1, 7, 7},   // 7.5 -> 8 -> clamped
      {13, 1, 6, 6},   // 6.5 -> even 6
      {11, 1, 5, 6},   // 5.5 -> even 6
      {22, 2, 5, 6},   // 5.5 -> 6
      {5, 0, 5, 5},    // FLAG 0 is lossless either way
  };
  for (const Case& c : cases) {
    EXPECT_EQ(lzs_encode(c.m, c.flag, LzsRound::Trunc), c.trunc) << c.m << " flag " << c.flag;
    EXPECT_EQ(lzs_encode(c.m, c.flag, LzsRound::Rne), c.rne) << c.m << " flag " << c.flag;
    EXPECT_EQ(lzs_encode(-c.m, c.flag, LzsRound::Trunc), 8u | c.trunc);
    EXPECT_EQ(lzs_encode(-c.m, c.flag, LzsRound::Rne), 8u | c.rne);
  }
  // Through the format (s8 = 1): group [24, 104, 9, -22] has FLAG 4.
  const std::vector<float> x = {24.0f, 104.0f, 9.0f, -22.0f, 128.0f, 0.0f, 0.0f, 0.0f};
  EXPECT_EQ(fq("lzs4:g4", x, {8}), (std::vector<float>{16.0f, 96.0f, 0.0f, -16.0f, 112.0f, 0.0f, 0.0f, 0.0f}));
  EXPECT_EQ(fq("lzs4:g4:round=rne", x, {8}),
            (std::vector<float>{32.0f, 96.0f, 16.0f, -16.0f, 112.0f, 0.0f, 0.0f, 0.0f}));
}

TEST(Lzs, ErrorBoundsPerFlag) {
  // Every magnitude m that a group with FLAG f can hold (m < 2^(f+3)).
  for (int f = 0; f <= 4; ++f) {
    for (int32_t m = 0; m < (8 << f); ++m) {
      for (const int32_t q : {m, -m}) {
        const int32_t et = std::abs(q - lzs_decode_int(lzs_encode(q, f, LzsRound::Trunc), f));
        EXPECT_LE(et, (1 << f) - 1) << q << " flag " << f;
        EXPECT_EQ(et, m & ((1 << f) - 1));  // exactly the dropped bits
        const uint32_t cr = lzs_encode(q, f, LzsRound::Rne);
        const int32_t er = std::abs(q - lzs_decode_int(cr, f));
        const bool clamped = f > 0 && std::lround(std::nearbyint(static_cast<double>(m) / (1 << f))) > 7;
        if (clamped) {
          EXPECT_EQ(cr & 7u, 7u);
          EXPECT_LE(er, (1 << f) - 1) << q << " flag " << f;
        } else {
          EXPECT_LE(er, f == 0 ? 0 : (1 << (f - 1))) << q << " flag " << f;
        }
      }
    }
  }
  // On data: |q8 - q^| <= 2^FLAG - 1 under truncation, and the decoded value is s8 * q^.
  const auto x = outlier_data(64 * 256, 3);
  const auto f = make_format("lzs4:g16");
  const PackedTensor p = f->encode(x, {64, 256});
  const float s8 = section_f32(p.at("s8"))[0];
  const auto codes = element_codes(p);
  const auto flags = section_u32(p.at("flags"));
  std::vector<float> y(x.size());
  f->decode(p, y);
  for (size_t i = 0; i < x.size(); ++i) {
    const int32_t q = lzs_quantize_int8(x[i], s8);
    const int fl = static_cast<int>(flags[i / 16]);
    const int32_t qh = lzs_decode_int(codes[i], fl);
    ASSERT_LE(std::abs(q - qh), (1 << fl) - 1) << i;
    ASSERT_EQ(y[i], s8 * static_cast<float>(qh)) << i;
    // Truncation never increases the magnitude.
    ASSERT_LE(std::abs(qh), std::abs(q)) << i;
  }
}

TEST(Lzs, BitsPerElement) {
  EXPECT_DOUBLE_EQ(make_format("lzs4")->bits_per_element({4, 64}), 4.1875 + 32.0 / 256);
  EXPECT_DOUBLE_EQ(make_format("lzs4:g16")->bits_per_element({1024, 4096}), 4.1875 + 32.0 / (1024.0 * 4096));
  EXPECT_DOUBLE_EQ(make_format("lzs4:s8=token")->bits_per_element({4, 64}), 4.1875 + 32.0 / 64);
  EXPECT_DOUBLE_EQ(make_format("lzs4:g32")->bits_per_element({4, 64}), 4.09375 + 32.0 / 256);
  EXPECT_DOUBLE_EQ(make_format("lzs4")->bits_per_element({0, 64}), 4.1875);
}

TEST(Lzs, PerTokenVersusPerTensorScale) {
  // Row 0 spans +-128, row 1 only +-1.28.
  std::vector<float> x(2 * 16);
  for (int j = 0; j < 16; ++j) {
    x[j] = 128.0f * static_cast<float>(j - 8) / 8.0f;
    x[16 + j] = 1.28f * static_cast<float>(j - 8) / 8.0f;
  }
  const PackedTensor pt = make_format("lzs4")->encode(x, {2, 16});
  const PackedTensor pk = make_format("lzs4:s8=token")->encode(x, {2, 16});
  EXPECT_EQ(pt.at("s8").shape, (Shape{1}));
  EXPECT_EQ(section_f32(pt.at("s8")), (std::vector<float>{1.0f}));
  EXPECT_EQ(pk.at("s8").shape, (Shape{2, 1}));
  EXPECT_EQ(section_f32(pk.at("s8")), (std::vector<float>{1.0f, 1.28f / 128.0f}));
  const auto yt = fq("lzs4", x, {2, 16});
  const auto yk = fq("lzs4:s8=token", x, {2, 16});
  // Row 0 is the same either way; row 1 collapses to {-1, 0, 1} per tensor but keeps detail per token.
  for (int j = 0; j < 16; ++j) EXPECT_EQ(yt[j], yk[j]) << j;
  double et = 0, ek = 0;
  for (int j = 16; j < 32; ++j) {
    EXPECT_TRUE(yt[j] == -1.0f || yt[j] == 0.0f || yt[j] == 1.0f) << yt[j];
    et += std::fabs(x[j] - yt[j]);
    ek += std::fabs(x[j] - yk[j]);
  }
  EXPECT_LT(ek, et / 4);
}

TEST(Lzs, PackRoundTripAndFakeQuantMatchesDecode) {
  const auto x = outlier_data(48 * 96, 7);
  for (const char* spec : {"lzs4", "lzs4:g32", "lzs4:g1", "lzs4:g96", "lzs4:round=rne", "lzs4:s8=token",
                           "lzs4:calib=minmax", "lzs4:s8=token:calib=minmax:round=rne:g8"}) {
    const auto f = make_format(spec);
    const PackedTensor p = f->encode(x, {48, 96});
    // The packed codes are the scalar codec's codes, element 0 in the low nibble.
    const auto codes = element_codes(p);
    const auto flags = section_u32(p.at("flags"));
    const auto s8 = section_f32(p.at("s8"));
    const int64_t g = static_cast<int64_t>(x.size()) / static_cast<int64_t>(flags.size());
    const bool rne = std::string(spec).find("rne") != std::string::npos;
    for (size_t gi = 0; gi < flags.size(); ++gi) {
      const float s = s8.size() == 1 ? s8[0] : s8[(gi * g) / 96];
      std::vector<int32_t> q(static_cast<size_t>(g));
      std::vector<uint32_t> c(static_cast<size_t>(g));
      for (int64_t i = 0; i < g; ++i) q[i] = lzs_quantize_int8(x[gi * g + i], s);
      ASSERT_EQ(lzs_encode_group(q.data(), g, rne ? LzsRound::Rne : LzsRound::Trunc, c.data()),
                static_cast<int>(flags[gi]))
          << spec;
      for (int64_t i = 0; i < g; ++i) ASSERT_EQ(codes[gi * g + i], c[i]) << spec;
    }
    std::vector<uint8_t> repacked(p.at("codes").bytes.size());
    pack_codes(codes, 4, repacked);
    EXPECT_EQ(repacked, p.at("codes").bytes) << spec;
    std::vector<float> a(x.size()), b(x.size());
    f->decode(p, a);
    f->fake_quant(x, {48, 96}, b);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(a[i], b[i])) << spec << " " << i;
  }
  // Every FLAG occurs on this data at g16.
  const auto h = lzs_flag_histogram(make_format("lzs4")->encode(x, {48, 96}));
  for (int f = 0; f <= 4; ++f) EXPECT_GT(h[f], 0) << f;
}

TEST(Lzs, Idempotence) {
  // With the INT8 grid fixed, LZS is idempotent on its own output, for both roundings: the
  // group max keeps c >= 4 (its top bit), so the FLAG and every code are reproduced.
  std::mt19937 gen(5);
  std::uniform_int_distribution<int32_t> d(-127, 127), dsmall(-20, 20);
  for (const LzsRound r : {LzsRound::Trunc, LzsRound::Rne}) {
    for (int t = 0; t < 5000; ++t) {
      int32_t q[16], qh[16];
      uint32_t c[16], c2[16];
      for (int i = 0; i < 16; ++i) q[i] = (t % 2) ? d(gen) : dsmall(gen);
      const int f1 = lzs_encode_group(q, 16, r, c);
      for (int i = 0; i < 16; ++i) qh[i] = lzs_decode_int(c[i], f1);
      const int f2 = lzs_encode_group(qh, 16, r, c2);
      ASSERT_EQ(f1, f2);
      for (int i = 0; i < 16; ++i) ASSERT_EQ(lzs_decode_int(c2[i], f2), qh[i]);
    }
  }
  // Fake quantisation re-calibrates s8 from its input, and its own output's amax is at most
  // 112 * s8 (127 truncated under FLAG 4), so a second pass uses s8' = 7/8 s8 and moves values:
  // lzs4 fake-quant is NOT idempotent (for trunc, and for rne).
  const std::vector<float> x = {128.0f, 64.0f, 0.0f, 0.0f};
  for (const char* spec : {"lzs4:g4", "lzs4:g4:round=rne"}) {
    const auto y1 = fq(spec, x, {4});
    EXPECT_EQ(y1, (std::vector<float>{112.0f, 64.0f, 0.0f, 0.0f})) << spec;
    const auto y2 = fq(spec, y1, {4});
    EXPECT_NE(y2, y1) << spec;
    EXPECT_EQ(y2[0], 98.0f) << spec;  // 112 / 0.875 = 128 -> 127 -> 112, times 0.875
  }
  // In general the largest magnitude always comes out as exactly 112/128 of amax (128 -> 127 ->
  // 7 << 4), so the only fixed points of lzs4 fake-quant are all-zero tensors.
  const auto xr = outlier_data(16 * 64, 13);
  for (const char* spec : {"lzs4", "lzs4:round=rne"}) {
    const auto yr = fq(spec, xr, {16, 64});
    float ax = 0, ay = 0;
    for (size_t i = 0; i < xr.size(); ++i) {
      ax = std::max(ax, std::fabs(xr[i]));
      ay = std::max(ay, std::fabs(yr[i]));
    }
    EXPECT_EQ(ay, ax / 128.0f * 112.0f) << spec;
  }
  EXPECT_EQ(fq("lzs4:g4", {0.0f, 0.0f, 0.0f, 0.0f}, {4}), (std::vector<float>{0.0f, 0.0f, 0.0f, 0.0f}));
}

TEST(Lzs, MinmaxCalibration) {
  // s8 = (max - min) / 255 without a zero point: symmetric data uses about half the int8 range,
  // one-sided data beyond 127 * s8 clips (the README form as written).
  const std::vector<float> x = {0.0f, 2.55f, 5.1f, 10.2f};
  const PackedTensor p = make_format("lzs4:g4:calib=minmax")->encode(x, {4});
  const float s8 = section_f32(p.at("s8"))[0];
  EXPECT_EQ(s8, (10.2f - 0.0f) / 255.0f);
  EXPECT_EQ(lzs_quantize_int8(10.2f, s8), 127);  // 255 clamps to 127
  const auto y = fq("lzs4:g4:calib=minmax", x, {4});
  EXPECT_EQ(y[3], s8 * 112.0f);
  // A constant non-zero row has s8 = 0 and decodes to 0.
  const auto yc = fq("lzs4:g4:calib=minmax", {3.0f, 3.0f, 3.0f, 3.0f}, {4});
  for (const float v : yc) EXPECT_EQ(v, 0.0f);
}

TEST(Lzs, SpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  // NaN or Inf makes s8 NaN / Inf and the whole scale domain decodes to NaN.
  for (const float bad : {nan, inf, -inf}) {
    const auto y = fq("lzs4:g4", {1.0f, bad, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f}, {2, 4});
    for (const float v : y) EXPECT_TRUE(std::isnan(v)) << bad;
    const auto yk = fq("lzs4:g4:s8=token", {1.0f, bad, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 128.0f}, {2, 4});
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(std::isnan(yk[i])) << bad;
    EXPECT_EQ(yk[7], 112.0f);  // the other row is untouched
    const auto ym = fq("lzs4:g4:calib=minmax", {1.0f, bad, 2.0f, 3.0f}, {4});
    for (const float v : ym) EXPECT_TRUE(std::isnan(v)) << bad;
  }
  // All zeros: s8 = 0, codes 0, decodes to +0.
  const PackedTensor p = make_format("lzs4:g4")->encode(std::vector<float>{0.0f, -0.0f, 0.0f, 0.0f}, {4});
  EXPECT_EQ(section_f32(p.at("s8"))[0], 0.0f);
  EXPECT_EQ(element_codes(p), (std::vector<uint32_t>{0, 0, 0, 0}));
  // Sign symmetry: negating the input negates the output.
  const auto x = outlier_data(32 * 32, 9);
  std::vector<float> nx(x.size());
  for (size_t i = 0; i < x.size(); ++i) nx[i] = -x[i];
  const auto y = fq("lzs4", x, {32, 32});
  const auto ny = fq("lzs4", nx, {32, 32});
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(ny[i], -y[i]) << i;
}

TEST(Lzs, ShapesAndSpecErrors) {
  EXPECT_THROW(fq("lzs4", std::vector<float>(24, 1.0f), {24}), Error);  // 24 % 16 != 0
  try {
    fq("lzs4:g32", std::vector<float>(48, 1.0f), {2, 24});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not divisible by the group size 32"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(fq("lzs4:g3", std::vector<float>(24, 1.0f), {2, 12}));
  for (const char* bad : {"lzs4:round=rz", "lzs4:s8=channel", "lzs4:calib=mse", "lzs4:g0", "lzs4:dq", "lzs4:order=hi"})
    EXPECT_THROW(make_format(bad), Error) << bad;
  // Empty tensors encode, decode and fake-quantise to nothing.
  for (const Shape& s : {Shape{0}, Shape{0, 16}, Shape{4, 0}}) {
    for (const char* spec : {"lzs4", "lzs4:s8=token", "lzs4:calib=minmax"}) {
      const auto f = make_format(spec);
      const PackedTensor p = f->encode(std::vector<float>{}, s);
      std::vector<float> out;
      EXPECT_NO_THROW(f->decode(p, out)) << spec;
      EXPECT_NO_THROW(f->fake_quant({}, s, out)) << spec;
      EXPECT_EQ(section_u32(p.at("flags")).size(), 0u);
      EXPECT_EQ(lzs_flag_histogram(p), (std::array<int64_t, 5>{0, 0, 0, 0, 0}));
    }
  }
  // A corrupted FLAG is rejected on decode.
  const auto f = make_format("lzs4:g4");
  PackedTensor p = f->encode(std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f}, {4});
  for (auto& s : p.sections)
    if (s.name == "flags") s.bytes[0] = 5;
  std::vector<float> out(4);
  EXPECT_THROW(f->decode(p, out), Error);
  EXPECT_THROW(lzs_flag_histogram(p), Error);
}

// ---------------------------------------------------------------------------------------------
// The fast paths (vectorisable loops and SIMD kernels) against the scalar reference, bit for
// bit: packed sections (codes, flags, s8), fake_quant values and decoded values.

namespace {

// rows x cols, each row of one kind: wide dynamic range, exact int8 ties (x / s8 = k + 1/2 and
// its neighbours), zeros of both signs first (the minmax statistics keep the first of equal
// values), one-signed rows, constant rows, subnormals, huge values, NaN / Inf rows (with
// `specials`).
std::vector<float> hard_rows(int64_t rows, int64_t cols, uint32_t seed, bool specials) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto pick = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint32_t>(n)); };
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x.data() + r * cols;
    const int kind = static_cast<int>(rng() % (specials ? 14 : 10));
    for (int64_t j = 0; j < cols; ++j) {
      const float sign = rng() % 2 ? -1.0f : 1.0f;
      float v;
      switch (kind) {
        case 0: v = nd(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 40) - 20); break;
        case 1: {  // s8 = 1 under both calibrations: amax 128 / range 255
          const float t =
              static_cast<float>(static_cast<int>(rng() % 255) - 127) + 0.5f * static_cast<float>(rng() % 2);
          v = rng() % 3 == 0 ? (rng() % 2 ? up(t) : std::nextafter(t, -inf)) : t;
          break;
        }
        case 2: v = rng() % 3 ? sign * 0.0f : std::fabs(nd(rng)); break;   // >= 0, zeros of both signs
        case 3: v = rng() % 3 ? sign * 0.0f : -std::fabs(nd(rng)); break;  // <= 0
        case 4: v = 2.5f; break;
        case 5: v = sign * std::ldexp(static_cast<float>(rng() % 1000), -149); break;
        case 6: v = nd(rng) * 3e38f; break;
        case 7: v = sign * 0.0f; break;
        default: v = nd(rng) * (rng() % 20 == 0 ? 40.0f : 1.0f); break;
      }
      xr[j] = v;
    }
    if (kind == 1) {
      xr[pick(cols)] = 128.0f;
      if (cols > 1) xr[pick(cols)] = -127.0f;
    }
    if (kind == 2 || kind == 3) xr[0] = rng() % 2 ? -0.0f : 0.0f;
    if (kind == 10) xr[pick(cols)] = nan;
    if (kind == 11) xr[pick(cols)] = rng() % 2 ? inf : -inf;
    if (kind == 12) {
      xr[pick(cols)] = -nan;
      xr[pick(cols)] = f32_from_bits(0x7fc00000u | (rng() & 0x3fffffu));
    }
    if (kind == 13) xr[pick(cols)] = f32_from_bits(0xffc00000u | (rng() & 0x3fffffu));
  }
  return x;
}

using lowbit::testing::expect_same_bits;
using lowbit::testing::expect_same_packed;

void expect_impls_match_reference(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  const auto ref = detail::make_lzs_format(spec, detail::LzsImpl::Reference);
  const PackedTensor pr = ref->encode(x, shape);
  std::vector<float> yr(x.size()), dr(x.size());
  ref->fake_quant(x, shape, yr);
  ref->decode(pr, dr);
  expect_same_bits(yr, dr, spec + " reference fake_quant vs decode");
  for (const auto impl : {detail::LzsImpl::Portable, detail::LzsImpl::Native}) {
    const std::string what = spec + (impl == detail::LzsImpl::Portable ? " (portable)" : " (native)");
    const auto f = detail::make_lzs_format(spec, impl);
    const PackedTensor p = f->encode(x, shape);
    expect_same_packed(pr, p, what);
    std::vector<float> y(x.size()), d(x.size());
    f->fake_quant(x, shape, y);
    expect_same_bits(yr, y, what + " fake_quant");
    f->decode(p, d);
    expect_same_bits(dr, d, what + " decode");
  }
  std::vector<float> y(x.size());
  make_format(spec)->fake_quant(x, shape, y);
  expect_same_bits(yr, y, spec + " make_format fake_quant");
}

}  // namespace

TEST(LzsFast, MatchesReferenceEveryOption) {
  const int64_t cols = 1536;  // divisible by every group size below
  uint32_t seed = 1;
  for (const int64_t g : {1, 3, 8, 16, 32, 48, 64, 128, 512, 1536}) {
    for (const char* s8 : {"", ":s8=token"}) {
      for (const char* calib : {"", ":calib=minmax"}) {
        for (const char* round : {"", ":round=rne"}) {
          const std::string spec = "lzs4:g" + std::to_string(g) + s8 + calib + round;
          // Per tensor, one NaN / Inf anywhere makes every value NaN: special rows only per token
          // and in their own tensors.
          expect_impls_match_reference(spec, hard_rows(24, cols, seed++, false), {24, cols});
          expect_impls_match_reference(spec, hard_rows(24, cols, seed++, true), {24, cols});
        }
      }
    }
  }
}

TEST(LzsFast, MatchesReferenceShapesAndParallelRuns) {
  uint32_t seed = 500;
  for (const char* spec : {"lzs4", "lzs4:round=rne", "lzs4:s8=token", "lzs4:calib=minmax:s8=token:round=rne",
                           "lzs4:g32:calib=minmax", "lzs4:g64:s8=token"}) {
    // Above 2^16 elements (parallel loops), 1-D, short rows, odd group counts.
    expect_impls_match_reference(spec, hard_rows(48, 2048, seed++, false), {48, 2048});
    expect_impls_match_reference(spec, hard_rows(48, 2048, seed++, true), {48, 2048});
    expect_impls_match_reference(spec, hard_rows(1, 4096, seed++, false), {4096});
    expect_impls_match_reference(spec, hard_rows(100, 192, seed++, true), {10, 10, 192});
  }
  for (const char* spec : {"lzs4:g1", "lzs4:g3:s8=token", "lzs4:g5:calib=minmax:round=rne"}) {
    expect_impls_match_reference(spec, hard_rows(7, 15, seed++, true), {7, 15});
    expect_impls_match_reference(spec, hard_rows(1, 15, seed++, false), {15});
  }
  expect_impls_match_reference("lzs4:g1", {0.3f}, {});
  // The benchmarks' kind of data.
  const auto x = outlier_data(64 * 4096, 21);
  for (const char* spec : {"lzs4", "lzs4:round=rne", "lzs4:s8=token", "lzs4:calib=minmax", "lzs4:g128"})
    expect_impls_match_reference(spec, x, {64, 4096});
}
