// NVFP4 (FORMATS.md §5): 16 E2M1 elements per block along the last axis, one E4M3 block scale,
// one FP32 tensor scale, with the exact fp32 operation order of TE, torchao or ModelOpt
// (formats/nvfp4.hpp has the formulas and the choices for degenerate tensors).
//
// Kernels (nvfp4_quantize): a vectorised two-pass kernel (block maxima and the tensor amax,
// then block scales and elements row by row, with fast_float.hpp's FastRne; round=sr with its
// value_sr / code_sr and philox.hpp's sr_bits_fill); degenerate tensors run the scalar
// functions of nvfp4.hpp. Both give the same bits (tests/formats/test_nvfp4.cpp,
// Nvfp4FastPath and Nvfp4FastPathSr).
//
// Packed layout (docs/layouts.md):
//   "codes"         E2M1 codes, two per byte, element 2i in the low nibble
//   "scales"        u8 E4M3 block scales, shape = shape[:-1] + [cols / 16], row-major
//   "tensor_scale"  f32, shape [1]: TE S_dec = 1/S_enc, torchao per_tensor_scale = amax/2688,
//                   ModelOpt weights_scaling_factor_2 = amax/2688 (absent with tensor_scale=off)
//
// Options: variant=te|torchao|modelopt (default te), tensor_scale=on|off (off = torchao's
// single-level form, so it implies variant=torchao), round=rne|sr, seed=N (stochastic rounding
// of the elements only; the bits are sr_bits(seed, flat index) — TE's hardware cvt.rs draws its
// own Philox bits, so SR results are reproducible here but not bit-identical to TE).
#include <fmt/format.h>

#include <vector>

#include "formats/error.hpp"
#include "formats/factories.hpp"
#include "formats/fast_float.hpp"
#include "formats/nvfp4.hpp"
#include "formats/nvfp4_rules.hpp"
#include "formats/philox.hpp"
#include "formats/spec.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

namespace {

constexpr const char* kNvfp4Accepted = "variant=te|torchao|modelopt, tensor_scale=on|off, round=rne|sr, seed=N";
constexpr int64_t kParallelMin = 65536;

// Dequantised value of every E2M1 code under one block factor. The product's NaN bits are
// spelled out (nvfp4_mul_x86: the x86 product's) rather than left to the compiler, which may
// fold the constant negative codes as -(|e2m1| * factor) and so flip a NaN's sign.
void block_lut(float factor, float lut[16]) {
  for (uint32_t c = 0; c < 16; ++c) lut[c] = nvfp4_mul_x86(decode_float(fmt_desc::e2m1, c), factor);
}

// Block amax: nvfp4_block_amax_bits (formats/nvfp4_rules.hpp, shared with the CUDA kernels).

// --- Reference path: the scalar functions of nvfp4.hpp, block by block -----------------------

template <Nvfp4Variant V, bool TwoLevel>
void reference_rows(const Nvfp4Tensor& t, Round round, uint64_t seed, const float* x, int64_t rows, int64_t cols,
                    uint8_t* scales, uint8_t* codes, float* values) {
  const int64_t nb = cols / kNvfp4Block;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t i0 = r * cols + b * kNvfp4Block;
      const Nvfp4BlockScale bs = nvfp4_block_scale(t, f32_from_bits(nvfp4_block_amax_bits(x + i0)));
      if (scales) scales[r * nb + b] = bs.code;
      float lut[16];  // e2m1(c) * block factor, the same products decode() forms
      block_lut(nvfp4_block_factor(t, bs.code), lut);
      for (int i = 0; i < kNvfp4Block; i += 2) {
        uint32_t c[2];
        for (int j = 0; j < 2; ++j) {
          const int64_t k = i0 + i + j;
          const uint32_t rb = round == Round::Stochastic ? sr_bits(seed, static_cast<uint64_t>(k)) : 0u;
          c[j] = nvfp4_encode_element_as<V, TwoLevel>(t, bs, x[k], round, rb) & 0xFu;
          if (values) values[k] = lut[c[j]];
        }
        if (codes) codes[(i0 + i) / 2] = static_cast<uint8_t>(c[0] | (c[1] << 4));
      }
    }
  }
}

