// OCP MX block formats (formats/mx.hpp, formats/mx.cpp): the FORMATS.md §4.2/§4.3 worked
// vectors, the scale rules against each other, specials (zero / NaN / Inf blocks, fp32
// subnormals, clamping), MXINT8, packing, fake quantisation against an independent
// brute-force reference, properties and stochastic rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "formats/error.hpp"
#include "formats/fast_float.hpp"
#include "formats/float_format.hpp"
#include "formats/mx.hpp"
#include "formats/philox.hpp"
#include "formats/registry.hpp"
#include "formats/tensor_format.hpp"

using namespace lowbit;

namespace {

struct Named {
  const char* name;
  MxElement el;
};
const Named kAll[] = {{"mxfp8_e4m3", mx_elem::e4m3}, {"mxfp8_e5m2", mx_elem::e5m2}, {"mxfp6_e2m3", mx_elem::e2m3},
                      {"mxfp6_e3m2", mx_elem::e3m2}, {"mxfp4", mx_elem::e2m1},      {"mxint8", mx_elem::int8}};
const MxScaleRule kRules[] = {MxScaleRule::Floor, MxScaleRule::Rceil, MxScaleRule::Ceil, MxScaleRule::Even};

bool same_bits(float a, float b) { return f32_bits(a) == f32_bits(b); }

std::vector<float> fq(const std::string& spec, const std::vector<float>& x, const Shape& shape) {
  const auto f = make_format(spec);
  std::vector<float> y(x.size());
  f->fake_quant(x, shape, y);
  return y;
}

// A block of 32: the given head, then zeros.
std::vector<float> block(std::initializer_list<float> head) {
  std::vector<float> v(head);
  v.resize(32, 0.0f);
  return v;
}

uint32_t scale_of(const PackedTensor& p, size_t i = 0) { return section_u32(p.at("scales"))[i]; }

// Random data spanning many binades, with per-block magnitudes and some exact zeros.
std::vector<float> mixed(size_t n, uint32_t seed, int emin = -20, int emax = 20) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> be(emin, emax), de(-12, 0), z(0, 19);
  std::uniform_real_distribution<float> m(1.0f, 2.0f);
  std::vector<float> v(n);
  int block_e = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i % 32 == 0) block_e = be(g);
    const float s = (g() & 1) ? -1.0f : 1.0f;
    v[i] = z(g) == 0 ? 0.0f : s * std::ldexp(m(g), block_e + de(g));
  }
  return v;
}

// Independent reference: every element value of a format in double, nearest by brute force,
// ties to the even code, saturating; sign from the input (-0 for negatives that round to 0).
std::vector<double> element_values(const MxElement& el) {
  std::vector<double> v;
  if (el.int8) {
    for (int k = 0; k <= 127; ++k) v.push_back(k / 64.0);
    return v;
  }
  const FloatFormat& f = el.fp;
  for (uint32_t c = 0; c <= f.max_finite_code(); ++c) {
    const uint32_t ef = c >> f.mbits, mf = c & ((1u << f.mbits) - 1);
    const int e = static_cast<int>(ef) - f.bias;
    v.push_back(ef == 0 ? std::ldexp(static_cast<double>(mf), 1 - f.bias - f.mbits)
                        : std::ldexp(1.0 + std::ldexp(static_cast<double>(mf), -f.mbits), e));
  }
  return v;
}

double ref_round(double t, const std::vector<double>& vals) {
  const double a = std::fabs(t);
  size_t best = 0;
  for (size_t c = 1; c < vals.size(); ++c) {
    const double d = std::fabs(a - vals[c]), db = std::fabs(a - vals[best]);
    if (d < db || (d == db && (c & 1) == 0)) best = c;
  }
  return std::signbit(t) ? -vals[best] : vals[best];
}

// Reference FLOOR / RCEIL scale exponents (unbiased), from frexp in double.
int ref_floor_exp(double amax, const MxElement& el) {
  int e;
  std::frexp(amax, &e);  // amax = f * 2^e, f in [0.5, 1)
  return std::max(-127, std::min(127, (e - 1) - el.emax()));
}
int ref_rceil_exp(float amax, const MxElement& el) {
  const float d = amax * (1.0f / static_cast<float>(el.int8 ? 127.0 / 64.0 : element_values(el).back()));
  if (d == 0.0f) return -127;
  int e;
  const double f = std::frexp(static_cast<double>(d), &e);
  const int up = f == 0.5 ? e - 1 : e;  // smallest k with 2^k >= d
  return std::max(-127, std::min(127, up));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Scale rules

TEST(MxScale, ConstantsAndEmax) {
  EXPECT_EQ(f32_bits(1.0f / 448.0f), 0x3B124925u);
  EXPECT_EQ(f32_bits(1.0f / 6.0f), 0x3E2AAAABu);
  EXPECT_EQ(mx_elem::e4m3.emax(), 8);
  EXPECT_EQ(mx_elem::e5m2.emax(), 15);
  EXPECT_EQ(mx_elem::e3m2.emax(), 4);
  EXPECT_EQ(mx_elem::e2m3.emax(), 2);
  EXPECT_EQ(mx_elem::e2m1.emax(), 2);
  EXPECT_EQ(mx_elem::int8.emax(), 0);
  EXPECT_EQ(mx_element_max(mx_elem::e4m3), 448.0f);
  EXPECT_EQ(mx_element_max(mx_elem::e5m2), 57344.0f);
  EXPECT_EQ(mx_element_max(mx_elem::e2m3), 7.5f);
  EXPECT_EQ(mx_element_max(mx_elem::e3m2), 28.0f);
  EXPECT_EQ(mx_element_max(mx_elem::e2m1), 6.0f);
  EXPECT_EQ(mx_element_max(mx_elem::int8), 127.0f / 64.0f);
  EXPECT_EQ(e8m0_value(0x00), std::ldexp(1.0f, -127));
  EXPECT_EQ(f32_bits(e8m0_value(0x00)), 0x00400000u);
  EXPECT_EQ(e8m0_value(0x7F), 1.0f);
  EXPECT_EQ(e8m0_value(0xFE), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(e8m0_value(0xFF)));
}

// FORMATS.md §4.2 worked vectors (ao #2035).
TEST(MxScale, WorkedVectorE4m3Amax150) {
  EXPECT_EQ(mx_scale_e8m0(150.0f, MxScaleRule::Floor, mx_elem::e4m3), 0x7E);
  EXPECT_EQ(mx_scale_e8m0(150.0f, MxScaleRule::Rceil, mx_elem::e4m3), 0x7E);
  EXPECT_EQ(mx_scale_e8m0(150.0f, MxScaleRule::Ceil, mx_elem::e4m3), 0x7F);
  EXPECT_EQ(mx_scale_e8m0(150.0f, MxScaleRule::Even, mx_elem::e4m3), 0x7E);  // 1.171875 * 2^7 stays
  EXPECT_EQ(mx_scale_e8m0(-150.0f, MxScaleRule::Floor, mx_elem::e4m3), 0x7E);  // |amax|
}

TEST(MxScale, SpecialAmax) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const MxScaleRule r : kRules) {
    for (const auto& n : kAll) {
      EXPECT_EQ(mx_scale_e8m0(0.0f, r, n.el), 0x00);
      EXPECT_EQ(mx_scale_e8m0(-0.0f, r, n.el), 0x00);
      EXPECT_EQ(mx_scale_e8m0(nan, r, n.el), 0xFF);
      EXPECT_EQ(mx_scale_e8m0(nan, r, n.el, true), 0xFF);
      EXPECT_EQ(mx_scale_e8m0(inf, r, n.el), 0xFF);
      EXPECT_EQ(mx_scale_e8m0(inf, r, n.el, true), 0xFE);
      // The largest finite amax never reaches NaN.
      EXPECT_LE(mx_scale_e8m0(std::numeric_limits<float>::max(), r, n.el), 0xFE);
      // shared_exp < -127 clamps to 0x00, fp32 subnormal amax included.
      EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.0f, -130), r, n.el), 0x00) << n.name;
      EXPECT_EQ(mx_scale_e8m0(std::numeric_limits<float>::denorm_min(), r, n.el), 0x00) << n.name;
    }
  }
  // FLOOR of FLT_MAX: 127 - emax.
  EXPECT_EQ(mx_scale_e8m0(std::numeric_limits<float>::max(), MxScaleRule::Floor, mx_elem::e4m3), 127 - 8 + 127);
  EXPECT_EQ(mx_scale_e8m0(std::numeric_limits<float>::max(), MxScaleRule::Floor, mx_elem::int8), 0xFE);
  // RCEIL saturates at 0xFE; EVEN's rounding past FLT_MAX reads field 255 and clamps.
  EXPECT_EQ(mx_scale_e8m0(std::numeric_limits<float>::max(), MxScaleRule::Rceil, mx_elem::int8), 0xFE);
  EXPECT_EQ(mx_scale_e8m0(std::numeric_limits<float>::max(), MxScaleRule::Even, mx_elem::int8), 0xFE);
  EXPECT_EQ(mx_scale_e8m0(std::numeric_limits<float>::max(), MxScaleRule::Ceil, mx_elem::int8), 0xFE);
}

