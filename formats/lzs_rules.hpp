// The reference rules of lzs4 (QuaRTZ; formats/lzs.cpp), host and device: the stage-1 scale s8
// of a tensor or a row (token), and per group of G values the FLAG, the 4-bit codes and the
// decoded values. The CUDA kernels (gpu/lzs.cu) run these functions as they are; tests/formats/
// test_lzs_rules.cpp checks them equal to the CPU format bit for bit (codes, flags, s8,
// fake_quant and decode values, NaN payloads included).
//
// Stage-1 statistics. The reference folds each row left to right with NaN-propagating max / min
// (the first NaN wins and stays; otherwise a value replaces the running one only if strictly
// larger / smaller, so among equal values, i.e. +0 and -0, the first occurrence wins) and merges
// the rows in order the same way. That is "the best element" under an order on (value, flat
// index): a NaN beats every number, the earlier of two NaNs wins; otherwise the larger (smaller)
// value wins and a tie goes to the earlier index. LzsRange keeps the winner and its index, so
// add() and merge() may run in any order and any tree (warp shuffles, per-block partials) and
// still give the reference's lo / hi bits exactly.
// calib=absmax: hi over |x| (sign bit cleared, NaN payload kept); s8 = hi / 128.
// calib=minmax: lo, hi over x; s8 = (hi - lo) / 255. No element: s8 = 0.
// s8, the values s8 * q^ and everything stored go through formats/host_nan.hpp (x86 NaN results).
#pragma once
#include <cstdint>

#include "formats/hd.hpp"
#include "formats/host_nan.hpp"
#include "formats/lzs.hpp"
#include "formats/params.hpp"

namespace lowbit {

inline constexpr int64_t kLzsNoIndex = INT64_MAX;

// Whether (a, ia) beats (b, ib) for the maximum (want_max) or the minimum.
LOWBIT_HD bool lzs_beats(float a, int64_t ia, float b, int64_t ib, bool want_max) {
  const bool an = hx_isnan(a), bn = hx_isnan(b);
  if (an || bn) return an && (!bn || ia < ib);
  if (a != b) return want_max ? a > b : a < b;
  return ia < ib;
}

struct LzsRange {
  float lo = 0.0f, hi = 0.0f;
  int64_t ilo = kLzsNoIndex, ihi = kLzsNoIndex;  // flat index of the element that gave lo / hi

  LOWBIT_HD bool any() const { return ihi != kLzsNoIndex; }

  // Element x at flat index i. absmax: hi = best |x| (lo is not used).
  LOWBIT_HD void add(LzsCalib calib, float x, int64_t i) {
    const float v = calib == LzsCalib::Absmax ? hx_abs(x) : x;
    if (!any()) {
      lo = hi = v;
      ilo = ihi = i;
      return;
    }
    if (lzs_beats(v, i, hi, ihi, true)) {
      hi = v;
      ihi = i;
    }
    if (calib == LzsCalib::Minmax && lzs_beats(v, i, lo, ilo, false)) {
      lo = v;
      ilo = i;
    }
  }

  LOWBIT_HD void merge(const LzsRange& o) {
    if (!o.any()) return;
    if (!any()) {
      *this = o;
      return;
    }
    if (lzs_beats(o.hi, o.ihi, hi, ihi, true)) {
      hi = o.hi;
      ihi = o.ihi;
    }
    if (lzs_beats(o.lo, o.ilo, lo, ilo, false)) {
      lo = o.lo;
      ilo = o.ilo;
    }
  }
};

// Statistics of n consecutive elements whose first has flat index base (one row, or anything).
LOWBIT_HD LzsRange lzs_range(LzsCalib calib, const float* x, int64_t n, int64_t base = 0) {
  LzsRange r;
  for (int64_t i = 0; i < n; ++i) r.add(calib, x[i], base + i);
  return r;
}

// s8 of a tensor or a row from its statistics.
LOWBIT_HD float lzs_scale(LzsCalib calib, const LzsRange& r) {
  if (!r.any()) return 0.0f;
  return calib == LzsCalib::Minmax ? hx_div(hx_sub(r.hi, r.lo), 255.0f) : hx_div(r.hi, 128.0f);
}

// FLAG of a group of g values under s8: from the OR of the int8 magnitudes (paper Eq. 2).
LOWBIT_HD int lzs_group_flag(const float* x, int64_t g, float s8) {
  uint32_t mag_or = 0;
  for (int64_t i = 0; i < g; ++i) {
    const int32_t q = lzs_quantize_int8(x[i], s8);
    mag_or |= static_cast<uint32_t>(q < 0 ? -q : q);
  }
  return lzs_flag(mag_or);
}

// 4-bit code of x under s8 and its group's FLAG.
LOWBIT_HD uint32_t lzs_code(float x, float s8, int flag, LzsRound r) {
  return lzs_encode(lzs_quantize_int8(x, s8), flag, r);
}

// Decoded value s8 * q^ (lzs_decode with the host's NaN results: s8 NaN -> s8 quietened,
// s8 = Inf with q^ = 0 -> the default NaN).
LOWBIT_HD float lzs_value(uint32_t code, int flag, float s8) {
  return hx_mul(s8, static_cast<float>(lzs_decode_int(code, flag)));
}

// One group: writes codes and/or values (either may be null), returns the FLAG.
LOWBIT_HD int lzs_encode_group_rule(const LzsParams& p, const float* x, int64_t g, float s8, uint32_t* codes,
                                    float* values) {
  const int flag = lzs_group_flag(x, g, s8);
  for (int64_t i = 0; i < g; ++i) {
    const uint32_t c = lzs_code(x[i], s8, flag, p.round);
    if (codes) codes[i] = c;
    if (values) values[i] = lzs_value(c, flag, s8);
  }
  return flag;
}

}  // namespace lowbit