// --- Fast path: round to nearest even ----------------------------------------------------------
//
// Each variant's fp32 operations are those of nvfp4_block_scale / nvfp4_encode_element_as, in
// the same order, written with selects: fminf(a, FLT_MAX) = a < FLT_MAX ? a : FLT_MAX (NaN gives
// FLT_MAX, as fminf); the E4M3 casts are FastRne(e4m3, Saturate) (encode_float's defaults) or,
// for ModelOpt's torch cast, FastRne(e4m3, NaN); the E2M1 element cast is FastRne(e2m1,
// Saturate), whose value(q) = decode(code(q)) (a NaN argument gives code 0x7 and value +6, as
// encode_float's NanMode::Cuda and decode_float do). Block factors are fl(float(s) * stored)
// (single level: float(s)) and values e2m1 * factor, as decode() and the lookup tables form
// them. Degenerate tensors (non-finite amax, torchao / ModelOpt zero tensors) take the
// reference path: every block is the same there.

template <Nvfp4Variant V, bool TwoLevel>
struct FastKernel {
  Nvfp4Tensor t;
  FastRne e4m3;  // block-scale cast
  FastRne e2m1;  // element cast

  static FastKernel make(const Nvfp4Tensor& t) {
    FastKernel k;
    k.t = t;
    k.e4m3 = FastRne::make(fmt_desc::e4m3, TwoLevel && V == Nvfp4Variant::Modelopt ? Overflow::NaN : Overflow::Saturate);
    k.e2m1 = FastRne::make(fmt_desc::e2m1, Overflow::Saturate);
    return k;
  }
};

// Block scales of nb blocks with amax bam[b]: E4M3 codes, element multipliers (ModelOpt:
// divisors) and block factors.
template <Nvfp4Variant V, bool TwoLevel>
void block_scales(const FastKernel<V, TwoLevel>& kk, const float* __restrict bam, int64_t nb, uint32_t* __restrict sc,
                  float* __restrict mul, float* __restrict fac) {
  const FastRne k = kk.e4m3;
  const float stored = kk.t.stored;
  if constexpr (!TwoLevel) {
    for (int64_t b = 0; b < nb; ++b) {
      const float bs = bam[b] / 6.0f;
      const float c = nvfp4_clamp(bs, 0.015625f, 448.0f);
      sc[b] = (k.code(c));
      const float sf = k.value(c);
      mul[b] = 1.0f / sf;
      fac[b] = sf;
    }
  } else if constexpr (V == Nvfp4Variant::Te) {
    const float coef = kk.t.coef;
    for (int64_t b = 0; b < nb; ++b) {
      float sb = bam[b] * coef;
      sb = sb < FLT_MAX ? sb : FLT_MAX;
      sc[b] = (k.code(sb));
      const float sf = k.value(sb);
      const float d = sf * stored;
      const float enc = 1.0f / d;
      mul[b] = enc < FLT_MAX ? enc : FLT_MAX;
      fac[b] = d;
    }
  } else if constexpr (V == Nvfp4Variant::Torchao) {
    const float inv = kk.t.inv;
    for (int64_t b = 0; b < nb; ++b) {
      const float bs = bam[b] / 6.0f;
      const float s = bs / stored;
      const float c = nvfp4_clamp(s, 0.015625f, 448.0f);
      sc[b] = (k.code(c));
      const float sf = k.value(c);
      mul[b] = inv / sf;
      fac[b] = sf * stored;
    }
  } else {
    const float six_sf2 = kk.t.six_sf2;
    for (int64_t b = 0; b < nb; ++b) {
      float ps = bam[b] / six_sf2;
      ps = ps == 0.0f ? 1.0f : ps;
      sc[b] = (k.code(ps));
      const float sf = k.value(ps);
      const float m = sf * stored;
      mul[b] = m;
      fac[b] = m;
    }
  }
}