TEST(MxScale, Fp32SubnormalAmax) {
  // FLOOR uses the exact floor(log2) of a subnormal: 2^-127 with INT8 (emax 0) is e = 0.
  EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.0f, -127), MxScaleRule::Floor, mx_elem::int8), 0x00);
  EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.0f, -126), MxScaleRule::Floor, mx_elem::int8), 0x01);
  EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.5f, -127), MxScaleRule::Floor, mx_elem::int8), 0x00);
  // CEIL: exact ceil(log2): 1.5 * 2^-127 -> -126 -> 0x01; 2^-127 -> 0x00.
  EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.5f, -127), MxScaleRule::Ceil, mx_elem::int8), 0x01);
  EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.0f, -127), MxScaleRule::Ceil, mx_elem::int8), 0x00);
  // RCEIL on a subnormal descale: > 2^-127 rounds up to 0x01 (TE / CUDA RP: 6e-39 -> 0x01).
  const float below = std::nextafter(std::ldexp(1.0f, -126), 0.0f);  // largest subnormal
  EXPECT_EQ(mx_scale_e8m0(below, MxScaleRule::Rceil, mx_elem::int8), 0x01);  // * 0.5039 > 2^-127
  EXPECT_EQ(mx_scale_e8m0(below, MxScaleRule::Rceil, mx_elem::e4m3), 0x00);
  // EVEN: 2^-126 - 2^-149 plus 2^(22-6) carries into the normal range: field 1 -> e = -126.
  EXPECT_EQ(mx_scale_e8m0(below, MxScaleRule::Even, mx_elem::int8), 0x01);
  EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.0f, -140), MxScaleRule::Even, mx_elem::int8), 0x00);
}

// FORMATS.md §4.2: for normal amax, RCEIL = FLOOR + [sig(amax) > sig(max_elem)], as long as
// neither clamps. Random amax of every binade plus the boundaries max * 2^k, 2^k and their
// neighbours. MXINT8 (sig(max) = 127/64, not in the §4.2 list) has one exception per binade:
// amax = (127/64 + 2^-23) * 2^k gives fl32(amax * fl32(64/127)) = 2^k exactly, so RCEIL stays
// at FLOOR there (harmless: amax / X * 64 = 127.00001 rounds to 127).
TEST(MxScale, RceilIsFloorPlusSignificandTest) {
  std::mt19937 g(2024);
  for (const auto& n : kAll) {
    const uint32_t max_sig = f32_bits(mx_element_max(n.el)) & 0x7fffffu;
    const uint32_t threshold = n.el.int8 ? max_sig + 1 : max_sig;
    std::vector<float> amax;
    const int lo = -125 + n.el.emax(), hi = 126 + n.el.emax() > 127 ? 127 : 126 + n.el.emax();
    for (int k = lo; k <= hi; ++k) {
      const float p = std::ldexp(1.0f, k);
      const float m = std::ldexp(f32_from_bits(0x3f800000u | max_sig), k);
      for (const float v : {p, m}) {
        amax.push_back(v);
        amax.push_back(std::nextafter(v, 0.0f));
        amax.push_back(std::nextafter(v, std::numeric_limits<float>::infinity()));
        amax.push_back(std::nextafter(std::nextafter(v, 0.0f), 0.0f));
      }
      for (int r = 0; r < 50; ++r) amax.push_back(f32_from_bits((static_cast<uint32_t>(k + 127) << 23) | (g() & 0x7fffffu)));
    }
    int checked = 0;
    for (const float a : amax) {
      const int e = static_cast<int>(f32_bits(a) >> 23) - 127;
      if (e < lo || e > hi || a >= std::numeric_limits<float>::infinity()) continue;
      const int floor_e = mx_scale_e8m0(a, MxScaleRule::Floor, n.el);
      const int want = floor_e + ((f32_bits(a) & 0x7fffffu) > threshold ? 1 : 0);
      if (want > 0xFE) continue;
      ASSERT_EQ(mx_scale_e8m0(a, MxScaleRule::Rceil, n.el), want) << n.name << " amax=" << a;
      ++checked;
    }
    EXPECT_GT(checked, 10000) << n.name;
  }
  for (int k = -100; k <= 100; ++k) {
    const float a = std::ldexp(127.0f / 64 + std::ldexp(1.0f, -23), k);
    EXPECT_EQ(mx_scale_e8m0(a, MxScaleRule::Rceil, mx_elem::int8), mx_scale_e8m0(a, MxScaleRule::Floor, mx_elem::int8));
    EXPECT_EQ(f32_bits(a * (1.0f / (127.0f / 64))), f32_bits(std::ldexp(1.0f, k)));
  }
}

// FLOOR, RCEIL against the double-precision reference over random amax; CEIL = FLOOR + [not a
// power of two]; EVEN = FLOOR of amax rounded to the element's mantissa width.
TEST(MxScale, RulesMatchReference) {
  std::mt19937 g(7);
  for (const auto& n : kAll) {
    for (int i = 0; i < 20000; ++i) {
      const float a = f32_from_bits(g() % 0x7f800000u);
      if (a == 0.0f) continue;
      const int fl = mx_scale_e8m0(a, MxScaleRule::Floor, n.el);
      ASSERT_EQ(fl, ref_floor_exp(a, n.el) + 127) << n.name << " " << a;
      ASSERT_EQ(mx_scale_e8m0(a, MxScaleRule::Rceil, n.el), ref_rceil_exp(a, n.el) + 127) << n.name << " " << a;
      int e;
      const double f = std::frexp(static_cast<double>(a), &e);
      const int ceil_e = std::max(-127, std::min(127, (f == 0.5 ? e - 1 : e) - n.el.emax()));
      ASSERT_EQ(mx_scale_e8m0(a, MxScaleRule::Ceil, n.el), ceil_e + 127) << n.name << " " << a;
      // EVEN: exponent goes up iff the significand rounds (half up) to 2 at mbits bits.
      if (a >= std::ldexp(1.0f, -126)) {
        const double sig = 2.0 * f;  // [1, 2)
        const bool up = sig >= 2.0 - std::ldexp(1.0, -(n.el.mbits() + 1));
        const int even_e = std::max(-127, std::min(127, (e - 1) + (up ? 1 : 0) - n.el.emax()));
        ASSERT_EQ(mx_scale_e8m0(a, MxScaleRule::Even, n.el), even_e + 127) << n.name << " " << a;
      }
    }
  }
}

// microxcaling's PyTorch floor(log2) is off by one just below a power of two (§4.3); the bit
// pattern is exact: a block max of 2^k (1 - 2^-24) gives shared exponent k - 1 - emax.
TEST(MxScale, FloorJustBelowPowerOfTwo) {
  for (const auto& n : kAll) {
    for (int k = -30; k <= 30; ++k) {
      const float a = std::ldexp(1.0f - std::ldexp(1.0f, -24), k);
      ASSERT_EQ(a, std::nextafter(std::ldexp(1.0f, k), 0.0f));
      EXPECT_EQ(mx_scale_e8m0(a, MxScaleRule::Floor, n.el), k - 1 - n.el.emax() + 127) << n.name << " k=" << k;
      EXPECT_EQ(mx_scale_e8m0(std::ldexp(1.0f, k), MxScaleRule::Floor, n.el), k - n.el.emax() + 127);
    }
    // Through the tensor format too.
    const auto f = make_format(n.name);
    std::vector<float> x(32 * 61, 0.0f);
    for (int k = -30; k <= 30; ++k) x[(k + 30) * 32 + 5] = -std::ldexp(1.0f - std::ldexp(1.0f, -24), k);
    const PackedTensor p = f->encode(x, {61, 32});
    const auto sc = section_u32(p.at("scales"));
    for (int k = -30; k <= 30; ++k) EXPECT_EQ(sc[k + 30], static_cast<uint32_t>(k - 1 - n.el.emax() + 127));
  }
}

