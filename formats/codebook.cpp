// Codebook formats with blockwise absmax: nf4, bnb_fp4, af4, codebook (FORMATS.md §3).
//
// Blocks of g consecutive elements (gN, default 64 as bitsandbytes) run along the last axis,
// which g must divide. Per block, absmax is stored as fp32 ("scales", shape[:-1] + [cols/g]) and
// every element is coded against the normalised codebook; decode = table[code] * absmax (fp32).
// Two backends reproduce bitsandbytes' two code paths (FORMATS.md §3.2, trap 12):
//   backend=cuda (default; kQuantizeBlockwise): absmax = fmaxf-reduction of |x| from -FLT_MAX
//     (NaN elements are skipped; an all-NaN block keeps -FLT_MAX), recip = 1.0f / absmax once per
//     block, xn = x * recip, code by bnb's decision tree (nf4, bnb_fp4) or, for af4 and user
//     codebooks (no bnb kernel), the exactly nearest value with ties to the lower code; NaN xn
//     (all-zero block: 0 * Inf) fails every comparison -> code 0, so an NF4 zero block decodes
//     to -1.0 * 0 = -0.0 and an Inf element to -Inf.
//   backend=torch (bnb's default CPU/XPU backend): absmax = max |x| (NaN propagates),
//     xn = clamp(x * (1 / max(absmax, 1e-38)), -1, 1), code = torch.bucketize(xn, midpoints,
//     right=False) over the fp32 midpoints (a + b) / 2 of the table sorted by a stable argsort,
//     mapped back through that order (bnb_fp4's table is not monotone); an exact midpoint takes
//     the lower bucket, NaN the top one. A zero block gives NF4 code 7 (+0).
// The two differ on a handful of fp32 inputs: four NF4 CUDA literals (i = 0, 8, 12, 14) are 1
// ulp off torch's fp32 midpoints, and bnb_fp4 under torch sends tiny positives to code 8 (-0) and tiny
// negatives to code 0 (+0), because +0 sorts before -0 there.
//
// Packing (FORMATS.md §9, trap 11): lowbit's house layout puts element 0 in the LOW nibble
// (pack_codes; order=lo, the default for every format). order=hi reproduces bitsandbytes' bytes,
// byte j = (q[2j] << 4) | q[2j+1] over the flattened tensor; only for 4-bit codes. The generic
// element_codes() helper reads the low-nibble layout; unpacked_codes() reads either.
//
// Double quantisation (dq, bnb compress_statistics=True): offset = mean(absmax) (fp32 result of a
// double-precision sum: torch's fp32 reduction order is implementation-defined, the offset is
// stored so decoding is exact); absmax - offset is quantised blockwise (256, over the flattened
// absmax array, last block partial) with the signed dynamic 8-bit map, by the same backend:
// CUDA's binary search + midpoint test, or torch's bucketize (partial block: division by the
// clamped absmax, which is what gets stored). Sections "absmax_codes" (u8, shape of scales),
// "absmax_scales" (f32, ceil(blocks/256)), "absmax_offset" (f32, [1]); decoded absmax =
// fp32(fp32(map[q] * absmax2) + offset), two roundings as bnb's two kernels. The 4-bit codes are
// chosen with the exact absmax (as bnb), only decoding uses the compressed one.
// dqmap=avx2|avx512|scalar picks how the torch that built the map vectorised linspace (it moves
// about 30-40 of the 256 entries by 1-2 ulps; codebook.hpp); default avx2.
//
// User codebooks (values=v0/v1/... or file=PATH): 2..256 finite, strictly ascending float32
// values, code = index, code width ceil(log2(n)). The table is normalised in fp32 by max |v| as
// bnb's get_4bit_type normalises its tables, so the block scale is in effect absmax / max|v|.
//
// Speed: encode and fake_quant run fast paths ("Fast path" below: vectorisable loops, AVX-512
// kernels where the build has them) that give the scalar code's packed bytes and values bit for
// bit; the scalar code stays as the reference (detail::make_codebook_format(spec,
// CodebookImpl::Reference)), and tests/formats/test_codebook.cpp compares every implementation.
#include "formats/codebook.hpp"
#include "formats/codebook_rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <utility>

#include "formats/error.hpp"
#include "formats/simd.hpp"
#include "formats/factories.hpp"
#include "formats/spec.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

// ---------------------------------------------------------------------------------------------
// Scalar helpers with heap results.

namespace {
// a * b rounded to fp32 on its own, so no caller can contract it with a following add into an
// fma (ATen computes these as separate fp32 operations).
float mul_rounded(float a, float b) {
  volatile float p = a * b;
  return p;
}
}  // namespace

std::vector<float> torch_linspace_f32(float start, float end, int64_t steps, int vec_width) {
  if (steps < 0) throw Error("linspace: negative number of steps");
  std::vector<float> out(static_cast<size_t>(steps));
  if (steps == 0) return out;
  if (steps == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  auto scalar_at = [&](int64_t i) {
    return i < halfway ? start + mul_rounded(step, static_cast<float>(i))
                       : end - mul_rounded(step, static_cast<float>(steps - i - 1));
  };
  int64_t i = 0;
  if (vec_width > 0) {
    for (; i + 2 * vec_width <= steps; i += 2 * vec_width) {
      for (int64_t v = i; v < i + 2 * vec_width; v += vec_width) {
        const float base = scalar_at(v);
        for (int k = 0; k < vec_width; ++k) out[v + k] = base + mul_rounded(static_cast<float>(k), step);
      }
    }
  }
  for (; i < steps; ++i) out[i] = scalar_at(i);
  return out;
}

std::vector<float> create_dynamic_map(bool is_signed, int max_exponent_bits, int total_bits, DynamicMapBuild build) {
  if (total_bits < 2 || total_bits > 8 || max_exponent_bits < 1 || max_exponent_bits > total_bits - 1)
    throw Error(fmt::format("create_dynamic_map: need 2 <= total_bits <= 8 and 1 <= max_exponent_bits <= "
                            "total_bits - 1 (got {}, {})",
                            total_bits, max_exponent_bits));
  // fp32(10^-k) as Python's float 10 ** -k (a correctly rounded double) cast by torch to fp32.
  constexpr double kPow10[] = {1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7};
  const int vec = dynamic_map_vec_width(build);
  const int non_sign = total_bits - 1;
  std::vector<float> data;
  auto add_decade = [&](int64_t items, int i) {
    const std::vector<float> b = torch_linspace_f32(0.1f, 1.0f, items, vec);
    const float scale = static_cast<float>(kPow10[max_exponent_bits - 1 - i]);
    for (size_t k = 0; k + 1 < b.size(); ++k) {
      const float mean = (b[k] + b[k + 1]) / 2.0f;
      data.push_back(scale * mean);
      if (is_signed) data.push_back(-scale * mean);
    }
  };
  for (int i = 0; i < max_exponent_bits; ++i) {
    const int e = i + non_sign - max_exponent_bits + (is_signed ? 0 : 1);
    add_decade((int64_t{1} << e) + 1, i);
  }
  const int64_t additional = (int64_t{1} << (non_sign - max_exponent_bits)) - 1;
  // bnb reuses the loop variable's last value (max_exponent_bits - 1) for these items.
  if (additional > 0) add_decade(additional + 1, max_exponent_bits - 1);
  data.push_back(0.0f);
  data.push_back(1.0f);
  data.resize(256, 0.0f);
  std::sort(data.begin(), data.end());
  return data;
}

namespace {
float parse_one_value(std::string_view tok, std::string_view context) {
  std::string_view t = tok;
  if (!t.empty() && t.front() == '+') t.remove_prefix(1);
  float v = 0.0f;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size())
    throw Error(fmt::format("{}: '{}' is not a number", context, tok));
  if (!std::isfinite(v)) throw Error(fmt::format("{}: codebook value '{}' is not finite", context, tok));
  return v;
}

void validate_codebook(const std::vector<float>& v, std::string_view context) {
  if (v.size() < 2 || v.size() > 256)
    throw Error(fmt::format("{}: a codebook needs 2 to 256 values, got {}", context, v.size()));
  for (size_t i = 1; i < v.size(); ++i)
    if (!(v[i - 1] < v[i]))
      throw Error(fmt::format("{}: codebook values must be strictly ascending as float32 ({} then {} at index {})",
                              context, v[i - 1], v[i], i));
}
}  // namespace

