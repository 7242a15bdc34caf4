// OCP MX v1.0 block formats (FORMATS.md §4): mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2,
// mxfp4, mxint8. Blocks of 32 consecutive elements along the last axis share one E8M0 scale
// X = 2^(e - 127); element i stores P_i = quantize(V_i / X) and decodes to X * P_i.
//
// Kernels (mx_quantize): round=rne and round=sr run a vectorised kernel (scales of a row's
// blocks with selects, elements with fast_float.hpp's FastRne, SR bits from philox.hpp's
// sr_bits_fill); other rounding modes run the scalar codec of mx.hpp. Both give the same bits
// (tests/formats/test_mx.cpp, MxFastPath and MxFastPathSr).
//
// Packed layout (docs/layouts.md):
//   "codes"   element codes via pack_codes: FP4 two per byte, element 2i in the low nibble;
//             FP6 one per byte (low 6 bits); FP8 and INT8 (two's complement) one per byte.
//   "scales"  u8 E8M0 bytes, shape = shape[:-1] + [cols / 32], row-major, not swizzled.
//
// Options (defaults match OCP §6.3 as torchao's default path implements it):
//   scale=floor|rceil|ceil|even   shared-exponent rule (mx.hpp; default floor)
//   round=rne|rna|rz|rd|ru|sr     element rounding (default rne; microxcaling's default
//                                 'nearest' is rna, FORMATS.md §4.3 / trap 6)
//   seed=N                        stochastic rounding key; element bits = sr_bits(seed, flat index)
//   inf=nan|sat                   Inf in a block: scale 0xFF (whole block NaN; torchao, microxcaling)
//                                 or 0xFE with saturated elements (TE on Blackwell)
//   flush_subnormals              microxcaling mx_flush_fp32_subnorms: a block whose amax is an
//                                 fp32 subnormal (or zero) encodes as a zero block (0x00, +0 codes)
//   int8_min=-127|-128            MXINT8 only: symmetric (microxcaling, default) or allow 0x80 = -2
//                                 (gfloat format_info_ocp_int8)
#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "formats/error.hpp"
#include "formats/factories.hpp"
#include "formats/fast_float.hpp"
#include "formats/mx.hpp"
#include "formats/mx_rules.hpp"
#include "formats/philox.hpp"
#include "formats/spec.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

