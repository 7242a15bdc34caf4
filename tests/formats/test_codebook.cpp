// Codebook formats (nf4, bnb_fp4, af4, codebook): value tables against FORMATS.md §3 literals,
// bitsandbytes' CUDA thresholds to the ulp, the torch backend's fp32 midpoints, zero blocks,
// nibble order, double quantisation and user codebooks.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "tests/formats/test_util.hpp"
#include "formats/codebook.hpp"
#include "formats/error.hpp"
#include "formats/registry.hpp"

using namespace lowbit;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// FORMATS.md §3.1, as the decimal strings of the spec (double), cast to float32.
constexpr double kNf4Spec[16] = {-1.0,
                                 -0.6961928009986877,
                                 -0.5250730514526367,
                                 -0.39491748809814453,
                                 -0.28444138169288635,
                                 -0.18477343022823334,
                                 -0.09105003625154495,
                                 0.0,
                                 0.07958029955625534,
                                 0.16093020141124725,
                                 0.24611230194568634,
                                 0.33791524171829224,
                                 0.44070982933044434,
                                 0.5626170039176941,
                                 0.7229568362236023,
                                 1.0};

bool same_bits(float a, float b) { return f32_bits(a) == f32_bits(b); }
float up(float x) { return std::nextafter(x, kInf); }
float down(float x) { return std::nextafter(x, -kInf); }

std::vector<float> fq(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  const auto f = make_format(spec);
  std::vector<float> y(x.size());
  f->fake_quant(x, shape, y);
  return y;
}

std::vector<uint32_t> codes_of(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  return element_codes(make_format(spec)->encode(x, shape));
}

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// decode(encode(x)) must equal fake_quant(x) bit for bit.
void expect_roundtrip_matches_fake_quant(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  const auto f = make_format(spec);
  const PackedTensor p = f->encode(x, shape);
  std::vector<float> a(x.size()), b(x.size());
  f->decode(p, a);
  f->fake_quant(x, shape, b);
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_TRUE(same_bits(a[i], b[i]) || (std::isnan(a[i]) && std::isnan(b[i])))
        << spec << " element " << i << ": decode " << a[i] << " fake_quant " << b[i];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// NF4

TEST(Nf4, TableMatchesSpecLiterals) {
  for (uint32_t c = 0; c < 16; ++c) EXPECT_EQ(nf4_value(c), static_cast<float>(kNf4Spec[c])) << c;
  // 7 negatives, exact 0 at code 7, 8 positives; ascending.
  for (uint32_t c = 1; c < 16; ++c) EXPECT_LT(nf4_value(c - 1), nf4_value(c));
  EXPECT_TRUE(same_bits(nf4_value(7), 0.0f));
}

TEST(Nf4, DecodeEveryCode) {
  // A hand-built packed tensor holding codes 0..15 in two blocks of 16 with absmax 1 and 3.
  const auto f = make_format("nf4:g16");
  PackedTensor p;
  p.spec = "nf4:g16";
  p.shape = {2, 16};
  p.code_bits = 4;
  std::vector<uint32_t> codes(32);
  for (uint32_t i = 0; i < 32; ++i) codes[i] = i % 16;
  Section c{"codes", "u8", p.shape, std::vector<uint8_t>(16)};
  pack_codes(codes, 4, c.bytes);
  EXPECT_EQ(c.bytes[0], 0x10);  // element 0 (code 0) low nibble, element 1 (code 1) high nibble
  p.sections.push_back(c);
  const std::vector<float> scales = {1.0f, 3.0f};
  p.sections.push_back(make_section_f32("scales", {2, 1}, scales));
  std::vector<float> out(32);
  f->decode(p, out);
  for (uint32_t i = 0; i < 16; ++i) {
    EXPECT_EQ(out[i], static_cast<float>(kNf4Spec[i])) << i;
    EXPECT_EQ(out[16 + i], static_cast<float>(kNf4Spec[i]) * 3.0f) << i;
  }
}

TEST(Nf4, CudaThresholdsExactlyAndOneUlpEitherSide) {
  // Blocks of 4 with absmax 1 (recip 1, xn = x): [1, t, t + ulp, t - ulp] per threshold.
  std::vector<float> x;
  for (int i = 0; i < 15; ++i) {
    const float t = nf4_threshold_cuda(i);
    x.insert(x.end(), {1.0f, t, up(t), down(t)});
  }
  const auto codes = codes_of("nf4:g4", x, {15, 4});
  for (uint32_t i = 0; i < 15; ++i) {
    EXPECT_EQ(codes[4 * i + 0], 15u);
    EXPECT_EQ(codes[4 * i + 1], i) << "threshold " << i << " itself takes the lower code";
    EXPECT_EQ(codes[4 * i + 2], i + 1) << "threshold " << i << " + 1 ulp";
    EXPECT_EQ(codes[4 * i + 3], i) << "threshold " << i << " - 1 ulp";
    EXPECT_EQ(nf4_code_cuda(nf4_threshold_cuda(static_cast<int>(i))), i);
  }
}

// bnb's kernels, as they are written: dQuantizeNF4's balanced tree of `>` tests and
// dQuantizeFP4's threshold cascade with its magnitude-code table. nf4_code_cuda and
// bnb_fp4_code_cuda compute the same codes without run-time indexed arrays.
uint32_t nf4_tree(float x) {
  uint32_t code = 0;
  for (uint32_t step = 8; step > 0; step >>= 1)
    if (x > nf4_threshold_cuda(static_cast<int>(code + step) - 1)) code += step;
  return code;
}
uint32_t bnb_fp4_cascade(float x) {
  const uint32_t mag_code[8] = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
  const uint32_t sign = x < 0.0f ? 8u : 0u;
  const float a = x < 0.0f ? -x : x;
  int rank = 0;
  for (int i = 0; i < 7; ++i)
    if (a > bnb_fp4_threshold_cuda(i)) rank = i + 1;
  return sign | mag_code[rank];
}

TEST(Nf4, CountFormEqualsTheKernelsTreeAndCascade) {
  std::vector<float> x = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  for (int i = 0; i < 15; ++i) {
    const float t = nf4_threshold_cuda(i);
    x.insert(x.end(), {t, up(t), down(t), up(up(t)), down(down(t))});
  }
  for (int i = 0; i < 7; ++i) {
    for (const float t : {bnb_fp4_threshold_cuda(i), -bnb_fp4_threshold_cuda(i)})
      x.insert(x.end(), {t, up(t), down(t)});
  }
  uint32_t state = 12345u;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    x.push_back((static_cast<float>(state >> 8) / 16777216.0f) * 2.4f - 1.2f);
  }
  for (const float v : x) {
    ASSERT_EQ(nf4_code_cuda(v), nf4_tree(v)) << v;
    ASSERT_EQ(bnb_fp4_code_cuda(v), bnb_fp4_cascade(v)) << v;
  }
}

