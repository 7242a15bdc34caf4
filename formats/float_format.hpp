// Minifloats from one description: FloatFormat says how many exponent and mantissa bits, the
// bias, and how NaN / Inf / zero / subnormals are encoded. One generic encoder and decoder
// serve every ExMy format (FP4 E2M1 ... FP16, BF16, E8M0 and any user-given ExMy), on host and
// device. Adding a format is one constexpr line (DESIGN.md principle 1).
//
// Encoding is exact integer arithmetic on the float32 bit pattern: the input is
// sig * 2^e2 exactly, the target quantum at its binade is 2^(Eq - mbits), and the dropped bits
// are rounded by round_shifted(). This is the rounding procedure of the CUDA 13 headers
// (FORMATS.md §2.7), generalised to every rounding mode.
#pragma once
#include <cstdint>

#include "formats/hd.hpp"
#include "formats/rounding.hpp"

namespace lowbit {

// Where a format keeps its NaN codes.
//   None     no NaN (FP4, FP6)
//   Ieee     the top exponent field with a non-zero mantissa (E5M2, FP16, BF16)
//   AllOnes  only the all-ones magnitude (E4M3FN: S.1111.111; E8M0: 0xFF)
enum class NanEncoding : uint8_t { None, Ieee, AllOnes };

struct FloatFormat {
  int ebits = 0;
  int mbits = 0;
  int bias = 0;
  bool has_sign = true;
  bool has_inf = false;             // top exponent field with zero mantissa = Inf (IEEE)
  NanEncoding nan = NanEncoding::None;
  bool has_zero = true;             // false: exponent field 0 is an ordinary binade (E8M0)
  bool subnormals = true;           // false: no subnormal codes; values round to 0 or 2^emin