namespace {

constexpr const char* kMxAccepted =
    "scale=floor|rceil|ceil|even, round=rne|rna|rz|rd|ru|sr, seed=N, inf=nan|sat, flush_subnormals";
constexpr const char* kMxInt8Accepted =
    "scale=floor|rceil|ceil|even, round=rne|rna|rz|rd|ru|sr, seed=N, inf=nan|sat, flush_subnormals, "
    "int8_min=-127|-128";
constexpr int64_t kParallelMin = 65536;

// Block amax and scale byte: mx_block_amax_bits and mx_block_scale_byte (formats/mx_rules.hpp,
// shared with the CUDA kernels).

// Element codes of one row (cols values, within the element's bits) to the "codes" section
// layout.
template <MxElement E, class Code>
void store_row_codes(const Code* __restrict c, int64_t cols, uint8_t* __restrict out) {
  if constexpr (E.bits() == 4) {
    for (int64_t j = 0; j < cols / 2; ++j) out[j] = static_cast<uint8_t>(c[2 * j] | (c[2 * j + 1] << 4));
  } else {
    for (int64_t j = 0; j < cols; ++j) out[j] = static_cast<uint8_t>(c[j]);
  }
}

// --- Reference path: the scalar codec of mx.hpp, block by block -----------------------------

// Encodes one block of 32 values starting at flat index flat0; returns the E8M0 byte.
template <MxElement E>
uint8_t encode_block(const float* x, uint64_t flat0, const MxOptions& o, uint32_t* codes) {
  bool zero_block;
  const uint8_t e = mx_block_scale_byte(E, o, mx_block_amax_bits(x), &zero_block);
  if (zero_block) {
    for (int i = 0; i < kMxBlock; ++i) codes[i] = 0;
    return e;
  }
  if (o.round == Round::Stochastic) {
    for (int i = 0; i < kMxBlock; ++i)
      codes[i] = mx_encode_element(E, x[i], e, Round::Stochastic, sr_bits(o.seed, flat0 + i), o.int8_min128);
  } else {
    for (int i = 0; i < kMxBlock; ++i) codes[i] = mx_encode_element(E, x[i], e, o.round, 0u, o.int8_min128);
  }
  return e;
}

template <MxElement E>
void reference_rows(const MxOptions& o, const float* x, int64_t rows, int64_t cols, uint8_t* scales, uint8_t* codes,
                    float* values) {
  const int64_t nb = cols / kMxBlock;
#pragma omp parallel if (rows * cols > kParallelMin)
  {
    std::vector<uint32_t> crow(codes ? static_cast<size_t>(cols) : 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t i0 = r * cols + b * kMxBlock;
        uint32_t c[kMxBlock];
        const uint8_t e = encode_block<E>(x + i0, static_cast<uint64_t>(i0), o, c);
        if (scales) scales[r * nb + b] = e;
        for (int i = 0; i < kMxBlock; ++i) {
          if (codes) crow[b * kMxBlock + i] = c[i] & ((1u << E.bits()) - 1u);
          if (values) values[i0 + i] = mx_decode_element(E, c[i], e);
        }
      }
      if (codes) store_row_codes<E>(crow.data(), cols, codes + (E.bits() == 4 ? r * cols / 2 : r * cols));
    }
  }
}

// --- Fast path: round to nearest even --------------------------------------------------------
//
// The element is P = RNE(V / X), X = 2^k, k = e - 127 in [-127, 127]. With t = fl(V * 2^-k)
// (2^-k exact for that k):
//   * if |V| * 2^-k >= 2^-126 the product is exact (a power-of-two scaling of an fp32 value in
//     the normal range; it never overflows: every scale rule keeps |V| / X below 2^(emax + 2),
//     Inf under inf=sat stays Inf), so t = V / X and FastRne(t) = encode_float(..., scale_exp = k);
//   * otherwise |V / X| < 2^-126 and |t| <= 2^-126 (rounding is monotone): both lie far below
//     half the smallest element subnormal (2^-17 for E5M2, 2^-7 for MXINT8), so both round to
//     +-0 with the sign of V, which the product keeps.
// MXINT8: k = RNE(t * 64) clamped to [-127 or -128, 127] = round_to_int(V, lo, 127, RNE,
// scale_exp = k - 6): t * 64 is exact where t is, the clamp commutes with rounding for integer
// bounds, and (t + 1.5 * 2^23) - 1.5 * 2^23 rounds |t| <= 2^22 to an integer, ties to even
// (giving +0 for every zero result, as the integer code 0 decodes).
// Values: P * X with the same operands as mx_decode_element (value(t) = decode(code(t))).

