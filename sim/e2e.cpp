// End-to-end runs (sim/e2e.hpp).
#include "sim/e2e.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "gpu/dit_gpu.hpp"
#include "sim/featnet.hpp"
#include "sim/fid.hpp"
#include "sim/image_batch.hpp"
#include "sim/image_metrics.hpp"
#include "sim/safetensors.hpp"

namespace lowbit {

using quant::MatrixF;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Keeps `keep` rows of every layer's input at the listed steps (evenly spaced within each step's
// rows), appended step by step.
class CaptureHook : public LinearHook {
 public:
  CaptureHook(std::vector<int64_t> steps, int64_t keep) : steps_(std::move(steps)), keep_(keep) {}
  void set_step(int64_t s) { step_ = s; }
  void observe(std::string_view layer, const MatrixF& x) override {
    if (std::find(steps_.begin(), steps_.end(), step_) == steps_.end()) return;
    const int64_t k = std::min<int64_t>(keep_, x.rows());
    auto& parts = parts_[std::string(layer)];
    MatrixF sel(k, x.cols());
    for (int64_t i = 0; i < k; ++i) sel.row(i) = x.row(k == 1 ? 0 : i * (x.rows() - 1) / (k - 1));
    parts.push_back(std::move(sel));
  }
  CalibrationSet take(int64_t rows) {
    CalibrationSet out;
    for (auto& [name, parts] : parts_) {
      int64_t total = 0;
      for (const auto& p : parts) total += p.rows();
      MatrixF all(total, parts.front().cols());
      int64_t r = 0;
      for (const auto& p : parts) {
        all.middleRows(r, p.rows()) = p;
        r += p.rows();
      }
      const int64_t k = std::min(rows, total);
      MatrixF sel(k, all.cols());
      for (int64_t i = 0; i < k; ++i) sel.row(i) = all.row(k == 1 ? 0 : i * (total - 1) / (k - 1));
      out.emplace(name, std::move(sel));
    }
    return out;
  }

 private:
  std::vector<int64_t> steps_;
  int64_t keep_;
  int64_t step_ = 0;
  std::map<std::string, std::vector<MatrixF>> parts_;
};

// The plan's step indices that a run of sampler.steps steps reaches.
std::vector<int64_t> steps_within(const CalibrationPlan& plan, const SamplerOptions& sampler) {
  std::vector<int64_t> used;
  for (const int64_t s : plan.steps)
    if (s < sampler.steps) used.push_back(s);
  return used;
}

}  // namespace

CalibrationSet capture_calibration(const DitModel& model, const CalibrationPlan& plan, const SamplerOptions& sampler,
                                   const std::function<void(int64_t, int64_t)>& progress) {
  const std::vector<int64_t> steps = steps_within(plan, sampler);
  if (steps.empty())
    throw Error(fmt::format("calibration: every step index ({}) is beyond the sampler's {} steps",
                            fmt::join(plan.steps, ", "), sampler.steps));
  const DitConfig& c = model.config();
  const int64_t n = plan.images;
  std::vector<float> noise;
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> z = dit_noise(plan.seed, i, c.image_numel());
    noise.insert(noise.end(), z.begin(), z.end());
  }
  const std::vector<int32_t> labels = dit_labels(0, n, c.num_classes);
  // Each step's rows are thinned to what the final selection can use.
  const int64_t per_step = (plan.rows + static_cast<int64_t>(steps.size()) - 1) / static_cast<int64_t>(steps.size());
  CaptureHook hook(steps, std::max<int64_t>(per_step, 1));
  SamplerOptions o = sampler;
  const int64_t last = *std::max_element(steps.begin(), steps.end());
  o.steps = sampler.steps;
  // Run the steps up to the last captured one (the sampler's time grid is that of the full run).
  const std::vector<float> ts = euler_times(sampler.steps);
  std::vector<float> x = noise, tt(static_cast<size_t>(n));
  for (int64_t i = 0; i <= last; ++i) {
    hook.set_step(i);
    const float t = ts[static_cast<size_t>(i)], dt = ts[static_cast<size_t>(i + 1)] - t;
    std::fill(tt.begin(), tt.end(), t * 1000.0f);
    const std::vector<float> v = o.cfg_scale == 1.0f ? model.forward(x, tt, labels, &hook)
                                                     : model.forward_cfg(x, tt, labels, o.cfg_scale, &hook);
    for (size_t j = 0; j < x.size(); ++j) x[j] = x[j] + dt * v[j];
    if (progress) progress(i + 1, last + 1);
  }
  return hook.take(plan.rows);
}