// ---------------------------------------------------------------------------------------------
// Worked element vectors

TEST(Mx, WorkedVectorE4m3Amax470) {
  const auto x = block({470.0f, 104.0f});
  const auto pf = make_format("mxfp8_e4m3")->encode(x, {32});
  const auto pr = make_format("mxfp8_e4m3:scale=rceil")->encode(x, {32});
  EXPECT_EQ(scale_of(pf), 0x7Fu);  // X = 1
  EXPECT_EQ(scale_of(pr), 0x80u);  // X = 2
  EXPECT_EQ(fq("mxfp8_e4m3", x, {32})[0], 448.0f);              // 470 saturates
  EXPECT_EQ(fq("mxfp8_e4m3:scale=rceil", x, {32})[0], 480.0f);  // 235 -> 240 -> 480
  EXPECT_EQ(fq("mxfp8_e4m3:scale=rceil", x, {32})[1], 104.0f);  // 52 exact
  EXPECT_EQ(fq("mxfp8_e4m3:scale=rceil", block({470.0f, 100.0f}), {32})[1], 96.0f);  // 50 ties to 48
  EXPECT_EQ(element_codes(pf)[0], 0x7Eu);
  EXPECT_EQ(element_codes(pr)[0], 0x77u);  // 240 = 1.875 * 2^7: E = 14, M = 7
}

TEST(Mx, WorkedVectorE2m1Amax7) {
  const auto x = block({7.0f, -1.0f});
  EXPECT_EQ(fq("mxfp4", x, {32})[0], 6.0f);  // FLOOR: X = 1, 7 clamps to 6
  for (const char* s : {"mxfp4:scale=rceil", "mxfp4:scale=ceil", "mxfp4:scale=even"}) {
    const auto y = fq(s, x, {32});
    EXPECT_EQ(y[0], 8.0f) << s;  // X = 2: 3.5 ties to 4
    EXPECT_EQ(y[1], -1.0f) << s;
    EXPECT_EQ(scale_of(make_format(s)->encode(x, {32})), 0x80u) << s;
  }
}

// §4.3: microxcaling (half away) vs RNE, block max 485 -> X = 1, 400 -> 416 vs 384.
TEST(Mx, HalfAwayVersusEven485) {
  const auto x = block({485.0f, 400.0f, -400.0f});
  const auto rne = fq("mxfp8_e4m3", x, {32});
  const auto rna = fq("mxfp8_e4m3:round=rna", x, {32});
  EXPECT_EQ(scale_of(make_format("mxfp8_e4m3")->encode(x, {32})), 0x7Fu);
  EXPECT_EQ(rne[0], 448.0f);  // 485 clamps to the E4M3 max
  EXPECT_EQ(rne[1], 384.0f);
  EXPECT_EQ(rne[2], -384.0f);
  EXPECT_EQ(rna[0], 448.0f);
  EXPECT_EQ(rna[1], 416.0f);
  EXPECT_EQ(rna[2], -416.0f);
  EXPECT_EQ(fq("mxfp8_e4m3:round=rz", x, {32})[1], 384.0f);
  EXPECT_EQ(fq("mxfp8_e4m3:round=ru", x, {32})[2], -384.0f);
  EXPECT_EQ(fq("mxfp8_e4m3:round=rd", x, {32})[2], -416.0f);
}

// ---------------------------------------------------------------------------------------------
// Specials

TEST(Mx, ZeroBlock) {
  for (const auto& n : kAll) {
    const auto f = make_format(n.name);
    std::vector<float> x(64, 0.0f);
    x[40] = 3.0f;  // second block non-zero
    const PackedTensor p = f->encode(x, {2, 32});
    EXPECT_EQ(scale_of(p, 0), 0x00u) << n.name;
    const auto codes = element_codes(p);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(codes[i], 0u) << n.name;
    std::vector<float> y(64);
    f->decode(p, y);
    for (int i = 0; i < 32; ++i) EXPECT_TRUE(same_bits(y[i], 0.0f));
    EXPECT_EQ(y[40], 3.0f) << n.name;
  }
}

TEST(Mx, NanInBlockMakesBlockNan) {
  for (const auto& n : kAll) {
    for (const MxScaleRule r : kRules) {
      const std::string spec = std::string(n.name) + ":scale=" + mx_scale_rule_name(r);
      const auto f = make_format(spec);
      std::vector<float> x = mixed(96, 3);
      x[37] = -std::numeric_limits<float>::quiet_NaN();
      const PackedTensor p = f->encode(x, {96});
      EXPECT_EQ(scale_of(p, 1), 0xFFu);
      EXPECT_NE(scale_of(p, 0), 0xFFu);
      std::vector<float> y(96);
      f->decode(p, y);
      for (int i = 32; i < 64; ++i) EXPECT_TRUE(std::isnan(y[i])) << spec << " " << i;
      for (int i = 0; i < 32; ++i) EXPECT_FALSE(std::isnan(y[i]));
      for (int i = 64; i < 96; ++i) EXPECT_FALSE(std::isnan(y[i]));
      for (int i = 32; i < 64; ++i) EXPECT_EQ(element_codes(p)[i], 0u);  // codes of a NaN block: 0
      // Inf together with NaN: NaN wins even with inf=sat.
      x[40] = std::numeric_limits<float>::infinity();
      EXPECT_EQ(scale_of(make_format(spec + ":inf=sat")->encode(x, {96}), 1), 0xFFu);
    }
  }
}

TEST(Mx, InfInBlock) {
  const float inf = std::numeric_limits<float>::infinity();
  const auto x = block({1.0f, -inf, 448.0f, inf});
  for (const char* s : {"mxfp8_e4m3", "mxfp8_e4m3:scale=rceil"}) {
    // Default inf=nan: the block is NaN (torchao FLOOR, microxcaling).
    const auto y = fq(s, x, {32});
    for (const float v : y) EXPECT_TRUE(std::isnan(v)) << s;
  }
  for (const char* s : {"mxfp8_e4m3:inf=sat", "mxfp8_e4m3:scale=rceil:inf=sat"}) {
    // TE (Blackwell, satfinite): scale 0xFE, Inf saturates to +-448, the rest is tiny / 2^127.
    const auto f = make_format(s);
    const PackedTensor p = f->encode(x, {32});
    EXPECT_EQ(scale_of(p), 0xFEu) << s;
    const auto c = element_codes(p);
    EXPECT_EQ(c[1], 0xFEu);
    EXPECT_EQ(c[3], 0x7Eu);
    EXPECT_EQ(c[0], 0x00u);  // 2^-127 underflows E4M3
    EXPECT_EQ(c[2], 0x00u);  // 448 * 2^-127 too
    std::vector<float> y(32);
    f->decode(p, y);
    EXPECT_EQ(y[1], -inf);  // 448 * 2^127 is beyond fp32
    EXPECT_EQ(y[3], inf);
    EXPECT_EQ(y[0], 0.0f);
  }
  // MXINT8 with inf=sat: k = +-127.
  const auto p = make_format("mxint8:inf=sat")->encode(x, {32});
  EXPECT_EQ(element_codes(p)[1], 0x81u);
  EXPECT_EQ(element_codes(p)[3], 0x7Fu);
  EXPECT_EQ(element_codes(make_format("mxint8:inf=sat:int8_min=-128")->encode(x, {32}))[1], 0x80u);
}

