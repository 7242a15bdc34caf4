// Element formats through the registry: plain casts, grouped / row / column / tensor scaling,
// asymmetric integers, scale formats, spec errors, packing round trips and properties.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "formats/error.hpp"
#include "formats/float_format.hpp"
#include "formats/int_format.hpp"
#include "formats/philox.hpp"
#include "formats/registry.hpp"

using namespace lowbit;

namespace {

std::vector<float> fq(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  const auto f = make_format(spec);
  std::vector<float> y(x.size());
  f->fake_quant(x, shape, y);
  return y;
}

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

bool same_bits(float a, float b) { return f32_bits(a) == f32_bits(b); }

}  // namespace

TEST(ElementFormat, PlainCastMatchesScalarCodec) {
  const std::vector<float> x = {0.0f, -0.0f, 0.1f, -0.26f, 1.25f, 2.5f, 5.0f, 7.0f, -100.0f, 465.0f, 1e-9f};
  const auto y4 = fq("fp4_e2m1", x, {11});
  const auto y8 = fq("fp8_e4m3", x, {11});
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(same_bits(y4[i], decode_float(fmt_desc::e2m1, encode_float(fmt_desc::e2m1, x[i])))) << x[i];
    EXPECT_TRUE(same_bits(y8[i], decode_float(fmt_desc::e4m3, encode_float(fmt_desc::e4m3, x[i])))) << x[i];
  }
  EXPECT_EQ(y4[6], 4.0f);   // 5 is a tie between 4 and 6 -> even (4)
  EXPECT_EQ(y4[7], 6.0f);   // saturates
  EXPECT_EQ(y8[9], 448.0f); // 465 > 464 saturates under the default overflow=sat
  const auto yinf = fq("fp8_e4m3:overflow=inf", {465.0f}, {1});
  EXPECT_TRUE(std::isnan(yinf[0]));
}

TEST(ElementFormat, PlainIntCastRoundsAndClamps) {
  const auto y = fq("int4", {0.5f, 1.5f, 2.5f, -2.5f, 7.6f, -9.0f, 100.0f}, {7});
  EXPECT_EQ(y, (std::vector<float>{0.0f, 2.0f, 2.0f, -2.0f, 7.0f, -8.0f, 7.0f}));
  const auto ya = fq("int4:round=rna", {0.5f, 1.5f, 2.5f, -2.5f}, {4});
  EXPECT_EQ(ya, (std::vector<float>{1.0f, 2.0f, 3.0f, -3.0f}));
  const auto yu = fq("uint2", {-1.0f, 0.4f, 2.5f, 3.7f}, {4});
  EXPECT_EQ(yu, (std::vector<float>{0.0f, 0.0f, 2.0f, 3.0f}));
}

TEST(ElementFormat, Int4GroupHandCase) {
  // One group of 4 (g4): absmax 7 -> s = 1; second group absmax 3.5 -> s = 0.5.
  const std::vector<float> x = {7.0f, -3.2f, 0.5f, 2.5f, 3.5f, -0.74f, 0.25f, 1.0f};
  const auto f = make_format("int4:g4");
  const PackedTensor p = f->encode(x, {2, 4});
  const auto codes = element_codes(p);
  // q = rne(x/s): [7, -3, 0, 2], [7, -1, 0, 2] (0.25/0.5 = 0.5 -> 0; -0.74/0.5 = -1.48 -> -1)
  const std::vector<int32_t> q = {7, -3, 0, 2, 7, -1, 0, 2};
  for (size_t i = 0; i < q.size(); ++i) EXPECT_EQ(code_to_int(IntFormat{4, true}, codes[i]), q[i]) << i;
  EXPECT_EQ(codes[1], 0xDu);  // -3 in 4-bit two's complement
  // Packed: element 0 in the low nibble.
  const Section& c = p.at("codes");
  ASSERT_EQ(c.bytes.size(), 4u);
  EXPECT_EQ(c.bytes[0], 0xD7);
  const auto sc = section_u32(p.at("scales"));
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(f32_from_bits(sc[0]), 1.0f);
  EXPECT_EQ(f32_from_bits(sc[1]), 0.5f);
  EXPECT_EQ(p.at("scales").shape, (Shape{2, 1}));
  std::vector<float> y(8);
  f->decode(p, y);
  EXPECT_EQ(y, (std::vector<float>{7.0f, -3.0f, 0.0f, 2.0f, 3.5f, -0.5f, 0.0f, 1.0f}));
  EXPECT_DOUBLE_EQ(f->bits_per_element({2, 4}), 4.0 + 32.0 / 4.0);
}

