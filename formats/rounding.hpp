// Rounding, overflow and NaN policies shared by every codec, and the one integer rounding
// primitive they all reduce to: round sig * 2^-shift to an integer under a mode.
#pragma once
#include <cstdint>
#include <string_view>

#include "formats/hd.hpp"

namespace lowbit {

// Rounding of magnitudes (sign handled by the caller).
//   NearestEven  ties to the even code (IEEE default; torch.round, numpy.rint, CUDA cvt.rn)
//   NearestAway  ties away from zero (std::round, CUDA roundf, microxcaling 'nearest', AMD Quark)
//   TowardZero   truncate the magnitude (CUDA cudaRoundZero, microxcaling 'floor')
//   Down, Up     toward -inf / +inf (CUDA cudaRoundPosInf for Up)
//   Stochastic   away from zero with probability frac, see round_shifted()
enum class Round : uint8_t { NearestEven, NearestAway, TowardZero, Down, Up, Stochastic };

// What a finite value beyond the largest finite code becomes.
//   Saturate  +-max finite (CUDA __NV_SATFINITE, OCP MX element clamp)
//   Inf       +-Inf where the format has Inf, else its NaN, else +-max (CUDA __NV_NOSAT,
//             ml_dtypes astype, torch .to())
//   NaN       the NaN code where the format has one, else +-max
enum class Overflow : uint8_t { Saturate, Inf, NaN };

// How NaN (and, for E8M0, zero / negative) inputs are encoded.
//   Cuda      canonical positive NaN = all-ones magnitude (E4M3 0x7F, E5M2 0x7F, FP16 0x7FFF,
//             BF16 0x7FFF); formats without NaN give +max (FP4 0x7, FP6 0x1F); E8M0(0) = 0x00.
//             Matches the CUDA 13 headers' float entry points.
//   MlDtypes  ml_dtypes 0.6 / numpy astype: NaN sign kept, quiet canonical NaN (E5M2 0x7E,
//             BF16 0x7FC0; numpy FP16 keeps the top payload bits); formats without NaN give the
//             *opposite-signed* zero (+NaN -> 0x8, -NaN -> 0x0 for FP4); E8M0(0) and
//             E8M0(negative) = 0xFF.
enum class NanMode : uint8_t { Cuda, MlDtypes };

constexpr std::string_view round_name(Round r) {
  switch (r) {
    case Round::NearestEven: return "rne";
    case Round::NearestAway: return "rna";
    case Round::TowardZero: return "rz";
    case Round::Down: return "rd";
    case Round::Up: return "ru";
    case Round::Stochastic: return "sr";
  }
  return "?";
}

constexpr std::string_view overflow_name(Overflow o) {
  switch (o) {
    case Overflow::Saturate: return "sat";
    case Overflow::Inf: return "inf";
    case Overflow::NaN: return "nan";
  }
  return "?";
}

constexpr std::string_view nan_mode_name(NanMode n) { return n == NanMode::Cuda ? "cuda" : "mldtypes"; }

// Whether rounding a magnitude of the given sign moves it toward zero whatever the remainder
// (used for IEEE 754 overflow: RZ, and RD/RU on the side toward zero, never produce Inf).
LOWBIT_HD bool rounds_toward_zero(Round r, bool negative) {
  return r == Round::TowardZero || (r == Round::Down && !negative) || (r == Round::Up && negative);
}

// Rounds the exact magnitude sig * 2^-shift (sig < 2^40) to an integer.
// Any shift is allowed; beyond 62 the magnitude is below 2^-22, and only "non-zero and far
// below a half" survives, which is all any mode needs. Stochastic rounding: with f = the dropped fraction quantised to 32 bits by
// truncation (exact whenever shift <= 32), round away iff rbits < f * 2^32, so
// P(away) = floor(frac * 2^32) / 2^32 for uniform rbits: unbiased up to 2^-32.
// Ties to even test the parity of q + parity_offset: the code's LSB, when the code is q plus an
// odd offset (formats with no mantissa bits, where the LSB is the exponent's).
LOWBIT_HD uint64_t round_shifted(uint64_t sig, int shift, bool negative, Round mode, uint32_t rbits,
                                 uint64_t parity_offset = 0) {
  if (shift <= 0) return sig << (-shift);
  if (shift > 62) {
    // Keep a sticky bit: the value is non-zero but far below half an ulp.
    sig = sig != 0 ? 1 : 0;
    shift = 62;
  }
  const uint64_t q = sig >> shift;
  const uint64_t rem = sig & ((uint64_t{1} << shift) - 1);
  const uint64_t half = uint64_t{1} << (shift - 1);
  bool up = false;
  switch (mode) {
    case Round::NearestEven: up = rem > half || (rem == half && ((q + parity_offset) & 1)); break;
    case Round::NearestAway: up = rem >= half; break;
    case Round::TowardZero: up = false; break;
    case Round::Down: up = negative && rem != 0; break;
    case Round::Up: up = !negative && rem != 0; break;
    case Round::Stochastic: {
      const uint64_t frac32 = shift <= 32 ? rem << (32 - shift) : rem >> (shift - 32);
      up = static_cast<uint64_t>(rbits) < frac32;
      break;
    }
  }
  return q + (up ? 1 : 0);
}

}  // namespace lowbit
