// Element formats, bare or scaled: "int8", "fp8_e4m3" (plain casts, as ml_dtypes' astype is),
// and "int4:g64", "fp4_e2m1:g16:scale=e4m3", "int8:row", "uint4:g128" (asymmetric), ...
//
// Scaled formats compute one scale per group (gN: N consecutive elements along the last axis;
// row: the whole last axis = per token / per output channel; col: one per last-axis index =
// per input channel; tensor: one), in fp32:
//   float element: s = absmax / element_max
//   int, sym=restricted (default): s = absmax / (2^(b-1) - 1), q in [-(2^(b-1)-1), 2^(b-1)-1]
//   int, sym=full: s = absmax / 2^(b-1), q in [-2^(b-1), 2^(b-1)-1]
//   int, asym (or uintB): xmin = min(min x, 0), xmax = max(max x, 0) (0 stays exact, as DMQ),
//     s = (xmax - xmin) / (2^b - 1), zp = clamp(rne(-xmin / s), 0, 2^b - 1),
//     q = clamp(round(x / s) + zp, 0, 2^b - 1), x^ = s * (q - zp)
// The scale is then cast to the scale format (fp32 exact; fp16/bf16/e4m3 RNE saturating; e8m0
// rounded up so the group max never clips; scale_round= overrides) and elements use the
// decoded scale: t = x / s (op=div, default, as ModelOpt) or x * (1/s) (op=mul, as TE/bnb).
// A zero scale encodes the group as zeros. A NaN or Inf anywhere in a group makes its scale NaN
// and the whole group decodes to NaN (as OCP MX treats a NaN scale).
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "formats/element_rules.hpp"
#include "formats/error.hpp"
#include "formats/factories.hpp"
#include "formats/fast_float.hpp"
#include "formats/float_format.hpp"
#include "formats/int_format.hpp"
#include "formats/philox.hpp"
#include "formats/spec.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

namespace {

template <FloatFormat F>
struct StaticFloat {
  static constexpr FloatFormat f = F;
};
struct DynFloat {
  FloatFormat f;
};

// Calls fn with a codec whose format is a compile-time constant for the named formats, so the
// hot loop is specialised (DESIGN.md principle 6), and a runtime one for user ExMy formats.
template <class Fn>
void with_float_codec(const FloatFormat& f, Fn&& fn) {
  if (f == fmt_desc::e2m1) return fn(StaticFloat<fmt_desc::e2m1>{});
  if (f == fmt_desc::e2m3) return fn(StaticFloat<fmt_desc::e2m3>{});
  if (f == fmt_desc::e3m2) return fn(StaticFloat<fmt_desc::e3m2>{});
  if (f == fmt_desc::e4m3) return fn(StaticFloat<fmt_desc::e4m3>{});
  if (f == fmt_desc::e5m2) return fn(StaticFloat<fmt_desc::e5m2>{});
  if (f == fmt_desc::fp16) return fn(StaticFloat<fmt_desc::fp16>{});
  if (f == fmt_desc::bf16) return fn(StaticFloat<fmt_desc::bf16>{});
  return fn(DynFloat{f});
}

constexpr int kParallelMin = 1 << 16;

struct GroupScale {
  uint32_t code = 0;  // scale code in the scale format
  float dec = 0;      // decoded scale (NaN: group is NaN)
  int32_t zp = 0;     // zero point (asymmetric only)
};

class ElementFormat final : public TensorFormat {
 public:
  ElementFormat(std::string spec, bool is_int, FloatFormat ff, IntFormat fi, ElementPolicy pol, Granularity gran,
                int64_t group, FloatFormat scale_fmt, Round scale_round, bool op_mul, bool asym, bool full_range)
      : spec_(std::move(spec)), is_int_(is_int), ff_(ff), fi_(fi), pol_(pol), gran_(gran), group_(group),
        scale_fmt_(scale_fmt), scale_round_(scale_round), op_mul_(op_mul), asym_(asym), full_range_(full_range) {
    // s = absmax / denom (symmetric) or (max - min) / denom (asymmetric).
    if (asym_) denom_ = static_cast<float>(fi_.mask());
    else if (!is_int_) denom_ = float_max(ff_);
    else denom_ = full_range_ ? static_cast<float>(int32_t{1} << (fi_.bits - 1)) : static_cast<float>(fi_.hi());
    scale_fp32_ = scale_fmt_ == fmt_desc::fp32;
    scale_fast_ = scale_round_ == Round::NearestEven && fast_rne_supported(scale_fmt_);
    if (scale_fast_) scale_k_ = FastRne::make(scale_fmt_, Overflow::Saturate);
    params_ = ElementParams{is_int_, ff_, fi_, pol_, gran_, group_, scale_fmt_, scale_round_, op_mul_, asym_, full_range_};
  }

  std::string spec() const override { return spec_; }
  std::string family() const override { return is_int_ ? "int" : "float"; }
  FormatParams params() const override { return params_; }
  int code_bits() const override { return is_int_ ? fi_.bits : ff_.total_bits(); }

