// OCP MX v1.0 block formats (FORMATS.md §4): mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2,
// mxfp4, mxint8. Blocks of 32 consecutive elements along the last axis share one E8M0 scale
// X = 2^(e - 127); element i stores P_i = quantize(V_i / X) and decodes to X * P_i.
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

#include "formats/error.hpp"
#include "formats/factories.hpp"
#include "formats/mx.hpp"
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

struct MxOptions {
  MxScaleRule scale = MxScaleRule::Floor;
  Round round = Round::NearestEven;
  uint64_t seed = 0;
  bool inf_sat = false;
  bool flush_subnormals = false;
  bool int8_min128 = false;
};

// Encodes one block of 32 values starting at flat index flat0; returns the E8M0 byte.
// amax is taken on the |x| bit patterns: for non-negative floats the integer order is the
// numeric order, and every NaN pattern orders above Inf, so one max finds NaN, Inf and amax.
template <MxElement E>
uint8_t encode_block(const float* x, uint64_t flat0, const MxOptions& o, uint32_t* codes) {
  uint32_t amax_bits = 0;
  for (int i = 0; i < kMxBlock; ++i) {
    const uint32_t a = f32_bits(x[i]) & 0x7fffffffu;
    amax_bits = a > amax_bits ? a : amax_bits;
  }
  if (o.flush_subnormals && amax_bits < 0x00800000u) {
    for (int i = 0; i < kMxBlock; ++i) codes[i] = 0;
    return 0x00;
  }
  const uint8_t e = mx_scale_e8m0(f32_from_bits(amax_bits), o.scale, E, o.inf_sat);
  if (o.round == Round::Stochastic) {
    for (int i = 0; i < kMxBlock; ++i)
      codes[i] = mx_encode_element(E, x[i], e, Round::Stochastic, sr_bits(o.seed, flat0 + i), o.int8_min128);
  } else {
    for (int i = 0; i < kMxBlock; ++i) codes[i] = mx_encode_element(E, x[i], e, o.round, 0u, o.int8_min128);
  }
  return e;
}

template <MxElement E>
class MxFormat final : public TensorFormat {
 public:
  MxFormat(std::string name, MxOptions o) : name_(std::move(name)), o_(o) {}

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
    const int64_t cols = shape.empty() ? 1 : shape.back();
    if (cols % kMxBlock != 0)
      throw Error(fmt::format("{}: last dimension {} of shape {} is not divisible by the MX block size {}", spec(),
                              cols, shape_str(shape), kMxBlock));
  }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const RowView rv = row_view(shape);
    const int64_t nb = rv.cols / kMxBlock;
    std::vector<uint32_t> codes(x.size());
    std::vector<uint32_t> scales(static_cast<size_t>(rv.rows * nb));
    const MxOptions o = o_;
#pragma omp parallel for schedule(static) if (rv.rows * rv.cols > kParallelMin)
    for (int64_t r = 0; r < rv.rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t i0 = r * rv.cols + b * kMxBlock;
        scales[r * nb + b] = encode_block<E>(x.data() + i0, static_cast<uint64_t>(i0), o, codes.data() + i0);
      }
    }
    PackedTensor p;
    p.spec = spec();
    p.shape = shape;
    p.code_bits = code_bits();
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(static_cast<int64_t>(codes.size()), p.code_bits)));
    if (!codes.empty()) pack_codes(codes, p.code_bits, c.bytes);  // (memset on a null span is UB)
    p.sections.push_back(std::move(c));
    p.sections.push_back(make_section_u("scales", 8, scale_shape(shape), scales));
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

  // decode(encode(x)) without packing: the same block kernel, decoded in place.
  void fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const override {
    check_input(x, shape);
    if (out.size() != x.size())
      throw Error(fmt::format("{}: output holds {} values, input {}", spec(), out.size(), x.size()));
    const RowView rv = row_view(shape);
    const int64_t nb = rv.cols / kMxBlock;
    const MxOptions o = o_;
#pragma omp parallel for schedule(static) if (rv.rows * rv.cols > kParallelMin)
    for (int64_t r = 0; r < rv.rows; ++r) {
      uint32_t codes[kMxBlock];
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t i0 = r * rv.cols + b * kMxBlock;
        const uint8_t e = encode_block<E>(x.data() + i0, static_cast<uint64_t>(i0), o, codes);
        for (int i = 0; i < kMxBlock; ++i) out[i0 + i] = mx_decode_element(E, codes[i], e);
      }
    }
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