// The E2M1 argument of element x under the block multiplier (divisor) m. torchao clamps x * m
// to [-6, 6] first; the saturating cast makes that clamp a no-op (|q| > 6, Inf included, rounds
// to the code of +-6 either way; NaN passes the clamp unchanged), so it is left out here.
template <Nvfp4Variant V, bool TwoLevel>
LOWBIT_HD_HOT float element_arg(float x, float m) {
  if constexpr (TwoLevel && V == Nvfp4Variant::Modelopt) {
    return x / m;
  } else {
    return x * m;
  }
}

// Block amax of the nb blocks of a row, as floats; returns the largest bit pattern.
LOWBIT_HD_HOT uint32_t row_block_amax(const float* __restrict xr, int64_t nb, float* __restrict bam) {
  uint32_t m = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const uint32_t a = nvfp4_block_amax_bits(xr + b * kNvfp4Block);
    bam[b] = f32_from_bits(a);
    m = a > m ? a : m;
  }
  return m;
}

// One row with its block amax bam: block scales, then the elements block by block. SR: the
// elements round stochastically with the row's random bits rb (FastRne::value_sr / code_sr =
// encode_float(e2m1, q, Stochastic, Saturate, Cuda, rbits), the reference's element cast; the
// torchao clamp to [-6, 6] stays a no-op: |q| > 6 rounds to 6 or 8 -> saturates to 6).
template <Nvfp4Variant V, bool TwoLevel, bool SR>
void fast_row(const FastKernel<V, TwoLevel>& kk, const float* __restrict xr, int64_t cols, const float* __restrict bam,
              float* __restrict mul, float* __restrict fac, uint32_t* __restrict sc32, uint8_t* __restrict sc,
              uint32_t* __restrict crow, float* __restrict vr, const uint32_t* __restrict rb) {
  const int64_t nb = cols / kNvfp4Block;
  block_scales(kk, bam, nb, sc32, mul, fac);
  if (sc)
    for (int64_t b = 0; b < nb; ++b) sc[b] = static_cast<uint8_t>(sc32[b]);
  const FastRne k = kk.e2m1;
  constexpr bool kModelopt = TwoLevel && V == Nvfp4Variant::Modelopt;
  if (vr) {
    for (int64_t b = 0; b < nb; ++b) {
      const float m = mul[b], f = fac[b];
      const float* __restrict xb = xr + b * kNvfp4Block;
      float* __restrict vb = vr + b * kNvfp4Block;
      const uint32_t* __restrict rbb = SR ? rb + b * kNvfp4Block : nullptr;
      for (int i = 0; i < kNvfp4Block; ++i) {
        const float q = element_arg<V, TwoLevel>(xb[i], m);
        float v;
        if constexpr (SR) v = k.value_sr(q, rbb[i]);
        else v = k.value(q);
        if constexpr (kModelopt) v = q == 0.0f ? 0.0f : v;  // sign from q < 0: -0 -> +0
        vb[i] = v * f;
      }
    }
  }
  if (crow) {
    for (int64_t b = 0; b < nb; ++b) {
      const float m = mul[b];
      const float* __restrict xb = xr + b * kNvfp4Block;
      uint32_t* __restrict cb = crow + b * kNvfp4Block;
      const uint32_t* __restrict rbb = SR ? rb + b * kNvfp4Block : nullptr;
      for (int i = 0; i < kNvfp4Block; ++i) {
        const float q = element_arg<V, TwoLevel>(xb[i], m);
        uint32_t c;
        if constexpr (SR) c = k.code_sr(q, rbb[i]);
        else c = k.code(q);
        if constexpr (kModelopt) c = q == 0.0f ? 0u : c;
        cb[i] = c;
      }
    }
  }
}

