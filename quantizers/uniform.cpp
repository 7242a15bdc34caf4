// UniformQuantizer (see uniform.hpp): RTN with granularity, clipping, scale dtype, rounding and
// static/dynamic scales. With clip=absmax (or minmax for asym) and dynamic scales it computes
// exactly what the registry's scaled element formats compute (same scale rule, same scale cast,
// same element rounding and Philox indices) — tests/quantizers/test_uniform.cpp checks that bit
// for bit — and adds the calibration knobs the formats do not have.
#include "quantizers/uniform.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "formats/error.hpp"
#include "formats/float_format.hpp"
#include "formats/int_format.hpp"
#include "formats/philox.hpp"

namespace lowbit::quant {
namespace {

enum class Gran { Row, Col, Tensor, Group };
enum class Clip { AbsMax, Percentile, Mse };

struct Config {
  std::string spec;
  bool is_int = true;
  IntFormat fi{8, true};
  FloatFormat ff = fmt_desc::fp32;
  Gran gran = Gran::Row;
  int64_t group = 0;
  bool asym = false;
  Clip clip = Clip::AbsMax;
  double percentile = 100;  // for Clip::Percentile
  double norm = 2;          // for Clip::Mse
  FloatFormat scale_fmt = fmt_desc::fp32;
  Round scale_round = Round::NearestEven;
  bool is_static = false;
  Round round = Round::NearestEven;
  uint64_t seed = 0;

  int32_t qlo() const { return asym ? 0 : -fi.hi(); }
  int32_t qhi() const { return asym ? static_cast<int32_t>(fi.mask()) : fi.hi(); }
  // Denominator of the scale rule: q_max (symmetric) or the number of steps (asym).
  float denom() const {
    if (!is_int) return float_max(ff);
    return asym ? static_cast<float>(fi.mask()) : static_cast<float>(fi.hi());
  }
  int code_bits() const { return is_int ? fi.bits : ff.ebits + ff.mbits + (ff.has_sign ? 1 : 0); }
};

// Scale of one granule: decoded scale (NaN: granule holds NaN/Inf; 0: all zero) and zero point.
struct Scale {
  float dec = 0;
  int32_t zp = 0;
};

// The granule an element (r, c) belongs to, for a rows x cols matrix.
struct Granules {
  Gran gran;
  int64_t rows, cols, group;
  bool shared_rows;  // static group scales: one per column group, shared by all rows
  int64_t count() const {
    switch (gran) {
      case Gran::Tensor: return 1;
      case Gran::Row: return rows;
      case Gran::Col: return cols;
      case Gran::Group: return shared_rows ? cols / group : rows * (cols / group);
    }
    return 0;
  }
  int64_t of(int64_t r, int64_t c) const {
    switch (gran) {
      case Gran::Tensor: return 0;
      case Gran::Row: return r;
      case Gran::Col: return c;
      case Gran::Group: return shared_rows ? c / group : r * (cols / group) + c / group;
    }
    return 0;
  }
};

// numpy's default ("linear") percentile of a sorted vector, P in [0, 100].
float percentile_sorted(const std::vector<float>& v, double p) {
  if (v.empty()) return 0;
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const auto i = static_cast<size_t>(std::floor(pos));
  const size_t j = std::min(i + 1, v.size() - 1);
  const double f = pos - static_cast<double>(i);
  return static_cast<float>(static_cast<double>(v[i]) + f * (static_cast<double>(v[j]) - v[i]));
}

class UniformQuantizer final : public MatrixQuantizer, public std::enable_shared_from_this<UniformQuantizer> {
 public:
  explicit UniformQuantizer(Config c) : c_(std::move(c)) {}

  std::string spec() const override { return c_.spec; }
  bool is_static() const override { return c_.is_static; }

  double bits_per_element(int64_t rows, int64_t cols) const override {
    if (rows <= 0 || cols <= 0) return c_.code_bits();
    const Granules g = granules(rows, cols);
    const double per_granule = c_.scale_fmt.ebits + c_.scale_fmt.mbits + (c_.scale_fmt.has_sign ? 1 : 0) +
                               (c_.asym ? c_.fi.bits : 0);
    return c_.code_bits() + per_granule * static_cast<double>(g.count()) / (static_cast<double>(rows) * cols);
  }

