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
// element_codes() helper reads the low-nibble layout, so it does not apply to order=hi tensors.
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
#include "formats/codebook.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include "formats/error.hpp"
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

// torch.bucketize(x, bounds, right=False): the first i with bounds[i] >= x, found as ATen does
// with !(bounds[mid] >= x) moving right, so NaN lands past the last bound.
uint32_t bucketize(const float* bounds, int n, float x) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = lo + ((hi - lo) >> 1);
    if (!(bounds[mid] >= x)) lo = mid + 1;
    else hi = mid;
  }
  return static_cast<uint32_t>(lo);
}

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

struct DqState {
  std::vector<uint32_t> codes;
  std::vector<float> scales;
  float offset = 0.0f;
};

class CodebookFormat final : public TensorFormat {
 public:
  CodebookFormat(std::string spec, Kind kind, std::vector<float> table, int code_bits, int64_t block, bool dq,
                 Backend backend, bool hi_nibble, DynamicMapBuild dq_build)
      : spec_(std::move(spec)), kind_(kind), table_(std::move(table)), code_bits_(code_bits), block_(block), dq_(dq),
        backend_(backend), hi_nibble_(hi_nibble) {
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
  }

  std::string spec() const override { return spec_; }
  std::string family() const override { return "codebook"; }
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

  void check_shape(const Shape& shape) const override {
    const int64_t cols = shape.empty() ? 1 : shape.back();
    if (cols % block_ != 0)
      throw Error(fmt::format("{}: last dimension {} of shape {} is not divisible by the block size {}", spec_, cols,
                              shape_str(shape), block_));
  }

  PackedTensor encode(std::span<const float> x, const Shape& shape) const override {
    check_input(x, shape);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    std::vector<float> absmax(static_cast<size_t>(n / block_));
    quantize(x, codes, absmax);

    PackedTensor p;
    p.spec = spec_;
    p.shape = shape;
    p.code_bits = code_bits_;
    Section c{"codes", "u8", shape, {}};
    c.bytes.resize(static_cast<size_t>(packed_bytes(n, code_bits_)));
    if (hi_nibble_) {
      for (int64_t j = 0; j < n; j += 2)
        c.bytes[j / 2] = static_cast<uint8_t>((codes[j] << 4) | (j + 1 < n ? codes[j + 1] : 0));
    } else {
      const std::vector<uint32_t> wide(codes.begin(), codes.end());
      pack_codes(wide, code_bits_, c.bytes);
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

  void decode(const PackedTensor& p, std::span<float> out) const override {
    check_packed(p, out);
    const int64_t n = shape_numel(p.shape);
    const int64_t nb = n / block_;
    std::vector<uint32_t> codes(static_cast<size_t>(n));
    const Section& cs = p.at("codes");
    if (hi_nibble_) {
      for (int64_t i = 0; i < n; ++i) codes[i] = (cs.bytes[i / 2] >> ((i & 1) ? 0 : 4)) & 15u;
    } else {
      unpack_codes(cs.bytes, code_bits_, codes);
    }
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
        const float a = absmax_cuda(v, len);
        const float recip = 1.0f / a;
        for (int64_t i = 0; i < len; ++i) q[i] = bnb_dynamic8_code(dmap_.data(), v[i] * recip);
        d.scales.push_back(a);
      } else {
        const float a = absmax_torch(v, len);
        const float am = a < kTorchTiny ? kTorchTiny : a;
        const bool partial = len < kDqBlock;
        const float recip = 1.0f / am;
        for (int64_t i = 0; i < len; ++i) {
          // bnb's default backend divides in the trailing partial block and multiplies elsewhere.
          const float xn = clamp_unit(partial ? v[i] / am : v[i] * recip);
          q[i] = bucketize(dbounds_.data(), 255, xn);
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
  std::vector<double> mids_;      // exact midpoints of the ascending table
  std::vector<uint32_t> order_;   // stable argsort of the table
  std::vector<float> bounds_;     // fp32 midpoints of the sorted table (torch)
  std::vector<float> dmap_;       // dynamic 8-bit map (dq)
  std::vector<float> dbounds_;    // its fp32 midpoints (dq, torch)
};

}  // namespace

std::unique_ptr<TensorFormat> make_codebook_format(Spec& spec) {
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
  return std::make_unique<CodebookFormat>(spec.text(), kind, std::move(table), code_bits, block, dq, backend, hi,
                                          build);
}

}  // namespace lowbit