// bam_all: the block amax of the whole tensor (rows x cols / 16), from the first pass.
template <Nvfp4Variant V, bool TwoLevel, bool SR>
void fast_rows(const Nvfp4Tensor& t, uint64_t seed, const float* x, int64_t rows, int64_t cols, const float* bam_all,
               uint8_t* scales, uint8_t* codes, float* values) {
  const int64_t nb = cols / kNvfp4Block;
  const FastKernel<V, TwoLevel> kk = FastKernel<V, TwoLevel>::make(t);
#pragma omp parallel if (rows * cols > kParallelMin)
  {
    // Per-thread scratch of one row: multipliers, factors, scale codes, element codes.
    std::vector<float> fbuf(static_cast<size_t>(2 * nb));
    std::vector<uint32_t> sbuf(static_cast<size_t>(nb));
    std::vector<uint32_t> crow(codes ? static_cast<size_t>(cols) : 0);
    std::vector<uint32_t> rbuf(SR ? static_cast<size_t>(cols) : 0);  // the row's random bits
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      if constexpr (SR) sr_bits_fill(seed, static_cast<uint64_t>(r * cols), cols, rbuf.data());
      fast_row<V, TwoLevel, SR>(kk, x + r * cols, cols, bam_all + r * nb, fbuf.data(), fbuf.data() + nb, sbuf.data(),
                                scales ? scales + r * nb : nullptr, codes ? crow.data() : nullptr,
                                values ? values + r * cols : nullptr, rbuf.data());
      if (codes) {
        const uint32_t* __restrict c = crow.data();
        uint8_t* __restrict out = codes + r * cols / 2;
        for (int64_t j = 0; j < cols / 2; ++j) out[j] = static_cast<uint8_t>(c[2 * j] | (c[2 * j + 1] << 4));
      }
    }
  }
}

// Tensor amax on |x| bit patterns: integer order is numeric order, NaN above Inf.
float tensor_amax(const float* x, int64_t n) {
  uint32_t amax_bits = 0;
#pragma omp parallel for schedule(static) reduction(max : amax_bits) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t a = f32_bits(x[i]) & 0x7fffffffu;
    amax_bits = a > amax_bits ? a : amax_bits;
  }
  return f32_from_bits(amax_bits);
}

// The same maximum, keeping every block amax on the way: the fast path's first pass (also for
// the single-level form, which needs no tensor amax: a separate pass over the block maxima
// measured faster than interleaving them with the elements row by row).
float tensor_amax_blocks(const float* x, int64_t rows, int64_t cols, float* bam_all) {
  const int64_t nb = cols / kNvfp4Block;
  uint32_t amax_bits = 0;
#pragma omp parallel for schedule(static) reduction(max : amax_bits) if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const uint32_t a = row_block_amax(x + r * cols, nb, bam_all + r * nb);
    amax_bits = a > amax_bits ? a : amax_bits;
  }
  return f32_from_bits(amax_bits);
}

template <Nvfp4Variant V, bool TwoLevel>
Nvfp4Tensor quantize_as(Nvfp4Variant variant, Round round, uint64_t seed, const float* x, int64_t rows, int64_t cols,
                        uint8_t* scales, uint8_t* codes, float* values, Nvfp4Path path) {
  const bool fast = path == Nvfp4Path::Auto && (round == Round::NearestEven || round == Round::Stochastic);
  std::vector<float> bam_all;
  float amax = 0.0f;
  if (fast) {
    bam_all.resize(static_cast<size_t>(rows * (cols / kNvfp4Block)));
    amax = tensor_amax_blocks(x, rows, cols, bam_all.data());
  } else if (TwoLevel) {
    amax = tensor_amax(x, rows * cols);
  }
  const Nvfp4Tensor t = nvfp4_tensor(variant, TwoLevel, amax);  // (single level: amax unused)
  if (rows * cols == 0) return t;
  if (fast && !t.nan && !t.zero) {
    if (round == Round::Stochastic) fast_rows<V, TwoLevel, true>(t, seed, x, rows, cols, bam_all.data(), scales, codes, values);
    else fast_rows<V, TwoLevel, false>(t, seed, x, rows, cols, bam_all.data(), scales, codes, values);
  } else {
    reference_rows<V, TwoLevel>(t, round, seed, x, rows, cols, scales, codes, values);
  }
  return t;
}