CalibrationSet cached_calibration(const DitModel& model, const CalibrationPlan& plan, const SamplerOptions& sampler,
                                  const std::filesystem::path& dir, bool* cached) {
  if (cached) *cached = false;
  if (dir.empty()) return capture_calibration(model, plan, sampler);
  const std::vector<int64_t> used = steps_within(plan, sampler);
  const std::filesystem::path file =
      dir / fmt::format("calib_images{}_seed{}_steps{}_rows{}_of{}_cfg{}.safetensors", plan.images, plan.seed,
                        fmt::join(used, "-"), plan.rows, sampler.steps, sampler.cfg_scale);
  if (std::filesystem::exists(file)) {
    CalibrationSet set;
    for (const Tensor& t : read_safetensors(file)) {
      if (t.shape.size() != 2) throw Error(fmt::format("{}: '{}' is not a matrix", file.string(), t.name));
      const std::vector<float> v = to_f32(t);
      set.emplace(t.name, Eigen::Map<const MatrixF>(v.data(), t.shape[0], t.shape[1]));
    }
    for (const auto& name : model.linear_names()) {
      const auto it = set.find(name);
      if (it == set.end() || it->second.cols() != model.weight(name).cols() || it->second.rows() == 0)
        throw Error(fmt::format("{}: no calibration rows of width {} for '{}' (delete the file to recapture)",
                                file.string(), model.weight(name).cols(), name));
    }
    if (cached) *cached = true;
    return set;
  }
  CalibrationSet set = capture_calibration(model, plan, sampler);
  std::vector<Tensor> tensors;
  for (const auto& [name, x] : set)
    tensors.push_back(tensor_from_f32({x.rows(), x.cols()}, std::span<const float>(x.data(), static_cast<size_t>(x.size())), name));
  std::filesystem::create_directories(dir);
  // Written under a name of this process, renamed when complete: no half-written cache, and two
  // runs capturing at once each rename a whole file.
  const std::filesystem::path tmp = file.string() + fmt::format(".tmp{}", static_cast<long>(::getpid()));
  write_safetensors(tmp, tensors, {{"content", "lowbit calibration set"}});
  std::filesystem::rename(tmp, file);
  return set;
}