TEST(Mx, Fp32SubnormalInputs) {
  const float dmin = std::numeric_limits<float>::denorm_min();
  const std::vector<float> x = block({1e-40f, -3e-39f, 7 * dmin, 5.5e-39f, -dmin, 1.17e-38f});
  for (const auto& n : kAll) {
    if (n.el.int8) continue;
    const std::vector<double> vals = element_values(n.el);
    const auto f = make_format(n.name);
    const PackedTensor p = f->encode(x, {32});
    ASSERT_EQ(scale_of(p), 0x00u) << n.name;  // floor(log2 1.17e-38) = -127 - emax < -127
    std::vector<float> y(32), z(32);
    f->decode(p, y);
    f->fake_quant(x, {32}, z);
    for (int i = 0; i < 32; ++i) {
      // x * 2^127 is exact in fp32 and double; round it with the brute-force reference.
      const double want = std::ldexp(ref_round(std::ldexp(static_cast<double>(x[i]), 127), vals), -127);
      EXPECT_EQ(static_cast<double>(y[i]), want) << n.name << " " << x[i];
      EXPECT_TRUE(same_bits(y[i], z[i]));
    }
    // flush_subnormals (microxcaling mx_flush_fp32_subnorms): the block is a zero block.
    const auto pf = make_format(std::string(n.name) + ":flush_subnormals")->encode(x, {32});
    EXPECT_EQ(scale_of(pf), 0x00u);
    for (const uint32_t c : element_codes(pf)) EXPECT_EQ(c, 0u);
  }
  // A normal amax keeps subnormal neighbours even with flush_subnormals (X = 2^-126 here).
  const auto xi = block({std::ldexp(1.0f, -126), std::ldexp(1.0f, -127), -std::ldexp(3.0f, -132)});
  const auto y = fq("mxint8:flush_subnormals", xi, {32});
  EXPECT_EQ(y[0], std::ldexp(1.0f, -126));
  EXPECT_EQ(y[1], std::ldexp(1.0f, -127));
  EXPECT_EQ(y[2], -std::ldexp(3.0f, -132));  // k = -3 at 2^-132
}

TEST(Mx, SharedExponentBelowMinusOneTwentySevenClamps) {
  // E4M3: amax 2^-120 -> shared exp -128 -> 0x00; elements are exact at 2^-127 * {128, 96, ...}.
  const auto x = block({std::ldexp(1.0f, -120), std::ldexp(-1.5f, -121), std::ldexp(1.0f, -136)});
  const auto f = make_format("mxfp8_e4m3");
  const PackedTensor p = f->encode(x, {32});
  EXPECT_EQ(scale_of(p), 0x00u);
  std::vector<float> y(32);
  f->decode(p, y);
  EXPECT_EQ(y[0], x[0]);
  EXPECT_EQ(y[1], x[1]);
  EXPECT_EQ(y[2], x[2]);  // 2^-136 = E4M3 min subnormal 2^-9 at 2^-127
  // E5M2: 2^-150 * 2^127 ... the scale stays 0x00 and the element 2^-140 is exact.
  EXPECT_EQ(fq("mxfp8_e5m2", block({std::ldexp(1.0f, -140)}), {32})[0], std::ldexp(1.0f, -140));
}

// ---------------------------------------------------------------------------------------------
// MXINT8

TEST(MxInt8, BlockMaxNeverSaturates) {
  // Trap 8: universal's mxint8 gives [0.992, 0.992, -1.0, ...]; OCP / microxcaling keep 1.9.
  std::vector<float> x = block({1.9f, 1.0f, -1.5f, 0.3f, -0.01f, 1.4f, -1.89f});
  const auto f = make_format("mxint8");
  const PackedTensor p = f->encode(x, {32});
  EXPECT_EQ(scale_of(p), 0x7Fu);  // X = 1
  std::vector<float> y(32);
  f->decode(p, y);
  for (int i = 0; i < 32; ++i) EXPECT_LE(std::fabs(y[i] - x[i]), 1.0f / 128) << i;
  EXPECT_EQ(y[0], 122.0f / 64);  // 1.9 * 64 = 121.6 -> 122
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[2], -1.5f);
  const auto c = element_codes(p);
  EXPECT_EQ(c[0], 122u);
  EXPECT_EQ(c[2], static_cast<uint32_t>(256 - 96));  // -96 two's complement
  // Scaled: the same block times 2^10 keeps the same codes under X = 2^10.
  for (auto& v : x) v *= 1024.0f;
  const PackedTensor p2 = f->encode(x, {32});
  EXPECT_EQ(scale_of(p2), 0x89u);
  EXPECT_EQ(element_codes(p2), c);
}

TEST(MxInt8, MinusOneTwentyEightOnlyWhenAllowed) {
  const auto x = block({-1.995f, 1.995f, -1.99f});
  const auto p127 = make_format("mxint8")->encode(x, {32});
  const auto p128 = make_format("mxint8:int8_min=-128")->encode(x, {32});
  EXPECT_EQ(scale_of(p127), 0x7Fu);
  const auto c127 = element_codes(p127), c128 = element_codes(p128);
  EXPECT_EQ(c127[0], 0x81u);  // clamped to -127
  EXPECT_EQ(c128[0], 0x80u);  // -127.68 -> -128 = -2.0
  EXPECT_EQ(c127[1], 0x7Fu);  // +127.68 -> 127 always
  EXPECT_EQ(c128[1], 0x7Fu);
  EXPECT_EQ(c128[2], 0x81u);  // -127.36 -> -127: 0x80 only where rounding reaches it
  for (const uint32_t c : c127) EXPECT_NE(c, 0x80u);
  EXPECT_EQ(fq("mxint8:int8_min=-128", x, {32})[0], -2.0f);
  EXPECT_EQ(fq("mxint8", x, {32})[0], -127.0f / 64);
  // Random data: 0x80 never appears under the default.
  const auto r = mixed(32 * 200, 11);
  for (const uint32_t c : element_codes(make_format("mxint8")->encode(r, {200, 32}))) ASSERT_NE(c, 0x80u);
}

// ---------------------------------------------------------------------------------------------
// Against an independent reference, packing, fake quantisation

// FLOOR and RCEIL with RNE against a double-precision brute-force reference.
TEST(Mx, MatchesIndependentReference) {
  for (const auto& n : kAll) {
    const std::vector<double> vals = element_values(n.el);
    for (const char* rule : {"floor", "rceil"}) {
      const std::string spec = std::string(n.name) + ":scale=" + rule;
      const std::vector<float> x = mixed(32 * 300, 5);
      const auto y = fq(spec, x, {300, 32});
      for (int b = 0; b < 300; ++b) {
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
        if (amax == 0.0f) continue;
        const int e = rule[0] == 'f' ? ref_floor_exp(amax, n.el) : ref_rceil_exp(amax, n.el);
        for (int i = 0; i < 32; ++i) {
          const double t = std::ldexp(static_cast<double>(x[b * 32 + i]), -e);
          const double want = std::ldexp(ref_round(t, vals), e);
          ASSERT_EQ(static_cast<double>(y[b * 32 + i]), want) << spec << " block " << b << " x=" << x[b * 32 + i];
        }
      }
    }
  }
}

TEST(Mx, PackLayoutAndRoundTrip) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const auto& n : kAll) {
    for (const char* opt : {"", ":scale=rceil", ":scale=ceil:round=rna", ":scale=even:round=sr:seed=9",
                            ":inf=sat:round=rz", ":flush_subnormals"}) {
      const std::string spec = std::string(n.name) + opt;
      const auto f = make_format(spec);
      std::vector<float> x = mixed(2 * 3 * 64, 17, -140, 100);
      x[70] = nan;
      x[200] = -inf;
      const Shape shape{2, 3, 64};
      const PackedTensor p = f->encode(x, shape);
      EXPECT_EQ(p.spec, f->spec());
      EXPECT_EQ(p.code_bits, n.el.bits());
      EXPECT_EQ(p.at("scales").shape, (Shape{2, 3, 2}));
      EXPECT_EQ(p.at("scales").dtype, "u8");
      const auto codes = element_codes(p);
      const Section& cs = p.at("codes");
      ASSERT_EQ(static_cast<int64_t>(cs.bytes.size()), n.el.bits() == 4 ? 192 : 384);
      for (size_t i = 0; i < codes.size(); ++i) {
        const uint32_t byte = n.el.bits() == 4 ? (cs.bytes[i / 2] >> (4 * (i % 2))) & 0xF : cs.bytes[i];
        ASSERT_EQ(byte, codes[i]) << spec << " " << i;
      }
      std::vector<uint8_t> repacked(cs.bytes.size());
      pack_codes(codes, p.code_bits, repacked);
      EXPECT_EQ(repacked, cs.bytes);
      std::vector<float> y(x.size()), z(x.size());
      f->decode(p, y);
      f->fake_quant(x, shape, z);
      for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(y[i], z[i])) << spec << " " << i;
      // The spec string round-trips through the registry.
      EXPECT_EQ(make_format(f->spec())->spec(), f->spec());
    }
  }
}