TEST(ElementFormat, SymFullRangeUsesMinusTwoPowB) {
  // s = absmax / 8: -absmax -> -8 representable, +absmax -> 8 clamps to 7.
  const auto y = fq("int4:g2:sym=full", {-4.0f, 1.0f, 4.0f, 1.0f}, {4});
  EXPECT_EQ(y, (std::vector<float>{-4.0f, 1.0f, 3.5f, 1.0f}));
  const auto yr = fq("int4:g2", {-4.0f, 1.0f, 4.0f, 1.0f}, {4});  // restricted: s = 4/7
  EXPECT_FLOAT_EQ(yr[0], -4.0f);
  EXPECT_FLOAT_EQ(yr[2], 4.0f);
}

TEST(ElementFormat, AsymmetricZeroPoint) {
  // uint4:g4 on [0, 1, 2, 3]: xmin = 0, xmax = 3, s = 3/15 = 0.2, zp = 0.
  const auto f = make_format("uint4:g4");
  const std::vector<float> x = {-1.0f, 0.0f, 2.0f, 4.0f};
  // xmin = -1, xmax = 4, s = 5/15 = 1/3, zp = rne(1/(1/3)) = 3.
  const PackedTensor p = f->encode(x, {4});
  const auto codes = element_codes(p);
  const auto zp = section_u32(p.at("zero_points"));
  ASSERT_EQ(zp.size(), 1u);
  EXPECT_EQ(zp[0], 3u);
  EXPECT_EQ(codes, (std::vector<uint32_t>{0, 3, 9, 15}));
  std::vector<float> y(4);
  f->decode(p, y);
  const float s = 5.0f / 15.0f;
  EXPECT_EQ(y[1], 0.0f);  // zero is exact
  EXPECT_EQ(y[2], s * 6.0f);
  EXPECT_EQ(y[3], s * 12.0f);
  EXPECT_DOUBLE_EQ(f->bits_per_element({4}), 4.0 + (32.0 + 4.0) / 4.0);
  // int4:g4:asym is the same quantiser.
  EXPECT_EQ(fq("int4:g4:asym", x, {4}), y);
}

TEST(ElementFormat, RowColTensorGranularity) {
  const std::vector<float> x = {1.0f, 2.0f, 4.0f, 8.0f, -16.0f, 0.5f};
  // row: scales per row of 3, col: per column of 2, tensor: one.
  const auto fr = make_format("int8:row");
  const auto fc = make_format("int8:col");
  const auto ft = make_format("int8:tensor");
  const PackedTensor pr = fr->encode(x, {2, 3}), pc = fc->encode(x, {2, 3}), pt = ft->encode(x, {2, 3});
  const auto sr = section_u32(pr.at("scales")), sc = section_u32(pc.at("scales")), st = section_u32(pt.at("scales"));
  ASSERT_EQ(sr.size(), 2u);
  ASSERT_EQ(sc.size(), 3u);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(f32_from_bits(sr[0]), 4.0f / 127.0f);
  EXPECT_EQ(f32_from_bits(sr[1]), 16.0f / 127.0f);
  EXPECT_EQ(f32_from_bits(sc[0]), 8.0f / 127.0f);
  EXPECT_EQ(f32_from_bits(sc[1]), 16.0f / 127.0f);
  EXPECT_EQ(f32_from_bits(sc[2]), 4.0f / 127.0f);
  EXPECT_EQ(f32_from_bits(st[0]), 16.0f / 127.0f);
}

