// The GPU DiT engine (gpu/dit_gpu.hpp through sim/e2e.hpp) against the CPU engine and the PyTorch
// fixture: full-precision forward and 50-step sample within the CPU engine's bound (see
// tests/sim/test_dit.cpp), quantized recipes within the CPU engine's own one-ulp sensitivity,
// and the activation codes of the first quantized layer at the first step identical to the CPU's
// on the same input. Skipped, with the reason, where no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "gpu/dit_gpu.hpp"
#include "gpu/gpu.hpp"
#include "sim/dit.hpp"
#include "sim/e2e.hpp"
#include "sim/safetensors.hpp"

namespace lowbit {
namespace {

const std::filesystem::path kRoot = std::filesystem::path(LOWBIT_SOURCE_DIR);

class GpuDit : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!gpu::available(&why)) GTEST_SKIP() << "no GPU: " << why;
  }
  static const DitModel& model() {
    static const DitModel m = DitModel::load(kRoot / "models/tinydit");
    return m;
  }
  static std::map<std::string, Tensor> fixture() {
    std::map<std::string, Tensor> out;
    for (auto& t : read_safetensors(kRoot / "tests/data/dit_reference.safetensors")) out.emplace(t.name, std::move(t));
    return out;
  }
};

// max|a - f64| <= 4 max|torch32 - f64| + 1e-6 max|f64|, as the CPU engine's test.
void expect_within_torch_bound(const char* what, const std::vector<float>& a, const Tensor& t32, const Tensor& t64) {
  const std::vector<float> p = to_f32(t32);
  const std::vector<double> r = to_f64(t64);
  ASSERT_EQ(a.size(), r.size());
  double e = 0, t = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e = std::max(e, std::fabs(a[i] - r[i]));
    t = std::max(t, std::fabs(p[i] - r[i]));
    s = std::max(s, std::fabs(r[i]));
  }
  std::printf("  %-12s max|gpu-f64| %.3g  max|torch32-f64| %.3g\n", what, e, t);
  EXPECT_LE(e, 4.0 * t + 1e-6 * s) << what;
}

TEST_F(GpuDit, FullPrecisionMatchesPyTorch) {
  auto f = fixture();
  const std::vector<float> x = to_f32(f.at("noise")), t = to_f32(f.at("t"));
  const std::vector<int32_t> y = {0, 3, 7, 11};
  const QuantizedDit none;  // full precision: the engine generate_images_gpu builds
  const DitConfig& c = model().config();
  std::vector<float> tf(4 * static_cast<size_t>(c.frequency_size));
  for (int i = 0; i < 4; ++i) timestep_features(t[static_cast<size_t>(i)], c.frequency_size, tf.data() + i * c.frequency_size);
  auto engine = make_dit_gpu(model(), none);
  expect_within_torch_bound("forward", engine->forward(x, tf, y), f.at("forward"), f.at("forward_f64"));
  std::printf("  products: %s\n", engine->products().c_str());

  // The fixture's noise, not dit_noise: sample through the engine directly.
  const std::vector<float> times = euler_times(50);
  const std::vector<float> s = engine->sample(x, y, times, 2.0f, false,
                                              [&](float tt, float* out) { timestep_features(tt, c.frequency_size, out); });
  expect_within_torch_bound("sample_s50", s, f.at("sample_s50"), f.at("sample_s50_f64"));
}

