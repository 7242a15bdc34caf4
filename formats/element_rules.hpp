// The reference rules of the element formats (intB / uintB / eXmY, plain or scaled), host and
// device: the group scale from a group's range, and one element's code and value under it. The
// CPU format (formats/element_format.cpp) uses element_group_scale directly and its fast paths
// are tested equal to element_encode / element_value; the CUDA kernels (gpu/) call them as they
// are. Rules in the banner of element_format.cpp.
#pragma once
#include <cstdint>

#include "formats/float_format.hpp"
#include "formats/hd.hpp"
#include "formats/host_nan.hpp"
#include "formats/int_format.hpp"
#include "formats/params.hpp"
#include "formats/philox.hpp"

namespace lowbit {

struct ElementScale {
  uint32_t code = 0;  // scale code in the scale format
  float dec = 0;      // decoded scale (NaN: the group is NaN; 0: the group is all zero)
  int32_t zp = 0;     // zero point (asymmetric only)
};

// s = absmax / denom (symmetric) or (max - min) / denom (asymmetric).
LOWBIT_HD float element_denom(const ElementParams& p) {
  if (p.asym) return static_cast<float>(p.fi.mask());
  if (!p.is_int) return float_max(p.ff);
  return p.full_range ? static_cast<float>(int32_t{1} << (p.fi.bits - 1)) : static_cast<float>(p.fi.hi());
}

// Order key of a float's bits: orders like the float (-0 < +0), NaN payloads aside.
LOWBIT_HD int32_t float_order_key(uint32_t u) {
  return static_cast<int32_t>(u ^ ((static_cast<uint32_t>(static_cast<int32_t>(u) >> 31)) & 0x7fffffffu));
}
LOWBIT_HD float float_from_order_key(int32_t k) {
  const uint32_t u = static_cast<uint32_t>(k);
  return f32_from_bits(u ^ ((static_cast<uint32_t>(k >> 31)) & 0x7fffffffu));
}

// Running statistics of a group: |x| bits max, and the order-key range starting at +0 (so the
// range always holds 0, as the asymmetric rule needs).
struct ElementRange {
  uint32_t amax = 0;
  int32_t kmin = 0, kmax = 0;
  LOWBIT_HD void add(float x) {
    const uint32_t u = f32_bits(x);
    amax = amax > (u & 0x7fffffffu) ? amax : (u & 0x7fffffffu);
    const int32_t k = float_order_key(u);
    kmin = k < kmin ? k : kmin;
    kmax = k > kmax ? k : kmax;
  }
  LOWBIT_HD void merge(const ElementRange& o) {
    amax = amax > o.amax ? amax : o.amax;
    kmin = o.kmin < kmin ? o.kmin : kmin;
    kmax = o.kmax > kmax ? o.kmax : kmax;
  }
  LOWBIT_HD bool bad() const { return amax > 0x7f7fffffu; }  // a NaN or Inf in the group
};

// The scale of a group whose range is (lo, hi), cast to the scale format.
LOWBIT_HD ElementScale element_group_scale(const ElementParams& p, float lo, float hi, bool bad) {
  ElementScale gs;
  if (bad) {
    gs.code = p.scale_fmt.canonical_nan_code();
    gs.dec = f32_from_bits(0x7fc00000u);
    return gs;
  }
  const float d = element_denom(p);
  const float s = p.asym ? (hi - lo) / d : (-lo > hi ? -lo : hi) / d;
  constexpr FloatFormat kFp32 = fmt_desc::fp32;  // a constant-evaluated copy: usable in device code
  if (p.scale_fmt == kFp32) {
    gs.code = f32_bits(s);
    gs.dec = s;
  } else {
    gs.code = encode_float(p.scale_fmt, s, p.scale_round, Overflow::Saturate, NanMode::Cuda);
    gs.dec = decode_float(p.scale_fmt, gs.code);
  }
  if (p.asym && gs.dec > 0.0f) gs.zp = round_to_int(-lo / gs.dec, 0, static_cast<int32_t>(p.fi.mask()));
  return gs;
}

LOWBIT_HD ElementScale element_group_scale(const ElementParams& p, const ElementRange& r) {
  if (p.asym) return element_group_scale(p, float_from_order_key(r.kmin), float_from_order_key(r.kmax), r.bad());
  return element_group_scale(p, -f32_from_bits(r.amax), f32_from_bits(r.amax), r.bad());
}

// Code of element x (flat index `index`, for stochastic rounding) under scale s (null: a plain
// cast). A degenerate scale (0 or NaN) gives code 0.
LOWBIT_HD uint32_t element_encode(const ElementParams& p, float x, const ElementScale* s, uint64_t index) {
  if (s && (s->dec == 0.0f || s->dec != s->dec)) return 0;
  // hx_*: the host's NaN bits on the device too (formats/host_nan.hpp).
  const float t = !s ? x : (p.op_mul ? hx_mul(x, 1.0f / s->dec) : hx_div(x, s->dec));
  const uint32_t rb = p.pol.round == Round::Stochastic ? sr_bits(p.pol.seed, index) : 0u;
  if (!p.is_int) return encode_float(p.ff, t, p.pol.round, p.pol.overflow, p.pol.nan, rb);
  if (p.asym) {
    // clamp(round(x/s) + zp): round first (the zero point is an integer), then clamp.
    const int32_t r = round_to_int(t, -(1 << 30), 1 << 30, p.pol.round, rb);
    const int64_t v = static_cast<int64_t>(r) + s->zp;
    const int64_t hi = static_cast<int64_t>(p.fi.mask());
    return static_cast<uint32_t>(v < 0 ? 0 : (v > hi ? hi : v));
  }
  const int32_t qlo = s && !p.full_range ? -p.fi.hi() : p.fi.lo();
  return int_to_code(p.fi, round_to_int(t, qlo, p.fi.hi(), p.pol.round, rb));
}

// Value of a code under scale s (null: plain): the fake-quantised value, as decode gives it.
LOWBIT_HD float element_value(const ElementParams& p, uint32_t code, const ElementScale* s) {
  if (!s) return p.is_int ? static_cast<float>(code_to_int(p.fi, code)) : decode_float(p.ff, code);
  if (s->dec == 0.0f || s->dec != s->dec) return hx_mul(0.0f, s->dec);
  if (!p.is_int) return hx_mul(decode_float(p.ff, code), s->dec);
  const int32_t q = p.asym ? static_cast<int32_t>(code) - s->zp : code_to_int(p.fi, code);
  return hx_mul(s->dec, static_cast<float>(q));
}

}  // namespace lowbit
