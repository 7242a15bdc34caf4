// lowbit command-line interface: list formats, quantise tensor files to codes / scales /
// packed bytes, decode packed files, compare formats' rounding error on tensors, and make
// synthetic test tensors. Every failure prints one line "lowbit: error: ..." and exits 1.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "sim/axis.hpp"
#include "sim/metrics.hpp"
#include "sim/npy.hpp"
#include "sim/packed_io.hpp"
#include "sim/safetensors.hpp"
#include "sim/synthetic.hpp"
#include "sim/tensor.hpp"
#include "sim/tensor_io.hpp"

namespace {

using namespace lowbit;

// Example specs listed by `lowbit formats` beside the registered names.
const std::vector<std::string> kExamples = {
    "int4:g64",        "int4:g128:sym=full", "uint4:g64",           "int8:row",         "int8:tensor",
    "fp8_e4m3:row",    "fp4_e2m1:g16:scale=e4m3", "fp4_e2m1:g32:scale=e8m0", "mxfp8_e4m3:scale=rceil",
    "mxfp4:round=rna", "nvfp4:variant=torchao", "nvfp4:tensor_scale=off", "nf4:dq", "nf4:g128", "lzs4:g32",
    "lzs4:g16:s8=token", "fp8_e4m3:round=sr:seed=7", "e3m4",          "int4:g64:scale=fp16"};

std::string example_for(const FormatEntry& e) {
  if (e.name == "eXmY") return "e3m4";
  if (e.name == "codebook") return "codebook:values=-1/-0.5/-0.25/0/0.25/0.5/1";
  return e.name;
}

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.6g}", v);
}

