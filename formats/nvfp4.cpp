// NVFP4 (FORMATS.md §5): 16 E2M1 elements per block along the last axis, one E4M3 block scale,
// one FP32 tensor scale, with the exact fp32 operation order of TE, torchao or ModelOpt
// (formats/nvfp4.hpp has the formulas and the choices for degenerate tensors).
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

#include "formats/error.hpp"
#include "formats/factories.hpp"
#include "formats/nvfp4.hpp"
#include "formats/philox.hpp"
#include "formats/spec.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

namespace {

constexpr const char* kNvfp4Accepted = "variant=te|torchao|modelopt, tensor_scale=on|off, round=rne|sr, seed=N";
constexpr int64_t kParallelMin = 65536;

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
    const int64_t cols = shape.empty() ? 1 : shape.back();
    if (cols % kNvfp4Block != 0)
      throw Error(fmt::format("{}: last dimension {} of shape {} is not divisible by the NVFP4 block size {}", spec(),
                              cols, shape_str(shape), kNvfp4Block));
  }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    std::vector<uint32_t> codes(x.size());
    std::vector<uint32_t> scales;
    const Nvfp4Tensor t = run(x, shape, &codes, &scales, {});
    PackedTensor p;
    p.spec = spec();
    p.shape = shape;
    p.code_bits = 4;
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(static_cast<int64_t>(codes.size()), 4)));
    if (!codes.empty()) pack_codes(codes, 4, c.bytes);  // (memset on a null span is UB)
    p.sections.push_back(std::move(c));
    p.sections.push_back(make_section_u("scales", 8, scale_shape(shape), scales));
    if (two_level_) {
      const float ts[1] = {t.stored};
      p.sections.push_back(make_section_f32("tensor_scale", {1}, ts));
    }
    return p;
  }

  void decode(const PackedTensor& p, std::span<float> out) const override {
    check_packed(p, out);
    const Section& s = p.at("scales");
    const Shape want = scale_shape(p.shape);
    if (s.dtype != "u8" || s.shape != want)
      throw Error(fmt::format("{}: 'scales' section is {} {}, expected u8 {}", spec(), s.dtype, shape_str(s.shape),
                              shape_str(want)));
    const std::vector<uint32_t> scales = section_u32(s);
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
    run(x, shape, nullptr, nullptr, out);
  }

 private:
  // Dequantised value of every E2M1 code under one block factor.
  static void block_lut(float factor, float lut[16]) {
    for (uint32_t c = 0; c < 16; ++c) lut[c] = decode_float(fmt_desc::e2m1, c) * factor;
  }

  static Shape scale_shape(const Shape& shape) {
    Shape s = shape.empty() ? Shape{1} : shape;
    s.back() /= kNvfp4Block;
    return s;
  }

  // The encoder: writes codes and scales (encode) or dequantised values (fake_quant).
  Nvfp4Tensor run(std::span<const float> x, const Shape& shape, std::vector<uint32_t>* codes,
                  std::vector<uint32_t>* scales, std::span<float> out) const {
    const RowView rv = row_view(shape);
    const int64_t n = static_cast<int64_t>(x.size());
    // Tensor amax on |x| bit patterns: integer order is numeric order, NaN above Inf.
    uint32_t amax_bits = 0;
    if (two_level_) {
#pragma omp parallel for schedule(static) reduction(max : amax_bits) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t a = f32_bits(x[i]) & 0x7fffffffu;
        amax_bits = a > amax_bits ? a : amax_bits;
      }
    }
    const Nvfp4Tensor t = nvfp4_tensor(variant_, two_level_, f32_from_bits(amax_bits));
    if (scales) scales->assign(static_cast<size_t>(rv.rows * (rv.cols / kNvfp4Block)), 0u);
    if (!two_level_) {
      run_blocks<Nvfp4Variant::Torchao, false>(t, x, rv, codes, scales, out);
    } else if (variant_ == Nvfp4Variant::Te) {
      run_blocks<Nvfp4Variant::Te, true>(t, x, rv, codes, scales, out);
    } else if (variant_ == Nvfp4Variant::Torchao) {
      run_blocks<Nvfp4Variant::Torchao, true>(t, x, rv, codes, scales, out);
    } else {
      run_blocks<Nvfp4Variant::Modelopt, true>(t, x, rv, codes, scales, out);
    }
    return t;
  }

  // The hot loop, specialised per variant (DESIGN.md principle 6).
  template <Nvfp4Variant V, bool TwoLevel>
  void run_blocks(const Nvfp4Tensor& t, std::span<const float> x, const RowView& rv, std::vector<uint32_t>* codes,
                  std::vector<uint32_t>* scales, std::span<float> out) const {
    const int64_t nb = rv.cols / kNvfp4Block;
    const Round round = round_;
    const uint64_t seed = seed_;
#pragma omp parallel for schedule(static) if (rv.rows * rv.cols > kParallelMin)
    for (int64_t r = 0; r < rv.rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t i0 = r * rv.cols + b * kNvfp4Block;
        uint32_t bmax = 0;
        for (int i = 0; i < kNvfp4Block; ++i) {
          const uint32_t a = f32_bits(x[i0 + i]) & 0x7fffffffu;
          bmax = a > bmax ? a : bmax;
        }
        const Nvfp4BlockScale bs = nvfp4_block_scale(t, f32_from_bits(bmax));
        if (scales) (*scales)[r * nb + b] = bs.code;
        float lut[16];  // e2m1(c) * block factor, the same products decode() forms
        if (!codes) block_lut(nvfp4_block_factor(t, bs.code), lut);
        for (int i = 0; i < kNvfp4Block; ++i) {
          const int64_t k = i0 + i;
          const uint32_t rb = round == Round::Stochastic ? sr_bits(seed, static_cast<uint64_t>(k)) : 0u;
          const uint32_t c = nvfp4_encode_element_as<V, TwoLevel>(t, bs, x[k], round, rb);
          if (codes) (*codes)[k] = c;
          else out[k] = lut[c];
        }
      }
    }
  }

  Nvfp4Variant variant_;
  bool two_level_;
  Round round_;
  uint64_t seed_;
};

}  // namespace

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
