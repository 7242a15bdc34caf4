// NVFP4 (formats/nvfp4.hpp, formats/nvfp4.cpp): hand-computed tensors for each peer variant,
// zero / degenerate tensors, torchao's 2^-6 scale floor, ModelOpt's 1.0 for zero blocks, a
// re-implementation of each variant's fp32 formulas with independent (brute-force) E4M3 / E2M1
// rounding, cases where TE and torchao disagree, packing, fake quantisation and SR.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "formats/error.hpp"
#include "formats/float_format.hpp"
#include "formats/nvfp4.hpp"
#include "formats/registry.hpp"
#include "formats/tensor_format.hpp"

using namespace lowbit;

namespace {

bool same_bits(float a, float b) { return f32_bits(a) == f32_bits(b); }

// --- Independent reference -------------------------------------------------------------------

double e4m3_value(uint32_t c) {
  const uint32_t e = (c >> 3) & 0xF, m = c & 7;
  if (e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  return e == 0 ? std::ldexp(static_cast<double>(m), -9) : std::ldexp(1.0 + m / 8.0, static_cast<int>(e) - 7);
}
const double kE2m1[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};
double e2m1_value(uint32_t c) { return (c & 8 ? -1.0 : 1.0) * kE2m1[c & 7]; }

// E4M3 of a non-negative v by brute-force nearest, ties to the even code; beyond 464
// saturates (CUDA satfinite) or is NaN (torch .to()).
uint32_t ref_e4m3(float v, bool sat) {
  if (std::isnan(v)) return 0x7F;
  const double a = std::fabs(static_cast<double>(v));
  if (a > 464.0) return sat ? 0x7E : 0x7F;
  uint32_t best = 0;
  for (uint32_t c = 1; c <= 0x7E; ++c) {
    const double d = std::fabs(a - e4m3_value(c)), db = std::fabs(a - e4m3_value(best));
    if (d < db || (d == db && (c & 1) == 0)) best = c;
  }
  return best;
}

// E2M1 by brute-force nearest, ties to even, saturating; sign from the sign bit, NaN -> 0x7.
uint32_t ref_e2m1(float v) {
  if (std::isnan(v)) return 0x7;
  const double a = std::fabs(static_cast<double>(v));
  uint32_t best = 0;
  for (uint32_t c = 1; c < 8; ++c) {
    const double d = std::fabs(a - kE2m1[c]), db = std::fabs(a - kE2m1[best]);
    if (d < db || (d == db && (c & 1) == 0)) best = c;
  }
  return (std::signbit(v) ? 8u : 0u) | best;
}

struct RefOut {
  std::vector<uint32_t> codes, scales;
  float ts = 0;
  std::vector<float> values;
};

float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// The FORMATS.md §5 formulas, one fp32 operation per statement, for finite tensors.
RefOut reference(const std::string& variant, bool two_level, const std::vector<float>& x) {
  RefOut r;
  float amax = 0.0f;
  for (const float v : x) amax = std::max(amax, std::fabs(v));
  const int64_t nblocks = static_cast<int64_t>(x.size()) / 16;
  float s_enc = 1, s_dec = 1, coef = 0, pts = 0, inv = 0, sf2 = 0, six_sf2 = 0;
  if (variant == "te") {
    s_enc = 2688.0f / amax;
    s_enc = std::fmin(s_enc, FLT_MAX);
    if (amax == 0.0f || s_enc == 0.0f) s_enc = 1.0f;
    s_dec = 1.0f / s_enc;
    coef = s_enc * (1.0f / 6.0f);
    r.ts = s_dec;
  } else if (variant == "torchao") {
    pts = amax / 2688.0f;
    inv = 1.0f / pts;
    r.ts = pts;
  } else {
    sf2 = amax / 2688.0f;
    six_sf2 = 6.0f * sf2;
    r.ts = sf2;
  }
  for (int64_t b = 0; b < nblocks; ++b) {
    float bamax = 0.0f;
    for (int i = 0; i < 16; ++i) bamax = std::max(bamax, std::fabs(x[b * 16 + i]));
    uint32_t sc;
    float sf;
    if (!two_level) {
      const float bs = bamax / 6.0f;
      sc = ref_e4m3(clampf(bs, 0.015625f, 448.0f), true);
      sf = static_cast<float>(e4m3_value(sc));
      const float m = 1.0f / sf;
      for (int i = 0; i < 16; ++i) r.codes.push_back(ref_e2m1(clampf(x[b * 16 + i] * m, -6.0f, 6.0f)));
    } else if (variant == "te") {
      const float sb = std::fmin(bamax * coef, FLT_MAX);
      sc = ref_e4m3(sb, true);
      sf = static_cast<float>(e4m3_value(sc));
      const float d = sf * s_dec;
      const float enc = std::fmin(1.0f / d, FLT_MAX);
      for (int i = 0; i < 16; ++i) r.codes.push_back(ref_e2m1(x[b * 16 + i] * enc));
    } else if (variant == "torchao") {
      if (pts == 0.0f) {
        sc = 0x08;
        sf = 0.015625f;
        for (int i = 0; i < 16; ++i) r.codes.push_back(0);
      } else {
        const float bs = bamax / 6.0f;
        const float t = bs / pts;
        sc = ref_e4m3(clampf(t, 0.015625f, 448.0f), true);
        sf = static_cast<float>(e4m3_value(sc));
        const float m = inv / sf;
        for (int i = 0; i < 16; ++i) r.codes.push_back(ref_e2m1(clampf(x[b * 16 + i] * m, -6.0f, 6.0f)));
      }
    } else {
      if (sf2 == 0.0f) {
        sc = 0x38;
        sf = 1.0f;
        for (int i = 0; i < 16; ++i) r.codes.push_back(0);
      } else {
        float ps = bamax / six_sf2;
        if (ps == 0.0f) ps = 1.0f;
        sc = ref_e4m3(ps, false);
        sf = static_cast<float>(e4m3_value(sc));
        const float d = sf * sf2;
        for (int i = 0; i < 16; ++i) {
          const float q = x[b * 16 + i] / d;
          // ModelOpt _cast_fp4: sign = (q < 0), searchsorted on |q|.
          const uint32_t c = std::isnan(q) ? 7u : ((q < 0 ? 8u : 0u) | (ref_e2m1(std::fabs(q)) & 7u));
          r.codes.push_back(c);
        }
      }
    }
    r.scales.push_back(sc);
    for (int i = 0; i < 16; ++i) {
      const float v = static_cast<float>(e2m1_value(r.codes[b * 16 + i]));
      r.values.push_back(two_level ? v * (sf * r.ts) : v * sf);
    }
  }
  return r;
}

std::string spec_of(const std::string& variant) { return variant == "te" ? "nvfp4" : "nvfp4:variant=" + variant; }

// Encodes with the library and checks codes, scales, tensor scale and values against the
// reference; returns the packed tensor.
PackedTensor check_against_reference(const std::string& spec, const std::string& variant, bool two_level,
                                     const std::vector<float>& x, const Shape& shape) {
  const auto f = make_format(spec);
  const PackedTensor p = f->encode(x, shape);
  const RefOut r = reference(variant, two_level, x);
  EXPECT_EQ(element_codes(p), r.codes) << spec;
  EXPECT_EQ(section_u32(p.at("scales")), r.scales) << spec;
  if (two_level) {
    const auto ts = section_f32(p.at("tensor_scale"));
    EXPECT_EQ(ts.size(), 1u);
    EXPECT_TRUE(same_bits(ts[0], r.ts)) << spec << " " << ts[0] << " vs " << r.ts;
  } else {
    EXPECT_EQ(p.find("tensor_scale"), nullptr);
  }
  std::vector<float> y(x.size()), z(x.size());
  f->decode(p, y);
  f->fake_quant(x, shape, z);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(same_bits(y[i], r.values[i])) << spec << " " << i << ": " << y[i] << " vs " << r.values[i];
    EXPECT_TRUE(same_bits(y[i], z[i])) << spec << " " << i;
  }
  return p;
}

// The hand-worked tensor, shape (4, 16); amax 2688 makes every tensor scale exactly 1.
std::vector<float> hand_tensor() {
  std::vector<float> x = {12, -12, 6, 3, 1.5f, 5, 7, 2.5f, 0, -0.4f, 1, 9, 4, 8, 11, -3};
  const std::vector<float> r1 = {2688, 1344, -672, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<float> r2 = {0.03f, -0.01f, 0.02f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<float> r3(16, 0.0f);
  r3[1] = -0.0f;
  x.insert(x.end(), r1.begin(), r1.end());
  x.insert(x.end(), r2.begin(), r2.end());
  x.insert(x.end(), r3.begin(), r3.end());
  return x;
}

// Random tensors: per-block magnitudes over many binades around a random tensor magnitude.
std::vector<float> mixed(size_t n, uint32_t seed, int tensor_e) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> be(-14, 0), de(-6, 0), z(0, 15);
  std::uniform_real_distribution<float> m(1.0f, 2.0f);
  std::vector<float> v(n);
  int block_e = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i % 16 == 0) block_e = tensor_e + be(g);
    const float s = (g() & 1) ? -1.0f : 1.0f;
    v[i] = z(g) == 0 ? 0.0f : s * std::ldexp(m(g), block_e + de(g));
  }
  return v;
}

