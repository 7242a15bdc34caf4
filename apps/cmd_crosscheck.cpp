// `lowbit crosscheck`: the GPU kernels against the CPU reference, byte for byte (codes, packed
// bytes, scales and every other section, fake-quantised and decoded values). --exhaustive runs
// all 2^32 float32 bit patterns through the plain element formats; block formats get the
// adversarial input set of sim/crosscheck.hpp. Exit 0: identical; 3: mismatches (printed with
// the first offending inputs in hex); 1: bad input or no GPU (one error line).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <variant>

#include "apps/commands.hpp"
#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "gpu/gpu.hpp"
#include "sim/crosscheck.hpp"

namespace lowbit::cli {
namespace {

struct CrosscheckArgs {
  std::string formats;
  bool exhaustive = false;
  int64_t size = int64_t{1} << 22;
  int64_t cols = 0;  // 0: crosscheck_shape's choice
  uint64_t seed = 1;
};

// Every registered format, plus the scaled variants the README documents.
std::vector<std::string> all_specs() {
  std::vector<std::string> s;
  for (const auto& e : format_entries()) {
    try {
      make_format(e.name);  // entries such as "exmy" or "codebook" are templates, not formats
      s.push_back(e.name);
    } catch (const Error&) {
    }
  }
  for (const char* v : {"int4:g64", "int4:g32:scale=fp16", "uint4:g128", "int8:row", "int4:col", "int8:tensor",
                        "int4:g64:asym:scale=bf16", "int4:g16:sym=full", "int4:g16:round=sr:seed=3",
                        "fp4_e2m1:g16:scale=e4m3", "fp8_e4m3:g32:scale=e8m0", "fp6_e2m3:g32:scale=e8m0:op=mul",
                        "fp8_e4m3:round=sr:seed=5", "fp8_e5m2:overflow=inf", "fp8_e4m3:nan=mldtypes"})
    s.push_back(v);
  return s;
}

CrosscheckReport check_one(const TensorFormat& f, const CrosscheckArgs& a, bool& exhaustive_done) {
  const FormatParams p = f.params();
  const auto* e = std::get_if<ElementParams>(&p);
  CrosscheckReport total;
  total.spec = f.spec();
  exhaustive_done = a.exhaustive && e && e->gran == Granularity::None;
  if (exhaustive_done) {
    // All 2^32 bit patterns in chunks of 2^28: codes and fake-quantised values (the packed
    // layout and its bytes are checked on the adversarial set; packing does not see values).
    const int64_t chunk = int64_t{1} << 28;
    std::vector<float> x(static_cast<size_t>(chunk)), cv(x.size()), gv(x.size());
    std::vector<uint32_t> gc(x.size());
    for (uint64_t first = 0; first < (uint64_t{1} << 32); first += static_cast<uint64_t>(chunk)) {
      bit_pattern_chunk(first, x);
      const Shape s{chunk};
      const std::vector<uint32_t> cc = f.unpacked_codes(f.encode(x, s));
      f.fake_quant(x, s, cv);
      gpu::encode_codes(f, x, s, gc);
      gpu::fake_quant(f, x, s, gv);
      int64_t bad_codes = 0, bad_values = 0;
#pragma omp parallel for reduction(+ : bad_codes, bad_values)
      for (int64_t i = 0; i < chunk; ++i) {
        bad_codes += cc[i] != gc[i];
        bad_values += std::memcmp(&cv[i], &gv[i], 4) != 0;
      }
      total.code_mismatches += bad_codes;
      total.value_mismatches += bad_values;
      total.elements += chunk;
      for (int64_t i = 0; i < chunk && (bad_codes || bad_values) && total.first.size() < 8; ++i) {
        if (cc[i] == gc[i] && std::memcmp(&cv[i], &gv[i], 4) == 0) continue;
        uint32_t xb, cb, gb;
        std::memcpy(&xb, &x[i], 4);
        std::memcpy(&cb, &cv[i], 4);
        std::memcpy(&gb, &gv[i], 4);
        total.first.push_back(fmt::format("{} x = 0x{:08x}: code cpu 0x{:x} gpu 0x{:x}; value cpu 0x{:08x} gpu 0x{:08x}",
                                          f.spec(), xb, cc[i], gc[i], cb, gb));
      }
    }
    return total;
  }
  Shape s;
  if (a.cols > 0) {
    s = {std::max<int64_t>(24, a.size / a.cols), a.cols};  // every input kind at least twice
    f.check_shape(s);
  } else {
    s = crosscheck_shape(f, a.size);
  }
  const std::vector<float> x = crosscheck_inputs(f, s, a.seed);
  return crosscheck_gpu(f, x, s);
}

int run_crosscheck(const CrosscheckArgs& a) {
  std::string why;
  if (!gpu::available(&why)) throw Error("crosscheck needs a GPU: " + why);
  const std::vector<std::string> specs = a.formats == "all" ? all_specs() : split_specs(a.formats);
  std::vector<std::unique_ptr<TensorFormat>> formats;
  for (const auto& s : specs) formats.push_back(make_format(s));  // bad specs fail before any work
  fmt::print("GPU: {}\n", gpu::device_name());
  int bad = 0;
  for (const auto& f : formats) {
    if (!gpu::supports(*f)) {
      fmt::print("{:<40} NO KERNELS (family {} has no GPU implementation in this build)\n", f->spec(), f->family());
      ++bad;
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    bool exhaustive = false;
    const CrosscheckReport r = check_one(*f, a, exhaustive);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r.ok()) {
      fmt::print("{:<40} OK   {} elements{}: codes, packed bytes, scales and values identical ({:.1f} s)\n", f->spec(),
                 r.elements, exhaustive ? " (all 2^32 bit patterns)" : "", secs);
    } else {
      ++bad;
      fmt::print("{:<40} MISMATCH  {} elements: {} codes, {} packed bytes, {} section bytes, {} values differ\n", f->spec(),
                 r.elements, r.code_mismatches, r.byte_mismatches, r.section_mismatches, r.value_mismatches);
      for (const auto& l : r.first) fmt::print("    {}\n", l);
    }
  }
  fmt::print("{} of {} formats identical on the GPU\n", formats.size() - bad, formats.size());
  return bad ? 3 : 0;
}

}  // namespace

void add_crosscheck_commands(CLI::App& app, Commands& out) {
  auto a = std::make_shared<CrosscheckArgs>();
  auto* c = app.add_subcommand("crosscheck", "GPU kernels vs the CPU reference, byte for byte (exit 3 on a mismatch)");
  c->add_option("--format,-f", a->formats, "comma-separated format specs, or 'all'")->required();
  c->add_flag("--exhaustive", a->exhaustive, "all 2^32 float32 inputs for plain element formats");
  c->add_option("--size", a->size, "elements of the adversarial input set")->capture_default_str();
  c->add_option("--seed", a->seed, "seed of the input set")->capture_default_str();
  c->add_option("--cols", a->cols, "columns of the input set (default: 4096·k, the first the format accepts)")
      ->check(CLI::PositiveNumber);
  out.push_back({c, [a] { return run_crosscheck(*a); }});
}

}  // namespace lowbit::cli