int cmd_formats(bool json) {
  const Shape ref{4096, 4096};
  nlohmann::json out = nlohmann::json::array();
  auto row = [&](const std::string& spec, const std::string& family, const std::string& summary,
                 const std::string& options) {
    nlohmann::json r{{"spec", spec}, {"family", family}, {"summary", summary}, {"options", options}};
    try {
      const auto f = make_format(spec);
      const FormatLimits l = f->limits();
      r["bits_per_element"] = f->bits_per_element(ref);
      r["max"] = l.max_value;
      r["min_positive"] = l.min_positive;
    } catch (const Error& e) {
      r["error"] = e.what();
    }
    out.push_back(r);
  };
  for (const auto& e : format_entries()) row(example_for(e), e.family, e.summary, e.options);
  for (const auto& s : kExamples) row(s, "example", "", "");
  if (json) {
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("{:<40} {:<9} {:>9} {:>12} {:>12}  {}\n", "format", "family", "bits/el", "max", "min>0", "description");
  for (const auto& r : out) {
    if (r["family"] == "example") continue;
    if (r.contains("error")) {
      fmt::print("{:<40} {:<9} unavailable: {}\n", r["spec"].get<std::string>(), r["family"].get<std::string>(),
                 r["error"].get<std::string>());
      continue;
    }
    fmt::print("{:<40} {:<9} {:>9.4f} {:>12} {:>12}  {}\n", r["spec"].get<std::string>(),
               r["family"].get<std::string>(), r["bits_per_element"].get<double>(), num(r["max"].get<double>()),
               num(r["min_positive"].get<double>()), r["summary"].get<std::string>());
  }
  fmt::print("\nOptions (spec = name[:option[=value]]...):\n");
  std::string last;
  for (const auto& e : format_entries()) {
    if (e.options == last) continue;
    last = e.options;
    fmt::print("  {:<12} {}\n", e.name, e.options);
  }
  fmt::print("\nExamples (bits/el for a 4096x4096 tensor, groups along the last axis):\n");
  for (const auto& r : out) {
    if (r["family"] != "example") continue;
    if (r.contains("error")) {
      fmt::print("  {:<38} unavailable: {}\n", r["spec"].get<std::string>(), r["error"].get<std::string>());
      continue;
    }
    fmt::print("  {:<38} {:>9.4f} {:>12} {:>12}\n", r["spec"].get<std::string>(), r["bits_per_element"].get<double>(),
               num(r["max"].get<double>()), num(r["min_positive"].get<double>()));
  }
  return 0;
}

Tensor load_one(const std::string& spec) {
  std::vector<Tensor> ts = load_tensors(spec);
  if (ts.size() != 1) {
    std::vector<std::string> names;
    for (const auto& t : ts) names.push_back(t.name);
    throw Error(fmt::format("{} holds {} tensors; pick one as FILE:name ({})", spec, ts.size(), fmt::join(names, ", ")));
  }
  return std::move(ts[0]);
}

Tensor u_tensor(const Section& s, const Shape& shape, std::span<const uint32_t> v) {
  const int bits = s.dtype == "u8" ? 8 : (s.dtype == "u16" ? 16 : 32);
  if (bits == 8) {
    std::vector<uint8_t> b(v.begin(), v.end());
    return tensor_from_raw(DType::U8, shape, std::as_bytes(std::span(b)));
  }
  if (bits == 16) {
    std::vector<uint16_t> b(v.begin(), v.end());
    return tensor_from_raw(DType::U16, shape, std::as_bytes(std::span(b)));
  }
  return tensor_from_raw(DType::U32, shape, std::as_bytes(v));
}

void write_tensor(const std::string& path, Tensor t) {
  if (path.size() > 12 && path.ends_with(".safetensors")) {
    if (t.name.empty()) t.name = "tensor";
    write_safetensors(path, {t});
  } else {
    write_npy(path, t);
  }
}

int cmd_quantize(const std::string& spec, const std::string& in, const std::string& out, const std::string& codes_path,
                 const std::string& scales_path, const std::string& packed_path, int axis) {
  const auto f = make_format(spec);
  const Tensor t = load_one(in);
  const AxisMove am = axis_move(t.shape, axis);
  const std::vector<float> x = move_axis(am, to_f32(t), false);
  const PackedTensor p = f->encode(x, am.moved);
  std::vector<float> y(x.size());
  f->decode(p, y);
  if (!out.empty()) write_tensor(out, tensor_from_f32(t.shape, move_axis(am, y, true), t.name));
  if (!codes_path.empty()) {
    const std::vector<uint32_t> codes = move_axis(am, f->unpacked_codes(p), true);
    const int bits = p.code_bits <= 8 ? 8 : (p.code_bits <= 16 ? 16 : 32);
    Section proto{"codes", bits == 8 ? "u8" : (bits == 16 ? "u16" : "u32"), {}, {}};
    write_tensor(codes_path, u_tensor(proto, t.shape, codes));
  }
  if (!scales_path.empty()) {
    // The per-block section: the scales, or for NF4 with double quantisation the 8-bit absmax
    // codes, or for LZS the per-group FLAGs (its shared exponents).
    const Section* s = p.find("scales");
    if (!s) s = p.find("absmax_codes");
    if (!s) s = p.find("flags");
    if (!s) throw Error(fmt::format("format {} has no per-block scales (it is a plain cast)", spec));
    if (s->dtype == "f32") {
      write_tensor(scales_path, tensor_from_f32(s->shape, section_f32(*s)));
    } else {
      write_tensor(scales_path, u_tensor(*s, s->shape, section_u32(*s)));
    }
  }
  if (!packed_path.empty()) write_packed(packed_path, p);
  fmt::print("{}: {} {} -> {} ({:.4f} bits/element)\n", spec, in, shape_str(t.shape), out.empty() ? "-" : out,
             f->bits_per_element(t.shape));
  return 0;
}

int cmd_dequantize(const std::string& packed_path, const std::string& out) {
  const PackedTensor p = read_packed(packed_path);
  const auto f = make_format(p.spec);
  std::vector<float> y(static_cast<size_t>(shape_numel(p.shape)));
  f->decode(p, y);
  write_tensor(out, tensor_from_f32(p.shape, y));
  fmt::print("{}: {} {} -> {}\n", p.spec, packed_path, shape_str(p.shape), out);
  return 0;
}

int cmd_error(const std::string& specs, const std::string& in, bool json, int axis) {
  const std::vector<std::string> list = split_specs(specs);
  std::vector<std::unique_ptr<TensorFormat>> formats;
  for (const auto& s : list) formats.push_back(make_format(s));  // bad specs fail before any work
  const std::vector<Tensor> tensors = load_tensors(in);
  nlohmann::json rows = nlohmann::json::array();
  for (const Tensor& t : tensors) {
    // The error metrics do not depend on element order: quantise along --axis, compare as is.
    const AxisMove am = axis_move(t.shape, axis);
    const std::vector<float> x = move_axis(am, to_f32(t), false);
    const Shape& shape = am.moved;
    if (x.empty()) throw Error(fmt::format("{}{}: empty tensor", in, t.name.empty() ? "" : ":" + t.name));
    const std::string label = t.name.empty() ? in : t.name;
    if (!json) {
      fmt::print("\n{} {} {}\n", label, shape_str(t.shape), dtype_name(t.dtype));
      fmt::print("  {:<30} {:>8} {:>12} {:>12} {:>9} {:>12}\n", "format", "bits/el", "MSE", "rel MSE", "SQNR dB",
                 "max |err|");
    }
    std::vector<float> y(x.size());
    for (const auto& f : formats) {
      nlohmann::json r{{"tensor", label}, {"shape", t.shape}, {"format", f->spec()}};
      try {
        f->fake_quant(x, shape, y);
        const ErrorMetrics m = error_metrics(x, y);
        const double bits = f->bits_per_element(shape);
        r.update({{"bits_per_element", bits}, {"mse", m.mse}, {"rel_mse", m.rel_mse}, {"sqnr_db", m.sqnr_db},
                  {"max_abs_err", m.max_abs}, {"count", m.count}, {"skipped_nonfinite", m.skipped},
                  {"nonfinite_out", m.nonfinite_out}});
        if (!json) {
          fmt::print("  {:<30} {:>8.4f} {:>12.5g} {:>12.5g} {:>9.3f} {:>12.5g}{}\n", f->spec(), bits, m.mse,
                     m.rel_mse, m.sqnr_db, m.max_abs,
                     m.nonfinite_out ? fmt::format("  ({} non-finite outputs)", m.nonfinite_out) : "");
        }
      } catch (const Error& e) {
        r["error"] = e.what();
        if (!json) fmt::print("  {:<30} n/a: {}\n", f->spec(), e.what());
      }
      rows.push_back(r);
    }
  }
  if (json) {
    // JSON has no NaN/Inf: write them as null.
    for (auto& r : rows)
      for (auto& [k, v] : r.items())
        if (v.is_number_float() && !std::isfinite(v.get<double>())) v = nullptr;
    fmt::print("{}\n", rows.dump(2));
  }
  return 0;
}

int cmd_synth(const std::string& dist, const std::string& shape_s, uint64_t seed, const std::string& out,
              const std::string& name) {
  Shape shape;
  for (const auto& d : split_specs(shape_s)) {
    int64_t v = 0;
    try {
      size_t pos = 0;
      v = std::stoll(d, &pos);
      if (pos != d.size()) throw std::invalid_argument(d);
    } catch (const std::exception&) {
      throw Error(fmt::format("--shape: '{}' is not an integer", d));
    }
    shape.push_back(v);
  }
  const std::vector<float> x = synthetic_tensor(dist, shape, seed);
  write_tensor(out, tensor_from_f32(shape, x, name));
  fmt::print("{} {} seed {} -> {}\n", dist, shape_str(shape), seed, out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lowbit: bit-exact simulator for low-bit numeric formats"};
  app.require_subcommand(1);

  bool json = false;
  auto* formats = app.add_subcommand("formats", "list every registered format");
  formats->add_flag("--json", json, "machine-readable output");

  std::string spec, in, out, codes, scales, packed;
  auto* quantize = app.add_subcommand("quantize", "fake-quantise a tensor; optionally write codes, scales, packed bytes");
  quantize->add_option("--format,-f", spec, "format spec, e.g. int4:g64, mxfp4, nvfp4")->required();
  quantize->add_option("--in,-i", in, "input X.npy | X.safetensors[:name]")->required();
  quantize->add_option("--out,-o", out, "fake-quantised float32 output (.npy or .safetensors)");
  quantize->add_option("--codes", codes, "element codes, one unsigned integer per element (.npy)");
  quantize->add_option("--scales", scales, "scale codes, one per block (.npy)");
  quantize->add_option("--packed", packed, "packed tensor container (.bin, docs/layouts.md)");
  int axis = -1;
  quantize->add_option("--axis", axis, "axis the groups run along (default -1, the last); scales and packed "
                                       "bytes are laid out with that axis moved last")
      ->capture_default_str();

  auto* dequantize = app.add_subcommand("dequantize", "decode a packed tensor container to float32");
  dequantize->add_option("--packed", packed, "packed tensor (.bin)")->required();
  dequantize->add_option("--out,-o", out, "output .npy or .safetensors")->required();

  std::string specs;
  auto* error = app.add_subcommand("error", "rounding error of formats on tensors");
  std::string weight, algos, wq = "int4:g64", aq = "int4:g64";
  error->add_option("--formats,-f", specs, "comma-separated format specs (tensor mode)");
  error->add_option("--in,-i", in, "X.npy | X.safetensors[:name]")->required();
  error->add_option("--weight,-w", weight, "layer weight [out, in]: algorithm mode, the error is the layer output's");
  error->add_option("--algorithms,-a", algos, "comma-separated algorithm specs (lowbit algorithms), with --weight");
  error->add_option("--wq", wq, "weight-side quantizer: a format spec, rtn:..., or none")->capture_default_str();
  error->add_option("--aq", aq, "activation-side quantizer: a format spec, rtn:..., or none")->capture_default_str();
  error->add_flag("--json", json, "machine-readable output");
  error->add_option("--axis", axis, "axis the groups run along (default -1, the last)")->capture_default_str();

  std::string dist = "gaussian", shape = "256,512", name;
  uint64_t seed = 0;
  auto* synth = app.add_subcommand("synth", "write a synthetic tensor (" + synthetic_distributions() + ")");
  synth->add_option("--dist", dist, "distribution")->capture_default_str();
  synth->add_option("--shape", shape, "comma-separated shape")->capture_default_str();
  synth->add_option("--seed", seed, "seed")->capture_default_str();
  synth->add_option("--name", name, "tensor name (safetensors output)");
  synth->add_option("--out,-o", out, "output .npy or .safetensors")->required();

  lowbit::cli::Commands commands;
  lowbit::cli::add_analysis_commands(app, commands);
  lowbit::cli::add_linear_commands(app, commands);
  lowbit::cli::add_mixprec_commands(app, commands);
  lowbit::cli::add_crosscheck_commands(app, commands);
  lowbit::cli::add_sweep_commands(app, commands);
  lowbit::cli::add_e2e_commands(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*formats) return cmd_formats(json);
    if (*quantize) return cmd_quantize(spec, in, out, codes, scales, packed, axis);
    if (*dequantize) return cmd_dequantize(packed, out);
    if (*error) {
      if (weight.empty() != algos.empty()) throw Error("error: --weight and --algorithms go together");
      if (!algos.empty()) {
        if (!specs.empty()) throw Error("error: give --formats (tensor mode) or --weight/--algorithms, not both");
        return lowbit::cli::run_error_algorithms(in, weight, algos, wq, aq, json);
      }
      if (specs.empty()) throw Error("error: --formats is required (or --weight with --algorithms)");
      return cmd_error(specs, in, json, axis);
    }
    if (*synth) return cmd_synth(dist, shape, seed, out, name);
    for (const auto& c : commands)
      if (*c.sub) return c.run();
  } catch (const Error& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lowbit: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
