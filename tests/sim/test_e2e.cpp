// End-to-end plumbing (sim/e2e.hpp): what calibration captures per layer, the bit accounting of a
// quantized model, the full-precision recipe quantizing nothing, and sampling through the hook.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/error.hpp"
#include "sim/e2e.hpp"

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

}  // namespace
}  // namespace lowbit