const char* const kVariants[] = {"te", "torchao", "modelopt"};

}  // namespace

TEST(Nvfp4, Constants) {
  EXPECT_EQ(f32_bits(1.0f / 6.0f), 0x3E2AAAABu);
  EXPECT_EQ(448.0f * 6.0f, 2688.0f);
  EXPECT_EQ(12.0f * (1.0f / 6.0f), 2.0f);      // hand tensor, block 0
  EXPECT_EQ(2688.0f * (1.0f / 6.0f), 448.0f);  // hand tensor, block 1
  EXPECT_EQ(decode_float(fmt_desc::e4m3, kE4m3One), 1.0f);
  EXPECT_EQ(decode_float(fmt_desc::e4m3, kE4m3MinNormal), 0.015625f);
  EXPECT_TRUE(std::isnan(decode_float(fmt_desc::e4m3, kE4m3Nan)));
}

// Literal constants worked by hand (FORMATS.md §5 formulas; ties to even in E2M1: 0.75 -> 1,
// 1.25 -> 1, 2.5 -> 2, 3.5 -> 4).
TEST(Nvfp4, HandComputedEachVariant) {
  const std::vector<float> x = hand_tensor();
  // Block 0: block scale 2.0 (0x40), elements x * 0.5 in every variant.
  const std::vector<uint32_t> b0 = {0x7, 0xF, 0x5, 0x3, 0x2, 0x4, 0x6, 0x2, 0x0, 0x8, 0x1, 0x6, 0x4, 0x6, 0x7, 0xB};
  const std::vector<float> v0 = {12, -12, 6, 3, 2, 4, 8, 2, 0, -0.0f, 1, 8, 4, 8, 12, -3};
  // Block 1: scale 448 (0x7E); 2688, 1344, -672 -> 6, 3, -1.5.
  const std::vector<uint32_t> b1 = {0x7, 0x5, 0xB, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  // Block 2 (amax 0.03): TE and ModelOpt store the E4M3 subnormal 3 * 2^-9 = 0.005859375
  // (0x03): 0.03 / 0.005859375 = 5.12 -> 6, -1.71 -> -1.5, 3.41 -> 3. torchao floors the scale
  // at 2^-6 (0x08): 0.03 * 64 = 1.92 -> 2, -0.64 -> -0.5, 1.28 -> 1.5.
  const std::vector<uint32_t> b2_te = {0x7, 0xB, 0x5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<uint32_t> b2_ao = {0x4, 0x9, 0x3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  // Block 3 (zeros, one -0): TE scale 0 (enc = FLT_MAX) and -0 -> 0x8; torchao 2^-6, -0 -> 0x8;
  // ModelOpt 1.0 and sign = (q < 0) so -0 -> 0x0.
  std::vector<uint32_t> b3_signed(16, 0), b3_mo(16, 0);
  b3_signed[1] = 0x8;

  struct Case {
    const char* variant;
    std::vector<uint32_t> scales;
    const std::vector<uint32_t>& b2;
    const std::vector<uint32_t>& b3;
  };
  const Case cases[] = {{"te", {0x40, 0x7E, 0x03, 0x00}, b2_te, b3_signed},
                        {"torchao", {0x40, 0x7E, 0x08, 0x08}, b2_ao, b3_signed},
                        {"modelopt", {0x40, 0x7E, 0x03, 0x38}, b2_te, b3_mo}};
  for (const Case& c : cases) {
    const auto f = make_format(spec_of(c.variant));
    const PackedTensor p = f->encode(x, {4, 16});
    EXPECT_EQ(section_u32(p.at("scales")), c.scales) << c.variant;
    EXPECT_EQ(section_f32(p.at("tensor_scale"))[0], 1.0f) << c.variant;
    const auto codes = element_codes(p);
    EXPECT_EQ(std::vector<uint32_t>(codes.begin(), codes.begin() + 16), b0) << c.variant;
    EXPECT_EQ(std::vector<uint32_t>(codes.begin() + 16, codes.begin() + 32), b1) << c.variant;
    EXPECT_EQ(std::vector<uint32_t>(codes.begin() + 32, codes.begin() + 48), c.b2) << c.variant;
    EXPECT_EQ(std::vector<uint32_t>(codes.begin() + 48, codes.end()), c.b3) << c.variant;
    std::vector<float> y(64);
    f->decode(p, y);
    for (int i = 0; i < 16; ++i) EXPECT_TRUE(same_bits(y[i], v0[i])) << c.variant << " " << i;
    EXPECT_EQ(y[16], 2688.0f);
    EXPECT_EQ(y[17], 1344.0f);
    EXPECT_EQ(y[18], -672.0f);
    for (int i = 48; i < 64; ++i) EXPECT_EQ(y[i], 0.0f);
    // Packing: element 0 in the low nibble.
    EXPECT_EQ(p.at("codes").bytes[0], 0xF7);
    EXPECT_EQ(p.at("codes").bytes[1], 0x35);
    EXPECT_EQ(y[32], std::string(c.variant) == "torchao" ? 0.03125f : 0.03515625f) << c.variant;  // 2 * 2^-6 vs 6 * 3 * 2^-9
    check_against_reference(spec_of(c.variant), c.variant, true, x, {4, 16});
  }
}


// tensor_scale=off: torchao's single-level form, scale = e4m3(clamp(block_amax / 6, 2^-6, 448)).
TEST(Nvfp4, SingleLevel) {
  const std::vector<float> x = hand_tensor();
  const auto f = make_format("nvfp4:tensor_scale=off");
  EXPECT_EQ(f->spec(), "nvfp4:variant=torchao:tensor_scale=off");
  const PackedTensor p = f->encode(x, {4, 16});
  // 12/6 = 2 (0x40); 2688/6 = 448 (0x7E); 0.005 -> 2^-6 floor (0x08); zero block -> 2^-6.
  EXPECT_EQ(section_u32(p.at("scales")), (std::vector<uint32_t>{0x40, 0x7E, 0x08, 0x08}));
  EXPECT_EQ(p.find("tensor_scale"), nullptr);
  const auto codes = element_codes(p);
  EXPECT_EQ(codes[0], 0x7u);
  EXPECT_EQ(codes[4], 0x2u);
  EXPECT_EQ(codes[32], 0x4u);
  EXPECT_EQ(codes[33], 0x9u);
  check_against_reference("nvfp4:tensor_scale=off", "torchao", false, x, {4, 16});
  // Beyond 2688 the single-level scale saturates at 448: 6000 -> 6 * 448.
  std::vector<float> big(16, 0.0f);
  big[0] = 6000.0f;
  big[1] = -1000.0f;
  std::vector<float> y(16);
  f->fake_quant(big, {16}, y);
  EXPECT_EQ(y[0], 2688.0f);
  EXPECT_EQ(y[1], -896.0f);  // -1000/448 = -2.23 -> -2
}

// All-zero tensors: TE's kernel rule (amax == 0 -> S_enc = 1) gives scale 0 and codes 0; for
// torchao and ModelOpt (whose own code computes 0/0 = NaN here) the tensor is stored as zero
// blocks of the variant: 2^-6 and 1.0.
TEST(Nvfp4, ZeroTensor) {
  const std::vector<float> x(48, 0.0f);
  struct Case {
    const char* spec;
    uint32_t scale;
    float ts;
  };
  for (const Case& c : {Case{"nvfp4", 0x00, 1.0f}, Case{"nvfp4:variant=torchao", 0x08, 0.0f},
                        Case{"nvfp4:variant=modelopt", 0x38, 0.0f}, Case{"nvfp4:tensor_scale=off", 0x08, -1.0f}}) {
    const auto f = make_format(c.spec);
    const PackedTensor p = f->encode(x, {3, 16});
    for (const uint32_t s : section_u32(p.at("scales"))) EXPECT_EQ(s, c.scale) << c.spec;
    for (const uint32_t code : element_codes(p)) EXPECT_EQ(code, 0u) << c.spec;
    if (c.ts >= 0) {
      EXPECT_EQ(section_f32(p.at("tensor_scale"))[0], c.ts) << c.spec;
    }
    std::vector<float> y(48, 1.0f);
    f->decode(p, y);
    for (const float v : y) EXPECT_TRUE(same_bits(v, 0.0f)) << c.spec;
  }
  // A tensor so small that amax / 2688 underflows is treated the same way (decodes to 0).
  std::vector<float> tiny(16, 0.0f);
  tiny[3] = std::ldexp(1.0f, -145);
  for (const char* s : {"nvfp4:variant=torchao", "nvfp4:variant=modelopt"}) {
    std::vector<float> y(16);
    const auto f = make_format(s);
    f->fake_quant(tiny, {16}, y);
    for (const float v : y) EXPECT_EQ(v, 0.0f) << s;
    EXPECT_EQ(section_f32(f->encode(tiny, {16}).at("tensor_scale"))[0], 0.0f);
  }
  // TE: S_enc = min(2688 / 2^-145, FLT_MAX) = FLT_MAX, and the block scale 2^-145 * FLT_MAX / 6
  // ~ 2^-19.6 underflows E4M3 to 0: the same zeros, by TE's own arithmetic.
  const PackedTensor pt = check_against_reference("nvfp4", "te", true, tiny, {16});
  EXPECT_EQ(section_f32(pt.at("tensor_scale"))[0], 1.0f / FLT_MAX);
  EXPECT_EQ(section_u32(pt.at("scales"))[0], 0u);
}

// Zero blocks inside a non-zero tensor: TE scale 0 (enc = FLT_MAX, codes 0), torchao the 2^-6
// floor, ModelOpt 1.0 (per_block_scale == 0 -> 1.0 before the E4M3 cast).
TEST(Nvfp4, ZeroBlockPerVariant) {
  std::vector<float> x(32, 0.0f);
  x[16] = 5.0f;
  const uint32_t want[] = {0x00, 0x08, 0x38};
  for (int v = 0; v < 3; ++v) {
    const PackedTensor p = make_format(spec_of(kVariants[v]))->encode(x, {32});
    const auto sc = section_u32(p.at("scales"));
    EXPECT_EQ(sc[0], want[v]) << kVariants[v];
    EXPECT_EQ(sc[1], kVariants[v][1] == 'e' ? 0x7Eu : 0x7Eu);
    for (int i = 0; i < 16; ++i) EXPECT_EQ(element_codes(p)[i], 0u);
    check_against_reference(spec_of(kVariants[v]), kVariants[v], true, x, {32});
  }
}

// Non-finite tensor amax: the two-level variants store NaN and decode NaN everywhere; the
// single-level form only spoils the block that holds the NaN, and saturates Inf.
TEST(Nvfp4, NonFiniteTensor) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const float bad : {nan, inf, -inf}) {
    std::vector<float> x = hand_tensor();
    x[20] = bad;
    for (const char* v : kVariants) {
      const auto f = make_format(spec_of(v));
      const PackedTensor p = f->encode(x, {4, 16});
      EXPECT_TRUE(std::isnan(section_f32(p.at("tensor_scale"))[0])) << v;
      for (const uint32_t s : section_u32(p.at("scales"))) EXPECT_EQ(s, 0x7Fu) << v;
      for (const uint32_t c : element_codes(p)) EXPECT_EQ(c, 0u) << v;
      std::vector<float> y(64), z(64);
      f->decode(p, y);
      f->fake_quant(x, {4, 16}, z);
      for (int i = 0; i < 64; ++i) {
        EXPECT_TRUE(std::isnan(y[i])) << v << " " << i;
        EXPECT_TRUE(std::isnan(z[i])) << v << " " << i;
      }
    }
  }
  const auto f = make_format("nvfp4:tensor_scale=off");
  std::vector<float> x = hand_tensor();
  x[20] = nan;
  std::vector<float> y(64);
  f->fake_quant(x, {4, 16}, y);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(std::isnan(y[i]), i >= 16 && i < 32) << i;
  EXPECT_EQ(section_u32(f->encode(x, {4, 16}).at("scales"))[1], 0x7Fu);
  x[20] = -inf;
  f->fake_quant(x, {4, 16}, y);
  EXPECT_EQ(y[20], -2688.0f);  // scale 448, Inf saturates to 6
  EXPECT_EQ(y[17], 1344.0f);
  EXPECT_EQ(y[0], 12.0f);
}

// Every variant against the reference on random tensors of many magnitudes, fp32 subnormals
// included.
TEST(Nvfp4, MatchesReferenceOnRandomTensors) {
  for (const int te : {-140, -100, -30, -5, 0, 3, 12, 40, 100, 120}) {
    const auto x = mixed(16 * 64, 100 + te, te);
    for (const char* v : kVariants) {
      const auto p = check_against_reference(spec_of(v), v, true, x, {8, 128});
      if (::testing::Test::HasFailure()) return;
    }
    check_against_reference("nvfp4:tensor_scale=off", "torchao", false, x, {8, 128});
    if (::testing::Test::HasFailure()) return;
  }
}

// The fp32 operation orders of TE (x * fl(1 / (s * S_dec)), S_enc = 2688 / amax) and torchao
// (x * fl(fl(1 / pts) / s), pts = amax / 2688) differ by an ulp; at E2M1 ties that changes the
// code. Search blocks for such an element (same block scale, different code) and for a block
// whose E4M3 scale differs; both variants must match their own re-computation.
TEST(Nvfp4, TeAndTorchaoDisagreeOnOperationOrder) {
  std::mt19937 g(12345);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  bool found_code = false, found_scale = false;
  for (int trial = 0; trial < 2000 && !(found_code && found_scale); ++trial) {
    const float amax = std::ldexp(1.0f + u(g), static_cast<int>(g() % 40) - 20);
    const Nvfp4Tensor t = nvfp4_tensor(Nvfp4Variant::Te, true, amax);
    std::vector<float> x(32, 0.0f);
    x[0] = amax;  // row 0 sets the tensor amax
    float bamax;
    if (!found_scale && trial % 2 == 0) {
      // Block amax near an E4M3 midpoint of the scaled block scale.
      const uint32_t c = 0x30 + g() % 0x4d;
      const float mid = 0.5f * (decode_float(fmt_desc::e4m3, c) + decode_float(fmt_desc::e4m3, c + 1));
      bamax = f32_from_bits(f32_bits(mid * amax / 448.0f) + static_cast<int>(g() % 5) - 2);
    } else {
      bamax = amax * (0.05f + 0.9f * u(g));
    }
    if (!(bamax < amax)) continue;
    x[16] = bamax;
    // Elements of block 1 at an E2M1 tie under TE's multiplier, and a few ulps around it.
    const float enc = nvfp4_block_scale(t, bamax).m;
    for (int i = 1; i < 16; ++i) {
      const float tie = ties[g() % 7];
      const float xi = f32_from_bits(f32_bits(tie / enc) + static_cast<int>(g() % 5) - 2);
      x[16 + i] = std::fabs(xi) < bamax ? ((g() & 1) ? xi : -xi) : 0.0f;
    }
    const PackedTensor pt = make_format("nvfp4")->encode(x, {2, 16});
    const PackedTensor pa = make_format("nvfp4:variant=torchao")->encode(x, {2, 16});
    const auto st = section_u32(pt.at("scales")), sa = section_u32(pa.at("scales"));
    const auto ct = element_codes(pt), ca = element_codes(pa);
    bool hit = false;
    if (st[1] != sa[1] && !found_scale) {
      found_scale = hit = true;
    } else if (st[1] == sa[1] && ct != ca && !found_code) {
      found_code = hit = true;
    }
    if (hit) {
      const RefOut rt = reference("te", true, x), ra = reference("torchao", true, x);
      EXPECT_EQ(ct, rt.codes);
      EXPECT_EQ(st, rt.scales);
      EXPECT_EQ(ca, ra.codes);
      EXPECT_EQ(sa, ra.scales);
    }
  }
  EXPECT_TRUE(found_code);
  EXPECT_TRUE(found_scale);
}

// ModelOpt divides, torchao multiplies by a reciprocal: they also disagree somewhere.
TEST(Nvfp4, ModeloptAndTorchaoDisagree) {
  std::mt19937 g(777);
  int differ = 0;
  for (int trial = 0; trial < 50 && differ == 0; ++trial) {
    const auto x = mixed(16 * 256, 900 + trial, static_cast<int>(g() % 20) - 10);
    const auto cm = element_codes(make_format("nvfp4:variant=modelopt")->encode(x, {16, 256}));
    const auto ca = element_codes(make_format("nvfp4:variant=torchao")->encode(x, {16, 256}));
    for (size_t i = 0; i < cm.size(); ++i) differ += cm[i] != ca[i];
    check_against_reference("nvfp4:variant=modelopt", "modelopt", true, x, {16, 256});
  }
  EXPECT_GT(differ, 0);
}

TEST(Nvfp4, DecodeOfEncodeIsFakeQuantAndIdempotentInValue) {
  for (const char* s : {"nvfp4", "nvfp4:variant=torchao", "nvfp4:variant=modelopt", "nvfp4:tensor_scale=off",
                        "nvfp4:round=sr:seed=3", "nvfp4:variant=modelopt:round=sr:seed=4"}) {
    const auto f = make_format(s);
    const auto x = mixed(16 * 5000, 77, 2);  // 80000 values: the parallel path
    const Shape shape{50, 1600};
    const PackedTensor p = f->encode(x, shape);
    EXPECT_EQ(p.spec, f->spec());
    EXPECT_EQ(p.at("codes").bytes.size(), x.size() / 2);
    EXPECT_EQ(p.at("scales").shape, (Shape{50, 100}));
    std::vector<float> y(x.size()), z(x.size());
    f->decode(p, y);
    f->fake_quant(x, shape, z);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(y[i], z[i])) << s << " " << i;
    // Sign symmetry (RNE variants; ModelOpt maps -0 to +0, so compare values).
    if (std::string(s).find("sr") == std::string::npos) {
      std::vector<float> nx(x.size()), ny(x.size());
      for (size_t i = 0; i < x.size(); ++i) nx[i] = -x[i];
      f->fake_quant(nx, shape, ny);
      for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(ny[i], -y[i]) << s << " " << i;
    }
    EXPECT_EQ(make_format(f->spec())->spec(), f->spec());
  }
}

