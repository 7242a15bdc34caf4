// QuaRTZ linear quantizer (see quartz.hpp).
#include "quantizers/quartz.hpp"

#include <fmt/format.h>

#include "formats/error.hpp"
#include "formats/registry.hpp"

namespace lowbit::quant {

QuantizedLinear quartz_linear(const LinearProblem& p, Spec& spec) {
  const int64_t g = spec.take_int("g", 1, int64_t{1} << 20).value_or(16);
  const std::string s8 = spec.take("s8").value_or("token");
  const std::string calib = spec.take("calib").value_or("absmax");
  const std::string round = spec.take("round").value_or("trunc");
  const std::string w = spec.take("w").value_or("given");
  const std::string aspec = fmt::format("lzs4:g{}:s8={}:calib={}:round={}", g, s8, calib, round);
  LinearProblem t = p;
  t.aq = make_quantizer(aspec);  // validates s8/calib/round through the format's own parser
  // The activation format is the algorithm's own; a given activation quantizer other than none
  // must be the same LZS format (compared by parameters: spec strings are not canonical).
  if (p.aq && !p.aq->is_identity()) {
    bool same = false;
    try {
      const FormatParams given = make_format(p.aq->spec())->params(), own = make_format(aspec)->params();
      same = std::holds_alternative<LzsParams>(given) && std::get<LzsParams>(given) == std::get<LzsParams>(own);
    } catch (const Error&) {  // not a registry format: not the same
    }
    if (!same)
      throw Error(fmt::format("quartz quantizes activations as {} (its options g, s8, calib, round); the activation "
                              "format given, '{}', is another: give none or the same format",
                              aspec, p.aq->spec()));
  }
  if (w == "int4_row") t.wq = make_quantizer("int4:row");
  else if (w == "int4_g64") t.wq = make_quantizer("int4:g64");
  else if (w == "lzs") t.wq = make_quantizer(fmt::format("lzs4:g{}:s8=token:calib={}:round={}", g, calib, round));
  else if (w != "given") spec.fail("w must be given, int4_row, int4_g64 or lzs");
  QuantizedLinear q = rtn_linear(t);
  q.info["act_format"] = aspec;
  q.info["weight_format"] = t.wq->spec();
  return q;
}

}  // namespace lowbit::quant
