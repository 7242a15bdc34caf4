// `lowbit mixprec`: Qua2SeDiMo-style mixed precision over the linear layers of a capture file.
// Every (layer, weight option) is evaluated on the captured (X, W) pair of one sampling step
// (relative output error, bits per weight including scales and any low-rank branch), then an
// assignment is made under an average weight-bits budget (exact Pareto DP, greedy) and, with
// --lambda, by the per-layer bit penalty (quantizers/mixed_precision.hpp).
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "quantizers/mixed_precision.hpp"
#include "sim/safetensors.hpp"
#include "sim/sweep.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit::cli {
namespace {

struct MixprecArgs {
  std::string file, layers = "*", weights = "int2:g64:scale=fp16,int3:g64:scale=fp16,int4:g64:scale=fp16,int8:row",
                    aq = "none", algorithm = "rtn";
  int step = 33;
  double budget = 4.5;
  double lambda = -1;
  bool json = false;
};

quant::MatrixF as_matrix(const Tensor& t, const std::string& what) {
  if (t.shape.size() != 2 || t.shape[0] == 0 || t.shape[1] == 0)
    throw Error(fmt::format("{}: expected a non-empty 2-D tensor, got {}", what, shape_to_string(t.shape)));
  return quant::matrix_from(to_f32(t), t.shape[0], t.shape[1]);
}

int run_mixprec(const MixprecArgs& a) {
  if (!(a.budget > 0)) throw Error("--budget must be positive (average bits per weight)");
  std::vector<quant::MpOption> options;
  for (const auto& w : split_specs(a.weights)) {
    quant::make_quantizer(w);  // bad specs fail before any work
    options.push_back({w, w, a.aq, a.algorithm});
  }
  quant::make_quantizer(a.aq);
  const std::vector<std::string> names = safetensors_names(a.file);
  const std::string prefix = fmt::format("step{:03d}.", a.step);
  std::vector<quant::MpLayer> layers;
  for (const auto& n : names) {
    if (!n.ends_with(".weight")) continue;
    const std::string layer = n.substr(0, n.size() - 7);
    if (!glob_match(a.layers, layer)) continue;
    const std::string xname = prefix + layer + ".input";
    if (std::find(names.begin(), names.end(), xname) == names.end()) continue;
    const auto ts = read_safetensors(a.file, {xname, n});
    const Tensor& x = ts[0].name == xname ? ts[0] : ts[1];
    const Tensor& w = ts[0].name == xname ? ts[1] : ts[0];
    layers.push_back({layer, as_matrix(x, a.file + ":" + xname), as_matrix(w, a.file + ":" + n), quant::VectorF()});
  }
  if (layers.empty())
    throw Error(fmt::format("{}: no layer matches '{}' with a weight and an input at step {}", a.file, a.layers, a.step));
  const quant::MpTable table = quant::evaluate_mixed_precision(layers, options);
  const quant::MpCosts costs = quant::mp_costs(table);
  std::vector<quant::MpAssignment> results = {quant::mp_assign_exact(costs, a.budget),
                                              quant::mp_assign_greedy(costs, a.budget)};
  if (a.lambda >= 0) results.push_back(quant::mp_assign_penalty(costs, a.lambda));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : results) out.push_back(quant::mp_report(table, r));
  if (a.json) {
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("{} layers at step {} of {}, budget {} bits/weight, activations {}, algorithm {}\n", layers.size(), a.step,
             a.file, a.budget, a.aq, a.algorithm);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (!r.feasible) {
      fmt::print("\n{}: no assignment meets the budget\n", r.method);
      continue;
    }
    fmt::print("\n{}: avg {:.4f} bits/weight, total relative output error {:.6g}{}\n", r.method, r.avg_bits,
               r.total_error, r.exact ? "" : " (frontier thinned: not proven optimal)");
    for (size_t l = 0; l < layers.size(); ++l) {
      const int o = r.choice[l];
      fmt::print("  {:<34} {:<24} err {:>10.4g}  {:.3f} bits\n", table.layers[l], table.options[o].label,
                 table.eval[l][o].rel_error, table.eval[l][o].weight_bits);
    }
  }
  return 0;
}

}  // namespace

void add_mixprec_commands(CLI::App& app, Commands& out) {
  auto a = std::make_shared<MixprecArgs>();
  auto* c = app.add_subcommand("mixprec", "mixed-precision weight assignment under a bits budget on captured layers");
  c->add_option("--in,-i", a->file, "capture file (.safetensors with <layer>.weight and stepNNN.<layer>.input)")->required();
  c->add_option("--step", a->step, "sampling step whose inputs are used")->capture_default_str();
  c->add_option("--layers", a->layers, "glob over layer names")->capture_default_str();
  c->add_option("--weights", a->weights, "comma-separated weight options (quantizer specs)")->capture_default_str();
  c->add_option("--aq", a->aq, "activation quantizer for every option")->capture_default_str();
  c->add_option("--algorithm", a->algorithm, "algorithm for every option")->capture_default_str();
  c->add_option("--budget", a->budget, "average bits per weight, weighted by parameter count")->capture_default_str();
  c->add_option("--lambda", a->lambda, "also assign by the bit penalty: per layer argmin error + lambda * bits");
  c->add_flag("--json", a->json, "machine-readable output");
  out.push_back({c, [a] { return run_mixprec(*a); }});
}

}  // namespace lowbit::cli