TEST(Nvfp4, StochasticRounding) {
  // TE with amax 2688 (S_enc = 1); blocks [12, 2.6 x 15]: enc = 0.5, 1.3 -> 1.5 with P = 0.6.
  const int nblocks = 4000;
  std::vector<float> x(16 * nblocks, 2.6f);
  for (int b = 0; b < nblocks; ++b) x[b * 16] = 12.0f;
  x[0] = 2688.0f;
  const auto f = make_format("nvfp4:round=sr:seed=99");
  std::vector<float> y(x.size());
  f->fake_quant(x, {nblocks, 16}, y);
  double sum = 0;
  int n = 0;
  for (int b = 1; b < nblocks; ++b) {
    EXPECT_EQ(y[b * 16], 12.0f);
    for (int i = 1; i < 16; ++i) {
      const float v = y[b * 16 + i];
      ASSERT_TRUE(v == 2.0f || v == 3.0f) << v;
      sum += v;
      ++n;
    }
  }
  EXPECT_NEAR(sum / n, 2.6, 0.01);  // sigma of the mean ~ 0.002
  std::vector<float> y2(x.size()), y3(x.size());
  f->fake_quant(x, {nblocks, 16}, y2);
  make_format("nvfp4:round=sr:seed=100")->fake_quant(x, {nblocks, 16}, y3);
  EXPECT_EQ(y, y2);
  EXPECT_NE(y, y3);
}

