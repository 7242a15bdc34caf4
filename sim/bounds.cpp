// Prop 4.1 / Prop 4.2 (SVDQuant, ALGORITHMS.md §2.7) and the QuaRTZ error comparison (§3.2);
// see bounds.hpp for the definitions.
#include "sim/bounds.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numbers>

#include "formats/error.hpp"
#include "formats/lzs.hpp"
#include "formats/registry.hpp"
#include "formats/spec.hpp"
#include "sim/synthetic.hpp"

namespace lowbit {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kUnit = 0x1p-53;  // unit roundoff of double

double slack_of(double bound, double value) {
  if (value > 0) return bound / value;
  return bound > 0 ? kInf : kNan;
}

// Median of the non-NaN values (mean of the two middle ones for an even count); NaN if none.
double median(std::vector<double> v) {
  std::erase_if(v, [](double d) { return std::isnan(d); });
  if (v.empty()) return kNan;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] == v[h] ? v[h] : 0.5 * (v[h - 1] + v[h]));
}

void check_matrix(const quant::MatrixF& a, const char* what) {
  if (a.rows() == 0 || a.cols() == 0) throw Error(fmt::format("Prop 4.1: {} is empty ({} x {})", what, a.rows(), a.cols()));
  if (!a.allFinite()) {
    const int64_t bad = (!a.array().isFinite()).count();
    throw Error(fmt::format("Prop 4.1: {} ({} x {}) holds {} non-finite values", what, a.rows(), a.cols(), bad));
  }
}

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

// ---- Prop 4.1 ------------------------------------------------------------------------------

namespace {

// The weight side of Prop 4.1, shared by every sample.
struct WeightSide {
  quant::MatrixD w, qw;
  double w_norm = 0, w_err = 0, qw_norm = 0;
  WeightSide(const quant::MatrixF& wf, const quant::MatrixF& qwf)
      : w(wf.cast<double>()), qw(qwf.cast<double>()), w_norm(w.norm()), w_err((w - qw).norm()), qw_norm(qw.norm()) {}
};

Prop41Sample terms(const quant::MatrixF& x, const quant::MatrixF& qx, const WeightSide& ws) {
  const quant::MatrixD xd = x.cast<double>(), qxd = qx.cast<double>();
  Prop41Sample s;
  s.rows = x.rows();
  // Products of floats are exact in double; only the sums round.
  s.lhs = (xd * ws.w.transpose() - qxd * ws.qw.transpose()).norm();
  s.x_norm = xd.norm();
  s.x_err = (xd - qxd).norm();
  s.w_norm = ws.w_norm;
  s.w_err = ws.w_err;
  s.rhs = s.x_norm * s.w_err + s.x_err * (s.w_norm + s.w_err);
  // Floating-point allowance (docs/bounds.md, "Prop 4.1 tolerance"):
  // * each GEMM entry is a dot product of length m with exact products: |fl(a·b) − a·b| ≤
  //   γ_m Σ|a_k||b_k| ≤ γ_m‖a‖‖b‖ (Higham, Accuracy and Stability of Numerical Algorithms, §3.1;
  //   Cauchy–Schwarz), so the computed XWᵀ and Q(X)Q(W)ᵀ are within γ_m‖X‖_F‖W‖_F and
  //   γ_m‖Q(X)‖_F‖Q(W)‖_F of the exact ones in Frobenius norm: fp_allowance;
  // * every norm is a sum of N ≤ max(b·n, b·m, n·m) non-negative terms that are exact (float
  //   differences and their squares fit a double) or carry one rounding, then a sqrt: relative
  //   error ≤ γ_{N+4}; floored at 1e-12.
  const auto gamma = [](double k) { return k * kUnit / (1.0 - k * kUnit); };
  const double terms_n = static_cast<double>(std::max({x.rows() * ws.w.rows(), x.size(), ws.w.size()}));
  s.fp_allowance = gamma(static_cast<double>(x.cols())) * (s.x_norm * s.w_norm + qxd.norm() * ws.qw_norm);
  s.rel_tol = std::max(1e-12, gamma(terms_n + 4));
  s.held = s.lhs <= (s.rhs + s.fp_allowance) * (1.0 + s.rel_tol);
  s.slack = slack_of(s.rhs, s.lhs);
  return s;
}

}  // namespace

