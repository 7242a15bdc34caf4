// The registry: the one list of formats and the dispatch from spec names to family factories.
#include "formats/registry.hpp"

#include <fmt/format.h>

#include "formats/error.hpp"
#include "formats/factories.hpp"
#include "formats/spec.hpp"

namespace lowbit {

namespace {

constexpr const char* kElementOpts =
    "gN|row|col|tensor (scaling; none = plain cast), scale=fp32|fp16|bf16|e4m3|e8m0, scale_round=, op=div|mul, "
    "round=rne|rna|rz|rd|ru|sr, seed=N, overflow=sat|inf|nan, nan=cuda|mldtypes";
constexpr const char* kIntOpts =
    "gN|row|col|tensor (scaling; none = plain cast), sym=restricted|full, asym, scale=fp32|fp16|bf16|e4m3|e8m0, "
    "scale_round=, op=div|mul, round=rne|rna|rz|rd|ru|sr, seed=N";
constexpr const char* kMxOpts =
    "scale=floor|rceil|ceil|even (default floor, OCP), round=rne|rna|rz|rd|ru|sr, seed=N, inf=nan|sat, flush_subnormals";
constexpr const char* kCodebookOpts =
    "gN (block, default 64), dq (double quantisation), dqmap=avx2|avx512|scalar (with dq), backend=cuda|torch, "
    "order=hi|lo";

enum class Family { Element, Mx, Nvfp4, Codebook, Lzs };

struct Registered {
  FormatEntry entry;
  Family family;
};

std::vector<Registered> build_table() {
  std::vector<Registered> t;
  auto add = [&](std::string name, std::string fam, std::string summary, std::string opts, Family f) {
    t.push_back({{std::move(name), std::move(fam), std::move(summary), std::move(opts)}, f});
  };
  for (int b = 2; b <= 8; ++b)
    add(fmt::format("int{}", b), "int", fmt::format("{}-bit two's-complement integer", b), kIntOpts, Family::Element);
  for (int b = 2; b <= 8; ++b)
    add(fmt::format("uint{}", b), "int", fmt::format("{}-bit unsigned integer (asymmetric when scaled)", b), kIntOpts,
        Family::Element);
  add("fp4_e2m1", "float", "OCP FP4 E2M1 (no Inf/NaN)", kElementOpts, Family::Element);
  add("fp6_e2m3", "float", "OCP FP6 E2M3 (no Inf/NaN)", kElementOpts, Family::Element);
  add("fp6_e3m2", "float", "OCP FP6 E3M2 (no Inf/NaN)", kElementOpts, Family::Element);
  add("fp8_e4m3", "float", "OCP FP8 E4M3FN (NaN = S.1111.111, no Inf)", kElementOpts, Family::Element);
  add("fp8_e5m2", "float", "OCP FP8 E5M2 (IEEE Inf/NaN)", kElementOpts, Family::Element);
  add("e8m0", "float", "OCP E8M0 scale (unsigned power of two, NaN = 0xFF, no zero)", kElementOpts, Family::Element);
  add("fp16", "float", "IEEE binary16", kElementOpts, Family::Element);
  add("bf16", "float", "bfloat16", kElementOpts, Family::Element);
  add("eXmY", "float", "any ExMy minifloat, e.g. e3m4, e1m2 (X in 1..8, Y in 0..23)",
      std::string(kElementOpts) + ", bias=N, inf=on|off, nanenc=ieee|allones|none, sub=on|off", Family::Element);
  add("mxfp8_e4m3", "mx", "OCP MX: 32 x E4M3 + E8M0 scale", kMxOpts, Family::Mx);
  add("mxfp8_e5m2", "mx", "OCP MX: 32 x E5M2 + E8M0 scale", kMxOpts, Family::Mx);
  add("mxfp6_e2m3", "mx", "OCP MX: 32 x E2M3 + E8M0 scale", kMxOpts, Family::Mx);
  add("mxfp6_e3m2", "mx", "OCP MX: 32 x E3M2 + E8M0 scale", kMxOpts, Family::Mx);
  add("mxfp4", "mx", "OCP MX: 32 x E2M1 + E8M0 scale", kMxOpts, Family::Mx);
  add("mxint8", "mx", "OCP MX: 32 x INT8 (k/64) + E8M0 scale", std::string(kMxOpts) + ", int8_min=-127|-128",
      Family::Mx);
  add("nvfp4", "nvfp4", "NVIDIA NVFP4: 16 x E2M1 + E4M3 block scale + FP32 tensor scale",
      "variant=te|torchao|modelopt (default te), tensor_scale=on|off, round=rne|sr, seed=N", Family::Nvfp4);
  add("nf4", "codebook", "bitsandbytes NF4 codebook, blockwise absmax (block 64)", kCodebookOpts, Family::Codebook);
  add("bnb_fp4", "codebook", "bitsandbytes 'fp4' codebook (not OCP E2M1), blockwise absmax", kCodebookOpts,
      Family::Codebook);
  add("af4", "codebook", "AbnormalFloat4 codebook (arXiv 2306.06965), blockwise absmax", kCodebookOpts,
      Family::Codebook);
  add("codebook", "codebook", "user codebook, values=v0/v1/... (ascending) or file=PATH, blockwise absmax",
      std::string("values=...|file=..., ") + kCodebookOpts, Family::Codebook);
  add("lzs4", "lzs", "QuaRTZ: INT8 stage + leading-zero suppression to sign + 3 bits, shared FLAG per group",
      "gN (default 16), s8=tensor|token, calib=absmax|minmax, round=trunc|rne", Family::Lzs);
  return t;
}

const std::vector<Registered>& table() {
  static const std::vector<Registered> t = build_table();
  return t;
}

}  // namespace

const std::vector<FormatEntry>& format_entries() {
  static const std::vector<FormatEntry> entries = [] {
    std::vector<FormatEntry> e;
    for (const auto& r : table()) e.push_back(r.entry);
    return e;
  }();
  return entries;
}

std::unique_ptr<TensorFormat> make_format(std::string_view text) {
  Spec spec(text);
  for (const auto& r : table()) {
    if (r.entry.name != spec.name()) continue;
    switch (r.family) {
      case Family::Element: return make_element_format(spec);
      case Family::Mx: return make_mx_format(spec);
      case Family::Nvfp4: return make_nvfp4_format(spec);
      case Family::Codebook: return make_codebook_format(spec);
      case Family::Lzs: return make_lzs_format(spec);
    }
  }
  // Aliases and generic names (fp4, e4m3, e3m4, int16 ...) belong to the element family.
  const std::string& n = spec.name();
  const bool int_name = (n.rfind("int", 0) == 0 || n.rfind("uint", 0) == 0);
  if (int_name || named_float_format(n)) return make_element_format(spec);
  throw Error(fmt::format("unknown format '{}' (run 'lowbit formats' for the list)", spec.name()));
}

std::vector<std::string> split_specs(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(',', start);
    const std::string_view part =
        list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (part.empty()) throw Error(fmt::format("empty format in list '{}'", list));
    out.emplace_back(part);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace lowbit