QuantizedDit quantize_dit(const DitModel& model, const Recipe& recipe, const SamplerOptions& sampler,
                          const std::function<void(const std::string&)>& log,
                          const std::filesystem::path& calibration_cache) {
  QuantizedDit q;
  q.recipe = recipe.name;
  const DitConfig& c = model.config();
  double wb = 0, wn = 0, ab = 0, an = 0;
  for (const auto& name : model.linear_names()) q.plans.emplace(name, recipe.plan_for(name));
  if (recipe.full_precision()) return q;
  const auto t0 = std::chrono::steady_clock::now();
  if (log) {
    std::vector<int64_t> used, dropped;
    for (const int64_t st : recipe.calibration.steps) (st < sampler.steps ? used : dropped).push_back(st);
    log(fmt::format("calibrating: {} images, steps {}, {} rows per layer{}", recipe.calibration.images,
                    fmt::join(used, ","), recipe.calibration.rows,
                    dropped.empty() ? "" : fmt::format(" (steps {} are beyond this {}-step run: skipped)",
                                                       fmt::join(dropped, ","), sampler.steps)));
  }
  const CalibrationSet calib = cached_calibration(model, recipe.calibration, sampler, calibration_cache, &q.calibration_cached);
  q.calibration_seconds = seconds_since(t0);
  if (log && q.calibration_cached) log(fmt::format("  calibration set read from {}", calibration_cache.string()));
  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<std::string>& names = model.linear_names();
  for (const auto& name : names)
    if (!calib.contains(name)) throw Error(fmt::format("calibration captured nothing for '{}'", name));
  // The layers are independent (an algorithm's randomness comes from the recipe's seed and the
  // layer alone), so they are quantized in parallel, one layer per thread, then accounted and
  // logged in order. Which thread takes a layer does not matter; how many threads there are
  // does, in the last bits (Eigen sizes its product blocking by the thread count), as it did
  // for the serial loop's multithreaded products.
  const int64_t nl = static_cast<int64_t>(names.size());
  std::vector<quant::QuantizedLinear> done(names.size());
  std::vector<std::string> errors(names.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < nl; ++i) {
    const std::string& name = names[static_cast<size_t>(i)];
    const LayerPlan& plan = q.plans.at(name);
    try {
      done[static_cast<size_t>(i)] =
          quantize_layer(plan, calib.find(name)->second, model.weight(name), model.bias(name), recipe.seed);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = fmt::format("{}: {} (recipe {}, {})", name, e.what(), recipe.name, plan.rule);
    }
  }
  for (const std::string& e : errors)
    if (!e.empty()) throw Error(e);
  for (int64_t i = 0; i < nl; ++i) {
    const std::string& name = names[static_cast<size_t>(i)];
    const LayerPlan& plan = q.plans.at(name);
    const MatrixF& w = model.weight(name);
    quant::QuantizedLinear& l = done[static_cast<size_t>(i)];
    const bool per_image = name.starts_with("t_embedder") || name.find("adaLN") != std::string::npos;
    const double act_elems = static_cast<double>(w.cols()) * static_cast<double>(per_image ? 1 : c.tokens());
    wb += l.weight_bits_per_element() * static_cast<double>(w.size());
    wn += static_cast<double>(w.size());
    ab += l.act_bits * act_elems;
    an += act_elems;
    if (log) log(fmt::format("  {:<32} {:<10} W {:<24} A {:<24} {:.2f} / {:.2f} bits", name, plan.algorithm, plan.weight,
                             plan.act, l.weight_bits_per_element(), l.act_bits));
    l.float32_products = recipe.float32_products;
    q.layers.emplace(name, std::move(l));
  }
  q.weight_bits = wb / wn;
  q.act_bits = ab / an;
  q.quantize_seconds = seconds_since(t1);
  return q;
}

bool QuantizedHook::replace(std::string_view layer, const MatrixF& x, MatrixF& y) {
  const auto it = q_.layers.find(layer);
  if (it == q_.layers.end()) return false;
  y = it->second.forward(x);
  return true;
}

namespace {

// The batch loop of generate_images and generate_images_gpu: image i gets dit_noise(seed, i) and
// class i mod classes; `run` samples one batch and reports each finished step.
using BatchSampler = std::function<std::vector<float>(std::span<const float>, std::span<const int32_t>,
                                                      const std::function<void(int64_t)>&)>;

Generated generate_batches(const DitModel& model, const GenerateOptions& options,
                           const std::function<void(int64_t, int64_t)>& progress, const BatchSampler& run) {
  if (options.n <= 0) throw Error(fmt::format("generate: {} images (at least 1)", options.n));
  if (options.batch <= 0) throw Error(fmt::format("generate: batch {} (at least 1)", options.batch));
  const DitConfig& c = model.config();
  const auto t0 = std::chrono::steady_clock::now();
  Generated g;
  g.labels = dit_labels(0, options.n, c.num_classes);
  for (int64_t first = 0; first < options.n; first += options.batch) {
    const int64_t b = std::min(options.batch, options.n - first);
    std::vector<float> noise;
    for (int64_t i = first; i < first + b; ++i) {
      const std::vector<float> z = dit_noise(options.seed, i, c.image_numel());
      noise.insert(noise.end(), z.begin(), z.end());
    }
    const std::span<const int32_t> labels(g.labels.data() + first, static_cast<size_t>(b));
    const std::vector<float> im = run(noise, labels, [&](int64_t step) {
      if (progress) progress(first * options.sampler.steps + b * (step + 1), options.n * options.sampler.steps);
    });
    g.images.insert(g.images.end(), im.begin(), im.end());
  }
  g.seconds = seconds_since(t0);
  return g;
}

}  // namespace