  QuantizerPtr calibrate(const MatrixF& calib) const override {
    if (!c_.is_static) return shared_from_this();
    check_shape(calib);
    for (int64_t i = 0; i < calib.size(); ++i)
      if (!std::isfinite(calib.data()[i]))
        throw Error(fmt::format("{}: calibration data holds NaN or Inf", c_.spec));
    auto q = std::make_shared<UniformQuantizer>(c_);
    q->frozen_ = compute_scales(calib);
    q->frozen_rows_ = calib.rows();
    q->frozen_cols_ = calib.cols();
    q->calibrated_ = true;
    return q;
  }

  MatrixF quantize(const MatrixF& x) const override {
    check_shape(x);
    if (x.size() == 0) return x;
    if (!c_.is_static) return apply(x, compute_scales(x));
    if (!calibrated_) return std::static_pointer_cast<const UniformQuantizer>(calibrate(x))->quantize(x);
    if (x.cols() != frozen_cols_ || (c_.gran == Gran::Row && x.rows() != frozen_rows_))
      throw Error(fmt::format("{}: static scales were calibrated on {} x {} but the input is {} x {}", c_.spec,
                              frozen_rows_, frozen_cols_, x.rows(), x.cols()));
    return apply(x, frozen_);
  }

 private:
  Granules granules(int64_t rows, int64_t cols) const {
    return Granules{c_.gran, rows, cols, c_.group, c_.is_static && c_.gran == Gran::Group};
  }

  void check_shape(const MatrixF& x) const {
    if (c_.gran == Gran::Group && x.cols() % c_.group != 0) {
      std::string divisors;
      for (int64_t d = 1; d <= x.cols() && d <= 4096; ++d)
        if (x.cols() % d == 0) divisors += (divisors.empty() ? "" : ", ") + std::to_string(d);
      throw Error(fmt::format("{}: {} columns do not divide into groups of {} (divisors: {})", c_.spec, x.cols(),
                              c_.group, divisors));
    }
  }

  // Casts a positive fp32 scale to the scale format, as the registry's scaled formats do.
  float cast_scale(float s) const {
    if (c_.scale_fmt == fmt_desc::fp32) return s;
    return decode_float(c_.scale_fmt, encode_float(c_.scale_fmt, s, c_.scale_round, Overflow::Saturate, NanMode::Cuda));
  }

  Scale scale_from_range(float lo, float hi) const {
    Scale sc;
    const float s = c_.asym ? (hi - lo) / c_.denom() : std::max(-lo, hi) / c_.denom();
    sc.dec = cast_scale(s);
    if (c_.asym && sc.dec > 0.0f) sc.zp = round_to_int(-lo / sc.dec, 0, static_cast<int32_t>(c_.fi.mask()));
    return sc;
  }

  // Fake-quantised value of x under scale sc; `index` is the flat element index (SR bits).
  float quant_one(float x, const Scale& sc, uint64_t index) const {
    if (std::isnan(sc.dec)) return std::numeric_limits<float>::quiet_NaN();
    if (sc.dec == 0.0f) return 0.0f;
    const float t = x / sc.dec;
    const uint32_t rb = c_.round == Round::Stochastic ? sr_bits(c_.seed, index) : 0u;
    if (!c_.is_int) return sc.dec * round_to_float(c_.ff, t, c_.round, Overflow::Saturate, NanMode::Cuda, rb);
    if (c_.asym) {
      const int32_t r = round_to_int(t, -(1 << 30), 1 << 30, c_.round, rb);
      const int64_t v = static_cast<int64_t>(r) + sc.zp;
      const int32_t q = static_cast<int32_t>(std::clamp<int64_t>(v, c_.qlo(), c_.qhi()));
      return sc.dec * static_cast<float>(q - sc.zp);
    }
    return sc.dec * static_cast<float>(round_to_int(t, c_.qlo(), c_.qhi(), c_.round, rb));
  }

  // Error of a granule's values under a candidate scale (MSE search), in the search norm.
  double granule_error(const std::vector<float>& v, const Scale& sc) const {
    double e = 0;
    for (float x : v) {
      const double d = std::abs(static_cast<double>(x) - quant_one(x, sc, 0));
      e += c_.norm == 2 ? d * d : std::pow(d, c_.norm);
    }
    return e;
  }