// The E8M0 byte of a block from its amax bit pattern a (|x| bits, NaN above Inf): the same
// result as mx_scale_e8m0 (checked over every pattern class in tests/formats/test_mx.cpp), with
// selects only, so that a loop over the blocks of a row vectorises. Biased forms:
//   Floor  clamp(ex - emax, 0, 254) with ex = a >> 23: a subnormal amax has floor(log2) <= -127,
//          so the unbiased exponent <= -127 - emax clamps to 0x00, as ex = 0 gives
//   Ceil   floor(log2 a) + [a not a power of two] - emax + 127, clamped; for a subnormal a
//          (an integer below 2^23), floor(log2 a) = -149 + the exponent of float(a) (exact)
//   Even   ((a + 2^(22 - mbits)) >> 23) - emax, clamped
//   Rceil  TE's ceiling of fl(amax * fl(1 / max)) to a power of two, saturating at 0xFE
template <MxElement E, MxScaleRule R>
LOWBIT_HD_HOT uint32_t scale_byte(uint32_t a, float rcp, uint32_t inf_byte) {
  constexpr int32_t emax = E.emax();
  const int32_t ex = static_cast<int32_t>(a >> 23);
  uint32_t s;
  if constexpr (R == MxScaleRule::Rceil) {
    const uint32_t db = f32_bits(f32_from_bits(a) * rcp);
    const uint32_t ef = db >> 23, mf = db & 0x7fffffu;
    const uint32_t up = ef + (mf != 0 ? 1u : 0u);
    s = ef == 0 ? (mf > 0x400000u ? 1u : 0u) : (up > 0xFEu ? 0xFEu : up);
    s = db >= 0x7f800000u ? 0xFEu : s;
  } else {
    int32_t e;
    if constexpr (R == MxScaleRule::Floor) {
      e = ex - emax;
    } else if constexpr (R == MxScaleRule::Ceil) {
      const int32_t sub_floor = static_cast<int32_t>(f32_bits(static_cast<float>(static_cast<int32_t>(a))) >> 23) - 276;
      const int32_t fl = ex != 0 ? ex - 127 : sub_floor;
      const bool pow2 = ex != 0 ? (a & 0x7fffffu) == 0 : (a & (a - 1u)) == 0;
      e = fl + (pow2 ? 0 : 1) - emax + 127;
    } else {
      e = static_cast<int32_t>((a + (1u << (22 - E.mbits()))) >> 23) - emax;
    }
    e = e < 0 ? 0 : (e > 254 ? 254 : e);
    s = static_cast<uint32_t>(e);
  }
  s = a == 0 ? 0u : s;
  s = a == 0x7f800000u ? inf_byte : s;
  s = a > 0x7f800000u ? uint32_t{kE8m0Nan} : s;
  return s;
}

// Scale bytes of the blocks of a row from their amax bit patterns, in place. A zero block of
// flush_subnormals (amax an fp32 subnormal or zero) gets scale 0x00 and the flag kZeroBlock.
constexpr uint32_t kZeroBlock = 0x100;

template <MxElement E, MxScaleRule R>
void scale_bytes(uint32_t* __restrict ab, int64_t nb, const MxOptions& o) {
  const float rcp = 1.0f / mx_element_max(E);
  const uint32_t inf_byte = o.inf_sat ? 0xFEu : uint32_t{kE8m0Nan};
  const bool flush = o.flush_subnormals;
  for (int64_t b = 0; b < nb; ++b) {
    const uint32_t a = ab[b];
    const uint32_t s = scale_byte<E, R>(a, rcp, inf_byte);
    ab[b] = flush && a < 0x00800000u ? kZeroBlock : s;
  }
}

// --- Fast path: stochastic rounding ------------------------------------------------------------
//
// The same t = fl(V * 2^-k) as above, rounded by FastRne::value_sr / code_sr with the element's
// bits rb[i] = sr_bits(seed, flat index) (sr_bits_fill, one row at a time). value_sr / code_sr
// equal encode_float(..., Round::Stochastic, Saturate, Cuda, rbits) of their argument, so the
// only question is whether encoding t equals encoding V with scale_exp = k:
//   * |V| * 2^-k >= 2^-126: t = V / X exactly, as for RNE;
//   * otherwise |V / X| < 2^-126 and |t| <= 2^-126. Stochastic rounding rounds such a value up
//     to the smallest element subnormal q0 iff rbits < floor(frac * 2^32) with frac = |.| / q0
//     (round_shifted's frac32, which is that floor for any shift). Every MX element has
//     q0 >= 2^-16 (E5M2; E4M3 2^-9, E3M2 2^-4, E2M3 2^-3, E2M1 2^-1, MXINT8 2^-6), so
//     frac <= 2^-110 for both the exact quotient and t, frac * 2^32 < 1, frac32 = 0 for both
//     (sr_abs computes |t| * 2^(mbits - emin) exactly, and its frac32 is 0 as well): never up.
//     Both give +-0 with the sign of V, which the product keeps. So no lane needs the
//     reference codec; tests/formats/test_mx.cpp checks tiny elements in huge-scale blocks.
// MXINT8: k = SR(t * 64) clamped to [-127 or -128, 127] = round_to_int(V, lo, 127, SR, rbits,
// scale_exp = k - 6), sign-magnitude: clamping t first is the same (integer bounds: a |t|
// beyond the bound rounds to at least the bound), then |t| rounds up iff
// rbits < floor(frac(|t|) * 2^32) — |t| < 2^8, so |t| - floor(|t|) and its product with 2^32
// are exact (the form of int_segment's SR branch in element_format.cpp). Zero results give
// code 0 and value +0, as the integer k = 0 decodes.

