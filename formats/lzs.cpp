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
#include "formats/lzs.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "formats/error.hpp"
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

class LzsFormat final : public TensorFormat {
 public:
  LzsFormat(std::string spec, int64_t group, bool per_token, Calib calib, LzsRound round)
      : spec_(std::move(spec)), group_(group), per_token_(per_token), calib_(calib), round_(round) {}

  std::string spec() const override { return spec_; }
  std::string family() const override { return "lzs"; }
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

  void check_shape(const Shape& shape) const override {
    const int64_t cols = shape.empty() ? 1 : shape.back();
    if (cols % group_ != 0)
      throw Error(fmt::format("{}: last dimension {} of shape {} is not divisible by the group size {}", spec_, cols,
                              shape_str(shape), group_));
  }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t cols = row_view(shape).cols;
    const std::vector<float> s8 = scales(x, shape);
    const int64_t ng = n / group_;
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
    const std::vector<float> s8 = scales(x, shape);
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

  // Stage-1 scale per tensor or per row (fp32).
  std::vector<float> scales(std::span<const float> x, const Shape& shape) const {
    const RowView rv = row_view(shape);
    std::vector<RowStats> st(static_cast<size_t>(rv.rows));
    const bool minmax = calib_ == Calib::Minmax;
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(x.size()) > kParallelMin)
    for (int64_t r = 0; r < rv.rows; ++r) {
      RowStats s;
      const float* xr = x.data() + r * rv.cols;
      for (int64_t j = 0; j < rv.cols; ++j) {
        const float v = xr[j];
        if (minmax) {
          s.lo = s.any ? nmin(s.lo, v) : v;
          s.hi = s.any ? nmax(s.hi, v) : v;
        } else {
          s.hi = s.any ? nmax(s.hi, std::fabs(v)) : std::fabs(v);
        }
        s.any = true;
      }
      st[r] = s;
    }
    auto scale_of = [&](const RowStats& s) {
      if (!s.any) return 0.0f;
      return minmax ? (s.hi - s.lo) / 255.0f : s.hi / 128.0f;
    };
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
};

}  // namespace

std::unique_ptr<TensorFormat> make_lzs_format(Spec& spec) {
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
  return std::make_unique<LzsFormat>(spec.text(), group, per_token, calib, round);
}

}  // namespace lowbit