std::vector<float> parse_codebook_values(std::string_view text, char separator, std::string_view context) {
  std::vector<float> v;
  const bool ws = separator == ' ';
  size_t pos = 0;
  while (pos <= text.size()) {
    if (ws) {
      while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
      if (pos == text.size()) break;
    }
    size_t end = pos;
    while (end < text.size() &&
           (ws ? !std::isspace(static_cast<unsigned char>(text[end])) : text[end] != separator))
      ++end;
    v.push_back(parse_one_value(text.substr(pos, end - pos), context));
    if (v.size() > 256) break;
    pos = end + 1;
    if (!ws && end == text.size()) break;
  }
  validate_codebook(v, context);
  return v;
}

std::vector<float> read_codebook_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(fmt::format("codebook file '{}': cannot open", path));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw Error(fmt::format("codebook file '{}': read error", path));
  const std::string text = ss.str();
  if (text.size() > (size_t{1} << 20)) throw Error(fmt::format("codebook file '{}': larger than 1 MiB", path));
  return parse_codebook_values(text, ' ', fmt::format("codebook file '{}'", path));
}

// ---------------------------------------------------------------------------------------------
// The tensor format.

namespace {

constexpr int64_t kParallelMin = 1 << 16;
constexpr int64_t kDqBlock = 256;
constexpr float kTorchTiny = 1e-38f;  // torch's absmax.clamp(min=1e-38), as fp32

enum class Kind : uint8_t { Nf4, BnbFp4, Af4, User };
enum class Backend : uint8_t { Cuda, Torch };

// CUDA block max: fmaxf over |x| from -FLT_MAX (NaN never wins).
float absmax_cuda(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::max();
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

// torch max of |x| over a non-empty range (NaN propagates).
float absmax_torch(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > m || std::isnan(a)) m = a;
    if (std::isnan(m)) break;
  }
  return m;
}

float clamp_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }  // NaN passes

// torch.bucketize(x, bounds, right=False): the shared host+device rule (codebook_rules.hpp).
uint32_t bucketize(const float* bounds, int n, float x) { return codebook_bucketize(bounds, n, x); }

// Code choosers (templated into the block loop).
struct Nf4Cuda {
  uint32_t operator()(float xn) const { return nf4_code_cuda(xn); }
};
struct BnbFp4Cuda {
  uint32_t operator()(float xn) const { return bnb_fp4_code_cuda(xn); }
};
// Exactly nearest value of an ascending table, ties to the lower code: the number of exact
// midpoints (in double: sums of two floats are exact there) strictly below xn. NaN -> 0.
struct NearestExact {
  const double* mids;
  int n;
  uint32_t operator()(float xn) const {
    const double x = xn;
    int lo = 0, hi = n;
    while (lo < hi) {
      const int mid = lo + ((hi - lo) >> 1);
      if (mids[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return static_cast<uint32_t>(lo);
  }
};
struct TorchBucketize {
  const float* bounds;
  const uint32_t* order;
  int n;
  uint32_t operator()(float xn) const { return order[bucketize(bounds, n, xn)]; }
};

// ---------------------------------------------------------------------------------------------
// Fast path: the same codes and values as the coders above, bit for bit. Every coder above is
// a rank, the number of ascending thresholds that xn passes (the predicate holds for a prefix
// of them, so counting them and bnb's decision tree / ATen's binary search agree), mapped to a
// code and a normalised value:
//   Strict   xn > thr[j]: nf4 under cuda (bnb's decision tree is this count), af4 and user
//            codebooks under cuda with thr[j] = the largest float <= exact midpoint j (for a
//            float x, x > that float iff double(x) > the midpoint); NaN passes none -> rank 0.
//   Torch    !(thr[j] >= xn) on clamp_unit(xn): bucketize(right=False) over the fp32 midpoints
//            (ATen's binary search moves right on exactly this predicate); NaN passes all;
//            code = order[rank].
//   SignMag  bnb_fp4 under cuda: rank of |xn| (xn < 0 ? -xn : xn) over the 7 magnitude
//            thresholds, sign bit 8 iff xn < 0; NaN: rank 0, no sign.
// The kernels take K = 2^L - 1 thresholds; tables with fewer than K + 1 entries pad the
// thresholds with +Inf (passed by no number) and repeat the last code and value (reached only
// by NaN under Torch, which passes every bound).
//   Portable kernels (K <= 31): loops with selects only (one compare and select per
//     threshold, tables in locals) that GCC vectorises; K >= 63: a binary search per element
//     with selects.
//   AVX-512 kernels: a binary search over 16 lanes, per level one lookup of each lane's
//     threshold thr[c + step - 1], one compare, one masked add; the lookups by vpermps (K <= 15,
//     per-level tables indexed by c), vpermt2ps (K = 31) or gathers (K >= 63).
enum class Rank : uint8_t { Strict, Torch, SignMag };

struct RankTables {
  int k = 0;  // thresholds in the kernels: 2^L - 1 (3 .. 255); 0 = no fast path
  Rank mode = Rank::Strict;
  float thr[255] = {};
  uint32_t code[256] = {};
  float val[256] = {};
};

template <Rank M>
LOWBIT_HD_HOT bool rank_passes(float thr, float xn) {
  return M == Rank::Torch ? !(thr >= xn) : xn > thr;
}

// xn as the predicates see it: clamped (Torch), or its magnitude and sign (SignMag).
template <Rank M>
LOWBIT_HD_HOT float rank_xn(float xn, bool& neg) {
  if constexpr (M == Rank::Torch) xn = xn < -1.0f ? -1.0f : (xn > 1.0f ? 1.0f : xn);
  neg = M == Rank::SignMag && xn < 0.0f;
  if constexpr (M == Rank::SignMag) xn = neg ? -xn : xn;
  return xn;
}

// out[i] = value(rank(x[i] * r[i])) * s[i].
template <int K, Rank M>
void rank_values(const RankTables& tb, const float* __restrict x, const float* __restrict r, const float* __restrict s,
                 int64_t len, float* __restrict out) {
  if constexpr (K <= 31) {
    float thr[K], val[K + 1];
    for (int j = 0; j < K; ++j) thr[j] = tb.thr[j];
    for (int j = 0; j <= K; ++j) val[j] = tb.val[j];
    for (int64_t i = 0; i < len; ++i) {
      bool neg;
      const float xn = rank_xn<M>(x[i] * r[i], neg);
      float v = val[0];
#pragma GCC unroll 32
      for (int j = 0; j < K; ++j) v = rank_passes<M>(thr[j], xn) ? val[j + 1] : v;
      if constexpr (M == Rank::SignMag) v = neg ? -v : v;
      out[i] = v * s[i];
    }
  } else {
    for (int64_t i = 0; i < len; ++i) {
      bool neg;
      const float xn = rank_xn<M>(x[i] * r[i], neg);
      int c = 0;
      for (int step = (K + 1) / 2; step > 0; step >>= 1) c += rank_passes<M>(tb.thr[c + step - 1], xn) ? step : 0;
      out[i] = tb.val[c] * s[i];
    }
  }
}

// codes[i] = code(rank(x[i] * r[i])).
template <int K, Rank M>
void rank_codes(const RankTables& tb, const float* __restrict x, const float* __restrict r, int64_t len,
                uint8_t* __restrict codes) {
  if constexpr (K <= 31) {
    float thr[K];
    uint32_t code[K + 1];
    for (int j = 0; j < K; ++j) thr[j] = tb.thr[j];
    for (int j = 0; j <= K; ++j) code[j] = tb.code[j];
    for (int64_t i = 0; i < len; ++i) {
      bool neg;
      const float xn = rank_xn<M>(x[i] * r[i], neg);
      uint32_t c = code[0];
#pragma GCC unroll 32
      for (int j = 0; j < K; ++j) c = rank_passes<M>(thr[j], xn) ? code[j + 1] : c;
      if constexpr (M == Rank::SignMag) c |= neg ? 8u : 0u;
      codes[i] = static_cast<uint8_t>(c);
    }
  } else {
    for (int64_t i = 0; i < len; ++i) {
      bool neg;
      const float xn = rank_xn<M>(x[i] * r[i], neg);
      int c = 0;
      for (int step = (K + 1) / 2; step > 0; step >>= 1) c += rank_passes<M>(tb.thr[c + step - 1], xn) ? step : 0;
      codes[i] = static_cast<uint8_t>(tb.code[c]);
    }
  }
}

#if defined(__AVX512F__)
// Gathers base[idx] (without the unset source register of _mm512_i32gather_*, which GCC 12
// warns about).
LOWBIT_HD_HOT __m512 gather_ps(__m512i idx, const float* base) {
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff, idx, base, 4);
}

LOWBIT_HD_HOT __m512i gather_epi32(__m512i idx, const uint32_t* base) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xffff, idx, base, 4);
}