// One row: the amax and E8M0 byte of every block (vectorised over the blocks), then the
// elements block by block. ab: scratch of nb words. SR: rb holds the row's random bits.
template <MxElement E, bool SR>
void fast_row(const FastRne& kk, const MxOptions& o, const float* __restrict xr, int64_t nb, uint32_t* __restrict ab,
              uint8_t* __restrict sr, uint32_t* __restrict cr, float* __restrict vr, const uint32_t* __restrict rb) {
  for (int64_t b = 0; b < nb; ++b) ab[b] = mx_block_amax_bits(xr + b * kMxBlock);
  switch (o.scale) {
    case MxScaleRule::Floor: scale_bytes<E, MxScaleRule::Floor>(ab, nb, o); break;
    case MxScaleRule::Rceil: scale_bytes<E, MxScaleRule::Rceil>(ab, nb, o); break;
    case MxScaleRule::Ceil: scale_bytes<E, MxScaleRule::Ceil>(ab, nb, o); break;
    case MxScaleRule::Even: scale_bytes<E, MxScaleRule::Even>(ab, nb, o); break;
  }
  for (int64_t b = 0; b < nb; ++b) sr[b] = static_cast<uint8_t>(ab[b]);

  const FastRne k = kk;
  const float magic = 12582912.0f;  // 1.5 * 2^23
  const float lo = o.int8_min128 ? -128.0f : -127.0f, hi = 127.0f;
  const float nan = f32_from_bits(0x7fc00000u);
  for (int64_t b = 0; b < nb; ++b) {
    const float* __restrict xb = xr + b * kMxBlock;
    const uint32_t e = ab[b] & 0xFFu;
    float* __restrict vb = vr ? vr + b * kMxBlock : nullptr;
    uint32_t* __restrict cb = cr ? cr + b * kMxBlock : nullptr;
    const bool zero_block = (ab[b] & kZeroBlock) != 0;
    if (zero_block || e == kE8m0Nan) {
      // Codes 0; values 0 * 2^-127 = +0 (flushed) or NaN (NaN scale).
      const float v = zero_block ? 0.0f : nan;
      if (vb)
        for (int i = 0; i < kMxBlock; ++i) vb[i] = v;
      if (cb)
        for (int i = 0; i < kMxBlock; ++i) cb[i] = 0;
      continue;
    }
    const int kexp = static_cast<int>(e) - 127;
    const float m = exp2i(-kexp);
    if constexpr (SR) {
      const uint32_t* __restrict rbb = rb + b * kMxBlock;
      if constexpr (E.int8) {
        const float f = exp2i(static_cast<int>(e) - 133);  // 2^(k - 6)
        if (vb) {
          for (int i = 0; i < kMxBlock; ++i) {
            float t = (xb[i] * m) * 64.0f;
            t = t < lo ? lo : (t > hi ? hi : t);
            const uint32_t tb = f32_bits(t);
            const float a = f32_from_bits(tb & 0x7fffffffu);
            const int32_t u = static_cast<int32_t>(a);
            const uint32_t frac32 = static_cast<uint32_t>((a - static_cast<float>(u)) * 4294967296.0f);
            const float qa = static_cast<float>(u + (rbb[i] < frac32 ? 1 : 0));
            const float q = f32_from_bits(f32_bits(qa) | (tb & 0x80000000u));
            vb[i] = (q + 0.0f) * f;  // +0 for k = 0
          }
        }
        if (cb) {
          for (int i = 0; i < kMxBlock; ++i) {
            float t = (xb[i] * m) * 64.0f;
            t = t < lo ? lo : (t > hi ? hi : t);
            const uint32_t tb = f32_bits(t);
            const float a = f32_from_bits(tb & 0x7fffffffu);
            const int32_t u = static_cast<int32_t>(a);
            const uint32_t frac32 = static_cast<uint32_t>((a - static_cast<float>(u)) * 4294967296.0f);
            const int32_t qa = u + (rbb[i] < frac32 ? 1 : 0);
            const int32_t neg = static_cast<int32_t>(tb) >> 31;  // all ones for negative t
            cb[i] = static_cast<uint32_t>((qa ^ neg) - neg) & 0xFFu;
          }
        }
      } else {
        const float X = exp2i(kexp);
        if (vb)
          for (int i = 0; i < kMxBlock; ++i) vb[i] = k.value_sr(xb[i] * m, rbb[i]) * X;
        if (cb)
          for (int i = 0; i < kMxBlock; ++i) cb[i] = k.code_sr(xb[i] * m, rbb[i]);
      }
    } else if constexpr (E.int8) {
      const float f = exp2i(static_cast<int>(e) - 133);  // 2^(k - 6)
      if (vb) {
        for (int i = 0; i < kMxBlock; ++i) {
          float t = (xb[i] * m) * 64.0f;
          t = t < lo ? lo : (t > hi ? hi : t);
          vb[i] = ((t + magic) - magic) * f;
        }
      }
      if (cb) {
        for (int i = 0; i < kMxBlock; ++i) {
          float t = (xb[i] * m) * 64.0f;
          t = t < lo ? lo : (t > hi ? hi : t);
          cb[i] = static_cast<uint32_t>(static_cast<int32_t>((t + magic) - magic)) & 0xFFu;
        }
      }
    } else {
      const float X = exp2i(kexp);
      if (vb)
        for (int i = 0; i < kMxBlock; ++i) vb[i] = k.value(xb[i] * m) * X;
      if (cb)
        for (int i = 0; i < kMxBlock; ++i) cb[i] = k.code(xb[i] * m);
    }
  }
}

