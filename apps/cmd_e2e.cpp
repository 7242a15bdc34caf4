// `lowbit generate` and `lowbit evaluate`: the DiT end to end under a quantization recipe
// (sim/e2e.hpp, docs/e2e.md).
//
//   generate  samples N images (image i: noise dit_noise(seed, i), class i mod 12) through the
//             recipe's quantized layers; writes OUT/samples.npz (images, labels), OUT/grid.png
//             and OUT/run.json
//   evaluate  the same, plus the full-precision images from the same noise and labels (cached
//             under --cache when given, as are the calibration sets of both commands) and the
//             metrics: FID vs full precision and vs real crops (bootstrap CIs), PSNR and SSIM vs
//             full precision, bits per weight / activation,
//             wall times; writes OUT/metrics.json, OUT/compare.png (full precision above the
//             recipe's images) and OUT/samples.npz
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

#include "apps/commands.hpp"
#include "formats/error.hpp"
#include "gpu/gpu.hpp"
#include "sim/dit.hpp"
#include "sim/e2e.hpp"
#include "sim/image_io.hpp"
#include "sim/progress.hpp"
#include "sim/safetensors.hpp"
#include "sim/tensor.hpp"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

struct E2eArgs {
  std::string recipe = "fp32";
  std::string model = "models/tinydit";
  std::string featnet = "models/featnet";
  std::string device = "cpu";
  std::string out;
  std::string cache;
  int64_t n = 12;
  int64_t steps = 0;   // 0: the model's default
  double cfg = -1;     // < 0: the model's default
  uint64_t seed = 0;
  int64_t batch = 16;
  int64_t bootstrap = 1000;
  bool quiet = false;
};

