// Quantization recipes (sim/recipe.hpp): first-match-wins rule resolution over the defaults,
// "keep" semantics, canonical specs, strict errors that name the key, and quantize_layer equal
// to running the algorithm directly.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "formats/error.hpp"
#include "quantizers/linear.hpp"
#include "quantizers/quantizer.hpp"
#include "sim/recipe.hpp"

namespace lowbit {
namespace {

constexpr const char* kRecipe = R"({
  "name": "w4a4-mixed",
  "description": "test",
  "seed": 7,
  "default": {"weight": "int4:g64", "act": "int4:g64", "algorithm": "rtn"},
  "layers": [
    {"match": "t_embedder.*", "keep": "bf16"},
    {"match": "*.adaLN_modulation.*", "keep": "fp32"},
    {"match": "blocks.*.attn.qkv", "algorithm": "svdquant:rank=8"},
    {"match": "blocks.0.*", "weight": "nvfp4", "act": "nvfp4"},
    {"match": "blocks.*.attn.*", "act": "none"}
  ],
  "calibration": {"images": 2, "seed": 5, "steps": [0, 49], "rows": 64}
})";

TEST(Recipe, FirstMatchingRuleWinsOverTheDefaults) {
  const Recipe r = parse_recipe(kRecipe, "r.json");
  EXPECT_EQ(r.name, "w4a4-mixed");
  EXPECT_EQ(r.seed, 7u);
  ASSERT_EQ(r.rules.size(), 5u);

  const LayerPlan fc2 = r.plan_for("blocks.3.mlp.fc2");
  EXPECT_EQ(fc2.rule, "default");
  EXPECT_EQ(fc2.weight, quant::make_quantizer("int4:g64")->spec());
  EXPECT_EQ(fc2.act, fc2.weight);
  EXPECT_EQ(fc2.algorithm, "rtn");

  const LayerPlan t = r.plan_for("t_embedder.mlp.0");
  EXPECT_EQ(t.rule, "layers[0]");
  EXPECT_EQ(t.weight, "bf16");
  EXPECT_EQ(t.act, "bf16");
  EXPECT_EQ(t.algorithm, "rtn");

  const LayerPlan ada = r.plan_for("blocks.5.adaLN_modulation.1");
  EXPECT_EQ(ada.rule, "layers[1]");
  EXPECT_EQ(ada.weight, quant::make_quantizer("none")->spec());
  EXPECT_EQ(r.plan_for("final_layer.adaLN_modulation.1").rule, "layers[1]");

  // blocks.0.attn.qkv: rule 2 comes first, so blocks.0.* does not apply; the fields rule 2 leaves
  // out are the defaults', not another rule's.
  const LayerPlan qkv0 = r.plan_for("blocks.0.attn.qkv");
  EXPECT_EQ(qkv0.rule, "layers[2]");
  EXPECT_EQ(qkv0.algorithm, "svdquant:rank=8");
  EXPECT_EQ(qkv0.weight, fc2.weight);
  EXPECT_EQ(r.plan_for("blocks.0.mlp.fc1").weight, quant::make_quantizer("nvfp4")->spec());
  EXPECT_EQ(r.plan_for("blocks.0.attn.proj").rule, "layers[3]");
  const LayerPlan proj = r.plan_for("blocks.4.attn.proj");
  EXPECT_EQ(proj.rule, "layers[4]");
  EXPECT_EQ(proj.act, quant::make_quantizer("none")->spec());
  EXPECT_EQ(proj.weight, fc2.weight);

  EXPECT_EQ(r.calibration.images, 2);
  EXPECT_EQ(r.calibration.seed, 5u);
  EXPECT_EQ(r.calibration.steps, (std::vector<int64_t>{0, 49}));
  EXPECT_EQ(r.calibration.rows, 64);
  EXPECT_FALSE(r.full_precision());
}

TEST(Recipe, FullPrecisionAndDefaults) {
  const Recipe fp = full_precision_recipe();
  EXPECT_TRUE(fp.full_precision());
  EXPECT_EQ(fp.plan_for("blocks.0.attn.qkv").weight, "none");
  EXPECT_TRUE(recipe_from_arg("fp32").full_precision());
  const Recipe r = parse_recipe(R"({"default": {"keep": "fp32"}})", "dir/keep_all.json");
  EXPECT_TRUE(r.full_precision());
  EXPECT_EQ(r.name, "keep_all");  // the file stem
  const CalibrationPlan c;
  EXPECT_EQ(r.calibration.images, c.images);
  EXPECT_EQ(r.calibration.steps, c.steps);
  EXPECT_FALSE(r.float32_products);
  EXPECT_TRUE(parse_recipe(R"({"products": "float32", "default": {}})", "f32.json").float32_products);
  EXPECT_FALSE(parse_recipe(R"({"products": "float64", "default": {}})", "f64.json").float32_products);
}

void expect_error(const std::string& text, const std::string& needle) {
  try {
    parse_recipe(text, "bad.json");
    ADD_FAILURE() << "no error for " << text;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("bad.json: "), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << "expected '" << needle << "' in: " << what;
  }
}

