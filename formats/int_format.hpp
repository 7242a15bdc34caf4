// Integer element codecs: b-bit two's-complement or unsigned integers (b = 2..16), with the
// same rounding modes as the minifloats. Scaling (symmetric, asymmetric, per group) lives in
// the tensor formats; here a value is rounded to an integer and clamped to a range.
#pragma once
#include <cstdint>

#include "formats/hd.hpp"
#include "formats/rounding.hpp"

namespace lowbit {

struct IntFormat {
  int bits = 8;
  bool is_signed = true;
  LOWBIT_HD constexpr int32_t lo() const { return is_signed ? -(int32_t{1} << (bits - 1)) : 0; }
  LOWBIT_HD constexpr int32_t hi() const { return is_signed ? (int32_t{1} << (bits - 1)) - 1 : (int32_t{1} << bits) - 1; }
  LOWBIT_HD constexpr uint32_t mask() const { return (1u << bits) - 1; }
  constexpr bool operator==(const IntFormat&) const = default;
};

// Rounds t * 2^-scale_exp (exact) to an integer under `mode` and clamps it to [lo, hi].
// NaN gives 0; +-Inf clamp to hi / lo.
LOWBIT_HD int32_t round_to_int(float t, int32_t lo, int32_t hi, Round mode = Round::NearestEven,
                               uint32_t rbits = 0, int scale_exp = 0) {
  const uint32_t u = f32_bits(t);
  const bool neg = u >> 31;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0;
  int64_t mag;
  if (a == 0x7f800000u) {
    mag = int64_t{1} << 40;
  } else {
    const uint32_t ex = a >> 23;
    const uint32_t sig = ex ? ((a & 0x7fffffu) | 0x800000u) : a;
    const int e2 = (ex ? static_cast<int>(ex) - 150 : -149) - scale_exp;
    if (e2 > 16) {
      mag = int64_t{1} << 40;  // |t| >= 2^17: beyond every 16-bit range
    } else {
      mag = static_cast<int64_t>(round_shifted(sig, -e2, neg, mode, rbits));
    }
  }
  const int64_t v = neg ? -mag : mag;
  return static_cast<int32_t>(v < lo ? lo : (v > hi ? hi : v));
}

LOWBIT_HD uint32_t int_to_code(const IntFormat& f, int32_t v) { return static_cast<uint32_t>(v) & f.mask(); }

LOWBIT_HD int32_t code_to_int(const IntFormat& f, uint32_t code) {
  code &= f.mask();
  if (f.is_signed && (code >> (f.bits - 1))) return static_cast<int32_t>(code) - (int32_t{1} << f.bits);
  return static_cast<int32_t>(code);
}

}  // namespace lowbit
