// Mixed-precision option tables and assignments (see mixed_precision.hpp).
#include "quantizers/mixed_precision.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <numeric>

#include "formats/error.hpp"

namespace lowbit::quant {
namespace {

void check_costs(const MpCosts& c) {
  const size_t n = c.params.size();
  if (n == 0) throw Error("mixed precision: no layers");
  if (c.error.size() != n || c.bits.size() != n)
    throw Error(fmt::format("mixed precision: {} layers but {} error rows and {} bits rows", n, c.error.size(),
                            c.bits.size()));
  for (size_t l = 0; l < n; ++l) {
    if (!(c.params[l] > 0) || !std::isfinite(c.params[l]))
      throw Error(fmt::format("mixed precision: layer {} has parameter count {}", l, c.params[l]));
    if (c.error[l].empty() || c.error[l].size() != c.bits[l].size())
      throw Error(fmt::format("mixed precision: layer {} has {} errors and {} bit widths", l, c.error[l].size(),
                              c.bits[l].size()));
    for (size_t o = 0; o < c.error[l].size(); ++o)
      if (!std::isfinite(c.error[l][o]) || !std::isfinite(c.bits[l][o]) || c.bits[l][o] < 0)
        throw Error(fmt::format("mixed precision: layer {}, option {}: error {} / bits {} must be finite", l, o,
                                c.error[l][o], c.bits[l][o]));
  }
}

double total_params(const MpCosts& c) { return std::accumulate(c.params.begin(), c.params.end(), 0.0); }

// Option with the fewest (most) bits, ties to the lower error, then the earlier option.
int extreme_option(const std::vector<double>& bits, const std::vector<double>& err, bool highest) {
  int best = 0;
  for (int o = 1; o < static_cast<int>(bits.size()); ++o) {
    const bool better_bits = highest ? bits[o] > bits[best] : bits[o] < bits[best];
    if (better_bits || (bits[o] == bits[best] && err[o] < err[best])) best = o;
  }
  return best;
}

}  // namespace

bool mp_within_budget(double total_bits, double budget, double total_params) {
  const double cap = budget * total_params;
  return total_bits <= cap + 1e-12 * std::abs(cap);
}

MpTable evaluate_mixed_precision(std::span<const MpLayer> layers, std::span<const MpOption> options, uint64_t seed) {
  if (layers.empty() || options.empty()) throw Error("mixed precision: need at least one layer and one option");
  MpTable t;
  const int64_t nl = static_cast<int64_t>(layers.size()), no = static_cast<int64_t>(options.size());
  t.options.assign(options.begin(), options.end());
  t.eval.assign(nl, std::vector<MpEvaluation>(no));
  std::vector<MatrixF> y(nl);
  std::vector<double> y_norm(nl);
  for (int64_t l = 0; l < nl; ++l) {
    const MpLayer& L = layers[l];
    t.layers.push_back(L.name);
    t.params.push_back(static_cast<double>(L.w.rows()) * static_cast<double>(L.w.cols()));
    t.act_width.push_back(static_cast<double>(L.x.cols()));
    if (L.x.size() == 0 || L.w.size() == 0)
      throw Error(fmt::format("mixed precision: layer '{}' has empty activations or weight", L.name));
    try {
      y[l] = linear_forward(L.x, L.w, L.bias);
    } catch (const Error& e) {
      throw Error(fmt::format("mixed precision: layer '{}': {}", L.name, e.what()));
    }
    y_norm[l] = sq_norm(y[l]);
  }
  std::vector<std::exception_ptr> failures(static_cast<size_t>(nl * no));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < nl * no; ++i) {
    const int64_t l = i / no, o = i % no;
    try {
      const MpLayer& L = layers[l];
      const MpOption& opt = options[o];
      LinearProblem p{L.x, L.w, L.bias, make_quantizer(opt.weight_spec), make_quantizer(opt.act_spec)};
      p.seed = seed;
      const QuantizedLinear q = quantize_linear(opt.algorithm, p);
      const double diff = sq_diff(y[l], q.forward(L.x));
      MpEvaluation& e = t.eval[l][o];
      e.rel_error = y_norm[l] > 0 ? diff / y_norm[l] : diff;
      e.weight_bits = q.weight_bits_per_element();
      e.act_bits = q.act_bits;
      e.info = q.info;
    } catch (...) {
      failures[i] = std::current_exception();
    }
  }
  for (int64_t i = 0; i < nl * no; ++i) {
    if (!failures[i]) continue;
    const std::string where =
        fmt::format("mixed precision: layer '{}', option '{}'", layers[i / no].name, options[i % no].label);
    try {
      std::rethrow_exception(failures[i]);
    } catch (const std::exception& e) {
      throw Error(fmt::format("{}: {}", where, e.what()));
    }
  }
  return t;
}

