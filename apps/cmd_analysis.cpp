// `lowbit bounds`: numerical checks of the error-bound propositions (sim/bounds.hpp,
// docs/bounds.md): --prop 4.1 (SVDQuant error decomposition on an (X, W) pair), --prop 4.2
// (Monte-Carlo Gaussian quantisation-error bound), --prop quartz (LZS vs naive INT4 on a
// tensor). A bound that fails is a finding: the command prints "held: no" and exits 0. Bad input
// throws lowbit::Error (main prints one line and exits 1).
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "apps/commands.hpp"
#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "quantizers/quantizer.hpp"
#include "sim/bounds.hpp"
#include "sim/tensor.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit::cli {

namespace {

struct BoundsArgs {
  std::string prop;
  bool json = false;
  // 4.1
  std::string x, w, wq = "int4:g64", aq = "int4:g64";
  int64_t sample_rows = 1;
  // 4.2
  std::string sizes = "4096,65536,1048576", qmax = "7,127", groups = "0,64";
  int trials = 8;
  uint64_t seed = 0;
  // quartz
  std::string in, format = "lzs4:g16";
};

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.6g}", v);
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

Tensor load_one(const std::string& spec, const char* flag) {
  std::vector<Tensor> ts;
  try {
    ts = load_tensors(spec);
  } catch (const Error& e) {
    throw Error(fmt::format("{} {}", flag, e.what()));
  }
  if (ts.size() != 1) {
    std::vector<std::string> names;
    for (const auto& t : ts) names.push_back(t.name);
    throw Error(fmt::format("{} {} holds {} tensors; pick one as FILE:name ({})", flag, spec, ts.size(),
                            fmt::join(names, ", ")));
  }
  return std::move(ts[0]);
}

// A 2-D tensor file as a matrix; `what` names it in errors ("--x (activations [tokens, in])").
quant::MatrixF load_matrix(const std::string& spec, const char* flag, const char* what) {
  const Tensor t = load_one(spec, flag);
  if (t.shape.size() != 2)
    throw Error(fmt::format("{} {}: {} must be 2-D {}, got shape {}", flag, spec, t.name.empty() ? "tensor" : t.name,
                            what, shape_to_string(t.shape)));
  return quant::matrix_from(to_f32(t), t.shape[0], t.shape[1]);
}

template <class T>
std::vector<T> parse_list(const std::string& text, const char* flag) {
  std::vector<T> out;
  for (const auto& part : split_specs(text)) {
    try {
      size_t pos = 0;
      const long long v = std::stoll(part, &pos);
      if (pos != part.size()) throw std::invalid_argument(part);
      out.push_back(static_cast<T>(v));
      if (static_cast<long long>(out.back()) != v) throw std::out_of_range(part);
    } catch (const std::exception&) {
      throw Error(fmt::format("{}: '{}' is not an integer in range", flag, part));
    }
  }
  return out;
}