TEST(ElementFormat, ScaleFormats) {
  // fp4_e2m1:g4:scale=e8m0: s = absmax/6 rounded UP to a power of two, so nothing clips.
  const std::vector<float> x = {7.0f, 1.0f, -3.0f, 0.2f};
  const auto f = make_format("fp4_e2m1:g4:scale=e8m0");
  const PackedTensor p = f->encode(x, {4});
  const auto sc = section_u32(p.at("scales"));
  EXPECT_EQ(sc[0], 127u + 1u);  // 7/6 -> 2
  std::vector<float> y(4);
  f->decode(p, y);
  EXPECT_EQ(y, (std::vector<float>{8.0f, 1.0f, -3.0f, 0.0f}));  // 3.5 -> tie -> 4 (x2); 0.1 -> 0
  // e4m3 scale: 7/6 = 1.1666 -> e4m3 RNE 1.125; 7/1.125 = 6.22 -> 6 -> 6.75.
  const auto y2 = fq("fp4_e2m1:g4:scale=e4m3", x, {4});
  EXPECT_FLOAT_EQ(y2[0], 6.75f);
  // fp16 scale keeps 11 bits: scale code is the fp16 bit pattern of 7/6.
  const auto f16 = make_format("int4:g4:scale=fp16");
  const PackedTensor p16 = f16->encode(x, {4});
  EXPECT_EQ(p16.at("scales").dtype, "u16");
  EXPECT_EQ(section_u32(p16.at("scales"))[0], encode_float(fmt_desc::fp16, 7.0f / 7.0f));
}

TEST(ElementFormat, ZeroGroupAndNonFinite) {
  const std::vector<float> x = {0.0f, 0.0f, 0.0f, 0.0f, 1.0f, NAN, 2.0f, 3.0f, 1.0f, INFINITY, 0.0f, 0.0f};
  const auto y = fq("int4:g4", x, {12});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], 0.0f);
  for (int i = 4; i < 12; ++i) EXPECT_TRUE(std::isnan(y[i])) << i;  // a NaN/Inf poisons its group
  const auto yf = fq("fp8_e4m3:g4", x, {12});
  for (int i = 4; i < 12; ++i) EXPECT_TRUE(std::isnan(yf[i])) << i;
  EXPECT_EQ(yf[0], 0.0f);
}

TEST(ElementFormat, ShapeAndSpecErrors) {
  const auto f = make_format("int4:g64");
  std::vector<float> x(100), y(100);
  EXPECT_THROW(f->fake_quant(x, {100}, y), Error);
  EXPECT_THROW(f->fake_quant(x, {10, 11}, y), Error);  // 110 != 100 values
  for (const char* bad : {"int4:g0", "int1", "int17", "int4:bogus", "int4:g64:g32", "int4:scale=fp16",
                          "fp8_e4m3:round=banana", "int4:g64:scale=fp8_e5m3", "fp8_e4m3:seed=3", "", "int4::g64",
                          "fp4_e2m1:asym", "int4:g64:row", "e9m2", "e3m24", "nosuchformat", "int4:g64:sym=half"}) {
    EXPECT_THROW(make_format(bad), Error) << bad;
  }
  try {
    make_format("int4:g64:bogus=1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bogus"), std::string::npos);
  }
}

TEST(ElementFormat, EmptyTensor) {
  for (const char* s : {"int4:g64", "fp8_e4m3", "int8:tensor", "uint4:col"}) {
    const auto f = make_format(s);
    std::vector<float> x, y;
    const PackedTensor p = f->encode(x, {0, 64});
    EXPECT_TRUE(p.at("codes").bytes.empty()) << s;
    f->decode(p, y);
    f->fake_quant(x, {0, 64}, y);
  }
}

TEST(ElementFormat, DecodeOfEncodeEqualsFakeQuantBitwise) {
  const auto x = randn(4096, 3, 5.0f);
  for (const char* s : {"int4:g64", "int3:g32:sym=full", "uint4:g128", "int8:row", "int8:col", "int2:tensor",
                        "fp4_e2m1:g16:scale=e4m3", "fp6_e3m2:g32:scale=e8m0", "fp8_e5m2:row:scale=bf16",
                        "fp8_e4m3", "bf16", "e3m4", "e1m2", "fp4_e2m1:g32:op=mul", "int4:g64:round=sr:seed=9",
                        "fp8_e4m3:round=sr:seed=2", "int6:g16:round=rz", "fp6_e2m3:g8:round=ru"}) {
    const auto f = make_format(s);
    const PackedTensor p = f->encode(x, {32, 128});
    std::vector<float> a(x.size()), b(x.size());
    f->decode(p, a);
    f->fake_quant(x, {32, 128}, b);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(a[i], b[i])) << s << " at " << i;
    // Codes survive pack/unpack.
    const auto codes = element_codes(p);
    std::vector<uint8_t> bytes(p.at("codes").bytes.size());
    pack_codes(codes, p.code_bits, bytes);
    EXPECT_EQ(bytes, p.at("codes").bytes) << s;
  }
}

