// Spec-string parsing and the named element formats.
#include "formats/spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "formats/error.hpp"

namespace lowbit {

namespace {
std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return r;
}
}  // namespace

Spec::Spec(std::string_view text) : text_(text) {
  if (text.empty()) throw Error("empty format spec");
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t colon = text.find(':', start);
    parts.emplace_back(text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  name_ = lower(parts[0]);
  if (name_.empty()) throw Error(fmt::format("format spec '{}': missing format name", text_));
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.empty()) throw Error(fmt::format("format spec '{}': empty option (double ':')", text_));
    const size_t eq = p.find('=');
    std::string key = lower(p.substr(0, eq));
    std::string value = eq == std::string::npos ? "" : p.substr(eq + 1);
    // "g64" is shorthand for "g=64".
    if (eq == std::string::npos && key.size() > 1 && key[0] == 'g' &&
        std::all_of(key.begin() + 1, key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      value = key.substr(1);
      key = "g";
    }
    for (const auto& [k, v] : options_) {
      if (k == key) throw Error(fmt::format("format spec '{}': option '{}' given twice", text_, key));
    }
    options_.emplace_back(std::move(key), std::move(value));
  }
  used_.assign(options_.size(), false);
}

std::optional<std::string> Spec::take(std::string_view key) {
  for (size_t i = 0; i < options_.size(); ++i) {
    if (options_[i].first == key) {
      used_[i] = true;
      return options_[i].second;
    }
  }
  return std::nullopt;
}

bool Spec::take_flag(std::string_view key) {
  const auto v = take(key);
  if (!v) return false;
  if (!v->empty() && *v != "1" && *v != "true" && *v != "on") {
    if (*v == "0" || *v == "false" || *v == "off") return false;
    fail(fmt::format("option '{}' is a flag (got '{}')", key, *v));
  }
  return true;
}

std::optional<int64_t> Spec::take_int(std::string_view key, int64_t lo, int64_t hi) {
  const auto v = take(key);
  if (!v) return std::nullopt;
  int64_t out = 0;
  const auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || ptr != v->data() + v->size() || v->empty())
    fail(fmt::format("option '{}' needs an integer, got '{}'", key, *v));
  if (out < lo || out > hi) fail(fmt::format("option '{}' = {} is outside [{}, {}]", key, out, lo, hi));
  return out;
}

std::optional<uint64_t> Spec::take_u64(std::string_view key) {
  const auto v = take(key);
  if (!v) return std::nullopt;
  uint64_t out = 0;
  const auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || ptr != v->data() + v->size() || v->empty())
    fail(fmt::format("option '{}' needs an unsigned 64-bit integer, got '{}'", key, *v));
  return out;
}

void Spec::finish(std::string_view accepted) const {
  for (size_t i = 0; i < options_.size(); ++i) {
    if (!used_[i]) {
      const auto& [k, v] = options_[i];
      const std::string shown = k == "g" ? "g" + v : (v.empty() ? k : k + "=" + v);
      fail(fmt::format("unknown option '{}' for {} (accepted: {})", shown, name_, accepted));
    }
  }
}

void Spec::fail(std::string_view why) const { throw Error(fmt::format("format spec '{}': {}", text_, why)); }

Round parse_round(const Spec& spec, std::string_view v) {
  if (v == "rne" || v == "even" || v == "nearest") return Round::NearestEven;
  if (v == "rna" || v == "away") return Round::NearestAway;
  if (v == "rz" || v == "zero" || v == "trunc") return Round::TowardZero;
  if (v == "rd" || v == "down" || v == "floor") return Round::Down;
  if (v == "ru" || v == "up" || v == "ceil") return Round::Up;
  if (v == "sr" || v == "stochastic") return Round::Stochastic;
  spec.fail(fmt::format("unknown rounding '{}' (rne, rna, rz, rd, ru, sr)", v));
}

ElementPolicy take_policy(Spec& spec, ElementPolicy p, bool accept_overflow, bool accept_nan) {
  if (const auto r = spec.take("round")) p.round = parse_round(spec, *r);
  if (const auto s = spec.take_u64("seed")) {
    if (p.round != Round::Stochastic) spec.fail("seed= only applies with round=sr");
    p.seed = *s;
  }
  if (accept_overflow) {
    if (const auto o = spec.take("overflow")) {
      if (*o == "sat" || *o == "saturate") p.overflow = Overflow::Saturate;
      else if (*o == "inf") p.overflow = Overflow::Inf;
      else if (*o == "nan") p.overflow = Overflow::NaN;
      else spec.fail(fmt::format("unknown overflow '{}' (sat, inf, nan)", *o));
    }
  }
  if (accept_nan) {
    if (const auto n = spec.take("nan")) {
      if (*n == "cuda") p.nan = NanMode::Cuda;
      else if (*n == "mldtypes" || *n == "ml_dtypes") p.nan = NanMode::MlDtypes;
      else spec.fail(fmt::format("unknown nan mode '{}' (cuda, mldtypes)", *n));
    }
  }
  return p;
}

