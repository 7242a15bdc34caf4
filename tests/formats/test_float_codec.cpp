// Tests of the scalar minifloat codec (formats/float_format.hpp) against oracles written
// independently here: value tables from the sign/exponent/mantissa definition (FORMATS.md §2.1)
// and the literal tables of §2.2/§2.3; golden vectors (§2.4, §2.6, §4.2, §11); the NaN/Inf/−0
// matrix (§2.8); a brute-force nearest/directed oracle that enumerates every finite value of a
// format in double, run on every rounding boundary ±1 ulp of named and user-given ExMy formats;
// properties (idempotence, sign symmetry, monotonicity); stochastic rounding (§2.9, Philox
// bits); the exact power-of-two pre-scale scale_exp.
//
// FP32 is left out of the per-code loops here (2^32 codes); its identity encode/decode is
// checked exhaustively in tests/oracle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/float_format.hpp"
#include "formats/philox.hpp"

namespace {

using lowbit::decode_float;
using lowbit::encode_float;
using lowbit::FloatFormat;
using lowbit::NanEncoding;
using lowbit::NanMode;
using lowbit::Overflow;
using lowbit::Round;
namespace fd = lowbit::fmt_desc;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const float kFNaN = std::numeric_limits<float>::quiet_NaN();
const float kFInf = std::numeric_limits<float>::infinity();

uint32_t bits(float x) { return lowbit::f32_bits(x); }
float from_bits(uint32_t u) { return lowbit::f32_from_bits(u); }

// Collects mismatches of one check; prints at most 10, then asserts the count is zero.
class Failures {
 public:
  explicit Failures(std::string label) : label_(std::move(label)) {}
  void add(const std::string& what) {
    if (++n_ <= 10) ADD_FAILURE() << label_ << ": " << what;
  }
  ~Failures() { EXPECT_EQ(n_, 0) << label_ << ": number of mismatches"; }