int run_prop41(const BoundsArgs& a) {
  if (a.x.empty() || a.w.empty()) throw Error("bounds --prop 4.1 needs --x ACTIVATIONS and --w WEIGHT");
  const quant::QuantizerPtr qx = quant::make_quantizer(a.aq);
  const quant::QuantizerPtr qw = quant::make_quantizer(a.wq);
  const quant::MatrixF x = load_matrix(a.x, "--x", "activations [tokens, in_features]");
  const quant::MatrixF w = load_matrix(a.w, "--w", "weight [out_features, in_features]");
  if (x.cols() != w.cols())
    throw Error(fmt::format("--x {} is {} x {} but --w {} is {} x {} [out, in]: in-features differ ({} vs {})", a.x,
                            x.rows(), x.cols(), a.w, w.rows(), w.cols(), x.cols(), w.cols()));
  const Prop41Result r = check_prop41(x, w, qx, qw, a.sample_rows);
  if (a.json) {
    nlohmann::json j = to_json(r);
    j["x"] = a.x;
    j["w"] = a.w;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("Prop 4.1 (SVDQuant, ALGORITHMS.md §2.7):\n");
  fmt::print("  ‖XWᵀ − Q(X)Q(W)ᵀ‖_F ≤ ‖X‖_F‖W − Q(W)‖_F + ‖X − Q(X)‖_F(‖W‖_F + ‖W − Q(W)‖_F)\n");
  fmt::print("X = {} [{}, {}], Q(X) = {}\nW = {} [{}, {}], Q(W) = {}\n", a.x, r.b, r.m, r.x_quantizer, a.w, r.n, r.m,
             r.w_quantizer);
  fmt::print("‖X‖_F = {}, ‖X − Q(X)‖_F = {}, ‖W‖_F = {}, ‖W − Q(W)‖_F = {}\n", num(r.whole.x_norm),
             num(r.whole.x_err), num(r.whole.w_norm), num(r.whole.w_err));
  fmt::print("  {:<22} {:>13} {:>13} {:>9}  {}\n", "sample", "LHS", "RHS", "RHS/LHS", "held");
  fmt::print("  {:<22} {:>13} {:>13} {:>9}  {}\n", "whole X", num(r.whole.lhs), num(r.whole.rhs), num(r.whole.slack),
             yes_no(r.whole.held));
  const Prop41Sample* worst = nullptr;
  // The first sample that failed, else the one of smallest RHS/LHS.
  for (const auto& s : r.samples) {
    if (worst && !worst->held) break;
    if (!worst || !s.held || s.slack < worst->slack) worst = &s;
  }
  if (worst) {
    const std::string label = worst->rows == 1 ? fmt::format("tightest: row {}", worst->row_begin)
                                               : fmt::format("tightest: rows {}..{}", worst->row_begin,
                                                             worst->row_begin + worst->rows - 1);
    fmt::print("  {:<22} {:>13} {:>13} {:>9}  {}\n", label, num(worst->lhs), num(worst->rhs), num(worst->slack),
               yes_no(worst->held));
  }
  fmt::print("samples of {} row{}: held {}/{}, RHS/LHS min {}, median {}\n", r.sample_rows,
             r.sample_rows == 1 ? "" : "s", r.samples_held, r.samples.size(), num(r.min_slack), num(r.median_slack));
  fmt::print("layer output Q(X)Q(W)ᵀ vs XWᵀ: rel MSE {}, SQNR {} dB, cosine {}, max |err| {}\n",
             num(r.output.rel_mse), num(r.output.sqnr_db), num(r.output.cosine), num(r.output.max_abs));
  fmt::print("held: {}\n", yes_no(r.all_held));
  return 0;
}

int run_prop42(const BoundsArgs& a) {
  Prop42Options o;
  o.sizes = parse_list<int64_t>(a.sizes, "--sizes");
  o.qmax = parse_list<int>(a.qmax, "--qmax");
  o.groups = parse_list<int64_t>(a.groups, "--group");
  o.trials = a.trials;
  o.seed = a.seed;
  const std::vector<Prop42Row> rows = check_prop42(o);
  bool all = true;
  for (const auto& r : rows) all = all && r.held;
  if (a.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : rows) j.push_back(to_json(r));
    fmt::print("{}\n", nlohmann::json{{"proposition", "4.2"}, {"seed", a.seed}, {"all_held", all}, {"rows", j}}.dump(2));
    return 0;
  }
  fmt::print("Prop 4.2 (SVDQuant, ALGORITHMS.md §2.7): R ~ N(0,1)^n, Q(R) = s·rne(R/s), s = max|R_g|/q_max\n");
  fmt::print("  E‖R − Q(R)‖_F / E‖R‖_F ≤ sqrt(π·ln N)/q_max, N = n (per tensor) or G (per group); "
             "{} trials, seed {}\n",
             a.trials, a.seed);
  fmt::print("  {:>9} {:>7} {:>5} {:>11} {:>11} {:>8} {:>10} {:>10}  {}\n", "n", "group", "qmax", "measured", "bound",
             "slack", "c", "c_meas", "held");
  for (const auto& r : rows)
    fmt::print("  {:>9} {:>7} {:>5} {:>11.5g} {:>11.5g} {:>8.3f} {:>10.4g} {:>10.4g}  {}\n", r.n,
               r.group ? std::to_string(r.group) : "tensor", r.qmax, r.ratio, r.bound, r.slack, r.c, r.c_meas,
               yes_no(r.held));
  fmt::print("held: {}\n", yes_no(all));
  return 0;
}