template <MxElement E, bool SR>
void fast_rows(const MxOptions& o, const float* x, int64_t rows, int64_t cols, uint8_t* scales, uint8_t* codes,
               float* values) {
  const int64_t nb = cols / kMxBlock;
  const FastRne k = E.int8 ? FastRne{} : FastRne::make(E.fp, Overflow::Saturate);
#pragma omp parallel if (rows * cols > kParallelMin)
  {
    // Per-thread scratch of one row: block words, scales when the caller wants none, codes.
    std::vector<uint32_t> ab(static_cast<size_t>(nb));
    std::vector<uint8_t> srow(scales ? 0 : static_cast<size_t>(nb));
    std::vector<uint32_t> crow(codes ? static_cast<size_t>(cols) : 0);
    std::vector<uint32_t> rbuf(SR ? static_cast<size_t>(cols) : 0);  // the row's random bits
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* sr = scales ? scales + r * nb : srow.data();
      if constexpr (SR) sr_bits_fill(o.seed, static_cast<uint64_t>(r * cols), cols, rbuf.data());
      fast_row<E, SR>(k, o, x + r * cols, nb, ab.data(), sr, codes ? crow.data() : nullptr,
                      values ? values + r * cols : nullptr, rbuf.data());
      if (codes) store_row_codes<E>(crow.data(), cols, codes + (E.bits() == 4 ? r * cols / 2 : r * cols));
    }
  }
}