// A tensor above the OpenMP threshold against the scalar codec of mx.hpp, element by element.
TEST(Mx, LargeTensorMatchesScalarCodec) {
  const int rows = 520, cols = 160;  // 83200 values, 5 blocks per row
  const auto x = mixed(static_cast<size_t>(rows) * cols, 41);
  struct Case {
    const char* spec;
    MxElement el;
    MxScaleRule rule;
    Round round;
    uint64_t seed;
    bool min128;
  };
  for (const Case& c : {Case{"mxfp4:round=sr:seed=8", mx_elem::e2m1, MxScaleRule::Floor, Round::Stochastic, 8, false},
                        Case{"mxint8:scale=rceil:int8_min=-128", mx_elem::int8, MxScaleRule::Rceil, Round::NearestEven, 0, true},
                        Case{"mxfp6_e3m2:scale=even:round=rna", mx_elem::e3m2, MxScaleRule::Even, Round::NearestAway, 0, false}}) {
    const auto f = make_format(c.spec);
    const PackedTensor p = f->encode(x, {rows, cols});
    const auto codes = element_codes(p);
    const auto sc = section_u32(p.at("scales"));
    std::vector<float> y(x.size()), z(x.size());
    f->decode(p, y);
    f->fake_quant(x, {rows, cols}, z);
    for (size_t b = 0; b < sc.size(); ++b) {
      float amax = 0.0f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      const uint8_t e = mx_scale_e8m0(amax, c.rule, c.el);
      ASSERT_EQ(sc[b], e) << c.spec << " block " << b;
      for (size_t k = b * 32; k < b * 32 + 32; ++k) {
        const uint32_t rb = c.round == Round::Stochastic ? sr_bits(c.seed, k) : 0u;
        const uint32_t code = mx_encode_element(c.el, x[k], e, c.round, rb, c.min128);
        ASSERT_EQ(codes[k], code) << c.spec << " " << k;
        ASSERT_TRUE(same_bits(y[k], mx_decode_element(c.el, code, e)));
        ASSERT_TRUE(same_bits(z[k], y[k]));
      }
    }
  }
}

TEST(Mx, Idempotent) {
  for (const auto& n : kAll) {
    for (const MxScaleRule r : kRules) {
      const std::string spec = std::string(n.name) + ":scale=" + mx_scale_rule_name(r);
      const auto x = mixed(32 * 400, 23);
      const auto y = fq(spec, x, {400, 32});
      const auto y2 = fq(spec, y, {400, 32});
      for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_bits(y[i], y2[i])) << spec << " " << i << " " << x[i];
    }
  }
}

// |x - x^| <= half an element ulp at the block's scale, for elements that do not saturate.
TEST(Mx, ErrorWithinHalfUlp) {
  for (const auto& n : kAll) {
    for (const MxScaleRule r : kRules) {
      const std::string spec = std::string(n.name) + ":scale=" + mx_scale_rule_name(r);
      const auto f = make_format(spec);
      const auto x = mixed(32 * 300, 29);
      const PackedTensor p = f->encode(x, {300, 32});
      const auto sc = section_u32(p.at("scales"));
      std::vector<float> y(x.size());
      f->decode(p, y);
      const double emax_val = mx_element_max(n.el);
      for (size_t i = 0; i < x.size(); ++i) {
        const int e = static_cast<int>(sc[i / 32]) - 127;
        const double t = std::ldexp(std::fabs(static_cast<double>(x[i])), -e);
        if (t > emax_val || t == 0.0) continue;
        double q;
        if (n.el.int8) {
          q = 1.0 / 64;
        } else {
          int fe;
          std::frexp(t, &fe);
          q = std::ldexp(1.0, std::max(fe - 1, n.el.fp.emin()) - n.el.fp.mbits);
        }
        ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), std::ldexp(q / 2, e)) << spec << " " << x[i];
      }
    }
  }
}

TEST(Mx, SignSymmetry) {
  for (const auto& n : kAll) {
    for (const char* opt : {"", ":scale=rceil:round=rna", ":scale=even:round=rz"}) {
      const std::string spec = std::string(n.name) + opt;
      const auto x = mixed(32 * 100, 31);
      std::vector<float> nx(x.size());
      for (size_t i = 0; i < x.size(); ++i) nx[i] = -x[i];
      const auto y = fq(spec, x, {100, 32}), ny = fq(spec, nx, {100, 32});
      // INT8 has no -0: compare values there, bits elsewhere.
      for (size_t i = 0; i < x.size(); ++i) {
        if (n.el.int8) ASSERT_EQ(ny[i], -y[i]) << spec << " " << x[i];
        else ASSERT_TRUE(same_bits(ny[i], -y[i])) << spec << " " << x[i];
      }
    }
  }
}

TEST(Mx, StochasticRoundingUnbiasedAndReproducible) {
  // mxfp4 blocks [6, 1.3 x 31]: X = 1, 1.3 rounds to 1.5 with probability 0.6.
  const int nblocks = 2000;
  std::vector<float> x(32 * nblocks, 1.3f);
  for (int b = 0; b < nblocks; ++b) x[b * 32] = 6.0f;
  const auto y = fq("mxfp4:round=sr:seed=42", x, {nblocks, 32});
  double sum = 0;
  int n = 0, up = 0;
  for (int b = 0; b < nblocks; ++b) {
    EXPECT_EQ(y[b * 32], 6.0f);
    for (int i = 1; i < 32; ++i) {
      const float v = y[b * 32 + i];
      ASSERT_TRUE(v == 1.0f || v == 1.5f) << v;
      sum += v;
      up += v == 1.5f;
      ++n;
    }
  }
  // sigma of the mean = 0.5 * sqrt(0.24 / n) ~ 0.001.
  EXPECT_NEAR(sum / n, static_cast<double>(1.3f), 0.005);
  EXPECT_NEAR(static_cast<double>(up) / n, 0.6, 0.01);
  EXPECT_EQ(fq("mxfp4:round=sr:seed=42", x, {nblocks, 32}), y);
  EXPECT_NE(fq("mxfp4:round=sr:seed=43", x, {nblocks, 32}), y);
  // MXINT8: 1.3 * 64 = 83.2 -> 83 or 84 with P(84) = 0.2.
  std::vector<float> xi(32 * nblocks, 1.3f);
  const auto yi = fq("mxint8:round=sr:seed=1", xi, {nblocks, 32});
  double si = 0;
  for (const float v : yi) si += v;
  EXPECT_NEAR(si / yi.size(), static_cast<double>(1.3f), 0.001);
}

// ---------------------------------------------------------------------------------------------
// Shapes, options, metadata

TEST(Mx, ShapeErrors) {
  const auto f = make_format("mxfp4");
  std::vector<float> x(33, 1.0f), y(33);
  EXPECT_THROW(f->encode(x, {33}), Error);
  EXPECT_THROW(f->fake_quant(x, {33}, y), Error);
  try {
    f->encode(x, {33});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible"), std::string::npos) << e.what();
  }
  std::vector<float> one(1, 1.0f);
  EXPECT_THROW(f->encode(one, {}), Error);
  EXPECT_THROW(f->encode(x, {32}), Error);  // 33 values for 32
}

TEST(Mx, EmptyTensor) {
  for (const auto& n : kAll) {
    const auto f = make_format(n.name);
    for (const Shape& s : {Shape{0, 32}, Shape{3, 0}, Shape{0}}) {
      std::vector<float> x, y;
      const PackedTensor p = f->encode(x, s);
      EXPECT_EQ(shape_numel(p.at("scales").shape), 0);
      EXPECT_TRUE(p.at("codes").bytes.empty());
      f->decode(p, y);
      f->fake_quant(x, s, y);
    }
  }
}

