// Tests of the integer element codec (formats/int_format.hpp): round_to_int under every
// rounding mode on hand cases (FORMATS.md §1.1 tie conventions), specials, huge and subnormal
// inputs, a sweep against the C library's roundings in double, the exact scale_exp pre-scale,
// and the two's-complement / unsigned code mapping for 2..8 bits (FORMATS.md §1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "formats/int_format.hpp"

namespace {

using lowbit::code_to_int;
using lowbit::int_to_code;
using lowbit::IntFormat;
using lowbit::Round;
using lowbit::round_to_int;

constexpr int32_t kLo = -1000, kHi = 1000;  // wide enough that the hand cases never clamp
const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct HandCase {
  float t;
  int32_t rne, rna, rz, rd, ru;
};

TEST(IntCodecRound, HandCasesEveryMode) {
  // Ties: RNE to even (torch.round, numpy.rint, rint), RNA away from zero (std::round).
  const std::vector<HandCase> cases = {
      {0.5f, 0, 1, 0, 0, 1},       {1.5f, 2, 2, 1, 1, 2},     {2.5f, 2, 3, 2, 2, 3},
      {-0.5f, 0, -1, 0, -1, 0},    {-2.5f, -2, -3, -2, -3, -2}, {7.9f, 8, 8, 7, 7, 8},
      {-9.0f, -9, -9, -9, -9, -9}, {-7.9f, -8, -8, -7, -8, -7}, {0.0f, 0, 0, 0, 0, 0},
      {-0.0f, 0, 0, 0, 0, 0},      {3.0f, 3, 3, 3, 3, 3},     {0.49999997f, 0, 0, 0, 0, 1},
      {-1.5f, -2, -2, -1, -2, -1}, {999.5f, 1000, 1000, 999, 999, 1000},
  };
  for (const HandCase& c : cases) {
    EXPECT_EQ(round_to_int(c.t, kLo, kHi, Round::NearestEven), c.rne) << "rne " << c.t;
    EXPECT_EQ(round_to_int(c.t, kLo, kHi, Round::NearestAway), c.rna) << "rna " << c.t;
    EXPECT_EQ(round_to_int(c.t, kLo, kHi, Round::TowardZero), c.rz) << "rz " << c.t;
    EXPECT_EQ(round_to_int(c.t, kLo, kHi, Round::Down), c.rd) << "rd " << c.t;
    EXPECT_EQ(round_to_int(c.t, kLo, kHi, Round::Up), c.ru) << "ru " << c.t;
  }
}

TEST(IntCodecRound, ClampToInt4Range) {
  const IntFormat int4{4, true};
  for (Round r : {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Down, Round::Up}) {
    EXPECT_EQ(round_to_int(-9.0f, int4.lo(), int4.hi(), r), -8) << lowbit::round_name(r);
    EXPECT_EQ(round_to_int(8.0f, int4.lo(), int4.hi(), r), 7) << lowbit::round_name(r);
    EXPECT_EQ(round_to_int(-8.0f, int4.lo(), int4.hi(), r), -8) << lowbit::round_name(r);
  }
  EXPECT_EQ(round_to_int(7.9f, int4.lo(), int4.hi(), Round::NearestEven), 7);  // 8 clamped
  EXPECT_EQ(round_to_int(7.9f, int4.lo(), int4.hi(), Round::TowardZero), 7);
  EXPECT_EQ(round_to_int(7.4f, int4.lo(), int4.hi(), Round::NearestEven), 7);
  const IntFormat uint4{4, false};
  EXPECT_EQ(round_to_int(-0.7f, uint4.lo(), uint4.hi(), Round::NearestEven), 0);
  EXPECT_EQ(round_to_int(15.6f, uint4.lo(), uint4.hi(), Round::NearestEven), 15);
  EXPECT_EQ(round_to_int(14.5f, uint4.lo(), uint4.hi(), Round::NearestEven), 14);
}

TEST(IntCodecRound, SpecialsHugeAndSubnormal) {
  const float sub = 1e-40f;  // fp32 subnormal
  ASSERT_LT(sub, std::numeric_limits<float>::min());
  const float tiniest = lowbit::f32_from_bits(1);
  for (Round r : {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Down, Round::Up, Round::Stochastic}) {
    const auto name = lowbit::round_name(r);
    EXPECT_EQ(round_to_int(kInf, -128, 127, r), 127) << name;
    EXPECT_EQ(round_to_int(-kInf, -128, 127, r), -128) << name;
    EXPECT_EQ(round_to_int(kNaN, -128, 127, r), 0) << name;
    EXPECT_EQ(round_to_int(-kNaN, -128, 127, r), 0) << name;
    EXPECT_EQ(round_to_int(1e30f, -128, 127, r), 127) << name;
    EXPECT_EQ(round_to_int(-1e30f, -128, 127, r), -128) << name;
    EXPECT_EQ(round_to_int(std::numeric_limits<float>::max(), INT32_MIN, INT32_MAX, r), INT32_MAX) << name;
    EXPECT_EQ(round_to_int(-std::numeric_limits<float>::max(), INT32_MIN, INT32_MAX, r), INT32_MIN) << name;
    EXPECT_EQ(round_to_int(3e9f, INT32_MIN, INT32_MAX, r), INT32_MAX) << name;
    EXPECT_EQ(round_to_int(-3e9f, INT32_MIN, INT32_MAX, r), INT32_MIN) << name;
    // Largest float below 2^31 and 2^24 + 2 are integers: exact in every mode.
    EXPECT_EQ(round_to_int(2147483520.0f, INT32_MIN, INT32_MAX, r), 2147483520) << name;
    EXPECT_EQ(round_to_int(16777218.0f, INT32_MIN, INT32_MAX, r), 16777218) << name;
    EXPECT_EQ(round_to_int(-65536.0f, INT32_MIN, INT32_MAX, r), -65536) << name;
  }
  // Subnormal magnitudes: far below a half.
  for (float t : {sub, tiniest}) {
    EXPECT_EQ(round_to_int(t, -8, 7, Round::NearestEven), 0);
    EXPECT_EQ(round_to_int(t, -8, 7, Round::NearestAway), 0);
    EXPECT_EQ(round_to_int(t, -8, 7, Round::TowardZero), 0);
    EXPECT_EQ(round_to_int(t, -8, 7, Round::Down), 0);
    EXPECT_EQ(round_to_int(t, -8, 7, Round::Up), 1);
    EXPECT_EQ(round_to_int(-t, -8, 7, Round::Down), -1);
    EXPECT_EQ(round_to_int(-t, -8, 7, Round::Up), 0);
    EXPECT_EQ(round_to_int(-t, -8, 7, Round::TowardZero), 0);
  }
}

TEST(IntCodecRound, StochasticUsesTheFraction) {
  // Away from zero iff rbits < frac·2^32 (rounding.hpp).
  EXPECT_EQ(round_to_int(0.25f, kLo, kHi, Round::Stochastic, 0x3FFFFFFFu), 1);
  EXPECT_EQ(round_to_int(0.25f, kLo, kHi, Round::Stochastic, 0x40000000u), 0);
  EXPECT_EQ(round_to_int(-2.75f, kLo, kHi, Round::Stochastic, 0xBFFFFFFFu), -3);
  EXPECT_EQ(round_to_int(-2.75f, kLo, kHi, Round::Stochastic, 0xC0000000u), -2);
  EXPECT_EQ(round_to_int(5.0f, kLo, kHi, Round::Stochastic, 0u), 5);
  // Mean over many draws is the input (unbiased).
  double sum = 0;
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    const uint32_t r = static_cast<uint32_t>((uint64_t(i) * 0x9E3779B97F4A7C15ull) >> 32);  // equidistributed
    sum += round_to_int(2.3f, kLo, kHi, Round::Stochastic, r);
  }
  EXPECT_NEAR(sum / kN, 2.3, 1e-3);
}

