// Smoothing factors and the SVDQuant smoothing search (see smoothing.hpp).
#include "quantizers/smoothing.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "formats/error.hpp"

namespace lowbit::quant {

VectorF channel_span(const MatrixF& m, Span span) {
  if (span == Span::AbsMax) return m.cwiseAbs().colwise().maxCoeff().transpose();
  const Eigen::VectorXd ms = m.cast<double>().array().square().colwise().mean().transpose();
  return ms.array().sqrt().cast<float>().matrix();
}

VectorF smoothing_factors(const VectorF& span_x, const VectorF& span_w, double alpha, double beta) {
  if (span_x.size() != span_w.size())
    throw Error(fmt::format("smoothing: {} activation spans vs {} weight spans", span_x.size(), span_w.size()));
  VectorF l(span_x.size());
  for (int64_t j = 0; j < l.size(); ++j) {
    const double v = std::pow(static_cast<double>(span_x(j)), alpha) / std::pow(static_cast<double>(span_w(j)), beta);
    l(j) = (v == 0 || !std::isfinite(v) || !std::isfinite(static_cast<float>(v))) ? 1.0f : static_cast<float>(v);
  }
  return l;
}

std::vector<SmoothCandidate> svdquant_smooth_grid(int grid) {
  if (grid < 2) throw Error("smoothing search: grid must be at least 2");
  std::vector<SmoothCandidate> c{{0, 0}};
  for (int k = 1; k < grid; ++k) c.push_back({static_cast<double>(k) / grid, 0});
  for (int k = 1; k < grid; ++k) c.push_back({static_cast<double>(k) / grid, 1 - static_cast<double>(k) / grid});
  return c;
}

VectorF search_smoothing(const LinearProblem& p, const std::vector<SmoothCandidate>& grid, Span span,
                         const std::function<QuantizedLinear(const VectorF&)>& build, nlohmann::json& report) {
  const VectorF sx = channel_span(p.x, span), sw = channel_span(p.w, span);
  const MatrixF y = linear_forward(p.x, p.w, p.bias);
  double best = std::numeric_limits<double>::infinity();
  VectorF best_l = VectorF::Ones(p.x.cols());
  SmoothCandidate best_c{0, 0};
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& c : grid) {
    const VectorF l = smoothing_factors(sx, sw, c.alpha, c.beta);
    const double e = output_sq_error(y, build(l).forward(p.x));
    rows.push_back({c.alpha, c.beta, e});
    if (e < best) {
      best = e;
      best_l = l;
      best_c = c;
    }
  }
  report["smooth_alpha"] = best_c.alpha;
  report["smooth_beta"] = best_c.beta;
  report["smooth_search"] = rows;  // [alpha, beta, output squared error]
  return best_l;
}

QuantizedLinear smoothed_linear(const LinearProblem& p, const VectorF& lambda) {
  LinearProblem t = p;
  t.x = (p.x.array().rowwise() / lambda.transpose().array()).matrix();
  t.w = (p.w.array().rowwise() * lambda.transpose().array()).matrix();
  QuantizedLinear q = rtn_linear(t);
  q.smooth = lambda;
  return q;
}

namespace {
Span take_span(Spec& spec) {
  const std::string s = spec.take("span").value_or("absmax");
  if (s == "absmax") return Span::AbsMax;
  if (s == "rms") return Span::Rms;
  spec.fail("span must be absmax or rms");
}

double parse_double(Spec& spec, const std::string& v, const char* what, double lo, double hi) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !(d >= lo && d <= hi)) spec.fail(fmt::format("{} must be in [{}, {}]", what, lo, hi));
  return d;
}
}  // namespace

QuantizedLinear smoothquant_linear(const LinearProblem& p, Spec& spec) {
  const std::string a = spec.take("alpha").value_or("0.5");
  const Span span = take_span(spec);
  const int grid = static_cast<int>(spec.take_int("grid", 2, 1000).value_or(20));
  nlohmann::json info;
  VectorF lambda;
  if (a == "search") {
    if (spec.take("beta")) spec.fail("beta= is fixed by the search grid");
    lambda = search_smoothing(p, svdquant_smooth_grid(grid), span,
                              [&](const VectorF& l) { return smoothed_linear(p, l); }, info);
  } else {
    const double alpha = parse_double(spec, a, "alpha", 0, 1);
    const auto b = spec.take("beta");
    const double beta = b ? parse_double(spec, *b, "beta", -4, 4) : 1 - alpha;
    lambda = smoothing_factors(channel_span(p.x, span), channel_span(p.w, span), alpha, beta);
    info["smooth_alpha"] = alpha;
    info["smooth_beta"] = beta;
  }
  QuantizedLinear q = smoothed_linear(p, lambda);
  q.info = info;
  return q;
}

}  // namespace lowbit::quant