template <int K, Rank M>
struct RankAvx512 {
  static constexpr int kLevels = K == 3 ? 2 : K == 7 ? 3 : K == 15 ? 4 : K == 31 ? 5 : K == 63 ? 6 : K == 127 ? 7 : 8;
  static constexpr bool kGather = K >= 63;
  // Per-level threshold tables indexed by c (two registers for K = 31), value and code tables.
  __m512 lvl[kGather ? 1 : kLevels][2];
  __m512 val[2];
  __m512i code[2];
  const RankTables* tb;

  explicit RankAvx512(const RankTables& t) : tb(&t) {
    if constexpr (!kGather) {
      for (int l = 0; l < kLevels; ++l) {
        const int step = 1 << (kLevels - 1 - l);
        alignas(64) float tt[32];
        for (int c = 0; c < 32; ++c)
          tt[c] = c + step - 1 < K ? t.thr[c + step - 1] : std::numeric_limits<float>::infinity();
        lvl[l][0] = _mm512_load_ps(tt);
        lvl[l][1] = _mm512_load_ps(tt + 16);
      }
      for (int h = 0; h < 2; ++h) {
        val[h] = _mm512_loadu_ps(t.val + 16 * h);
        code[h] = _mm512_loadu_si512(t.code + 16 * h);
      }
    }
  }

  static __m512 lookup(__m512i c, const __m512 (&t)[2]) {
    if constexpr (K <= 15) return _mm512_permutexvar_ps(c, t[0]);
    else return _mm512_permutex2var_ps(t[0], c, t[1]);
  }

  // xn of 16 lanes -> rank; neg: SignMag's negative lanes (xn < 0).
  __m512i rank(__m512 xn, __mmask16& neg) const {
    neg = 0;
    if constexpr (M == Rank::Torch) {
      // clamp_unit: vmaxps / vminps return their second operand when either is NaN, so NaN passes.
      xn = _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_set1_ps(-1.0f), xn));
    }
    if constexpr (M == Rank::SignMag) {
      neg = _mm512_cmp_ps_mask(xn, _mm512_setzero_ps(), _CMP_LT_OQ);
      xn = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(xn), _mm512_set1_epi32(0x7fffffff)));
    }
    __m512i c = _mm512_setzero_si512();
    for (int l = 0; l < kLevels; ++l) {
      const int step = 1 << (kLevels - 1 - l);
      __m512 t;
      if constexpr (kGather) t = gather_ps(_mm512_add_epi32(c, _mm512_set1_epi32(step - 1)), tb->thr);
      else t = lookup(c, lvl[l]);
      const __mmask16 p =
          M == Rank::Torch ? _mm512_cmp_ps_mask(t, xn, _CMP_NGE_UQ) : _mm512_cmp_ps_mask(xn, t, _CMP_GT_OQ);
      c = _mm512_mask_add_epi32(c, p, c, _mm512_set1_epi32(step));
    }
    return c;
  }

  __m512 value(__m512i c) const {
    if constexpr (kGather) return gather_ps(c, tb->val);
    else return lookup(c, val);
  }

  __m512i code_of(__m512i c) const {
    if constexpr (kGather) return gather_epi32(c, tb->code);
    else if constexpr (K <= 15) return _mm512_permutexvar_epi32(c, code[0]);
    else return _mm512_permutex2var_epi32(code[0], c, code[1]);
  }
};

// Values of 16 lanes (x * r ranked, times s).
template <int K, Rank M>
LOWBIT_HD_HOT __m512 rank_values16(const RankAvx512<K, M>& k, __m512 x, __m512 r, __m512 s) {
  __mmask16 neg;
  __m512 v = k.value(k.rank(_mm512_mul_ps(x, r), neg));
  if constexpr (M == Rank::SignMag)
    v = _mm512_castsi512_ps(
        _mm512_mask_xor_epi32(_mm512_castps_si512(v), neg, _mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
  return _mm512_mul_ps(v, s);
}

template <int K, Rank M>
LOWBIT_HD_HOT __m512i rank_codes16_epi32(const RankAvx512<K, M>& k, __m512 x, __m512 r) {
  __mmask16 neg;
  __m512i c = k.code_of(k.rank(_mm512_mul_ps(x, r), neg));
  if constexpr (M == Rank::SignMag) c = _mm512_mask_or_epi32(c, neg, c, _mm512_set1_epi32(8));
  return c;
}

template <int K, Rank M>
LOWBIT_HD_HOT __m128i rank_codes16(const RankAvx512<K, M>& k, __m512 x, __m512 r) {
  return _mm512_cvtepi32_epi8(rank_codes16_epi32(k, x, r));
}

// Full vectors with plain loads and stores (masked stores are slow on some cores), the tail
// masked.
template <int K, Rank M>
void rank_values_avx512(const RankTables& tb, const float* __restrict x, const float* __restrict r,
                        const float* __restrict s, int64_t len, float* __restrict out) {
  const RankAvx512<K, M> k(tb);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16)
    _mm512_storeu_ps(out + i, rank_values16(k, _mm512_loadu_ps(x + i), _mm512_loadu_ps(r + i), _mm512_loadu_ps(s + i)));
  if (i < len) {
    const __mmask16 m = static_cast<__mmask16>((1u << (len - i)) - 1u);
    _mm512_mask_storeu_ps(out + i, m,
                          rank_values16(k, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, r + i),
                                        _mm512_maskz_loadu_ps(m, s + i)));
  }
}

