// lzs4: QuaRTZ = an INT8 stage followed by leading-zero suppression to sign + 3 bits with one
// FLAG per group (FORMATS.md §6, ALGORITHMS.md §3; scalar codec in formats/lzs.hpp).
//
// Stage 1, README form (symmetric, no zero point; rounding unstated in the sources -> RNE):
//   q8 = clamp(rne(x / s8), -127, 127) with, per tensor (s8=tensor, default) or per row = token
//   (s8=token),
//     calib=absmax (default): s8 = amax(|x|) / 128 (amax maps to 128 and clamps to 127)
//     calib=minmax:           s8 = (max(x) - min(x)) / 255, no zero point, so one-sided data
//                             beyond 127 * s8 clips (the README form as written)
//   in fp32. Stage 2 over groups of G consecutive values along the last axis (gN, default 16,
//   any G >= 1 dividing the last dimension): FLAG from the OR of the magnitudes, codes by
//   round=trunc (paper, default) or round=rne (see LzsRound).
// Largest decoded magnitude: 7 << 4 = 112, so under calib=absmax the tensor's amax decodes to
// 112/128 of itself.
//
// Sections: "codes" (4-bit, element 0 in the low nibble), "flags" (u8 per group, shape[:-1] +
// [cols/G]; one byte each in the packed tensor, but a FLAG carries 3 bits of information and
// bits_per_element counts 3), "s8" (f32, [1] or shape[:-1] + [1]).
// bits_per_element = 4 + 3/G + 32 / (numel for s8=tensor, cols for s8=token).
//
// Special values: NaN propagates into the stage-1 statistics (as torch's amax/max/min), Inf makes
// them Inf, so s8 is NaN or Inf and every q8 of that tensor (or row) is 0 (x / Inf = 0, NaN -> 0):
// all of it decodes to 0 * s8 = NaN. A degenerate range gives s8 = 0: all zeros under absmax; a
// constant non-zero row under minmax gives q8 = +-127 and decodes to 0 * 127 = 0.
//
// Speed: encode and fake_quant run fast paths ("Fast path" below: vectorisable loops, AVX-512
// kernels where the build has them) that give the scalar code's packed bytes and values bit for
// bit; the scalar code (run()) stays as the reference (detail::make_lzs_format(spec,
// LzsImpl::Reference)), and tests/formats/test_lzs.cpp compares every implementation.
#include "formats/lzs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "formats/error.hpp"
#include "formats/simd.hpp"
#include "formats/factories.hpp"
#include "formats/spec.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

std::array<int64_t, 5> lzs_flag_histogram(const PackedTensor& p) {
  const Section& s = p.at("flags");
  if (s.dtype != "u8") throw Error(fmt::format("packed tensor ({}): 'flags' section is {}, expected u8", p.spec, s.dtype));
  std::array<int64_t, 5> h{};
  for (const uint32_t f : section_u32(s)) {
    if (f > kLzsMaxFlag) throw Error(fmt::format("packed tensor ({}): FLAG {} is outside 0..4", p.spec, f));
    ++h[f];
  }
  return h;
}