template <MxElement E>
void quantize_as(const MxOptions& o, const float* x, int64_t rows, int64_t cols, uint8_t* scales, uint8_t* codes,
                 float* values, MxPath path) {
  static_assert(E.int8 || fast_rne_supported(E.fp));
  if (rows * cols == 0) return;
  if (path == MxPath::Auto && o.round == Round::NearestEven)
    return fast_rows<E, false>(o, x, rows, cols, scales, codes, values);
  if (path == MxPath::Auto && o.round == Round::Stochastic)
    return fast_rows<E, true>(o, x, rows, cols, scales, codes, values);
  reference_rows<E>(o, x, rows, cols, scales, codes, values);
}

template <MxElement E>
class MxFormat final : public TensorFormat {
 public:
  MxFormat(std::string name, MxOptions o) : name_(std::move(name)), o_(o) {}

  FormatParams params() const override { return MxParams{E, o_}; }
  std::string spec() const override {
    std::string s = name_;
    if (o_.scale != MxScaleRule::Floor) s += fmt::format(":scale={}", mx_scale_rule_name(o_.scale));
    if (o_.round != Round::NearestEven) s += fmt::format(":round={}", round_name(o_.round));
    if (o_.round == Round::Stochastic) s += fmt::format(":seed={}", o_.seed);
    if (o_.inf_sat) s += ":inf=sat";
    if (o_.flush_subnormals) s += ":flush_subnormals";
    if (o_.int8_min128) s += ":int8_min=-128";
    return s;
  }
  std::string family() const override { return "mx"; }
  int code_bits() const override { return E.bits(); }
  double bits_per_element(const Shape&) const override { return E.bits() + 8.0 / kMxBlock; }
  FormatLimits limits() const override {
    return {std::ldexp(static_cast<double>(mx_element_max(E)), 127),
            std::ldexp(static_cast<double>(mx_element_min_positive(E)), -127)};
  }

  void check_shape(const Shape& shape) const override {
    check_groups_divide(spec(), shape, kMxBlock, "MX block");
  }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const RowView rv = row_view(shape);
    PackedTensor p;
    p.spec = spec();
    p.shape = shape;
    p.code_bits = code_bits();
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(static_cast<int64_t>(x.size()), p.code_bits)));
    Section s{"scales", "u8", scale_shape(shape), {}};
    s.bytes.resize(static_cast<size_t>(rv.rows * (rv.cols / kMxBlock)));
    quantize_as<E>(o_, x.data(), rv.rows, rv.cols, s.bytes.data(), c.bytes.data(), nullptr, MxPath::Auto);
    p.sections.push_back(std::move(c));
    p.sections.push_back(std::move(s));
    return p;
  }

  void decode(const PackedTensor& p, std::span<float> out) const override {
    check_packed(p, out);
    const std::vector<uint32_t> scales = checked_section_u32(p, "scales", "u8", scale_shape(p.shape));
    const std::vector<uint32_t> codes = element_codes(p);
    const RowView rv = row_view(p.shape);
    const int64_t nb = rv.cols / kMxBlock;
#pragma omp parallel for schedule(static) if (rv.rows * rv.cols > kParallelMin)
    for (int64_t r = 0; r < rv.rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t e = static_cast<uint8_t>(scales[r * nb + b]);
        const int64_t i0 = r * rv.cols + b * kMxBlock;
        for (int i = 0; i < kMxBlock; ++i) out[i0 + i] = mx_decode_element(E, codes[i0 + i], e);
      }
    }
  }

  // decode(encode(x)) without packing: the same kernel, writing values.
  void fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const override {
    check_input(x, shape);
    if (out.size() != x.size())
      throw Error(fmt::format("{}: output holds {} values, input {}", spec(), out.size(), x.size()));
    const RowView rv = row_view(shape);
    quantize_as<E>(o_, x.data(), rv.rows, rv.cols, nullptr, nullptr, out.data(), MxPath::Auto);
  }

 private:
  static Shape scale_shape(const Shape& shape) {
    Shape s = shape.empty() ? Shape{1} : shape;
    s.back() /= kMxBlock;
    return s;
  }

  std::string name_;
  MxOptions o_;
};

}  // namespace