Prop41Sample prop41_terms(const quant::MatrixF& x, const quant::MatrixF& qx, const quant::MatrixF& w,
                          const quant::MatrixF& qw) {
  if (x.rows() != qx.rows() || x.cols() != qx.cols() || w.rows() != qw.rows() || w.cols() != qw.cols() ||
      x.cols() != w.cols())
    throw Error(fmt::format("Prop 4.1: shapes X {}x{}, Q(X) {}x{}, W {}x{}, Q(W) {}x{} do not match", x.rows(),
                            x.cols(), qx.rows(), qx.cols(), w.rows(), w.cols(), qw.rows(), qw.cols()));
  return terms(x, qx, WeightSide(w, qw));
}

Prop41Result check_prop41(const quant::MatrixF& x, const quant::MatrixF& w, const quant::QuantizerPtr& qx,
                          const quant::QuantizerPtr& qw, int64_t sample_rows) {
  if (!qx || !qw) throw Error("Prop 4.1: missing quantizer");
  check_matrix(x, "X (activations)");
  check_matrix(w, "W (weight)");
  if (x.cols() != w.cols())
    throw Error(fmt::format("Prop 4.1: X is {} x {} but W is {} x {} (out x in): in-features differ ({} vs {})",
                            x.rows(), x.cols(), w.rows(), w.cols(), x.cols(), w.cols()));
  if (sample_rows < 1) throw Error(fmt::format("Prop 4.1: sample rows must be >= 1 (got {})", sample_rows));
  Prop41Result r;
  r.x_quantizer = qx->spec();
  r.w_quantizer = qw->spec();
  r.b = x.rows();
  r.m = x.cols();
  r.n = w.rows();
  r.sample_rows = sample_rows;
  // Quantizer errors name the side they come from.
  const auto apply = [](const char* side, const quant::MatrixF& m, auto&& f) {
    try {
      return f();
    } catch (const Error& e) {
      throw Error(fmt::format("Prop 4.1: quantising {} ({} x {}): {}", side, m.rows(), m.cols(), e.what()));
    }
  };
  const quant::QuantizerPtr qxc = apply("X", x, [&] { return qx->calibrate(x); });
  const quant::MatrixF qwm = apply("W", w, [&] { return qw->quantize(w); });
  const quant::MatrixF qxm = apply("X", x, [&] { return qxc->quantize(x); });
  if (qwm.rows() != w.rows() || qwm.cols() != w.cols() || qxm.rows() != x.rows() || qxm.cols() != x.cols())
    throw Error("Prop 4.1: a quantizer changed the shape of its input");
  const WeightSide ws(w, qwm);
  r.whole = terms(x, qxm, ws);
  r.whole.rows = r.b;
  std::vector<double> slacks;
  for (int64_t r0 = 0; r0 < r.b; r0 += sample_rows) {
    const int64_t rows = std::min(sample_rows, r.b - r0);
    const quant::MatrixF xs = x.middleRows(r0, rows);
    Prop41Sample s = terms(xs, apply("X", xs, [&] { return qxc->quantize(xs); }), ws);
    s.row_begin = r0;
    r.samples_held += s.held;
    slacks.push_back(s.slack);
    r.samples.push_back(s);
  }
  r.all_held = r.whole.held && r.samples_held == static_cast<int64_t>(r.samples.size());
  r.min_slack = kNan;
  for (const double s : slacks)
    if (!std::isnan(s)) r.min_slack = std::isnan(r.min_slack) ? s : std::min(r.min_slack, s);
  r.median_slack = median(slacks);
  r.output = analyze_output(quant::linear_forward(x, w), quant::linear_forward(qxm, qwm));
  return r;
}

// ---- Prop 4.2 ------------------------------------------------------------------------------

