// QuaRTZ linear quantizer (see quartz.hpp).
#include "quantizers/quartz.hpp"

#include <fmt/format.h>

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
  if (w == "int4_row") t.wq = make_quantizer("int4:row");
  else if (w == "int4_g64") t.wq = make_quantizer("int4:g64");
  else if (w == "lzs") t.wq = make_quantizer(fmt::format("lzs4:g{}:s8=token:calib={}:round={}", g, calib, round));
  else if (w != "given") spec.fail("w must be given, int4_row, int4_g64 or lzs");
  QuantizedLinear q = rtn_linear(t);
  q.info["act_format"] = aspec;
  q.info["replaced_act_quantizer"] = p.aq ? p.aq->spec() : std::string("(none given)");
  q.info["weight_format"] = t.wq->spec();
  return q;
}

}  // namespace lowbit::quant