int run_quartz(const BoundsArgs& a) {
  if (a.in.empty()) throw Error("bounds --prop quartz needs --in TENSOR");
  const std::unique_ptr<TensorFormat> f = make_format(a.format);  // a bad spec fails before loading
  if (f->family() != "lzs") throw Error(fmt::format("--format {}: QuaRTZ analysis needs an lzs4 spec", a.format));
  const Tensor t = load_one(a.in, "--in");
  if (t.shape.empty() || t.numel() == 0)
    throw Error(fmt::format("--in {}: need a non-empty tensor of at least 1 dimension, got shape {}", a.in,
                            shape_to_string(t.shape)));
  const int64_t cols = t.shape.back();
  const int64_t rows = t.numel() / cols;
  const QuartzResult r = check_quartz(to_f32(t), rows, cols, a.format);
  if (a.json) {
    nlohmann::json j = to_json(r);
    j["in"] = a.in;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("QuaRTZ (ALGORITHMS.md §3.2): E_total ≤ E_q8 + E[E_LZS] < E_q4 ?\n");
  fmt::print("x = {} {} as {} x {}; {} (G = {}, s8 per {}, {}) vs {}\n", a.in, shape_to_string(t.shape), rows, cols,
             r.format, r.group, r.per_token ? "token" : "tensor", r.round, r.int4_format);
  fmt::print("s8 {} .. {}; mean s4/s8 = {}\n", num(r.s8_min), num(r.s8_max), num(r.s4_over_s8));
  fmt::print("  E_q8    = mean|x − Q8(x)|        {:>12}  ({} s8)\n", num(r.e_q8), num(r.e_q8_in_s8));
  fmt::print("  E_LZS   = mean|Q8(x) − LZS(x)|   {:>12}  ({} s8)\n", num(r.e_lzs), num(r.e_lzs_in_s8));
  fmt::print("  E_total = mean|x − LZS(x)|       {:>12}\n", num(r.e_total));
  fmt::print("  E_q4    = mean|x − INT4(x)|      {:>12}  (worst case s4/2: {})\n", num(r.e_q4_mean),
             num(r.e_q4_bound));
  fmt::print("E_LZS threshold for E_q8 + E_LZS < s4/2 (units of s8): paper 7.5, 127/7 correction {}, this tensor {}\n",
             num(r.threshold_spec), num(r.threshold_actual));
  fmt::print("P(|q8| >= 8) = {}, P(group FLAG > 0) = {}, P(element truncated) = {}\n", num(r.p_elem_ge8),
             num(r.p_group_flag), num(r.p_elem_truncated));
  fmt::print("FLAG histogram (0..4): {} {} {} {} {} of {} groups\n", r.flags.counts[0], r.flags.counts[1],
             r.flags.counts[2], r.flags.counts[3], r.flags.counts[4], r.flags.groups);
  fmt::print("  {:<8} {:>11} {:>9} {:>9} {:>13} {:>14} {:>11} {:>10}\n", "", "rel MSE", "SQNR dB", "cosine",
             "small rel MSE", "small flushed", "code H bits", "bit H");
  for (const auto& [name, an, ce] : {std::tuple{"LZS", &r.lzs, &r.lzs_codes}, std::tuple{"INT4", &r.int4, &r.int4_codes}})
    fmt::print("  {:<8} {:>11.5g} {:>9.3f} {:>9.6f} {:>13.5g} {:>14.4f} {:>11.4f} {:>10.4f}\n", name, an->rel_mse,
               an->sqnr_db, an->cosine, an->small_rel_mse, an->small_flushed, ce->entropy_bits, ce->mean_bit_entropy);
  fmt::print("triangle E_total ≤ E_q8 + E_LZS: held: {} (slack {})\n", yes_no(r.triangle_held),
             num(r.triangle_slack));
  fmt::print("E_q8 + E_LZS < E_q4 (mean vs mean): held: {} (E_q4/(E_q8 + E_LZS) = {})\n", yes_no(r.beats_int4_mean),
             num(r.int4_mean_slack));
  fmt::print("E_q8 + E_LZS < s4/2 (paper, mean vs worst case): held: {} (slack {})\n", yes_no(r.beats_int4_bound),
             num(r.int4_bound_slack));
  fmt::print("E_total < E_q4: {}\n", yes_no(r.total_beats_int4));
  fmt::print("held: {}\n", yes_no(r.triangle_held && r.beats_int4_mean));
  return 0;
}

}  // namespace

