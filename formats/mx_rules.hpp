// The reference rules of the OCP MX formats per block of 32, host and device: the block amax,
// the E8M0 scale byte (with flush_subnormals' zero blocks), one element's code and value. They
// compose mx.hpp's scalar codec exactly as formats/mx.cpp's reference path does (reference_rows:
// the definition its fast path matches), which calls mx_block_amax_bits and mx_block_scale_byte
// from here; the CUDA kernels (gpu/mx.cu) call them as they are. Tested equal to the CPU format
// bit for bit in tests/formats/test_mx_rules.cpp.
#pragma once
#include <cstdint>

#include "formats/hd.hpp"
#include "formats/mx.hpp"
#include "formats/params.hpp"
#include "formats/philox.hpp"

namespace lowbit {

// |x| as a bit pattern: for non-negative floats integer order is numeric order and every NaN
// pattern orders above Inf, so an integer max over these finds NaN, Inf and the amax at once,
// independently of the order of reduction.
LOWBIT_HD_HOT uint32_t mx_abs_bits(float x) { return f32_bits(x) & 0x7fffffffu; }

// Largest |x| bit pattern of a block of kMxBlock values.
LOWBIT_HD_HOT uint32_t mx_block_amax_bits(const float* __restrict x) {
  uint32_t amax_bits = 0;
  for (int i = 0; i < kMxBlock; ++i) {
    const uint32_t a = mx_abs_bits(x[i]);
    amax_bits = a > amax_bits ? a : amax_bits;
  }
  return amax_bits;
}

// The E8M0 byte of a block with that amax; *zero_block is set for a flush_subnormals block
// (amax an fp32 subnormal or zero: scale 0x00, every code 0, every value +0).
LOWBIT_HD_HOT uint8_t mx_block_scale_byte(const MxElement& el, const MxOptions& o, uint32_t amax_bits,
                                          bool* zero_block) {
  *zero_block = o.flush_subnormals && amax_bits < 0x00800000u;
  if (*zero_block) return 0x00;
  return mx_scale_e8m0(f32_from_bits(amax_bits), o.scale, el, o.inf_sat);
}

// A block's scale byte and whether it is a flushed zero block.
struct MxBlockScale {
  uint8_t e = 0;
  bool zero = false;
};

LOWBIT_HD MxBlockScale mx_block_scale(const MxParams& p, uint32_t amax_bits) {
  MxBlockScale s;
  s.e = mx_block_scale_byte(p.elem, p.opt, amax_bits, &s.zero);
  return s;
}

// Code of element x (flat index `index` in the row-major tensor: the stochastic rounding key)
// in a block with scale s, within the element's bits (the "codes" section's value).
LOWBIT_HD uint32_t mx_block_code(const MxParams& p, const MxBlockScale& s, float x, uint64_t index) {
  if (s.zero) return 0;
  const uint32_t rb = p.opt.round == Round::Stochastic ? sr_bits(p.opt.seed, index) : 0u;
  const uint32_t c = mx_encode_element(p.elem, x, s.e, p.opt.round, rb, p.opt.int8_min128);
  return c & ((1u << p.elem.bits()) - 1u);
}

// Value of a code under scale byte e: what decode and fake_quant give, NaN bits included. The CPU
// (x86) propagates a NaN operand of a product, quietened; CUDA arithmetic returns 0x7fffffff
// instead. A NaN scale gives mx_decode_element's constant NaN; a NaN element code under a finite
// scale (never from encode: a NaN input makes the scale NaN) gives X * NaN, which on x86 is the
// element's (quiet) NaN from decode_float — returned as such, without the device's product.
LOWBIT_HD float mx_block_value(const MxParams& p, uint32_t code, uint8_t e) {
  const float v = mx_decode_element(p.elem, code, e);
  if (v != v && e != kE8m0Nan && !p.elem.int8) return decode_float(p.elem.fp, code);
  return v;
}

// One whole block of kMxBlock values starting at flat index flat0: codes and/or values (either
// may be null); returns the scale byte.
LOWBIT_HD uint8_t mx_encode_block(const MxParams& p, const float* x, uint64_t flat0, uint32_t* codes,
                                  float* values) {
  const MxBlockScale s = mx_block_scale(p, mx_block_amax_bits(x));
  for (int i = 0; i < kMxBlock; ++i) {
    const uint32_t c = mx_block_code(p, s, x[i], flat0 + static_cast<uint64_t>(i));
    if (codes) codes[i] = c;
    if (values) values[i] = mx_block_value(p, c, s.e);
  }
  return s.e;
}

}  // namespace lowbit
