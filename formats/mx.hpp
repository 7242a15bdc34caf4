// OCP Microscaling (MX v1.0) scalar pieces, host and device: the E8M0 shared-scale rules
// (FLOOR per OCP, CEIL, EVEN, RCEIL; FORMATS.md §4.2) and the per-element codec of a block
// (V_i / X with X = 2^(e - 127) applied exactly, §4.3). The tensor format (blocks of 32 along
// the last axis, packing, OpenMP) is formats/mx.cpp.
#pragma once
#include <cstdint>

#include "formats/float_format.hpp"
#include "formats/hd.hpp"
#include "formats/int_format.hpp"
#include "formats/rounding.hpp"

namespace lowbit {

// How the shared exponent is derived from the block's amax (FORMATS.md §4.2).
//   Floor  OCP §6.3 / torchao FLOOR / gfloat / microxcaling: floor(log2 amax) - emax_elem
//   Rceil  cuBLAS / cuDNN / TE / torchao RCEIL: fl32(amax * fl32(1/max_elem)) rounded up to a
//          power of two
//   Ceil   torchao CEIL: ceil(log2 amax) - emax_elem
//   Even   torchao EVEN / AMD aiter: amax rounded to the element's mantissa width, then Floor
enum class MxScaleRule : uint8_t { Floor, Rceil, Ceil, Even };

constexpr const char* mx_scale_rule_name(MxScaleRule r) {
  switch (r) {
    case MxScaleRule::Floor: return "floor";
    case MxScaleRule::Rceil: return "rceil";
    case MxScaleRule::Ceil: return "ceil";
    case MxScaleRule::Even: return "even";
  }
  return "?";
}

// An MX element type: a minifloat (FP8/FP6/FP4), or MXINT8 — 8-bit two's complement k with an
// implicit 2^-6, value k/64 (OCP §5.3); viewed as the sign-magnitude fixed point 1.xxxxxx
// (microxcaling), so its emax is 0 and its "mantissa width" 6.
struct MxElement {
  FloatFormat fp{};   // the minifloat (unused for INT8)
  bool int8 = false;  // MXINT8