template <int K, Rank M>
void rank_codes_avx512(const RankTables& tb, const float* __restrict x, const float* __restrict r, int64_t len,
                       uint8_t* __restrict codes) {
  const RankAvx512<K, M> k(tb);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i),
                     rank_codes16(k, _mm512_loadu_ps(x + i), _mm512_loadu_ps(r + i)));
  if (i < len) {
    const __mmask16 m = static_cast<__mmask16>((1u << (len - i)) - 1u);
    const __m128i c = rank_codes16(k, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, r + i));
    alignas(16) uint8_t b[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(b), c);
    for (int64_t j = i; j < len; ++j) codes[j] = b[j - i];
  }
}

// Whole blocks of g (a multiple of 16) with per-block factors: rblk[b], sblk[b].
template <int K, Rank M>
void rank_values_blocks_avx512(const RankTables& tb, const float* __restrict x, const float* __restrict rblk,
                               const float* __restrict sblk, int64_t g, int64_t nb, float* __restrict out) {
  const RankAvx512<K, M> k(tb);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 r = _mm512_set1_ps(rblk[b]), s = _mm512_set1_ps(sblk[b]);
    for (int64_t i = b * g; i < (b + 1) * g; i += 16)
      _mm512_storeu_ps(out + i, rank_values16(k, _mm512_loadu_ps(x + i), r, s));
  }
}

// Codes one per byte (nibbles 0), or packed two per byte with element 0 in the low nibble (1)
// or the high nibble (2); codes then points at the byte of element 0.
template <int K, Rank M>
void rank_codes_blocks_avx512(const RankTables& tb, const float* __restrict x, const float* __restrict rblk, int64_t g,
                              int64_t nb, int nibbles, uint8_t* __restrict codes) {
  const RankAvx512<K, M> k(tb);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 r = _mm512_set1_ps(rblk[b]);
    for (int64_t i = b * g; i < (b + 1) * g; i += 16) {
      const __m512i c = rank_codes16_epi32(k, _mm512_loadu_ps(x + i), r);
      if (nibbles == 0) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm512_cvtepi32_epi8(c));
      } else {  // code pairs in the 64-bit lanes (bits 0-3, 32-35) -> the lanes' low bytes
        const __m512i p = nibbles == 1 ? _mm512_or_si512(c, _mm512_srli_epi64(c, 28))
                                       : _mm512_or_si512(_mm512_slli_epi64(c, 4), _mm512_srli_epi64(c, 32));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i / 2), _mm512_cvtepi64_epi8(p));
      }
    }
  }
}
#endif

using RankValuesFn = void (*)(const RankTables&, const float*, const float*, const float*, int64_t, float*);
using RankCodesFn = void (*)(const RankTables&, const float*, const float*, int64_t, uint8_t*);
using RankValuesBlocksFn = void (*)(const RankTables&, const float*, const float*, const float*, int64_t, int64_t,
                                    float*);
using RankCodesBlocksFn = void (*)(const RankTables&, const float*, const float*, int64_t, int64_t, int, uint8_t*);

// Kernels over a run of elements with per-element factors, and (may be null) over whole blocks
// of a multiple of 16 elements with per-block factors.
struct RankKernels {
  RankValuesFn values = nullptr;
  RankCodesFn codes = nullptr;
  RankValuesBlocksFn values_blocks = nullptr;
  RankCodesBlocksFn codes_blocks = nullptr;
};

template <int K, Rank M>
RankKernels rank_kernels_km(bool simd) {
#if defined(__AVX512F__)
  if (simd)
    return {rank_values_avx512<K, M>, rank_codes_avx512<K, M>, rank_values_blocks_avx512<K, M>,
            rank_codes_blocks_avx512<K, M>};
#endif
  return {rank_values<K, M>, rank_codes<K, M>, nullptr, nullptr};
}

template <int K>
RankKernels rank_kernels_k(Rank m, bool simd) {
  switch (m) {
    case Rank::Strict: return rank_kernels_km<K, Rank::Strict>(simd);
    case Rank::Torch: return rank_kernels_km<K, Rank::Torch>(simd);
    default: return {};
  }
}

// The kernels for tb; simd: the build's SIMD kernels where it has them (else the portable loops).
RankKernels rank_kernels(const RankTables& tb, bool simd) {
  if (tb.mode == Rank::SignMag) return tb.k == 7 ? rank_kernels_km<7, Rank::SignMag>(simd) : RankKernels{};
  switch (tb.k) {
    case 3: return rank_kernels_k<3>(tb.mode, simd);
    case 7: return rank_kernels_k<7>(tb.mode, simd);
    case 15: return rank_kernels_k<15>(tb.mode, simd);
    case 31: return rank_kernels_k<31>(tb.mode, simd);
    case 63: return rank_kernels_k<63>(tb.mode, simd);
    case 127: return rank_kernels_k<127>(tb.mode, simd);
    case 255: return rank_kernels_k<255>(tb.mode, simd);
    default: return {};
  }
}

// absmax_cuda on the bit patterns (|x| orders like its bits): NaN maps to 0 and every other |x|
// to bits + 1, so NaN never wins and an all-NaN block keeps -FLT_MAX.
float absmax_cuda_fast(const float* __restrict x, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = f32_bits(x[i]) & 0x7fffffffu;
    const uint32_t k = (u + 1u) & (0u - static_cast<uint32_t>(u <= 0x7f800000u));  // (written so that it vectorises)
    m = std::max(m, k);
  }
  return m == 0 ? -std::numeric_limits<float>::max() : f32_from_bits(m - 1);
}

// absmax_torch on the bit patterns; a block holding a NaN (bits above Inf's) goes to the scalar
// loop, which returns the first NaN as torch propagates it.
float absmax_torch_fast(const float* __restrict x, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = f32_bits(x[i]) & 0x7fffffffu;
    m = std::max(m, u);
  }
  return m > 0x7f800000u ? absmax_torch(x, n) : f32_from_bits(m);
}