TEST(Nf4, CudaLiteralsAreFloatLiteralsNotDoubleCasts) {
  // The kernel's thresholds carry an `f` suffix: each is its decimal rounded once to float32.
  // The exact midpoint of two codes is a float at i = 2, 6, 7, 9, 11, 13 (x = threshold is then
  // a true tie, and takes the lower code), lies exactly halfway between two floats at
  // i = 0, 1, 3, 4, 8, 12, 14, and needs more bits at 5, 10. At four of the ties the decimal
  // -> double -> float path (double rounding) would give the other float.
  constexpr double kDecimal[15] = {-0.8480964004993439,  -0.6106329262256622,  -0.4599952697753906,
                                   -0.33967943489551544, -0.23460740596055984, -0.13791173323988914,
                                   -0.045525018125772476, 0.03979014977812767,  0.1202552504837513,
                                   0.2035212516784668,    0.2920137718319893,   0.3893125355243683,
                                   0.5016634166240692,    0.6427869200706482,   0.8614784181118011};
  std::vector<int> double_cast_differs, exact, tie;
  for (int i = 0; i < 15; ++i) {
    const float t = nf4_threshold_cuda(i);
    if (static_cast<float>(kDecimal[i]) != t) double_cast_differs.push_back(i);
    const double mid = (static_cast<double>(nf4_value(i)) + nf4_value(i + 1)) / 2.0;
    if (static_cast<double>(t) == mid) exact.push_back(i);
    if ((static_cast<double>(t) + up(t)) / 2.0 == mid || (static_cast<double>(t) + down(t)) / 2.0 == mid)
      tie.push_back(i);
    // Always one of the two floats nearest to the exact midpoint.
    EXPECT_LE(std::fabs(static_cast<double>(t) - mid), (static_cast<double>(up(std::fabs(t))) - std::fabs(t)) / 2) << i;
  }
  EXPECT_EQ(double_cast_differs, (std::vector<int>{0, 8, 12, 14}));
  EXPECT_EQ(exact, (std::vector<int>{2, 6, 7, 9, 11, 13}));
  EXPECT_EQ(tie, (std::vector<int>{0, 1, 3, 4, 8, 12, 14}));
}

TEST(Nf4, MidpointBetweenZeroAndFirstPositiveCode) {
  const float m = 0.03979014977812767f;
  EXPECT_EQ(static_cast<double>(m), static_cast<double>(nf4_value(8)) / 2.0);  // exact tie
  for (const char* spec : {"nf4:g4", "nf4:g4:backend=torch"}) {
    const auto codes = codes_of(spec, {1.0f, m, up(m), down(m)}, {4});
    EXPECT_EQ(codes, (std::vector<uint32_t>{15, 7, 8, 7})) << spec;
    const auto y = fq(spec, {-4.0f, 4.0f * m, 4.0f * up(m), 0.0f}, {4});  // absmax 4: xn = x / 4 exactly
    EXPECT_EQ(y[1], 0.0f) << spec;
    EXPECT_EQ(y[2], 4.0f * nf4_value(8)) << spec;
  }
}

TEST(Nf4, TorchBackendUsesFp32MidpointsAndDiffersFromCudaAtFourInputs) {
  std::vector<float> x;
  std::vector<float> mids(15);
  for (int i = 0; i < 15; ++i) {
    mids[i] = (nf4_value(i) + nf4_value(i + 1)) / 2.0f;
    x.insert(x.end(), {1.0f, mids[i], up(mids[i]), down(mids[i])});
  }
  const auto codes = codes_of("nf4:g4:backend=torch", x, {15, 4});
  for (uint32_t i = 0; i < 15; ++i) {
    EXPECT_EQ(codes[4 * i + 1], i) << "fp32 midpoint " << i << " -> lower code (right=False)";
    EXPECT_EQ(codes[4 * i + 2], i + 1);
    EXPECT_EQ(codes[4 * i + 3], i);
  }
  // The two backends disagree exactly where the fp32 midpoint and the CUDA literal differ:
  // on the larger of the two, CUDA says upper iff it is above its literal.
  std::vector<int> differ;
  for (int i = 0; i < 15; ++i) {
    const float t = nf4_threshold_cuda(i);
    if (t == mids[i]) continue;
    differ.push_back(i);
    const float hi = std::max(t, mids[i]);
    const auto c_cuda = codes_of("nf4:g2", {1.0f, hi}, {2});
    const auto c_torch = codes_of("nf4:g2:backend=torch", {1.0f, hi}, {2});
    EXPECT_NE(c_cuda[1], c_torch[1]) << i;
    EXPECT_EQ(c_cuda[1], hi > t ? static_cast<uint32_t>(i + 1) : static_cast<uint32_t>(i)) << i;
    EXPECT_EQ(c_torch[1], hi > mids[i] ? static_cast<uint32_t>(i + 1) : static_cast<uint32_t>(i)) << i;
  }
  EXPECT_EQ(differ, (std::vector<int>{0, 8, 12, 14}));
}

TEST(Nf4, ZeroBlockPerBackend) {
  const std::vector<float> x = {0.0f, 0.0f, -0.0f, 0.0f, 1.0f, 0.5f, 0.0f, -1.0f};
  // CUDA: recip = 1/0 = Inf, 0 * Inf = NaN, every comparison false -> code 0 (-1.0); -1 * 0 = -0.
  const auto f = make_format("nf4:g4");
  const PackedTensor p = f->encode(x, {2, 4});
  const auto c = element_codes(p);
  EXPECT_EQ(std::vector<uint32_t>(c.begin(), c.begin() + 4), (std::vector<uint32_t>{0, 0, 0, 0}));
  EXPECT_EQ(section_f32(p.at("scales"))[0], 0.0f);
  const auto y = fq("nf4:g4", x, {2, 4});
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same_bits(y[i], -0.0f)) << i;
  EXPECT_TRUE(same_bits(y[6], 0.0f));  // a zero inside a normal block is code 7, +0
  // torch: absmax clamped to 1e-38, 0 * 1e38 = 0 -> code 7 (+0).
  const auto ct = codes_of("nf4:g4:backend=torch", x, {2, 4});
  EXPECT_EQ(std::vector<uint32_t>(ct.begin(), ct.begin() + 4), (std::vector<uint32_t>{7, 7, 7, 7}));
  const auto yt = fq("nf4:g4:backend=torch", x, {2, 4});
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same_bits(yt[i], 0.0f)) << i;
}