TEST(Recipe, BadFilesNameTheKey) {
  expect_error("[1]", "top level");
  expect_error("{\"default\": {\"weight\": \"int4\"}", "not valid JSON");
  expect_error(R"({"layers": []})", "default: missing");
  expect_error(R"({"default": {}, "default": {}})", "duplicate key");
  expect_error(R"({"default": {}, "colour": 1})", "colour: unknown key");
  expect_error(R"({"default": {"weight": "int4:g63x"}})", "default.weight: 'int4:g63x'");
  expect_error(R"({"default": {"act": ""}})", "default.act: expected a non-empty string");
  expect_error(R"({"default": {"algorithm": "gptq"}})", "default.algorithm: 'gptq': unknown algorithm 'gptq'");
  expect_error(R"({"default": {}, "layers": {}})", "layers: expected a list");
  expect_error(R"({"default": {}, "layers": [{"weight": "int8"}]})", "layers[0].match: missing");
  expect_error(R"({"default": {}, "layers": [{"match": "a", "keep": "fp8"}]})", "layers[0].keep: 'fp8'");
  expect_error(R"({"default": {}, "layers": [{"match": "a", "keep": "bf16", "weight": "int8"}]})",
               "layers[0].weight: not allowed with \"keep\"");
  expect_error(R"({"default": {}, "layers": [{"match": "a", "wieght": "int8"}]})", "layers[0].wieght: unknown key");
  expect_error(R"({"default": {}, "calibration": {"images": 0}})", "calibration.images: expected an integer in [1, 4096]");
  expect_error(R"({"default": {}, "calibration": {"steps": [-1]}})", "calibration.steps");
  expect_error(R"({"default": {}, "seed": -3})", "seed: expected a non-negative integer");
  expect_error(R"({"name": "a b", "default": {}})", "name: 'a b'");
  expect_error(R"({"products": "fp16", "default": {}})", "products: 'fp16': expected float64 or float32");
  expect_error(R"({"products": 32, "default": {}})", "products: expected");
}

TEST(Recipe, QuantizeLayerIsTheAlgorithmOnTheLayer) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  quant::MatrixF x(32, 64), w(16, 64);
  quant::VectorF b(16);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = n(rng);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = n(rng);
  for (int64_t i = 0; i < b.size(); ++i) b.data()[i] = n(rng);
  const Recipe r = parse_recipe(kRecipe, "r.json");
  for (const std::string layer : {"blocks.3.mlp.fc2", "blocks.1.attn.qkv", "t_embedder.mlp.0"}) {
    const LayerPlan plan = r.plan_for(layer);
    const quant::QuantizedLinear q = quantize_layer(plan, x, w, b, r.seed);
    quant::LinearProblem p{x, w, b, quant::make_quantizer(plan.weight), quant::make_quantizer(plan.act), r.seed};
    const quant::QuantizedLinear ref = quant::quantize_linear(plan.algorithm, p);
    const quant::MatrixF y = q.forward(x), y_ref = ref.forward(x);
    ASSERT_EQ(y.rows(), 32);
    ASSERT_EQ(y.cols(), 16);
    EXPECT_EQ(0, std::memcmp(y.data(), y_ref.data(), sizeof(float) * static_cast<size_t>(y.size()))) << layer;
    // Quantized layers differ from the float product; bf16-kept ones by bf16 rounding only.
    const quant::MatrixF exact = (x * w.transpose()).rowwise() + b.transpose();
    const double rel = (y - exact).norm() / exact.norm();
    if (plan.weight == "bf16") {
      EXPECT_GT(rel, 0.0);
      EXPECT_LT(rel, 1e-2) << layer;
    } else {
      EXPECT_GT(rel, 1e-2) << layer;
    }
  }
}

// quartz and pts set their own activation quantizer; a recipe act that it would replace is an
// error, the same format spelled otherwise (or none) is not.
TEST(Recipe, AnActTheAlgorithmWouldReplaceIsAnError) {
  std::mt19937 rng(4);
  std::normal_distribution<float> n(0.0f, 1.0f);
  quant::MatrixF x(32, 64), w(16, 64);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = n(rng);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = n(rng);
  const auto plan = [](const std::string& act, const std::string& algorithm) {
    const Recipe r = parse_recipe(R"({"default": {"weight": "int4:g64", "act": ")" + act + R"(", "algorithm": ")" +
                                      algorithm + R"("}})",
                                  "r.json");
    return r.plan_for("blocks.0.mlp.fc1");
  };
  for (const auto& [act, algorithm] : std::vector<std::pair<std::string, std::string>>{
           {"none", "quartz"},
           {"lzs4:g16:s8=token", "quartz"},
           {"lzs4:g16:s8=token:calib=absmax:round=trunc", "quartz"},
           {"lzs4:g16:s8=token:round=rne", "quartz:round=rne"},
           {"lzs4:g32:s8=tensor", "quartz:g=32:s8=tensor"},
           {"none", "pts:abits=4"},
           {"int4:g64", "rtn"},
           {"int4:g64", "svdquant:rank=4"}}) {
    const quant::QuantizedLinear q = quantize_layer(plan(act, algorithm), x, w, quant::VectorF(), 0);
    EXPECT_TRUE(q.act) << act << " " << algorithm;
  }
  for (const auto& [act, algorithm] : std::vector<std::pair<std::string, std::string>>{
           {"int4:g64", "quartz"},
           {"lzs4:g16:s8=token:round=rne", "quartz"},
           {"lzs4:g16:s8=token", "quartz:round=rne"},
           {"lzs4:g16", "quartz"},  // s8=tensor against quartz's s8=token
           {"lzs4:g16:s8=token:calib=minmax", "quartz"},
           {"int4:g64", "pts:abits=4"}}) {
    try {
      quantize_layer(plan(act, algorithm), x, w, quant::VectorF(), 0);
      ADD_FAILURE() << act << " " << algorithm << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not as the act"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace lowbit