TEST(Mx, MetadataAndOptions) {
  EXPECT_EQ(make_format("mxfp4")->bits_per_element({32}), 4.25);
  EXPECT_EQ(make_format("mxfp6_e2m3")->bits_per_element({32}), 6.25);
  EXPECT_EQ(make_format("mxint8")->bits_per_element({64}), 8.25);
  EXPECT_EQ(make_format("mxfp6_e3m2")->code_bits(), 6);
  EXPECT_EQ(make_format("mxfp4")->family(), "mx");
  const FormatLimits l = make_format("mxfp8_e4m3")->limits();
  EXPECT_EQ(l.max_value, std::ldexp(448.0, 127));
  EXPECT_EQ(l.min_positive, std::ldexp(1.0, -136));
  EXPECT_EQ(make_format("mxint8")->limits().min_positive, std::ldexp(1.0, -133));
  EXPECT_EQ(make_format("mxfp4")->limits().max_value, std::ldexp(6.0, 127));
  EXPECT_EQ(make_format("mxfp4:scale=floor:round=rne:inf=nan")->spec(), "mxfp4");
  EXPECT_EQ(make_format("mxint8:int8_min=-128:scale=rceil:round=sr")->spec(), "mxint8:scale=rceil:round=sr:seed=0:int8_min=-128");
  EXPECT_THROW(make_format("mxfp4:int8_min=-128"), Error);
  EXPECT_THROW(make_format("mxfp4:scale=nearest"), Error);
  EXPECT_THROW(make_format("mxfp4:inf=inf"), Error);
  EXPECT_THROW(make_format("mxfp4:seed=3"), Error);  // seed without round=sr
  EXPECT_THROW(make_format("mxfp4:g16"), Error);
  EXPECT_THROW(make_format("mxint8:int8_min=-100"), Error);
  // A packed tensor of another spec is refused.
  const auto x = block({1.0f});
  const PackedTensor p = make_format("mxfp4")->encode(x, {32});
  std::vector<float> y(32);
  EXPECT_THROW(make_format("mxfp4:scale=rceil")->decode(p, y), Error);
  PackedTensor bad = p;
  bad.sections[1].shape = {2};
  EXPECT_THROW(make_format("mxfp4")->decode(bad, y), Error);
}

// ---------------------------------------------------------------------------------------------
// The vectorised round-to-nearest-even kernel against the scalar reference path (mx_quantize
// with MxPath::Reference: mx_scale_e8m0, mx_encode_element, mx_decode_element block by block),
// bit for bit on scales, packed codes and values.

namespace {

// Blocks of many kinds, chosen at random per block: wide dynamic range with random mantissa
// bits, zero blocks (signed zeros), fp32 subnormals, element-grid midpoints (ties) at the
// block's scale, NaN and Inf blocks, block maxima at the scale rules' boundaries (powers of
// two, max_elem * 2^k and their neighbours), huge blocks whose small elements underflow V / X,
// and tiny blocks whose scale clamps at 0x00.
std::vector<float> stress_blocks(int64_t nblocks, uint32_t seed, const MxElement& el) {
  std::mt19937 g(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); };
  auto sign = [&] { return (g() & 1) ? -1.0f : 1.0f; };
  auto rand_float = [&](int e) {  // random mantissa bits at 2^e (subnormal / 0 below 2^-149)
    return sign() * std::ldexp(1.0f + std::ldexp(static_cast<float>(g() & 0x7fffffu), -23), e);
  };
  const std::vector<double> vals = element_values(el);
  std::vector<double> mids;
  for (size_t c = 0; c + 1 < vals.size(); ++c) mids.push_back(0.5 * (vals[c] + vals[c + 1]));
  const float max_elem = mx_element_max(el);
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x(static_cast<size_t>(nblocks) * 32);
  for (int64_t b = 0; b < nblocks; ++b) {
    float* v = x.data() + b * 32;
    const int kind = uni(0, 11);
    const int e0 = uni(-140, 125);
    switch (kind) {
      case 0:
      case 1:  // wide dynamic range below the block exponent, some zeros
        for (int i = 0; i < 32; ++i) v[i] = uni(0, 9) == 0 ? 0.0f * sign() : rand_float(e0 - uni(0, 40));
        break;
      case 2:  // zero block
        for (int i = 0; i < 32; ++i) v[i] = uni(0, 1) ? 0.0f : -0.0f;
        break;
      case 3:  // fp32 subnormals (and a zero or two)
        for (int i = 0; i < 32; ++i) v[i] = sign() * f32_from_bits(g() % 0x00800000u);
        break;
      case 4:
      case 5: {  // ties: grid midpoints at 2^(e0 - emax) and 2^(e0 - emax + 1), exact or +-1 ulp
        const int k = e0 - el.emax();
        v[0] = sign() * std::ldexp(uni(0, 1) ? 1.0f : 1.5f, e0);
        for (int i = 1; i < 32; ++i) {
          const double m = mids[static_cast<size_t>(uni(0, static_cast<int>(mids.size()) - 1))];
          float t = static_cast<float>(std::ldexp(m, k + uni(0, 1)));
          const int d = uni(-1, 1);
          if (d != 0) t = std::nextafter(t, d > 0 ? inf : 0.0f);
          v[i] = sign() * t;
        }
        break;
      }
      case 6:  // NaN block (any sign and payload), possibly with Inf too
        for (int i = 0; i < 32; ++i) v[i] = rand_float(e0 - uni(0, 10));
        v[uni(0, 31)] = f32_from_bits(((g() & 1) << 31) | (0x7f800001u + g() % 0x7fffffu));
        if (uni(0, 1)) v[uni(0, 31)] = sign() * inf;
        break;
      case 7:  // Inf block
        for (int i = 0; i < 32; ++i) v[i] = rand_float(std::min(e0, 100) - uni(0, 30));
        v[uni(0, 31)] = sign() * inf;
        if (uni(0, 1)) v[uni(0, 31)] = sign() * inf;
        break;
      case 8: {  // amax at a scale-rule boundary, other elements just below it
        const float base = uni(0, 1) ? 1.0f : max_elem;
        float a = std::ldexp(base, std::max(-126, std::min(e0, 126)));
        for (int s = uni(-2, 2); s != 0; s += s > 0 ? -1 : 1) a = std::nextafter(a, s > 0 ? inf : 0.0f);
        v[0] = sign() * a;
        for (int i = 1; i < 32; ++i) v[i] = sign() * std::nextafter(a, 0.0f) * (uni(0, 3) == 0 ? 1.0f : 0.5f);
        break;
      }
      case 9:  // huge block: small elements underflow V / X
        v[0] = sign() * rand_float(uni(100, 127));
        for (int i = 1; i < 32; ++i) v[i] = rand_float(uni(-160, -10));
        break;
      case 10:  // tiny block: the scale clamps at 0x00
        for (int i = 0; i < 32; ++i) v[i] = rand_float(uni(-150, -118));
        break;
      default:  // largest magnitudes: FLT_MAX and neighbours
        for (int i = 0; i < 32; ++i) v[i] = sign() * f32_from_bits(0x7f7fffffu - (g() % 64u) * (uni(0, 1) ? 1u : 0x10000u));
        break;
    }
  }
  return x;
}

struct MxRun {
  std::vector<uint8_t> scales, codes;
  std::vector<float> values;
};

MxRun run_mx(const MxElement& el, const MxOptions& o, const std::vector<float>& x, int64_t rows, int64_t cols,
             MxPath path) {
  MxRun r;
  r.scales.assign(static_cast<size_t>(rows * cols / 32), 0xAB);
  r.codes.assign(static_cast<size_t>(packed_bytes(rows * cols, el.bits())), 0xCD);
  r.values.assign(static_cast<size_t>(rows * cols), -1.0f);
  mx_quantize(el, o, x.data(), rows, cols, r.scales.data(), r.codes.data(), r.values.data(), path);
  return r;
}

// Compares two runs; returns the number of differences (reporting the first few).
int compare_runs(const MxRun& fast, const MxRun& ref, const std::string& what) {
  int bad = 0;
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

}  // namespace