TEST(Nvfp4, OptionsShapesAndMetadata) {
  EXPECT_EQ(make_format("nvfp4:variant=te:tensor_scale=on:round=rne")->spec(), "nvfp4");
  EXPECT_EQ(make_format("nvfp4:round=sr:seed=5:variant=modelopt")->spec(), "nvfp4:variant=modelopt:round=sr:seed=5");
  EXPECT_EQ(make_format("nvfp4:variant=torchao:tensor_scale=off")->spec(), "nvfp4:variant=torchao:tensor_scale=off");
  EXPECT_THROW(make_format("nvfp4:variant=te:tensor_scale=off"), Error);
  EXPECT_THROW(make_format("nvfp4:variant=modelopt:tensor_scale=off"), Error);
  EXPECT_THROW(make_format("nvfp4:variant=cudnn"), Error);
  EXPECT_THROW(make_format("nvfp4:round=rna"), Error);
  EXPECT_THROW(make_format("nvfp4:tensor_scale=maybe"), Error);
  EXPECT_THROW(make_format("nvfp4:g32"), Error);
  const auto f = make_format("nvfp4");
  EXPECT_EQ(f->family(), "nvfp4");
  EXPECT_EQ(f->code_bits(), 4);
  EXPECT_EQ(f->bits_per_element({2, 32}), 4.5 + 0.5);
  EXPECT_EQ(f->bits_per_element({0, 32}), 4.5);
  EXPECT_EQ(make_format("nvfp4:tensor_scale=off")->bits_per_element({2, 32}), 4.5);
  EXPECT_EQ(make_format("nvfp4:tensor_scale=off")->limits().max_value, 2688.0);
  EXPECT_EQ(f->limits().max_value, static_cast<double>(FLT_MAX));
  std::vector<float> x(24, 1.0f), y(24);
  EXPECT_THROW(f->encode(x, {24}), Error);
  EXPECT_THROW(f->fake_quant(x, {2, 12}, y), Error);
  try {
    f->encode(x, {24});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible"), std::string::npos) << e.what();
  }
  // Empty tensors.
  for (const Shape& s : {Shape{0, 16}, Shape{4, 0}, Shape{0}}) {
    std::vector<float> e, o;
    const PackedTensor p = f->encode(e, s);
    EXPECT_EQ(shape_numel(p.at("scales").shape), 0);
    EXPECT_EQ(section_f32(p.at("tensor_scale"))[0], 1.0f);  // TE: amax 0 -> S_enc = 1
    f->decode(p, o);
    f->fake_quant(e, s, o);
  }
  // Malformed packed tensors are refused.
  std::vector<float> z(32, 1.0f), out(32);
  PackedTensor p = f->encode(z, {32});
  p.sections.pop_back();
  EXPECT_THROW(f->decode(p, out), Error);
  PackedTensor q = f->encode(z, {32});
  q.sections[1].shape = {3};
  EXPECT_THROW(f->decode(q, out), Error);
  EXPECT_THROW(make_format("nvfp4:variant=torchao")->decode(f->encode(z, {32}), out), Error);
}

