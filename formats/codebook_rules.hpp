// The reference rules of the codebook formats (nf4, bnb_fp4, af4, codebook:...; formats/
// codebook.cpp), host and device, per block: the block absmax, the code of each element under
// either backend, the decoded value, and double quantisation (dq) of the absmax array. The CUDA
// kernels (gpu/codebook.cu) run these functions as they are; tests/formats/
// test_codebook_rules.cpp checks them equal to the CPU format bit for bit (codes, every section,
// fake_quant and decode values, NaN payloads included).
//
// Tables. What the CPU format precomputes from its code table is computed here on the host from
// CodebookParams (codebook_tables, codebook_dq_tables) into fixed-size PODs that a launcher
// copies to device memory once per call:
//   value[c]   the normalised code table (CodebookParams::table)
//   thr[j]     backend=cuda, af4 / user codebooks: the largest float <= the reference's double
//              midpoint (table[j] + table[j+1]) / 2, so that for a float x, x > thr[j] iff
//              double(x) > midpoint (the reference's NearestExact test) without doubles;
//              backend=torch: the fp32 midpoints of the stably sorted table (torch.bucketize's
//              boundaries), as the reference builds them
//   order[r]   backend=torch: the stable argsort of the table (rank -> code)
//   dq: map    bnb's signed dynamic 8-bit map (create_dynamic_map(true, 7, 8, build)) and its
//              fp32 midpoints (torch backend's bucketize boundaries)
// nf4 and bnb_fp4 under backend=cuda use the decision trees of formats/codebook.hpp directly.
//
// Floats that end up stored or returned (absmax, dq scales and offset, values) go through
// formats/host_nan.hpp, so NaN payloads equal the x86 host's on the device too.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "formats/codebook.hpp"
#include "formats/error.hpp"
#include "formats/hd.hpp"
#include "formats/host_nan.hpp"
#include "formats/params.hpp"

namespace lowbit {

inline constexpr float kCodebookTorchTiny = 1e-38f;  // torch's absmax.clamp(min=1e-38), as fp32
inline constexpr int64_t kCodebookDqBlock = 256;     // bnb quantize_blockwise(blocksize=256) for dq

// How a normalised value becomes a code.
//   Nf4Cuda      nf4_code_cuda (bnb's decision tree)
//   BnbFp4Cuda   bnb_fp4_code_cuda
//   Nearest      af4 / user codebooks under backend=cuda: the number of thr[j] with xn > thr[j]
//                (exactly nearest table value, ties to the lower code, NaN -> 0)
//   Torch        every codebook under backend=torch: order[bucketize(clamp(xn, -1, 1), thr)]
enum class CodebookCoder : uint8_t { Nf4Cuda, BnbFp4Cuda, Nearest, Torch };

struct CodebookTables {
  CodebookCoder coder = CodebookCoder::Nf4Cuda;
  bool torch = false;  // backend=torch: torch's absmax and normalisation
  int32_t n = 0;       // table entries, 2..256
  float value[256] = {};
  float thr[255] = {};
  uint32_t order[256] = {};
};

struct CodebookDqTables {
  float map[256] = {};
  float bounds[255] = {};
};

// ---------------------------------------------------------------------------------------------
// Per block.

// Block absmax. backend=cuda (kQuantizeBlockwise): fmaxf-reduction of |x| from -FLT_MAX, so NaN
// never wins and an all-NaN block keeps -FLT_MAX. backend=torch: max |x| from 0 where the first
// NaN wins and propagates (its payload, sign cleared).
LOWBIT_HD float codebook_absmax(bool torch, const float* x, int64_t n) {
  if (torch) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      const float a = hx_abs(x[i]);
      if (hx_isnan(a)) return a;
      if (a > m) m = a;
    }
    return m;
  }
  float m = -3.40282347e38f;  // -FLT_MAX
  for (int64_t i = 0; i < n; ++i) {
    const float a = hx_abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

// The per-block factor xn = x * recip: 1 / absmax (cuda; Inf for a zero block), or
// 1 / max(absmax, 1e-38) (torch; NaN stays NaN). Only codes depend on it, so its NaN payload
// does not matter.
LOWBIT_HD float codebook_recip(bool torch, float absmax) {
  const float a = torch && absmax < kCodebookTorchTiny ? kCodebookTorchTiny : absmax;
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(1.0f, a);
#else
  return 1.0f / a;
#endif
}

// torch.bucketize(x, bounds[0..n), right=False) as ATen's binary search: the first i with
// bounds[i] >= x, moving right on !(bounds[mid] >= x), so NaN lands past the last bound.
LOWBIT_HD uint32_t codebook_bucketize(const float* bounds, int n, float x) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = lo + ((hi - lo) >> 1);
    if (!(bounds[mid] >= x)) lo = mid + 1;
    else hi = mid;
  }
  return static_cast<uint32_t>(lo);
}