  LOWBIT_HD constexpr int magnitude_bits() const { return ebits + mbits; }
  LOWBIT_HD constexpr int total_bits() const { return magnitude_bits() + (has_sign ? 1 : 0); }
  LOWBIT_HD constexpr uint32_t magnitude_mask() const { return (1u << magnitude_bits()) - 1; }
  LOWBIT_HD constexpr uint32_t sign_bit() const { return has_sign ? 1u << magnitude_bits() : 0u; }
  LOWBIT_HD constexpr uint32_t max_exp_field() const { return (1u << ebits) - 1; }
  // Exponent of the lowest binade that holds normal numbers.
  LOWBIT_HD constexpr int emin() const { return (has_zero ? 1 : 0) - bias; }
  // Largest finite magnitude code.
  LOWBIT_HD constexpr uint32_t max_finite_code() const {
    if (has_inf || nan == NanEncoding::Ieee) return (max_exp_field() << mbits) - 1;
    if (nan == NanEncoding::AllOnes) return magnitude_mask() - 1;
    return magnitude_mask();
  }
  // Smallest positive magnitude code (1 with subnormals; the min normal otherwise; 0 for E8M0).
  LOWBIT_HD constexpr uint32_t min_positive_code() const {
    if (!has_zero) return 0;
    return subnormals ? 1u : (1u << mbits);
  }
  LOWBIT_HD constexpr uint32_t canonical_nan_code() const {
    return nan == NanEncoding::None ? 0u : magnitude_mask();  // positive, all ones
  }
  LOWBIT_HD constexpr uint32_t inf_code() const { return max_exp_field() << mbits; }
  constexpr bool operator==(const FloatFormat&) const = default;
};

// The named formats (FORMATS.md §2.1).
namespace fmt_desc {
inline constexpr FloatFormat e2m1{2, 1, 1, true, false, NanEncoding::None};
inline constexpr FloatFormat e2m3{2, 3, 1, true, false, NanEncoding::None};
inline constexpr FloatFormat e3m2{3, 2, 3, true, false, NanEncoding::None};
inline constexpr FloatFormat e4m3{4, 3, 7, true, false, NanEncoding::AllOnes};
inline constexpr FloatFormat e5m2{5, 2, 15, true, true, NanEncoding::Ieee};
inline constexpr FloatFormat e8m0{8, 0, 127, false, false, NanEncoding::AllOnes, false};
inline constexpr FloatFormat fp16{5, 10, 15, true, true, NanEncoding::Ieee};
inline constexpr FloatFormat bf16{8, 7, 127, true, true, NanEncoding::Ieee};
inline constexpr FloatFormat fp32{8, 23, 127, true, true, NanEncoding::Ieee};
}  // namespace fmt_desc

// Decodes a code (upper bits beyond total_bits ignored) to its exact float32 value.
// Every finite value of a valid format is a float32 (validate_float_format checks).
LOWBIT_HD float decode_float(const FloatFormat& f, uint32_t code) {
  const bool neg = f.has_sign && (code & f.sign_bit());
  const uint32_t mag = code & f.magnitude_mask();
  const uint32_t ef = mag >> f.mbits;
  const uint32_t mf = mag & ((1u << f.mbits) - 1);
  const float sgn = neg ? -1.0f : 1.0f;
  // NaN and Inf are built from bits: the sign of a NaN product is not specified by IEEE 754.
  const uint32_t sign32 = neg ? 0x80000000u : 0u;
  if (f.nan == NanEncoding::AllOnes && mag == f.magnitude_mask()) return f32_from_bits(sign32 | 0x7fc00000u);
  if (ef == f.max_exp_field() && (f.has_inf || f.nan == NanEncoding::Ieee)) {
    if (mf == 0 && f.has_inf) return f32_from_bits(sign32 | 0x7f800000u);
    if (mf != 0 && f.nan == NanEncoding::Ieee) return f32_from_bits(sign32 | 0x7fc00000u);
  }
  float v;
  if (ef == 0 && f.has_zero) {
    // Subnormal: mf * 2^(emin - mbits); flushed formats read them as zero.
    v = f.subnormals ? static_cast<float>(mf) * exp2i(f.emin() - f.mbits) : 0.0f;
  } else {
    // (2^mbits + mf) * 2^(e - mbits): an integer below 2^24 times a power of two (normal or
    // subnormal) whose product is representable, hence exact.
    const int e = static_cast<int>(ef) - f.bias;
    v = static_cast<float>((1u << f.mbits) + mf) * exp2i(e - f.mbits);
  }
  return sgn * v;
}

// Encodes x * 2^-scale_exp (exactly; scale_exp lets block formats divide by a power-of-two
// scale without an intermediate rounding) under the given policies. rbits are the 32 random
// bits for stochastic rounding (see sr_bits), ignored otherwise.
LOWBIT_HD uint32_t encode_float(const FloatFormat& f, float x, Round mode = Round::NearestEven,
                                Overflow overflow = Overflow::Saturate, NanMode nan_mode = NanMode::Cuda,
                                uint32_t rbits = 0, int scale_exp = 0) {
  const uint32_t u = f32_bits(x);
  const bool neg = f.has_sign && (u >> 31);  // unsigned formats encode |x| (CUDA E8M0)
  const uint32_t sign = neg ? f.sign_bit() : 0u;
  const uint32_t a = u & 0x7fffffffu;
  const uint32_t max_code = f.max_finite_code();

  if (a > 0x7f800000u) {  // NaN
    if (nan_mode == NanMode::Cuda) {
      return f.nan == NanEncoding::None ? max_code : f.canonical_nan_code();
    }
    const uint32_t in_sign = (u >> 31) && f.has_sign ? f.sign_bit() : 0u;
    if (f.nan == NanEncoding::None) return in_sign ^ f.sign_bit();  // ml_dtypes: opposite-signed zero
    if (f.nan == NanEncoding::AllOnes) return in_sign | f.magnitude_mask();
    // IEEE: ml_dtypes' own types give the signed canonical quiet NaN; numpy's float16 (the
    // FP16 row of this mode) keeps the top payload bits, a zero payload becoming 1.
    constexpr FloatFormat kFp16 = fmt_desc::fp16;  // a constant-evaluated copy: usable in device code
    if (f == kFp16) {
      const uint32_t payload = (a & 0x7fffffu) >> (23 - f.mbits);
      return in_sign | f.inf_code() | (payload ? payload : 1u);
    }
    return in_sign | f.inf_code() | (1u << (f.mbits - 1));
  }
  if (a == 0x7f800000u) {  // +-Inf
    if (overflow == Overflow::Saturate) return sign | max_code;
    if (f.has_inf && overflow == Overflow::Inf) return sign | f.inf_code();
    if (f.nan != NanEncoding::None) return sign | f.canonical_nan_code();
    return sign | max_code;
  }
  if (!f.has_zero && (a == 0 || ((u >> 31) && nan_mode == NanMode::MlDtypes))) {
    // E8M0 has no zero: CUDA/torch give 0x00 (2^-127), ml_dtypes gives NaN.
    return nan_mode == NanMode::MlDtypes ? f.canonical_nan_code() : 0u;
  }
  if (a == 0) return sign;  // +-0 keeps its sign

  // |x| = sig * 2^e2 exactly.
  const uint32_t ex = a >> 23;
  const uint32_t sig = ex ? ((a & 0x7fffffu) | 0x800000u) : a;
  const int e2 = (ex ? static_cast<int>(ex) - 150 : -149) - scale_exp;
  const int e_floor = e2 + 31 - clz32(sig);  // floor(log2 |x|)
  const int emin = f.emin();
  if (f.has_zero && !f.subnormals && e_floor < emin) {
    // No subnormals: the neighbours are 0 and 2^emin; round at that quantum (a tie goes to 0,
    // whose significand is the even one).
    const uint64_t q = round_shifted(sig, emin - e2, neg, mode, rbits);
    return sign | (q ? (1u << f.mbits) : 0u);
  }
  const int eq = e_floor > emin ? e_floor : emin;
  const int shift = (eq - f.mbits) - e2;
  // Normal: ((eq + bias) << mbits) + (q - 2^mbits); a carry to 2^(mbits+1) moves to the next
  // binade by itself. Subnormal (eq = emin, q < 2^mbits): the exponent field is 0.
  const int64_t base = (static_cast<int64_t>(eq + f.bias - (f.has_zero ? 1 : 0)) << f.mbits) -
                       (f.has_zero ? 0 : (int64_t{1} << f.mbits));  // no zero: field 0 is a binade
  const uint64_t q = round_shifted(sig, shift, neg, mode, rbits, static_cast<uint64_t>(base));
  int64_t code = base + static_cast<int64_t>(q);
  if (code < 0) code = 0;  // no zero (E8M0): below the smallest power stays at code 0
  if (code > static_cast<int64_t>(max_code)) {
    if (overflow == Overflow::Saturate || rounds_toward_zero(mode, neg)) return sign | max_code;
    if (f.has_inf && overflow == Overflow::Inf) return sign | f.inf_code();
    if (f.nan != NanEncoding::None) return sign | f.canonical_nan_code();
    return sign | max_code;
  }
  return sign | static_cast<uint32_t>(code);
}

// Largest finite value and smallest positive value of a format.
LOWBIT_HD float float_max(const FloatFormat& f) { return decode_float(f, f.max_finite_code()); }
LOWBIT_HD float float_min_positive(const FloatFormat& f) { return decode_float(f, f.min_positive_code()); }

// Fake quantisation of one value: decode(encode(x)).
LOWBIT_HD float round_to_float(const FloatFormat& f, float x, Round mode = Round::NearestEven,
                               Overflow overflow = Overflow::Saturate, NanMode nan_mode = NanMode::Cuda,
                               uint32_t rbits = 0) {
  return decode_float(f, encode_float(f, x, mode, overflow, nan_mode, rbits));
}

}  // namespace lowbit