std::vector<Prop42Row> check_prop42(const Prop42Options& opt) {
  if (opt.sizes.empty() || opt.qmax.empty() || opt.groups.empty())
    throw Error("Prop 4.2: sizes, q_max and groups must each hold at least one value");
  if (opt.trials < 1) throw Error(fmt::format("Prop 4.2: trials must be >= 1 (got {})", opt.trials));
  for (const int q : opt.qmax)
    if (q < 1) throw Error(fmt::format("Prop 4.2: q_max must be >= 1 (got {})", q));
  for (const int64_t n : opt.sizes) {
    if (n < 2 || n > (int64_t{1} << 31)) throw Error(fmt::format("Prop 4.2: size {} is outside 2..2^31", n));
    for (const int64_t g : opt.groups) {
      if (g < 0 || g == 1) throw Error(fmt::format("Prop 4.2: group {} must be 0 (per tensor) or >= 2", g));
      if (g > 0 && n % g != 0) throw Error(fmt::format("Prop 4.2: group {} does not divide size {}", g, n));
    }
  }
  std::vector<Prop42Row> out;
  for (const int64_t n : opt.sizes) {
    const size_t nq = opt.qmax.size(), ng = opt.groups.size();
    // Per (group, qmax): Σ_t ‖R − Q(R)‖, per-trial ratio extremes.
    std::vector<double> err_sum(nq * ng, 0.0), rmin(nq * ng, kInf), rmax(nq * ng, 0.0);
    double norm_sum = 0;
    for (int t = 0; t < opt.trials; ++t) {
      const uint64_t seed_t = splitmix64(splitmix64(splitmix64(opt.seed) ^ static_cast<uint64_t>(n)) ^ static_cast<uint64_t>(t));
      const std::vector<float> rf = synthetic_tensor("gaussian", {n}, seed_t);
      double sq = 0;
      for (const float v : rf) sq += static_cast<double>(v) * v;
      const double norm = std::sqrt(sq);
      norm_sum += norm;
      for (size_t gi = 0; gi < ng; ++gi) {
        const int64_t G = opt.groups[gi] ? opt.groups[gi] : n;
        for (size_t qi = 0; qi < nq; ++qi) {
          const double qmax = opt.qmax[qi];
          double esq = 0;
          for (int64_t g0 = 0; g0 < n; g0 += G) {
            double amax = 0;
            for (int64_t i = g0; i < g0 + G; ++i) amax = std::max(amax, std::abs(static_cast<double>(rf[i])));
            const double s = amax / qmax;
            if (s == 0) continue;  // all-zero group: Q = R exactly
            for (int64_t i = g0; i < g0 + G; ++i) {
              const double r = rf[i];
              const double e = r - s * std::nearbyint(r / s);  // RNE (default rounding mode)
              esq += e * e;
            }
          }
          const double en = std::sqrt(esq);
          const size_t k = gi * nq + qi;
          err_sum[k] += en;
          rmin[k] = std::min(rmin[k], en / norm);
          rmax[k] = std::max(rmax[k], en / norm);
        }
      }
    }
    for (size_t gi = 0; gi < ng; ++gi) {
      for (size_t qi = 0; qi < nq; ++qi) {
        const size_t k = gi * nq + qi;
        Prop42Row row;
        row.n = n;
        row.qmax = opt.qmax[qi];
        row.group = opt.groups[gi];
        row.bound_size = row.group ? row.group : n;
        row.trials = opt.trials;
        row.mean_err_norm = err_sum[k] / opt.trials;
        row.mean_norm = norm_sum / opt.trials;
        row.ratio = row.mean_err_norm / row.mean_norm;
        row.ratio_min = rmin[k];
        row.ratio_max = rmax[k];
        const double N = static_cast<double>(row.bound_size);
        row.bound = std::sqrt(std::log(N) * std::numbers::pi) / row.qmax;
        row.c = std::sqrt(std::numbers::pi * std::log(N) / N);
        row.c_meas = row.ratio * row.qmax / std::sqrt(N);
        row.held = row.ratio <= row.bound;
        row.slack = slack_of(row.bound, row.ratio);
        out.push_back(row);
      }
    }
  }
  return out;
}

// ---- QuaRTZ --------------------------------------------------------------------------------