// Reference in double: every input below is exact there, so the C library gives the truth.
double ref_round(double v, Round r) {
  switch (r) {
    case Round::NearestEven: return std::nearbyint(v);  // default FE_TONEAREST
    case Round::NearestAway: return std::round(v);
    case Round::TowardZero: return std::trunc(v);
    case Round::Down: return std::floor(v);
    case Round::Up: return std::ceil(v);
    default: return 0;
  }
}

TEST(IntCodecRound, SweepAgainstLibmWithScaleExp) {
  std::vector<float> ts;
  for (int q = -4000; q <= 4000; ++q) ts.push_back(q * 0.25f);          // every tie and quarter
  for (int q = -300; q <= 300; ++q) ts.push_back(q * 0.1f);             // inexact binary fractions
  for (uint32_t u = 0; u < 0x7f800000u; u += 104729) {                  // all magnitudes
    ts.push_back(lowbit::f32_from_bits(u));
    ts.push_back(-lowbit::f32_from_bits(u));
  }
  int n_bad = 0, n_checked = 0;
  for (const IntFormat f : {IntFormat{2, true}, IntFormat{4, true}, IntFormat{8, true}, IntFormat{8, false}, IntFormat{16, true}}) {
    for (int k : {-140, -20, -1, 0, 1, 3, 30, 140}) {
      for (float t : ts) {
        const double exact = std::ldexp(double(t), -k);  // t·2^-k, exact in double
        for (Round r : {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Down, Round::Up}) {
          const double want = std::clamp(ref_round(exact, r), double(f.lo()), double(f.hi()));
          const int32_t got = round_to_int(t, f.lo(), f.hi(), r, 0, k);
          ++n_checked;
          if (double(got) != want && ++n_bad <= 10)
            ADD_FAILURE() << fmt::format("bits {} signed {}: t = {} ({:a}), k = {}, {}: want {}, got {}", f.bits, f.is_signed, t, t, k,
                                         lowbit::round_name(r), want, got);
        }
      }
    }
  }
  EXPECT_EQ(n_bad, 0);
  EXPECT_GT(n_checked, 1000000);
}