// ---------------------------------------------------------------------------------------------
// The vectorised kernel against the scalar reference path (nvfp4_quantize with
// Nvfp4Path::Reference: nvfp4_block_scale, nvfp4_encode_element_as and the decode products,
// block by block), bit for bit on the tensor scale, block scales, packed codes and values.

namespace {

struct Nvfp4Run {
  Nvfp4Tensor t;
  std::vector<uint8_t> scales, codes;
  std::vector<float> values;
};

Nvfp4Run run_nvfp4(Nvfp4Variant v, bool two_level, const std::vector<float>& x, int64_t rows, int64_t cols,
                   Nvfp4Path path) {
  Nvfp4Run r;
  r.scales.assign(static_cast<size_t>(rows * cols / 16), 0xAB);
  r.codes.assign(static_cast<size_t>(rows * cols / 2), 0xCD);
  r.values.assign(static_cast<size_t>(rows * cols), -1.0f);
  r.t = nvfp4_quantize(v, two_level, Round::NearestEven, 0, x.data(), rows, cols, r.scales.data(), r.codes.data(),
                       r.values.data(), path);
  return r;
}

int compare_nvfp4(const Nvfp4Run& fast, const Nvfp4Run& ref, const std::string& what) {
  int bad = 0;
  if (!same_bits(fast.t.stored, ref.t.stored) && bad++ < 3) ADD_FAILURE() << what << ": tensor scale";
  for (size_t i = 0; i < ref.scales.size(); ++i)
    if (fast.scales[i] != ref.scales[i] && bad++ < 3)
      ADD_FAILURE() << what << ": scale " << i << " fast 0x" << std::hex << int{fast.scales[i]} << " ref 0x"
                    << int{ref.scales[i]};
  for (size_t i = 0; i < ref.codes.size(); ++i)
    if (fast.codes[i] != ref.codes[i] && bad++ < 3)
      ADD_FAILURE() << what << ": code byte " << i << " fast 0x" << std::hex << int{fast.codes[i]} << " ref 0x"
                    << int{ref.codes[i]};
  for (size_t i = 0; i < ref.values.size(); ++i)
    if (!same_bits(fast.values[i], ref.values[i]) && bad++ < 3)
      ADD_FAILURE() << what << ": value " << i << " fast 0x" << std::hex << f32_bits(fast.values[i]) << " ref 0x"
                    << f32_bits(ref.values[i]);
  return bad;
}

struct VariantCase {
  const char* name;
  Nvfp4Variant v;
  bool two_level;
};
const VariantCase kVariantCases[] = {{"te", Nvfp4Variant::Te, true},
                                     {"torchao", Nvfp4Variant::Torchao, true},
                                     {"modelopt", Nvfp4Variant::Modelopt, true},
                                     {"single", Nvfp4Variant::Torchao, false}};

// Blocks of many kinds for a variant, with element 0 = the tensor amax A: random magnitudes
// over many binades below A (random mantissa bits), zero blocks (signed zeros), fp32
// subnormals, E2M1 ties under the variant's own block multiplier (exact and +-1 or 2 ulps),
// block maxima at E4M3 midpoints of the scaled block scale, and blocks at A itself.
std::vector<float> stress_tensor(const VariantCase& vc, float A, int64_t nblocks, uint32_t seed) {
  std::mt19937 g(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); };
  auto sign = [&] { return (g() & 1) ? -1.0f : 1.0f; };
  const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const Nvfp4Tensor t = nvfp4_tensor(vc.v, vc.two_level, A);
  const int ea = std::ilogb(A);
  std::vector<float> x(static_cast<size_t>(nblocks) * 16);
  for (int64_t b = 0; b < nblocks; ++b) {
    float* v = x.data() + b * 16;
    const int kind = uni(0, 7);
    // Block amax at or below A.
    float bamax = std::ldexp(1.0f + std::ldexp(static_cast<float>(g() & 0x7fffffu), -23), ea - uni(0, 24));
    if (kind == 6) {  // near an E4M3 midpoint of the scaled block scale (A * s / 448 for TE)
      const uint32_t c = 0x01 + g() % 0x7d;
      const float mid = 0.5f * (decode_float(fmt_desc::e4m3, c) + decode_float(fmt_desc::e4m3, c + 1));
      bamax = f32_from_bits(f32_bits(mid * (vc.two_level ? A / 448.0f : 6.0f)) + static_cast<uint32_t>(uni(0, 4)) - 2u);
    }
    if (kind == 7) bamax = A;
    if (!(bamax <= A) || !std::isfinite(bamax)) bamax = A;
    switch (kind) {
      case 0:
      case 1:
        for (int i = 0; i < 16; ++i) v[i] = uni(0, 7) == 0 ? 0.0f * sign() : sign() * bamax * std::ldexp(static_cast<float>(g() % 4096), -12 - uni(0, 12));
        break;
      case 2:
        for (int i = 0; i < 16; ++i) v[i] = uni(0, 1) ? 0.0f : -0.0f;
        continue;
      case 3:
        for (int i = 0; i < 16; ++i) v[i] = sign() * f32_from_bits(g() % 0x00800000u);
        break;
      default: {
        // E2M1 ties under the block's multiplier m (TE, torchao: q = x * m; ModelOpt q = x / m).
        const Nvfp4BlockScale bs = nvfp4_block_scale(t, bamax);
        for (int i = 1; i < 16; ++i) {
          const float tie = ties[uni(0, 6)];
          float xi = vc.two_level && vc.v == Nvfp4Variant::Modelopt ? tie * bs.m : tie / bs.m;
          if (!std::isfinite(xi)) xi = 0.0f;
          xi = f32_from_bits(f32_bits(xi) + static_cast<uint32_t>(uni(0, 4)) - 2u);
          v[i] = std::fabs(xi) < bamax ? sign() * xi : 0.0f;
        }
        break;
      }
    }
    v[0] = sign() * bamax;
  }
  x[0] = A;
  return x;
}

}  // namespace