// Code of element x of a block with factor recip.
LOWBIT_HD uint32_t codebook_code(const CodebookTables& t, float x, float recip) {
#if defined(__CUDA_ARCH__)
  float xn = __fmul_rn(x, recip);
#else
  float xn = x * recip;
#endif
  switch (t.coder) {
    case CodebookCoder::Nf4Cuda: return nf4_code_cuda(xn);
    case CodebookCoder::BnbFp4Cuda: return bnb_fp4_code_cuda(xn);
    case CodebookCoder::Nearest: {
      int lo = 0, hi = t.n - 1;  // xn > thr[j] holds for a prefix of the ascending thresholds
      while (lo < hi) {
        const int mid = lo + ((hi - lo) >> 1);
        if (xn > t.thr[mid]) lo = mid + 1;
        else hi = mid;
      }
      return static_cast<uint32_t>(lo);
    }
    case CodebookCoder::Torch:
    default:
      xn = xn < -1.0f ? -1.0f : (xn > 1.0f ? 1.0f : xn);  // clamp; NaN passes
      return t.order[codebook_bucketize(t.thr, t.n - 1, xn)];
  }
}

// Decoded value: table[code] * absmax in fp32 (absmax: the exact one, or the dq-decoded one).
LOWBIT_HD float codebook_value(const CodebookTables& t, uint32_t code, float absmax) {
  return hx_mul(t.value[code], absmax);
}

