// End-to-end plumbing (sim/e2e.hpp): what calibration captures per layer, the bit accounting of a
// quantized model, the full-precision recipe quantizing nothing, and sampling through the hook.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "formats/error.hpp"
#include "sim/e2e.hpp"
#include "sim/safetensors.hpp"

namespace lowbit {
namespace {

const DitModel& model() {
  static const DitModel m = DitModel::load(std::filesystem::path(LOWBIT_SOURCE_DIR) / "models/tinydit");
  return m;
}

TEST(E2e, CalibrationCapturesEveryLayerAtTheListedSteps) {
  CalibrationPlan plan;
  plan.images = 2;
  plan.steps = {0, 1, 7};  // 7 is beyond a 2-step run: skipped
  plan.rows = 64;
  SamplerOptions s;
  s.steps = 2;
  int64_t calls = 0;
  const CalibrationSet c = capture_calibration(model(), plan, s, [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(total, 2);
    EXPECT_EQ(done, calls);
  });
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(c.size(), 44u);
  for (const auto& name : model().linear_names()) {
    const quant::MatrixF& x = c.at(name);
    const bool per_image = name.starts_with("t_embedder") || name.find("adaLN") != std::string::npos;
    // per step: 2 images x 2 (CFG) rows per image (per-image layers) or x 256 tokens, thinned to
    // 32 rows per step; then at most 64 rows
    EXPECT_EQ(x.rows(), per_image ? 8 : 64) << name;
    EXPECT_EQ(x.cols(), model().weight(name).cols()) << name;
    EXPECT_TRUE(x.allFinite()) << name;
  }
  // The adaLN input at step 0 is SiLU(c) of the CFG batch: its rows differ between conditional and
  // null labels.
  const quant::MatrixF& ada = c.at("blocks.0.adaLN_modulation.1");
  EXPECT_GT((ada.row(0) - ada.row(2)).norm(), 0.0f);
  plan.steps = {5};
  EXPECT_THROW(capture_calibration(model(), plan, s), Error);
}

TEST(E2e, CalibrationCacheReturnsTheCapturedSetAndRejectsAnIncompleteFile) {
  CalibrationPlan plan;
  plan.images = 1;
  plan.steps = {0, 1};
  plan.rows = 32;
  SamplerOptions s;
  s.steps = 2;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "lowbit_test_calib_cache";
  std::filesystem::remove_all(dir);
  const CalibrationSet direct = capture_calibration(model(), plan, s);
  bool cached = true;
  const CalibrationSet first = cached_calibration(model(), plan, s, dir, &cached);
  EXPECT_FALSE(cached);
  const CalibrationSet second = cached_calibration(model(), plan, s, dir, &cached);
  EXPECT_TRUE(cached);
  ASSERT_EQ(second.size(), direct.size());
  for (const auto& [name, x] : direct) {
    EXPECT_EQ(first.at(name), x) << name;
    EXPECT_EQ(second.at(name), x) << name;  // bit for bit: the file holds float32
  }
  // Another plan (more rows) is another file, not this one.
  plan.rows = 16;
  cached_calibration(model(), plan, s, dir, &cached);
  EXPECT_FALSE(cached);
  // A quantized model from the cache equals one calibrated afresh.
  Recipe r = parse_recipe(R"({"default": {"weight": "int4:g64", "act": "int4:g64", "algorithm": "smoothquant"},
                              "calibration": {"images": 1, "steps": [0, 1], "rows": 32}})", "r.json");
  const QuantizedDit fresh = quantize_dit(model(), r, s);
  const QuantizedDit from_cache = quantize_dit(model(), r, s, {}, dir);
  EXPECT_FALSE(fresh.calibration_cached);
  EXPECT_TRUE(from_cache.calibration_cached);
  for (const auto& [name, l] : fresh.layers) {
    EXPECT_EQ(from_cache.layers.at(name).weight, l.weight) << name;
    EXPECT_EQ(from_cache.layers.at(name).smooth, l.smooth) << name;
  }
  // A file with a layer missing is an error naming the file, not a silent recapture.
  plan.rows = 32;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
  for (const auto& f : files) {
    std::vector<Tensor> t = read_safetensors(f);
    t.pop_back();
    write_safetensors(f, t, {});
  }
  EXPECT_THROW(cached_calibration(model(), plan, s, dir, &cached), Error);
  std::filesystem::remove_all(dir);
}

// quantize_dit quantizes the layers in parallel (dynamically scheduled): two runs give the same
// layers bit for bit, whichever thread took which layer.
// Every recipe of the experiment quantizes every layer it plans: each distinct plan runs once on
// the layer with the fewest rows and columns it covers (an algorithm option outside its range, a
// rank too large for a layer or a spec typo fails here instead of minutes into a GPU run).
TEST(E2e, EveryExperimentRecipeQuantizesEachOfItsPlans) {
  const auto dir = std::filesystem::path(LOWBIT_SOURCE_DIR) / "experiments/e2e/recipes";
  int recipes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++recipes;
    const Recipe r = load_recipe(entry.path());
    std::map<std::string, std::string> smallest;  // plan -> layer
    for (const auto& name : model().linear_names()) {
      const LayerPlan p = r.plan_for(name);
      const std::string key = p.weight + "|" + p.act + "|" + p.algorithm;
      auto dims = [&](const std::string& l) { return std::min(model().weight(l).rows(), model().weight(l).cols()); };
      auto it = smallest.find(key);
      if (it == smallest.end() || dims(name) < dims(it->second)) smallest[key] = name;
    }
    for (const auto& [key, layer] : smallest) {
      const quant::MatrixF& w = model().weight(layer);
      quant::MatrixF x = quant::MatrixF::Random(48, w.cols());
      try {
        quantize_layer(r.plan_for(layer), x, w, model().bias(layer), r.seed);
      } catch (const std::exception& e) {
        ADD_FAILURE() << entry.path().filename() << ": " << key << " on " << layer << ": " << e.what();
      }
    }
  }
  EXPECT_GE(recipes, 11);
}