namespace {

constexpr int64_t kParallelMin = 1 << 16;

enum class Calib : uint8_t { Absmax, Minmax };

// NaN-propagating running max / min.
inline float nmax(float m, float v) { return (v > m || std::isnan(v)) && !std::isnan(m) ? v : m; }
inline float nmin(float m, float v) { return (v < m || std::isnan(v)) && !std::isnan(m) ? v : m; }

struct RowStats {
  float lo = 0.0f, hi = 0.0f;  // absmax: hi = max |x|; minmax: the row's min and max
  bool any = false;
};

// ---------------------------------------------------------------------------------------------
// Fast path: the same codes, flags and values as run() below, bit for bit, in loops that GCC
// vectorises (selects only, no calls, no early exits).
//
// q8 = rne(clamp(x / s8, -127, 127)) with the fp32 division as lzs_quantize_int8, clamping
// first (the same integer: rne is monotone and +-127 are integers), rounding with
// (t + 1.5 * 2^23) - 1.5 * 2^23 (exact RNE for |t| <= 2^22), NaN -> 0.
// A group's FLAG comes from the bit length of the OR of its magnitudes, which is that of their
// maximum, and max |q8| = |q8(max |x|)| over the non-NaN elements (q8 is odd and monotone in x;
// a NaN element has q8 = 0), so the FLAG is computed from the group's largest |x| bits.
constexpr float kRneMagic = 12582912.0f;  // 1.5 * 2^23

LOWBIT_HD_HOT float lzs_q8_float(float x, float s) {
  float t = x / s;
  t = t < -127.0f ? -127.0f : t;
  t = t > 127.0f ? 127.0f : t;
  const float r = (t + kRneMagic) - kRneMagic;
  return r == r ? r : 0.0f;
}

// |x| bits with NaN mapped to 0 (so that NaN never wins a max).
LOWBIT_HD_HOT uint32_t abs_bits_no_nan(float x) {
  const uint32_t u = f32_bits(x) & 0x7fffffffu;
  return u & (0u - static_cast<uint32_t>(u <= 0x7f800000u));
}

// One chunk of ng groups of G (= kG, or g when kG is 0) sharing the scale s, rounding the
// dropped bits by truncation or (kRne) to nearest even: per-group FLAGs
// (gflags, if not null), codes (one per byte) and/or decoded values. gm, gf, fe: scratch of ng,
// ng and ng * G entries.
template <int kG, bool kRne>
void lzs_chunk(const float* __restrict x, int64_t ng, int64_t g, float s, uint32_t* __restrict gm,
               int32_t* __restrict gf, int32_t* __restrict fe, uint8_t* __restrict gflags, uint8_t* __restrict codes,
               float* __restrict vals) {
  const int64_t G = kG ? kG : g;
  const int64_t len = ng * G;
  for (int64_t k = 0; k < ng; ++k) {
    uint32_t m = 0;
    const float* __restrict xg = x + k * G;
#pragma GCC unroll 16
    for (int64_t j = 0; j < G; ++j) m = std::max(m, abs_bits_no_nan(xg[j]));
    gm[k] = m;
  }
  for (int64_t k = 0; k < ng; ++k) {
    const float q = lzs_q8_float(f32_from_bits(gm[k]), s);
    const float a = q < 0.0f ? -q : q;  // s = -0.0 (an all-zero row under minmax) flips the sign
    gf[k] = a >= 64.0f ? 4 : (a >= 32.0f ? 3 : (a >= 16.0f ? 2 : (a >= 8.0f ? 1 : 0)));
  }
  if (gflags)
    for (int64_t k = 0; k < ng; ++k) gflags[k] = static_cast<uint8_t>(gf[k]);
  for (int64_t k = 0; k < ng; ++k) {
    const int32_t f = gf[k];
    int32_t* __restrict fk = fe + k * G;
#pragma GCC unroll 16
    for (int64_t j = 0; j < G; ++j) fk[j] = f;
  }
  // Magnitude code c and q^ = +-(c << FLAG) of element i.
  auto mag = [&](int64_t i, int32_t& qi) {
    qi = static_cast<int32_t>(lzs_q8_float(x[i], s));
    const int32_t m = qi < 0 ? -qi : qi;
    const int32_t f = fe[i];
    int32_t c = m >> f;
    if constexpr (kRne) {
      const int32_t rem = m & ((1 << f) - 1);
      const int32_t half = (1 << f) >> 1;  // 0 for FLAG 0 (rem is 0 then)
      const bool up = f > 0 && (rem > half || (rem == half && (c & 1)));
      c = up ? c + 1 : c;
      c = c > 7 ? 7 : c;
    }
    return c;
  };
  if (vals) {
    if constexpr (kRne) {
      for (int64_t i = 0; i < len; ++i) {
        int32_t q;
        const int32_t v = mag(i, q) << fe[i];
        vals[i] = s * static_cast<float>(q < 0 ? -v : v);
      }
    } else {
      for (int64_t i = 0; i < len; ++i) {
        const int32_t q = static_cast<int32_t>(lzs_q8_float(x[i], s));
        const int32_t m = q < 0 ? -q : q;
        const int32_t v = (m >> fe[i]) << fe[i];
        vals[i] = s * static_cast<float>(q < 0 ? -v : v);
      }
    }
  }
  if (codes) {
    for (int64_t i = 0; i < len; ++i) {
      int32_t q;
      const int32_t c = mag(i, q);
      codes[i] = static_cast<uint8_t>((q < 0 ? 8 : 0) | c);
    }
  }
}

using LzsChunkFn = void (*)(const float*, int64_t, int64_t, float, uint32_t*, int32_t*, int32_t*, uint8_t*, uint8_t*,
                            float*);

// A chunk kernel; packed: it writes the codes two per byte (else one per byte).
struct LzsKernel {
  LzsChunkFn fn = nullptr;
  bool packed = false;
};

#if defined(__AVX512F__)
// AVX-512 kernel for groups of 16, 32, 64 or 128: one group at a time in registers, codes
// written packed (two per byte, element 0 in the low nibble; x starts at an even element). q8 as
// above but rounded by vcvtps2dq under round-to-nearest-even (exact on the clamped value; NaN
// lanes are zeroed from an unordered compare taken before the clamp); the FLAG from the OR of
// the magnitudes (lzs_flag, as the reference); then the codes / values of the group.
template <int kG, bool kRne>
void lzs_chunk_avx512(const float* __restrict x, int64_t ng, int64_t, float s, uint32_t*, int32_t*, int32_t*,
                      uint8_t* __restrict gflags, uint8_t* __restrict codes, float* __restrict vals) {
  constexpr int kV = kG / 16;
  const __m512 sv = _mm512_set1_ps(s);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t k = 0; k < ng; ++k) {
    const float* __restrict xg = x + k * kG;
    __m512i q[kV];
    __m512i mor = zero;
    for (int v = 0; v < kV; ++v) {
      const __m512 t = _mm512_div_ps(_mm512_loadu_ps(xg + 16 * v), sv);
      const __mmask16 nan = _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
      const __m512 tc = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
      q[v] = _mm512_maskz_mov_epi32(static_cast<__mmask16>(~nan),
                                    _mm512_cvt_roundps_epi32(tc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      mor = _mm512_or_si512(mor, _mm512_abs_epi32(q[v]));
    }
    const int f = lzs_flag(static_cast<uint32_t>(_mm512_reduce_or_epi32(mor)));
    if (gflags) gflags[k] = static_cast<uint8_t>(f);
    const __m128i fs = _mm_cvtsi32_si128(f);
    for (int v = 0; v < kV; ++v) {
      const __m512i m = _mm512_abs_epi32(q[v]);
      __m512i c = _mm512_srl_epi32(m, fs);
      if constexpr (kRne) {
        if (f > 0) {  // rne(m / 2^f) = (m + 2^(f-1) - 1 + (c & 1)) >> f, then clamped to 7
          const __m512i bias =
              _mm512_add_epi32(_mm512_set1_epi32((1 << (f - 1)) - 1), _mm512_and_si512(c, _mm512_set1_epi32(1)));
          c = _mm512_min_epi32(_mm512_srl_epi32(_mm512_add_epi32(m, bias), fs), _mm512_set1_epi32(7));
        }
      }
      const __mmask16 neg = _mm512_cmplt_epi32_mask(q[v], zero);
      if (vals) {
        __m512i qh = _mm512_sll_epi32(c, fs);
        qh = _mm512_mask_sub_epi32(qh, neg, zero, qh);
        _mm512_storeu_ps(vals + k * kG + 16 * v, _mm512_mul_ps(sv, _mm512_cvtepi32_ps(qh)));
      }
      if (codes) {  // packed: byte j = code[2j] | code[2j + 1] << 4, from the 64-bit lanes
        __m512i code = _mm512_mask_or_epi32(c, neg, c, _mm512_set1_epi32(8));
        code = _mm512_or_si512(code, _mm512_srli_epi64(code, 28));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + (k * kG + 16 * v) / 2), _mm512_cvtepi64_epi8(code));
      }
    }
  }
}
#endif

