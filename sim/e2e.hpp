// End-to-end runs of the DiT under a quantization recipe (issue 6): calibration on activations
// captured from the full-precision model, the quantized layers, sampling through them, and the
// image metrics against the full-precision model's images from the same noise and labels and
// against real crops.
//
//   calibrate: the full-precision model samples recipe.calibration.images images (noise
//              dit_noise(calibration.seed, i), labels i mod classes, the run's steps and CFG);
//              at each listed step index every linear's input is captured and `rows` rows are
//              kept per layer (evenly spaced over all captured rows, steps in order). Step
//              indices beyond a shorter run are skipped (logged); none left is an error
//   quantize:  each layer runs its plan's algorithm (sim/recipe.hpp quantize_layer) on its
//              captured rows, with LinearProblem::seed = recipe.seed
//   sample:    every forward of every step sends each linear through its QuantizedLinear:
//              activation quantizers run on the fly (dynamic) or with the scales frozen at
//              calibration (static), as the plan's activation spec says
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu/dit_gpu.hpp"
#include "quantizers/linear.hpp"
#include "sim/dit.hpp"
#include "sim/recipe.hpp"

namespace lowbit {

// Per-layer calibration activations (rows × in).
using CalibrationSet = std::map<std::string, quant::MatrixF, std::less<>>;

CalibrationSet capture_calibration(const DitModel& model, const CalibrationPlan& plan, const SamplerOptions& sampler,
                                   const std::function<void(int64_t, int64_t)>& progress = {});

// The calibration set of `plan` under `sampler`, read from DIR/calib_….safetensors when a
// previous run left it there (the file name holds every setting the capture depends on: images,
// seed, the steps used, rows, the run's step count and CFG scale), else captured and written
// there. Recipes with the same calibration plan share it. A file that does not hold every layer
// at its width is an error naming it, not silently recaptured. *cached says which happened.
CalibrationSet cached_calibration(const DitModel& model, const CalibrationPlan& plan, const SamplerOptions& sampler,
                                  const std::filesystem::path& dir, bool* cached = nullptr);

struct QuantizedDit {
  std::string recipe;
  std::map<std::string, quant::QuantizedLinear, std::less<>> layers;  // empty for full precision
  std::map<std::string, LayerPlan, std::less<>> plans;
  // Storage bits per element, weighted over the 44 linears: weights by parameter count; activations
  // by the activation elements each layer quantizes per image and forward (tokens × in for token
  // layers, in for the per-image ones).
  double weight_bits = 32;
  double act_bits = 32;
  double calibration_seconds = 0;
  double quantize_seconds = 0;
  bool calibration_cached = false;  // the calibration set came from the cache directory
};

// Calibrates (unless the recipe is full precision) and quantizes every layer. With a cache
// directory the calibration set comes from / goes to it (cached_calibration).
QuantizedDit quantize_dit(const DitModel& model, const Recipe& recipe, const SamplerOptions& sampler,
                          const std::function<void(const std::string&)>& log = {},
                          const std::filesystem::path& calibration_cache = {});

// The hook that runs a QuantizedDit's layers (layers it does not hold keep the plain product).
class QuantizedHook : public LinearHook {
 public:
  explicit QuantizedHook(const QuantizedDit& q) : q_(q) {}
  bool replace(std::string_view layer, const quant::MatrixF& x, quant::MatrixF& y) override;

 private:
  const QuantizedDit& q_;
};

struct GenerateOptions {
  int64_t n = 12;
  uint64_t seed = 0;   // noise of image i: dit_noise(seed, i); label i mod classes
  int64_t batch = 16;  // images per sampler call (results do not depend on it beyond float rounding)
  SamplerOptions sampler;
};

// n images (n × C × H × W, clamped) and their labels.
struct Generated {
  std::vector<float> images;
  std::vector<int32_t> labels;
  double seconds = 0;
};

Generated generate_images(const DitModel& model, LinearHook* hook, const GenerateOptions& options,
                          const std::function<void(int64_t, int64_t)>& progress = {});

// The same on the GPU engine (gpu/dit_gpu.hpp) with the QuantizedDit's layers (empty: full
// precision): the same noise, labels and time grid. Layers whose transform or activation
// quantizer has no GPU form (rotations; rtn:/pts: activation quantizers) are a lowbit::Error.
// The GPU engine with the QuantizedDit's layers (the builder generate_images_gpu uses).
std::unique_ptr<gpu::DitGpu> make_dit_gpu(const DitModel& model, const QuantizedDit& q);

Generated generate_images_gpu(const DitModel& model, const QuantizedDit& q, const GenerateOptions& options,
                              const std::function<void(int64_t, int64_t)>& progress = {});

// Metrics of generated images against the full-precision ones (same noise and labels) and
// real-crop statistics: FID vs full precision and vs real with bootstrap intervals, PSNR and SSIM
// (per image vs full precision, mean with bootstrap intervals), and FID of the full-precision
// images vs real for reference; as diagnostics, the mean part of FID vs full precision
// (|mu - mu_fp|^2, "fid_vs_fp_mean_part") and the mean pixel shift per channel
// ("pixel_mean_shift", images minus reference, in the images' [-1, 1] scale). featnet_dir: models/featnet (weights + real_stats.safetensors).
nlohmann::json image_metrics_json(const std::vector<float>& images, const std::vector<float>& reference,
                                  const DitConfig& config, const std::filesystem::path& featnet_dir,
                                  int64_t bootstrap_replicates, uint64_t seed);

}  // namespace lowbit