Generated generate_images(const DitModel& model, LinearHook* hook, const GenerateOptions& options,
                          const std::function<void(int64_t, int64_t)>& progress) {
  return generate_batches(model, options, progress,
                          [&](std::span<const float> noise, std::span<const int32_t> labels,
                              const std::function<void(int64_t)>& step) {
                            return sample_euler(model, noise, labels, options.sampler, hook, step);
                          });
}

namespace {

std::vector<float> flat(const quant::MatrixF& m) { return std::vector<float>(m.data(), m.data() + m.size()); }
std::vector<float> flat(const quant::VectorF& v) { return std::vector<float>(v.data(), v.data() + v.size()); }

gpu::DitGpuWeights gpu_weights(const DitModel& model, const QuantizedDit& q) {
  const DitConfig& c = model.config();
  gpu::DitGpuWeights w;
  w.input_size = c.input_size;
  w.patch = c.patch_size;
  w.channels = c.in_channels;
  w.hidden = c.hidden_size;
  w.depth = c.depth;
  w.heads = c.num_heads;
  w.mlp = c.mlp_hidden();
  w.num_classes = c.num_classes;
  w.frequency_size = c.frequency_size;
  w.patch_w = flat(model.patch_weight());
  w.patch_b = flat(model.patch_bias());
  w.pos_embed = flat(model.pos_embed());
  w.y_table = flat(model.label_table());
  for (const auto& name : model.linear_names()) {
    gpu::DitGpuLayer l;
    l.name = name;
    const auto it = q.layers.find(name);
    if (it == q.layers.end()) {
      l.w = flat(model.weight(name));
      l.b = flat(model.bias(name));
      l.out = model.weight(name).rows();
      l.in = model.weight(name).cols();
    } else {
      const quant::QuantizedLinear& ql = it->second;
      l.quantized = true;
      l.w = flat(ql.weight);
      l.b = flat(ql.bias);
      l.out = ql.weight.rows();
      l.in = ql.weight.cols();
      l.smooth = flat(ql.smooth);
      if (ql.rotation) l.rotation = flat(ql.rotation->matrix());
      if (ql.act && !ql.act->is_identity()) {
        try {
          l.act = make_format(ql.act->spec());
        } catch (const Error&) {
          throw Error(fmt::format("{}: activation quantizer '{}' has no GPU kernel (registry formats only)", name,
                                  ql.act->spec()));
        }
      }
      l.rank = ql.rank();
      l.lr_up = flat(ql.lr_up);
      l.lr_down = flat(ql.lr_down);
      l.branch_fp16 = ql.branch_fp16;
      l.float32_products = ql.float32_products;
    }
    w.layers.push_back(std::move(l));
  }
  return w;
}

}  // namespace

std::unique_ptr<gpu::DitGpu> make_dit_gpu(const DitModel& model, const QuantizedDit& q) {
  return std::make_unique<gpu::DitGpu>(gpu_weights(model, q));
}