template <bool kRne>
LzsKernel lzs_kernel_r(int64_t g, bool simd) {
#if defined(__AVX512F__)
  if (simd) {
    switch (g) {
      case 16: return {lzs_chunk_avx512<16, kRne>, true};
      case 32: return {lzs_chunk_avx512<32, kRne>, true};
      case 64: return {lzs_chunk_avx512<64, kRne>, true};
      case 128: return {lzs_chunk_avx512<128, kRne>, true};
      default: break;
    }
  }
#endif
  switch (g) {
    case 16: return {lzs_chunk<16, kRne>, false};
    case 32: return {lzs_chunk<32, kRne>, false};
    case 64: return {lzs_chunk<64, kRne>, false};
    case 128: return {lzs_chunk<128, kRne>, false};
    default: return {lzs_chunk<0, kRne>, false};
  }
}

// The chunk kernel for groups of g; simd: the build's SIMD kernel where it has one for g.
LzsKernel lzs_kernel(int64_t g, LzsRound r, bool simd) {
  return r == LzsRound::Rne ? lzs_kernel_r<true>(g, simd) : lzs_kernel_r<false>(g, simd);
}

// Order key of a float's bits: an int32 that orders like the float (NaN aside); -0 (key -1)
// and +0 both map to 0. (Written so that it vectorises.)
LOWBIT_HD_HOT int32_t order_key(float x) {
  const int32_t i = static_cast<int32_t>(f32_bits(x));
  const int32_t k = i ^ ((i >> 31) & 0x7fffffff);
  return k == -1 ? 0 : k;
}

