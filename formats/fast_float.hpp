// Branch-free round-to-nearest-even of float32 to a minifloat, for the hot loops of fake
// quantisation and encoding. Same results as encode_float/decode_float with Round::NearestEven
// and NanMode::Cuda (checked exhaustively over all 2^32 inputs in tests/formats), written with
// selects only so that compilers vectorise the loops that call it.
//
//   |x| >= 2^emin: keep the top mbits of the fp32 mantissa, rounding the dropped d = 23 - mbits
//                  bits to nearest-even on the bit pattern (a carry moves to the next binade).
//   |x| <  2^emin: (|x| + C) - C with C = 2^(emin - mbits + 23): the fp32 addition rounds to the
//                  target's subnormal quantum 2^(emin - mbits), ties to even, exactly.
// Valid for formats with a zero, gradual subnormals and 1 <= mbits < 23 (fast_rne_supported()).
#pragma once
#include <cstdint>

#include "formats/float_format.hpp"
#include "formats/hd.hpp"

namespace lowbit {

LOWBIT_HD constexpr bool fast_rne_supported(const FloatFormat& f) {
  // mbits >= 1: the tie parity is then the fp32 mantissa bit at d, the code's LSB.
  return f.has_zero && f.subnormals && f.mbits >= 1 && f.mbits < 23 && f.emin() - f.mbits + 23 <= 127 && f.emin() >= -126;
}

// Constants of the fast path for one format and overflow/NaN policy.
struct FastRne {
  uint32_t d = 0;          // dropped mantissa bits, 23 - mbits
  uint32_t min_normal = 0; // bits of 2^emin
  float magic = 0;         // 2^(emin - mbits + 23)
  float max_val = 0;       // largest finite value
  uint32_t over_bits = 0;  // |result| bits for overflow (max, Inf or NaN)
  uint32_t nan_bits = 0;   // result bits for NaN input (canonical NaN, or +max without NaN)
  // Codes.
  uint32_t exp_adjust = 0;   // ((127 - bias) << mbits)
  float sub_to_code_a = 0, sub_to_code_b = 0;  // 2^(mbits - emin), split in two exact factors
  uint32_t max_code = 0, over_code = 0, nan_code = 0, sign_code = 0;
  int32_t mbits = 0, emin = 0;  // for stochastic rounding

  LOWBIT_HD static FastRne make(const FloatFormat& f, Overflow overflow) {
    FastRne k;
    k.d = 23u - static_cast<uint32_t>(f.mbits);
    k.mbits = f.mbits;
    k.emin = f.emin();
    k.min_normal = static_cast<uint32_t>(f.emin() + 127) << 23;
    k.magic = exp2i(f.emin() - f.mbits + 23);
    k.max_val = float_max(f);
    k.max_code = f.max_finite_code();
    // What a finite overflow / Inf becomes (encode_float's rules; RNE never rounds toward zero).
    uint32_t oc = k.max_code;
    if (overflow != Overflow::Saturate) {
      if (f.has_inf && overflow == Overflow::Inf) oc = f.inf_code();
      else if (f.nan != NanEncoding::None) oc = f.canonical_nan_code();
    }
    k.over_code = oc;
    k.over_bits = f32_bits(decode_float(f, oc)) & 0x7fffffffu;
    k.nan_code = f.nan == NanEncoding::None ? k.max_code : f.canonical_nan_code();
    k.nan_bits = f32_bits(decode_float(f, k.nan_code));
    k.exp_adjust = static_cast<uint32_t>(127 - f.bias) << f.mbits;
    const int sub_shift = f.mbits - f.emin();  // up to 133 (BF16): beyond one float's range
    k.sub_to_code_a = exp2i(sub_shift / 2);
    k.sub_to_code_b = exp2i(sub_shift - sub_shift / 2);
    k.sign_code = f.sign_bit();
    return k;
  }

  // |x| rounded, as fp32 bits (before overflow handling). a = |x| bits, finite.
  LOWBIT_HD_HOT uint32_t round_abs_bits(uint32_t a) const {
    const uint32_t lsb = (a >> d) & 1u;
    const uint32_t normal = (a + ((1u << (d - 1)) - 1u) + lsb) & ~((1u << d) - 1u);
    const float ax = f32_from_bits(a);
    const uint32_t sub = f32_bits((ax + magic) - magic);
    return a >= min_normal ? normal : sub;
  }