Generated generate_images_gpu(const DitModel& model, const QuantizedDit& q, const GenerateOptions& options,
                              const std::function<void(int64_t, int64_t)>& progress) {
  const DitConfig& c = model.config();
  const std::unique_ptr<gpu::DitGpu> engine = make_dit_gpu(model, q);
  const std::vector<float> times = euler_times(options.sampler.steps);
  return generate_batches(model, options, progress,
                          [&](std::span<const float> noise, std::span<const int32_t> labels,
                              const std::function<void(int64_t)>& step) {
                            return engine->sample(
                                noise, labels, times, options.sampler.cfg_scale, options.sampler.clamp,
                                [&](float t, float* out) { timestep_features(t, c.frequency_size, out); }, step);
                          });
}

nlohmann::json image_metrics_json(const std::vector<float>& images, const std::vector<float>& reference,
                                  const DitConfig& config, const std::filesystem::path& featnet_dir,
                                  int64_t bootstrap_replicates, uint64_t seed) {
  const int64_t e = config.image_numel();
  const int64_t n = static_cast<int64_t>(images.size()) / e;
  if (n < 2 || static_cast<int64_t>(images.size()) != n * e || reference.size() != images.size())
    throw Error(fmt::format("metrics: need two image sets of the same size with at least 2 images ({} and {} values)",
                            images.size(), reference.size()));
  const std::vector<int64_t> shape = {n, config.in_channels, config.input_size, config.input_size};
  const ImageBatch a = image_batch(images, shape, "generated images");
  const ImageBatch r = image_batch(reference, shape, "reference images");
  const FeatNet net = FeatNet::load_dir(featnet_dir);
  const quant::MatrixD fa = net.features(a).cast<double>(), fr = net.features(r).cast<double>();
  const FeatureStats real = read_feature_stats(featnet_dir / "real_stats.safetensors", "train");
  BootstrapOptions bo;
  bo.replicates = bootstrap_replicates;
  bo.seed = seed;
  auto ci = [](const BootstrapResult& b) {
    return nlohmann::json{{"value", b.point}, {"lo", b.lo}, {"hi", b.hi}, {"level", b.level}, {"replicates", b.replicates}};
  };
  nlohmann::json j;
  j["images"] = n;
  j["fid_vs_fp"] = ci(frechet_bootstrap_paired(fa, fr, bo));
  j["fid_vs_real"] = ci(frechet_bootstrap(fa, real, bo));
  const FeatureStats sa = feature_stats(fa), sr = feature_stats(fr);
  j["fid_fp_vs_real"] = frechet_distance(sr, real);
  // Where FID vs full precision comes from: the mean part |mu_q - mu_fp|^2 of the Fréchet distance
  // (the rest is the covariance part), and each channel's mean pixel shift (q - fp over all images
  // and pixels) — a systematic colour shift moves every image's features the same way and so
  // shows in the mean part even where PSNR hardly notices it.
  j["fid_vs_fp_mean_part"] = (sa.mu - sr.mu).squaredNorm();
  std::vector<double> shift(static_cast<size_t>(config.in_channels), 0.0);
  const int64_t plane = config.input_size * config.input_size;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < config.in_channels; ++ch)
      for (int64_t k = 0; k < plane; ++k) {
        const size_t at = static_cast<size_t>((i * config.in_channels + ch) * plane + k);
        shift[static_cast<size_t>(ch)] += static_cast<double>(images[at]) - static_cast<double>(reference[at]);
      }
  for (double& v : shift) v /= static_cast<double>(n * plane);
  j["pixel_mean_shift"] = shift;
  PsnrOptions po;
  po.max_db = 100.0;  // identical images (full precision vs itself) stay finite in the means
  const std::vector<double> p = psnr(a, r, po), s = ssim(a, r);
  j["psnr_db"] = ci(bootstrap_mean(p, bo));
  j["ssim"] = ci(bootstrap_mean(s, bo));
  j["real_stats"] = "train (featnet features of 3600 training crops, models/featnet/real_stats.safetensors)";
  return j;
}

}  // namespace lowbit