  Scale choose_scale(std::vector<float>& v) const {
    bool bad = false;
    float amax = 0, mn = 0, mx = 0;
    for (float x : v) {
      if (!std::isfinite(x)) bad = true;
      amax = std::max(amax, std::abs(x));
      mn = std::min(mn, x);
      mx = std::max(mx, x);
    }
    if (bad) return Scale{std::numeric_limits<float>::quiet_NaN(), 0};
    // Range (lo, hi) with 0 inside: min(min x, 0), max(max x, 0) for asym, ±absmax for sym.
    float lo = c_.asym ? mn : -amax, hi = c_.asym ? mx : amax;
    if (c_.clip == Clip::Percentile) {
      if (c_.asym) {
        std::sort(v.begin(), v.end());
        lo = std::min(0.0f, percentile_sorted(v, 100 - c_.percentile));
        hi = std::max(0.0f, percentile_sorted(v, c_.percentile));
      } else {
        std::vector<float> a(v.size());
        std::transform(v.begin(), v.end(), a.begin(), [](float x) { return std::abs(x); });
        std::sort(a.begin(), a.end());
        hi = percentile_sorted(a, c_.percentile);
        lo = -hi;
      }
    }
    Scale best = scale_from_range(lo, hi);
    if (c_.clip == Clip::Mse && (hi > lo)) {
      // Shrink grid c = 1 - i/100, i = 0..80 (GPTQ / QuaRot find_params: grid 100, maxshrink 0.8);
      // ties keep the larger range.
      double best_err = granule_error(v, best);
      for (int i = 1; i <= 80; ++i) {
        const float cf = 1.0f - static_cast<float>(i) / 100.0f;
        const Scale sc = scale_from_range(lo * cf, hi * cf);
        const double e = granule_error(v, sc);
        if (e < best_err) {
          best_err = e;
          best = sc;
        }
      }
    }
    return best;
  }

  std::vector<Scale> compute_scales(const MatrixF& x) const {
    const Granules g = granules(x.rows(), x.cols());
    const int64_t n = g.count();
    std::vector<Scale> scales(static_cast<size_t>(n));
    // Gather each granule's values, then choose its scale (granules are independent).
#pragma omp parallel for schedule(dynamic, 16) if (n > 8 && x.size() > (1 << 16))
    for (int64_t k = 0; k < n; ++k) {
      std::vector<float> v;
      gather(x, g, k, v);
      scales[static_cast<size_t>(k)] = choose_scale(v);
    }
    return scales;
  }

  static void gather(const MatrixF& x, const Granules& g, int64_t k, std::vector<float>& v) {
    v.clear();
    const int64_t rows = x.rows(), cols = x.cols();
    switch (g.gran) {
      case Gran::Tensor: v.assign(x.data(), x.data() + x.size()); break;
      case Gran::Row: v.assign(x.data() + k * cols, x.data() + (k + 1) * cols); break;
      case Gran::Col:
        for (int64_t r = 0; r < rows; ++r) v.push_back(x(r, k));
        break;
      case Gran::Group:
        if (g.shared_rows) {
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = k * g.group; c < (k + 1) * g.group; ++c) v.push_back(x(r, c));
        } else {
          const int64_t gpr = cols / g.group, r = k / gpr, c0 = (k % gpr) * g.group;
          v.assign(x.data() + r * cols + c0, x.data() + r * cols + c0 + g.group);
        }
        break;
    }
  }

  MatrixF apply(const MatrixF& x, const std::vector<Scale>& scales) const {
    const Granules g = granules(x.rows(), x.cols());
    MatrixF out(x.rows(), x.cols());
    const int64_t rows = x.rows(), cols = x.cols();
#pragma omp parallel for schedule(static) if (x.size() > (1 << 16))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        out(r, c) = quant_one(x(r, c), scales[static_cast<size_t>(g.of(r, c))], static_cast<uint64_t>(r * cols + c));
    return out;
  }

  Config c_;
  std::vector<Scale> frozen_;
  int64_t frozen_rows_ = 0, frozen_cols_ = 0;
  bool calibrated_ = false;
};

}  // namespace

