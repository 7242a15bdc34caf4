// Format spec strings: "name[:option[=value]]..." e.g. "int4:g64", "mxfp8_e4m3:scale=rceil",
// "fp8_e4m3:round=sr:seed=7". Parsing is strict: every option must be consumed by the format's
// factory, otherwise the spec is rejected with the list of options that format accepts.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/float_format.hpp"
#include "formats/rounding.hpp"

namespace lowbit {

class Spec {
 public:
  explicit Spec(std::string_view text);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }

  // Takes an option (marks it consumed). Flags ("asym") have an empty value.
  std::optional<std::string> take(std::string_view key);
  bool take_flag(std::string_view key);
  std::optional<int64_t> take_int(std::string_view key, int64_t lo, int64_t hi);
  std::optional<uint64_t> take_u64(std::string_view key);
  // Throws lowbit::Error naming the first unconsumed option and the accepted ones.
  void finish(std::string_view accepted) const;
  [[noreturn]] void fail(std::string_view why) const;

 private:
  std::string text_;
  std::string name_;
  std::vector<std::pair<std::string, std::string>> options_;
  std::vector<bool> used_;
};

// Rounding / overflow / NaN policy of an element codec plus the stochastic-rounding seed.
struct ElementPolicy {
  Round round = Round::NearestEven;
  Overflow overflow = Overflow::Saturate;
  NanMode nan = NanMode::Cuda;
  uint64_t seed = 0;
};

// Consumes round=, seed=, overflow=, nan= (whichever `accept` allows) into a policy.
ElementPolicy take_policy(Spec& spec, ElementPolicy defaults, bool accept_overflow = true, bool accept_nan = true);
Round parse_round(const Spec& spec, std::string_view value);

// Named element formats: "fp4_e2m1" (alias "fp4", "e2m1"), "fp6_e2m3", "fp6_e3m2", "fp8_e4m3",
// "fp8_e5m2", "e8m0", "fp16", "bf16", "fp32", and any "eXmY" (IEEE-style: bias 2^(X-1)-1,
// Inf/NaN in the top binade when X >= 5, else no Inf/NaN; options may refine it).
std::optional<FloatFormat> named_float_format(std::string_view name);
std::string float_format_name(const FloatFormat& f);
// Throws if the format cannot be represented exactly in float32 or is malformed.
void validate_float_format(const FloatFormat& f, std::string_view context);

}  // namespace lowbit