TEST(Nf4, NibbleOrderLowByDefaultHighForBnb) {
  // One block [1, -1]: codes 15, 0.
  const auto lo = make_format("nf4:g2")->encode(std::vector<float>{1.0f, -1.0f}, {2});
  const auto hi = make_format("nf4:g2:order=hi")->encode(std::vector<float>{1.0f, -1.0f}, {2});
  EXPECT_EQ(lo.at("codes").bytes, (std::vector<uint8_t>{0x0F}));
  EXPECT_EQ(hi.at("codes").bytes, (std::vector<uint8_t>{0xF0}));
  // Odd element count: the last byte holds one code (high nibble under order=hi).
  const auto lo3 = make_format("nf4:g3")->encode(std::vector<float>{1.0f, -1.0f, 0.0f}, {3});
  const auto hi3 = make_format("nf4:g3:order=hi")->encode(std::vector<float>{1.0f, -1.0f, 0.0f}, {3});
  EXPECT_EQ(lo3.at("codes").bytes, (std::vector<uint8_t>{0x0F, 0x07}));
  EXPECT_EQ(hi3.at("codes").bytes, (std::vector<uint8_t>{0xF0, 0x70}));
  std::vector<float> y(3);
  make_format("nf4:g3:order=hi")->decode(hi3, y);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -1.0f, 0.0f}));
  // A packed tensor carries its spec: one order cannot decode the other's bytes.
  EXPECT_THROW(make_format("nf4:g3")->decode(hi3, y), Error);
}

TEST(Nf4, HandDerivedBlock) {
  // absmax 2, recip 0.5: xn = [1, -0.5, 0.25, 0.05].
  //  1     > 0.8615                                   -> 15
  // -0.5   > -0.6106, <= -0.4600                       -> 2  (-0.5250730514526367)
  //  0.25  > 0.2035, <= 0.2920                         -> 10 (0.24611230194568634)
  //  0.05  > 0.0398, <= 0.1203                         -> 8  (0.07958029955625534)
  const std::vector<float> x = {2.0f, -1.0f, 0.5f, 0.1f};
  EXPECT_EQ(codes_of("nf4:g4", x, {4}), (std::vector<uint32_t>{15, 2, 10, 8}));
  EXPECT_EQ(codes_of("nf4:g4:backend=torch", x, {4}), (std::vector<uint32_t>{15, 2, 10, 8}));
  EXPECT_EQ(fq("nf4:g4", x, {4}),
            (std::vector<float>{2.0f, -0.5250730514526367f * 2.0f, 0.24611230194568634f * 2.0f,
                                0.07958029955625534f * 2.0f}));
}

TEST(Nf4, CudaReciprocalMultiplyNotDivision) {
  // absmax 3: recip = fp32(1/3); x * recip can land on the other side of a threshold than x / 3.
  // Search a block [3, x] whose CUDA code follows x * fp32(1/3), not x / 3.
  const float recip = 1.0f / 3.0f;
  int found = 0;
  for (int i = 0; i < 15 && found == 0; ++i) {
    const float t = nf4_threshold_cuda(i);
    for (float x = down(down(t * 3.0f)); x <= up(up(t * 3.0f)); x = up(x)) {
      if ((x * recip > t) != (x / 3.0f > t)) {
        const auto c = codes_of("nf4:g2", {3.0f, x}, {2});
        EXPECT_EQ(c[1], x * recip > t ? static_cast<uint32_t>(i + 1) : static_cast<uint32_t>(i));
        ++found;
      }
    }
  }
  EXPECT_GT(found, 0) << "no input separates reciprocal-multiply from division";
}

TEST(Nf4, SpecialValuesFollowBnb) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // CUDA: fmaxf skips NaN, so absmax = 2; the NaN element codes to 0 and decodes to -2.
  const auto y = fq("nf4:g4", {nan, 2.0f, 1.0f, -2.0f}, {4});
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[1], 2.0f);
  EXPECT_EQ(y[3], -2.0f);
  // CUDA: +Inf -> absmax Inf, recip 0, Inf * 0 = NaN -> code 0 -> -1 * Inf = -Inf; a finite
  // element gets xn = 0 -> code 7 -> 0 * Inf = NaN.
  const auto yi = fq("nf4:g2", {kInf, 1.0f}, {2});
  EXPECT_EQ(codes_of("nf4:g2", {kInf, 1.0f}, {2}), (std::vector<uint32_t>{0, 7}));
  EXPECT_EQ(yi[0], -kInf);
  EXPECT_TRUE(std::isnan(yi[1]));
  // torch: NaN propagates to absmax; every element decodes to NaN.
  const auto yt = fq("nf4:g4:backend=torch", {nan, 2.0f, 1.0f, -2.0f}, {4});
  for (const float v : yt) EXPECT_TRUE(std::isnan(v));
  expect_roundtrip_matches_fake_quant("nf4:g2", {nan, 1.0f, kInf, -kInf, 0.0f, 0.0f, nan, nan}, {8});
  expect_roundtrip_matches_fake_quant("nf4:g2:backend=torch", {nan, 1.0f, kInf, -kInf, 0.0f, 0.0f, nan, nan}, {8});
}

TEST(Nf4, FakeQuantMatchesDecodeEncode) {
  const auto x = randn(64 * 512, 11, 3.0f);
  for (const char* spec : {"nf4", "nf4:g32", "nf4:backend=torch", "nf4:order=hi", "nf4:dq", "nf4:dq:backend=torch",
                           "nf4:g128:dq:dqmap=avx512", "bnb_fp4", "bnb_fp4:backend=torch", "af4", "af4:backend=torch"})
    expect_roundtrip_matches_fake_quant(spec, x, {64, 512});
}

TEST(Nf4, ErrorWithinHalfTheLargestGap) {
  // |x - x^| <= absmax * (largest gap of the table) / 2 (+ rounding), per block.
  const auto x = randn(32 * 256, 3);
  const auto y = fq("nf4", x, {32, 256});
  float gap = 0;
  for (uint32_t c = 1; c < 16; ++c) gap = std::max(gap, nf4_value(c) - nf4_value(c - 1));
  for (size_t b = 0; b < x.size() / 64; ++b) {
    float am = 0;
    for (size_t i = 64 * b; i < 64 * (b + 1); ++i) am = std::max(am, std::fabs(x[i]));
    for (size_t i = 64 * b; i < 64 * (b + 1); ++i) ASSERT_LE(std::fabs(x[i] - y[i]), am * gap / 2 * 1.0001f) << i;
  }
}