  double bits_per_element(const Shape& shape) const override {
    const int64_t n = shape_numel(shape);
    if (gran_ == Granularity::None || n == 0) return code_bits();
    const double per_scale = scale_fmt_.total_bits() + (asym_ ? fi_.bits : 0);
    return code_bits() + per_scale * static_cast<double>(num_scales(shape)) / static_cast<double>(n);
  }

  FormatLimits limits() const override {
    const double emax = is_int_ ? (asym_ ? fi_.mask() : fi_.hi()) : float_max(ff_);
    const double emin = is_int_ ? 1.0 : float_min_positive(ff_);
    if (gran_ == Granularity::None) return {emax, emin};
    return {emax * float_max(scale_fmt_), emin * float_min_positive(scale_fmt_)};
  }

  void check_shape(const Shape& shape) const override {
    if (gran_ == Granularity::Group) check_groups_divide(spec_, shape, group_, "group");
  }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<GroupScale> scales = compute_scales(x, shape);
    std::vector<uint32_t> codes(static_cast<size_t>(n));
    run(x, shape, scales, codes.data(), nullptr);
    PackedTensor p;
    p.spec = spec_;
    p.shape = shape;
    p.code_bits = code_bits();
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(n, p.code_bits)));
    pack_codes(codes, p.code_bits, c.bytes);
    p.sections.push_back(std::move(c));
    if (gran_ != Granularity::None) {
      std::vector<uint32_t> sc(scales.size()), zp(scales.size());
      for (size_t i = 0; i < scales.size(); ++i) {
        sc[i] = scales[i].code;
        zp[i] = static_cast<uint32_t>(scales[i].zp);
      }
      p.sections.push_back(make_section_u("scales", scale_fmt_.total_bits(), scale_shape(shape), sc));
      if (asym_) p.sections.push_back(make_section_u("zero_points", fi_.bits, scale_shape(shape), zp));
    }
    return p;
  }

  void decode(const PackedTensor& p, std::span<float> out) const override {
    check_packed(p, out);
    const std::vector<uint32_t> codes = element_codes(p);
    const int64_t n = static_cast<int64_t>(codes.size());
    if (gran_ == Granularity::None) {
      for (int64_t i = 0; i < n; ++i) out[i] = decode_element(codes[i]);
      return;
    }
    const int64_t ns = num_scales(p.shape);
    const std::vector<uint32_t> sc = checked_section(p, "scales", ns);
    std::vector<uint32_t> zp(static_cast<size_t>(ns), 0);
    if (asym_) zp = checked_section(p, "zero_points", ns);
    const int64_t cols = row_view(p.shape).cols;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t g = scale_index(i, cols, n);
      const float s = decode_float(scale_fmt_, sc[g]);
      out[i] = dequant(codes[i], s, static_cast<int32_t>(zp[g]));
    }
  }

  void fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const override {
    check_input(x, shape);
    if (out.size() != x.size()) throw Error(fmt::format("{}: output size mismatch", spec_));
    std::vector<GroupScale> scales = compute_scales(x, shape);
    run(x, shape, scales, nullptr, out.data());
  }

 private:
  int64_t num_scales(const Shape& shape) const {
    const RowView rv = row_view(shape);
    switch (gran_) {
      case Granularity::None: return 0;
      case Granularity::Group: return rv.rows * (rv.cols / group_);
      case Granularity::Row: return rv.rows;
      case Granularity::Col: return rv.cols;
      case Granularity::Tensor: return 1;
    }
    return 0;
  }

  Shape scale_shape(const Shape& shape) const {
    Shape s = shape.empty() ? Shape{1} : shape;
    switch (gran_) {
      case Granularity::Group: s.back() /= group_; return s;
      case Granularity::Row: s.back() = 1; return s;
      case Granularity::Col: return {s.back()};
      default: return {1};
    }
  }

  int64_t scale_index(int64_t i, int64_t cols, int64_t n) const {
    switch (gran_) {
      case Granularity::Group: return i / group_;
      case Granularity::Row: return i / cols;
      case Granularity::Col: return i % cols;
      default: return 0;
    }
  }

  std::vector<uint32_t> checked_section(const PackedTensor& p, std::string_view name, int64_t count) const {
    const Section& s = p.at(name);
    if (shape_numel(s.shape) != count)
      throw Error(fmt::format("{}: '{}' section has {} entries, expected {}", spec_, name, shape_numel(s.shape), count));
    return section_u32(s);
  }

  float decode_element(uint32_t code) const {
    return is_int_ ? static_cast<float>(code_to_int(fi_, code)) : decode_float(ff_, code);
  }

  // x^ = element * s (float and symmetric int) or s * (q - zp) (asymmetric).
  float dequant(uint32_t code, float s, int32_t zp) const {
    if (is_int_) {
      const int32_t q = asym_ ? static_cast<int32_t>(code) - zp : code_to_int(fi_, code);
      return s * static_cast<float>(q);
    }
    return decode_float(ff_, code) * s;
  }

  // Scales computed before quantising: per column and per tensor. Group and row scales are
  // computed inside the quantisation loop, group by group, while the group is in cache.
  std::vector<GroupScale> compute_scales(std::span<const float> x, const Shape& shape) const {
    const int64_t ns = num_scales(shape);
    std::vector<GroupScale> out(static_cast<size_t>(ns));
    if (gran_ == Granularity::Tensor) {
      out[0] = group_scale(x.data(), static_cast<int64_t>(x.size()));
    } else if (gran_ == Granularity::Col) {
      const int64_t n = static_cast<int64_t>(x.size());
      const int64_t cols = row_view(shape).cols;
      std::vector<float> lo(static_cast<size_t>(cols), 0.0f), hi(static_cast<size_t>(cols), 0.0f);
      std::vector<uint8_t> bad(static_cast<size_t>(cols), 0);
      for (int64_t r = 0; r < n / cols; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          const float v = x[r * cols + c];
          bad[c] |= !(std::abs(v) <= std::numeric_limits<float>::max());
          lo[c] = std::min(lo[c], v);
          hi[c] = std::max(hi[c], v);
        }
      }
      for (int64_t c = 0; c < cols; ++c) out[c] = make_scale(lo[c], hi[c], bad[c] != 0);
    }
    return out;
  }

  // Scale of one contiguous group. Reductions on the bit patterns vectorise: |x| orders like
  // its bits, and key(u) = u ^ ((u >> 31) & 0x7fffffff) (as int32) orders like the float.
  GroupScale group_scale(const float* p, int64_t len) const {
    uint32_t amax = 0;
    int32_t kmin = 0, kmax = 0;
    if (asym_) {
      for (int64_t i = 0; i < len; ++i) {
        const uint32_t u = f32_bits(p[i]);
        amax = std::max(amax, u & 0x7fffffffu);
        const int32_t k = static_cast<int32_t>(u ^ ((static_cast<uint32_t>(static_cast<int32_t>(u) >> 31)) & 0x7fffffffu));
        kmin = std::min(kmin, k);
        kmax = std::max(kmax, k);
      }
    } else {
      for (int64_t i = 0; i < len; ++i) amax = std::max(amax, f32_bits(p[i]) & 0x7fffffffu);
    }
    auto from_key = [](int32_t k) {
      const uint32_t u = static_cast<uint32_t>(k);
      return f32_from_bits(u ^ ((static_cast<uint32_t>(k >> 31)) & 0x7fffffffu));
    };
    const bool bad = amax > 0x7f7fffffu;
    if (asym_) return make_scale(from_key(kmin), from_key(kmax), bad);
    return make_scale(-f32_from_bits(amax), f32_from_bits(amax), bad);
  }

  // The reference rule (formats/element_rules.hpp), with the scale cast through FastRne where
  // it is RNE (FastRne equals encode_float RNE/saturate, exhaustively tested).
  GroupScale make_scale(float lo, float hi, bool bad) const {
    if (bad || scale_fp32_ || !scale_fast_) {
      const ElementScale e = element_group_scale(params_, lo, hi, bad);
      return GroupScale{e.code, e.dec, e.zp};
    }
    GroupScale gs;
    const float s = asym_ ? (hi - lo) / denom_ : std::max(-lo, hi) / denom_;
    gs.code = scale_k_.code(s);
    gs.dec = scale_k_.value(s);
    if (asym_ && gs.dec > 0.0f) gs.zp = round_to_int(-lo / gs.dec, 0, static_cast<int32_t>(fi_.mask()));
    return gs;
  }

  // Visits the tensor in segments that share one scale: body(i0, i1, gs, per_col) where gs is
  // null (plain cast), the segment's scale, or (per_col) the per-column scales indexed i - i0.
  template <class Body>
  void for_segments(const float* x, int64_t n, int64_t cols, GroupScale* scales, int64_t ns, Body&& body) const {
    if (gran_ == Granularity::None || n == 0) {
      constexpr int64_t kChunk = 1 << 14;
      const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t c = 0; c < chunks; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk), nullptr, false);
    } else if (gran_ == Granularity::Col) {
      const int64_t rows = n / cols;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t r = 0; r < rows; ++r) body(r * cols, (r + 1) * cols, scales, true);
    } else if (gran_ == Granularity::Tensor) {
      constexpr int64_t kChunk = 1 << 14;
      const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t c = 0; c < chunks; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk), scales, false);
    } else {
      // Groups along rows: scale computed here, fused with quantisation.
      const int64_t gsize = n / ns;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t g = 0; g < ns; ++g) {
        scales[g] = group_scale(x + g * gsize, gsize);
        body(g * gsize, (g + 1) * gsize, scales + g, false);
      }
    }
  }

  // Quantises every element, writing codes and/or dequantised values (either may be null).
  void run(std::span<const float> x, const Shape& shape, std::vector<GroupScale>& scales, uint32_t* codes,
           float* vals) const {
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t cols = row_view(shape).cols;
    const bool fast = is_int_ ? pol_.round == Round::NearestEven : fast_path() && fast_rne_supported(ff_);
    if (fast && gran_ == Granularity::Group && group_ < 256 && cols >= 2 * group_) {
      return run_small_groups(x.data(), n, cols, scales, codes, vals);
    }
    if (is_int_) {
      for_segments(x.data(), n, cols, scales.data(), static_cast<int64_t>(scales.size()),
                   [&](int64_t i0, int64_t i1, const GroupScale* gs, bool per_col) {
                     int_segment(x.data(), i0, i1, gs, per_col, codes, vals);
                   });
    } else {
      const bool fast = fast_path() && fast_rne_supported(ff_);
      const FastRne k = fast ? FastRne::make(ff_, pol_.overflow) : FastRne{};
      with_float_codec(ff_, [&](auto codec) {
        for_segments(x.data(), n, cols, scales.data(), static_cast<int64_t>(scales.size()),
                     [&](int64_t i0, int64_t i1, const GroupScale* gs, bool per_col) {
                       float_segment(codec, fast ? &k : nullptr, x.data(), i0, i1, gs, per_col, codes, vals);
                     });
      });
    }
  }

  bool fast_path() const { return pol_.round == Round::NearestEven && pol_.nan == NanMode::Cuda; }

  // Per-thread scratch for the random bits of one segment.
  static uint32_t* sr_buffer(int64_t n) {
    thread_local std::vector<uint32_t> buf;
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
    return buf.data();
  }

  // One row of run_small_groups: s[i], z[i] are the element's scale and zero point.
  void small_group_row(const FastRne& kk, const float* __restrict xr, const float* __restrict s,
                       const float* __restrict z, int64_t cols, bool mul, int32_t qlo, int32_t qhi, uint32_t mask,
                       float* __restrict vr, uint32_t* __restrict cr) const {
    const FastRne k = kk;
    if (!is_int_) {
      if (vr) {
        for (int64_t i = 0; i < cols; ++i) {
          const bool ok = s[i] != 0.0f && s[i] == s[i];
          const float sd = ok ? s[i] : 1.0f;
          const float t = mul ? xr[i] * (1.0f / sd) : xr[i] / sd;
          vr[i] = ok ? k.value(t) * s[i] : 0.0f * s[i];
        }
      }
      if (cr) {
        for (int64_t i = 0; i < cols; ++i) {
          const bool ok = s[i] != 0.0f && s[i] == s[i];
          const float sd = ok ? s[i] : 1.0f;
          const float t = mul ? xr[i] * (1.0f / sd) : xr[i] / sd;
          cr[i] = ok ? k.code(t) : 0u;
        }
      }
      return;
    }
    const float magic = 12582912.0f;  // 1.5 * 2^23: (t + magic) - magic = rne(t) for |t| <= 2^22
    const float flo = static_cast<float>(qlo), fhi = static_cast<float>(qhi);
    auto q_of = [&](int64_t i, float sd) {
      float t = mul ? xr[i] * (1.0f / sd) : xr[i] / sd;
      t = t != t ? 0.0f : t;  // 0 * (1/subnormal scale) = 0 * Inf: NaN -> 0, as round_to_int does
      const float lo = flo - z[i], hi = fhi - z[i];
      t = t < lo ? lo : (t > hi ? hi : t);
      return (t + magic) - magic;
    };
    if (vr) {
      for (int64_t i = 0; i < cols; ++i) {
        const bool ok = s[i] != 0.0f && s[i] == s[i];
        const float q = q_of(i, ok ? s[i] : 1.0f);
        vr[i] = ok ? s[i] * q : 0.0f * s[i];
      }
    }
    if (cr) {
      for (int64_t i = 0; i < cols; ++i) {
        const bool ok = s[i] != 0.0f && s[i] == s[i];
        const float q = q_of(i, ok ? s[i] : 1.0f);
        cr[i] = ok ? static_cast<uint32_t>(static_cast<int32_t>(q + z[i])) & mask : 0u;
      }
    }
  }

  // Small groups (RNE fast paths only): per row, compute the group scales, broadcast them to
  // one scale per element, then quantise the whole row in one vectorised loop. Same results
  // as the per-group segments (zero / NaN scales handled by selects).
  void run_small_groups(const float* x, int64_t n, int64_t cols, std::vector<GroupScale>& scales, uint32_t* codes,
                        float* vals) const {
    const int64_t rows = n / cols, gpr = cols / group_, G = group_;
    const FastRne k = is_int_ ? FastRne{} : FastRne::make(ff_, pol_.overflow);
    const bool mul = op_mul_;
    const int32_t qlo = asym_ ? 0 : (full_range_ ? fi_.lo() : -fi_.hi());
    const int32_t qhi = asym_ ? static_cast<int32_t>(fi_.mask()) : fi_.hi();
    const uint32_t mask = fi_.mask();
#pragma omp parallel if (n > kParallelMin)
    {
      std::vector<float> sb(static_cast<size_t>(cols)), zb(static_cast<size_t>(cols));
      std::vector<uint32_t> amax_buf(static_cast<size_t>(gpr)), code_buf(static_cast<size_t>(gpr));
      std::vector<float> dec_buf(static_cast<size_t>(gpr));
      std::vector<int32_t> kmin_buf(static_cast<size_t>(gpr)), kmax_buf(static_cast<size_t>(gpr)),
          zp_buf(static_cast<size_t>(gpr));
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * cols;
        GroupScale* sr = scales.data() + r * gpr;
        // Phases: statistics of every group of the row (a tight streaming loop), scales, then
        // the per-element scale broadcast.
        if (asym_ && (scale_fp32_ || scale_fast_)) {
          // Vectorised group_scale + make_scale for asymmetric scales (same operations).
          for (int64_t g = 0; g < gpr; ++g) {
            uint32_t amax = 0;
            int32_t kmin = 0, kmax = 0;
            for (int64_t j = 0; j < G; ++j) {
              const uint32_t u = f32_bits(xr[g * G + j]);
              amax = std::max(amax, u & 0x7fffffffu);
              const int32_t k = static_cast<int32_t>(u ^ ((static_cast<uint32_t>(static_cast<int32_t>(u) >> 31)) & 0x7fffffffu));
              kmin = std::min(kmin, k);
              kmax = std::max(kmax, k);
            }
            amax_buf[g] = amax;
            kmin_buf[g] = kmin;
            kmax_buf[g] = kmax;
          }
          const float denom = denom_, fmask = static_cast<float>(fi_.mask());
          const FastRne sk = scale_k_;
          const bool f32 = scale_fp32_;
          const uint32_t nan_code = scale_fmt_.canonical_nan_code();
          const float qnan = std::numeric_limits<float>::quiet_NaN();
          for (int64_t g = 0; g < gpr; ++g) {
            const uint32_t ulo = static_cast<uint32_t>(kmin_buf[g]), uhi = static_cast<uint32_t>(kmax_buf[g]);
            const float lo = f32_from_bits(ulo ^ ((static_cast<uint32_t>(kmin_buf[g] >> 31)) & 0x7fffffffu));
            const float hi = f32_from_bits(uhi ^ ((static_cast<uint32_t>(kmax_buf[g] >> 31)) & 0x7fffffffu));
            const float sv = (hi - lo) / denom;
            const bool bad = amax_buf[g] > 0x7f7fffffu;
            const float dec = f32 ? sv : sk.value(sv);
            float t = dec > 0.0f ? -lo / dec : 0.0f;
            t = t < 0.0f ? 0.0f : (t > fmask ? fmask : t);
            const float zp = (t + 12582912.0f) - 12582912.0f;
            dec_buf[g] = bad ? qnan : dec;
            code_buf[g] = bad ? nan_code : (f32 ? f32_bits(sv) : sk.code(sv));
            zp_buf[g] = bad ? 0 : static_cast<int32_t>(zp);
          }
          for (int64_t g = 0; g < gpr; ++g) sr[g] = GroupScale{code_buf[g], dec_buf[g], zp_buf[g]};
        } else if (asym_) {
          for (int64_t g = 0; g < gpr; ++g) sr[g] = group_scale(xr + g * G, G);
        } else {
          for (int64_t g = 0; g < gpr; ++g) {
            uint32_t amax = 0;
            for (int64_t j = 0; j < G; ++j) amax = std::max(amax, f32_bits(xr[g * G + j]) & 0x7fffffffu);
            amax_buf[g] = amax;
          }
          if (scale_fp32_ || scale_fast_) {
            // Vectorised make_scale for symmetric scales (same operations, same order).
            const float denom = denom_;
            const FastRne sk = scale_k_;
            const bool f32 = scale_fp32_;
            const uint32_t nan_code = scale_fmt_.canonical_nan_code();
            const float qnan = std::numeric_limits<float>::quiet_NaN();
            for (int64_t g = 0; g < gpr; ++g) {
              const float sv = f32_from_bits(amax_buf[g]) / denom;
              const bool bad = amax_buf[g] > 0x7f7fffffu;
              dec_buf[g] = bad ? qnan : (f32 ? sv : sk.value(sv));
              code_buf[g] = bad ? nan_code : (f32 ? f32_bits(sv) : sk.code(sv));
            }
            for (int64_t g = 0; g < gpr; ++g) sr[g] = GroupScale{code_buf[g], dec_buf[g], 0};
          } else {
            for (int64_t g = 0; g < gpr; ++g) {
              const float a = f32_from_bits(amax_buf[g]);
              sr[g] = make_scale(-a, a, amax_buf[g] > 0x7f7fffffu);
            }
          }
        }
        for (int64_t g = 0; g < gpr; ++g) {
          const float d = sr[g].dec, z = static_cast<float>(sr[g].zp);
          for (int64_t j = 0; j < G; ++j) {
            sb[g * G + j] = d;
            zb[g * G + j] = z;
          }
        }
        float* __restrict vr = vals ? vals + r * cols : nullptr;
        uint32_t* __restrict cr = codes ? codes + r * cols : nullptr;
        small_group_row(k, xr, sb.data(), zb.data(), cols, mul, qlo, qhi, mask, vr, cr);
      }
    }
  }

  // A segment whose scale is zero or NaN: codes 0, values 0 or NaN.
  static void degenerate_segment(int64_t i0, int64_t i1, float s, uint32_t* codes, float* vals) {
    for (int64_t i = i0; i < i1; ++i) {
      if (codes) codes[i] = 0;
      if (vals) vals[i] = 0.0f * s;
    }
  }

  template <class Codec>
  void float_segment(Codec codec, const FastRne* fast, const float* x, int64_t i0, int64_t i1, const GroupScale* gs,
                     bool per_col, uint32_t* codes, float* vals) const {
    const ElementPolicy pol = pol_;
    const bool sr = pol.round == Round::Stochastic;
    // Scaled value t of element i, with the decoded scale s.
    auto slow = [&](int64_t i, float t, float s) {
      const uint32_t rb = sr ? sr_bits(pol.seed, static_cast<uint64_t>(i)) : 0u;
      const uint32_t c = encode_float(codec.f, t, pol.round, pol.overflow, pol.nan, rb);
      if (codes) codes[i] = c;
      if (vals) vals[i] = gs ? decode_float(codec.f, c) * s : decode_float(codec.f, c);
    };
    if (per_col) {  // per-element scales: reference path
      for (int64_t i = i0; i < i1; ++i) {
        const float s = gs[i - i0].dec;
        if (s == 0.0f || std::isnan(s)) {
          degenerate_segment(i, i + 1, s, codes, vals);
          continue;
        }
        slow(i, op_mul_ ? x[i] * (1.0f / s) : x[i] / s, s);
      }
      return;
    }
    const float s = gs ? gs->dec : 1.0f;
    if (gs && (s == 0.0f || std::isnan(s))) return degenerate_segment(i0, i1, s, codes, vals);
    const float inv = 1.0f / s;
    const bool mul = op_mul_;
    if (fast) {
      const FastRne k = *fast;
      if (!gs) {
        if (vals) for (int64_t i = i0; i < i1; ++i) vals[i] = k.value(x[i]);
        if (codes) for (int64_t i = i0; i < i1; ++i) codes[i] = k.code(x[i]);
      } else if (mul) {
        if (vals) for (int64_t i = i0; i < i1; ++i) vals[i] = k.value(x[i] * inv) * s;
        if (codes) for (int64_t i = i0; i < i1; ++i) codes[i] = k.code(x[i] * inv);
      } else {
        if (vals) for (int64_t i = i0; i < i1; ++i) vals[i] = k.value(x[i] / s) * s;
        if (codes) for (int64_t i = i0; i < i1; ++i) codes[i] = k.code(x[i] / s);
      }
      return;
    }
    if (sr && pol.nan == NanMode::Cuda && fast_rne_supported(codec.f)) {
      // Vectorised stochastic rounding (FastRne::value_sr / code_sr, same rule as encode_float).
      const FastRne k = FastRne::make(codec.f, pol.overflow);
      uint32_t* rb = sr_buffer(i1 - i0);
      sr_bits_fill(pol.seed, static_cast<uint64_t>(i0), i1 - i0, rb);
      const float* __restrict xs = x + i0;
      const float sc = gs ? s : 1.0f;
      const float in = gs ? inv : 1.0f;
      const bool div = gs && !mul;
      if (vals) {
        float* __restrict v = vals + i0;
        for (int64_t j = 0; j < i1 - i0; ++j) v[j] = k.value_sr(div ? xs[j] / sc : xs[j] * in, rb[j]) * sc;
      }
      if (codes) {
        uint32_t* __restrict c = codes + i0;
        for (int64_t j = 0; j < i1 - i0; ++j) c[j] = k.code_sr(div ? xs[j] / sc : xs[j] * in, rb[j]);
      }
      return;
    }
    for (int64_t i = i0; i < i1; ++i) slow(i, !gs ? x[i] : (mul ? x[i] * inv : x[i] / s), s);
  }

  void int_segment(const float* x, int64_t i0, int64_t i1, const GroupScale* gs, bool per_col, uint32_t* codes,
                   float* vals) const {
    const ElementPolicy pol = pol_;
    const bool sr = pol.round == Round::Stochastic;
    const int32_t qlo = asym_ ? 0 : (gran_ != Granularity::None && !full_range_ ? -fi_.hi() : fi_.lo());
    const int32_t qhi = asym_ ? static_cast<int32_t>(fi_.mask()) : fi_.hi();
    const uint32_t mask = fi_.mask();
    // Reference path for element i with scaled value t.
    auto slow = [&](int64_t i, float t, const GroupScale* g) {
      const uint32_t rb = sr ? sr_bits(pol.seed, static_cast<uint64_t>(i)) : 0u;
      if (asym_) {
        // clamp(round(x/s) + zp): round first (the zero point is an integer), then clamp.
        const int32_t r = round_to_int(t, -(1 << 30), 1 << 30, pol.round, rb);
        const int64_t v = static_cast<int64_t>(r) + g->zp;
        const int32_t q = static_cast<int32_t>(v < qlo ? qlo : (v > qhi ? qhi : v));
        if (codes) codes[i] = static_cast<uint32_t>(q);
        if (vals) vals[i] = g->dec * static_cast<float>(q - g->zp);
      } else {
        const int32_t q = round_to_int(t, qlo, qhi, pol.round, rb);
        if (codes) codes[i] = int_to_code(fi_, q);
        if (vals) vals[i] = g ? g->dec * static_cast<float>(q) : static_cast<float>(q);
      }
    };
    if (per_col) {
      for (int64_t i = i0; i < i1; ++i) {
        const GroupScale* g = gs + (i - i0);
        if (g->dec == 0.0f || std::isnan(g->dec)) {
          degenerate_segment(i, i + 1, g->dec, codes, vals);
          continue;
        }
        slow(i, op_mul_ ? x[i] * (1.0f / g->dec) : x[i] / g->dec, g);
      }
      return;
    }
    const float s = gs ? gs->dec : 1.0f;
    if (gs && (s == 0.0f || std::isnan(s))) return degenerate_segment(i0, i1, s, codes, vals);
    const float inv = 1.0f / s;
    if (pol.round == Round::NearestEven) {
      // rne(clamp(t, lo - zp, hi - zp)) + zp == clamp(rne(t) + zp, lo, hi) for integer bounds;
      // (t + 1.5 * 2^23) - 1.5 * 2^23 rounds |t| <= 2^22 to an integer, ties to even.
      const int32_t zp = gs && asym_ ? gs->zp : 0;
      const float lo = static_cast<float>(qlo - zp), hi = static_cast<float>(qhi - zp);
      const float magic = 12582912.0f;
      const bool mul = op_mul_;
      const bool scaled = gs != nullptr;
      for (int64_t i = i0; i < i1; ++i) {
        float t = !scaled ? x[i] : (mul ? x[i] * inv : x[i] / s);
        t = t != t ? 0.0f : t;  // NaN -> 0 (plain casts; scaled NaN groups never get here)
        t = t < lo ? lo : (t > hi ? hi : t);
        const float q = (t + magic) - magic;
        if (vals) vals[i] = scaled ? s * q : q;
        if (codes) codes[i] = static_cast<uint32_t>(static_cast<int32_t>(q) + zp) & mask;
      }
      return;
    }
    if (sr) {
      // Vectorised stochastic rounding: clamp to the integer range (bounds are integers, so
      // clamping first is the same), then |t| rounds up iff rbits < floor(frac(|t|) * 2^32).
      uint32_t* rb = sr_buffer(i1 - i0);
      sr_bits_fill(pol.seed, static_cast<uint64_t>(i0), i1 - i0, rb);
      const int32_t zp = gs && asym_ ? gs->zp : 0;
      const float lo = static_cast<float>(qlo - zp), hi = static_cast<float>(qhi - zp);
      const bool scaled = gs != nullptr, mul = op_mul_;
      for (int64_t i = i0; i < i1; ++i) {
        float t = !scaled ? x[i] : (mul ? x[i] * inv : x[i] / s);
        t = t != t ? 0.0f : t;
        t = t < lo ? lo : (t > hi ? hi : t);
        const float a = std::abs(t);
        const uint32_t u = static_cast<uint32_t>(a);
        const uint32_t frac32 = static_cast<uint32_t>((a - static_cast<float>(u)) * 4294967296.0f);
        const float qa = static_cast<float>(u + (rb[i - i0] < frac32 ? 1u : 0u));
        const float q = t < 0.0f ? -qa : qa;
        if (vals) vals[i] = scaled ? s * (q + 0.0f) : q + 0.0f;  // integers have no -0
        if (codes) codes[i] = static_cast<uint32_t>(static_cast<int32_t>(q) + zp) & mask;
      }
      return;
    }
    for (int64_t i = i0; i < i1; ++i) slow(i, !gs ? x[i] : (op_mul_ ? x[i] * inv : x[i] / s), gs);
  }

  std::string spec_;
  bool is_int_;
  FloatFormat ff_;
  IntFormat fi_;
  ElementPolicy pol_;
  Granularity gran_;
  int64_t group_;
  FloatFormat scale_fmt_;
  Round scale_round_;
  bool op_mul_;
  bool asym_;
  bool full_range_;
  float denom_ = 1.0f;
  bool scale_fp32_ = false;
  bool scale_fast_ = false;  // scale cast through FastRne (RNE, saturating)
  FastRne scale_k_;
  ElementParams params_;
};

}  // namespace