// The largest float <= m.
float float_at_or_below(double m) {
  float f = static_cast<float>(m);
  if (static_cast<double>(f) > m) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// Packs one-byte codes (each < 2^code_bits) as pack_codes does, or bitsandbytes' high-nibble-
// first order for 4-bit codes.
void pack_u8_codes(const uint8_t* __restrict c, int64_t n, int code_bits, bool hi_nibble, uint8_t* __restrict out) {
  if (code_bits == 4) {
    const int64_t pairs = n / 2;
    if (hi_nibble) {
      for (int64_t j = 0; j < pairs; ++j) out[j] = static_cast<uint8_t>((c[2 * j] << 4) | c[2 * j + 1]);
      if (n & 1) out[pairs] = static_cast<uint8_t>(c[n - 1] << 4);
    } else {
      for (int64_t j = 0; j < pairs; ++j) out[j] = static_cast<uint8_t>(c[2 * j] | (c[2 * j + 1] << 4));
      if (n & 1) out[pairs] = c[n - 1];
    }
  } else if (code_bits == 1 || code_bits == 2) {
    const int per_byte = 8 / code_bits;
    const int64_t nbytes = (n + per_byte - 1) / per_byte;
    for (int64_t j = 0; j < nbytes; ++j) {
      uint32_t b = 0;
      for (int k = 0; k < per_byte && j * per_byte + k < n; ++k)
        b |= static_cast<uint32_t>(c[j * per_byte + k]) << (code_bits * k);
      out[j] = static_cast<uint8_t>(b);
    }
  } else {  // 3, 5, 6, 7, 8 bits: one byte each
    if (n > 0) std::memcpy(out, c, static_cast<size_t>(n));
  }
}

// bnb_dynamic8_code(map, x * recip) for n values without its branches (they mispredict on
// real data): the same search path and comparisons, the selects written as masks.
void dynamic8_codes_select(const float* __restrict map, const float* __restrict v, float recip, int64_t n,
                           uint32_t* __restrict q) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = v[i] * recip;
    int32_t pivot = 127, above = 255, below = 0;
    float m = map[127];
#pragma GCC unroll 8
    for (int32_t step = 64; step > 0; step >>= 1) {
      const int32_t gt = -static_cast<int32_t>(x > m);  // all ones or 0
      below = (pivot & gt) | (below & ~gt);
      above = (above & gt) | (pivot & ~gt);
      pivot += (step & gt) - (step & ~gt);
      m = map[pivot];
    }
    const int32_t gt = -static_cast<int32_t>(x > m);
    const int32_t side = (above & gt) | (below & ~gt);  // the last visited neighbour on x's side
    const float mid = (map[side] + m) * 0.5f;
    const int32_t away = -static_cast<int32_t>((x > mid) & (gt != 0)) | -static_cast<int32_t>((x < mid) & (gt == 0));
    q[i] = static_cast<uint32_t>((side & away) | (pivot & ~away));
  }
}

// bucketize(bounds, 255, x) for x = clamp_unit(v[i] / am) (partial) or clamp_unit(v[i] * recip),
// without branches: the count of bounds with !(bound >= x), which holds for a prefix of the
// ascending bounds (all of them for NaN).
void bucketize255_codes_select(const float* __restrict bounds, const float* __restrict v, float am, float recip,
                               bool partial, int64_t n, uint32_t* __restrict q) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = clamp_unit(partial ? v[i] / am : v[i] * recip);
    int32_t pos = 0;
#pragma GCC unroll 8
    for (int32_t step = 128; step > 0; step >>= 1) {
      const int32_t le = -static_cast<int32_t>(!(bounds[pos + step - 1] >= x));
      pos += step & le;
    }
    q[i] = static_cast<uint32_t>(pos);
  }
}

#if defined(__AVX512F__)
// The same two searches 16 values at a time, with gathers; the tails by the loops above.
void dynamic8_codes_avx512(const float* __restrict map, const float* __restrict v, float recip, int64_t n,
                           uint32_t* __restrict q) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(v + i), _mm512_set1_ps(recip));
    __m512i pivot = _mm512_set1_epi32(127), above = _mm512_set1_epi32(255), below = _mm512_setzero_si512();
    __m512 m = _mm512_set1_ps(map[127]);
    for (int32_t step = 64; step > 0; step >>= 1) {
      const __mmask16 gt = _mm512_cmp_ps_mask(x, m, _CMP_GT_OQ);
      below = _mm512_mask_mov_epi32(below, gt, pivot);
      above = _mm512_mask_mov_epi32(pivot, gt, above);
      pivot =
          _mm512_mask_add_epi32(_mm512_sub_epi32(pivot, _mm512_set1_epi32(step)), gt, pivot, _mm512_set1_epi32(step));
      m = gather_ps(pivot, map);
    }
    const __mmask16 gt = _mm512_cmp_ps_mask(x, m, _CMP_GT_OQ);
    const __m512i side = _mm512_mask_mov_epi32(below, gt, above);
    const __m512 mid = _mm512_mul_ps(_mm512_add_ps(gather_ps(side, map), m), _mm512_set1_ps(0.5f));
    const __mmask16 away = (gt & _mm512_cmp_ps_mask(x, mid, _CMP_GT_OQ)) |
                           (static_cast<__mmask16>(~gt) & _mm512_cmp_ps_mask(x, mid, _CMP_LT_OQ));
    _mm512_storeu_si512(q + i, _mm512_mask_mov_epi32(pivot, away, side));
  }
  dynamic8_codes_select(map, v + i, recip, n - i, q + i);
}

void bucketize255_codes_avx512(const float* __restrict bounds, const float* __restrict v, float am, float recip,
                               bool partial, int64_t n, uint32_t* __restrict q) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 vv = _mm512_loadu_ps(v + i);
    __m512 x = partial ? _mm512_div_ps(vv, _mm512_set1_ps(am)) : _mm512_mul_ps(vv, _mm512_set1_ps(recip));
    x = _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_set1_ps(-1.0f), x));  // clamp_unit, NaN passes
    __m512i pos = _mm512_setzero_si512();
    for (int32_t step = 128; step > 0; step >>= 1) {
      const __m512 b = gather_ps(_mm512_add_epi32(pos, _mm512_set1_epi32(step - 1)), bounds);
      pos = _mm512_mask_add_epi32(pos, _mm512_cmp_ps_mask(b, x, _CMP_NGE_UQ), pos, _mm512_set1_epi32(step));
    }
    _mm512_storeu_si512(q + i, pos);
  }
  bucketize255_codes_select(bounds, v + i, am, recip, partial, n - i, q + i);
}
#endif

}  // namespace

namespace detail {
void dynamic8_codes(const float* map, const float* v, float recip, int64_t n, uint32_t* q, bool simd) {
#if defined(__AVX512F__)
  if (simd) return dynamic8_codes_avx512(map, v, recip, n, q);
#endif
  dynamic8_codes_select(map, v, recip, n, q);
}

void dynamic8_bucketize_codes(const float* bounds, const float* v, float am, float recip, bool partial, int64_t n,
                              uint32_t* q, bool simd) {
#if defined(__AVX512F__)
  if (simd) return bucketize255_codes_avx512(bounds, v, am, recip, partial, n, q);
#endif
  bucketize255_codes_select(bounds, v, am, recip, partial, n, q);
}
}  // namespace detail