TEST(Nf4, BlocksMustDivideLastAxisAndEmptyTensorsWork) {
  EXPECT_THROW(fq("nf4", std::vector<float>(96, 1.0f), {96}), Error);  // 96 % 64 != 0
  try {
    fq("nf4", std::vector<float>(96, 1.0f), {96});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not divisible by the block size 64"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(fq("nf4:g32", std::vector<float>(96, 1.0f), {96}));
  for (const Shape& s : {Shape{0}, Shape{0, 64}, Shape{3, 0}}) {
    for (const char* spec : {"nf4", "nf4:dq", "nf4:dq:backend=torch"}) {
      const auto f = make_format(spec);
      const PackedTensor p = f->encode(std::vector<float>{}, s);
      std::vector<float> out;
      EXPECT_NO_THROW(f->decode(p, out)) << spec;
      EXPECT_EQ(f->bits_per_element(s), 4.0);
    }
  }
}

TEST(Nf4, BitsPerElement) {
  EXPECT_DOUBLE_EQ(make_format("nf4")->bits_per_element({4, 4096}), 4.5);
  EXPECT_DOUBLE_EQ(make_format("nf4:g32")->bits_per_element({4, 4096}), 5.0);
  // dq: 4 + 8/g + 32/(256 g) + 32/numel when the block count is a multiple of 256.
  const Shape s = {256, 4096};  // 16384 blocks of 64
  const double numel = 256.0 * 4096.0;
  EXPECT_DOUBLE_EQ(make_format("nf4:dq")->bits_per_element(s), 4 + 8.0 / 64 + 32.0 / (256 * 64) + 32.0 / numel);
  // 300 blocks: 2 second-level scales.
  EXPECT_DOUBLE_EQ(make_format("nf4:dq")->bits_per_element({300, 64}), 4 + (8.0 * 300 + 32.0 * 2 + 32.0) / 19200.0);
}

TEST(Nf4, DoubleQuantSectionsAndReconstruction) {
  // 4096 blocks with widely varying absmax (16 second-level blocks of 256).
  std::vector<float> x = randn(64 * 4096, 5);
  for (size_t b = 0; b < 4096; ++b)
    for (size_t i = 0; i < 64; ++i) x[64 * b + i] *= 0.1f + 0.01f * static_cast<float>(b % 97);
  for (const char* spec : {"nf4:dq", "nf4:dq:backend=torch"}) {
    const auto f = make_format(spec);
    const PackedTensor p = f->encode(x, {4096, 64});
    EXPECT_EQ(p.find("scales"), nullptr);
    const Section& ac = p.at("absmax_codes");
    EXPECT_EQ(ac.dtype, "u8");
    EXPECT_EQ(ac.shape, (Shape{4096, 1}));
    const auto a2 = section_f32(p.at("absmax_scales"));
    ASSERT_EQ(a2.size(), 16u);
    const float offset = section_f32(p.at("absmax_offset"))[0];
    const auto q = section_u32(ac);
    const auto map = create_dynamic_map();
    // Exact absmax and offset = mean.
    std::vector<float> am(4096, 0.0f);
    double sum = 0;
    for (size_t b = 0; b < 4096; ++b) {
      for (size_t i = 0; i < 64; ++i) am[b] = std::max(am[b], std::fabs(x[64 * b + i]));
      sum += am[b];
    }
    EXPECT_EQ(offset, static_cast<float>(sum / 4096));
    float max_gap = 0;
    for (int k = 1; k < 256; ++k) max_gap = std::max(max_gap, map[k] - map[k - 1]);
    double worst = 0;
    for (size_t b = 0; b < 4096; ++b) {
      const float dec = map[q[b]] * a2[b / 256] + offset;
      const double err = std::fabs(static_cast<double>(dec) - am[b]);
      worst = std::max(worst, err / a2[b / 256]);
      ASSERT_LE(err, a2[b / 256] * (max_gap / 2) * 1.001 + 1e-6) << spec << " block " << b;
    }
    EXPECT_LT(worst, 0.0071) << spec;  // half of the largest map gap (0.9/64/2)
    // Reconstruction: NF4 with compressed absmax stays close to NF4 with exact absmax.
    std::vector<float> y_dq(x.size()), y(x.size());
    f->fake_quant(x, {4096, 64}, y_dq);
    make_format("nf4")->fake_quant(x, {4096, 64}, y);
    double e_dq = 0, e = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      e_dq += (x[i] - y_dq[i]) * (x[i] - y_dq[i]);
      e += (x[i] - y[i]) * (x[i] - y[i]);
    }
    EXPECT_LT(e_dq, e * 1.02) << spec;
  }
}

TEST(Nf4, DoubleQuantAbsmaxDecodesAsBnb) {
  // Decoded absmax = fp32(fp32(map[q] * absmax2) + offset): check through a block whose codes are
  // all 15 (x^ = absmax exactly).
  std::vector<float> x(64 * 300);
  for (size_t b = 0; b < 300; ++b)
    for (size_t i = 0; i < 64; ++i) x[64 * b + i] = (i == 0 ? 1.0f : 0.0f) * (1.0f + 0.37f * static_cast<float>(b));
  const auto f = make_format("nf4:dq:g64");
  const PackedTensor p = f->encode(x, {300, 64});
  const auto q = section_u32(p.at("absmax_codes"));
  const auto a2 = section_f32(p.at("absmax_scales"));
  ASSERT_EQ(a2.size(), 2u);  // 256 + a partial block of 44
  const float offset = section_f32(p.at("absmax_offset"))[0];
  const auto map = create_dynamic_map();
  std::vector<float> y(x.size());
  f->decode(p, y);
  for (size_t b = 0; b < 300; ++b) {
    volatile float prod = map[q[b]] * a2[b / 256];
    EXPECT_TRUE(same_bits(y[64 * b], prod + offset)) << b;
  }
}

// ---------------------------------------------------------------------------------------------
// bitsandbytes' dynamic 8-bit map and code choice (double quantisation).

TEST(Codebook, DynamicMapStructure) {
  for (const auto build : {DynamicMapBuild::Avx2, DynamicMapBuild::Avx512, DynamicMapBuild::Scalar}) {
    const auto m = create_dynamic_map(true, 7, 8, build);
    ASSERT_EQ(m.size(), 256u);
    for (int k = 1; k < 256; ++k) ASSERT_LT(m[k - 1], m[k]) << k;
    EXPECT_EQ(m[127], 0.0f);
    EXPECT_EQ(m[255], 1.0f);
    for (int k = 0; k < 127; ++k) EXPECT_EQ(m[k], -m[254 - k]) << k;
    // Decade i = 0: linspace(0.1, 1, 2) = [0.1, 1], mean 0.55, times fp32(1e-6).
    EXPECT_EQ(m[128], static_cast<float>(1e-6) * ((0.1f + 1.0f) / 2.0f));
    // Top decade: 64 means of linspace(0.1, 1, 65); the last is (1 - 0.9/64 + 1) / 2.
    EXPECT_NEAR(m[254], 0.99296875, 1e-7);
    EXPECT_NEAR(m[191], (0.1 + 0.9 / 64 * 0.5), 1e-7);
    EXPECT_NEAR(m[0], -0.99296875, 1e-7);
    // 127 positive values: 1 + 2 + 4 + ... + 64 per decade 1e-6 .. 1.
    EXPECT_LT(m[128], 1e-6f);
    EXPECT_GT(m[129], 1e-6f);
  }
  // The vectorised linspace paths move some entries by one or two ulps.
  const auto a = create_dynamic_map(true, 7, 8, DynamicMapBuild::Avx2);
  const auto b = create_dynamic_map(true, 7, 8, DynamicMapBuild::Avx512);
  const auto s = create_dynamic_map(true, 7, 8, DynamicMapBuild::Scalar);
  int d_ab = 0, d_as = 0;
  for (int k = 0; k < 256; ++k) {
    EXPECT_LE(std::abs(static_cast<int64_t>(f32_bits(a[k])) - static_cast<int64_t>(f32_bits(b[k]))), 2) << k;
    EXPECT_LE(std::abs(static_cast<int64_t>(f32_bits(a[k])) - static_cast<int64_t>(f32_bits(s[k]))), 2) << k;
    d_ab += a[k] != b[k];
    d_as += a[k] != s[k];
  }
  EXPECT_GT(d_ab, 0);
  EXPECT_GT(d_as, 0);
  // Unsigned map: 255 non-negative entries + 1.0, padded to 256.
  const auto u = create_dynamic_map(false, 7, 8);
  EXPECT_EQ(u.size(), 256u);
  EXPECT_GE(u[0], 0.0f);
  EXPECT_EQ(u[255], 1.0f);
  EXPECT_THROW(create_dynamic_map(true, 8, 8), Error);
  EXPECT_THROW(create_dynamic_map(true, 0, 8), Error);
}