TEST(E2e, ParallelQuantizationIsDeterministic) {
  SamplerOptions s;
  s.steps = 2;
  const Recipe r = parse_recipe(R"({"default": {}, "layers": [{"match": "blocks.0.*", "weight": "int4:g64",
      "act": "int4:g64", "algorithm": "svdquant:rank=16"}], "calibration": {"images": 1, "steps": [0, 1], "rows": 64}})",
                                "r.json");
  const QuantizedDit a = quantize_dit(model(), r, s);
  const QuantizedDit b = quantize_dit(model(), r, s);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  EXPECT_EQ(a.layers.at("blocks.0.mlp.fc1").rank(), 16);
  for (const auto& [name, l] : a.layers) {
    const quant::QuantizedLinear& m = b.layers.at(name);
    EXPECT_EQ(l.weight, m.weight) << name;
    EXPECT_EQ(l.smooth, m.smooth) << name;
    EXPECT_EQ(l.lr_up, m.lr_up) << name;
    EXPECT_EQ(l.lr_down, m.lr_down) << name;
    EXPECT_EQ(l.info, m.info) << name;
  }
  // A failing layer is an error naming it, not a crash inside the parallel loop.
  const Recipe bad = parse_recipe(R"({"default": {}, "layers": [{"match": "final_layer.linear", "weight": "int4:g64",
      "act": "int4:g64", "algorithm": "svdquant:rank=16"}], "calibration": {"images": 1, "steps": [0], "rows": 16}})",
                                  "bad.json");
  try {
    quantize_dit(model(), bad, s);
    ADD_FAILURE() << "rank 16 on a 12-output layer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("final_layer.linear"), std::string::npos) << e.what();
  }
}