std::unique_ptr<TensorFormat> make_element_format(Spec& spec) {
  const std::string& name = spec.name();
  bool is_int = false, is_unsigned = false;
  IntFormat fi;
  FloatFormat ff;
  if (name.rfind("int", 0) == 0 || name.rfind("uint", 0) == 0) {
    is_unsigned = name[0] == 'u';
    const std::string digits = name.substr(is_unsigned ? 4 : 3);
    int bits = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9' || bits > 100) spec.fail("integer formats are intB or uintB with B in 2..16");
      bits = bits * 10 + (c - '0');
    }
    if (digits.empty() || bits < 2 || bits > 16) spec.fail("integer formats are intB or uintB with B in 2..16");
    is_int = true;
    fi = IntFormat{bits, !is_unsigned};
  } else {
    const auto f = named_float_format(name);
    if (!f) spec.fail("unknown element format");
    ff = *f;
    // Refinements of a generic eXmY.
    const bool generic = name.size() > 1 && name[0] == 'e' && !(name == "e8m0" || name == "e2m1" || name == "e2m3" ||
                                                                  name == "e3m2" || name == "e4m3" || name == "e5m2" ||
                                                                  name == "e4m3fn");
    if (generic) {
      if (const auto b = spec.take_int("bias", -200, 200)) ff.bias = static_cast<int>(*b);
      if (const auto inf = spec.take("inf")) {
        if (*inf == "on") ff.has_inf = true;
        else if (*inf == "off") ff.has_inf = false;
        else spec.fail("inf must be on or off");
      }
      if (const auto ne = spec.take("nanenc")) {
        if (*ne == "ieee") ff.nan = NanEncoding::Ieee;
        else if (*ne == "allones") ff.nan = NanEncoding::AllOnes;
        else if (*ne == "none") ff.nan = NanEncoding::None;
        else spec.fail("nanenc must be ieee, allones or none");
      }
      if (const auto s = spec.take("sub")) {
        if (*s == "off") ff.subnormals = false;
        else if (*s != "on") spec.fail("sub must be on or off");
      }
    }
    validate_float_format(ff, spec.text());
  }

  // Granularity.
  Granularity gran = Granularity::None;
  int64_t group = 0;
  int n_gran = 0;
  if (const auto g = spec.take_int("g", 1, int64_t{1} << 40)) {
    gran = Granularity::Group;
    group = *g;
    ++n_gran;
  }
  for (const char* k : {"row", "per_token", "per_channel"}) {
    if (spec.take_flag(k)) {
      gran = Granularity::Row;
      ++n_gran;
    }
  }
  if (spec.take_flag("col")) {
    gran = Granularity::Col;
    ++n_gran;
  }
  if (spec.take_flag("tensor") || spec.take_flag("per_tensor")) {
    gran = Granularity::Tensor;
    ++n_gran;
  }
  if (n_gran > 1) spec.fail("give one granularity (gN, row, col or tensor)");

  FloatFormat scale_fmt = fmt_desc::fp32;
  Round scale_round = Round::NearestEven;
  bool op_mul = false, asym = false, full_range = false;
  const bool scaled = gran != Granularity::None;
  if (const auto s = spec.take("scale")) {
    if (!scaled) spec.fail("scale= needs a granularity (gN, row, col or tensor)");
    const auto sf = named_float_format(*s);
    if (!sf || !(*sf == fmt_desc::fp32 || *sf == fmt_desc::fp16 || *sf == fmt_desc::bf16 || *sf == fmt_desc::e4m3 ||
                 *sf == fmt_desc::e8m0))
      spec.fail(fmt::format("scale format '{}' not supported (fp32, fp16, bf16, e4m3, e8m0)", *s));
    scale_fmt = *sf;
    if (scale_fmt == fmt_desc::e8m0) scale_round = Round::Up;  // never clip the group max
  }
  if (const auto r = spec.take("scale_round")) {
    if (!scaled) spec.fail("scale_round= needs a granularity");
    scale_round = parse_round(spec, *r);
    if (scale_round == Round::Stochastic) spec.fail("scale_round=sr is not supported");
  }
  if (const auto op = spec.take("op")) {
    if (!scaled) spec.fail("op= needs a granularity");
    if (*op == "mul") op_mul = true;
    else if (*op != "div") spec.fail("op must be div or mul");
  }
  if (is_int) {
    asym = spec.take_flag("asym");
    if (is_unsigned && scaled) asym = true;
    if (asym && is_unsigned == false) fi.is_signed = false;  // codes are unsigned b-bit with a zero point
    if (asym && !scaled) spec.fail("asym needs a granularity (gN, row, col or tensor)");
    if (const auto sym = spec.take("sym")) {
      if (!scaled || asym) spec.fail("sym= applies to symmetric scaled integers");
      if (*sym == "full") full_range = true;
      else if (*sym != "restricted") spec.fail("sym must be restricted or full");
    }
  }
  ElementPolicy pol = take_policy(spec, ElementPolicy{}, !is_int, !is_int);
  spec.finish(is_int ? "gN|row|col|tensor, scale=, scale_round=, op=div|mul, sym=restricted|full, asym, round=, seed="
                     : "gN|row|col|tensor, scale=, scale_round=, op=div|mul, round=, seed=, overflow=, nan=");
  return std::make_unique<ElementFormat>(spec.text(), is_int, ff, fi, pol, gran, group, scale_fmt, scale_round, op_mul,
                                         asym, full_range);
}

}  // namespace lowbit