TEST(Codebook, TorchLinspaceHalvesAndVectorPaths) {
  const auto v = torch_linspace_f32(0.1f, 1.0f, 5, 0);
  EXPECT_EQ(v[0], 0.1f);
  EXPECT_EQ(v[4], 1.0f);  // the upper half is computed down from `end`
  EXPECT_EQ(v[3], 1.0f - 0.225f);
  const auto w = torch_linspace_f32(0.1f, 1.0f, 65, 8);
  EXPECT_EQ(w[64], 1.0f);
  EXPECT_EQ(w[0], 0.1f);
  EXPECT_EQ(w.size(), 65u);
}

TEST(Codebook, Dynamic8CodeChoice) {
  const auto map = create_dynamic_map();
  for (uint32_t k = 0; k < 256; ++k) EXPECT_EQ(bnb_dynamic8_code(map.data(), map[k]), k) << k;
  EXPECT_EQ(bnb_dynamic8_code(map.data(), std::numeric_limits<float>::quiet_NaN()), 0u);
  EXPECT_EQ(bnb_dynamic8_code(map.data(), 2.0f), 255u);
  EXPECT_EQ(bnb_dynamic8_code(map.data(), -2.0f), 0u);
  // Every input in [-1, 1] gets one of its two neighbours, the nearer one except within an ulp
  // of a midpoint.
  std::mt19937 g(9);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (int t = 0; t < 20000; ++t) {
    const float x = t % 2 ? d(g) : d(g) * 1e-3f;
    const uint32_t c = bnb_dynamic8_code(map.data(), x);
    double best = 1e9;
    for (int k = 0; k < 256; ++k) best = std::min(best, std::fabs(static_cast<double>(map[k]) - x));
    ASSERT_LE(std::fabs(static_cast<double>(map[c]) - x), best + 1e-7 * std::fabs(x) + 1e-12) << x;
  }
  // An exact fp32 midpoint stays at the search pivot, so the tie direction depends on the path:
  // between 0 (index 127) and map[128] the search ends on pivot 128 (tie -> upper code); between
  // map[126] and 0 it ends on pivot 126 (tie -> lower code). Both resolve away from zero.
  const float mid_pos = (map[127] + map[128]) * 0.5f;
  EXPECT_EQ(bnb_dynamic8_code(map.data(), mid_pos), 128u);
  EXPECT_EQ(bnb_dynamic8_code(map.data(), up(mid_pos)), 128u);
  EXPECT_EQ(bnb_dynamic8_code(map.data(), down(mid_pos)), 127u);
  const float mid_neg = (map[126] + map[127]) * 0.5f;
  EXPECT_EQ(bnb_dynamic8_code(map.data(), mid_neg), 126u);
  EXPECT_EQ(bnb_dynamic8_code(map.data(), up(mid_neg)), 127u);
  EXPECT_EQ(bnb_dynamic8_code(map.data(), down(mid_neg)), 126u);
}

// ---------------------------------------------------------------------------------------------
// bnb "fp4"

TEST(CodebookBnbFp4, CodeOrderAndValues) {
  const float kx12[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
  // The kernel's fp4_dequantization_lut literals.
  const float lut[8] = {0.0f, 0.005208333333f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f};
  for (uint32_t c = 0; c < 16; ++c) {
    const float mag = kx12[c & 7] / 12.0f;
    EXPECT_EQ(bnb_fp4_value(c), (c & 8) ? -mag : mag) << c;
    EXPECT_EQ(std::fabs(bnb_fp4_value(c)), lut[c & 7]) << c;
  }
  EXPECT_TRUE(same_bits(bnb_fp4_value(8), -0.0f));
  // Not monotone in the code: 0b010 (8/12) > 0b100 (4/12).
  EXPECT_GT(bnb_fp4_value(2), bnb_fp4_value(4));
  EXPECT_EQ(bnb_fp4_value(1) * 12.0f, 0.0625f);  // smallest non-zero is 1/192, not OCP E2M1's 1/12
}

TEST(CodebookBnbFp4, CudaThresholds) {
  // Ascending magnitudes by code: 000 < 001 < 110 < 111 < 100 < 101 < 010 < 011.
  const uint32_t by_rank[8] = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
  std::vector<float> x;
  for (int i = 0; i < 7; ++i) {
    const float t = bnb_fp4_threshold_cuda(i);
    x.insert(x.end(), {1.0f, t, up(t), down(t), -t, -up(t)});
  }
  const auto codes = codes_of("bnb_fp4:g6", x, {7, 6});
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(codes[6 * i + 0], 0b0011u);
    EXPECT_EQ(codes[6 * i + 1], by_rank[i]) << "threshold " << i << " keeps the lower magnitude";
    EXPECT_EQ(codes[6 * i + 2], by_rank[i + 1]) << i;
    EXPECT_EQ(codes[6 * i + 3], by_rank[i]) << i;
    EXPECT_EQ(codes[6 * i + 4], 8u | by_rank[i]) << "sign = x < 0";
    EXPECT_EQ(codes[6 * i + 5], 8u | by_rank[i + 1]) << i;
  }
  EXPECT_FLOAT_EQ(bnb_fp4_threshold_cuda(0), 0.00260417f);
  EXPECT_FLOAT_EQ(bnb_fp4_threshold_cuda(6), 0.8333333f);
  // -0.0 is not < 0: positive zero code. A tiny negative keeps its sign: code 8 (-0).
  EXPECT_EQ(codes_of("bnb_fp4:g3", {1.0f, -0.0f, -0.001f}, {3}), (std::vector<uint32_t>{3, 0, 8}));
  // Zero block: 0 * Inf = NaN -> code 0 (+0).
  EXPECT_EQ(codes_of("bnb_fp4:g2", {0.0f, 0.0f}, {2}), (std::vector<uint32_t>{0, 0}));
}