QuantizerPtr make_uniform_quantizer(Spec& spec) {
  Config c;
  c.spec = spec.text();
  std::string elem = spec.take("elem").value_or("int8");
  if (elem.rfind("int", 0) == 0 || elem.rfind("uint", 0) == 0) {
    const bool is_unsigned = elem[0] == 'u';
    const std::string digits = elem.substr(is_unsigned ? 4 : 3);
    int bits = 0;
    for (char ch : digits) {
      if (ch < '0' || ch > '9' || bits > 100) spec.fail("elem= integers are intB or uintB with B in 2..16");
      bits = bits * 10 + (ch - '0');
    }
    if (digits.empty() || bits < 2 || bits > 16) spec.fail("elem= integers are intB or uintB with B in 2..16");
    c.fi = IntFormat{bits, !is_unsigned};
    c.asym = is_unsigned;
  } else {
    const auto f = named_float_format(elem);
    if (!f) spec.fail(fmt::format("unknown element '{}' (intB, uintB or a float format such as fp8_e4m3)", elem));
    validate_float_format(*f, spec.text());
    if (!f->has_sign) spec.fail("elem= float elements must be signed");
    c.is_int = false;
    c.ff = *f;
  }
  int n_gran = 0;
  if (const auto g = spec.take_int("g", 1, int64_t{1} << 40)) {
    c.gran = Gran::Group;
    c.group = *g;
    ++n_gran;
  }
  if (spec.take_flag("row")) c.gran = Gran::Row, ++n_gran;
  if (spec.take_flag("col")) c.gran = Gran::Col, ++n_gran;
  if (spec.take_flag("tensor")) c.gran = Gran::Tensor, ++n_gran;
  if (n_gran > 1) spec.fail("give one granularity (gN, row, col or tensor)");
  if (spec.take_flag("asym")) {
    if (!c.is_int) spec.fail("asym applies to integer elements");
    c.asym = true;
  }
  if (c.asym) c.fi.is_signed = false;
  if (const auto cl = spec.take("clip")) {
    if (*cl == "absmax" || *cl == "minmax") {
      c.clip = Clip::AbsMax;
    } else if (*cl == "mse") {
      c.clip = Clip::Mse;
    } else if (cl->size() > 1 && (*cl)[0] == 'p') {
      char* end = nullptr;
      const double p = std::strtod(cl->c_str() + 1, &end);
      if (end == cl->c_str() + 1 || *end != '\0' || !(p > 50 && p <= 100))
        spec.fail("clip=pP needs a percentile P in (50, 100], e.g. p99.9");
      c.clip = Clip::Percentile;
      c.percentile = p;
    } else {
      spec.fail("clip must be absmax, minmax, pP (percentile, e.g. p99.9) or mse");
    }
  }
  if (const auto nm = spec.take("norm")) {
    char* end = nullptr;
    c.norm = std::strtod(nm->c_str(), &end);
    if (end == nm->c_str() || *end != '\0' || !(c.norm >= 1 && c.norm <= 8)) spec.fail("norm must be in [1, 8]");
    if (c.clip != Clip::Mse) spec.fail("norm= applies to clip=mse");
  }
  if (const auto s = spec.take("scale")) {
    const auto sf = named_float_format(*s);
    if (!sf || !(*sf == fmt_desc::fp32 || *sf == fmt_desc::fp16 || *sf == fmt_desc::bf16 || *sf == fmt_desc::e4m3 ||
                 *sf == fmt_desc::e8m0))
      spec.fail(fmt::format("scale format '{}' not supported (fp32, fp16, bf16, e4m3, e8m0)", *s));
    c.scale_fmt = *sf;
    if (c.scale_fmt == fmt_desc::e8m0) c.scale_round = Round::Up;  // never clip the granule max
  }
  c.is_static = spec.take_flag("static");
  const ElementPolicy pol = take_policy(spec, ElementPolicy{}, false, false);
  c.round = pol.round;
  c.seed = pol.seed;
  spec.finish("elem=intB|uintB|<float>, gN|row|col|tensor, asym, clip=absmax|minmax|pP|mse, norm=, "
              "scale=fp32|fp16|bf16|e4m3|e8m0, static, round=, seed=");
  return std::make_shared<UniformQuantizer>(std::move(c));
}

}  // namespace lowbit::quant