TEST(ElementFormat, ErrorWithinHalfStepAndSignSymmetric) {
  const auto x = randn(8192, 5, 3.0f);
  for (const int bits : {2, 3, 4, 8}) {
    const std::string s = "int" + std::to_string(bits) + ":g64";
    const auto f = make_format(s);
    const PackedTensor p = f->encode(x, {8192});
    const auto sc = section_u32(p.at("scales"));
    std::vector<float> y(x.size()), yn(x.size()), xn(x.size());
    f->decode(p, y);
    for (size_t i = 0; i < x.size(); ++i) {
      const float step = f32_from_bits(sc[i / 64]);
      ASSERT_LE(std::abs(x[i] - y[i]), 0.5f * step * (1 + 1e-6f)) << s << " " << i;
      xn[i] = -x[i];
    }
    f->fake_quant(xn, {8192}, yn);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(yn[i], -y[i]) << s;
  }
}

TEST(ElementFormat, PowerOfTwoScaledIsIdempotent) {
  const auto x = randn(2048, 8, 2.0f);
  for (const char* s : {"fp4_e2m1:g32:scale=e8m0", "fp8_e4m3", "fp6_e2m3:g16:scale=e8m0", "int4", "bf16"}) {
    const auto y = fq(s, x, {2048});
    const auto z = fq(s, y, {2048});
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(y[i], z[i])) << s << " " << i;
  }
}

TEST(ElementFormat, StochasticRoundingReproducibleAndUnbiased) {
  // Constant 0.3 in int4:g2 with a 7.0 partner: s = 1, t = 0.3 -> 0 or 1 with P(1) = 0.3.
  const int n = 200000;
  std::vector<float> x(2 * n);
  for (int i = 0; i < n; ++i) {
    x[2 * i] = 7.0f;
    x[2 * i + 1] = 0.3f;
  }
  const auto a = fq("int4:g2:round=sr:seed=11", x, {2 * n});
  const auto b = fq("int4:g2:round=sr:seed=11", x, {2 * n});
  const auto c = fq("int4:g2:round=sr:seed=12", x, {2 * n});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double mean = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(a[2 * i + 1] == 0.0f || a[2 * i + 1] == 1.0f);
    mean += a[2 * i + 1];
  }
  mean /= n;
  const double se = std::sqrt(0.3 * 0.7 / n);
  EXPECT_NEAR(mean, 0.3, 4 * se);
  // The random bits are sr_bits(seed, flat index): element 1 rounds up iff bits < 0.3 * 2^32.
  const float t = 0.3f;
  const uint64_t frac32 = static_cast<uint64_t>(std::ldexp(static_cast<double>(t), 32));
  EXPECT_EQ(a[1] == 1.0f, sr_bits(11, 1) < frac32);
}

TEST(ElementFormat, OpMulVersusDivCanDiffer) {
  // Both orders are exposed; on random data they agree except on rare ties.
  const auto x = randn(1 << 16, 21, 1.0f);
  const auto d = fq("fp4_e2m1:g16", x, {1 << 16});
  const auto m = fq("fp4_e2m1:g16:op=mul", x, {1 << 16});
  size_t diff = 0;
  for (size_t i = 0; i < x.size(); ++i) diff += d[i] != m[i];
  EXPECT_LT(diff, x.size() / 100);
}

namespace {
// Data with every hazard: wide dynamic range, zero groups, subnormals, exact ties, NaN, Inf.
std::vector<float> hazard_data(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> e(-30, 30);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::ldexp(u(g), e(g) / 4);
  for (size_t i = 0; i < 64 && i < n; ++i) v[i] = 0.0f;                       // zero groups
  for (size_t i = 64; i < 80 && i + 1 < n; ++i) v[i] = 1e-41f * (i % 3);     // fp32 subnormals
  for (size_t i = 80; i < 96 && i < n; ++i) v[i] = 0.5f * static_cast<float>(i - 88);  // ties
  if (n > 300) {
    v[200] = NAN;
    v[290] = INFINITY;
    v[300] = -3e38f;
  }
  return v;
}
}  // namespace