TEST(MxFastPath, MatchesReferenceEveryElementRuleAndOption) {
  const int64_t rows = 64, cols = 1024;  // 2048 blocks
  int cases = 0;
  for (const auto& n : kAll) {
    const std::vector<float> x = stress_blocks(rows * cols / 32, 1000 + cases, n.el);
    for (const MxScaleRule r : kRules) {
      for (int opt = 0; opt < (n.el.int8 ? 8 : 4); ++opt) {
        MxOptions o;
        o.scale = r;
        o.inf_sat = opt & 1;
        o.flush_subnormals = (opt >> 1) & 1;
        o.int8_min128 = (opt >> 2) & 1;
        const std::string what = std::string(n.name) + " scale=" + mx_scale_rule_name(r) + " inf_sat=" +
                                 std::to_string(o.inf_sat) + " flush=" + std::to_string(o.flush_subnormals) +
                                 " min128=" + std::to_string(o.int8_min128);
        const MxRun fast = run_mx(n.el, o, x, rows, cols, MxPath::Auto);
        const MxRun ref = run_mx(n.el, o, x, rows, cols, MxPath::Reference);
        ASSERT_EQ(compare_runs(fast, ref, what), 0);
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 5 * 4 * 4 + 4 * 8);
}

// Every kind of block occurs: NaN and Inf scales, zero scales, flushed blocks, the 0xFE clamp.
TEST(MxFastPath, StressDataCoversTheSpecialScales) {
  const int64_t nb = 4096;
  const std::vector<float> x = stress_blocks(nb, 77, mx_elem::e2m1);
  MxOptions o;
  std::vector<uint8_t> s(nb), c(static_cast<size_t>(packed_bytes(nb * 32, 4)));
  mx_quantize(mx_elem::e2m1, o, x.data(), 1, nb * 32, s.data(), c.data(), nullptr, MxPath::Auto);
  int nan = 0, zero = 0, top = 0;
  for (const uint8_t e : s) {
    nan += e == 0xFF;
    zero += e == 0x00;
    top += e >= 0xF8;
  }
  EXPECT_GT(nan, 200);
  EXPECT_GT(zero, 200);
  EXPECT_GT(top, 50);
}

// Large tensors (the OpenMP path) through the tensor formats, whose encode and fake_quant take
// the fast path, against the reference path: scales, packed codes, values, and decode(encode).
TEST(MxFastPath, TensorFormatsMatchReferenceOnLargeTensors) {
  const int64_t rows = 96, cols = 1024;  // 98304 values: above the parallel threshold
  for (const auto& n : kAll) {
    const std::vector<float> x = stress_blocks(rows * cols / 32, 4242, n.el);
    for (const char* opt : {"", ":scale=rceil", ":scale=ceil:inf=sat", ":scale=even:flush_subnormals"}) {
      const std::string spec = std::string(n.name) + opt;
      const auto f = make_format(spec);
      MxOptions o;
      o.scale = spec.find("rceil") != std::string::npos  ? MxScaleRule::Rceil
                : spec.find("ceil") != std::string::npos ? MxScaleRule::Ceil
                : spec.find("even") != std::string::npos ? MxScaleRule::Even
                                                          : MxScaleRule::Floor;
      o.inf_sat = spec.find("inf=sat") != std::string::npos;
      o.flush_subnormals = spec.find("flush") != std::string::npos;
      const MxRun ref = run_mx(n.el, o, x, rows, cols, MxPath::Reference);
      const PackedTensor p = f->encode(x, {rows, cols});
      ASSERT_EQ(p.at("codes").bytes, ref.codes) << spec;
      ASSERT_EQ(p.at("scales").bytes, ref.scales) << spec;
      std::vector<float> y(x.size()), z(x.size());
      f->fake_quant(x, {rows, cols}, y);
      f->decode(p, z);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(same_bits(y[i], ref.values[i])) << spec << " " << i << " x=" << x[i];
        ASSERT_TRUE(same_bits(z[i], ref.values[i])) << spec << " " << i << " x=" << x[i];
      }
    }
  }
}

// Every fp32 bit pattern class as a block amax: each exponent field with boundary and random
// mantissas, subnormals of every length, Inf and NaN. Scales (and elements) of both paths.
TEST(MxFastPath, ScaleBytesMatchReferenceForEveryExponentField) {
  std::mt19937 g(99);
  std::vector<uint32_t> amax;
  for (uint32_t ef = 0; ef <= 255; ++ef) {
    for (const uint32_t m : {0u, 1u, 2u, 0x3fffffu, 0x400000u, 0x400001u, 0x7ffffeu, 0x7fffffu, 0x200000u, 0x600000u,
                             0x7e0000u, 0x7f0000u, 0x7c0001u, 0x7dffffu, 0x780000u, 0x77ffffu})
      amax.push_back((ef << 23) | m);
    for (int r = 0; r < 8; ++r) amax.push_back((ef << 23) | (g() & 0x7fffffu));
  }
  for (int bits = 0; bits < 23; ++bits) {  // subnormals 2^bits and their neighbours
    amax.push_back(1u << bits);
    amax.push_back((1u << bits) + 1u);
    amax.push_back((2u << bits) - 1u);
  }
  for (const auto& n : kAll) {  // max_elem * 2^k and neighbours (RCEIL's threshold)
    const uint32_t sig = f32_bits(mx_element_max(n.el)) & 0x7fffffu;
    for (uint32_t ef = 1; ef < 255; ++ef)
      for (const uint32_t d : {0u, 1u, 2u}) amax.push_back((ef << 23) | (sig + d)), amax.push_back((ef << 23) | (sig - d));
  }
  const int64_t nb = static_cast<int64_t>(amax.size());
  std::vector<float> x(static_cast<size_t>(nb) * 32);
  for (int64_t b = 0; b < nb; ++b) {
    const float a = f32_from_bits(amax[b]);
    x[b * 32 + (b % 32)] = (b & 1) ? -a : a;  // the block max, anywhere in the block
    for (int i = 0; i < 32; ++i)
      if (i != b % 32) x[b * 32 + i] = std::isfinite(a) ? a * std::ldexp(static_cast<float>(g() % 1000), -10) : 1.0f;
  }
  for (const auto& n : kAll) {
    for (const MxScaleRule r : kRules) {
      for (const bool inf_sat : {false, true}) {
        MxOptions o;
        o.scale = r;
        o.inf_sat = inf_sat;
        const std::string what = std::string(n.name) + " scale=" + mx_scale_rule_name(r) + (inf_sat ? " inf=sat" : "");
        const MxRun fast = run_mx(n.el, o, x, nb, 32, MxPath::Auto);
        const MxRun ref = run_mx(n.el, o, x, nb, 32, MxPath::Reference);
        ASSERT_EQ(compare_runs(fast, ref, what), 0);
        // The reference scales are mx_scale_e8m0 of the amax.
        for (int64_t b = 0; b < nb; ++b)
          ASSERT_EQ(ref.scales[b], mx_scale_e8m0(f32_from_bits(amax[b]), r, n.el, inf_sat)) << what << " " << b;
      }
    }
  }
}

// Round modes other than RNE take the reference path (Auto == Reference trivially), and the
// reference path of an RNE format is what the format itself computed before the fast path.
TEST(MxFastPath, OtherRoundingModesMatchTheReferencePath) {
  const std::vector<float> x = stress_blocks(256, 5, mx_elem::e4m3);
  for (const Round rm : {Round::NearestAway, Round::TowardZero, Round::Stochastic}) {
    MxOptions o;
    o.round = rm;
    o.seed = 12;
    const MxRun a = run_mx(mx_elem::e4m3, o, x, 16, 512, MxPath::Auto);
    const MxRun b = run_mx(mx_elem::e4m3, o, x, 16, 512, MxPath::Reference);
    ASSERT_EQ(compare_runs(a, b, std::string(round_name(rm))), 0);
  }
}

// ---------------------------------------------------------------------------------------------
// The vectorised stochastic-rounding kernel (MxPath::Auto with round=sr) against the reference
// path, bit for bit on scales, packed codes and values, over every element type, scale rule and
// option, several seeds.

namespace {

// stress_blocks plus blocks aimed at the SR underflow question: a huge block amax (scales up
// to 0xFE) with elements whose V / X lies below 2^-126 (fp32 subnormals, values near
// 2^(k - 126) and just around it), elements just above grid points (small non-zero
// fractions), and all of it with both signs.
std::vector<float> sr_hazard_blocks(int64_t nblocks, uint32_t seed, const MxElement& el) {
  std::vector<float> x = stress_blocks(nblocks, seed, el);
  std::mt19937 g(seed ^ 0x5eedu);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); };
  auto sign = [&] { return (g() & 1) ? -1.0f : 1.0f; };
  const std::vector<double> vals = element_values(el);
  for (int64_t b = 0; b < nblocks; b += 3) {
    float* v = x.data() + b * 32;
    const int e0 = uni(90, 127);  // block exponent: k = e0 - emax (rule-dependent)
    v[0] = sign() * std::ldexp(1.0f + std::ldexp(static_cast<float>(g() & 0x7fffffu), -23), e0);
    if (uni(0, 3) == 0) v[0] = sign() * f32_from_bits(0x7f7fffffu - g() % 16u);
    for (int i = 1; i < 32; ++i) {
      switch (uni(0, 3)) {
        case 0:  // fp32 subnormal
          v[i] = sign() * f32_from_bits(1u + g() % 0x007fffffu);
          break;
        case 1:  // around 2^(e0 - emax - 126 + d): V / X near fp32's normal boundary
          v[i] = sign() * std::ldexp(1.0f + std::ldexp(static_cast<float>(g() & 0x7fffffu), -23),
                                     std::max(-149, e0 - el.emax() - 126 + uni(-30, 4)));
          break;
        case 2: {  // just above a grid value at the block scale (a tiny fraction)
          const double gv = vals[static_cast<size_t>(uni(1, static_cast<int>(vals.size()) - 1))];
          const float t = static_cast<float>(std::ldexp(gv, e0 - el.emax()));
          v[i] = sign() * f32_from_bits(f32_bits(t) + static_cast<uint32_t>(uni(0, 3)));
          break;
        }
        default:
          v[i] = uni(0, 1) ? 0.0f : -0.0f;
          break;
      }
    }
  }
  return x;
}

}  // namespace