class Nvfp4Format final : public TensorFormat {
 public:
  Nvfp4Format(Nvfp4Variant variant, bool two_level, Round round, uint64_t seed)
      : variant_(variant), two_level_(two_level), round_(round), seed_(seed) {}

  std::string spec() const override {
    std::string s = "nvfp4";
    if (variant_ != Nvfp4Variant::Te) s += fmt::format(":variant={}", nvfp4_variant_name(variant_));
    if (!two_level_) s += ":tensor_scale=off";
    if (round_ == Round::Stochastic) s += fmt::format(":round=sr:seed={}", seed_);
    return s;
  }
  std::string family() const override { return "nvfp4"; }
  FormatParams params() const override { return Nvfp4Params{variant_, two_level_, round_, seed_}; }
  int code_bits() const override { return 4; }
  double bits_per_element(const Shape& shape) const override {
    const int64_t n = shape_numel(shape);
    const double base = 4.0 + 8.0 / kNvfp4Block;
    return two_level_ && n > 0 ? base + 32.0 / static_cast<double>(n) : base;
  }
  // Two-level: the tensor scale adapts to any finite fp32 tensor, so the range is fp32's.
  // Single level: 6 * 448 down to 0.5 * 2^-6 (torchao floors the scale at 2^-6).
  FormatLimits limits() const override {
    if (two_level_) return {static_cast<double>(FLT_MAX), 0x1p-149};
    return {6.0 * 448.0, 0x1p-7};
  }

  void check_shape(const Shape& shape) const override {
    check_groups_divide(spec(), shape, kNvfp4Block, "NVFP4 block");
  }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const RowView rv = row_view(shape);
    PackedTensor p;
    p.spec = spec();
    p.shape = shape;
    p.code_bits = 4;
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(static_cast<int64_t>(x.size()), 4)));
    Section s{"scales", "u8", scale_shape(shape), {}};
    s.bytes.resize(static_cast<size_t>(rv.rows * (rv.cols / kNvfp4Block)));
    const Nvfp4Tensor t = nvfp4_quantize(variant_, two_level_, round_, seed_, x.data(), rv.rows, rv.cols,
                                         s.bytes.data(), c.bytes.data(), nullptr);
    p.sections.push_back(std::move(c));
    p.sections.push_back(std::move(s));
    if (two_level_) {
      const float ts[1] = {t.stored};
      p.sections.push_back(make_section_f32("tensor_scale", {1}, ts));
    }
    return p;
  }

  void decode(const PackedTensor& p, std::span<float> out) const override {
    check_packed(p, out);
    const std::vector<uint32_t> scales = checked_section_u32(p, "scales", "u8", scale_shape(p.shape));
    Nvfp4Tensor t;
    t.variant = variant_;
    t.two_level = two_level_;
    if (two_level_) {
      const Section& ts = p.at("tensor_scale");
      if (ts.shape != Shape{1})
        throw Error(fmt::format("{}: 'tensor_scale' section has shape {}, expected (1)", spec(), shape_str(ts.shape)));
      t.stored = section_f32(ts)[0];
    }
    const std::vector<uint32_t> codes = element_codes(p);
    const RowView rv = row_view(p.shape);
    const int64_t nb = rv.cols / kNvfp4Block;
#pragma omp parallel for schedule(static) if (rv.rows * rv.cols > kParallelMin)
    for (int64_t r = 0; r < rv.rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        float lut[16];
        block_lut(nvfp4_block_factor(t, static_cast<uint8_t>(scales[r * nb + b])), lut);
        const int64_t i0 = r * rv.cols + b * kNvfp4Block;
        for (int i = 0; i < kNvfp4Block; ++i) out[i0 + i] = lut[codes[i0 + i] & 0xF];
      }
    }
  }

  // decode(encode(x)) without packing.
  void fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const override {
    check_input(x, shape);
    if (out.size() != x.size())
      throw Error(fmt::format("{}: output holds {} values, input {}", spec(), out.size(), x.size()));
    const RowView rv = row_view(shape);
    nvfp4_quantize(variant_, two_level_, round_, seed_, x.data(), rv.rows, rv.cols, nullptr, nullptr, out.data());
  }

 private:
  static Shape scale_shape(const Shape& shape) {
    Shape s = shape.empty() ? Shape{1} : shape;
    s.back() /= kNvfp4Block;
    return s;
  }

  Nvfp4Variant variant_;
  bool two_level_;
  Round round_;
  uint64_t seed_;
};

}  // namespace

