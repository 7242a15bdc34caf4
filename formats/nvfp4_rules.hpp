// The reference rules of NVFP4 per tensor and per block of 16, host and device: the tensor amax
// to the tensor-level state (nvfp4_tensor), the block amax to the E4M3 block scale
// (nvfp4_block_scale), one element's E2M1 code and value. They compose nvfp4.hpp's scalar
// functions exactly as formats/nvfp4.cpp's reference path does (nvfp4_quantize with
// Nvfp4Path::Reference: the definition its fast path matches), which calls nvfp4_block_amax_bits
// from here; the CUDA kernels (gpu/nvfp4.cu) call them as they are. Tested equal to the CPU
// format bit for bit in tests/formats/test_nvfp4_rules.cpp.
#pragma once
#include <cstdint>

#include "formats/hd.hpp"
#include "formats/nvfp4.hpp"
#include "formats/params.hpp"
#include "formats/philox.hpp"

namespace lowbit {

// |x| as a bit pattern: integer order is numeric order, every NaN above Inf, so the integer max
// over a block or the whole tensor finds NaN, Inf and the amax in any order of reduction (the
// CPU's tensor amax is this max too; nvfp4_tensor looks only at whether it is finite, so NaN
// payloads never matter).
LOWBIT_HD_HOT uint32_t nvfp4_abs_bits(float x) { return f32_bits(x) & 0x7fffffffu; }

// Largest |x| bit pattern of a block of kNvfp4Block values.
LOWBIT_HD_HOT uint32_t nvfp4_block_amax_bits(const float* __restrict x) {
  uint32_t bmax = 0;
  for (int i = 0; i < kNvfp4Block; ++i) {
    const uint32_t a = nvfp4_abs_bits(x[i]);
    bmax = a > bmax ? a : bmax;
  }
  return bmax;
}

// The tensor-level state from the largest |x| bit pattern of the whole tensor (0 for an empty
// tensor). tensor_scale=off is torchao's single-level form whatever the variant field says
// (nvfp4_quantize), and ignores the amax.
LOWBIT_HD Nvfp4Tensor nvfp4_tensor_of(const Nvfp4Params& p, uint32_t amax_bits) {
  const Nvfp4Variant v = p.two_level ? p.variant : Nvfp4Variant::Torchao;
  return nvfp4_tensor(v, p.two_level, f32_from_bits(amax_bits));
}

// The tensor-level state decode uses: only the stored "tensor_scale" value (the f32 section;
// ignored single-level), as the CPU format's decode builds it.
LOWBIT_HD Nvfp4Tensor nvfp4_decode_tensor(const Nvfp4Params& p, float stored) {
  Nvfp4Tensor t;
  t.variant = p.variant;
  t.two_level = p.two_level;
  if (p.two_level) t.stored = stored;
  return t;
}

// Block scale (E4M3 code and element multiplier) from the block's largest |x| bit pattern.
LOWBIT_HD Nvfp4BlockScale nvfp4_block_of(const Nvfp4Tensor& t, uint32_t block_amax_bits) {
  return nvfp4_block_scale(t, f32_from_bits(block_amax_bits));
}

// E2M1 code of element x (flat index `index` in the row-major tensor: the stochastic rounding
// key) in block b.
LOWBIT_HD uint32_t nvfp4_block_code(const Nvfp4Params& p, const Nvfp4Tensor& t, const Nvfp4BlockScale& b, float x,
                                    uint64_t index) {
  const uint32_t rb = p.round == Round::Stochastic ? sr_bits(p.seed, index) : 0u;
  return nvfp4_encode_element(t, b, x, p.round, rb) & 0xFu;
}

// a * b with the NaN results of the CPU (x86 SSE/AVX): a NaN operand propagates, quietened (the
// first one when both are: which one x86 returns then depends on the operand order the compiler
// chose, but in every product here both are 0x7fc00000 when the data comes from the encoder); an
// invalid product (0 * Inf) gives the x86 default NaN 0xffc00000. CUDA arithmetic returns
// 0x7fffffff for every NaN result instead, so device code must not form a NaN by a product.
LOWBIT_HD float nvfp4_mul_x86(float a, float b) {
  const float r = a * b;
  if (r == r) return r;
  if (a != a) return f32_from_bits(f32_bits(a) | 0x00400000u);
  if (b != b) return f32_from_bits(f32_bits(b) | 0x00400000u);
  return f32_from_bits(0xffc00000u);
}

// Value of a code under block scale code s: e2m1 * fl(float(s) * tensor_scale), or
// e2m1 * float(s) single-level — decode's and fake_quant's products (nvfp4_decode_element), with
// the CPU's NaN bits where the result is NaN (a NaN block scale, a NaN tensor scale).
LOWBIT_HD float nvfp4_block_value(const Nvfp4Tensor& t, uint32_t code, uint8_t s) {
  const float v = nvfp4_decode_element(t, code, s);
  if (v == v) return v;
  constexpr FloatFormat e2m1 = fmt_desc::e2m1;  // constant-evaluated copies: usable in device code
  constexpr FloatFormat e4m3 = fmt_desc::e4m3;
  const float sf = decode_float(e4m3, s);
  const float f = t.two_level ? nvfp4_mul_x86(sf, t.stored) : sf;  // nvfp4_block_factor
  return nvfp4_mul_x86(decode_float(e2m1, code), f);
}

// One whole block of kNvfp4Block values starting at flat index flat0: codes and/or values
// (either may be null); returns the E4M3 block scale code.
LOWBIT_HD uint8_t nvfp4_encode_block(const Nvfp4Params& p, const Nvfp4Tensor& t, const float* x, uint64_t flat0,
                                     uint32_t* codes, float* values) {
  const Nvfp4BlockScale b = nvfp4_block_of(t, nvfp4_block_amax_bits(x));
  for (int i = 0; i < kNvfp4Block; ++i) {
    const uint32_t c = nvfp4_block_code(p, t, b, x[i], flat0 + static_cast<uint64_t>(i));
    if (codes) codes[i] = c;
    if (values) values[i] = nvfp4_block_value(t, c, b.code);
  }
  return b.code;
}

}  // namespace lowbit
