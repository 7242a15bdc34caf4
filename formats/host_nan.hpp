// fp32 / fp64 arithmetic whose NaN results are those of the CPU reference (x86-64 SSE/AVX),
// host and device. The reference formats store and return floats computed by plain `a op b` on
// the host, where a NaN result is the first source operand if it is a NaN, else the second, in
// both cases quietened (payload and sign kept), and an invalid operation on non-NaN operands
// (Inf - Inf, 0 * Inf, 0 / 0, Inf / Inf) gives the "real indefinite" NaN 0xffc00000
// (Intel SDM vol. 1, table 4-7). CUDA arithmetic returns the canonical NaN 0x7fffffff instead
// and PTX leaves abs/neg of a NaN unspecified, so device code that must give the CPU's bytes
// spells the NaN cases out with these functions. Non-NaN results are the IEEE round-to-nearest
// ones on both sides (the device ops are the explicitly rounded intrinsics, so --fmad cannot
// fuse them). "First operand" is the operand order written in the reference's source; for
// commutative operations the compiler may swap them, which matters only when both are NaN
// (tests/formats/test_codebook_rules.cpp checks the cases the codebook and LZS rules meet).
#pragma once
#include <cstdint>

#include "formats/hd.hpp"

namespace lowbit {

inline constexpr uint32_t kX86DefaultNan = 0xffc00000u;
inline constexpr uint64_t kX86DefaultNan64 = 0xfff8000000000000ull;

LOWBIT_HD_HOT bool hx_isnan(float a) { return (f32_bits(a) & 0x7fffffffu) > 0x7f800000u; }
LOWBIT_HD_HOT float hx_quiet(float a) { return f32_from_bits(f32_bits(a) | 0x00400000u); }
// |a| by clearing the sign bit, as std::fabs does on the host (andps), NaN payload kept.
LOWBIT_HD_HOT float hx_abs(float a) { return f32_from_bits(f32_bits(a) & 0x7fffffffu); }

// The NaN result of a binary op on (a, b) given the IEEE result r.
LOWBIT_HD_HOT float hx_nan_of(float a, float b, float r) {
  if (hx_isnan(a)) return hx_quiet(a);
  if (hx_isnan(b)) return hx_quiet(b);
  return r != r ? f32_from_bits(kX86DefaultNan) : r;
}

LOWBIT_HD_HOT float hx_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return hx_nan_of(a, b, __fmul_rn(a, b));
#else
  return hx_nan_of(a, b, a * b);
#endif
}

LOWBIT_HD_HOT float hx_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return hx_nan_of(a, b, __fadd_rn(a, b));
#else
  return hx_nan_of(a, b, a + b);
#endif
}

LOWBIT_HD_HOT float hx_sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return hx_nan_of(a, b, __fsub_rn(a, b));
#else
  return hx_nan_of(a, b, a - b);
#endif
}

LOWBIT_HD_HOT float hx_div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return hx_nan_of(a, b, __fdiv_rn(a, b));
#else
  return hx_nan_of(a, b, a / b);
#endif
}

// Running double sum `s += a` over floats a, then float(s / n), with the host's NaN results:
// once s is NaN it stays (first operand); a NaN a enters quietened (cvtss2sd keeps the payload,
// cvtsd2ss gives it back); Inf + -Inf gives the default NaN. Tracked as float bits, since every
// NaN here comes back to float unchanged.
struct HxMeanF32 {
  double sum = 0.0;
  bool nan = false;
  uint32_t nan_bits = 0;
  LOWBIT_HD void add(float a) {
    if (nan) return;
    if (hx_isnan(a)) {
      nan = true;
      nan_bits = f32_bits(a) | 0x00400000u;
      return;
    }
#if defined(__CUDA_ARCH__)
    const double t = __dadd_rn(sum, static_cast<double>(a));
#else
    const double t = sum + static_cast<double>(a);
#endif
    if (t != t) {
      nan = true;
      nan_bits = kX86DefaultNan;
      return;
    }
    sum = t;
  }
  // float(sum / n); n > 0.
  LOWBIT_HD float mean(int64_t n) const {
    if (nan) return f32_from_bits(nan_bits);
#if defined(__CUDA_ARCH__)
    return __double2float_rn(__ddiv_rn(sum, static_cast<double>(n)));
#else
    return static_cast<float>(sum / static_cast<double>(n));
#endif
  }
};

}  // namespace lowbit