Nvfp4Tensor nvfp4_quantize(Nvfp4Variant variant, bool two_level, Round round, uint64_t seed, const float* x,
                           int64_t rows, int64_t cols, uint8_t* scales, uint8_t* codes, float* values,
                           Nvfp4Path path) {
  if (cols % kNvfp4Block != 0)
    throw Error(fmt::format("nvfp4_quantize: {} columns, not a multiple of {}", cols, kNvfp4Block));
  if (round != Round::NearestEven && round != Round::Stochastic)
    throw Error(fmt::format("nvfp4_quantize: elements round with rne or sr, not {}", round_name(round)));
  if (!two_level)  // torchao's single-level form
    return quantize_as<Nvfp4Variant::Torchao, false>(Nvfp4Variant::Torchao, round, seed, x, rows, cols, scales, codes,
                                                     values, path);
  switch (variant) {
    case Nvfp4Variant::Te:
      return quantize_as<Nvfp4Variant::Te, true>(variant, round, seed, x, rows, cols, scales, codes, values, path);
    case Nvfp4Variant::Torchao:
      return quantize_as<Nvfp4Variant::Torchao, true>(variant, round, seed, x, rows, cols, scales, codes, values, path);
    case Nvfp4Variant::Modelopt:
      break;
  }
  return quantize_as<Nvfp4Variant::Modelopt, true>(variant, round, seed, x, rows, cols, scales, codes, values, path);
}

std::unique_ptr<TensorFormat> make_nvfp4_format(Spec& spec) {
  if (spec.name() != "nvfp4") spec.fail("not an NVFP4 format");
  Nvfp4Variant variant = Nvfp4Variant::Te;
  bool variant_given = false;
  if (const auto v = spec.take("variant")) {
    variant_given = true;
    if (*v == "te") variant = Nvfp4Variant::Te;
    else if (*v == "torchao") variant = Nvfp4Variant::Torchao;
    else if (*v == "modelopt") variant = Nvfp4Variant::Modelopt;
    else spec.fail(fmt::format("unknown NVFP4 variant '{}' (te, torchao, modelopt)", *v));
  }
  bool two_level = true;
  if (const auto v = spec.take("tensor_scale")) {
    if (*v == "off") two_level = false;
    else if (*v != "on") spec.fail(fmt::format("tensor_scale must be on or off, got '{}'", *v));
  }
  if (!two_level) {
    if (variant_given && variant != Nvfp4Variant::Torchao)
      spec.fail("tensor_scale=off is torchao's single-level form; TE and ModelOpt always use a tensor scale");
    variant = Nvfp4Variant::Torchao;
  }
  const ElementPolicy pol = take_policy(spec, ElementPolicy{}, false, false);
  if (pol.round != Round::NearestEven && pol.round != Round::Stochastic)
    spec.fail(fmt::format("NVFP4 rounds elements with rne or sr, not {}", round_name(pol.round)));
  spec.finish(kNvfp4Accepted);
  return std::make_unique<Nvfp4Format>(variant, two_level, pol.round, pol.seed);
}

}  // namespace lowbit