LOWBIT_HD_HOT float from_order_key(int32_t k) {
  const uint32_t u = static_cast<uint32_t>(k);
  return f32_from_bits(u ^ (static_cast<uint32_t>(k >> 31) & 0x7fffffffu));
}

// The first zero (either sign) of a row that holds one.
float first_zero(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == 0.0f) return x[i];
  return 0.0f;
}

// Packs one-byte 4-bit codes, element 0 in the low nibble (pack_codes' layout).
void pack_nibbles(const uint8_t* __restrict c, int64_t n, uint8_t* __restrict out) {
  const int64_t pairs = n / 2;
  for (int64_t j = 0; j < pairs; ++j) out[j] = static_cast<uint8_t>(c[2 * j] | (c[2 * j + 1] << 4));
  if (n & 1) out[pairs] = c[n - 1];
}

class LzsFormat final : public TensorFormat {
 public:
  LzsFormat(std::string spec, int64_t group, bool per_token, Calib calib, LzsRound round, detail::LzsImpl impl)
      : spec_(std::move(spec)), group_(group), per_token_(per_token), calib_(calib), round_(round),
        kernel_(impl == detail::LzsImpl::Reference ? LzsKernel{}
                                                   : lzs_kernel(group, round, impl == detail::LzsImpl::Native)) {}

  std::string spec() const override { return spec_; }
  std::string family() const override { return "lzs"; }
  FormatParams params() const override {
    return LzsParams{group_, per_token_, calib_ == Calib::Absmax ? LzsCalib::Absmax : LzsCalib::Minmax, round_};
  }
  int code_bits() const override { return 4; }

  double bits_per_element(const Shape& shape) const override {
    const int64_t n = shape_numel(shape);
    const double base = 4.0 + 3.0 / static_cast<double>(group_);
    if (n == 0) return base;
    const RowView rv = row_view(shape);
    return base + 32.0 / static_cast<double>(per_token_ ? rv.cols : n);
  }

  FormatLimits limits() const override {
    return {112.0 * std::numeric_limits<float>::max(), static_cast<double>(std::numeric_limits<float>::denorm_min())};
  }