QuartzResult check_quartz(std::span<const float> x, int64_t rows, int64_t cols, const std::string& spec) {
  if (rows <= 0 || cols <= 0 || static_cast<int64_t>(x.size()) != rows * cols)
    throw Error(fmt::format("QuaRTZ analysis: {} values for a {} x {} tensor", x.size(), rows, cols));
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]))
      throw Error(fmt::format("QuaRTZ analysis: element {} (row {}, column {}) is not finite", i,
                              static_cast<int64_t>(i) / cols, static_cast<int64_t>(i) % cols));
  const std::unique_ptr<TensorFormat> fmt_lzs = make_format(spec);
  if (fmt_lzs->family() != "lzs")
    throw Error(fmt::format("QuaRTZ analysis needs an lzs4 format, got '{}' (family {})", spec, fmt_lzs->family()));
  QuartzResult r;
  r.format = fmt_lzs->spec();
  r.rows = rows;
  r.cols = cols;
  {  // The options, parsed as formats/lzs.cpp parses them (make_format has validated the spec).
    Spec sp(spec);
    r.group = sp.take_int("g", 1, int64_t{1} << 40).value_or(16);
    r.per_token = sp.take("s8").value_or("tensor") == "token";
    r.round = sp.take("round").value_or("trunc");
  }
  const LzsRound lround = r.round == "rne" ? LzsRound::Rne : LzsRound::Trunc;
  const Shape shape{rows, cols};
  fmt_lzs->check_shape(shape);

  const PackedTensor p = fmt_lzs->encode(x, shape);
  std::vector<float> lzs_vals(x.size());
  fmt_lzs->decode(p, lzs_vals);
  const std::vector<uint32_t> codes = fmt_lzs->unpacked_codes(p);
  const std::vector<uint32_t> flags = section_u32(p.at("flags"));
  const std::vector<float> s8 = section_f32(p.at("s8"));
  if (static_cast<int64_t>(s8.size()) != (r.per_token ? rows : 1) ||
      static_cast<int64_t>(flags.size()) != rows * cols / r.group)
    throw Error(fmt::format("QuaRTZ analysis: {} packed {} s8 and {} FLAGs for a {} x {} tensor", r.format, s8.size(),
                            flags.size(), rows, cols));
  r.flags = lzs_flags(p);

  const std::string int4_spec = r.per_token ? "int4:row" : "int4:tensor";
  const std::unique_ptr<TensorFormat> fmt4 = make_format(int4_spec);
  r.int4_format = fmt4->spec();
  const PackedTensor p4 = fmt4->encode(x, shape);
  std::vector<float> int4_vals(x.size());
  fmt4->decode(p4, int4_vals);
  const Section& sc4 = p4.at("scales");
  if (sc4.dtype != "u32") throw Error(fmt::format("QuaRTZ analysis: {} scales are {}, expected fp32 bits", int4_spec, sc4.dtype));
  std::vector<float> s4;
  for (const uint32_t b : section_u32(sc4)) s4.push_back(std::bit_cast<float>(b));
  if (static_cast<int64_t>(s4.size()) != (r.per_token ? rows : 1))
    throw Error(fmt::format("QuaRTZ analysis: {} has {} scales for {} rows", int4_spec, s4.size(), rows));

  r.s8_min = *std::min_element(s8.begin(), s8.end());
  r.s8_max = *std::max_element(s8.begin(), s8.end());
  double eq8 = 0, elzs = 0, etot = 0, eq4 = 0, eq4b = 0, lzs_s8 = 0, q8_s8 = 0, ratio_sum = 0;
  int64_t ratio_n = 0, ge8 = 0, trunc = 0, triangle_bad = 0;
  const int64_t G = r.group;
  for (int64_t row = 0; row < rows; ++row) {
    const float s = s8[r.per_token ? row : 0];
    const float s4r = s4[r.per_token ? row : 0];
    for (int64_t g0 = 0; g0 < cols; g0 += G) {
      const int64_t gi = (row * cols + g0) / G;
      const int flag = static_cast<int>(flags[static_cast<size_t>(gi)]);
      uint32_t mag_or = 0;
      for (int64_t j = g0; j < g0 + G; ++j) {
        const int32_t q8 = lzs_quantize_int8(x[row * cols + j], s);
        mag_or |= static_cast<uint32_t>(q8 < 0 ? -q8 : q8);
      }
      if (lzs_flag(mag_or) != flag)
        throw Error(fmt::format("QuaRTZ analysis: {} row {} group {}: packed FLAG {} but the int8 stage gives {}",
                                r.format, row, g0 / G, flag, lzs_flag(mag_or)));
      for (int64_t j = g0; j < g0 + G; ++j) {
        const int64_t i = row * cols + j;
        const int32_t q8 = lzs_quantize_int8(x[i], s);
        const uint32_t code = codes[static_cast<size_t>(i)];
        if (lzs_encode(q8, flag, lround) != code)
          throw Error(fmt::format("QuaRTZ analysis: {} element ({}, {}): packed code {} but the int8 stage gives {}",
                                  r.format, row, j, code, lzs_encode(q8, flag, lround)));
        const int32_t qh = lzs_decode_int(code, flag);
        const double xv = x[i];
        const double a = s * static_cast<float>(q8);  // Q8(x), fp32 as the codec decodes
        const double b = lzs_vals[static_cast<size_t>(i)];
        // Triangle inequality element by element: the differences of floats are exact in double
        // (for exponent gaps up to 29 bits), the sum of two adds one rounding.
        triangle_bad += std::abs(xv - b) > (std::abs(xv - a) + std::abs(a - b)) * (1.0 + 4 * kUnit);
        eq8 += std::abs(xv - a);
        elzs += std::abs(a - b);
        etot += std::abs(xv - b);
        eq4 += std::abs(xv - static_cast<double>(int4_vals[static_cast<size_t>(i)]));
        eq4b += 0.5 * static_cast<double>(s4r);
        lzs_s8 += std::abs(q8 - qh);
        if (s > 0) {
          q8_s8 += std::abs(xv / s - q8);
          ratio_sum += static_cast<double>(s4r) / s;
          ++ratio_n;
        }
        ge8 += (q8 < 0 ? -q8 : q8) >= 8;
        trunc += q8 != qh;
      }
    }
  }
  const double n = static_cast<double>(rows * cols);
  r.e_q8 = eq8 / n;
  r.e_lzs = elzs / n;
  r.e_total = etot / n;
  r.e_q4_mean = eq4 / n;
  r.e_q4_bound = eq4b / n;
  r.e_lzs_in_s8 = lzs_s8 / n;
  r.e_q8_in_s8 = q8_s8 / n;
  r.s4_over_s8 = ratio_n ? ratio_sum / static_cast<double>(ratio_n) : kNan;
  // E_q8 + E_LZS < E_q4 with E_q8 = s8/2 and E_q4 = s4/2: E_LZS < (s4/s8 − 1)/2 · s8.
  r.threshold_paper = 7.5;                  // s4 = 16·s8
  r.threshold_spec = 127.0 / 14.0 - 0.5;    // s4/s8 = 127/7 (ALGORITHMS.md §3.2 critique)
  r.threshold_actual = 0.5 * r.s4_over_s8 - 0.5;
  r.p_elem_ge8 = static_cast<double>(ge8) / n;
  r.p_group_flag = r.flags.p_flag_positive;
  r.p_elem_truncated = static_cast<double>(trunc) / n;
  const double sum = r.e_q8 + r.e_lzs;
  r.triangle_violations = triangle_bad;
  r.triangle_held = triangle_bad == 0;
  r.triangle_slack = slack_of(sum, r.e_total);
  r.beats_int4_mean = sum < r.e_q4_mean;
  r.int4_mean_slack = slack_of(r.e_q4_mean, sum);
  r.beats_int4_bound = sum < r.e_q4_bound;
  r.int4_bound_slack = slack_of(r.e_q4_bound, sum);
  r.total_beats_int4 = r.e_total < r.e_q4_mean;
  r.lzs = analyze_tensor(x, lzs_vals);
  r.int4 = analyze_tensor(x, int4_vals);
  r.lzs_codes = code_entropy(*fmt_lzs, p);
  r.int4_codes = code_entropy(*fmt4, p4);
  return r;
}