TEST(E2e, BitsAndHookOfAQuantizedModel) {
  SamplerOptions s;
  s.steps = 2;
  const Recipe fp = full_precision_recipe();
  const QuantizedDit none = quantize_dit(model(), fp, s);
  EXPECT_TRUE(none.layers.empty());
  EXPECT_EQ(none.plans.size(), 44u);

  Recipe bf = parse_recipe(R"({"default": {"keep": "bf16"}, "calibration": {"images": 1, "steps": [0], "rows": 16}})", "bf.json");
  const QuantizedDit q = quantize_dit(model(), bf, s);
  ASSERT_EQ(q.layers.size(), 44u);
  EXPECT_DOUBLE_EQ(q.weight_bits, 16.0);
  EXPECT_DOUBLE_EQ(q.act_bits, 16.0);
  for (const auto& [name, l] : q.layers) EXPECT_FALSE(l.float32_products) << name;
  bf.float32_products = true;  // the recipe's "products" reaches every layer, and only the products change
  const QuantizedDit q32 = quantize_dit(model(), bf, s);
  for (const auto& [name, l] : q32.layers) {
    EXPECT_TRUE(l.float32_products) << name;
    EXPECT_EQ(l.weight, q.layers.at(name).weight) << name;
  }

  GenerateOptions g;
  g.n = 2;
  g.sampler.steps = 2;
  const Generated ref = generate_images(model(), nullptr, g);
  QuantizedHook hook(q);
  const Generated b = generate_images(model(), &hook, g);
  ASSERT_EQ(ref.images.size(), b.images.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.images.size(); ++i) {
    num += (ref.images[i] - b.images[i]) * (ref.images[i] - b.images[i]);
    den += ref.images[i] * ref.images[i];
  }
  EXPECT_GT(num, 0.0) << "bf16 rounding changes the images";
  EXPECT_LT(num / den, 1e-3) << "but only slightly";
  // Batching does not change which noise and label an image gets.
  g.batch = 1;
  const Generated one = generate_images(model(), nullptr, g);
  EXPECT_EQ(one.labels, ref.labels);
  double d = 0;
  for (size_t i = 0; i < ref.images.size(); ++i) d = std::max(d, static_cast<double>(std::fabs(one.images[i] - ref.images[i])));
  EXPECT_LT(d, 1e-4);
}

// A quantized model is chaotic in its input (the basis of the GPU engine's tolerance,
// tests/gpu/test_dit_gpu.cpp): moving every input value by one ulp changes a W4A4 forward by
// about 1 % of its norm (activation codes flip and the flips cascade through the layers), while
// the full-precision forward moves by about 1e-7.
TEST(E2e, QuantizedForwardIsChaoticInItsInput) {
  Recipe r = load_recipe(std::filesystem::path(LOWBIT_SOURCE_DIR) / "experiments/e2e/recipes/w4a4_int4_g64.json");
  r.calibration.images = 2;
  SamplerOptions s;
  s.steps = 10;
  const QuantizedDit q = quantize_dit(model(), r, s);
  QuantizedHook hook(q);
  std::vector<float> x = dit_noise(3, 0, 3072);
  const std::vector<float> x1 = dit_noise(3, 1, 3072);
  x.insert(x.end(), x1.begin(), x1.end());
  std::vector<float> xp = x;
  for (size_t i = 0; i < xp.size(); ++i) xp[i] = std::nextafter(xp[i], i % 2 ? 10.0f : -10.0f);
  const std::vector<float> t = {730.0f, 310.0f};
  const std::vector<int32_t> y = {2, 9};
  auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
      den += static_cast<double>(b[i]) * b[i];
    }
    return std::sqrt(num / den);
  };
  const double fp = rel(model().forward(xp, t, y), model().forward(x, t, y));
  const std::vector<float> vq = model().forward(x, t, y, &hook);
  const double quant = rel(model().forward(xp, t, y, &hook), vq);
  const double effect = rel(vq, model().forward(x, t, y));
  std::printf("  one-ulp sensitivity: full precision %.3g, W4A4 %.3g (quantization effect %.3g)\n", fp, quant, effect);
  EXPECT_LT(fp, 1e-5);
  EXPECT_GT(quant, 1000.0 * fp);
  EXPECT_LT(quant, effect);
}

}  // namespace
}  // namespace lowbit
