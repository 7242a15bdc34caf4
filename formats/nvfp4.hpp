// NVFP4 scalar pieces, host and device (FORMATS.md §5): E2M1 elements in blocks of 16, one
// E4M3 block scale per block, one FP32 tensor scale. Each peer's fp32 operation order is
// reproduced literally, one IEEE operation per statement (variant=te|torchao|modelopt):
//
//   te (TransformerEngine kernel, cast/nvfp4/core_nvfp4.cuh; default)
//     S_enc = min(2688 / amax, FLT_MAX); amax == 0 or S_enc == 0 -> 1.0;  S_dec = 1 / S_enc
//     s     = e4m3_rne_satfinite(min(block_amax * fl(S_enc * fl(1/6)), FLT_MAX))
//     enc   = min(1 / (float(s) * S_dec), FLT_MAX);  code = e2m1_rne_satfinite(x * enc)
//   torchao (nvfp4_quantize at 36027d8, two-level)
//     pts = amax / 2688;  s = e4m3(clamp((block_amax / 6) / pts, 2^-6, 448))
//     r   = (1 / pts) / float(s);  code = e2m1(clamp(x * r, -6, 6))
//   torchao single level (tensor_scale=off)
//     s = e4m3(clamp(block_amax / 6, 2^-6, 448));  code = e2m1(clamp(x * (1 / float(s)), -6, 6))
//   modelopt (NVFP4QTensor at 0ad6e5f)
//     sf2 = amax / 2688;  ps = block_amax / (6 * sf2), ps == 0 -> 1.0;  s = e4m3(ps) (torch cast:
//     RNE, overflow -> NaN);  q = x / (float(s) * sf2);  code = searchsorted RNE of q, with the
//     sign taken from q < 0 (so -0 -> +0) and NaN -> 0x7
//
// Decode (every variant): v = e2m1 * fl(float(s) * tensor_scale) — torchao get_hp_scales and
// ModelOpt dequantize; TE's dequantize kernel uses fl(fl(float(s) * amax) * fl(1/2688)) instead
// of the stored S_dec, which can differ by an ulp. Single level: v = e2m1 * float(s).
//
// No statement mixes a product with a sum, so floating-point contraction (FMA) cannot change
// any result here; on the device __fmul_rn / __fdiv_rn would be needed only under fast-math.
//
// Choices where the peers give NaN or garbage:
//   * non-finite tensor amax (any NaN or Inf in the tensor), two-level: tensor_scale = NaN,
//     every block scale = 0x7F (E4M3 NaN), every code 0; decode gives NaN everywhere. (torchao
//     and ModelOpt also decode NaN everywhere here, via NaN or 0 * Inf; TE would use S_enc = 1.)
//   * torchao pts == 0 or ModelOpt sf2 == 0 (all-zero tensor, or amax < ~2^-138 so that
//     amax / 2688 underflows): the peers compute 0/0 = NaN scales. Here the tensor is treated
//     as all-zero blocks of that variant: torchao s = 2^-6 (0x08), ModelOpt s = 1.0 (0x38),
//     codes 0, decode 0.
//   * an element argument that is NaN (only from the peers' own overflow at absurdly small
//     tensor amax) encodes as CUDA does: 0x7.
#pragma once
#include <cfloat>
#include <cstdint>

#include "formats/float_format.hpp"
#include "formats/hd.hpp"
#include "formats/rounding.hpp"