// ---- JSON ----------------------------------------------------------------------------------

nlohmann::json to_json(const Prop41Sample& s) {
  return {{"row_begin", s.row_begin}, {"rows", s.rows},
          {"lhs", json_number(s.lhs)}, {"rhs", json_number(s.rhs)},
          {"x_norm", json_number(s.x_norm)}, {"x_err", json_number(s.x_err)},
          {"w_norm", json_number(s.w_norm)}, {"w_err", json_number(s.w_err)},
          {"fp_allowance", json_number(s.fp_allowance)}, {"rel_tol", json_number(s.rel_tol)}, {"held", s.held},
          {"slack", json_number(s.slack)}};
}

nlohmann::json to_json(const Prop41Result& r) {
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& s : r.samples) samples.push_back(to_json(s));
  return {{"proposition", "4.1"},
          {"x_quantizer", r.x_quantizer},
          {"w_quantizer", r.w_quantizer},
          {"b", r.b},
          {"m", r.m},
          {"n", r.n},
          {"sample_rows", r.sample_rows},
          {"whole", to_json(r.whole)},
          {"samples", samples},
          {"samples_held", r.samples_held},
          {"all_held", r.all_held},
          {"min_slack", json_number(r.min_slack)},
          {"median_slack", json_number(r.median_slack)},
          {"output", to_json(r.output)}};
}