  void check_shape(const Shape& shape) const override { check_groups_divide(spec_, shape, group_, "group"); }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t cols = row_view(shape).cols;
    std::vector<float> s8 = kernel_.fn ? stage1_scales(x, shape) : scales(x, shape);
    const int64_t ng = n / group_;
    if (kernel_.fn) {
      Section fs{"flags", "u8", flag_shape(shape), std::vector<uint8_t>(static_cast<size_t>(ng))};
      Section c{"codes", "u8", shape, {}};
      c.bytes.resize(static_cast<size_t>(packed_bytes(n, 4)));
      if (kernel_.packed) {
        run_fast(x.data(), n, cols, s8, c.bytes.data(), fs.bytes.data(), nullptr);
      } else {
        const std::unique_ptr<uint8_t[]> codes(new uint8_t[static_cast<size_t>(n)]);
        run_fast(x.data(), n, cols, s8, codes.get(), fs.bytes.data(), nullptr);
        pack_nibbles(codes.get(), n, c.bytes.data());
      }
      PackedTensor p;
      p.spec = spec_;
      p.shape = shape;
      p.code_bits = 4;
      p.sections.push_back(std::move(c));
      p.sections.push_back(std::move(fs));
      p.sections.push_back(make_section_f32("s8", s8_shape(shape), s8));
      return p;
    }
    std::vector<uint32_t> codes(static_cast<size_t>(n));
    std::vector<uint32_t> flags(static_cast<size_t>(ng));
    run(x, cols, s8, [&](int64_t g, int flag, int64_t i, uint32_t code, float) {
      codes[i] = code;
      flags[g] = static_cast<uint32_t>(flag);
    });
    PackedTensor p;
    p.spec = spec_;
    p.shape = shape;
    p.code_bits = 4;
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(n, 4)));
    pack_codes(codes, 4, c.bytes);
    p.sections.push_back(std::move(c));
    p.sections.push_back(make_section_u("flags", 8, flag_shape(shape), flags));
    p.sections.push_back(make_section_f32("s8", s8_shape(shape), s8));
    return p;
  }

  void decode(const PackedTensor& p, std::span<float> out) const override {
    check_packed(p, out);
    const int64_t n = shape_numel(p.shape);
    const int64_t cols = row_view(p.shape).cols;
    const std::vector<uint32_t> codes = element_codes(p);
    const Section& fs = p.at("flags");
    if (fs.dtype != "u8" || shape_numel(fs.shape) != n / group_)
      throw Error(fmt::format("{}: 'flags' section must be u8 with {} entries", spec_, n / group_));
    const std::vector<uint32_t> flags = section_u32(fs);
    for (const uint32_t f : flags)
      if (f > kLzsMaxFlag) throw Error(fmt::format("{}: FLAG {} is outside 0..4", spec_, f));
    const Section& ss = p.at("s8");
    const int64_t ns = num_scales(p.shape);
    if (shape_numel(ss.shape) != ns)
      throw Error(fmt::format("{}: 's8' section has {} entries, expected {}", spec_, shape_numel(ss.shape), ns));
    const std::vector<float> s8 = section_f32(ss);
    const int64_t g = group_;
    const bool tok = per_token_;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t gi = 0; gi < n / g; ++gi) {
      const int flag = static_cast<int>(flags[gi]);
      const float s = s8[tok ? (gi * g) / cols : 0];
      for (int64_t i = gi * g; i < (gi + 1) * g; ++i) out[i] = lzs_decode(codes[i], flag, s);
    }
  }

  void fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const override {
    check_input(x, shape);
    if (out.size() != x.size()) throw Error(fmt::format("{}: output size mismatch", spec_));
    const int64_t cols = row_view(shape).cols;
    std::vector<float> s8 = kernel_.fn ? stage1_scales(x, shape) : scales(x, shape);
    if (kernel_.fn) return run_fast(x.data(), static_cast<int64_t>(x.size()), cols, s8, nullptr, nullptr, out.data());
    run(x, cols, s8, [&](int64_t, int, int64_t i, uint32_t, float v) { out[i] = v; });
  }

 private:
  int64_t num_scales(const Shape& shape) const { return per_token_ ? row_view(shape).rows : 1; }

  Shape flag_shape(const Shape& shape) const {
    Shape s = shape.empty() ? Shape{1} : shape;
    s.back() /= group_;
    return s;
  }

  Shape s8_shape(const Shape& shape) const {
    if (!per_token_) return {1};
    Shape s = shape.empty() ? Shape{1} : shape;
    s.back() = 1;
    // An empty last axis still has rows in the shape but row_view counts none: keep it consistent.
    if (shape_numel(s) != row_view(shape).rows) s.back() = 0;
    return s;
  }

  float scale_of(const RowStats& s) const {
    if (!s.any) return 0.0f;
    return calib_ == Calib::Minmax ? (s.hi - s.lo) / 255.0f : s.hi / 128.0f;
  }

  // Whether run_fast computes the per-row scales itself (row by row, while the row is in cache).
  bool fused_token_scales(int64_t n) const { return kernel_.fn && per_token_ && n > 0; }

  // Stage-1 scale per tensor or per row (fp32); per row under fused_token_scales: zeros that
  // run_fast fills in.
  std::vector<float> stage1_scales(std::span<const float> x, const Shape& shape) const {
    const int64_t n = static_cast<int64_t>(x.size());
    if (fused_token_scales(n)) return std::vector<float>(static_cast<size_t>(n / row_view(shape).cols));
    return scales(x, shape);
  }

  // Stage-1 scale per tensor or per row (fp32).
  std::vector<float> scales(std::span<const float> x, const Shape& shape) const {
    const RowView rv = row_view(shape);
    std::vector<RowStats> st(static_cast<size_t>(rv.rows));
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(x.size()) > kParallelMin)
    for (int64_t r = 0; r < rv.rows; ++r) {
      const float* xr = x.data() + r * rv.cols;
      st[r] = kernel_.fn ? row_stats_fast(xr, rv.cols) : row_stats(xr, rv.cols);
    }
    if (per_token_) {
      std::vector<float> s8(st.size());
      for (size_t r = 0; r < st.size(); ++r) s8[r] = scale_of(st[r]);
      return s8;
    }
    RowStats all;
    for (const RowStats& s : st) {
      if (!s.any) continue;
      all.lo = all.any ? nmin(all.lo, s.lo) : s.lo;
      all.hi = all.any ? nmax(all.hi, s.hi) : s.hi;
      all.any = true;
    }
    return {scale_of(all)};
  }

  // Statistics of one row (reference).
  RowStats row_stats(const float* xr, int64_t cols) const {
    const bool minmax = calib_ == Calib::Minmax;
    RowStats s;
    for (int64_t j = 0; j < cols; ++j) {
      const float v = xr[j];
      if (minmax) {
        s.lo = s.any ? nmin(s.lo, v) : v;
        s.hi = s.any ? nmax(s.hi, v) : v;
      } else {
        s.hi = s.any ? nmax(s.hi, std::fabs(v)) : std::fabs(v);
      }
      s.any = true;
    }
    return s;
  }

  // row_stats on the bit patterns: |x| orders like its bits and order_key(x) like x. A row
  // holding a NaN goes to row_stats (the first NaN propagates). Without NaN the reference's
  // min (max) is the first element of the smallest (largest) value, which only matters for
  // its sign when that value is zero.
  RowStats row_stats_fast(const float* __restrict xr, int64_t cols) const {
    if (cols == 0) return {};
    RowStats s;
    s.any = true;
    uint32_t amax = 0;
    if (calib_ == Calib::Minmax) {
      int32_t kmin = std::numeric_limits<int32_t>::max(), kmax = std::numeric_limits<int32_t>::min();
      for (int64_t j = 0; j < cols; ++j) {
        amax = std::max(amax, f32_bits(xr[j]) & 0x7fffffffu);
        const int32_t k = order_key(xr[j]);
        kmin = std::min(kmin, k);
        kmax = std::max(kmax, k);
      }
      if (amax > 0x7f800000u) return row_stats(xr, cols);
      s.lo = kmin == 0 ? first_zero(xr, cols) : from_order_key(kmin);
      s.hi = kmax == 0 ? first_zero(xr, cols) : from_order_key(kmax);
    } else {
      for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, f32_bits(xr[j]) & 0x7fffffffu);
      if (amax > 0x7f800000u) return row_stats(xr, cols);
      s.hi = f32_from_bits(amax);
    }
    return s;
  }

  // Fast quantisation (a chunk kernel): codes (one or, if kernel_.packed, two per byte), FLAGs
  // and/or values, any may be null.
  void run_fast(const float* x, int64_t n, int64_t cols, std::vector<float>& s8, uint8_t* codes, uint8_t* flags,
                float* vals) const {
    if (n == 0) return;
    constexpr int64_t kChunk = 2048;
    const int64_t G = group_;
    const int64_t gpc = std::max<int64_t>(1, kChunk / G);  // groups per chunk
    const LzsChunkFn fn = kernel_.fn;
    const bool packed = kernel_.packed;
    const bool token_scales = fused_token_scales(n);
#pragma omp parallel if (n > kParallelMin)
    {
      std::vector<uint32_t> gm(static_cast<size_t>(gpc));
      std::vector<int32_t> gf(static_cast<size_t>(gpc)), fe(static_cast<size_t>(gpc * G));
      // Groups [g0, g0 + ng) with the scale s, in chunks.
      auto groups = [&](int64_t g0, int64_t ng, float s) {
        for (int64_t c = 0; c < ng; c += gpc) {
          const int64_t e0 = (g0 + c) * G;
          fn(x + e0, std::min(gpc, ng - c), G, s, gm.data(), gf.data(), fe.data(), flags ? flags + g0 + c : nullptr,
             codes ? codes + (packed ? e0 / 2 : e0) : nullptr, vals ? vals + e0 : nullptr);
        }
      };
      if (per_token_) {
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n / cols; ++r) {
          if (token_scales) s8[static_cast<size_t>(r)] = scale_of(row_stats_fast(x + r * cols, cols));
          groups(r * (cols / G), cols / G, s8[static_cast<size_t>(r)]);
        }
      } else {
#pragma omp for schedule(static)
        for (int64_t c = 0; c < (n / G + gpc - 1) / gpc; ++c) groups(c * gpc, std::min(gpc, n / G - c * gpc), s8[0]);
      }
    }
  }

  // Quantises every group: sink(group, flag, element index, code, decoded value).
  template <class Sink>
  void run(std::span<const float> x, int64_t cols, const std::vector<float>& s8, Sink&& sink) const {
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t g = group_;
    const bool tok = per_token_;
    const LzsRound rnd = round_;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t gi = 0; gi < n / g; ++gi) {
      const float s = s8[tok ? (gi * g) / cols : 0];
      const int64_t begin = gi * g, end = begin + g;
      uint32_t mag_or = 0;
      for (int64_t i = begin; i < end; ++i) {
        const int32_t q = lzs_quantize_int8(x[i], s);
        mag_or |= static_cast<uint32_t>(q < 0 ? -q : q);
      }
      const int flag = lzs_flag(mag_or);
      for (int64_t i = begin; i < end; ++i) {
        const uint32_t code = lzs_encode(lzs_quantize_int8(x[i], s), flag, rnd);
        sink(gi, flag, i, code, lzs_decode(code, flag, s));
      }
    }
  }

  std::string spec_;
  int64_t group_;
  bool per_token_;
  Calib calib_;
  LzsRound round_;
  LzsKernel kernel_;  // fast path; none: reference
};

