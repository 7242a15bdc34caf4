// Linear-layer subcommands: `lowbit algorithms` (the registry of PTQ algorithms) and the
// algorithm mode of `lowbit error` (--weight and --algorithms): each algorithm runs on the
// (activation, weight) pair and its layer-output error is reported.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "quantizers/linear.hpp"
#include "sim/metrics.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit::cli {
namespace {

// A tensor as a rows x cols matrix: all leading dimensions flattened into rows.
quant::MatrixF load_matrix(const std::string& spec, const char* what) {
  const std::vector<Tensor> ts = load_tensors(spec);
  if (ts.size() != 1) throw Error(fmt::format("{} {}: expected one tensor, found {} (name one with FILE:name)", what, spec, ts.size()));
  const Tensor& t = ts[0];
  if (t.shape.size() < 2)
    throw Error(fmt::format("{} {}: expected a 2-D (or higher) tensor, got shape {}", what, spec, shape_to_string(t.shape)));
  const int64_t cols = t.shape.back();
  const int64_t rows = cols ? t.numel() / cols : 0;
  if (rows == 0 || cols == 0) throw Error(fmt::format("{} {}: empty tensor", what, spec));
  return quant::matrix_from(to_f32(t), rows, cols);
}

void scrub(nlohmann::json& j) {
  if (j.is_number_float() && !std::isfinite(j.get<double>())) j = nullptr;
  if (j.is_structured())
    for (auto& v : j) scrub(v);
}

int run_algorithms(const std::string& in, const std::string& weight, const std::string& algos, const std::string& wq,
                   const std::string& aq, bool json) {
  const std::vector<std::string> list = split_specs(algos);
  quant::LinearProblem p;
  p.wq = quant::make_quantizer(wq);
  p.aq = quant::make_quantizer(aq);
  p.x = load_matrix(in, "--in");
  p.w = load_matrix(weight, "--weight");
  if (p.w.rows() == 0 || p.x.cols() != p.w.cols())
    throw Error(fmt::format("--in has {} features per row but --weight is {} x {} ([out, in] expected)", p.x.cols(),
                            p.w.rows(), p.w.cols()));
  const quant::MatrixF y = quant::linear_forward(p.x, p.w);
  const std::vector<float> yv = quant::matrix_values(y);
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    fmt::print("\nX {} [{} x {}]  W {} [{} x {}]  weights {}  activations {}\n", in, p.x.rows(), p.x.cols(), weight,
               p.w.rows(), p.w.cols(), wq, aq);
    fmt::print("  {:<36} {:>9} {:>8} {:>12} {:>9} {:>9}\n", "algorithm", "W bits", "A bits", "out rel MSE", "SQNR dB",
               "seconds");
  }
  for (const auto& a : list) {
    nlohmann::json r{{"algorithm", a}, {"weight_quantizer", wq}, {"act_quantizer", aq}, {"x", in}, {"w", weight}};
    try {
      const auto t0 = std::chrono::steady_clock::now();
      const quant::QuantizedLinear q = quant::quantize_linear(a, p);
      const std::vector<float> yq = quant::matrix_values(q.forward(p.x));
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const ErrorMetrics m = error_metrics(yv, yq);
      r.update({{"weight_bits_per_element", q.weight_bits_per_element()}, {"act_bits_per_element", q.act_bits},
                {"rank", q.rank()}, {"out_rel_mse", m.rel_mse}, {"out_sqnr_db", m.sqnr_db}, {"out_max_abs_err", m.max_abs},
                {"seconds", secs}, {"info", q.info}});
      if (!json)
        fmt::print("  {:<36} {:>9.4f} {:>8.4f} {:>12.5g} {:>9.3f} {:>9.3f}\n", a, q.weight_bits_per_element(), q.act_bits,
                   m.rel_mse, m.sqnr_db, secs);
    } catch (const Error& e) {
      r["error"] = e.what();
      if (!json) fmt::print("  {:<36} n/a: {}\n", a, e.what());
    }
    rows.push_back(r);
  }
  if (json) {
    scrub(rows);
    fmt::print("{}\n", rows.dump(2));
  }
  return 0;
}

int list_algorithms(bool json) {
  if (json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : quant::linear_algorithms())
      a.push_back({{"name", e.name}, {"summary", e.summary}, {"options", e.options}});
    fmt::print("{}\n", a.dump(2));
    return 0;
  }
  for (const auto& e : quant::linear_algorithms()) {
    fmt::print("{:<14} {}\n", e.name, e.summary);
    if (!e.options.empty()) fmt::print("{:<14} options: {}\n", "", e.options);
  }
  return 0;
}

}  // namespace

void add_linear_commands(CLI::App& app, Commands& out) {
  auto json = std::make_shared<bool>(false);
  auto* algs = app.add_subcommand("algorithms", "list the PTQ algorithms for linear layers (lowbit error --algorithms)");
  algs->add_flag("--json", *json, "machine-readable output");
  out.push_back({algs, [json] { return list_algorithms(*json); }});
}

int run_error_algorithms(const std::string& in, const std::string& weight, const std::string& algos,
                         const std::string& wq, const std::string& aq, bool json) {
  return run_algorithms(in, weight, algos, wq, aq, json);
}

}  // namespace lowbit::cli