TEST(CodebookBnbFp4, TorchBackendSignedZeros) {
  // Stable argsort puts +0 (code 0) before -0 (code 8); the midpoint between them is 0.
  // bucketize(right=False): 0 -> +0's bucket; (0, 1/384] -> -0's bucket (code 8); tiny negatives
  // -> code 0.
  EXPECT_EQ(codes_of("bnb_fp4:g4:backend=torch", {1.0f, 0.0f, 0.001f, -0.001f}, {4}),
            (std::vector<uint32_t>{3, 0, 8, 0}));
  const auto y = fq("bnb_fp4:g4:backend=torch", {1.0f, 0.0f, 0.001f, -0.001f}, {4});
  EXPECT_TRUE(same_bits(y[2], -0.0f));
  EXPECT_TRUE(same_bits(y[3], 0.0f));
  // Elsewhere the backends agree on the value (the CUDA thresholds are rounded midpoints).
  const auto x = randn(64 * 64, 21);
  const auto yc = fq("bnb_fp4", x, {64, 64});
  const auto yt = fq("bnb_fp4:backend=torch", x, {64, 64});
  int differ = 0;
  for (size_t i = 0; i < x.size(); ++i) differ += yc[i] != yt[i];
  EXPECT_EQ(differ, 0);
}

// ---------------------------------------------------------------------------------------------
// AF4 and user codebooks

TEST(CodebookAf4, ValuesAndNearestWithTiesToLowerCode) {
  const double spec[16] = {-1.0,       -0.69441008, -0.51243739, -0.3736951, -0.25607552, -0.14982478,
                           -0.04934812, 0.0,        0.04273164,  0.12934483, 0.21961274,  0.31675666,
                           0.42563882,  0.55496234, 0.72424863,  1.0};
  for (uint32_t c = 0; c < 16; ++c) EXPECT_EQ(af4_value(c), static_cast<float>(spec[c])) << c;
  for (const char* spec_str : {"af4:g2", "af4:g2:backend=torch"}) {
    for (uint32_t i = 0; i < 15; ++i) {
      const double mid = (static_cast<double>(af4_value(i)) + af4_value(i + 1)) / 2.0;
      const float m = static_cast<float>(mid);
      if (static_cast<double>(m) == mid) {
        EXPECT_EQ(codes_of(spec_str, {1.0f, m}, {2})[1], i) << spec_str << " tie " << i;
      }
      EXPECT_EQ(codes_of(spec_str, {1.0f, up(m)}, {2})[1], i + 1) << spec_str << " " << i;
      EXPECT_EQ(codes_of(spec_str, {1.0f, down(down(m))}, {2})[1], i) << spec_str << " " << i;
    }
  }
  // The midpoint of 0 and the first positive value is an exact fp32 tie.
  const float m8 = af4_value(8) / 2.0f;
  EXPECT_EQ(codes_of("af4:g2", {1.0f, m8}, {2})[1], 7u);
  EXPECT_EQ(codes_of("af4:g2", {1.0f, up(m8)}, {2})[1], 8u);
}

TEST(Codebook, UserValuesNearestTiesLower) {
  // values -1/0/0.5/1: 2-bit codes, ties at -0.5, 0.25, 0.75 go to the lower code.
  const auto f = make_format("codebook:values=-1/0/0.5/1:g8");
  EXPECT_EQ(f->code_bits(), 2);
  const std::vector<float> x = {1.0f, -0.5f, 0.25f, 0.75f, up(-0.5f), up(0.25f), up(0.75f), -0.9f};
  for (const char* spec : {"codebook:values=-1/0/0.5/1:g8", "codebook:values=-1/0/0.5/1:g8:backend=torch"}) {
    EXPECT_EQ(codes_of(spec, x, {8}), (std::vector<uint32_t>{3, 0, 1, 2, 1, 2, 3, 0})) << spec;
    EXPECT_EQ(fq(spec, x, {8}), (std::vector<float>{1.0f, -1.0f, 0.0f, 0.5f, 0.0f, 0.5f, 1.0f, -1.0f})) << spec;
  }
  // Unnormalised values are divided by max |v|: -2/0/1/2 behaves as -1/0/0.5/1.
  EXPECT_EQ(fq("codebook:values=-2/0/1/2:g8", x, {8}), fq("codebook:values=-1/0/0.5/1:g8", x, {8}));
  // Three values: 2-bit codes with code 3 unused; decoding code 3 is an error.
  const auto f3 = make_format("codebook:values=-1/0/1:g2");
  PackedTensor p = f3->encode(std::vector<float>{1.0f, -1.0f}, {2});
  EXPECT_EQ(element_codes(p), (std::vector<uint32_t>{2, 0}));
  p.sections[0].bytes[0] = 0x03;  // element 0 -> code 3
  std::vector<float> y(2);
  EXPECT_THROW(f3->decode(p, y), Error);
  // bits per element: code bits + 32/g.
  EXPECT_DOUBLE_EQ(make_format("codebook:values=-1/0/1:g64")->bits_per_element({2, 64}), 2.5);
  EXPECT_EQ(make_format("codebook:values=0/1")->code_bits(), 1);
  std::string many = "codebook:values=0";
  for (int i = 1; i < 256; ++i) many += "/" + std::to_string(i);
  EXPECT_EQ(make_format(many)->code_bits(), 8);
  EXPECT_EQ(make_format("codebook:values=0/1/2/3/4")->code_bits(), 3);
}

TEST(Codebook, RejectsBadCodebooks) {
  for (const char* bad : {"codebook:values=0/-1/1", "codebook:values=-1/nan/1", "codebook:values=-1/inf",
                          "codebook:values=1", "codebook:values=-1/0/0/1", "codebook:values=-1/x/1",
                          "codebook:values=-1//1", "codebook:values=", "codebook", "codebook:values=-1/1:file=a.txt",
                          "codebook:values=-1/0/1:order=hi", "nf4:backend=tpu", "nf4:order=mid", "nf4:g0",
                          "nf4:dqmap=avx2", "nf4:dq:dqmap=sse", "nf4:values=0/1"})
    EXPECT_THROW(make_format(bad), Error) << bad;
  std::string too_many = "codebook:values=0";
  for (int i = 1; i < 257; ++i) too_many += "/" + std::to_string(i);
  EXPECT_THROW(make_format(too_many), Error);
  // Distinct decimals that round to the same float32 are not strictly ascending.
  EXPECT_THROW(make_format("codebook:values=1/1.00000001"), Error);
  EXPECT_THROW(make_format("codebook:file=/nonexistent/lowbit_codebook.txt"), Error);
}

TEST(Codebook, FileValuesMatchInlineValues) {
  const auto path = std::filesystem::temp_directory_path() / "lowbit_test_codebook_values.txt";
  {
    std::ofstream f(path);
    f << "-1.0  -0.25\n0\t0.125\n 0.5 1\n";
  }
  const auto x = randn(2 * 32, 4);
  EXPECT_EQ(fq("codebook:file=" + path.string() + ":g32", x, {2, 32}),
            fq("codebook:values=-1/-0.25/0/0.125/0.5/1:g32", x, {2, 32}));
  {
    std::ofstream f(path);
    f << "0 1 2 oops\n";
  }
  EXPECT_THROW(make_format("codebook:file=" + path.string()), Error);
  std::filesystem::remove(path);
}