MpCosts mp_costs(const MpTable& t) {
  MpCosts c;
  c.params = t.params;
  for (const auto& row : t.eval) {
    c.error.emplace_back();
    c.bits.emplace_back();
    for (const MpEvaluation& e : row) {
      c.error.back().push_back(e.rel_error);
      c.bits.back().push_back(e.weight_bits);
    }
  }
  return c;
}

std::vector<MpSensitivity> mp_sensitivity(const MpCosts& c) {
  check_costs(c);
  std::vector<MpSensitivity> out;
  for (size_t l = 0; l < c.params.size(); ++l) {
    MpSensitivity s;
    s.low_option = extreme_option(c.bits[l], c.error[l], false);
    s.high_option = extreme_option(c.bits[l], c.error[l], true);
    s.low_error = c.error[l][s.low_option];
    s.high_error = c.error[l][s.high_option];
    s.score = s.low_error - s.high_error;
    s.ratio = s.high_error > 0   ? s.low_error / s.high_error
              : s.low_error > 0 ? std::numeric_limits<double>::infinity()
                                : 1.0;
    out.push_back(s);
  }
  return out;
}

MpAssignment mp_score(const MpCosts& c, std::vector<int> choice, std::string method) {
  check_costs(c);
  if (choice.size() != c.params.size())
    throw Error(fmt::format("mixed precision: {} choices for {} layers", choice.size(), c.params.size()));
  MpAssignment a;
  a.method = std::move(method);
  double bits = 0;
  for (size_t l = 0; l < choice.size(); ++l) {
    if (choice[l] < 0 || choice[l] >= static_cast<int>(c.error[l].size()))
      throw Error(fmt::format("mixed precision: layer {} has no option {}", l, choice[l]));
    bits += c.params[l] * c.bits[l][choice[l]];
    a.total_error += c.error[l][choice[l]];
  }
  a.avg_bits = bits / total_params(c);
  a.choice = std::move(choice);
  a.feasible = true;
  return a;
}