  // decode(encode(x)) as a float.
  LOWBIT_HD_HOT float value(float x) const {
    const uint32_t u = f32_bits(x);
    const uint32_t a = u & 0x7fffffffu;
    const uint32_t s = u & 0x80000000u;
    uint32_t r = round_abs_bits(a);
    r = r > f32_bits(max_val) ? over_bits : r;
    r |= s;
    r = a > 0x7f800000u ? nan_bits : r;
    return f32_from_bits(r);
  }

  // Stochastic rounding of x to a value of the format, before overflow handling, as fp32:
  // with E = max(floor(log2|x|), emin), v = |x| * 2^(mbits - E) in [0, 2^(mbits+1)) is exact,
  // and rounding v up iff rbits < floor(frac(v) * 2^32) is round_shifted()'s Stochastic rule.
  // Finite x only; value_sr/code_sr wrap it with the NaN / Inf / overflow selects.
  LOWBIT_HD_HOT float sr_abs(uint32_t a, uint32_t rbits) const {
    const int32_t ef = static_cast<int32_t>(a >> 23) - 127;
    const int32_t e = ef > emin ? ef : emin;
    const int32_t k = mbits - e;  // |k| <= 150: two exact power-of-two factors
    const int32_t k1 = k >> 1, k2 = k - k1;
    const float v = (f32_from_bits(a) * f32_from_bits(static_cast<uint32_t>(k1 + 127) << 23)) *
                    f32_from_bits(static_cast<uint32_t>(k2 + 127) << 23);
    // v < 2^24 and frac(v) * 2^32 < 2^32: signed conversions suffice (and vectorise).
    const int32_t u = static_cast<int32_t>(v);
    const uint32_t frac32 =
        static_cast<uint32_t>(static_cast<int64_t>((v - static_cast<float>(u)) * 4294967296.0f));
    const float q = static_cast<float>(u + (rbits < frac32 ? 1 : 0));
    return (q * f32_from_bits(static_cast<uint32_t>(127 - k1) << 23)) * f32_from_bits(static_cast<uint32_t>(127 - k2) << 23);
  }

  // decode(encode(x)) and encode(x) under Round::Stochastic with the given random bits.
  LOWBIT_HD_HOT float value_sr(float x, uint32_t rbits) const {
    const uint32_t u = f32_bits(x);
    const uint32_t a = u & 0x7fffffffu;
    const bool finite = a < 0x7f800000u;
    // Keep the float-to-int conversions in sr_abs defined for every lane (NaN/Inf -> 0).
    const uint32_t r = f32_bits(sr_abs(finite ? a : 0u, rbits)) | (u & 0x80000000u);
    const uint32_t m = 0u - static_cast<uint32_t>(finite);  // all ones for finite x
    return value(f32_from_bits((r & m) | (u & ~m)));
  }
  LOWBIT_HD_HOT uint32_t code_sr(float x, uint32_t rbits) const {
    const uint32_t u = f32_bits(x);
    const uint32_t a = u & 0x7fffffffu;
    const bool finite = a < 0x7f800000u;
    // Keep the float-to-int conversions in sr_abs defined for every lane (NaN/Inf -> 0).
    const uint32_t r = f32_bits(sr_abs(finite ? a : 0u, rbits)) | (u & 0x80000000u);
    const uint32_t m = 0u - static_cast<uint32_t>(finite);  // all ones for finite x
    return code(f32_from_bits((r & m) | (u & ~m)));
  }

  // encode(x) as a code.
  LOWBIT_HD_HOT uint32_t code(float x) const {
    const uint32_t u = f32_bits(x);
    const uint32_t a = u & 0x7fffffffu;
    const uint32_t r = round_abs_bits(a);
    const uint32_t normal_code = (r >> d) - exp_adjust;
    const uint32_t sub_code = static_cast<uint32_t>(static_cast<int32_t>((f32_from_bits(r) * sub_to_code_a) * sub_to_code_b));
    uint32_t c = r >= min_normal ? normal_code : sub_code;
    c = r > f32_bits(max_val) ? over_code : c;
    c |= (u >> 31) ? sign_code : 0u;
    c = a > 0x7f800000u ? nan_code : c;
    return c;
  }
};

}  // namespace lowbit