 private:
  std::string label_;
  int n_ = 0;
};

struct NamedFormat {
  const char* name;  // a valid gtest parameter name
  FloatFormat f;
};

void PrintTo(const NamedFormat& nf, std::ostream* os) {
  const FloatFormat& f = nf.f;
  *os << fmt::format("{} {{ebits {}, mbits {}, bias {}, sign {}, inf {}, nan {}, zero {}, subnormals {}}}", nf.name,
                     f.ebits, f.mbits, f.bias, f.has_sign, f.has_inf, static_cast<int>(f.nan), f.has_zero, f.subnormals);
}

// Named formats of float_format.hpp (fp32 excluded, see the banner).
const std::vector<NamedFormat> kNamed = {
    {"E2M1", fd::e2m1}, {"E2M3", fd::e2m3}, {"E3M2", fd::e3m2}, {"E4M3", fd::e4m3},
    {"E5M2", fd::e5m2}, {"E8M0", fd::e8m0}, {"FP16", fd::fp16}, {"BF16", fd::bf16},
};

// User-given ExMy formats: any (ebits, mbits, bias) plus the NaN/Inf/subnormal/sign options.
const std::vector<NamedFormat> kUser = {
    {"E3M4_bias3", FloatFormat{3, 4, 3}},
    {"E3M4_bias7", FloatFormat{3, 4, 7}},
    {"E1M2_bias0", FloatFormat{1, 2, 0}},
    {"E1M2_bias1", FloatFormat{1, 2, 1}},
    {"E4M3_nosub", FloatFormat{4, 3, 7, true, false, NanEncoding::AllOnes, true, false}},
    {"E5M2_ieee", FloatFormat{5, 2, 15, true, true, NanEncoding::Ieee}},
    {"E5M3_ieee", FloatFormat{5, 3, 15, true, true, NanEncoding::Ieee}},
    {"E4M2_plain", FloatFormat{4, 2, 7}},
    {"UE5M3_unsigned", FloatFormat{5, 3, 15, false}},
    {"E3M0", FloatFormat{3, 0, 3}},
};

std::vector<NamedFormat> all_formats() {
  std::vector<NamedFormat> v = kNamed;
  v.insert(v.end(), kUser.begin(), kUser.end());
  return v;
}

// ---- Independent value definition -----------------------------------------------------------

int mag_bits(const FloatFormat& f) { return f.ebits + f.mbits; }
uint32_t sign_of(const FloatFormat& f) { return f.has_sign ? 1u << mag_bits(f) : 0u; }
uint32_t n_codes(const FloatFormat& f) { return 1u << (mag_bits(f) + (f.has_sign ? 1 : 0)); }

// (−1)^s · 2^(E−bias) · 1.M; E = 0 with a zero: (−1)^s · 2^(1−bias) · 0.M (0 when subnormals
// are off); without a zero (E8M0) E = 0 is an ordinary binade. Top exponent field: Inf/NaN per
// the IEEE layout, or only the all-ones magnitude is NaN (E4M3FN, E8M0). FORMATS.md §2.1–2.5.
double ref_value(const FloatFormat& f, uint32_t code) {
  const int nm = mag_bits(f);
  const uint32_t mag = code & ((1u << nm) - 1);
  const bool neg = f.has_sign && ((code >> nm) & 1u);
  const uint32_t e = mag >> f.mbits;
  const uint32_t m = mag & ((1u << f.mbits) - 1);
  const uint32_t e_top = (1u << f.ebits) - 1;
  const double s = neg ? -1.0 : 1.0;
  if (f.nan == NanEncoding::AllOnes && mag == (1u << nm) - 1) return kNaN;
  if (e == e_top && f.nan == NanEncoding::Ieee && m != 0) return kNaN;
  if (e == e_top && f.has_inf && m == 0) return s * kInf;
  if (f.has_zero && e == 0) return f.subnormals ? s * std::ldexp(double(m), 1 - f.bias - f.mbits) : s * 0.0;
  return s * std::ldexp(double((1u << f.mbits) + m), int(e) - f.bias - f.mbits);
}

// Non-negative finite values in increasing order with their canonical codes (the all-zero code
// for zero; subnormal codes of a flushing format read as zero and are left out).
struct ValueTable {
  std::vector<double> v;
  std::vector<uint32_t> code;
};

ValueTable value_table(const FloatFormat& f) {
  ValueTable t;
  for (uint32_t mag = 0; mag < (1u << mag_bits(f)); ++mag) {
    const double d = ref_value(f, mag);
    if (!std::isfinite(d) || (d == 0 && mag != 0)) continue;
    t.v.push_back(d);
    t.code.push_back(mag);
  }
  // Positive codes are ordered like their values in every layout used here; check it.
  for (size_t i = 1; i < t.v.size(); ++i) EXPECT_LT(t.v[i - 1], t.v[i]) << "value table not increasing at " << i;
  return t;
}

// ---- Brute-force oracle -----------------------------------------------------------------------

// The acceptable result codes (a == b unless the tie is ambiguous: both neighbours have an even
// code LSB, which happens only between 0 and the min normal of a format without subnormals).
struct Expected {
  uint32_t a, b;
  bool accepts(uint32_t c) const { return c == a || c == b; }
};

uint32_t overflow_code(const FloatFormat& f, const ValueTable& t, Overflow ov, uint32_t sign) {
  if (ov == Overflow::Inf && f.has_inf) return sign | (((1u << f.ebits) - 1) << f.mbits);
  if (ov != Overflow::Saturate && f.nan != NanEncoding::None) return sign | ((1u << mag_bits(f)) - 1);
  return sign | t.code.back();
}

// Encoding of the exact value x (double, non-NaN) by enumeration: nearest (ties to the even code
// LSB, or away from zero) or directed; beyond the largest finite value the result is what the
// unbounded-exponent rounding would give, and then max (Saturate), Inf (Inf, where the format
// has one) or NaN (the format's NaN). Unsigned formats encode |x|. Below the smallest value of a
// format without zero (E8M0) the result is the smallest value.
Expected brute_force(const FloatFormat& f, const ValueTable& t, double x, Round mode, Overflow ov) {
  const bool neg = f.has_sign && std::signbit(x);
  const uint32_t sign = neg ? sign_of(f) : 0u;
  const double a = std::fabs(x);
  const double vmax = t.v.back();
  const auto one = [](uint32_t c) { return Expected{c, c}; };
  const bool toward_zero = mode == Round::TowardZero || (mode == Round::Down && !neg) || (mode == Round::Up && neg);
  if (std::isinf(a)) {
    if (ov == Overflow::Saturate) return one(sign | t.code.back());
    return one(overflow_code(f, t, ov, sign));
  }
  if (a > vmax) {
    // The value just past max with an unbounded exponent: max + 2^(exponent(max) − mbits).
    const double next = vmax + std::ldexp(1.0, std::ilogb(vmax) - f.mbits);
    if (toward_zero) return one(sign | t.code.back());
    if (mode == Round::Up || mode == Round::Down) return one(overflow_code(f, t, ov, sign));
    const double dlo = a - vmax, dhi = next - a;
    bool up = dhi < dlo;
    if (dhi == dlo) up = mode == Round::NearestAway || (t.code.back() & 1u);  // next code = max + 1
    return one(up ? overflow_code(f, t, ov, sign) : sign | t.code.back());
  }
  const size_t hi = std::lower_bound(t.v.begin(), t.v.end(), a) - t.v.begin();
  if (t.v[hi] == a) return one(sign | t.code[hi]);
  if (hi == 0) return one(sign | t.code[0]);  // below the smallest value (no zero)
  const size_t lo = hi - 1;
  switch (mode) {
    case Round::NearestEven:
    case Round::NearestAway: {
      const double dlo = a - t.v[lo], dhi = t.v[hi] - a;  // exact (Sterbenz, or one side is 0)
      if (dlo < dhi) return one(sign | t.code[lo]);
      if (dhi < dlo) return one(sign | t.code[hi]);
      if (mode == Round::NearestAway) return one(sign | t.code[hi]);
      const bool lo_even = (t.code[lo] & 1u) == 0, hi_even = (t.code[hi] & 1u) == 0;
      if (lo_even && hi_even) return Expected{sign | t.code[lo], sign | t.code[hi]};
      return one(sign | (lo_even ? t.code[lo] : t.code[hi]));
    }
    default:
      return one(sign | (toward_zero ? t.code[lo] : t.code[hi]));
  }
}

// Every rounding boundary of a format (each value, each midpoint between neighbours, the
// overflow midpoint) as float32, each with its float32 neighbours, plus 0, tiny and huge inputs
// and +Inf. Non-negative; callers add the negatives.
std::vector<float> boundary_inputs(const FloatFormat& f, const ValueTable& t) {
  std::vector<double> centre;
  for (size_t i = 0; i < t.v.size(); ++i) {
    centre.push_back(t.v[i]);
    if (i + 1 < t.v.size()) centre.push_back(0.5 * (t.v[i] + t.v[i + 1]));
  }
  const double vmax = t.v.back();
  const double step = std::ldexp(1.0, std::ilogb(vmax) - f.mbits);
  centre.push_back(vmax + 0.5 * step);
  centre.push_back(vmax + step);
  centre.push_back(2 * vmax);
  centre.push_back(0.5 * t.v[t.v[0] == 0 ? 1 : 0]);
  centre.push_back(0.25 * t.v[t.v[0] == 0 ? 1 : 0]);
  std::vector<float> out = {0.0f, from_bits(1), from_bits(0x00400000u), std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::max(), kFInf};
  for (double c : centre) {
    const float cf = static_cast<float>(c);
    if (!std::isfinite(cf) || double(cf) != c) continue;  // not a float32: no exact boundary to probe
    out.push_back(cf);
    out.push_back(std::nextafter(cf, 0.0f));
    out.push_back(std::nextafter(cf, kFInf));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string hexf(float x) { return fmt::format("{:#010x} ({:a})", bits(x), x); }

class FloatCodecFormat : public ::testing::TestWithParam<NamedFormat> {};

std::string param_name(const ::testing::TestParamInfo<NamedFormat>& info) { return info.param.name; }

constexpr Round kDeterministic[] = {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Up, Round::Down};
constexpr Overflow kOverflows[] = {Overflow::Saturate, Overflow::Inf, Overflow::NaN};

// ---- Decode -----------------------------------------------------------------------------------

TEST_P(FloatCodecFormat, DecodeEveryCodeMatchesDefinition) {
  const FloatFormat& f = GetParam().f;
  Failures fail(fmt::format("{} decode", GetParam().name));
  int n_finite = 0;
  for (uint32_t c = 0; c < n_codes(f); ++c) {
    const double want = ref_value(f, c);
    const float got = decode_float(f, c);
    if (std::isnan(want)) {
      if (!std::isnan(got)) fail.add(fmt::format("code {:#x}: want NaN, got {}", c, got));
      continue;
    }
    n_finite += std::isfinite(want) ? 1 : 0;
    const float wf = static_cast<float>(want);
    if (double(wf) != want) fail.add(fmt::format("code {:#x}: value {} is not a float32", c, want));
    if (bits(got) != bits(wf)) fail.add(fmt::format("code {:#x}: want {} ({:#010x}), got {} ({:#010x})", c, wf, bits(wf), got, bits(got)));
  }
  EXPECT_GT(n_finite, static_cast<int>(n_codes(f) / 2));
}

TEST_P(FloatCodecFormat, DecodeIgnoresBitsAboveTheCode) {
  const FloatFormat& f = GetParam().f;
  const int width = mag_bits(f) + (f.has_sign ? 1 : 0);
  Failures fail(fmt::format("{} decode with high bits set", GetParam().name));
  for (uint32_t c = 0; c < n_codes(f); ++c) {
    const uint32_t noisy = c | (0xA5A5A5A5u << width);
    if (bits(decode_float(f, noisy)) != bits(decode_float(f, c))) fail.add(fmt::format("code {:#x}", c));
  }
}

TEST_P(FloatCodecFormat, MaxAndMinPositiveMatchTheTable) {
  const FloatFormat& f = GetParam().f;
  const ValueTable t = value_table(f);
  EXPECT_EQ(double(lowbit::float_max(f)), t.v.back());
  EXPECT_EQ(f.max_finite_code(), t.code.back());
  const size_t first_positive = t.v[0] == 0 ? 1 : 0;
  EXPECT_EQ(double(lowbit::float_min_positive(f)), t.v[first_positive]);
  EXPECT_EQ(f.min_positive_code(), t.code[first_positive]);
  // Fake quantisation is decode(encode(x)).
  Failures fail(fmt::format("{} round_to_float", GetParam().name));
  for (float x : boundary_inputs(f, t)) {
    for (Round r : kDeterministic) {
      const float fq = lowbit::round_to_float(f, x, r);
      const float want = decode_float(f, encode_float(f, x, r));
      if (bits(fq) != bits(want)) fail.add(fmt::format("x = {} {}: {} vs {}", hexf(x), lowbit::round_name(r), fq, want));
    }
  }
}

TEST(FloatCodecDecode, E2M1LiteralTable) {
  // FORMATS.md §2.2, written out.
  const double table[16] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0};
  for (uint32_t c = 0; c < 16; ++c) {
    const float got = decode_float(fd::e2m1, c);
    EXPECT_EQ(bits(got), bits(static_cast<float>(table[c]))) << "E2M1 code " << c;
    EXPECT_EQ(ref_value(fd::e2m1, c), table[c]) << "reference definition, E2M1 code " << c;
  }
}

TEST(FloatCodecDecode, FP6ValueSetsFromSpec) {
  // FORMATS.md §2.3, positive halves built from the stated steps; negative = code | 0x20.
  std::vector<double> e2m3, e3m2;
  for (int k = 0; k < 8; ++k) e2m3.push_back(k / 8.0);
  for (double v = 1.0; v <= 1.875; v += 0.125) e2m3.push_back(v);
  for (double v = 2.0; v <= 3.75; v += 0.25) e2m3.push_back(v);
  for (double v = 4.0; v <= 7.5; v += 0.5) e2m3.push_back(v);
  e3m2 = {0.0, 0.0625, 0.125, 0.1875};
  for (double v = 0.25; v <= 0.4375; v += 1.0 / 16) e3m2.push_back(v);
  for (double v = 0.5; v <= 0.875; v += 0.125) e3m2.push_back(v);
  for (double v = 1.0; v <= 1.75; v += 0.25) e3m2.push_back(v);
  for (double v = 2.0; v <= 3.5; v += 0.5) e3m2.push_back(v);
  for (double v = 4.0; v <= 7.0; v += 1.0) e3m2.push_back(v);
  for (double v = 8.0; v <= 14.0; v += 2.0) e3m2.push_back(v);
  for (double v = 16.0; v <= 28.0; v += 4.0) e3m2.push_back(v);
  ASSERT_EQ(e2m3.size(), 32u);
  ASSERT_EQ(e3m2.size(), 32u);
  for (uint32_t c = 0; c < 32; ++c) {
    EXPECT_EQ(decode_float(fd::e2m3, c), e2m3[c]) << "E2M3 code " << c;
    EXPECT_EQ(decode_float(fd::e2m3, c | 0x20), -e2m3[c]) << "E2M3 code " << (c | 0x20);
    EXPECT_EQ(decode_float(fd::e3m2, c), e3m2[c]) << "E3M2 code " << c;
    EXPECT_EQ(decode_float(fd::e3m2, c | 0x20), -e3m2[c]) << "E3M2 code " << (c | 0x20);
  }
  EXPECT_TRUE(std::signbit(decode_float(fd::e2m3, 0x20)));
  EXPECT_TRUE(std::signbit(decode_float(fd::e3m2, 0x20)));
}

TEST(FloatCodecDecode, AnchorsOfEveryNamedFormat) {
  // FORMATS.md §2.1, §2.4–2.6.
  EXPECT_EQ(decode_float(fd::e4m3, 0x7E), 448.0f);
  EXPECT_EQ(decode_float(fd::e4m3, 0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(decode_float(fd::e4m3, 0x07), 0.013671875f);
  EXPECT_EQ(decode_float(fd::e4m3, 0x08), std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(decode_float(fd::e4m3, 0x7F)));
  EXPECT_TRUE(std::isnan(decode_float(fd::e4m3, 0xFF)));
  EXPECT_EQ(decode_float(fd::e4m3, 0xFE), -448.0f);
  EXPECT_EQ(decode_float(fd::e5m2, 0x7B), 57344.0f);
  EXPECT_EQ(decode_float(fd::e5m2, 0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(decode_float(fd::e5m2, 0x03), 4.57763671875e-5f);
  EXPECT_EQ(decode_float(fd::e5m2, 0x7C), kFInf);
  EXPECT_EQ(decode_float(fd::e5m2, 0xFC), -kFInf);
  for (uint32_t c : {0x7Du, 0x7Eu, 0x7Fu, 0xFDu, 0xFEu, 0xFFu}) EXPECT_TRUE(std::isnan(decode_float(fd::e5m2, c))) << c;
  EXPECT_EQ(bits(decode_float(fd::e8m0, 0x00)), 0x00400000u);  // 2^-127, an fp32 subnormal
  EXPECT_EQ(decode_float(fd::e8m0, 0x7F), 1.0f);
  EXPECT_EQ(decode_float(fd::e8m0, 0xFE), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(decode_float(fd::e8m0, 0xFF)));
  EXPECT_EQ(decode_float(fd::fp16, 0x7BFF), 65504.0f);
  EXPECT_EQ(decode_float(fd::fp16, 0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(decode_float(fd::fp16, 0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(decode_float(fd::fp16, 0x3C00), 1.0f);
  EXPECT_EQ(decode_float(fd::bf16, 0x7F7F), static_cast<float>(std::ldexp(255.0, 120)));
  EXPECT_NEAR(decode_float(fd::bf16, 0x7F7F), 3.3895e38f, 1e34f);
  EXPECT_EQ(decode_float(fd::bf16, 0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(decode_float(fd::bf16, 0x0080), std::ldexp(1.0f, -126));
  EXPECT_EQ(decode_float(fd::bf16, 0x3F80), 1.0f);
  EXPECT_EQ(bits(decode_float(fd::bf16, 0x8000)), 0x80000000u);
}

// ---- Golden vectors and the NaN / Inf / −0 matrix -------------------------------------------

struct Golden {
  const char* what;
  FloatFormat f;
  float x;
  Round r;
  Overflow o;
  NanMode n;
  uint32_t want;
};

void check_golden(const char* label, const std::vector<Golden>& cases) {
  for (const Golden& g : cases) {
    const uint32_t got = encode_float(g.f, g.x, g.r, g.o, g.n);
    EXPECT_EQ(got, g.want) << fmt::format("{} {}: x = {} ({:#010x}), round {}, overflow {}, nan {}: want {:#x}, got {:#x}",
                                          label, g.what, g.x, bits(g.x), lowbit::round_name(g.r),
                                          lowbit::overflow_name(g.o), lowbit::nan_mode_name(g.n), g.want, got);
  }
}

constexpr Round RNE = Round::NearestEven;
constexpr Round RNA = Round::NearestAway;
constexpr Round RZ = Round::TowardZero;
constexpr Round RP = Round::Up;
constexpr Overflow SAT = Overflow::Saturate;
constexpr Overflow NOSAT = Overflow::Inf;
constexpr NanMode CUDA = NanMode::Cuda;
constexpr NanMode MLD = NanMode::MlDtypes;

TEST(FloatCodecGolden, E4M3) {
  // FORMATS.md §11 inputs; 464 is the RNE tie between 448 (0x7E, even) and 480; > 464 overflows.
  const float x4640001 = 464.0001f;
  ASSERT_GT(x4640001, 464.0f);
  check_golden("E4M3", {
      {"448 sat", fd::e4m3, 448.0f, RNE, SAT, CUDA, 0x7E},
      {"448 nosat", fd::e4m3, 448.0f, RNE, NOSAT, CUDA, 0x7E},
      {"464 sat", fd::e4m3, 464.0f, RNE, SAT, CUDA, 0x7E},
      {"464 nosat", fd::e4m3, 464.0f, RNE, NOSAT, CUDA, 0x7E},
      {"464.0001 sat", fd::e4m3, x4640001, RNE, SAT, CUDA, 0x7E},
      {"464.0001 nosat", fd::e4m3, x4640001, RNE, NOSAT, CUDA, 0x7F},
      {"465 sat", fd::e4m3, 465.0f, RNE, SAT, CUDA, 0x7E},
      {"465 nosat", fd::e4m3, 465.0f, RNE, NOSAT, CUDA, 0x7F},
      {"-465 nosat", fd::e4m3, -465.0f, RNE, NOSAT, CUDA, 0xFF},
      {"-464 sat", fd::e4m3, -464.0f, RNE, SAT, CUDA, 0xFE},
      {"+Inf sat", fd::e4m3, kFInf, RNE, SAT, CUDA, 0x7E},
      {"-Inf sat", fd::e4m3, -kFInf, RNE, SAT, CUDA, 0xFE},
      {"+Inf nosat", fd::e4m3, kFInf, RNE, NOSAT, CUDA, 0x7F},
      {"-Inf nosat", fd::e4m3, -kFInf, RNE, NOSAT, CUDA, 0xFF},
      {"NaN sat", fd::e4m3, kFNaN, RNE, SAT, CUDA, 0x7F},
      {"NaN nosat", fd::e4m3, kFNaN, RNE, NOSAT, CUDA, 0x7F},
      {"-NaN cuda (sign dropped)", fd::e4m3, -kFNaN, RNE, SAT, CUDA, 0x7F},
      {"3*2^-10 tie to even", fd::e4m3, 3.0f * std::ldexp(1.0f, -10), RNE, SAT, CUDA, 0x02},
      {"2^-10 tie to zero", fd::e4m3, std::ldexp(1.0f, -10), RNE, SAT, CUDA, 0x00},
      {"-2^-10 tie to -0", fd::e4m3, -std::ldexp(1.0f, -10), RNE, SAT, CUDA, 0x80},
  });
}

TEST(FloatCodecGolden, E5M2) {
  // 61440 is the tie between 57344 (0x7B, odd mantissa) and 2^16: RNE goes up, i.e. overflows.
  check_golden("E5M2", {
      {"57344", fd::e5m2, 57344.0f, RNE, SAT, CUDA, 0x7B},
      {"57344 nosat", fd::e5m2, 57344.0f, RNE, NOSAT, CUDA, 0x7B},
      {"61439 sat", fd::e5m2, 61439.0f, RNE, SAT, CUDA, 0x7B},
      {"61439 nosat", fd::e5m2, 61439.0f, RNE, NOSAT, CUDA, 0x7B},
      {"61440 sat", fd::e5m2, 61440.0f, RNE, SAT, CUDA, 0x7B},
      {"61440 nosat", fd::e5m2, 61440.0f, RNE, NOSAT, CUDA, 0x7C},
      {"-61440 nosat", fd::e5m2, -61440.0f, RNE, NOSAT, CUDA, 0xFC},
      {"NaN cuda", fd::e5m2, kFNaN, RNE, SAT, CUDA, 0x7F},
      {"NaN ml_dtypes", fd::e5m2, kFNaN, RNE, NOSAT, MLD, 0x7E},
  });
}

TEST(FloatCodecGolden, E2M1) {
  // §2.2 decision intervals: ties go to the even mantissa.
  check_golden("E2M1", {
      {"0.25", fd::e2m1, 0.25f, RNE, SAT, CUDA, 0x0},  {"0.75", fd::e2m1, 0.75f, RNE, SAT, CUDA, 0x2},
      {"1.25", fd::e2m1, 1.25f, RNE, SAT, CUDA, 0x2},  {"1.75", fd::e2m1, 1.75f, RNE, SAT, CUDA, 0x4},
      {"2.5", fd::e2m1, 2.5f, RNE, SAT, CUDA, 0x4},    {"3.5", fd::e2m1, 3.5f, RNE, SAT, CUDA, 0x6},
      {"5", fd::e2m1, 5.0f, RNE, SAT, CUDA, 0x6},      {"7", fd::e2m1, 7.0f, RNE, SAT, CUDA, 0x7},
      {"6.5", fd::e2m1, 6.5f, RNE, SAT, CUDA, 0x7},    {"-5", fd::e2m1, -5.0f, RNE, SAT, CUDA, 0xE},
      {"NaN cuda", fd::e2m1, kFNaN, RNE, SAT, CUDA, 0x7},
      {"NaN ml_dtypes", fd::e2m1, kFNaN, RNE, NOSAT, MLD, 0x8},
      {"-0.1", fd::e2m1, -0.1f, RNE, SAT, CUDA, 0x8},
      {"0.75 rz", fd::e2m1, 0.75f, RZ, SAT, CUDA, 0x1}, {"5.99 rz", fd::e2m1, 5.99f, RZ, SAT, CUDA, 0x6},
      {"7 rz", fd::e2m1, 7.0f, RZ, SAT, CUDA, 0x7},     {"-0.4 rz", fd::e2m1, -0.4f, RZ, SAT, CUDA, 0x8},
  });
}

TEST(FloatCodecGolden, E8M0CudaRoundZeroAndPosInf) {
  // §4.2 table (CUDA __nv_cvt_float_to_e8m0; confirmed by execution) and §11 inputs. CUDA NOSAT
  // is Overflow::NaN here (E8M0 has no Inf; Overflow::Inf falls back to the NaN code too).
  const float tiny = 6e-39f;  // fp32 subnormal, 2^-127 < tiny < 2^-126
  ASSERT_GT(tiny, std::ldexp(1.0f, -127));
  ASSERT_LT(tiny, std::ldexp(1.0f, -126));
  const Overflow NAN_OV = Overflow::NaN;
  check_golden("E8M0", {
      {"0 rz", fd::e8m0, 0.0f, RZ, SAT, CUDA, 0x00},         {"0 rp", fd::e8m0, 0.0f, RP, SAT, CUDA, 0x00},
      {"-0 rz", fd::e8m0, -0.0f, RZ, SAT, CUDA, 0x00},
      {"1.5 rz", fd::e8m0, 1.5f, RZ, SAT, CUDA, 0x7F},       {"1.5 rp", fd::e8m0, 1.5f, RP, SAT, CUDA, 0x80},
      {"0.75 rz", fd::e8m0, 0.75f, RZ, SAT, CUDA, 0x7E},     {"0.75 rp", fd::e8m0, 0.75f, RP, SAT, CUDA, 0x7F},
      {"3.0 rz", fd::e8m0, 3.0f, RZ, SAT, CUDA, 0x80},       {"3.0 rp", fd::e8m0, 3.0f, RP, SAT, CUDA, 0x81},
      {"-3.0 rz (|x|)", fd::e8m0, -3.0f, RZ, SAT, CUDA, 0x80}, {"-3.0 rp (|x|)", fd::e8m0, -3.0f, RP, SAT, CUDA, 0x81},
      {"6e-39 rz", fd::e8m0, tiny, RZ, SAT, CUDA, 0x00},     {"6e-39 rp", fd::e8m0, tiny, RP, SAT, CUDA, 0x01},
      {"3.4e38 rz", fd::e8m0, 3.4e38f, RZ, SAT, CUDA, 0xFE}, {"3.4e38 rz nosat", fd::e8m0, 3.4e38f, RZ, NAN_OV, CUDA, 0xFE},
      {"3.4e38 rp sat", fd::e8m0, 3.4e38f, RP, SAT, CUDA, 0xFE},
      {"3.4e38 rp nosat", fd::e8m0, 3.4e38f, RP, NAN_OV, CUDA, 0xFF},
      {"3.4e38 rp nosat (Overflow::Inf)", fd::e8m0, 3.4e38f, RP, NOSAT, CUDA, 0xFF},
      {"Inf rz sat", fd::e8m0, kFInf, RZ, SAT, CUDA, 0xFE},  {"Inf rp sat", fd::e8m0, kFInf, RP, SAT, CUDA, 0xFE},
      {"Inf rz nosat", fd::e8m0, kFInf, RZ, NAN_OV, CUDA, 0xFF}, {"Inf rp nosat", fd::e8m0, kFInf, RP, NAN_OV, CUDA, 0xFF},
      {"NaN rz", fd::e8m0, kFNaN, RZ, SAT, CUDA, 0xFF},      {"NaN rp", fd::e8m0, kFNaN, RP, SAT, CUDA, 0xFF},
  });
}

TEST(FloatCodecGolden, E8M0MlDtypesAndTorch) {
  // §4.2 trap: ml_dtypes and torch round every exact tie 1.5·2^k up (3.0 → 0x81, 0.75 → 0x7F,
  // 6.0 → 0x82); that is Round::NearestAway on the magnitude. ml_dtypes: 0 and negatives → 0xFF
  // (NanMode::MlDtypes); torch: 0 → 0x00 and |x| (−2 → 0x80) (NanMode::Cuda).
  const Overflow NAN_OV = Overflow::NaN;
  check_golden("E8M0", {
      {"ml 0", fd::e8m0, 0.0f, RNA, NAN_OV, MLD, 0xFF},       {"ml -2", fd::e8m0, -2.0f, RNA, NAN_OV, MLD, 0xFF},
      {"ml -0", fd::e8m0, -0.0f, RNA, NAN_OV, MLD, 0xFF},     {"ml 1.5", fd::e8m0, 1.5f, RNA, NAN_OV, MLD, 0x80},
      {"ml 3.0", fd::e8m0, 3.0f, RNA, NAN_OV, MLD, 0x81},     {"ml 0.75", fd::e8m0, 0.75f, RNA, NAN_OV, MLD, 0x7F},
      {"ml 6.0", fd::e8m0, 6.0f, RNA, NAN_OV, MLD, 0x82},     {"ml NaN", fd::e8m0, kFNaN, RNA, NAN_OV, MLD, 0xFF},
      {"ml Inf", fd::e8m0, kFInf, RNA, NAN_OV, MLD, 0xFF},    {"ml 6e-39", fd::e8m0, 6e-39f, RNA, NAN_OV, MLD, 0x00},
      {"torch 0", fd::e8m0, 0.0f, RNA, NAN_OV, CUDA, 0x00},   {"torch -2", fd::e8m0, -2.0f, RNA, NAN_OV, CUDA, 0x80},
      {"torch 3.0", fd::e8m0, 3.0f, RNA, NAN_OV, CUDA, 0x81}, {"torch 0.75", fd::e8m0, 0.75f, RNA, NAN_OV, CUDA, 0x7F},
      {"torch 6.0", fd::e8m0, 6.0f, RNA, NAN_OV, CUDA, 0x82},
  });
}

TEST(FloatCodecGolden, E8M0NearestEvenTiesToEvenExponent) {
  // §2.9: RNE ties go to the code with even LSB, and for E8M0 the LSB is the exponent LSB; the
  // ties-up behaviour of ml_dtypes/torch is the §4.2 trap, available as Round::NearestAway.
  check_golden("E8M0 RNE", {
      {"1.5 -> 2 (0x80 even)", fd::e8m0, 1.5f, RNE, SAT, CUDA, 0x80},
      {"3.0 -> 2 (0x80 even)", fd::e8m0, 3.0f, RNE, SAT, CUDA, 0x80},
      {"6.0 -> 8 (0x82 even)", fd::e8m0, 6.0f, RNE, SAT, CUDA, 0x82},
      {"12.0 -> 8 (0x82 even)", fd::e8m0, 12.0f, RNE, SAT, CUDA, 0x82},
      {"0.75 -> 0.5 (0x7E even)", fd::e8m0, 0.75f, RNE, SAT, CUDA, 0x7E},
      {"0.375 -> 0.5 (0x7E even)", fd::e8m0, 0.375f, RNE, SAT, CUDA, 0x7E},
      {"3.0000002 -> 4 (above the tie)", fd::e8m0, std::nextafter(3.0f, 4.0f), RNE, SAT, CUDA, 0x81},
  });
}

TEST(FloatCodecGolden, FP16AndBF16) {
  // §2.6 (confirmed by execution).
  const float one_p8 = 1.0f + std::ldexp(1.0f, -8), one_3p8 = 1.0f + 3 * std::ldexp(1.0f, -8);
  check_golden("FP16/BF16", {
      {"bf16(1+2^-8)", fd::bf16, one_p8, RNE, NOSAT, CUDA, 0x3F80},
      {"bf16(1+3*2^-8)", fd::bf16, one_3p8, RNE, NOSAT, CUDA, 0x3F82},
      {"fp16(65520)", fd::fp16, 65520.0f, RNE, NOSAT, CUDA, 0x7C00},
      {"fp16(65519)", fd::fp16, 65519.0f, RNE, NOSAT, CUDA, 0x7BFF},
      {"fp16(65520) rz", fd::fp16, 65520.0f, RZ, NOSAT, CUDA, 0x7BFF},
      {"fp16(-65520)", fd::fp16, -65520.0f, RNE, NOSAT, CUDA, 0xFC00},
      {"bf16 NaN cuda", fd::bf16, kFNaN, RNE, NOSAT, CUDA, 0x7FFF},
      {"fp16 NaN cuda", fd::fp16, kFNaN, RNE, NOSAT, CUDA, 0x7FFF},
  });
}

TEST(FloatCodecMatrix, CudaSatfiniteRow) {
  // FORMATS.md §2.8, row "CUDA SATFINITE" (Overflow::Saturate, NanMode::Cuda).
  check_golden("CUDA SAT", {
      {"E4M3 overflow", fd::e4m3, 1000.0f, RNE, SAT, CUDA, 0x7E}, {"E4M3 -overflow", fd::e4m3, -1000.0f, RNE, SAT, CUDA, 0xFE},
      {"E4M3 Inf", fd::e4m3, kFInf, RNE, SAT, CUDA, 0x7E},        {"E4M3 -Inf", fd::e4m3, -kFInf, RNE, SAT, CUDA, 0xFE},
      {"E4M3 NaN", fd::e4m3, kFNaN, RNE, SAT, CUDA, 0x7F},        {"E4M3 -NaN", fd::e4m3, -kFNaN, RNE, SAT, CUDA, 0x7F},
      {"E5M2 NaN", fd::e5m2, kFNaN, RNE, SAT, CUDA, 0x7F},        {"E5M2 -NaN", fd::e5m2, -kFNaN, RNE, SAT, CUDA, 0x7F},
      {"E5M2 Inf", fd::e5m2, kFInf, RNE, SAT, CUDA, 0x7B},
      {"FP4 overflow", fd::e2m1, 100.0f, RNE, SAT, CUDA, 0x7},    {"FP4 -Inf", fd::e2m1, -kFInf, RNE, SAT, CUDA, 0xF},
      {"E2M3 Inf", fd::e2m3, kFInf, RNE, SAT, CUDA, 0x1F},        {"E3M2 -overflow", fd::e3m2, -31.0f, RNE, SAT, CUDA, 0x3F},
      {"FP4 NaN", fd::e2m1, kFNaN, RNE, SAT, CUDA, 0x7},          {"FP4 -NaN", fd::e2m1, -kFNaN, RNE, SAT, CUDA, 0x7},
      {"E2M3 NaN", fd::e2m3, kFNaN, RNE, SAT, CUDA, 0x1F},        {"E3M2 -NaN", fd::e3m2, -kFNaN, RNE, SAT, CUDA, 0x1F},
      {"E4M3 -0", fd::e4m3, -0.0f, RNE, SAT, CUDA, 0x80},         {"E5M2 -0", fd::e5m2, -0.0f, RNE, SAT, CUDA, 0x80},
      {"FP4 -0", fd::e2m1, -0.0f, RNE, SAT, CUDA, 0x8},           {"FP6 -0", fd::e2m3, -0.0f, RNE, SAT, CUDA, 0x20},
      {"FP16 -0", fd::fp16, -0.0f, RNE, SAT, CUDA, 0x8000},       {"BF16 -0", fd::bf16, -0.0f, RNE, SAT, CUDA, 0x8000},
  });
}

TEST(FloatCodecMatrix, CudaNosatRow) {
  // Row "CUDA NOSAT" (Overflow::Inf, NanMode::Cuda). FP4/FP6 have no NOSAT in CUDA; lowbit's
  // Overflow::Inf gives ±max there (no Inf, no NaN).
  check_golden("CUDA NOSAT", {
      {"E4M3 overflow", fd::e4m3, 1000.0f, RNE, NOSAT, CUDA, 0x7F}, {"E4M3 -overflow", fd::e4m3, -1000.0f, RNE, NOSAT, CUDA, 0xFF},
      {"E4M3 Inf", fd::e4m3, kFInf, RNE, NOSAT, CUDA, 0x7F},        {"E4M3 -Inf", fd::e4m3, -kFInf, RNE, NOSAT, CUDA, 0xFF},
      {"E4M3 NaN", fd::e4m3, kFNaN, RNE, NOSAT, CUDA, 0x7F},        {"E4M3 -NaN", fd::e4m3, -kFNaN, RNE, NOSAT, CUDA, 0x7F},
      {"E5M2 NaN", fd::e5m2, kFNaN, RNE, NOSAT, CUDA, 0x7F},        {"E5M2 Inf", fd::e5m2, kFInf, RNE, NOSAT, CUDA, 0x7C},
      {"E5M2 -overflow", fd::e5m2, -1e6f, RNE, NOSAT, CUDA, 0xFC},
      {"E4M3 -0", fd::e4m3, -0.0f, RNE, NOSAT, CUDA, 0x80},
      {"FP4 overflow", fd::e2m1, 100.0f, RNE, NOSAT, CUDA, 0x7},    {"FP6 -Inf", fd::e3m2, -kFInf, RNE, NOSAT, CUDA, 0x3F},
  });
}

TEST(FloatCodecMatrix, MlDtypesRow) {
  // Row "ml_dtypes 0.6.0" (NanMode::MlDtypes + Overflow::Inf).
  check_golden("ml_dtypes", {
      {"E4M3 overflow", fd::e4m3, 1000.0f, RNE, NOSAT, MLD, 0x7F}, {"E4M3 -overflow", fd::e4m3, -1000.0f, RNE, NOSAT, MLD, 0xFF},
      {"E4M3 Inf", fd::e4m3, kFInf, RNE, NOSAT, MLD, 0x7F},        {"E4M3 -Inf", fd::e4m3, -kFInf, RNE, NOSAT, MLD, 0xFF},
      {"E4M3 NaN", fd::e4m3, kFNaN, RNE, NOSAT, MLD, 0x7F},        {"E4M3 -NaN", fd::e4m3, -kFNaN, RNE, NOSAT, MLD, 0xFF},
      {"E5M2 NaN", fd::e5m2, kFNaN, RNE, NOSAT, MLD, 0x7E},        {"E5M2 -NaN", fd::e5m2, -kFNaN, RNE, NOSAT, MLD, 0xFE},
      {"E5M2 Inf", fd::e5m2, kFInf, RNE, NOSAT, MLD, 0x7C},
      {"FP4 overflow", fd::e2m1, 100.0f, RNE, NOSAT, MLD, 0x7},    {"FP4 -Inf", fd::e2m1, -kFInf, RNE, NOSAT, MLD, 0xF},
      {"FP4 NaN", fd::e2m1, kFNaN, RNE, NOSAT, MLD, 0x8},          {"FP4 -NaN", fd::e2m1, -kFNaN, RNE, NOSAT, MLD, 0x0},
      {"E2M3 NaN", fd::e2m3, kFNaN, RNE, NOSAT, MLD, 0x20},        {"E3M2 NaN", fd::e3m2, kFNaN, RNE, NOSAT, MLD, 0x20},
      {"E3M2 -NaN", fd::e3m2, -kFNaN, RNE, NOSAT, MLD, 0x00},      {"E2M3 overflow", fd::e2m3, 9.0f, RNE, NOSAT, MLD, 0x1F},
      {"BF16 NaN", fd::bf16, kFNaN, RNE, NOSAT, MLD, 0x7FC0},      {"BF16 -NaN", fd::bf16, -kFNaN, RNE, NOSAT, MLD, 0xFFC0},
      {"FP16 NaN", fd::fp16, kFNaN, RNE, NOSAT, MLD, 0x7E00},
      {"E4M3 -0", fd::e4m3, -0.0f, RNE, NOSAT, MLD, 0x80},         {"FP4 -0", fd::e2m1, -0.0f, RNE, NOSAT, MLD, 0x8},
      {"E3M2 -0", fd::e3m2, -0.0f, RNE, NOSAT, MLD, 0x20},
  });
}

// ---- Brute-force oracle on every rounding boundary --------------------------------------------

TEST_P(FloatCodecFormat, BruteForceOracleOnEveryBoundary) {
  const FloatFormat& f = GetParam().f;
  const ValueTable t = value_table(f);
  std::vector<float> xs = boundary_inputs(f, t);
  const size_t n_pos = xs.size();
  for (size_t i = 0; i < n_pos; ++i) xs.push_back(-xs[i]);
  for (Round mode : kDeterministic) {
    for (Overflow ov : kOverflows) {
      Failures fail(fmt::format("{} {} {}", GetParam().name, lowbit::round_name(mode), lowbit::overflow_name(ov)));
      for (float x : xs) {
        const uint32_t got = encode_float(f, x, mode, ov, NanMode::Cuda);
        const Expected want = brute_force(f, t, x, mode, ov);
        if (!want.accepts(got)) fail.add(fmt::format("x = {}: want {:#x}, got {:#x}", hexf(x), want.a, got));
      }
    }
  }
  EXPECT_GT(xs.size(), 4 * t.v.size());
}

// ---- Properties -------------------------------------------------------------------------------

// Finite canonical codes of both signs.
std::vector<uint32_t> finite_codes(const FloatFormat& f, const ValueTable& t) {
  std::vector<uint32_t> out = t.code;
  if (f.has_sign)
    for (uint32_t c : t.code) out.push_back(c | sign_of(f));
  return out;
}

TEST_P(FloatCodecFormat, EncodeOfDecodeIsIdentityOnFiniteCodes) {
  const FloatFormat& f = GetParam().f;
  const ValueTable t = value_table(f);
  const std::vector<uint32_t> codes = finite_codes(f, t);
  Failures fail(fmt::format("{} idempotence", GetParam().name));
  uint64_t i = 0;
  for (uint32_t c : codes) {
    const float v = decode_float(f, c);
    for (Round mode : {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Up, Round::Down, Round::Stochastic}) {
      for (Overflow ov : kOverflows) {
        for (NanMode nm : {NanMode::Cuda, NanMode::MlDtypes}) {
          const uint32_t r = lowbit::sr_bits(7, i++);
          const uint32_t got = encode_float(f, v, mode, ov, nm, r);
          if (got != c)
            fail.add(fmt::format("code {:#x} (value {}), {} {} {}: got {:#x}", c, v, lowbit::round_name(mode),
                                 lowbit::overflow_name(ov), lowbit::nan_mode_name(nm), got));
        }
      }
    }
  }
  EXPECT_EQ(codes.size(), (f.has_sign ? 2 : 1) * t.v.size());
}

TEST_P(FloatCodecFormat, SignSymmetry) {
  const FloatFormat& f = GetParam().f;
  if (!f.has_sign) GTEST_SKIP() << "unsigned format";
  const ValueTable t = value_table(f);
  const std::vector<float> xs = boundary_inputs(f, t);
  Failures fail(fmt::format("{} sign symmetry", GetParam().name));
  uint64_t i = 0;
  for (float x : xs) {
    for (Overflow ov : kOverflows) {
      for (Round mode : {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Stochastic}) {
        const uint32_t r = lowbit::sr_bits(11, i++);
        const uint32_t p = encode_float(f, x, mode, ov, NanMode::Cuda, r);
        const uint32_t n = encode_float(f, -x, mode, ov, NanMode::Cuda, r);
        if (n != (p | sign_of(f)))
          fail.add(fmt::format("x = {} {}: enc(x) = {:#x}, enc(-x) = {:#x}", hexf(x), lowbit::round_name(mode), p, n));
      }
      // Directed modes mirror each other: enc(−x, Up) = enc(x, Down) | sign.
      const uint32_t d = encode_float(f, x, Round::Down, ov, NanMode::Cuda);
      const uint32_t u = encode_float(f, -x, Round::Up, ov, NanMode::Cuda);
      if (u != (d | sign_of(f))) fail.add(fmt::format("x = {}: enc(x, rd) = {:#x}, enc(-x, ru) = {:#x}", hexf(x), d, u));
    }
  }
}

TEST_P(FloatCodecFormat, RoundTripIsMonotone) {
  const FloatFormat& f = GetParam().f;
  const ValueTable t = value_table(f);
  std::vector<float> xs = boundary_inputs(f, t);
  // Plus a sweep over the float32 bit patterns of both signs.
  for (uint32_t u = 0; u < 0x7f800000u; u += 9973) xs.push_back(from_bits(u));
  if (f.has_sign) {
    const size_t n = xs.size();
    for (size_t i = 0; i < n; ++i) xs.push_back(-xs[i]);
  }
  std::sort(xs.begin(), xs.end());
  for (Round mode : kDeterministic) {
    for (Overflow ov : {Overflow::Saturate, Overflow::Inf}) {
      if (ov == Overflow::Inf && !f.has_inf) continue;  // NaN on overflow is unordered
      Failures fail(fmt::format("{} monotone {} {}", GetParam().name, lowbit::round_name(mode), lowbit::overflow_name(ov)));
      double prev = -kInf;
      float prev_x = -kFInf;
      for (float x : xs) {
        const double y = decode_float(f, encode_float(f, x, mode, ov, NanMode::Cuda));
        if (std::isnan(y) || y < prev) fail.add(fmt::format("x = {} -> {} after x = {} -> {}", hexf(x), y, hexf(prev_x), prev));
        if (!std::isnan(y)) prev = y;
        prev_x = x;
      }
    }
  }
}

TEST_P(FloatCodecFormat, ScaleExpEqualsExactPrescale) {
  const FloatFormat& f = GetParam().f;
  const ValueTable t = value_table(f);
  std::vector<float> xs = boundary_inputs(f, t);
  const size_t n = xs.size();
  for (size_t i = 0; i < n; ++i) xs.push_back(-xs[i]);
  Failures fail(fmt::format("{} scale_exp", GetParam().name));
  int n_exact = 0;
  uint64_t i = 0;
  const size_t stride = xs.size() > 20000 ? 7 : 1;  // FP16/BF16: every 7th boundary input
  for (int k : {-140, -64, -20, -3, -1, 1, 2, 5, 17, 64, 127, 140}) {
    for (size_t j = 0; j < xs.size(); j += stride) {
      const float x0 = xs[j];
      // Bring the boundary to where x·2^-k is it: x = x0·2^k (exact in double).
      const double xd = std::ldexp(double(x0), k);
      const float x = static_cast<float>(xd);
      if (double(x) != xd || !std::isfinite(x)) continue;  // x itself not a float32
      ++n_exact;
      for (Round mode : {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Up, Round::Down, Round::Stochastic}) {
        for (Overflow ov : {Overflow::Saturate, Overflow::Inf}) {
          const uint32_t r = lowbit::sr_bits(3, i++);
          const uint32_t got = encode_float(f, x, mode, ov, NanMode::Cuda, r, k);
          const uint32_t want = encode_float(f, x0, mode, ov, NanMode::Cuda, r);
          if (got != want)
            fail.add(fmt::format("x = {}, k = {}, {}: enc(x, k) = {:#x}, enc(x*2^-k = {}) = {:#x}", hexf(x), k,
                                 lowbit::round_name(mode), got, hexf(x0), want));
        }
      }
    }
  }
  EXPECT_GT(n_exact, static_cast<int>(xs.size() / stride));
}

TEST_P(FloatCodecFormat, ScaleExpBeyondFloat32RangeMatchesOracle) {
  // x·2^-k is not a float32 (overflows or underflows it); the exact value is still encoded.
  const FloatFormat& f = GetParam().f;
  const ValueTable t = value_table(f);
  const std::vector<float> xs = boundary_inputs(f, t);
  Failures fail(fmt::format("{} scale_exp oracle", GetParam().name));
  int n_checked = 0;
  for (int k : {-200, -150, 150, 200, 280}) {
    for (float x0 : xs) {
      if (x0 == 0 || std::isinf(x0)) continue;
      // Choose x = x0·2^k only where that is a float32 and x0 is a boundary: exact value x0.
      const double xd = std::ldexp(double(x0), k);
      const float x = static_cast<float>(xd);
      if (double(x) != xd || !std::isfinite(x)) continue;
      ++n_checked;
      for (Round mode : kDeterministic) {
        const uint32_t got = encode_float(f, x, mode, Overflow::Saturate, NanMode::Cuda, 0, k);
        const Expected want = brute_force(f, t, double(x0), mode, Overflow::Saturate);
        if (!want.accepts(got))
          fail.add(fmt::format("x = {}, k = {}, {}: want {:#x}, got {:#x}", hexf(x), k, lowbit::round_name(mode), want.a, got));
      }
    }
    // Values that are not float32 at all after scaling: the smallest / largest float32.
    for (float x : {from_bits(1), std::numeric_limits<float>::max(), std::numeric_limits<float>::min()}) {
      const double exact = std::ldexp(double(x), -k);
      for (Round mode : kDeterministic) {
        const uint32_t got = encode_float(f, x, mode, Overflow::Saturate, NanMode::Cuda, 0, k);
        const Expected want = brute_force(f, t, exact, mode, Overflow::Saturate);
        ++n_checked;
        if (!want.accepts(got))
          fail.add(fmt::format("x = {}, k = {}, {}: want {:#x}, got {:#x}", hexf(x), k, lowbit::round_name(mode), want.a, got));
      }
    }
  }
  EXPECT_GT(n_checked, 0);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, FloatCodecFormat, ::testing::ValuesIn(all_formats()), param_name);

// ---- Stochastic rounding ----------------------------------------------------------------------

struct SrCase {
  const char* what;
  FloatFormat f;
  float x;
};

TEST(FloatCodecStochastic, UnbiasedAndOnlyTheTwoNeighbours) {
  const std::vector<SrCase> cases = {
      {"E4M3 1.0375", fd::e4m3, 1.0375f},           // between 1 and 1.125
      {"E4M3 -3.3", fd::e4m3, -3.3f},               // between -3.25 and -3.5
      {"E4M3 subnormal", fd::e4m3, 0.0051f},        // between 2·2^-9 and 3·2^-9
      {"E2M1 2.6", fd::e2m1, 2.6f},                 // between 2 and 3
      {"E2M1 0.1", fd::e2m1, 0.1f},                 // between 0 and 0.5
      {"E2M1 5.9", fd::e2m1, 5.9f},                 // between 4 and 6
      {"E5M2 1e-5", fd::e5m2, 1e-5f},               // subnormal range
      {"E3M2 -17.5", fd::e3m2, -17.5f},             // between -16 and -20
      {"BF16 1+2^-9", fd::bf16, 1.0f + std::ldexp(1.0f, -9)},
      {"E8M0 3.0", fd::e8m0, 3.0f},                 // between 2 and 4
      {"E8M0 0.7", fd::e8m0, 0.7f},                 // between 0.5 and 1
  };
  constexpr int kN = 200000;
  for (const SrCase& c : cases) {
    const ValueTable t = value_table(c.f);
    const uint32_t lo = brute_force(c.f, t, c.x, Round::TowardZero, Overflow::Saturate).a;
    const uint32_t hi = brute_force(c.f, t, c.x, c.x < 0 ? Round::Down : Round::Up, Overflow::Saturate).a;
    ASSERT_NE(lo, hi) << c.what << ": x must lie strictly between two codes";
    const double vlo = decode_float(c.f, lo), vhi = decode_float(c.f, hi);
    const double p = (double(c.x) - vlo) / (vhi - vlo);  // probability of rounding away
    ASSERT_GT(p, 0.0);
    ASSERT_LT(p, 1.0);
    double sum = 0;
    int n_hi = 0, n_other = 0;
    for (int i = 0; i < kN; ++i) {
      const uint32_t code = encode_float(c.f, c.x, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, lowbit::sr_bits(0x5eed, i));
      if (code == hi) ++n_hi;
      else if (code != lo) ++n_other;
      sum += decode_float(c.f, code);
    }
    EXPECT_EQ(n_other, 0) << c.what << ": results other than the two neighbours";
    const double mean = sum / kN;
    const double se = std::fabs(vhi - vlo) * std::sqrt(p * (1 - p) / kN);
    EXPECT_LE(std::fabs(mean - double(c.x)), 4 * se)
        << c.what << ": mean " << mean << " vs x " << c.x << " (se " << se << ", P(away) " << p << ", observed " << double(n_hi) / kN << ")";
    EXPECT_GT(n_hi, 0) << c.what;
    EXPECT_LT(n_hi, kN) << c.what;
  }
}

TEST(FloatCodecStochastic, SameSeedSameCodesOtherSeedOtherCodes) {
  constexpr int kN = 10000;
  const float x = 1.0375f;  // P(away) = 0.3 in E4M3
  auto run = [&](uint64_t seed) {
    std::vector<uint32_t> codes(kN);
    for (int i = 0; i < kN; ++i)
      codes[i] = encode_float(fd::e4m3, x, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, lowbit::sr_bits(seed, i));
    return codes;
  };
  const std::vector<uint32_t> a = run(42), b = run(42), c = run(43);
  EXPECT_EQ(a, b);
  int n_diff = 0;
  for (int i = 0; i < kN; ++i) n_diff += a[i] != c[i];
  // Independent streams differ at a fraction 2p(1−p) = 0.42 of positions.
  EXPECT_GT(n_diff, kN / 4);
  EXPECT_LT(n_diff, kN * 6 / 10);
}

TEST(FloatCodecStochastic, RandomBitsThresholdIsTheFraction) {
  // §2.9 reference semantics with lowbit's documented rule: away iff rbits < frac·2^32.
  // E4M3 x = 1 + 0.25·2^-3: frac = 1/4.
  const float x = 1.0f + 0.25f * 0.125f;
  EXPECT_EQ(encode_float(fd::e4m3, x, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, 0x3FFFFFFFu), 0x39u);
  EXPECT_EQ(encode_float(fd::e4m3, x, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, 0x40000000u), 0x38u);
  EXPECT_EQ(encode_float(fd::e4m3, x, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, 0u), 0x39u);
  EXPECT_EQ(encode_float(fd::e4m3, x, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, 0xFFFFFFFFu), 0x38u);
  EXPECT_EQ(encode_float(fd::e4m3, -x, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, 0u), 0xB9u);
  // Exact values never move, whatever the bits.
  EXPECT_EQ(encode_float(fd::e4m3, 1.125f, Round::Stochastic, Overflow::Saturate, NanMode::Cuda, 0u), 0x39u);
}

}  // namespace