nlohmann::json to_json(const Prop42Row& r) {
  return {{"proposition", "4.2"},
          {"n", r.n},
          {"qmax", r.qmax},
          {"group", r.group},
          {"bound_size", r.bound_size},
          {"trials", r.trials},
          {"mean_err_norm", json_number(r.mean_err_norm)},
          {"mean_norm", json_number(r.mean_norm)},
          {"ratio", json_number(r.ratio)},
          {"ratio_min", json_number(r.ratio_min)},
          {"ratio_max", json_number(r.ratio_max)},
          {"bound", json_number(r.bound)},
          {"c", json_number(r.c)},
          {"c_meas", json_number(r.c_meas)},
          {"held", r.held},
          {"slack", json_number(r.slack)}};
}

nlohmann::json to_json(const QuartzResult& r) {
  return {{"proposition", "quartz"},
          {"format", r.format},
          {"int4_format", r.int4_format},
          {"rows", r.rows},
          {"cols", r.cols},
          {"group", r.group},
          {"per_token", r.per_token},
          {"round", r.round},
          {"s8_min", json_number(r.s8_min)},
          {"s8_max", json_number(r.s8_max)},
          {"s4_over_s8", json_number(r.s4_over_s8)},
          {"e_q8", json_number(r.e_q8)},
          {"e_lzs", json_number(r.e_lzs)},
          {"e_total", json_number(r.e_total)},
          {"e_q4_mean", json_number(r.e_q4_mean)},
          {"e_q4_bound", json_number(r.e_q4_bound)},
          {"e_lzs_in_s8", json_number(r.e_lzs_in_s8)},
          {"e_q8_in_s8", json_number(r.e_q8_in_s8)},
          {"threshold_paper", r.threshold_paper},
          {"threshold_spec", r.threshold_spec},
          {"threshold_actual", json_number(r.threshold_actual)},
          {"p_elem_ge8", json_number(r.p_elem_ge8)},
          {"p_group_flag", json_number(r.p_group_flag)},
          {"p_elem_truncated", json_number(r.p_elem_truncated)},
          {"flags", to_json(r.flags)},
          {"triangle_held", r.triangle_held},
          {"triangle_violations", r.triangle_violations},
          {"triangle_slack", json_number(r.triangle_slack)},
          {"beats_int4_mean", r.beats_int4_mean},
          {"int4_mean_slack", json_number(r.int4_mean_slack)},
          {"beats_int4_bound", r.beats_int4_bound},
          {"int4_bound_slack", json_number(r.int4_bound_slack)},
          {"total_beats_int4", r.total_beats_int4},
          {"lzs", to_json(r.lzs)},
          {"int4", to_json(r.int4)},
          {"lzs_codes", to_json(r.lzs_codes)},
          {"int4_codes", to_json(r.int4_codes)}};
}

}  // namespace lowbit
