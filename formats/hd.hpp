// Host/device portability: LOWBIT_HD marks scalar codecs callable from CUDA kernels and
// from host code alike (DESIGN.md principle 4), plus bit-cast helpers usable on both sides.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LOWBIT_HD __host__ __device__ __forceinline__
#define LOWBIT_HD_HOT __host__ __device__ __forceinline__
#else
#define LOWBIT_HD inline
// For the small per-element functions of vectorised loops: always inlined on the host too.
#define LOWBIT_HD_HOT inline __attribute__((always_inline))
#endif

namespace lowbit {

LOWBIT_HD_HOT uint32_t f32_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

LOWBIT_HD_HOT float f32_from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Number of leading zeros of a 32/64-bit value (x != 0).
LOWBIT_HD int clz32(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __clz(static_cast<int>(x));
#else
  return __builtin_clz(x);
#endif
}

LOWBIT_HD int clz64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __clzll(static_cast<long long>(x));
#else
  return __builtin_clzll(x);
#endif
}

// Exact 2^k as a float for k in [-149, 127] (subnormal results included), 0 below, +Inf above.
LOWBIT_HD float exp2i(int k) {
  if (k > 127) return f32_from_bits(0x7f800000u);
  if (k >= -126) return f32_from_bits(static_cast<uint32_t>(k + 127) << 23);
  if (k >= -149) return f32_from_bits(1u << (k + 149));
  return 0.0f;
}

}  // namespace lowbit