TEST(Nvfp4FastPath, MatchesReferenceOverTensorMagnitudes) {
  const int64_t rows = 32, cols = 512;  // 1024 blocks
  int cases = 0;
  for (const int te : {-149, -140, -138, -130, -126, -100, -30, -5, 0, 3, 12, 40, 100, 120, 126, 127}) {
    for (const float frac : {1.0f, 1.37f, 1.9999999f}) {
      const float A = std::ldexp(frac, te);
      if (A == 0.0f) continue;
      for (const VariantCase& vc : kVariantCases) {
        const std::vector<float> x = stress_tensor(vc, A, rows * cols / 16, 300 + cases);
        const std::string what = std::string(vc.name) + " amax=" + std::to_string(A) + " (2^" + std::to_string(te) + ")";
        const Nvfp4Run fast = run_nvfp4(vc.v, vc.two_level, x, rows, cols, Nvfp4Path::Auto);
        const Nvfp4Run ref = run_nvfp4(vc.v, vc.two_level, x, rows, cols, Nvfp4Path::Reference);
        ASSERT_EQ(compare_nvfp4(fast, ref, what), 0);
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 150);
}

// Degenerate tensors (all zero, amax / 2688 underflowing, NaN / Inf anywhere) and, for the
// single-level form, NaN and Inf blocks among ordinary ones.
TEST(Nvfp4FastPath, DegenerateTensorsAndNonFiniteBlocks) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> tensors;
  tensors.push_back(std::vector<float>(1024, 0.0f));
  std::vector<float> neg_zero(1024, 0.0f);
  for (size_t i = 0; i < neg_zero.size(); i += 3) neg_zero[i] = -0.0f;
  tensors.push_back(neg_zero);
  std::vector<float> tiny(1024, 0.0f);
  tiny[5] = std::ldexp(1.0f, -145);
  tiny[700] = -std::ldexp(3.0f, -149);
  tensors.push_back(tiny);
  for (const float bad : {nan, -nan, inf, -inf, f32_from_bits(0xff800123u)}) {
    std::vector<float> x = mixed(1024, 5, 3);
    x[77] = bad;
    x[300] = bad;
    tensors.push_back(x);
    x[301] = bad == bad ? nan : inf;
    tensors.push_back(x);
  }
  int i = 0;
  for (const auto& x : tensors) {
    for (const VariantCase& vc : kVariantCases) {
      const std::string what = std::string(vc.name) + " tensor " + std::to_string(i);
      const Nvfp4Run fast = run_nvfp4(vc.v, vc.two_level, x, 8, 128, Nvfp4Path::Auto);
      const Nvfp4Run ref = run_nvfp4(vc.v, vc.two_level, x, 8, 128, Nvfp4Path::Reference);
      ASSERT_EQ(compare_nvfp4(fast, ref, what), 0);
    }
    ++i;
  }
}

// Large tensors (the OpenMP path) through the tensor format, whose encode and fake_quant take
// the fast path, against the reference path.
TEST(Nvfp4FastPath, TensorFormatMatchesReferenceOnLargeTensors) {
  const int64_t rows = 48, cols = 2048;  // 98304 values: above the parallel threshold
  for (const VariantCase& vc : kVariantCases) {
    const std::string spec = !vc.two_level ? "nvfp4:tensor_scale=off" : spec_of(vc.name);
    const auto f = make_format(spec);
    for (const float A : {std::ldexp(1.3f, -20), 3.7f, std::ldexp(1.9f, 90)}) {
      const std::vector<float> x = stress_tensor(vc, A, rows * cols / 16, 17);
      const Nvfp4Run ref = run_nvfp4(vc.v, vc.two_level, x, rows, cols, Nvfp4Path::Reference);
      const PackedTensor p = f->encode(x, {rows, cols});
      ASSERT_EQ(p.at("codes").bytes, ref.codes) << spec;
      ASSERT_EQ(p.at("scales").bytes, ref.scales) << spec;
      if (vc.two_level) {
        ASSERT_TRUE(same_bits(section_f32(p.at("tensor_scale"))[0], ref.t.stored)) << spec;
      }
      std::vector<float> y(x.size()), z(x.size());
      f->fake_quant(x, {rows, cols}, y);
      f->decode(p, z);
      for (size_t k = 0; k < x.size(); ++k) {
        ASSERT_TRUE(same_bits(y[k], ref.values[k])) << spec << " " << k << " x=" << x[k];
        ASSERT_TRUE(same_bits(z[k], ref.values[k])) << spec << " " << k << " x=" << x[k];
      }
    }
  }
}

// Stochastic rounding takes the reference path: Auto and Reference agree.
TEST(Nvfp4FastPath, StochasticRoundingMatchesTheReferencePath) {
  const std::vector<float> x = mixed(16 * 512, 8, 0);
  for (const VariantCase& vc : kVariantCases) {
    std::vector<uint8_t> ca(x.size() / 2), cb(x.size() / 2), sa(x.size() / 16), sb(x.size() / 16);
    std::vector<float> va(x.size()), vb(x.size());
    nvfp4_quantize(vc.v, vc.two_level, Round::Stochastic, 7, x.data(), 16, 512, sa.data(), ca.data(), va.data());
    nvfp4_quantize(vc.v, vc.two_level, Round::Stochastic, 7, x.data(), 16, 512, sb.data(), cb.data(), vb.data(),
                   Nvfp4Path::Reference);
    EXPECT_EQ(ca, cb) << vc.name;
    EXPECT_EQ(sa, sb) << vc.name;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(va[i], vb[i])) << vc.name << " " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// The vectorised kernel with stochastic rounding (Nvfp4Path::Auto, round=sr) against the
// reference path, bit for bit, every variant, several seeds.

namespace {

Nvfp4Run run_nvfp4_sr(Nvfp4Variant v, bool two_level, uint64_t seed, const std::vector<float>& x, int64_t rows,
                      int64_t cols, Nvfp4Path path) {
  Nvfp4Run r;
  r.scales.assign(static_cast<size_t>(rows * cols / 16), 0xAB);
  r.codes.assign(static_cast<size_t>(rows * cols / 2), 0xCD);
  r.values.assign(static_cast<size_t>(rows * cols), -1.0f);
  r.t = nvfp4_quantize(v, two_level, Round::Stochastic, seed, x.data(), rows, cols, r.scales.data(), r.codes.data(),
                       r.values.data(), path);
  return r;
}

const uint64_t kSeeds[] = {0, 7, 0xfedcba9876543210ull};

}  // namespace

TEST(Nvfp4FastPathSr, MatchesReferenceOverTensorMagnitudesAndSeeds) {
  const int64_t rows = 16, cols = 512;  // 512 blocks
  int cases = 0;
  for (const int te : {-149, -138, -126, -100, -30, 0, 3, 40, 120, 127}) {
    for (const float frac : {1.0f, 1.37f, 1.9999999f}) {
      const float A = std::ldexp(frac, te);
      if (A == 0.0f) continue;
      for (const VariantCase& vc : kVariantCases) {
        const std::vector<float> x = stress_tensor(vc, A, rows * cols / 16, 900 + cases);
        for (const uint64_t seed : kSeeds) {
          const std::string what = std::string(vc.name) + " sr seed=" + std::to_string(seed) + " amax=2^" +
                                   std::to_string(te) + "*" + std::to_string(frac);
          const Nvfp4Run fast = run_nvfp4_sr(vc.v, vc.two_level, seed, x, rows, cols, Nvfp4Path::Auto);
          const Nvfp4Run ref = run_nvfp4_sr(vc.v, vc.two_level, seed, x, rows, cols, Nvfp4Path::Reference);
          ASSERT_EQ(compare_nvfp4(fast, ref, what), 0);
        }
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 100);
}

// Degenerate tensors (reference path inside Auto) and, single level, NaN / Inf blocks among
// ordinary ones; odd row lengths (random bits of a row starting at any index mod 4).
TEST(Nvfp4FastPathSr, DegenerateTensorsNonFiniteBlocksAndRowShapes) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> tensors;
  tensors.push_back(std::vector<float>(1680, 0.0f));
  std::vector<float> tiny(1680, 0.0f);
  tiny[5] = std::ldexp(1.0f, -145);
  tiny[700] = -std::ldexp(3.0f, -149);
  tensors.push_back(tiny);
  tensors.push_back(mixed(1680, 11, 0));
  for (const float bad : {nan, -inf, f32_from_bits(0xff800123u)}) {
    std::vector<float> x = mixed(1680, 5, 3);
    x[77] = bad;
    x[300] = -bad;
    tensors.push_back(x);
  }
  int i = 0;
  for (const auto& x : tensors) {
    for (const VariantCase& vc : kVariantCases) {
      for (const int64_t cols : {int64_t{16}, int64_t{48}, int64_t{80}, int64_t{560}}) {
        const int64_t rows = 1680 / cols;
        for (const uint64_t seed : kSeeds) {
          const std::string what = std::string(vc.name) + " tensor " + std::to_string(i) + " cols " +
                                   std::to_string(cols) + " seed " + std::to_string(seed);
          const Nvfp4Run fast = run_nvfp4_sr(vc.v, vc.two_level, seed, x, rows, cols, Nvfp4Path::Auto);
          const Nvfp4Run ref = run_nvfp4_sr(vc.v, vc.two_level, seed, x, rows, cols, Nvfp4Path::Reference);
          ASSERT_EQ(compare_nvfp4(fast, ref, what), 0);
        }
      }
    }
    ++i;
  }
}

// Large tensors (the OpenMP path) through the tensor format with round=sr: encode, fake_quant
// and decode(encode) against the reference path.
TEST(Nvfp4FastPathSr, TensorFormatMatchesReferenceOnLargeTensors) {
  const int64_t rows = 48, cols = 2048;  // 98304 values: above the parallel threshold
  for (const VariantCase& vc : kVariantCases) {
    const std::string spec =
        (!vc.two_level ? std::string("nvfp4:tensor_scale=off") : spec_of(vc.name)) + ":round=sr:seed=424242";
    const auto f = make_format(spec);
    for (const float A : {std::ldexp(1.3f, -20), 3.7f, std::ldexp(1.9f, 90)}) {
      const std::vector<float> x = stress_tensor(vc, A, rows * cols / 16, 18);
      const Nvfp4Run ref = run_nvfp4_sr(vc.v, vc.two_level, 424242, x, rows, cols, Nvfp4Path::Reference);
      const PackedTensor p = f->encode(x, {rows, cols});
      ASSERT_EQ(p.at("codes").bytes, ref.codes) << spec;
      ASSERT_EQ(p.at("scales").bytes, ref.scales) << spec;
      std::vector<float> y(x.size()), z(x.size());
      f->fake_quant(x, {rows, cols}, y);
      f->decode(p, z);
      for (size_t k = 0; k < x.size(); ++k) {
        ASSERT_TRUE(same_bits(y[k], ref.values[k])) << spec << " " << k << " x=" << x[k];
        ASSERT_TRUE(same_bits(z[k], ref.values[k])) << spec << " " << k << " x=" << x[k];
      }
    }
  }
}