TEST(ElementFormat, SmallGroupRowKernelMatchesPerGroupPath) {
  // Rows of several groups take the row-batched kernel; the same groups laid out one per row
  // take the per-group path. Codes, scales and values must agree bit for bit.
  const int64_t rows = 16, cols = 512;
  const auto x = hazard_data(rows * cols, 7);
  for (const char* s : {"int4:g16", "int4:g64:sym=full", "uint4:g32", "uint8:g16:scale=bf16", "int3:g8:scale=fp16",
                        "fp4_e2m1:g16:scale=e4m3", "fp8_e4m3:g32:scale=e8m0", "fp6_e3m2:g16", "int4:g16:op=mul",
                        "fp4_e2m1:g32:op=mul:scale=fp16", "uint4:g16:scale=e4m3", "int8:g128"}) {
    const auto f = make_format(s);
    const int64_t g = std::stoll(std::string(s).substr(std::string(s).find(":g") + 2));
    const Shape wide{rows, cols}, narrow{rows * cols / g, g};
    const PackedTensor pw = f->encode(x, wide), pn = f->encode(x, narrow);
    EXPECT_EQ(pw.at("codes").bytes, pn.at("codes").bytes) << s;
    EXPECT_EQ(pw.at("scales").bytes, pn.at("scales").bytes) << s;
    if (pw.find("zero_points")) {
      EXPECT_EQ(pw.at("zero_points").bytes, pn.at("zero_points").bytes) << s;
    }
    std::vector<float> yw(x.size()), yn(x.size());
    f->fake_quant(x, wide, yw);
    f->fake_quant(x, narrow, yn);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(yw[i], yn[i])) << s << " at " << i;
  }
}

TEST(ElementFormat, GroupedIntMatchesScalarDefinition) {
  // int4:g16 and uint4:g16 recomputed element by element from the definitions in fp32.
  const int64_t n = 4096;
  const auto x = hazard_data(n, 9);
  const auto ys = fq("int4:g16", x, {n});
  const auto ya = fq("uint4:g16", x, {n});
  for (int64_t g0 = 0; g0 < n; g0 += 16) {
    float amax = 0, lo = 0, hi = 0;
    bool bad = false;
    for (int64_t i = g0; i < g0 + 16; ++i) {
      bad |= !std::isfinite(x[i]);
      amax = std::max(amax, std::abs(x[i]));
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    const float s = amax / 7.0f, sa = (hi - lo) / 15.0f;
    const int32_t zp = sa > 0 ? static_cast<int32_t>(std::nearbyint(std::clamp(-lo / sa, 0.0f, 15.0f))) : 0;
    for (int64_t i = g0; i < g0 + 16; ++i) {
      if (bad) {
        ASSERT_TRUE(std::isnan(ys[i]) && std::isnan(ya[i])) << i;
        continue;
      }
      // Integers have no -0: a negative value that rounds to 0 is +0.
      const float q = s > 0 ? std::clamp(std::nearbyint(x[i] / s), -7.0f, 7.0f) + 0.0f : 0.0f;
      ASSERT_TRUE(same_bits(ys[i], s > 0 ? s * q : 0.0f)) << i << " " << x[i];
      const float qa = sa > 0 ? std::clamp(std::nearbyint(x[i] / sa) + zp, 0.0f, 15.0f) : 0.0f;
      ASSERT_TRUE(same_bits(ya[i], sa > 0 ? sa * (qa - zp) : 0.0f)) << i << " " << x[i];
    }
  }
}

TEST(Packing, RoundTripEveryWidthAndOddLengths) {
  std::mt19937 g(5);
  for (int bits = 1; bits <= 32; ++bits) {
    for (const size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{33}, size_t{1001}}) {
      std::vector<uint32_t> codes(n);
      for (auto& c : codes) c = bits == 32 ? g() : g() & ((1u << bits) - 1);
      std::vector<uint8_t> bytes(static_cast<size_t>(packed_bytes(static_cast<int64_t>(n), bits)));
      pack_codes(codes, bits, bytes);
      std::vector<uint32_t> back(n);
      unpack_codes(bytes, bits, back);
      ASSERT_EQ(back, codes) << bits << " bits, n = " << n;
    }
  }
  // 4-bit: element 0 in the low nibble; an odd tail fills the low nibble of the last byte.
  std::vector<uint8_t> b(2);
  pack_codes(std::vector<uint32_t>{0x1, 0x2, 0x3}, 4, b);
  EXPECT_EQ(b, (std::vector<uint8_t>{0x21, 0x03}));
  // 2-bit: four per byte, LSB first. 6-bit: one per byte.
  std::vector<uint8_t> b2(1), b6(2);
  pack_codes(std::vector<uint32_t>{1, 2, 3, 0}, 2, b2);
  EXPECT_EQ(b2[0], 0x39);
  pack_codes(std::vector<uint32_t>{0x3f, 0x15}, 6, b6);
  EXPECT_EQ(b6, (std::vector<uint8_t>{0x3f, 0x15}));
}