TEST(IntCodecRound, ScaleExpEqualsExactPrescale) {
  // round_to_int(t, scale_exp = k) == round_to_int(t·2^-k) where t·2^-k is a float32.
  EXPECT_EQ(round_to_int(5.0f, kLo, kHi, Round::NearestEven, 0, 1), 2);    // 2.5 → 2
  EXPECT_EQ(round_to_int(5.0f, kLo, kHi, Round::NearestAway, 0, 1), 3);    // 2.5 → 3
  EXPECT_EQ(round_to_int(3.0f, kLo, kHi, Round::NearestEven, 0, -2), 12);
  EXPECT_EQ(round_to_int(-7.0f, kLo, kHi, Round::Down, 0, 2), -2);         // −1.75 → −2
  EXPECT_EQ(round_to_int(1e-40f, kLo, kHi, Round::TowardZero, 0, -140),
            static_cast<int32_t>(std::trunc(std::ldexp(double(1e-40f), 140))));
  EXPECT_EQ(round_to_int(3e38f, -128, 127, Round::NearestEven, 0, 130), 0);  // 3e38·2^-130 ≈ 0.22
  EXPECT_EQ(round_to_int(3e38f, -128, 127, Round::Up, 0, 130), 1);
  int n_checked = 0;
  for (int q = -2000; q <= 2000; ++q) {
    const float t = q * 0.375f;
    for (int k : {-3, -1, 1, 2, 4}) {
      const float pre = std::ldexp(t, -k);
      if (double(pre) != std::ldexp(double(t), -k)) continue;
      for (Round r : {Round::NearestEven, Round::NearestAway, Round::TowardZero, Round::Down, Round::Up, Round::Stochastic}) {
        const uint32_t rbits = static_cast<uint32_t>(q * 2654435761u + k);
        EXPECT_EQ(round_to_int(t, -128, 127, r, rbits, k), round_to_int(pre, -128, 127, r, rbits))
            << "t " << t << " k " << k << " " << lowbit::round_name(r);
        ++n_checked;
      }
    }
  }
  EXPECT_GT(n_checked, 10000);
}

TEST(IntCodecCodes, RangesMatchSpec) {
  // FORMATS.md §1 table.
  EXPECT_EQ(IntFormat({2, true}).lo(), -2);
  EXPECT_EQ(IntFormat({2, true}).hi(), 1);
  EXPECT_EQ(IntFormat({3, true}).lo(), -4);
  EXPECT_EQ(IntFormat({3, true}).hi(), 3);
  EXPECT_EQ(IntFormat({4, true}).lo(), -8);
  EXPECT_EQ(IntFormat({4, true}).hi(), 7);
  EXPECT_EQ(IntFormat({8, true}).lo(), -128);
  EXPECT_EQ(IntFormat({8, true}).hi(), 127);
  EXPECT_EQ(IntFormat({2, false}).hi(), 3);
  EXPECT_EQ(IntFormat({4, false}).lo(), 0);
  EXPECT_EQ(IntFormat({4, false}).hi(), 15);
  EXPECT_EQ(IntFormat({8, false}).hi(), 255);
}

TEST(IntCodecCodes, RoundTripsForTwoToEightBits) {
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool is_signed : {true, false}) {
      const IntFormat f{bits, is_signed};
      const int32_t lo = is_signed ? -(1 << (bits - 1)) : 0;
      const int32_t hi = is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
      ASSERT_EQ(f.lo(), lo);
      ASSERT_EQ(f.hi(), hi);
      for (int32_t v = lo; v <= hi; ++v) {
        const uint32_t c = int_to_code(f, v);
        EXPECT_LT(c, 1u << bits) << bits << " " << v;
        // Two's complement: the code is v mod 2^bits.
        EXPECT_EQ(c, static_cast<uint32_t>((v + (1 << bits)) % (1 << bits))) << bits << " " << v;
        EXPECT_EQ(code_to_int(f, c), v) << "bits " << bits << " signed " << is_signed << " v " << v;
        // Bits above the width are ignored when decoding.
        EXPECT_EQ(code_to_int(f, c | (0xA5u << bits)), v) << "bits " << bits << " v " << v;
        // round_to_int of an exact integer is that integer.
        EXPECT_EQ(round_to_int(static_cast<float>(v), lo, hi), v);
      }
      for (uint32_t c = 0; c < (1u << bits); ++c) EXPECT_EQ(int_to_code(f, code_to_int(f, c)), c) << bits << " " << c;
    }
  }
  EXPECT_EQ(int_to_code(IntFormat{4, true}, -8), 0x8u);
  EXPECT_EQ(int_to_code(IntFormat{4, true}, -1), 0xFu);
  EXPECT_EQ(code_to_int(IntFormat{4, true}, 0x8), -8);
  EXPECT_EQ(code_to_int(IntFormat{4, false}, 0x8), 8);
  EXPECT_EQ(code_to_int(IntFormat{2, true}, 0x2), -2);
  EXPECT_EQ(code_to_int(IntFormat{8, true}, 0x80), -128);
  EXPECT_EQ(code_to_int(IntFormat{8, true}, 0x7F), 127);
}

}  // namespace