TEST(Nf4, DoubleQuantConstantAbsmax) {
  // All 300 block maxima equal: absmax - offset = 0 everywhere. CUDA: recip = Inf, 0 * Inf = NaN
  // -> code 0 for every entry, absmax2 = 0, decoded map[0] * 0 + offset = offset. torch: the full
  // block stores absmax2 = 0 and codes 127 (the map's 0); the trailing partial block stores the
  // clamped 1e-38.
  std::vector<float> x(300 * 64, 0.0f);
  for (size_t b = 0; b < 300; ++b) x[64 * b + 5] = 1.5f;
  const auto pc = make_format("nf4:dq")->encode(x, {300, 64});
  const auto qc = section_u32(pc.at("absmax_codes"));
  EXPECT_EQ(qc[0], 0u);
  EXPECT_EQ(qc[299], 0u);
  EXPECT_EQ(section_f32(pc.at("absmax_scales")), (std::vector<float>{0.0f, 0.0f}));
  EXPECT_EQ(section_f32(pc.at("absmax_offset"))[0], 1.5f);
  const auto pt = make_format("nf4:dq:backend=torch")->encode(x, {300, 64});
  const auto qt = section_u32(pt.at("absmax_codes"));
  EXPECT_EQ(qt[0], 127u);
  EXPECT_EQ(qt[299], 127u);
  EXPECT_EQ(section_f32(pt.at("absmax_scales")), (std::vector<float>{0.0f, 1e-38f}));
  for (const char* spec : {"nf4:dq", "nf4:dq:backend=torch"}) {
    const auto y = fq(spec, x, {300, 64});
    EXPECT_EQ(y[5], 1.5f) << spec;
    EXPECT_EQ(y[64 * 299 + 5], 1.5f) << spec;
  }
}

// ---------------------------------------------------------------------------------------------
// The fast paths (vectorisable loops and SIMD kernels) against the scalar reference, bit for
// bit: packed sections, fake_quant values and decoded values, on tensors built to hit every
// decision (thresholds and midpoints exactly and one ulp either side, at exact scales), wide
// dynamic range, subnormals, zero blocks, NaN / Inf blocks and near-FLT_MAX blocks.

namespace {

// Midpoints (fp32 and the floats around the exact one) and neighbours of every table entry.
std::vector<float> probe_values(const std::vector<std::vector<float>>& tables) {
  std::vector<float> p;
  auto add = [&](float v) {
    for (const float w : {v, up(v), down(v), up(up(v)), down(down(v))})
      if (std::fabs(w) <= 1.0f) p.push_back(w);
  };
  for (int i = 0; i < 15; ++i) add(nf4_threshold_cuda(i));
  for (int i = 0; i < 7; ++i) add(bnb_fp4_threshold_cuda(i));
  for (const auto& t : tables) {
    std::vector<float> s = t;
    std::sort(s.begin(), s.end());
    const float m = std::max(std::fabs(s.front()), std::fabs(s.back()));
    for (float& v : s) v /= m;
    for (size_t i = 0; i < s.size(); ++i) {
      add(s[i]);
      if (i + 1 < s.size()) {
        add((s[i] + s[i + 1]) / 2.0f);
        add(static_cast<float>((static_cast<double>(s[i]) + s[i + 1]) / 2.0));
      }
    }
  }
  return p;
}

// rows x cols, blocks of g along the rows, each block of one kind.
std::vector<float> hard_blocks(int64_t rows, int64_t cols, int64_t g, uint32_t seed, const std::vector<float>& probes) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto pick = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint32_t>(n)); };
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t b = 0; b < rows * cols / g; ++b) {
    float* xb = x.data() + b * g;
    const int kind = static_cast<int>(rng() % 14);
    const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 41) - 20);
    for (int64_t i = 0; i < g; ++i) {
      const float sign = rng() % 2 ? -1.0f : 1.0f;
      float v;
      switch (kind) {
        case 0: v = nd(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 250) - 130); break;  // one scale per element
        case 1: v = sign * 0.0f; break;
        case 2:
        case 3: v = sign * probes[static_cast<size_t>(pick(static_cast<int64_t>(probes.size())))] * scale; break;
        case 4: v = nd(rng); break;
        case 5: v = nd(rng) * 1e38f; break;
        case 6: v = sign * std::ldexp(static_cast<float>(rng() % 64), -149); break;  // subnormal
        case 7: v = 0.75f * scale; break;                                            // constant block
        case 8:
          v = rng() % 4 ? sign * 0.0f : sign * probes[static_cast<size_t>(pick(static_cast<int64_t>(probes.size())))];
          break;
        default: v = nd(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 60) - 30); break;
      }
      xb[i] = v;
    }
    if (kind == 2 || kind == 3 || kind == 8)
      xb[pick(g)] = (rng() % 2 ? -1.0f : 1.0f) * scale;  // absmax = scale exactly
    if (kind == 4) xb[pick(g)] = nan;
    if (kind == 5 && rng() % 2) xb[pick(g)] = rng() % 2 ? kInf : -kInf;
    if (kind == 9 && rng() % 3 == 0) {
      for (int64_t i = 0; i < g; ++i) xb[i] = nan;  // all NaN
    }
    if (kind == 10) {
      // NaNs of several payloads and signs (torch keeps the first NaN, with its payload).
      xb[pick(g)] = -nan;
      xb[pick(g)] = f32_from_bits(0x7fc00000u | (rng() & 0x3fffffu));
    }
    if (kind == 11) xb[pick(g)] = rng() % 2 ? kInf : -kInf;
  }
  return x;
}

using lowbit::testing::expect_same_bits;
using lowbit::testing::expect_same_packed;

// Every implementation of `spec` against the reference on x.
void expect_impls_match_reference(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  const auto ref = detail::make_codebook_format(spec, detail::CodebookImpl::Reference);
  const PackedTensor pr = ref->encode(x, shape);
  std::vector<float> yr(x.size()), dr(x.size());
  ref->fake_quant(x, shape, yr);
  ref->decode(pr, dr);
  expect_same_bits(yr, dr, spec + " reference fake_quant vs decode");
  for (const auto impl : {detail::CodebookImpl::Portable, detail::CodebookImpl::Native}) {
    const std::string what = spec + (impl == detail::CodebookImpl::Portable ? " (portable)" : " (native)");
    const auto f = detail::make_codebook_format(spec, impl);
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

std::string values_spec(const std::vector<float>& v) {
  std::string s = "codebook:values=";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "/" : "") + fmt::format("{}", v[i]);
  return s;
}

// User tables: sizes 2 .. 256 (every kernel size), asymmetric ones, one whose max |v| is
// negative, one with values one ulp apart (equal fp32 midpoints).
std::vector<std::vector<float>> user_tables() {
  std::vector<std::vector<float>> t = {
      {0.0f, 1.0f},
      {-1.0f, 0.0f, 1.0f},
      {-1.0f, 0.0f, 0.5f, 1.0f},
      {-3.0f, -1.0f, 0.0f, 0.7f, 2.0f},
      {-2.0f, -1.0f, 0.0f, 0.5f},
      {-1.0f, 0.5f, up(0.5f), up(up(0.5f)), up(up(up(0.5f))), 1.0f},
      {-0.9f, -0.3f, -0.01f, 1e-30f, 2e-30f, 0.2f, 0.4f, 1.0f},
      {-1.0f, -0.8f, -0.6f, -0.4f, -0.2f, -0.1f, 0.0f, 0.05f, 0.1f},
  };
  std::mt19937 rng(77);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const int n : {15, 16, 17, 32, 33, 64, 100, 256}) {
    std::vector<float> v;
    while (static_cast<int>(v.size()) < n) {
      v.push_back(u(rng));
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    }
    t.push_back(v);
  }
  return t;
}

}  // namespace

