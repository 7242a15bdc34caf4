// The CPU DiT engine (sim/dit.hpp) against PyTorch (tests/data/dit_reference.safetensors, made by
// experiments/tinydit/make_reference.py on a CPU: the model in float32 and in float64 on the same
// noise, labels and time inputs), plus loading errors, the hook seam, the sampler's time grid and
// the noise generator.
//
// Tolerance. The engine computes in float32 like PyTorch's float32 run, in another summation
// order (Eigen GEMMs, double LayerNorm statistics, its own softmax). Both are float32
// approximations of the float64 result, so the engine's distance to the float64 output is held to
// a small multiple of PyTorch float32's own distance to it: max|engine - f64| <= 4 * max|torch32
// - f64| + 1e-6 * max|f64|. A wrong operation (a transposed weight, a missing gate, a wrong
// modulate, a swapped chunk) moves outputs by O(0.1-1), many orders above this.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <set>

#include "formats/error.hpp"
#include "sim/dit.hpp"
#include "sim/safetensors.hpp"
#include "tests/sim/temp_dir_test.hpp"

namespace lowbit {
namespace {

const std::filesystem::path kModel = std::filesystem::path(LOWBIT_SOURCE_DIR) / "models/tinydit";
const std::filesystem::path kFixture = std::filesystem::path(LOWBIT_SOURCE_DIR) / "tests/data/dit_reference.safetensors";

const DitModel& model() {
  static const DitModel m = DitModel::load(kModel);
  return m;
}

std::map<std::string, Tensor> fixture() {
  std::map<std::string, Tensor> out;
  for (auto& t : read_safetensors(kFixture)) out.emplace(t.name, std::move(t));
  return out;
}

std::vector<double> as_f64(const Tensor& t) { return to_f64(t); }

struct Distances {
  double engine_f64 = 0, torch_f64 = 0, engine_torch = 0, scale = 0;
};

Distances distances(const std::vector<float>& engine, const Tensor& t32, const Tensor& t64) {
  const std::vector<float> a = to_f32(t32);
  const std::vector<double> b = as_f64(t64);
  EXPECT_EQ(engine.size(), a.size());
  Distances d;
  for (size_t i = 0; i < engine.size() && i < a.size(); ++i) {
    d.engine_f64 = std::max(d.engine_f64, std::fabs(engine[i] - b[i]));
    d.torch_f64 = std::max(d.torch_f64, std::fabs(a[i] - b[i]));
    d.engine_torch = std::max(d.engine_torch, static_cast<double>(std::fabs(engine[i] - a[i])));
    d.scale = std::max(d.scale, std::fabs(b[i]));
  }
  return d;
}

void expect_close(const std::string& what, const std::vector<float>& engine, const Tensor& t32, const Tensor& t64) {
  const Distances d = distances(engine, t32, t64);
  ::testing::Test::RecordProperty(what + "_engine_f64", std::to_string(d.engine_f64));
  ::testing::Test::RecordProperty(what + "_torch32_f64", std::to_string(d.torch_f64));
  EXPECT_GT(d.scale, 0.1) << what << ": the reference is not trivially small";
  EXPECT_LE(d.engine_f64, 4.0 * d.torch_f64 + 1e-6 * d.scale)
      << what << ": engine-f64 " << d.engine_f64 << ", torch32-f64 " << d.torch_f64 << ", engine-torch32 "
      << d.engine_torch << ", max|f64| " << d.scale;
  std::printf("  %-14s max|engine-f64| %.3g  max|torch32-f64| %.3g  max|engine-torch32| %.3g  (max|f64| %.3g)\n",
              what.c_str(), d.engine_f64, d.torch_f64, d.engine_torch, d.scale);
}

TEST(Dit, ForwardMatchesPyTorch) {
  auto f = fixture();
  const std::vector<float> x = to_f32(f.at("noise")), t = to_f32(f.at("t"));
  const std::vector<int32_t> y = [&] {
    const Tensor& l = f.at("labels");
    std::vector<int32_t> v(static_cast<size_t>(l.numel()));
    std::memcpy(v.data(), l.data.data(), l.data.size());
    return v;
  }();
  ASSERT_EQ(y, (std::vector<int32_t>{0, 3, 7, 11}));
  expect_close("forward", model().forward(x, t, y), f.at("forward"), f.at("forward_f64"));
  const std::vector<int32_t> null(4, 12);
  expect_close("forward_null", model().forward(x, t, null), f.at("forward_null"), f.at("forward_null_f64"));
  const std::vector<float> t1000(4, 1000.0f);
  expect_close("cfg", model().forward_cfg(x, t1000, y, 2.0f), f.at("cfg"), f.at("cfg_f64"));
  SamplerOptions o;
  o.steps = 4;
  o.clamp = false;
  expect_close("sample_s4", sample_euler(model(), x, y, o), f.at("sample_s4"), f.at("sample_s4_f64"));
}

TEST(Dit, FiftyStepSampleMatchesPyTorch) {
  auto f = fixture();
  const std::vector<float> x = to_f32(f.at("noise"));
  const std::vector<int32_t> y = {0, 3, 7, 11};
  SamplerOptions o;
  o.steps = 50;
  o.clamp = false;
  int64_t calls = 0;
  const std::vector<float> s = sample_euler(model(), x, y, o, nullptr, [&](int64_t step) { EXPECT_EQ(step, calls++); });
  EXPECT_EQ(calls, 50);
  expect_close("sample_s50", s, f.at("sample_s50"), f.at("sample_s50_f64"));
}

TEST(Dit, TimeGridIsTorchLinspace) {
  const std::vector<float> ts = euler_times(50);
  ASSERT_EQ(ts.size(), 51u);
  EXPECT_EQ(ts.front(), 1.0f);
  EXPECT_EQ(ts.back(), 0.0f);
  EXPECT_EQ(ts[25], 0.0f - (-1.0f / 50.0f) * 25.0f);  // second half counts from the end
  EXPECT_EQ(ts[24], 1.0f + (-1.0f / 50.0f) * 24.0f);
  for (size_t i = 1; i < ts.size(); ++i) EXPECT_LT(ts[i], ts[i - 1]);
  EXPECT_THROW(euler_times(0), Error);
}

// Records every layer once per forward with its input shape; optionally replaces products by the
// plain product, constructed from the product expression as the engine does (Eigen's assignment
// of a product to an existing matrix may take another kernel path, with other roundings).
struct Recorder : LinearHook {
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> seen;
  bool plain_replace = false;
  const DitModel* m = nullptr;
  void observe(std::string_view layer, const quant::MatrixF& x) override {
    seen.emplace_back(std::string(layer), std::make_pair(x.rows(), x.cols()));
  }
  bool replace(std::string_view layer, const quant::MatrixF& x, quant::MatrixF& y) override {
    if (!plain_replace) return false;
    quant::MatrixF p = x * m->weight(layer).transpose();
    p.rowwise() += m->bias(layer).transpose();
    y = std::move(p);
    return true;
  }
};

TEST(Dit, HookSeesEveryLinearOnceAndAPlainReplacementIsExact) {
  const DitModel& m = model();
  ASSERT_EQ(m.linear_names().size(), 44u);
  EXPECT_EQ(m.linear_names().front(), "t_embedder.mlp.0");
  EXPECT_EQ(m.linear_names().back(), "final_layer.linear");
  EXPECT_EQ(m.weight("blocks.3.mlp.fc2").rows(), 256);
  EXPECT_EQ(m.weight("blocks.3.mlp.fc2").cols(), 1024);
  EXPECT_EQ(m.parameters(), 9806348);  // config.json "params" (pos_embed included)
  EXPECT_THROW(m.weight("blocks.9.mlp.fc2"), Error);

  const int64_t n = 2;
  std::vector<float> x = dit_noise(5, 0, 2 * 3072);
  const std::vector<float> t = {1000.0f, 250.0f};
  const std::vector<int32_t> y = {1, 12};
  const std::vector<float> base = m.forward(x, t, y);
  const std::vector<float> again = m.forward(x, t, y);
  EXPECT_EQ(0, std::memcmp(base.data(), again.data(), base.size() * 4)) << "deterministic";
  Recorder r;
  r.m = &m;
  const std::vector<float> same = m.forward(x, t, y, &r);
  EXPECT_EQ(0, std::memcmp(base.data(), same.data(), base.size() * 4)) << "observing changes nothing";
  ASSERT_EQ(r.seen.size(), 44u);
  std::set<std::string> names;
  for (const auto& [name, shape] : r.seen) {
    names.insert(name);
    const bool per_image = name.starts_with("t_embedder") || name.find("adaLN") != std::string::npos;
    EXPECT_EQ(shape.first, per_image ? n : n * 256) << name;
    EXPECT_EQ(shape.second, m.weight(name).cols()) << name;
  }
  EXPECT_EQ(names.size(), 44u);
  r.plain_replace = true;
  const std::vector<float> repl = m.forward(x, t, y, &r);
  EXPECT_EQ(0, std::memcmp(base.data(), repl.data(), base.size() * 4)) << "the plain product through the hook";

  // A hook that changes one layer changes the output.
  struct Zero : LinearHook {
    bool replace(std::string_view layer, const quant::MatrixF& x, quant::MatrixF& yy) override {
      if (layer != "blocks.0.attn.proj") return false;
      yy = quant::MatrixF::Zero(x.rows(), 256);
      return true;
    }
  } zero;
  const std::vector<float> changed = m.forward(x, t, y, &zero);
  EXPECT_NE(0, std::memcmp(base.data(), changed.data(), base.size() * 4));
  struct BadShape : LinearHook {
    bool replace(std::string_view, const quant::MatrixF& x, quant::MatrixF& yy) override {
      yy = quant::MatrixF::Zero(x.rows(), 3);
      return true;
    }
  } bad;
  EXPECT_THROW(m.forward(x, t, y, &bad), Error);
}

TEST(Dit, BadBatchesAreClearErrors) {
  const DitModel& m = model();
  const std::vector<float> x = dit_noise(1, 0, 3072), t = {500.0f};
  EXPECT_THROW(m.forward(x, t, std::vector<int32_t>{13}), Error);
  EXPECT_THROW(m.forward(x, t, std::vector<int32_t>{-1}), Error);
  EXPECT_THROW(m.forward({}, {}, {}), Error);
  EXPECT_THROW(m.forward(std::vector<float>(100), t, std::vector<int32_t>{1}), Error);
  EXPECT_THROW(m.forward(x, t, std::vector<int32_t>{1, 2}), Error);
  EXPECT_THROW(sample_euler(m, {}, {}, SamplerOptions{}), Error);
  // NaN inputs are values: they propagate, no error.
  std::vector<float> xn = x;
  xn[7] = std::nanf("");
  const std::vector<float> o = m.forward(xn, t, std::vector<int32_t>{1});
  EXPECT_TRUE(std::any_of(o.begin(), o.end(), [](float v) { return std::isnan(v); }));
}

using DitLoadTest = testing::TempDirTest;

TEST_F(DitLoadTest, BrokenCheckpointsNameTheTensor) {
  std::vector<Tensor> ts = read_safetensors(kModel / "tinydit.safetensors");
  std::filesystem::copy_file(kModel / "config.json", file("config.json"));
  auto expect_error = [&](const std::vector<Tensor>& v, const std::string& needle) {
    write_safetensors(file("tinydit.safetensors"), v);
    try {
      DitModel::load(file(""));
      ADD_FAILURE() << "no error: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  {
    auto v = ts;
    v.erase(std::find_if(v.begin(), v.end(), [](const Tensor& t) { return t.name == "blocks.2.mlp.fc1.bias"; }));
    expect_error(v, "missing tensor 'blocks.2.mlp.fc1.bias'");
  }
  {
    auto v = ts;
    v.push_back(tensor_from_f32({1}, std::vector<float>{1.0f}, "blocks.8.extra"));
    expect_error(v, "unexpected tensor 'blocks.8.extra'");
  }
  {
    auto v = ts;
    for (auto& t : v)
      if (t.name == "final_layer.linear.weight") {
        t.shape = {6, 512};
      }
    expect_error(v, "'final_layer.linear.weight' has shape (6, 512), expected (12, 256)");
  }
  EXPECT_THROW(DitModel::load(file("nowhere")), Error);
}

TEST(DitNoise, DeterministicBatchFreeAndStandardNormal) {
  const std::vector<float> a = dit_noise(3, 7, 3072), b = dit_noise(3, 7, 3072), c = dit_noise(3, 8, 3072),
                           d = dit_noise(4, 7, 3072);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  const std::vector<float> prefix = dit_noise(3, 7, 1001);
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), a.begin())) << "a value depends on its position only";
  double s = 0, s2 = 0;
  int64_t n = 0, beyond3 = 0;
  for (int64_t i = 0; i < 200; ++i)
    for (const float v : dit_noise(11, i, 3072)) {
      s += v;
      s2 += static_cast<double>(v) * v;
      beyond3 += std::fabs(v) > 3.0f;
      ++n;
    }
  const double mean = s / static_cast<double>(n), var = s2 / static_cast<double>(n) - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.005);  // 614400 draws: standard error 0.0013
  EXPECT_NEAR(var, 1.0, 0.01);
  EXPECT_NEAR(static_cast<double>(beyond3) / static_cast<double>(n), 0.0027, 0.0005);
  EXPECT_EQ(dit_labels(10, 4, 12), (std::vector<int32_t>{10, 11, 0, 1}));
}

}  // namespace
}  // namespace lowbit