namespace lowbit {

enum class Nvfp4Variant : uint8_t { Te, Torchao, Modelopt };

constexpr const char* nvfp4_variant_name(Nvfp4Variant v) {
  switch (v) {
    case Nvfp4Variant::Te: return "te";
    case Nvfp4Variant::Torchao: return "torchao";
    case Nvfp4Variant::Modelopt: return "modelopt";
  }
  return "?";
}

inline constexpr int kNvfp4Block = 16;
inline constexpr uint8_t kE4m3Nan = 0x7F;
inline constexpr uint8_t kE4m3One = 0x38;       // 1.0
inline constexpr uint8_t kE4m3MinNormal = 0x08;  // 2^-6, torchao's E4M3_EPS floor

// Everything derived from the tensor amax, per variant.
struct Nvfp4Tensor {
  Nvfp4Variant variant = Nvfp4Variant::Te;
  bool two_level = true;  // false: torchao single-level (tensor_scale=off)
  bool nan = false;       // non-finite tensor amax (two-level): everything NaN
  bool zero = false;      // torchao pts == 0 / ModelOpt sf2 == 0: all blocks are zero blocks
  float stored = 1.0f;    // the "tensor_scale" value: TE S_dec, torchao pts, ModelOpt sf2
  float s_enc = 1.0f;     // TE S_enc
  float coef = 0.0f;      // TE fl(S_enc * fl(1/6))
  float inv = 0.0f;       // torchao fl(1 / pts)
  float six_sf2 = 0.0f;   // ModelOpt fl(6 * sf2)
};

// Per-block state: the E4M3 scale code and the element multiplier (TE enc, torchao r or
// 1/s) or divisor (ModelOpt float(s) * sf2).
struct Nvfp4BlockScale {
  uint8_t code = 0;
  float m = 0.0f;
};

LOWBIT_HD float nvfp4_fminf(float a, float b) {
  // fminf semantics: a NaN operand yields the other one.
  if (a != a) return b;
  if (b != b) return a;
  return a < b ? a : b;
}

// torch.clamp: NaN passes through.
LOWBIT_HD float nvfp4_clamp(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

LOWBIT_HD Nvfp4Tensor nvfp4_tensor(Nvfp4Variant variant, bool two_level, float amax) {
  Nvfp4Tensor t;
  t.variant = variant;
  t.two_level = two_level;
  if (!two_level) return t;
  const uint32_t a = f32_bits(amax) & 0x7fffffffu;
  if (a >= 0x7f800000u) {
    t.nan = true;
    t.stored = f32_from_bits(0x7fc00000u);
    return t;
  }
  amax = f32_from_bits(a);
  switch (variant) {
    case Nvfp4Variant::Te: {
      float s_enc = 2688.0f / amax;  // fp8_max * fp4_max / amax, 448 * 6 exact
      s_enc = nvfp4_fminf(s_enc, FLT_MAX);
      if (amax == 0.0f || s_enc == 0.0f) s_enc = 1.0f;
      t.s_enc = s_enc;
      t.stored = 1.0f / s_enc;  // S_dec
      const float rcp6 = 1.0f / 6.0f;  // 0x3E2AAAAB
      t.coef = s_enc * rcp6;
      break;
    }
    case Nvfp4Variant::Torchao: {
      const float pts = amax / 2688.0f;  // per_tensor_amax_to_scale
      t.stored = pts;
      t.zero = pts == 0.0f;
      t.inv = 1.0f / pts;
      break;
    }
    case Nvfp4Variant::Modelopt: {
      const float sf2 = amax / 2688.0f;  // amax / (6.0 * 448.0)
      t.stored = sf2;
      t.zero = sf2 == 0.0f;
      t.six_sf2 = 6.0f * sf2;
      break;
    }
  }
  return t;
}

// Block scale and element multiplier of a block whose largest magnitude is block_amax (NaN if
// the block holds a NaN: only the single-level form sees one).
LOWBIT_HD Nvfp4BlockScale nvfp4_block_scale(const Nvfp4Tensor& t, float block_amax) {
  Nvfp4BlockScale b;
  constexpr FloatFormat e4m3 = fmt_desc::e4m3;  // constant-evaluated copy: usable in device code
  if (t.nan) {
    b.code = kE4m3Nan;
    return b;
  }
  if (!t.two_level) {
    const float bs = block_amax / 6.0f;
    const float c = nvfp4_clamp(bs, 0.015625f, 448.0f);
    b.code = static_cast<uint8_t>(encode_float(e4m3, c));
    const float sf = decode_float(e4m3, b.code);
    b.m = 1.0f / sf;
    return b;
  }
  switch (t.variant) {
    case Nvfp4Variant::Te: {
      float sb = block_amax * t.coef;
      sb = nvfp4_fminf(sb, FLT_MAX);
      b.code = static_cast<uint8_t>(encode_float(e4m3, sb, Round::NearestEven, Overflow::Saturate));
      const float sf = decode_float(e4m3, b.code);
      const float d = sf * t.stored;
      const float enc = 1.0f / d;
      b.m = nvfp4_fminf(enc, FLT_MAX);
      break;
    }
    case Nvfp4Variant::Torchao: {
      if (t.zero) {
        b.code = kE4m3MinNormal;
        b.m = 0.0f;
        break;
      }
      const float bs = block_amax / 6.0f;
      const float sc = bs / t.stored;
      const float c = nvfp4_clamp(sc, 0.015625f, 448.0f);
      b.code = static_cast<uint8_t>(encode_float(e4m3, c));
      const float sf = decode_float(e4m3, b.code);
      b.m = t.inv / sf;
      break;
    }
    case Nvfp4Variant::Modelopt: {
      if (t.zero) {
        b.code = kE4m3One;
        b.m = 1.0f;
        break;
      }
      float ps = block_amax / t.six_sf2;
      if (ps == 0.0f) ps = 1.0f;
      // torch .to(float8_e4m3fn): RNE, non-saturating (> 464 -> NaN).
      b.code = static_cast<uint8_t>(encode_float(e4m3, ps, Round::NearestEven, Overflow::NaN));
      const float sf = decode_float(e4m3, b.code);
      b.m = sf * t.stored;
      break;
    }
  }
  return b;
}

// E2M1 code of x in a block (mode: NearestEven or Stochastic with rbits), for a variant known
// at compile time (the tensor format's hot loop) ...
template <Nvfp4Variant V, bool TwoLevel>
LOWBIT_HD uint32_t nvfp4_encode_element_as(const Nvfp4Tensor& t, const Nvfp4BlockScale& b, float x,
                                           Round mode = Round::NearestEven, uint32_t rbits = 0) {
  constexpr FloatFormat e2m1 = fmt_desc::e2m1;  // constant-evaluated copy: usable in device code
  if (t.nan || t.zero) return 0;
  if constexpr (!TwoLevel || V == Nvfp4Variant::Torchao) {
    const float q = x * b.m;
    const float c = nvfp4_clamp(q, -6.0f, 6.0f);
    return encode_float(e2m1, c, mode, Overflow::Saturate, NanMode::Cuda, rbits);
  } else if constexpr (V == Nvfp4Variant::Te) {
    const float q = x * b.m;
    return encode_float(e2m1, q, mode, Overflow::Saturate, NanMode::Cuda, rbits);
  } else {
    // ModelOpt _cast_fp4: sign_bit = (q < 0), searchsorted on |q| (NaN sorts past every bound).
    const float q = x / b.m;
    if (q != q) return 0x7;
    if (q == 0.0f) return 0x0;
    return encode_float(e2m1, q, mode, Overflow::Saturate, NanMode::Cuda, rbits);
  }
}

// ... and at run time.
LOWBIT_HD uint32_t nvfp4_encode_element(const Nvfp4Tensor& t, const Nvfp4BlockScale& b, float x,
                                        Round mode = Round::NearestEven, uint32_t rbits = 0) {
  if (!t.two_level) return nvfp4_encode_element_as<Nvfp4Variant::Torchao, false>(t, b, x, mode, rbits);
  switch (t.variant) {
    case Nvfp4Variant::Te: return nvfp4_encode_element_as<Nvfp4Variant::Te, true>(t, b, x, mode, rbits);
    case Nvfp4Variant::Torchao: return nvfp4_encode_element_as<Nvfp4Variant::Torchao, true>(t, b, x, mode, rbits);
    case Nvfp4Variant::Modelopt: return nvfp4_encode_element_as<Nvfp4Variant::Modelopt, true>(t, b, x, mode, rbits);
  }
  return 0;
}

// The block's dequantisation factor: fl(float(s) * tensor_scale), or float(s) single-level.
LOWBIT_HD float nvfp4_block_factor(const Nvfp4Tensor& t, uint8_t s) {
  constexpr FloatFormat e4m3 = fmt_desc::e4m3;
  const float sf = decode_float(e4m3, s);
  if (!t.two_level) return sf;
  const float bs = sf * t.stored;
  return bs;
}

// The dequantised value of a code under block scale code s: e2m1 * block factor.
LOWBIT_HD float nvfp4_decode_element(const Nvfp4Tensor& t, uint32_t code, uint8_t s) {
  constexpr FloatFormat e2m1 = fmt_desc::e2m1;
  return decode_float(e2m1, code) * nvfp4_block_factor(t, s);
}

// ---------------------------------------------------------------------------------------------
// The tensor kernel of the NVFP4 format (host only; formats/nvfp4.cpp).

// Which implementation nvfp4_quantize runs.
//   Auto       the vectorised kernel (fast_float.hpp's FastRne for the E4M3 block scales and the
//              E2M1 elements, rounded to nearest even or stochastically), except for degenerate
//              tensors (non-finite amax, zero tensors), which take the Reference path
//   Reference  the scalar functions above (nvfp4_block_scale, nvfp4_encode_element_as,
//              nvfp4_decode_element's products), block by block: the definition the fast kernel
//              must match bit for bit (tests/formats/test_nvfp4.cpp)
enum class Nvfp4Path : uint8_t { Auto, Reference };

// Quantises a rows x cols row-major tensor (cols a multiple of kNvfp4Block) with the variant's
// tensor scale (two_level; false is torchao's single-level form, whatever the variant) and
// blocks of 16 consecutive elements of a row; round is NearestEven or Stochastic
// (element bits sr_bits(seed, flat index)). Writes, where the pointer is not null:
// scales[rows * cols / 16] the E4M3 block scale codes; codes[rows * cols / 2] the E2M1 codes
// packed two per byte (element 2i in the low nibble); values[rows * cols] the dequantised
// values (e2m1 * nvfp4_block_factor, as decoding forms them). Returns the tensor-level state
// (its `stored` is the "tensor_scale" section). OpenMP-parallel over rows for large tensors.
Nvfp4Tensor nvfp4_quantize(Nvfp4Variant variant, bool two_level, Round round, uint64_t seed, const float* x,
                           int64_t rows, int64_t cols, uint8_t* scales, uint8_t* codes, float* values,
                           Nvfp4Path path = Nvfp4Path::Auto);

}  // namespace lowbit