// One block of g elements: its absmax (returned), codes and/or values (either may be null; the
// values with this exact absmax, i.e. without dq).
LOWBIT_HD float codebook_encode_block(const CodebookTables& t, const float* x, int64_t g, uint32_t* codes,
                                      float* values) {
  const float a = codebook_absmax(t.torch, x, g);
  const float r = codebook_recip(t.torch, a);
  for (int64_t i = 0; i < g; ++i) {
    const uint32_t c = codebook_code(t, x[i], r);
    if (codes) codes[i] = c;
    if (values) values[i] = codebook_value(t, c, a);
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Double quantisation of the absmax array (nb entries, flattened), as bnb
// quantize_blockwise(absmax - mean(absmax), blocksize=256) with the dynamic map.

// offset = fp32(double sum of absmax in order / nb); 0 for nb = 0. Sequential by definition.
LOWBIT_HD float codebook_dq_offset(const float* absmax, int64_t nb) {
  if (nb <= 0) return 0.0f;
  HxMeanF32 m;
  for (int64_t i = 0; i < nb; ++i) m.add(absmax[i]);
  return m.mean(nb);
}

// dq block of len <= 256 absmax values (absmax points at its first): writes the 8-bit codes of
// absmax[i] - offset and returns the block's stored scale ("absmax_scales" entry).
//   cuda:  a = fmaxf-absmax of the block (as codebook_absmax), q = bnb_dynamic8_code(map, c / a)
//          (as c * (1 / a)); scale a
//   torch: a = torch absmax, am = max(a, 1e-38); q = bucketize(clamp(c * (1 / am))) over the
//          map's fp32 midpoints, in a trailing partial block c / am; scale a (partial: am)
LOWBIT_HD float codebook_dq_block(const CodebookDqTables& d, bool torch, const float* absmax, int64_t len,
                                  float offset, uint32_t* q) {
  // c = absmax - offset, recomputed per pass (no scratch).
  float a;
  if (torch) {
    a = 0.0f;
    for (int64_t i = 0; i < len; ++i) {
      const float v = hx_abs(hx_sub(absmax[i], offset));
      if (hx_isnan(v)) {
        a = v;
        break;
      }
      if (v > a) a = v;
    }
  } else {
    a = -3.40282347e38f;
    for (int64_t i = 0; i < len; ++i) {
      const float v = hx_abs(hx_sub(absmax[i], offset));
      if (v > a) a = v;
    }
  }
  if (!torch) {
    const float recip = codebook_recip(false, a);
    for (int64_t i = 0; i < len; ++i) {
#if defined(__CUDA_ARCH__)
      const float x = __fmul_rn(hx_sub(absmax[i], offset), recip);
#else
      const float x = hx_sub(absmax[i], offset) * recip;
#endif
      q[i] = bnb_dynamic8_code(d.map, x);
    }
    return a;
  }
  const float am = a < kCodebookTorchTiny ? kCodebookTorchTiny : a;
  const bool partial = len < kCodebookDqBlock;
  const float recip = codebook_recip(false, am);
  for (int64_t i = 0; i < len; ++i) {
    const float c = hx_sub(absmax[i], offset);
#if defined(__CUDA_ARCH__)
    float x = partial ? __fdiv_rn(c, am) : __fmul_rn(c, recip);
#else
    float x = partial ? c / am : c * recip;
#endif
    x = x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
    q[i] = codebook_bucketize(d.bounds, 255, x);
  }
  return partial ? am : a;
}

// Decoded absmax: fp32(fp32(map[q] * scale) + offset), two roundings as bnb's two kernels.
LOWBIT_HD float codebook_dq_absmax(const CodebookDqTables& d, uint32_t q, float scale, float offset) {
  return hx_add(hx_mul(d.map[q & 255u], scale), offset);
}

// ---------------------------------------------------------------------------------------------
// Host: the tables.

// The largest float <= m.
inline float codebook_float_at_or_below(double m) {
  float f = static_cast<float>(m);
  if (static_cast<double>(f) > m) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

inline CodebookTables codebook_tables(const CodebookParams& p) {
  const int n = static_cast<int>(p.table.size());
  if (n < 2 || n > 256) throw Error("codebook rules: a codebook needs 2 to 256 values");
  CodebookTables t;
  t.n = n;
  t.torch = p.backend == CodebookBackend::Torch;
  for (int c = 0; c < n; ++c) t.value[c] = p.table[static_cast<size_t>(c)];
  if (t.torch) {
    t.coder = CodebookCoder::Torch;
    std::iota(t.order, t.order + n, 0u);
    std::stable_sort(t.order, t.order + n, [&](uint32_t a, uint32_t b) { return t.value[a] < t.value[b]; });
    for (int j = 0; j + 1 < n; ++j) t.thr[j] = (t.value[t.order[j]] + t.value[t.order[j + 1]]) / 2.0f;
  } else if (p.kind == CodebookKind::Nf4) {
    t.coder = CodebookCoder::Nf4Cuda;
  } else if (p.kind == CodebookKind::BnbFp4) {
    t.coder = CodebookCoder::BnbFp4Cuda;
  } else {
    t.coder = CodebookCoder::Nearest;
    for (int j = 0; j + 1 < n; ++j)
      t.thr[j] = codebook_float_at_or_below((static_cast<double>(t.value[j]) + t.value[j + 1]) / 2.0);
  }
  return t;
}

// How the dynamic map was built (spec option dqmap=). CodebookParams does not carry it yet; until
// it has a `dq_build` member every map is the default (avx2) one.
template <class P>
DynamicMapBuild codebook_dq_build(const P& p) {
  if constexpr (requires { p.dq_build; }) return static_cast<DynamicMapBuild>(p.dq_build);
  else return DynamicMapBuild::Avx2;
}

inline CodebookDqTables codebook_dq_tables(const CodebookParams& p) {
  CodebookDqTables d;
  const std::vector<float> m = create_dynamic_map(true, 7, 8, codebook_dq_build(p));
  for (int i = 0; i < 256; ++i) d.map[i] = m[static_cast<size_t>(i)];
  for (int i = 0; i + 1 < 256; ++i) d.bounds[i] = (d.map[i] + d.map[i + 1]) / 2.0f;
  return d;
}

}  // namespace lowbit