MpAssignment mp_assign_exact(const MpCosts& c, double budget, size_t max_states) {
  check_costs(c);
  if (max_states < 2) throw Error("mixed precision: max_states must be at least 2");
  const size_t n = c.params.size();
  const double P = total_params(c);
  // Cheapest completion of layers l.. (for pruning states that cannot meet the budget).
  std::vector<double> min_rest(n + 1, 0.0);
  for (size_t l = n; l-- > 0;)
    min_rest[l] = min_rest[l + 1] + c.params[l] * *std::min_element(c.bits[l].begin(), c.bits[l].end());

  struct State {
    double bits, err;
    int32_t parent;
    int32_t option;
  };
  std::vector<std::vector<State>> stages(n + 1);
  stages[0] = {{0.0, 0.0, -1, -1}};
  bool exact = true;
  size_t peak = 1;
  for (size_t l = 0; l < n; ++l) {
    std::vector<State> cand;
    const auto& prev = stages[l];
    cand.reserve(prev.size() * c.bits[l].size());
    for (size_t s = 0; s < prev.size(); ++s)
      for (size_t o = 0; o < c.bits[l].size(); ++o) {
        const double b = prev[s].bits + c.params[l] * c.bits[l][o];
        if (!mp_within_budget(b + min_rest[l + 1], budget, P)) continue;
        cand.push_back({b, prev[s].err + c.error[l][o], static_cast<int32_t>(s), static_cast<int32_t>(o)});
      }
    std::sort(cand.begin(), cand.end(), [](const State& a, const State& b) {
      return a.bits != b.bits ? a.bits < b.bits : a.err < b.err;
    });
    std::vector<State> front;
    double best_err = std::numeric_limits<double>::infinity();
    for (const State& s : cand)
      if (s.err < best_err) {
        front.push_back(s);
        best_err = s.err;
      }
    if (front.size() > max_states) {
      // Thin: equal-width buckets in bits, keep the lowest-error (= highest-bits) state of each.
      exact = false;
      const double lo = front.front().bits, hi = front.back().bits;
      const double width = (hi - lo) / static_cast<double>(max_states);
      std::vector<State> thin;
      for (size_t i = 0; i < front.size(); ++i) {
        const bool last_in_bucket =
            i + 1 == front.size() ||
            std::floor((front[i + 1].bits - lo) / width) != std::floor((front[i].bits - lo) / width);
        if (last_in_bucket) thin.push_back(front[i]);
      }
      front = std::move(thin);
    }
    peak = std::max(peak, front.size());
    stages[l + 1] = std::move(front);
    if (stages[l + 1].empty()) break;
  }
  MpAssignment a;
  a.method = "exact";
  if (stages[n].empty()) {
    a.info = {{"budget", budget}, {"reason", "no assignment meets the budget"}};
    return a;
  }
  // The frontier is sorted by bits ascending and error descending: the last state is optimal.
  std::vector<int> choice(n);
  int32_t s = static_cast<int32_t>(stages[n].size()) - 1;
  for (size_t l = n; l > 0; --l) {
    choice[l - 1] = stages[l][s].option;
    s = stages[l][s].parent;
  }
  a = mp_score(c, std::move(choice), "exact");
  a.exact = exact;
  a.info = {{"budget", budget}, {"peak_frontier", peak}, {"max_states", max_states}};
  return a;
}

MpAssignment mp_assign_greedy(const MpCosts& c, double budget) {
  check_costs(c);
  const size_t n = c.params.size();
  const double P = total_params(c);
  std::vector<int> choice(n);
  double bits = 0;
  for (size_t l = 0; l < n; ++l) {
    choice[l] = extreme_option(c.bits[l], c.error[l], true);
    bits += c.params[l] * c.bits[l][choice[l]];
  }
  int steps = 0;
  while (!mp_within_budget(bits, budget, P)) {
    double best_ratio = std::numeric_limits<double>::infinity(), best_saved = 0;
    int best_l = -1, best_o = -1;
    for (size_t l = 0; l < n; ++l) {
      const double b_cur = c.bits[l][choice[l]], e_cur = c.error[l][choice[l]];
      for (size_t o = 0; o < c.bits[l].size(); ++o) {
        if (!(c.bits[l][o] < b_cur)) continue;
        const double saved = c.params[l] * (b_cur - c.bits[l][o]);
        const double ratio = (c.error[l][o] - e_cur) / saved;
        if (ratio < best_ratio || (ratio == best_ratio && saved > best_saved)) {
          best_ratio = ratio;
          best_saved = saved;
          best_l = static_cast<int>(l);
          best_o = static_cast<int>(o);
        }
      }
    }
    if (best_l < 0) break;  // every layer at its fewest bits
    choice[best_l] = best_o;
    bits = 0;
    for (size_t l = 0; l < n; ++l) bits += c.params[l] * c.bits[l][choice[l]];
    ++steps;
  }
  MpAssignment a = mp_score(c, std::move(choice), "greedy");
  a.feasible = mp_within_budget(a.avg_bits * P, budget, P);
  a.info = {{"budget", budget}, {"downgrades", steps}};
  if (!a.feasible) a.choice.clear();
  return a;
}