  constexpr int bits() const { return int8 ? 8 : fp.total_bits(); }
  constexpr int mbits() const { return int8 ? 6 : fp.mbits; }
  // Exponent of the largest normal binade (FORMATS.md §4.1: E4M3 8, E5M2 15, E3M2 4,
  // E2M3 2, E2M1 2, INT8 0).
  constexpr int emax() const {
    return int8 ? 0 : static_cast<int>(fp.max_finite_code() >> fp.mbits) - fp.bias;
  }
  constexpr bool operator==(const MxElement&) const = default;
};

namespace mx_elem {
inline constexpr MxElement e4m3{fmt_desc::e4m3, false};
inline constexpr MxElement e5m2{fmt_desc::e5m2, false};
inline constexpr MxElement e2m3{fmt_desc::e2m3, false};
inline constexpr MxElement e3m2{fmt_desc::e3m2, false};
inline constexpr MxElement e2m1{fmt_desc::e2m1, false};
inline constexpr MxElement int8{FloatFormat{}, true};
}  // namespace mx_elem

inline constexpr int kMxBlock = 32;      // OCP MX block size k
inline constexpr uint8_t kE8m0Nan = 0xFF;

// Largest element magnitude: the minifloat's max normal, or 127/64 for INT8.
LOWBIT_HD float mx_element_max(const MxElement& el) { return el.int8 ? 1.984375f : float_max(el.fp); }
// Smallest positive element magnitude (min subnormal; 1/64 for INT8).
LOWBIT_HD float mx_element_min_positive(const MxElement& el) {
  return el.int8 ? 0.015625f : float_min_positive(el.fp);
}

// Exact floor(log2 a) of a finite, non-zero |x| bit pattern (fp32 subnormals included).
LOWBIT_HD int mx_floor_log2_bits(uint32_t a) {
  const uint32_t ex = a >> 23;
  return ex ? static_cast<int>(ex) - 127 : -118 - clz32(a);  // subnormal: -149 + (31 - clz)
}

// The E8M0 byte of a block whose largest magnitude is |amax| (FORMATS.md §4.2).
// Zero amax -> 0x00 (torchao, TE, gfloat); NaN -> 0xFF; Inf -> 0xFF, or with inf_sat 0xFE (TE on
// Blackwell: the elements then saturate). Finite results saturate to [0x00, 0xFE]: FLOOR, CEIL
// and EVEN clamp the unbiased shared exponent to [-127, 127]; RCEIL saturates at 0xFE.
LOWBIT_HD uint8_t mx_scale_e8m0(float amax, MxScaleRule rule, const MxElement& el, bool inf_sat = false) {
  const uint32_t a = f32_bits(amax) & 0x7fffffffu;
  if (a > 0x7f800000u) return kE8m0Nan;
  if (a == 0x7f800000u) return inf_sat ? 0xFE : kE8m0Nan;
  if (a == 0) return 0x00;
  int e = 0;  // unbiased shared exponent before clamping
  switch (rule) {
    case MxScaleRule::Floor:
      e = mx_floor_log2_bits(a) - el.emax();
      break;
    case MxScaleRule::Ceil: {
      // Exact ceil(log2 amax): floor, plus one unless amax is a power of two.
      const bool pow2 = (a >> 23) ? (a & 0x7fffffu) == 0 : (a & (a - 1)) == 0;
      e = mx_floor_log2_bits(a) + (pow2 ? 0 : 1) - el.emax();
      break;
    }
    case MxScaleRule::Even: {
      // torchao EVEN: add 2^(22 - mbits) to the bit pattern, keep sign and exponent. The
      // exponent field read back is the floor (field 0 -> -127, field 255 -> 128, as torchao's
      // bit extraction gives).
      const uint32_t r = (a + (1u << (22 - el.mbits()))) & 0x7f800000u;
      e = static_cast<int>(r >> 23) - 127 - el.emax();
      break;
    }
    case MxScaleRule::Rceil: {
      // TE ptx::float_to_e8m0 (cvt.rp.satfinite.ue8m0x2.f32) of descale = amax * (1/max):
      // the exponent field, +1 if any mantissa bit is set (normals) or the subnormal mantissa
      // exceeds 2^-127 (> 0x400000); saturating at 0xFE.
      const float rcp = 1.0f / mx_element_max(el);
      const uint32_t db = f32_bits(f32_from_bits(a) * rcp);
      if (db >= 0x7f800000u) return 0xFE;
      const uint32_t ef = db >> 23;
      const uint32_t mf = db & 0x7fffffu;
      if (ef == 0) return mf > 0x400000u ? 0x01 : 0x00;
      const uint32_t r = ef + (mf != 0 ? 1u : 0u);
      return static_cast<uint8_t>(r > 0xFEu ? 0xFEu : r);
    }
  }
  if (e < -127) e = -127;
  if (e > 127) e = 127;
  return static_cast<uint8_t>(e + 127);
}

// X = 2^(e - 127) exactly (0x00 = 2^-127, an fp32 subnormal); 0xFF = NaN.
LOWBIT_HD float e8m0_value(uint8_t e) {
  return e == kE8m0Nan ? f32_from_bits(0x7fc00000u) : exp2i(static_cast<int>(e) - 127);
}

// Element code of v in a block with scale byte e: the element format's encoding of v / X
// (exact power-of-two division via scale_exp), saturating (OCP clamps normal numbers to
// +-max; Inf under inf=sat saturates too). MXINT8: k = round(v / X * 64) clamped to
// [-127, 127], or [-128, 127] with int8_min128; the code is k's two's-complement byte.
// A NaN scale gives code 0: every value of such a block decodes to NaN whatever its code.
LOWBIT_HD uint32_t mx_encode_element(const MxElement& el, float v, uint8_t e, Round mode = Round::NearestEven,
                                     uint32_t rbits = 0, bool int8_min128 = false) {
  if (e == kE8m0Nan) return 0;
  const int scale_exp = static_cast<int>(e) - 127;
  if (el.int8) {
    const int32_t k = round_to_int(v, int8_min128 ? -128 : -127, 127, mode, rbits, scale_exp - 6);
    return static_cast<uint32_t>(k) & 0xffu;
  }
  return encode_float(el.fp, v, mode, Overflow::Saturate, NanMode::Cuda, rbits, scale_exp);
}

// v = X * P, exact (every product of an element value and 2^(e - 127) is an fp32 value or
// overflows to +-Inf only for e near 0xFE); a NaN scale gives NaN.
LOWBIT_HD float mx_decode_element(const MxElement& el, uint32_t code, uint8_t e) {
  if (e == kE8m0Nan) return f32_from_bits(0x7fc00000u);
  if (el.int8) {
    const int32_t k = static_cast<int32_t>(static_cast<int8_t>(static_cast<uint8_t>(code)));
    return static_cast<float>(k) * exp2i(static_cast<int>(e) - 133);  // k/64 * 2^(e-127)
  }
  return decode_float(el.fp, code) * exp2i(static_cast<int>(e) - 127);
}

// ---------------------------------------------------------------------------------------------
// The tensor kernel of the MX formats (host only; formats/mx.cpp).

// Options of an MX tensor format (the spec options of formats/mx.cpp).
struct MxOptions {
  MxScaleRule scale = MxScaleRule::Floor;
  Round round = Round::NearestEven;
  uint64_t seed = 0;        // stochastic rounding key: element bits = sr_bits(seed, flat index)
  bool inf_sat = false;     // Inf in a block: scale 0xFE, saturated elements (else a NaN block)
  bool flush_subnormals = false;
  bool int8_min128 = false;  // MXINT8: allow k = -128
};

// Which implementation mx_quantize runs.
//   Auto       the vectorised kernel when o.round is RNE or Stochastic, else Reference
//   Reference  the scalar per-element codec (mx_scale_e8m0, mx_encode_element,
//              mx_decode_element), block by block: the definition the fast kernel must match
//              bit for bit (tests/formats/test_mx.cpp)
enum class MxPath : uint8_t { Auto, Reference };

// Quantises a rows x cols row-major tensor (cols a multiple of kMxBlock) in blocks of 32
// consecutive elements of a row. Writes, where the pointer is not null: scales[rows * cols / 32] the E8M0 bytes;
// codes the element codes packed as the "codes" section (pack_codes: FP4 two per byte, element
// 2i in the low nibble; every other element one byte), packed_bytes(rows * cols, bits) bytes;
// values[rows * cols] the dequantised values. OpenMP-parallel over rows for large tensors.
void mx_quantize(const MxElement& el, const MxOptions& o, const float* x, int64_t rows, int64_t cols,
                 uint8_t* scales, uint8_t* codes, float* values, MxPath path = MxPath::Auto);

}  // namespace lowbit