namespace {

struct DqState {
  std::vector<uint32_t> codes;
  std::vector<float> scales;
  float offset = 0.0f;
};

class CodebookFormat final : public TensorFormat {
 public:
  CodebookFormat(std::string spec, Kind kind, std::vector<float> table, int code_bits, int64_t block, bool dq,
                 Backend backend, bool hi_nibble, DynamicMapBuild dq_build, detail::CodebookImpl impl)
      : spec_(std::move(spec)), kind_(kind), table_(std::move(table)), code_bits_(code_bits), block_(block), dq_(dq),
        backend_(backend), hi_nibble_(hi_nibble), dq_build_(dq_build) {
    const int n = static_cast<int>(table_.size());
    // Exact midpoints of the ascending table (af4, user codebooks under backend=cuda).
    for (int i = 0; i + 1 < n; ++i) mids_.push_back((static_cast<double>(table_[i]) + table_[i + 1]) / 2.0);
    // torch backend: stable argsort of the table, fp32 midpoints of the sorted values.
    order_.resize(static_cast<size_t>(n));
    std::iota(order_.begin(), order_.end(), 0u);
    std::stable_sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) { return table_[a] < table_[b]; });
    for (int i = 0; i + 1 < n; ++i) bounds_.push_back((table_[order_[i]] + table_[order_[i + 1]]) / 2.0f);
    if (dq_) {
      dmap_ = create_dynamic_map(true, 7, 8, dq_build);
      for (int i = 0; i + 1 < 256; ++i) dbounds_.push_back((dmap_[i] + dmap_[i + 1]) / 2.0f);
    }
    simd_ = impl == detail::CodebookImpl::Native;
    if (impl != detail::CodebookImpl::Reference) build_rank_tables(simd_);
  }

  std::string spec() const override { return spec_; }
  std::string family() const override { return "codebook"; }
  FormatParams params() const override {
    static_assert(static_cast<int>(Kind::User) == static_cast<int>(CodebookKind::User));
    return CodebookParams{static_cast<CodebookKind>(kind_), table_, code_bits_, block_, dq_,
                          backend_ == Backend::Cuda ? CodebookBackend::Cuda : CodebookBackend::Torch, hi_nibble_,
                          dq_build_};
  }
  int code_bits() const override { return code_bits_; }

  double bits_per_element(const Shape& shape) const override {
    const int64_t n = shape_numel(shape);
    if (n == 0) return code_bits_;
    const double nb = static_cast<double>(n / block_);
    const double extra = dq_ ? 8.0 * nb + 32.0 * std::ceil(nb / kDqBlock) + 32.0 : 32.0 * nb;
    return code_bits_ + extra / static_cast<double>(n);
  }

  FormatLimits limits() const override {
    double min_pos = std::numeric_limits<double>::infinity(), max_abs = 0;
    for (const float v : table_) {
      const double a = std::fabs(static_cast<double>(v));
      max_abs = std::max(max_abs, a);
      if (a > 0) min_pos = std::min(min_pos, a);
    }
    return {max_abs * std::numeric_limits<float>::max(), min_pos * std::numeric_limits<float>::denorm_min()};
  }

  void check_shape(const Shape& shape) const override { check_groups_divide(spec_, shape, block_, "block"); }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<float> absmax(static_cast<size_t>(n / block_));
    PackedTensor p;
    p.spec = spec_;
    p.shape = shape;
    p.code_bits = code_bits_;
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(n, code_bits_)));
    const int nibbles = code_bits_ == 4 ? (hi_nibble_ ? 2 : 1) : 0;
    if (fast() && nibbles && block_kernels()) {  // the kernels write the packed bytes
      fast_run(x.data(), n, absmax.data(), false, nullptr, c.bytes.data(), nullptr, nibbles);
    } else if (fast()) {
      const std::unique_ptr<uint8_t[]> codes(new uint8_t[static_cast<size_t>(n)]);
      fast_run(x.data(), n, absmax.data(), false, nullptr, codes.get(), nullptr);
      pack_u8_codes(codes.get(), n, code_bits_, hi_nibble_, c.bytes.data());
    } else {
      std::vector<uint8_t> codes(static_cast<size_t>(n));
      quantize(x, codes, absmax);
      if (hi_nibble_) {
        for (int64_t j = 0; j < n; j += 2)
          c.bytes[j / 2] = static_cast<uint8_t>((codes[j] << 4) | (j + 1 < n ? codes[j + 1] : 0));
      } else {
        const std::vector<uint32_t> wide(codes.begin(), codes.end());
        pack_codes(wide, code_bits_, c.bytes);
      }
    }
    p.sections.push_back(std::move(c));
    if (!dq_) {
      p.sections.push_back(make_section_f32("scales", scale_shape(shape), absmax));
    } else {
      const DqState d = compress(absmax);
      p.sections.push_back(make_section_u("absmax_codes", 8, scale_shape(shape), d.codes));
      p.sections.push_back(make_section_f32("absmax_scales", {static_cast<int64_t>(d.scales.size())}, d.scales));
      p.sections.push_back(make_section_f32("absmax_offset", {1}, std::span<const float>(&d.offset, 1)));
    }
    return p;
  }

  std::vector<uint32_t> unpacked_codes(const PackedTensor& p) const override {
    const int64_t n = shape_numel(p.shape);
    const Section& cs = p.at("codes");
    if (!hi_nibble_) return element_codes(p);
    if (static_cast<int64_t>(cs.bytes.size()) != (n + 1) / 2)
      throw Error(fmt::format("{}: codes section holds {} bytes, expected {}", spec_, cs.bytes.size(), (n + 1) / 2));
    std::vector<uint32_t> codes(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) codes[i] = (cs.bytes[i / 2] >> ((i & 1) ? 0 : 4)) & 15u;
    return codes;
  }

  void decode(const PackedTensor& p, std::span<float> out) const override {
    check_packed(p, out);
    const int64_t n = shape_numel(p.shape);
    const int64_t nb = n / block_;
    const std::vector<uint32_t> codes = unpacked_codes(p);
    const uint32_t ncodes = static_cast<uint32_t>(table_.size());
    if (ncodes < (1u << code_bits_)) {
      for (int64_t i = 0; i < n; ++i)
        if (codes[i] >= ncodes)
          throw Error(fmt::format("{}: code {} at element {} is outside the {}-entry codebook", spec_, codes[i], i,
                                  ncodes));
    }
    std::vector<float> absmax;
    if (!dq_) {
      absmax = f32_section(p, "scales", nb);
    } else {
      DqState d;
      const Section& ac = p.at("absmax_codes");
      if (ac.dtype != "u8" || shape_numel(ac.shape) != nb)
        throw Error(fmt::format("{}: 'absmax_codes' section must be u8 with {} entries", spec_, nb));
      d.codes = section_u32(ac);
      d.scales = f32_section(p, "absmax_scales", (nb + kDqBlock - 1) / kDqBlock);
      d.offset = f32_section(p, "absmax_offset", 1)[0];
      absmax = decompress(d);
    }
    const std::vector<float>& t = table_;
    const int64_t g = block_;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t b = 0; b < nb; ++b) {
      const float a = absmax[b];
      for (int64_t i = b * g; i < (b + 1) * g; ++i) out[i] = t[codes[i]] * a;
    }
  }

  void fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const override {
    check_input(x, shape);
    if (out.size() != x.size()) throw Error(fmt::format("{}: output size mismatch", spec_));
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t nb = n / block_;
    if (fast()) {
      std::vector<float> absmax(static_cast<size_t>(nb));
      if (!dq_) return fast_run(x.data(), n, absmax.data(), false, nullptr, nullptr, out.data());
      // The codes use the exact absmax, the values the compressed one.
      fast_absmax(x.data(), n, absmax.data());
      const std::vector<float> dec = decompress(compress(absmax));
      return fast_run(x.data(), n, absmax.data(), true, dec.data(), nullptr, out.data());
    }
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    std::vector<float> absmax(static_cast<size_t>(nb));
    quantize(x, codes, absmax);
    if (dq_) absmax = decompress(compress(absmax));
    const std::vector<float>& t = table_;
    const int64_t g = block_;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t b = 0; b < nb; ++b) {
      const float a = absmax[b];
      for (int64_t i = b * g; i < (b + 1) * g; ++i) out[i] = t[codes[i]] * a;
    }
  }

 private:
  Shape scale_shape(const Shape& shape) const {
    Shape s = shape.empty() ? Shape{1} : shape;
    s.back() /= block_;
    return s;
  }

  std::vector<float> f32_section(const PackedTensor& p, std::string_view name, int64_t count) const {
    const Section& s = p.at(name);
    if (shape_numel(s.shape) != count)
      throw Error(fmt::format("{}: '{}' section has {} entries, expected {}", spec_, name, shape_numel(s.shape), count));
    return section_f32(s);
  }

  bool fast() const { return kern_.values != nullptr; }
  // Whole-block kernels apply (blocks of a multiple of 16).
  bool block_kernels() const { return kern_.values_blocks != nullptr && block_ % 16 == 0; }

  // The fast path's tables (see RankTables).
  void build_rank_tables(bool simd) {
    RankTables& tb = tables_;
    const int n = static_cast<int>(table_.size());
    if (backend_ == Backend::Cuda && kind_ == Kind::BnbFp4) {
      constexpr uint32_t mag_code[8] = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
      tb.k = 7;
      tb.mode = Rank::SignMag;
      for (int j = 0; j < 7; ++j) tb.thr[j] = bnb_fp4_threshold_cuda(j);
      for (int r = 0; r < 8; ++r) {
        tb.code[r] = mag_code[r];
        tb.val[r] = bnb_fp4_value(mag_code[r]);
      }
    } else {
      tb.k = 3;
      while (tb.k < n - 1) tb.k = 2 * tb.k + 1;  // n <= 256: k <= 255
      tb.mode = backend_ == Backend::Torch ? Rank::Torch : Rank::Strict;
      for (int j = 0; j < tb.k; ++j) {
        float t = std::numeric_limits<float>::infinity();
        if (j + 1 < n) {
          if (backend_ == Backend::Torch) t = bounds_[j];
          else if (kind_ == Kind::Nf4) t = nf4_threshold_cuda(j);
          else t = float_at_or_below(mids_[j]);
        }
        tb.thr[j] = t;
      }
      for (int r = 0; r <= tb.k; ++r) {
        const int rr = std::min(r, n - 1);
        tb.code[r] = backend_ == Backend::Torch ? order_[rr] : static_cast<uint32_t>(rr);
        tb.val[r] = table_[tb.code[r]];
      }
    }
    kern_ = rank_kernels(tb, simd);
  }

  float block_absmax(const float* xb) const {
    return backend_ == Backend::Torch ? absmax_torch_fast(xb, block_) : absmax_cuda_fast(xb, block_);
  }

  void fast_absmax(const float* x, int64_t n, float* absmax) const {
    const int64_t g = block_;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t b = 0; b < n / g; ++b) absmax[b] = block_absmax(x + b * g);
  }

  // Fast quantisation: codes and/or values (either may be null) of every block. absmax holds
  // the exact per-block absmax (computed here unless have_absmax); the values are
  // table[code] * scale[block] (scale null: absmax). nibbles (block kernels only): codes
  // written packed as for rank_codes_blocks_avx512.
  void fast_run(const float* x, int64_t n, float* absmax, bool have_absmax, const float* scale, uint8_t* codes,
                float* vals, int nibbles = 0) const {
    constexpr int64_t kChunk = 2048;
    const int64_t g = block_, nb = n / g;
    const int64_t bpc = std::max<int64_t>(1, kChunk / g);  // blocks per chunk
    const int64_t nchunks = (nb + bpc - 1) / bpc;
    const bool torch = backend_ == Backend::Torch;
    const float* sc = scale ? scale : absmax;
#pragma omp parallel if (n > kParallelMin)
    {
      std::vector<float> rblk(static_cast<size_t>(bpc)), rb(static_cast<size_t>(kChunk)),
          sb(static_cast<size_t>(kChunk));
#pragma omp for schedule(static)
      for (int64_t c = 0; c < nchunks; ++c) {
        const int64_t b0 = c * bpc, b1 = std::min(nb, b0 + bpc);
        if (c + 1 < nchunks) {
          const int64_t p0 = b1 * g, p1 = std::min(n, p0 + std::min(bpc * g, kChunk));
          for (int64_t i = p0; i < p1; i += 16) __builtin_prefetch(x + i, 0, 3);
        }
        if (!have_absmax)
          for (int64_t b = b0; b < b1; ++b) absmax[b] = block_absmax(x + b * g);
        for (int64_t b = b0; b < b1; ++b) {
          const float a = absmax[b];
          rblk[b - b0] = 1.0f / (torch && a < kTorchTiny ? kTorchTiny : a);
        }
        float* __restrict r = rb.data();
        float* __restrict s = sb.data();
        const RankKernels& kn = kern_;
        if (block_kernels()) {  // whole blocks, per-block factors
          const int64_t e0 = b0 * g;
          if (vals) kn.values_blocks(tables_, x + e0, rblk.data(), sc + b0, g, b1 - b0, vals + e0);
          if (codes)
            kn.codes_blocks(tables_, x + e0, rblk.data(), g, b1 - b0, nibbles, codes + (nibbles ? e0 / 2 : e0));
        } else if (g <= kChunk) {  // whole blocks: broadcast each block's factors to its elements
          for (int64_t b = b0; b < b1; ++b) {
            const float rv = rblk[b - b0], sv = sc[b];
            float* __restrict rr = r + (b - b0) * g;
            float* __restrict ss = s + (b - b0) * g;
            for (int64_t j = 0; j < g; ++j) {
              rr[j] = rv;
              ss[j] = sv;
            }
          }
          const int64_t e0 = b0 * g, len = (b1 - b0) * g;
          if (vals) kn.values(tables_, x + e0, r, s, len, vals + e0);
          if (codes) kn.codes(tables_, x + e0, r, len, codes + e0);
        } else {  // one block, in pieces of kChunk
          std::fill(r, r + kChunk, rblk[0]);
          std::fill(s, s + kChunk, sc[b0]);
          for (int64_t e0 = b0 * g; e0 < b1 * g; e0 += kChunk) {
            const int64_t len = std::min(b1 * g - e0, kChunk);
            if (vals) kn.values(tables_, x + e0, r, s, len, vals + e0);
            if (codes) kn.codes(tables_, x + e0, r, len, codes + e0);
          }
        }
      }
    }
  }

  // Codes (one per byte) and the exact per-block absmax.
  void quantize(std::span<const float> x, std::vector<uint8_t>& codes, std::vector<float>& absmax) const {
    const Kind k = kind_;
    if (backend_ == Backend::Torch) {
      run(x, codes, absmax, TorchBucketize{bounds_.data(), order_.data(), static_cast<int>(bounds_.size())});
    } else if (k == Kind::Nf4) {
      run(x, codes, absmax, Nf4Cuda{});
    } else if (k == Kind::BnbFp4) {
      run(x, codes, absmax, BnbFp4Cuda{});
    } else {
      run(x, codes, absmax, NearestExact{mids_.data(), static_cast<int>(mids_.size())});
    }
  }

  template <class Coder>
  void run(std::span<const float> x, std::vector<uint8_t>& codes, std::vector<float>& absmax, Coder coder) const {
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t g = block_;
    const int64_t nb = n / g;
    const bool torch = backend_ == Backend::Torch;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x.data() + b * g;
      uint8_t* cb = codes.data() + b * g;
      if (torch) {
        const float a = absmax_torch(xb, g);
        absmax[b] = a;
        const float recip = 1.0f / (a < kTorchTiny ? kTorchTiny : a);
        for (int64_t i = 0; i < g; ++i) cb[i] = static_cast<uint8_t>(coder(clamp_unit(xb[i] * recip)));
      } else {
        const float a = absmax_cuda(xb, g);
        absmax[b] = a;
        const float recip = 1.0f / a;
        for (int64_t i = 0; i < g; ++i) cb[i] = static_cast<uint8_t>(coder(xb[i] * recip));
      }
    }
  }

  // bnb quantize_blockwise(absmax - mean(absmax), blocksize=256) with the dynamic map.
  DqState compress(const std::vector<float>& absmax) const {
    DqState d;
    const int64_t n = static_cast<int64_t>(absmax.size());
    if (n > 0) {
      double sum = 0;
      for (const float a : absmax) sum += a;
      d.offset = static_cast<float>(sum / static_cast<double>(n));
    }
    std::vector<float> c(absmax.size());
    for (int64_t i = 0; i < n; ++i) c[i] = absmax[i] - d.offset;
    d.codes.resize(absmax.size());
    for (int64_t start = 0; start < n; start += kDqBlock) {
      const int64_t len = std::min(kDqBlock, n - start);
      const float* v = c.data() + start;
      uint32_t* q = d.codes.data() + start;
      if (backend_ == Backend::Cuda) {
        const float a = fast() ? absmax_cuda_fast(v, len) : absmax_cuda(v, len);
        const float recip = 1.0f / a;
        if (fast()) {
          detail::dynamic8_codes(dmap_.data(), v, recip, len, q, simd_);
        } else {
          for (int64_t i = 0; i < len; ++i) q[i] = bnb_dynamic8_code(dmap_.data(), v[i] * recip);
        }
        d.scales.push_back(a);
      } else {
        const float a = fast() ? absmax_torch_fast(v, len) : absmax_torch(v, len);
        const float am = a < kTorchTiny ? kTorchTiny : a;
        const bool partial = len < kDqBlock;
        const float recip = 1.0f / am;
        if (fast()) {
          detail::dynamic8_bucketize_codes(dbounds_.data(), v, am, recip, partial, len, q, simd_);
        } else {
          for (int64_t i = 0; i < len; ++i) {
            // bnb's default backend divides in the trailing partial block and multiplies elsewhere.
            const float xn = clamp_unit(partial ? v[i] / am : v[i] * recip);
            q[i] = bucketize(dbounds_.data(), 255, xn);
          }
        }
        d.scales.push_back(partial ? am : a);
      }
    }
    return d;
  }

  std::vector<float> decompress(const DqState& d) const {
    std::vector<float> a(d.codes.size());
    for (size_t i = 0; i < a.size(); ++i) {
      if (d.codes[i] > 255) throw Error(fmt::format("{}: absmax code {} out of range", spec_, d.codes[i]));
      a[i] = mul_rounded(dmap_[d.codes[i]], d.scales[i / kDqBlock]) + d.offset;
    }
    return a;
  }

  std::string spec_;
  Kind kind_;
  std::vector<float> table_;  // code -> normalised value
  int code_bits_;
  int64_t block_;
  bool dq_;
  Backend backend_;
  bool hi_nibble_;
  DynamicMapBuild dq_build_;
  std::vector<double> mids_;      // exact midpoints of the ascending table
  std::vector<uint32_t> order_;   // stable argsort of the table
  std::vector<float> bounds_;     // fp32 midpoints of the sorted table (torch)
  std::vector<float> dmap_;       // dynamic 8-bit map (dq)
  std::vector<float> dbounds_;    // its fp32 midpoints (dq, torch)
  RankTables tables_;             // fast path
  RankKernels kern_;
  bool simd_ = false;  // SIMD kernels where the build has them (CodebookImpl::Native)
};