TEST(ElementFormat, StochasticFastPathMatchesScalarPath) {
  // nan=mldtypes takes the scalar encode_float path; without NaN inputs it must agree bit for
  // bit with the vectorised stochastic path of nan=cuda.
  auto x = hazard_data(8192, 13);
  for (auto& v : x)
    if (std::isnan(v)) v = 0.25f;
  for (const char* s : {"fp8_e4m3", "fp4_e2m1:g16:scale=e4m3", "bf16", "fp6_e3m2:row", "fp8_e5m2:g32:op=mul",
                        "fp4_e2m1:tensor", "e3m4:col"}) {
    const std::string fast = std::string(s) + ":round=sr:seed=5", ref = fast + ":nan=mldtypes";
    const auto a = fq(fast, x, {16, 512});
    const auto b = fq(ref, x, {16, 512});
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(a[i], b[i])) << s << " at " << i << " x=" << x[i];
    EXPECT_EQ(make_format(fast)->encode(x, {16, 512}).at("codes").bytes,
              make_format(ref)->encode(x, {16, 512}).at("codes").bytes)
        << s;
  }
}

TEST(ElementFormat, StochasticIntMatchesRoundToInt) {
  const int64_t n = 4096;
  const auto x = hazard_data(n, 17);
  for (const char* s : {"int4:g16:round=sr:seed=3", "uint4:g16:round=sr:seed=3", "int8:round=sr:seed=3"}) {
    const auto f = make_format(s);
    const PackedTensor p = f->encode(x, {n});
    const auto codes = element_codes(p);
    const bool scaled = p.find("scales") != nullptr, asym = p.find("zero_points") != nullptr;
    const auto sc = scaled ? section_u32(p.at("scales")) : std::vector<uint32_t>{};
    const auto zp = asym ? section_u32(p.at("zero_points")) : std::vector<uint32_t>{};
    for (int64_t i = 0; i < n; ++i) {
      const float sd = scaled ? f32_from_bits(sc[i / 16]) : 1.0f;
      if (scaled && !(sd > 0.0f)) continue;  // zero / NaN groups: covered elsewhere
      const float t = scaled ? x[i] / sd : x[i];
      const uint32_t rb = sr_bits(3, static_cast<uint64_t>(i));
      uint32_t want;
      if (asym) {
        const int32_t r = round_to_int(t, -(1 << 30), 1 << 30, Round::Stochastic, rb) + static_cast<int32_t>(zp[i / 16]);
        want = static_cast<uint32_t>(std::clamp(r, 0, 15));
      } else {
        const int32_t lim = scaled ? 7 : 127;
        want = int_to_code(IntFormat{scaled ? 4 : 8, true}, round_to_int(t, scaled ? -lim : -128, lim, Round::Stochastic, rb));
      }
      ASSERT_EQ(codes[i], want) << s << " at " << i << " x=" << x[i];
    }
  }
}

namespace lowbit {
namespace {

// set_section_u32 is section_u32's inverse for every section dtype the formats write.
TEST(Sections, SetSectionU32RoundTripsEveryDtype) {
  for (const char* spec : {"int4:g16:scale=fp16", "uint4:g32", "mxfp4", "nvfp4", "nf4:dq", "lzs4:g16"}) {
    const auto f = make_format(spec);
    std::vector<float> x(4 * 256);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (1.0f + (i % 97));
    const PackedTensor p = f->encode(x, {4, 256});
    for (size_t k = 1; k < p.sections.size(); ++k) {
      Section s = p.sections[k];
      s.bytes.assign(s.bytes.size(), 0xAB);
      set_section_u32(s, section_u32(p.sections[k]));
      EXPECT_EQ(s.bytes, p.sections[k].bytes) << spec << " section " << s.name << " (" << s.dtype << ")";
    }
  }
  Section bad = make_section_u("scales", 8, {3}, std::vector<uint32_t>{1, 2, 3});
  EXPECT_THROW(set_section_u32(bad, std::vector<uint32_t>{1, 2}), Error);
}

}  // namespace
}  // namespace lowbit