void add_analysis_commands(CLI::App& app, Commands& out) {
  auto args = std::make_shared<BoundsArgs>();
  CLI::App* sub = app.add_subcommand("bounds", "check error-bound propositions: SVDQuant 4.1 / 4.2, QuaRTZ LZS vs INT4");
  sub->add_option("--prop", args->prop, "4.1 | 4.2 | quartz")->required()->check(CLI::IsMember({"4.1", "4.2", "quartz"}));
  sub->add_flag("--json", args->json, "machine-readable output");
  auto* o_x = sub->add_option("--x", args->x, "4.1: activations X.npy | X.safetensors:name, 2-D [tokens, in]");
  auto* o_w = sub->add_option("--w", args->w, "4.1: weight, 2-D [out, in] (PyTorch layout, Y = X·Wᵀ)");
  auto* o_wq = sub->add_option("--wq", args->wq, "4.1: weight quantizer spec")->capture_default_str();
  auto* o_aq = sub->add_option("--aq", args->aq, "4.1: activation quantizer spec")->capture_default_str();
  auto* o_sr = sub->add_option("--sample-rows", args->sample_rows, "4.1: rows of X per sample")->capture_default_str();
  auto* o_sizes = sub->add_option("--sizes", args->sizes, "4.2: tensor sizes n")->capture_default_str();
  auto* o_qmax = sub->add_option("--qmax", args->qmax, "4.2: q_max values")->capture_default_str();
  auto* o_group = sub->add_option("--group", args->groups, "4.2: group sizes (0 = per tensor)")->capture_default_str();
  auto* o_trials = sub->add_option("--trials", args->trials, "4.2: Monte-Carlo trials")->capture_default_str();
  auto* o_seed = sub->add_option("--seed", args->seed, "4.2: seed")->capture_default_str();
  auto* o_in = sub->add_option("--in", args->in, "quartz: tensor X.npy | X.safetensors:name (rows = tokens)");
  auto* o_fmt = sub->add_option("--format", args->format, "quartz: lzs4 spec")->capture_default_str();
  struct Owned {
    const char* prop;
    std::vector<CLI::Option*> opts;
  };
  const std::vector<Owned> owned = {{"4.1", {o_x, o_w, o_wq, o_aq, o_sr}},
                                    {"4.2", {o_sizes, o_qmax, o_group, o_trials, o_seed}},
                                    {"quartz", {o_in, o_fmt}}};
  out.push_back({sub, [args, owned] {
                   for (const auto& o : owned)
                     for (const CLI::Option* opt : o.opts)
                       if (opt->count() > 0 && args->prop != o.prop)
                         throw Error(fmt::format("bounds: {} applies to --prop {} only (got --prop {})",
                                                 opt->get_name(), o.prop, args->prop));
                   if (args->prop == "4.1") return run_prop41(*args);
                   if (args->prop == "4.2") return run_prop42(*args);
                   return run_quartz(*args);
                 }});
}

}  // namespace lowbit::cli