std::optional<FloatFormat> named_float_format(std::string_view n) {
  if (n == "fp4_e2m1" || n == "fp4" || n == "e2m1") return fmt_desc::e2m1;
  if (n == "fp6_e2m3" || n == "e2m3") return fmt_desc::e2m3;
  if (n == "fp6_e3m2" || n == "e3m2") return fmt_desc::e3m2;
  if (n == "fp8_e4m3" || n == "e4m3" || n == "fp8_e4m3fn" || n == "e4m3fn") return fmt_desc::e4m3;
  if (n == "fp8_e5m2" || n == "e5m2") return fmt_desc::e5m2;
  if (n == "e8m0" || n == "fp8_e8m0") return fmt_desc::e8m0;
  if (n == "fp16" || n == "half" || n == "e5m10") return fmt_desc::fp16;
  if (n == "bf16" || n == "e8m7") return fmt_desc::bf16;
  if (n == "fp32" || n == "e8m23") return fmt_desc::fp32;
  // Generic "eXmY".
  if (n.size() >= 4 && n[0] == 'e') {
    const size_t m = n.find('m');
    if (m == std::string_view::npos || m < 2 || m + 1 >= n.size()) return std::nullopt;
    int e = 0, mb = 0;
    const auto r1 = std::from_chars(n.data() + 1, n.data() + m, e);
    const auto r2 = std::from_chars(n.data() + m + 1, n.data() + n.size(), mb);
    if (r1.ec != std::errc() || r1.ptr != n.data() + m || r2.ec != std::errc() || r2.ptr != n.data() + n.size())
      return std::nullopt;
    if (e < 1 || e > 8 || mb < 0 || mb > 23) return std::nullopt;
    FloatFormat f{e, mb, (1 << (e - 1)) - 1, true, e >= 5, e >= 5 ? NanEncoding::Ieee : NanEncoding::None};
    return f;
  }
  return std::nullopt;
}

std::string float_format_name(const FloatFormat& f) {
  if (f == fmt_desc::e2m1) return "fp4_e2m1";
  if (f == fmt_desc::e2m3) return "fp6_e2m3";
  if (f == fmt_desc::e3m2) return "fp6_e3m2";
  if (f == fmt_desc::e4m3) return "fp8_e4m3";
  if (f == fmt_desc::e5m2) return "fp8_e5m2";
  if (f == fmt_desc::e8m0) return "e8m0";
  if (f == fmt_desc::fp16) return "fp16";
  if (f == fmt_desc::bf16) return "bf16";
  if (f == fmt_desc::fp32) return "fp32";
  return fmt::format("e{}m{}", f.ebits, f.mbits);
}

void validate_float_format(const FloatFormat& f, std::string_view ctx) {
  if (f.ebits < 1 || f.ebits > 8 || f.mbits < 0 || f.mbits > 23)
    throw Error(fmt::format("{}: exponent bits must be 1..8 and mantissa bits 0..23", ctx));
  if (f.nan == NanEncoding::Ieee && f.ebits < 2) throw Error(fmt::format("{}: IEEE NaN needs >= 2 exponent bits", ctx));
  if ((f.has_inf || f.nan == NanEncoding::Ieee) && !f.has_zero)
    throw Error(fmt::format("{}: Inf/IEEE NaN need a zero binade", ctx));
  if (f.nan == NanEncoding::AllOnes && f.magnitude_bits() < 1) throw Error(fmt::format("{}: no code left for NaN", ctx));
  // Every value must be an exact float32: top value below 2^128, lowest quantum >= 2^-149.
  const int emax = static_cast<int>(f.max_finite_code() >> f.mbits) - f.bias;
  if (emax > 127) throw Error(fmt::format("{}: largest binade 2^{} exceeds float32", ctx, emax));
  if (f.emin() - f.mbits < -149 && f.has_zero && f.subnormals)
    throw Error(fmt::format("{}: smallest subnormal 2^{} is below float32's 2^-149", ctx, f.emin() - f.mbits));
  if (f.emin() - f.mbits < -149) throw Error(fmt::format("{}: values below float32 range", ctx));
}

}  // namespace lowbit