void mx_quantize(const MxElement& el, const MxOptions& o, const float* x, int64_t rows, int64_t cols,
                 uint8_t* scales, uint8_t* codes, float* values, MxPath path) {
  if (cols % kMxBlock != 0) throw Error(fmt::format("mx_quantize: {} columns, not a multiple of {}", cols, kMxBlock));
  if (el == mx_elem::e4m3) return quantize_as<mx_elem::e4m3>(o, x, rows, cols, scales, codes, values, path);
  if (el == mx_elem::e5m2) return quantize_as<mx_elem::e5m2>(o, x, rows, cols, scales, codes, values, path);
  if (el == mx_elem::e2m3) return quantize_as<mx_elem::e2m3>(o, x, rows, cols, scales, codes, values, path);
  if (el == mx_elem::e3m2) return quantize_as<mx_elem::e3m2>(o, x, rows, cols, scales, codes, values, path);
  if (el == mx_elem::e2m1) return quantize_as<mx_elem::e2m1>(o, x, rows, cols, scales, codes, values, path);
  if (el == mx_elem::int8) return quantize_as<mx_elem::int8>(o, x, rows, cols, scales, codes, values, path);
  throw Error("mx_quantize: not an MX element type");
}

std::unique_ptr<TensorFormat> make_mx_format(Spec& spec) {
  const std::string name = spec.name();
  const bool is_int8 = name == "mxint8";
  MxOptions o;
  const ElementPolicy pol = take_policy(spec, ElementPolicy{}, false, false);
  o.round = pol.round;
  o.seed = pol.seed;
  if (const auto s = spec.take("scale")) {
    if (*s == "floor") o.scale = MxScaleRule::Floor;
    else if (*s == "rceil") o.scale = MxScaleRule::Rceil;
    else if (*s == "ceil") o.scale = MxScaleRule::Ceil;
    else if (*s == "even") o.scale = MxScaleRule::Even;
    else spec.fail(fmt::format("unknown MX scale rule '{}' (floor, rceil, ceil, even)", *s));
  }
  if (const auto v = spec.take("inf")) {
    if (*v == "sat") o.inf_sat = true;
    else if (*v != "nan") spec.fail(fmt::format("inf must be nan or sat, got '{}'", *v));
  }
  o.flush_subnormals = spec.take_flag("flush_subnormals");
  if (is_int8) {
    if (const auto v = spec.take("int8_min")) {
      if (*v == "-128") o.int8_min128 = true;
      else if (*v != "-127") spec.fail(fmt::format("int8_min must be -127 or -128, got '{}'", *v));
    }
  }
  spec.finish(is_int8 ? kMxInt8Accepted : kMxAccepted);
  if (name == "mxfp8_e4m3") return std::make_unique<MxFormat<mx_elem::e4m3>>(name, o);
  if (name == "mxfp8_e5m2") return std::make_unique<MxFormat<mx_elem::e5m2>>(name, o);
  if (name == "mxfp6_e2m3") return std::make_unique<MxFormat<mx_elem::e2m3>>(name, o);
  if (name == "mxfp6_e3m2") return std::make_unique<MxFormat<mx_elem::e3m2>>(name, o);
  if (name == "mxfp4") return std::make_unique<MxFormat<mx_elem::e2m1>>(name, o);
  if (is_int8) return std::make_unique<MxFormat<mx_elem::int8>>(name, o);
  spec.fail("not an MX format (mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2, mxfp4, mxint8)");
}

}  // namespace lowbit