void add_common(CLI::App* sub, E2eArgs& a) {
  sub->add_option("--recipe,-r", a.recipe, "recipe file (docs/e2e.md), or fp32")->capture_default_str();
  sub->add_option("--n", a.n, "images (image i has class i mod the class count)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  sub->add_option("--device", a.device, "cpu | cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--out,-o", a.out, "output directory")->required();
  sub->add_option("--model", a.model, "DiT directory (config.json + tinydit.safetensors)")->capture_default_str();
  sub->add_option("--steps", a.steps, "Euler steps (default: the model's, 50)")->check(CLI::Range(1, 100000));
  sub->add_option("--cfg", a.cfg, "classifier-free guidance scale (default: the model's, 2.0; 1 = none)")->check(CLI::Range(0.0, 100.0));
  sub->add_option("--seed", a.seed, "noise seed")->capture_default_str();
  sub->add_option("--batch", a.batch, "images per sampler call")->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_flag("--quiet,-q", a.quiet, "no progress output");
}

struct Setup {
  DitModel model;
  Recipe recipe;
  GenerateOptions gen;
};

Setup setup(const E2eArgs& a) {
  if (a.device == "cuda") {
    std::string why;
    if (!gpu::available(&why)) throw Error("--device cuda: " + why);
  }
  Setup s{DitModel::load(a.model), recipe_from_arg(a.recipe), {}};
  s.gen.n = a.n;
  s.gen.seed = a.seed;
  s.gen.batch = a.batch;
  s.gen.sampler.steps = a.steps > 0 ? a.steps : s.model.config().sample_steps;
  s.gen.sampler.cfg_scale = static_cast<float>(a.cfg >= 0 ? a.cfg : s.model.config().cfg_scale);
  fs::create_directories(a.out);
  return s;
}

std::function<void(const std::string&)> logger(bool quiet) {
  if (quiet) return {};
  return [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
}

// Samples on the CPU engine (through the quantized layers' hook) or the GPU engine.
Generated run_generation(const DitModel& model, const QuantizedDit& q, const GenerateOptions& g, const std::string& label,
                         bool quiet, bool cuda) {
  ProgressBar bar(quiet ? nullptr : stderr, g.n * g.sampler.steps, label);
  auto progress = [&](int64_t done, int64_t) { bar.update(done, "image-steps"); };
  if (cuda) return generate_images_gpu(model, q, g, progress);
  QuantizedHook hook(q);
  return generate_images(model, q.layers.empty() ? nullptr : &hook, g, progress);
}

void write_samples(const fs::path& path, const Generated& g, const DitConfig& c) {
  const int64_t n = static_cast<int64_t>(g.labels.size());
  Tensor labels = tensor_from_raw(DType::I32, {n}, std::as_bytes(std::span(g.labels)), "labels");
  write_npz(path, {tensor_from_f32({n, c.in_channels, c.input_size, c.input_size}, g.images, "images"), labels});
}

nlohmann::json run_json(const E2eArgs& a, const Setup& s, const QuantizedDit& q) {
  nlohmann::json j;
  j["recipe"] = s.recipe.name;
  j["recipe_arg"] = a.recipe;
  j["model"] = a.model;
  j["device"] = a.device;
  j["n"] = a.n;
  j["steps"] = s.gen.sampler.steps;
  j["cfg_scale"] = s.gen.sampler.cfg_scale;
  j["seed"] = a.seed;
  j["products"] = s.recipe.float32_products ? "float32" : "float64";  // of the quantized layers
  j["weight_bits"] = q.weight_bits;
  j["act_bits"] = q.act_bits;
  j["calibration_seconds"] = q.calibration_seconds;
  j["quantize_seconds"] = q.quantize_seconds;
  j["calibration_cached"] = q.calibration_cached;
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& [name, plan] : q.plans) {
    nlohmann::json l = {{"weight", plan.weight}, {"act", plan.act}, {"algorithm", plan.algorithm}, {"rule", plan.rule}};
    if (const auto it = q.layers.find(name); it != q.layers.end()) {
      l["weight_bits"] = it->second.weight_bits_per_element();
      l["act_bits"] = it->second.act_bits;
      l["info"] = it->second.info;
    }
    layers[name] = l;
  }
  j["layers"] = layers;
  return j;
}

void write_json(const fs::path& p, const nlohmann::json& j) {
  std::ofstream out(p);
  out << j.dump(2) << "\n";
  if (!out) throw Error(fmt::format("{}: cannot write", p.string()));
}

int run_generate(const E2eArgs& a) {
  const Setup s = setup(a);
  const QuantizedDit q = quantize_dit(s.model, s.recipe, s.gen.sampler, logger(a.quiet), a.cache);
  const Generated g = run_generation(s.model, q, s.gen, s.recipe.name, a.quiet, a.device == "cuda");
  const DitConfig& c = s.model.config();
  write_samples(fs::path(a.out) / "samples.npz", g, c);
  write_png(fs::path(a.out) / "grid.png", image_grid(g.images, a.n, c.input_size, c.input_size, c.num_classes, 2, 2));
  nlohmann::json j = run_json(a, s, q);
  j["sampling_seconds"] = g.seconds;
  j["seconds_per_image"] = g.seconds / static_cast<double>(a.n);
  write_json(fs::path(a.out) / "run.json", j);
  fmt::print("{}: {} images in {:.1f} s ({:.2f} s/image), W {:.2f} / A {:.2f} bits -> {}\n", s.recipe.name, a.n, g.seconds,
             g.seconds / static_cast<double>(a.n), q.weight_bits, q.act_bits, a.out);
  return 0;
}

// The full-precision images of this setup, from the cache when present.
Generated reference_images(const E2eArgs& a, const Setup& s) {
  fs::path cached;
  if (!a.cache.empty()) {
    fs::create_directories(a.cache);
    cached = fs::path(a.cache) / fmt::format("fp32_{}_n{}_seed{}_steps{}_cfg{}_batch{}.safetensors", a.device, a.n, a.seed,
                                             s.gen.sampler.steps, s.gen.sampler.cfg_scale, a.batch);
    if (fs::exists(cached)) {
      const std::vector<Tensor> t = read_safetensors(cached, {"images"});
      Generated g;
      g.images = to_f32(t[0]);
      g.labels = dit_labels(0, a.n, s.model.config().num_classes);
      if (static_cast<int64_t>(g.images.size()) == a.n * s.model.config().image_numel()) return g;
    }
  }
  Generated g = run_generation(s.model, QuantizedDit{}, s.gen, "fp32 reference", a.quiet, a.device == "cuda");
  if (!cached.empty()) {
    const DitConfig& c = s.model.config();
    write_safetensors(cached, {tensor_from_f32({a.n, c.in_channels, c.input_size, c.input_size}, g.images, "images")},
                      {{"seconds", fmt::format("{}", g.seconds)}});
  }
  return g;
}

int run_evaluate(const E2eArgs& a) {
  const Setup s = setup(a);
  const auto t0 = std::chrono::steady_clock::now();
  const Generated ref = reference_images(a, s);
  const QuantizedDit q = quantize_dit(s.model, s.recipe, s.gen.sampler, logger(a.quiet), a.cache);
  const Generated g = q.layers.empty() ? ref : run_generation(s.model, q, s.gen, s.recipe.name, a.quiet, a.device == "cuda");
  const DitConfig& c = s.model.config();
  nlohmann::json j = run_json(a, s, q);
  j["metrics"] = image_metrics_json(g.images, ref.images, c, a.featnet, a.bootstrap, a.seed);
  j["sampling_seconds"] = g.seconds;
  j["fp_sampling_seconds"] = ref.seconds;
  j["seconds_per_image"] = g.seconds / static_cast<double>(a.n);
  j["fp_seconds_per_image"] = ref.seconds > 0 ? nlohmann::json(ref.seconds / static_cast<double>(a.n)) : nlohmann::json("cached");
  j["wall_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_json(fs::path(a.out) / "metrics.json", j);
  write_samples(fs::path(a.out) / "samples.npz", g, c);
  const int64_t k = std::min<int64_t>(a.n, c.num_classes);
  std::vector<float> both(ref.images.begin(), ref.images.begin() + k * c.image_numel());
  both.insert(both.end(), g.images.begin(), g.images.begin() + k * c.image_numel());
  write_png(fs::path(a.out) / "compare.png", image_grid(both, 2 * k, c.input_size, c.input_size, k, 2, 2));
  const auto& m = j["metrics"];
  auto ci = [](const nlohmann::json& v, const char* f) {
    return fmt::format(fmt::runtime(f), v["value"].get<double>(), v["lo"].get<double>(), v["hi"].get<double>());
  };
  fmt::print("{} (n={}, {} steps, cfg {}): FID vs fp {}  FID vs real {} (fp: {:.1f})  PSNR {} dB  SSIM {}  "
             "W {:.2f} / A {:.2f} bits  {:.2f} s/image -> {}\n",
             s.recipe.name, a.n, s.gen.sampler.steps, s.gen.sampler.cfg_scale, ci(m["fid_vs_fp"], "{:.2f} [{:.2f}, {:.2f}]"),
             ci(m["fid_vs_real"], "{:.1f} [{:.1f}, {:.1f}]"), m["fid_fp_vs_real"].get<double>(),
             ci(m["psnr_db"], "{:.2f} [{:.2f}, {:.2f}]"), ci(m["ssim"], "{:.4f} [{:.4f}, {:.4f}]"), q.weight_bits,
             q.act_bits, g.seconds / static_cast<double>(a.n), a.out);
  return 0;
}

}  // namespace

void add_e2e_commands(CLI::App& app, Commands& out) {
  auto ga = std::make_shared<E2eArgs>();
  auto* gen = app.add_subcommand("generate", "sample images from the DiT under a quantization recipe (docs/e2e.md)");
  add_common(gen, *ga);
  gen->add_option("--cache", ga->cache, "directory caching the calibration sets (reused by later runs)");
  out.push_back({gen, [ga] { return run_generate(*ga); }});

  auto ea = std::make_shared<E2eArgs>();
  auto* ev = app.add_subcommand("evaluate", "a recipe against the full-precision model: FID (vs full precision, vs real "
                                            "crops), PSNR, SSIM, bits, time (docs/e2e.md)");
  add_common(ev, *ea);
  ev->add_option("--featnet", ea->featnet, "feature network directory (weights, real_stats.safetensors)")->capture_default_str();
  ev->add_option("--bootstrap", ea->bootstrap, "bootstrap replicates of the CIs")->capture_default_str()->check(CLI::Range(1, 100000));
  ev->add_option("--cache", ea->cache,
                 "directory caching the full-precision images and the calibration sets (reused by later runs)");
  out.push_back({ev, [ea] { return run_evaluate(*ea); }});
}

}  // namespace lowbit::cli