TEST(MxFastPathSr, MatchesReferenceEveryElementRuleOptionAndSeed) {
  const int64_t rows = 32, cols = 1024;  // 1024 blocks
  int cases = 0;
  for (const auto& n : kAll) {
    for (const uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{0xdeadbeefcafef00dull}}) {
      const std::vector<float> x = sr_hazard_blocks(rows * cols / 32, 2000 + cases, n.el);
      for (const MxScaleRule r : kRules) {
        for (int opt = 0; opt < (n.el.int8 ? 8 : 4); ++opt) {
          MxOptions o;
          o.scale = r;
          o.round = Round::Stochastic;
          o.seed = seed;
          o.inf_sat = opt & 1;
          o.flush_subnormals = (opt >> 1) & 1;
          o.int8_min128 = (opt >> 2) & 1;
          const std::string what = std::string(n.name) + " sr seed=" + std::to_string(seed) + " scale=" +
                                   mx_scale_rule_name(r) + " inf_sat=" + std::to_string(o.inf_sat) + " flush=" +
                                   std::to_string(o.flush_subnormals) + " min128=" + std::to_string(o.int8_min128);
          const MxRun fast = run_mx(n.el, o, x, rows, cols, MxPath::Auto);
          const MxRun ref = run_mx(n.el, o, x, rows, cols, MxPath::Reference);
          ASSERT_EQ(compare_runs(fast, ref, what), 0);
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 3 * (5 * 4 * 4 + 4 * 8));
}

// Row lengths of one block and odd block counts (the random bits of a row start at any index
// mod 4), and codes or values alone.
TEST(MxFastPathSr, RowShapesAndPartialOutputs) {
  for (const auto& n : kAll) {
    for (const int64_t cols : {int64_t{32}, int64_t{96}, int64_t{160}}) {
      const int64_t rows = 7;
      const std::vector<float> x = sr_hazard_blocks(rows * cols / 32, 31 + static_cast<uint32_t>(cols), n.el);
      MxOptions o;
      o.round = Round::Stochastic;
      o.seed = 99;
      const MxRun ref = run_mx(n.el, o, x, rows, cols, MxPath::Reference);
      const MxRun fast = run_mx(n.el, o, x, rows, cols, MxPath::Auto);
      ASSERT_EQ(compare_runs(fast, ref, n.name), 0);
      std::vector<uint8_t> c(ref.codes.size());
      std::vector<float> v(ref.values.size());
      mx_quantize(n.el, o, x.data(), rows, cols, nullptr, c.data(), nullptr, MxPath::Auto);
      mx_quantize(n.el, o, x.data(), rows, cols, nullptr, nullptr, v.data(), MxPath::Auto);
      ASSERT_EQ(c, ref.codes) << n.name << " cols=" << cols;
      for (size_t i = 0; i < v.size(); ++i) ASSERT_TRUE(same_bits(v[i], ref.values[i])) << n.name << " " << i;
    }
  }
}

// The premise of the kernel's underflow argument, with the most favourable random bits for
// rounding up (0, 1): an element whose V / X lies below 2^-126 encodes as a signed zero under
// stochastic rounding, whatever the scale; so does fl(V * 2^-k) under FastRne::code_sr.
TEST(MxFastPathSr, UnderflowingQuotientsRoundToZero) {
  std::mt19937 g(3);
  int checked = 0;
  for (const auto& n : kAll) {
    const FastRne k = n.el.int8 ? FastRne{} : FastRne::make(n.el.fp, Overflow::Saturate);
    for (int e = 0; e <= 0xFE; ++e) {
      const int kexp = e - 127;
      for (int r = 0; r < 64; ++r) {
        // |V| * 2^-k < 2^-126: V = m * 2^(kexp - 126 - d), d >= 1, clamped to fp32's range.
        const int ev = kexp - 126 - 1 - static_cast<int>(g() % 40);
        float v = std::ldexp(1.0f + std::ldexp(static_cast<float>(g() & 0x7fffffu), -23), std::max(ev, -149));
        if (!(std::fabs(static_cast<double>(v)) * std::ldexp(1.0, -kexp) < std::ldexp(1.0, -126))) continue;
        ++checked;
        if (g() & 1) v = -v;
        for (const uint32_t rbits : {0u, 1u, static_cast<uint32_t>(g())}) {
          const uint32_t c = mx_encode_element(n.el, v, static_cast<uint8_t>(e), Round::Stochastic, rbits);
          if (n.el.int8) {
            ASSERT_EQ(c, 0u) << n.name << " e=" << e << " v=" << v;
          } else {
            ASSERT_EQ(c, std::signbit(v) ? n.el.fp.sign_bit() : 0u) << n.name << " e=" << e << " v=" << v;
            const float t = v * std::ldexp(1.0f, -kexp);
            ASSERT_EQ(k.code_sr(t, rbits), c) << n.name << " e=" << e << " v=" << v;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 6 * 64 * 80);  // scale bytes 151 .. 254 admit underflowing elements
}

// Large tensors (the OpenMP path) through the tensor formats with round=sr: encode, fake_quant
// and decode(encode) against the reference path.
TEST(MxFastPathSr, TensorFormatsMatchReferenceOnLargeTensors) {
  const int64_t rows = 96, cols = 1024;  // 98304 values: above the parallel threshold
  for (const auto& n : kAll) {
    const std::vector<float> x = sr_hazard_blocks(rows * cols / 32, 4343, n.el);
    for (const char* opt : {":round=sr:seed=5", ":scale=rceil:round=sr:seed=123456789012",
                            ":scale=even:inf=sat:flush_subnormals:round=sr:seed=0"}) {
      const std::string spec = std::string(n.name) + opt;
      const auto f = make_format(spec);
      MxOptions o;
      o.round = Round::Stochastic;
      o.scale = spec.find("rceil") != std::string::npos  ? MxScaleRule::Rceil
                : spec.find("even") != std::string::npos ? MxScaleRule::Even
                                                          : MxScaleRule::Floor;
      o.seed = spec.find("seed=5") != std::string::npos ? 5 : spec.find("seed=0") != std::string::npos ? 0 : 123456789012ull;
      o.inf_sat = spec.find("inf=sat") != std::string::npos;
      o.flush_subnormals = spec.find("flush") != std::string::npos;
      const MxRun ref = run_mx(n.el, o, x, rows, cols, MxPath::Reference);
      const PackedTensor p = f->encode(x, {rows, cols});
      ASSERT_EQ(p.at("codes").bytes, ref.codes) << spec;
      ASSERT_EQ(p.at("scales").bytes, ref.scales) << spec;
      std::vector<float> y(x.size()), z(x.size());
      f->fake_quant(x, {rows, cols}, y);
      f->decode(p, z);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(same_bits(y[i], ref.values[i])) << spec << " " << i << " x=" << x[i];
        ASSERT_TRUE(same_bits(z[i], ref.values[i])) << spec << " " << i << " x=" << x[i];
      }
    }
  }
}