std::unique_ptr<TensorFormat> make_codebook(Spec& spec, detail::CodebookImpl impl) {
  const std::string& name = spec.name();
  Kind kind;
  std::vector<float> table;
  if (name == "nf4") {
    kind = Kind::Nf4;
    for (uint32_t c = 0; c < 16; ++c) table.push_back(nf4_value(c));
  } else if (name == "bnb_fp4") {
    kind = Kind::BnbFp4;
    for (uint32_t c = 0; c < 16; ++c) table.push_back(bnb_fp4_value(c));
  } else if (name == "af4") {
    kind = Kind::Af4;
    for (uint32_t c = 0; c < 16; ++c) table.push_back(af4_value(c));
  } else if (name == "codebook") {
    kind = Kind::User;
    const auto values = spec.take("values");
    const auto file = spec.take("file");
    if (values && file) spec.fail("give values= or file=, not both");
    if (!values && !file) spec.fail("a user codebook needs values=v0/v1/... or file=PATH");
    if (values) table = parse_codebook_values(*values, '/', fmt::format("format spec '{}'", spec.text()));
    else table = read_codebook_file(*file);
    // Normalise by max |v| in fp32, as bnb's get_4bit_type does for its tables.
    const float m = std::max(std::fabs(table.front()), std::fabs(table.back()));
    for (float& v : table) v /= m;
    validate_codebook(table, fmt::format("format spec '{}' (after dividing by max |v| = {})", spec.text(), m));
  } else {
    spec.fail("not a codebook format");
  }
  const int code_bits = table.size() <= 2 ? 1 : std::bit_width(static_cast<uint32_t>(table.size() - 1));

  const int64_t block = spec.take_int("g", 1, int64_t{1} << 40).value_or(64);
  const bool dq = spec.take_flag("dq");
  Backend backend = Backend::Cuda;
  if (const auto b = spec.take("backend")) {
    if (*b == "cuda") backend = Backend::Cuda;
    else if (*b == "torch") backend = Backend::Torch;
    else spec.fail(fmt::format("backend must be cuda or torch (got '{}')", *b));
  }
  bool hi = false;
  if (const auto o = spec.take("order")) {
    if (*o == "hi") hi = true;
    else if (*o != "lo") spec.fail(fmt::format("order must be hi or lo (got '{}')", *o));
  }
  if (hi && code_bits != 4) spec.fail(fmt::format("order=hi applies to 4-bit codes only (this codebook has {}-bit codes)", code_bits));
  DynamicMapBuild build = DynamicMapBuild::Avx2;
  if (const auto m = spec.take("dqmap")) {
    if (!dq) spec.fail("dqmap= applies with dq only");
    if (*m == "avx2") build = DynamicMapBuild::Avx2;
    else if (*m == "avx512") build = DynamicMapBuild::Avx512;
    else if (*m == "scalar") build = DynamicMapBuild::Scalar;
    else spec.fail(fmt::format("dqmap must be avx2, avx512 or scalar (got '{}')", *m));
  }
  spec.finish(kind == Kind::User
                  ? "values=v0/v1/...|file=PATH, gN, dq, dqmap=avx2|avx512|scalar, backend=cuda|torch, order=hi|lo"
                  : "gN, dq, dqmap=avx2|avx512|scalar, backend=cuda|torch, order=hi|lo");
  return std::make_unique<CodebookFormat>(spec.text(), kind, std::move(table), code_bits, block, dq, backend, hi, build,
                                          impl);
}

}  // namespace

std::unique_ptr<TensorFormat> make_codebook_format(Spec& spec) {
  return make_codebook(spec, detail::CodebookImpl::Native);
}

namespace detail {
std::unique_ptr<TensorFormat> make_codebook_format(std::string_view text, CodebookImpl impl) {
  Spec spec(text);
  return make_codebook(spec, impl);
}
}  // namespace detail

}  // namespace lowbit