MpAssignment mp_assign_penalty(const MpCosts& c, double lambda) {
  check_costs(c);
  if (!(lambda >= 0) || std::isnan(lambda))
    throw Error(fmt::format("mixed precision: bit penalty lambda = {} must be >= 0", lambda));
  std::vector<int> choice(c.params.size());
  for (size_t l = 0; l < c.params.size(); ++l) {
    int best = 0;
    // λ = +inf: compare bits first (an inf·0 product would be NaN).
    auto score = [&](size_t o) { return c.error[l][o] + lambda * c.bits[l][o]; };
    for (size_t o = 1; o < c.bits[l].size(); ++o) {
      bool better;
      if (std::isinf(lambda))
        better = c.bits[l][o] < c.bits[l][best] || (c.bits[l][o] == c.bits[l][best] && c.error[l][o] < c.error[l][best]);
      else
        better = score(o) < score(best) || (score(o) == score(best) && c.bits[l][o] < c.bits[l][best]);
      if (better) best = static_cast<int>(o);
    }
    choice[l] = best;
  }
  MpAssignment a = mp_score(c, std::move(choice), "penalty");
  a.info = {{"lambda", std::isinf(lambda) ? nlohmann::json("inf") : nlohmann::json(lambda)}};
  return a;
}

MpAssignment mp_assign_brute_force(const MpCosts& c, double budget) {
  check_costs(c);
  const size_t n = c.params.size();
  double combos = 1;
  for (const auto& row : c.bits) combos *= static_cast<double>(row.size());
  if (combos > static_cast<double>(1 << 24))
    throw Error(fmt::format("mixed precision: brute force over {} combinations refused (limit 2^24)", combos));
  const double P = total_params(c);
  std::vector<int> cur(n, 0), best;
  double best_err = std::numeric_limits<double>::infinity(), best_bits = 0;
  while (true) {
    double bits = 0, err = 0;
    for (size_t l = 0; l < n; ++l) {
      bits += c.params[l] * c.bits[l][cur[l]];
      err += c.error[l][cur[l]];
    }
    if (mp_within_budget(bits, budget, P) && (err < best_err || (err == best_err && bits < best_bits))) {
      best = cur;
      best_err = err;
      best_bits = bits;
    }
    size_t l = 0;
    while (l < n && ++cur[l] == static_cast<int>(c.bits[l].size())) cur[l++] = 0;
    if (l == n) break;
  }
  MpAssignment a;
  a.method = "brute_force";
  if (!best.empty()) a = mp_score(c, std::move(best), "brute_force");
  a.info = {{"budget", budget}, {"combinations", combos}};
  return a;
}

nlohmann::json mp_report(const MpTable& t, const MpAssignment& a) {
  nlohmann::json j = {{"method", a.method},
                      {"feasible", a.feasible},
                      {"exact", a.exact},
                      {"avg_weight_bits", a.avg_bits},
                      {"total_error", a.total_error},
                      {"objective", "sum of per-layer relative output errors"},
                      {"solver", a.info}};
  if (a.choice.empty()) return j;
  if (a.choice.size() != t.layers.size())
    throw Error(fmt::format("mixed precision: assignment for {} layers, table has {}", a.choice.size(),
                            t.layers.size()));
  const std::vector<MpSensitivity> sens = mp_sensitivity(mp_costs(t));
  double act_num = 0, act_den = 0;
  nlohmann::json rows = nlohmann::json::array();
  for (size_t l = 0; l < t.layers.size(); ++l) {
    const MpEvaluation& e = t.eval[l][a.choice[l]];
    act_num += t.act_width[l] * e.act_bits;
    act_den += t.act_width[l];
    rows.push_back({{"layer", t.layers[l]},
                    {"option", t.options[a.choice[l]].label},
                    {"rel_error", e.rel_error},
                    {"weight_bits", e.weight_bits},
                    {"act_bits", e.act_bits},
                    {"params", t.params[l]},
                    {"sensitivity", sens[l].score}});
  }
  j["avg_act_bits"] = act_den > 0 ? act_num / act_den : 0.0;
  j["layers"] = std::move(rows);
  return j;
}

}  // namespace lowbit::quant
