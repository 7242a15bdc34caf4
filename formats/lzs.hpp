// QuaRTZ leading-zero suppression (LZS; arXiv 2509.26436, FORMATS.md §6, ALGORITHMS.md §3):
// scalar pieces, host and device. An int8 value q (|q| <= 127) is split into a sign and a 7-bit
// magnitude m; a group of G values shares FLAG = max(bitlen(OR of m) - 3, 0) in 0..4, and each
// element keeps a sign bit (bit 3) and the 3-bit magnitude c = m >> FLAG (paper: truncation) or
// min(rne(m / 2^FLAG), 7) (round-to-nearest variant). Decode: q^ = +-(c << FLAG), x^ = s8 * q^.
// The tensor format (INT8 stage, groups along the last axis, packing) is formats/lzs.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "formats/hd.hpp"
#include "formats/int_format.hpp"
#include "formats/rounding.hpp"

namespace lowbit {

struct PackedTensor;  // formats/tensor_format.hpp
class TensorFormat;

// How the dropped low FLAG bits are handled.
//   Trunc  c = m >> FLAG (the paper's residual truncation; default)
//   Rne    c = min(rne(m / 2^FLAG), 7). FLAG is still taken from the OR of the magnitudes, so a
//          group maximum that rounds up to 8 is clamped to 7: rounding can clip at the group max
//          (e.g. m = 127, FLAG 4: 7.94 -> 7, error 15, the same as truncation).
enum class LzsRound : uint8_t { Trunc, Rne };

inline constexpr int kLzsMaxFlag = 4;
inline constexpr int32_t kLzsQmax = 127;  // stage-1 clamp: q8 in [-127, 127]

// FLAG of a group from the OR (equivalently the max) of its 7-bit magnitudes: paper Eq. 2,
// max(29 - clz32(M), 0) = max(bitlen(M) - 3, 0). mag_or <= 127 gives 0..4.
LOWBIT_HD int lzs_flag(uint32_t mag_or) {
  if (mag_or == 0) return 0;
  const int bitlen = 32 - clz32(mag_or);
  return bitlen > 3 ? bitlen - 3 : 0;
}

// Stage 1 (README form): q8 = clamp(rne(x / s8), -127, 127), the division in fp32. NaN -> 0
// (round_to_int), +-Inf -> +-127; s8 = 0 makes x / s8 = NaN (x = 0) or +-Inf.
LOWBIT_HD int32_t lzs_quantize_int8(float x, float s8) {
  return round_to_int(x / s8, -kLzsQmax, kLzsQmax, Round::NearestEven);
}

// 3-bit magnitude of m (0..127) under a group FLAG.
LOWBIT_HD uint32_t lzs_magnitude(uint32_t m, int flag, LzsRound r) {
  uint32_t c = m >> flag;
  if (r == LzsRound::Rne && flag > 0) {
    const uint32_t rem = m & ((1u << flag) - 1u);
    const uint32_t half = 1u << (flag - 1);
    if (rem > half || (rem == half && (c & 1u))) ++c;
    if (c > 7u) c = 7u;
  }
  return c;
}

// 4-bit code of q (|q| <= 127) under a group FLAG: bit 3 = (q < 0), bits 2..0 = magnitude. A
// negative q whose magnitude becomes 0 keeps its sign bit (code 0x8, "-0", which decodes to 0).
LOWBIT_HD uint32_t lzs_encode(int32_t q, int flag, LzsRound r = LzsRound::Trunc) {
  const uint32_t sign = q < 0 ? 8u : 0u;
  const uint32_t m = static_cast<uint32_t>(q < 0 ? -q : q);
  return sign | lzs_magnitude(m, flag, r);
}

// q^ = +-(c << FLAG) of a 4-bit code.
LOWBIT_HD int32_t lzs_decode_int(uint32_t code, int flag) {
  const int32_t v = static_cast<int32_t>((code & 7u) << flag);
  return (code & 8u) ? -v : v;
}

// x^ = s8 * q^ (one fp32 multiply; -0 codes decode to +0 for s8 > 0).
LOWBIT_HD float lzs_decode(uint32_t code, int flag, float s8) {
  return s8 * static_cast<float>(lzs_decode_int(code, flag));
}

// Encodes one group of n int8 values: writes n codes and returns the group's FLAG.
LOWBIT_HD int lzs_encode_group(const int32_t* q, int64_t n, LzsRound r, uint32_t* codes) {
  uint32_t mag_or = 0;
  for (int64_t i = 0; i < n; ++i) mag_or |= static_cast<uint32_t>(q[i] < 0 ? -q[i] : q[i]);
  const int flag = lzs_flag(mag_or);
  for (int64_t i = 0; i < n; ++i) codes[i] = lzs_encode(q[i], flag, r);
  return flag;
}

// Number of groups with FLAG 0, 1, 2, 3, 4 in a packed lzs4 tensor (its "flags" section);
// throws lowbit::Error if the tensor has no valid flags section.
std::array<int64_t, 5> lzs_flag_histogram(const PackedTensor& p);

namespace detail {
// Implementations of the lzs4 tensor format, for tests that compare them bit for bit:
//   Reference  the scalar code (lzs_quantize_int8, lzs_encode per element)
//   Portable   the vectorisable loops (selects only) that the compiler vectorises
//   Native     what make_format uses: the build's SIMD kernel (AVX-512, groups of 16, 32, 64,
//              128) where compiled in, else Portable
enum class LzsImpl : uint8_t { Reference, Portable, Native };
std::unique_ptr<TensorFormat> make_lzs_format(std::string_view spec, LzsImpl impl);
}  // namespace detail

}  // namespace lowbit