double psnr_db(const std::vector<float>& a, const std::vector<float>& b) {
  double mse = 0;
  for (size_t i = 0; i < a.size(); ++i) mse += (a[i] - b[i]) * (a[i] - b[i]);
  mse /= static_cast<double>(a.size());
  return mse == 0 ? INFINITY : 10.0 * std::log10(4.0 / mse);
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

// x with every value moved by one ulp (alternately up and down).
std::vector<float> ulp_perturbed(std::vector<float> x) {
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::nextafter(x[i], i % 2 ? 10.0f : -10.0f);
  return x;
}

// Stated tolerance for quantized recipes. A quantized model is chaotic in its input: a one-ulp
// change of every input value flips activation codes (each flip moves an element by a whole
// quantization step), and flips cascade through the layers — on the CPU alone, one forward
// changes by 1.4 % (W4A4 INT4 g64), 2.1 % (SVDQuant) and 0.26 % (W8A8) of its norm, against
// 2e-7 in full precision (tests/sim/test_e2e.cpp). cuBLAS and Eigen round differently, so the
// GPU is held to that: its difference from the CPU is at most twice the CPU's own one-ulp
// sensitivity, for one forward and (as PSNR, 3 dB) for 12-step images. The recipes calibrate on
// one image (their own plans take four: quantization quality is not what this test measures)
// so the CPU side stays short. SVDQuant runs a second time with float32 products
// (QuantizedLinear::float32_products, the recipe's "products": "float32") on both engines.
TEST_F(GpuDit, QuantizedRecipesAgreeWithTheCpuWithinItsOwnSensitivity) {
  const DitConfig& c = model().config();
  const auto features = [&](float tt, float* out) { timestep_features(tt, c.frequency_size, out); };
  std::vector<Recipe> recipes;
  for (const char* file : {"w4a4_int4_g64", "svdquant_int4_r32", "w8a8_int8", "w4a4_nvfp4"})
    recipes.push_back(load_recipe(kRoot / "experiments/e2e/recipes" / (std::string(file) + ".json")));
  // SVDQuant's smoothing search takes most of a minute on a 16-core machine: a fixed α here (the
  // engine runs the same arithmetic whatever α the search picks).
  recipes[1].defaults.algorithm = "svdquant:rank=32:smooth=0.5";
  recipes[1].name = "svdquant_r32_a0.5";
  // A rotation (random Hadamard, QuaRot-style) before INT4 g64 on the block linears: the GPU
  // applies it as a dense product, the CPU as a fast transform.
  recipes.push_back(parse_recipe(R"({"name": "w4a4_rotate", "default": {"weight": "int4:g64", "act": "int4:g64",
      "algorithm": "rotate"}, "layers": [{"match": "t_embedder.*", "keep": "bf16"},
      {"match": "*adaLN_modulation.*", "keep": "bf16"}, {"match": "final_layer.linear", "keep": "bf16"}]})",
                                 "w4a4_rotate.json"));
  SamplerOptions so;
  so.steps = 12;
  auto check = [&](const char* name, const QuantizedDit& q) {
    QuantizedHook hook(q);
    const auto engine = make_dit_gpu(model(), q);

    std::vector<float> x = dit_noise(3, 0, c.image_numel());
    const std::vector<float> x1 = dit_noise(3, 1, c.image_numel());
    x.insert(x.end(), x1.begin(), x1.end());
    const std::vector<float> t = {730.0f, 310.0f};
    const std::vector<int32_t> y = {2, 9};
    std::vector<float> tf(2 * static_cast<size_t>(c.frequency_size));
    for (int i = 0; i < 2; ++i) features(t[static_cast<size_t>(i)], tf.data() + i * c.frequency_size);
    const std::vector<float> v_cpu = model().forward(x, t, y, &hook);
    const std::vector<float> v_ulp = model().forward(ulp_perturbed(x), t, y, &hook);
    const std::vector<float> v_gpu = engine->forward(x, tf, y);
    const double d_gc = rel(v_gpu, v_cpu), d_ulp = rel(v_ulp, v_cpu);
    std::printf("  %-20s one forward: |gpu-cpu|/|cpu| %.3g, cpu one-ulp sensitivity %.3g\n", name, d_gc, d_ulp);
    if (std::string_view(name).ends_with("_f32")) std::printf("  %-20s %s\n", name, engine->products().c_str());
    std::fflush(stdout);  // a run cut off by a time limit keeps what it measured
    EXPECT_LE(d_gc, 2.0 * d_ulp) << name;

    const std::vector<int32_t> labels = {4, 11};
    std::vector<float> noise;
    for (int i = 0; i < 2; ++i) {
      const std::vector<float> z = dit_noise(5, i, c.image_numel());
      noise.insert(noise.end(), z.begin(), z.end());
    }
    const std::vector<float> cpu = sample_euler(model(), noise, labels, so, &hook);
    const std::vector<float> cpu_ulp = sample_euler(model(), ulp_perturbed(noise), labels, so, &hook);
    const std::vector<float> gpu = engine->sample(noise, labels, euler_times(so.steps), so.cfg_scale, true, features);
    const double p_cg = psnr_db(cpu, gpu), p_cc = psnr_db(cpu, cpu_ulp);
    std::printf("  %-20s 12-step images: GPU vs CPU PSNR %.1f dB, CPU vs one-ulp CPU %.1f dB\n", name, p_cg, p_cc);
    std::fflush(stdout);
    EXPECT_GE(p_cg, p_cc - 3.0) << name;
  };
  for (Recipe& r : recipes) {
    r.calibration.images = 1;
    r.calibration.steps = {0, 6};
    r.calibration.rows = 256;
    const QuantizedDit q = quantize_dit(model(), r, so);
    check(r.name.c_str(), q);
    if (r.name == "svdquant_r32_a0.5") {  // "products": "float32" on both sides (main product and branch)
      QuantizedDit q32 = q;
      for (auto& [layer, l] : q32.layers) l.float32_products = true;
      check("svdquant_r32_a0.5_f32", q32);
    }
  }
}

TEST_F(GpuDit, FirstQuantizedLayerCodesAreIdentical) {
  // The input of blocks.0.attn.qkv at step 0 as the CPU engine computes it, quantized by the CPU
  // format and by the GPU kernels: the same packed bytes.
  struct Grab : LinearHook {
    quant::MatrixF x;
    void observe(std::string_view layer, const quant::MatrixF& in) override {
      if (layer == "blocks.0.attn.qkv" && x.size() == 0) x = in;
    }
  } grab;
  const DitConfig& c = model().config();
  std::vector<float> noise = dit_noise(0, 0, c.image_numel());
  const std::vector<float> n2 = dit_noise(0, 1, c.image_numel());
  noise.insert(noise.end(), n2.begin(), n2.end());
  const std::vector<float> t = {1000.0f, 1000.0f};
  model().forward_cfg(noise, t, std::vector<int32_t>{0, 1}, 2.0f, &grab);
  ASSERT_EQ(grab.x.rows(), 4 * 256);
  for (const char* spec : {"int4:g64", "nvfp4", "mxfp4", "int8:row", "lzs4:g16:s8=token"}) {
    const auto f = make_format(spec);
    const std::span<const float> xs(grab.x.data(), static_cast<size_t>(grab.x.size()));
    const Shape s{grab.x.rows(), grab.x.cols()};
    const PackedTensor a = f->encode(xs, s), b = gpu::encode(*f, xs, s);
    ASSERT_EQ(a.sections.size(), b.sections.size()) << spec;
    for (size_t k = 0; k < a.sections.size(); ++k) EXPECT_EQ(a.sections[k].bytes, b.sections[k].bytes) << spec << " " << a.sections[k].name;
  }
}

}  // namespace
}  // namespace lowbit