std::unique_ptr<TensorFormat> make_lzs(Spec& spec, detail::LzsImpl impl) {
  if (spec.name() != "lzs4") spec.fail("not an LZS format");
  const int64_t group = spec.take_int("g", 1, int64_t{1} << 40).value_or(16);
  bool per_token = false;
  if (const auto s = spec.take("s8")) {
    if (*s == "token") per_token = true;
    else if (*s != "tensor") spec.fail(fmt::format("s8 must be tensor or token (got '{}')", *s));
  }
  Calib calib = Calib::Absmax;
  if (const auto c = spec.take("calib")) {
    if (*c == "minmax") calib = Calib::Minmax;
    else if (*c != "absmax") spec.fail(fmt::format("calib must be absmax or minmax (got '{}')", *c));
  }
  LzsRound round = LzsRound::Trunc;
  if (const auto r = spec.take("round")) {
    if (*r == "rne") round = LzsRound::Rne;
    else if (*r != "trunc") spec.fail(fmt::format("round must be trunc or rne (got '{}')", *r));
  }
  spec.finish("gN (default 16), s8=tensor|token, calib=absmax|minmax, round=trunc|rne");
  return std::make_unique<LzsFormat>(spec.text(), group, per_token, calib, round, impl);
}

}  // namespace

std::unique_ptr<TensorFormat> make_lzs_format(Spec& spec) { return make_lzs(spec, detail::LzsImpl::Native); }

namespace detail {
std::unique_ptr<TensorFormat> make_lzs_format(std::string_view text, LzsImpl impl) {
  Spec spec(text);
  return make_lzs(spec, impl);
}
}  // namespace detail

}  // namespace lowbit