TEST(CodebookFast, MatchesReferenceEveryFormatBackendAndOption) {
  const auto users = user_tables();
  std::vector<std::vector<float>> tables = users;
  for (const auto value : {nf4_value, bnb_fp4_value, af4_value}) {
    std::vector<float> t;
    for (uint32_t c = 0; c < 16; ++c) t.push_back(value(c));
    tables.push_back(t);
  }
  const std::vector<float> probes = probe_values(tables);
  std::vector<std::string> names = {"nf4", "bnb_fp4", "af4"};
  for (const auto& u : users) names.push_back(values_spec(u));
  const int64_t cols = 6144;  // divisible by every block size below
  uint32_t seed = 1;
  for (const auto& name : names) {
    for (const char* backend : {"", ":backend=torch"}) {
      for (const int64_t g : {3, 64, 3072}) {
        for (const char* dq : {"", ":dq"}) {
          const std::string spec = name + ":g" + std::to_string(g) + backend + dq;
          const auto x = hard_blocks(4, cols, g, seed++, probes);
          expect_impls_match_reference(spec, x, {4, cols});
        }
      }
    }
  }
}

TEST(CodebookFast, MatchesReferenceBlockSizesOrdersAndParallelRuns) {
  std::vector<std::vector<float>> tables;
  for (const auto value : {nf4_value, bnb_fp4_value, af4_value}) {
    std::vector<float> t;
    for (uint32_t c = 0; c < 16; ++c) t.push_back(value(c));
    tables.push_back(t);
  }
  const std::vector<float> probes = probe_values(tables);
  const int64_t cols = 6144;
  uint32_t seed = 100;
  for (const char* name : {"nf4", "bnb_fp4", "af4"}) {
    for (const char* backend : {":backend=cuda", ":backend=torch"}) {
      for (const int64_t g : {1, 2, 5, 16, 32, 96, 128, 2048, 6144}) {
        if (cols % g != 0) continue;
        const std::string spec = std::string(name) + ":g" + std::to_string(g) + backend;
        expect_impls_match_reference(spec, hard_blocks(2, cols, g, seed++, probes), {2, cols});
      }
      // Large enough for the parallel loops (more than 2^16 elements), hi nibble order, dq maps.
      for (const char* opts : {"", ":order=hi", ":dq:dqmap=avx512", ":dq:dqmap=scalar:order=hi"}) {
        const std::string spec = std::string(name) + backend + opts;
        expect_impls_match_reference(spec, hard_blocks(16, cols, 64, seed++, probes), {16, cols});
      }
    }
  }
  // Odd element counts (a last byte with one code), 1-D and scalar shapes.
  const std::pair<const char*, int64_t> odd[] = {
      {"nf4:g3:order=hi", 3}, {"nf4:g3", 3}, {"bnb_fp4:g5:backend=torch", 5}, {"af4:g1:order=hi", 1}};
  for (const auto& [spec, g] : odd) expect_impls_match_reference(spec, hard_blocks(1, 15, g, seed++, probes), {15});
  expect_impls_match_reference("nf4:g1", {0.3f}, {});
  // Double quantisation with a trailing partial block of 44 absmax values (2 vectors of 16 and
  // a tail of 12), per backend.
  for (const char* spec : {"nf4:dq", "nf4:dq:backend=torch", "bnb_fp4:dq:dqmap=scalar", "af4:dq:backend=torch"})
    expect_impls_match_reference(spec, hard_blocks(300, 64, 64, seed++, probes), {300, 64});
  // Gaussian data as the benchmarks use.
  const auto x = randn(64 * 4096, 5, 2.0f);
  for (const char* spec : {"nf4", "bnb_fp4", "af4", "nf4:backend=torch", "bnb_fp4:backend=torch", "nf4:dq"})
    expect_impls_match_reference(spec, x, {64, 4096});
}

TEST(CodebookFast, DoubleQuantCodeChoicesMatchReferenceAtExactMidpoints) {
  // Every map value, both midpoints (bnb's (a + b) * 0.5f and torch's (a + b) / 2, equal in
  // fp32) and their neighbours, beyond +-1, zeros, NaN and Inf; scaled by exact powers of two.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const auto build : {DynamicMapBuild::Avx2, DynamicMapBuild::Avx512, DynamicMapBuild::Scalar}) {
    const auto map = create_dynamic_map(true, 7, 8, build);
    std::vector<float> bounds;
    for (int i = 0; i + 1 < 256; ++i) bounds.push_back((map[i] + map[i + 1]) / 2.0f);
    std::vector<float> v = {0.0f, -0.0f, nan, -nan, kInf, -kInf, 1.5f, -1.5f, 1e-30f, -1e-30f};
    for (int i = 0; i < 256; ++i)
      for (const float m : {map[i], i < 255 ? (map[i] + map[i + 1]) * 0.5f : map[i]})
        for (const float w : {m, up(m), down(m)}) v.push_back(w);
    for (const float scale : {1.0f, 4.0f, 0.25f}) {
      std::vector<float> vs(v.size());
      for (size_t i = 0; i < v.size(); ++i) vs[i] = v[i] * scale;  // exact
      const float recip = 1.0f / scale;
      for (const bool simd : {false, true}) {
        std::vector<uint32_t> q(vs.size());
        detail::dynamic8_codes(map.data(), vs.data(), recip, static_cast<int64_t>(vs.size()), q.data(), simd);
        for (size_t i = 0; i < vs.size(); ++i)
          ASSERT_EQ(q[i], bnb_dynamic8_code(map.data(), vs[i] * recip)) << vs[i] << " simd " << simd;
        for (const bool partial : {false, true}) {
          detail::dynamic8_bucketize_codes(bounds.data(), vs.data(), scale, recip, partial,
                                           static_cast<int64_t>(vs.size()), q.data(), simd);
          for (size_t i = 0; i < vs.size(); ++i) {
            float x = partial ? vs[i] / scale : vs[i] * recip;
            x = x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
            int lo = 0, hi = 255;  // ATen's search: the first bound >= x, NaN past the end
            while (lo < hi) {
              const int mid = lo + (hi - lo) / 2;
              if (!(bounds[mid] >= x)) lo = mid + 1;
              else hi = mid;
            }
            ASSERT_EQ(q[i], static_cast<uint32_t>(lo)) << vs[i] << " simd " << simd << " partial " << partial;
          }
        }
      }
    }
  }
}
