// Tests for sim/featnet: the shipped weights against PyTorch's float32 forward and an
// independent float64 numpy forward (tests/data), hand-built networks whose outputs can be
// written down (zero kernels with biases; single-tap kernels that shift the image), loader and
// input validation, NaN propagation and batch/thread independence.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/featnet.hpp"
#include "sim/safetensors.hpp"
#include "sim/tensor.hpp"
#include "tests/sim/temp_dir_test.hpp"

namespace fs = std::filesystem;
using lowbit::FeatNet;
using lowbit::FeatNetConfig;
using lowbit::Tensor;
using lowbit::quant::MatrixF;

namespace {

const fs::path kRoot = LOWBIT_SOURCE_DIR;

void expect_error(const std::function<void()>& fn, const std::string& word) {
  try {
    fn();
    ADD_FAILURE() << "expected lowbit::Error containing '" << word << "'";
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << "message: " << e.what();
  }
}

// Zero weights of the FeatNet layout for `cfg`, in a name -> values map with the shapes.
struct Weights {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> values;

  explicit Weights(const FeatNetConfig& c) {
    const int64_t w = c.width;
    const int64_t ins[5] = {c.in_channels, w, w, 2 * w, 2 * w}, outs[5] = {w, w, 2 * w, 2 * w, 4 * w};
    for (int k = 0; k < 5; ++k) {
      add(fmt::format("conv{}.weight", k + 1), {outs[k], ins[k], 3, 3});
      add(fmt::format("conv{}.bias", k + 1), {outs[k]});
    }
    add("fc1.weight", {c.feat_dim, 4 * w});
    add("fc1.bias", {c.feat_dim});
    add("fc2.weight", {c.num_classes, c.feat_dim});
    add("fc2.bias", {c.num_classes});
  }
  void add(const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    names.push_back(name);
    shapes.push_back(shape);
    values.emplace_back(static_cast<size_t>(n), 0.0f);
  }
  std::vector<float>& operator[](const std::string& name) {
    return values[static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin())];
  }
  std::vector<Tensor> tensors() const {
    std::vector<Tensor> t;
    for (size_t i = 0; i < names.size(); ++i) t.push_back(lowbit::tensor_from_f32(shapes[i], values[i], names[i]));
    return t;
  }
};

// A small network: 2 input channels, width 1 (conv channels 1, 1, 2, 2, 4), 3 features, 2 classes.
FeatNetConfig small_config() { return FeatNetConfig{2, 1, 3, 2, {}}; }

class FeatNetFileTest : public lowbit::testing::TempDirTest {
 protected:
  // Writes the weights and a config.json into the temp dir and loads them through the files.
  FeatNet load(const FeatNetConfig& c, const Weights& w) const {
    lowbit::write_safetensors(file("featnet.safetensors"), w.tensors());
    write_raw("config.json", fmt::format(R"({{"model": "featnet", "config": {{"in_channels": {}, )"
                                         R"("width": {}, "feat_dim": {}, "num_classes": {}}}}})",
                                         c.in_channels, c.width, c.feat_dim, c.num_classes));
    return FeatNet::load_dir(dir_);
  }
};

std::vector<float> random_images(int64_t count, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = u(g);
  return v;
}

// ---- the shipped network against PyTorch ----------------------------------------------------

struct Reference {
  Tensor in;
  std::vector<float> feat, logits;      // PyTorch float32 (dit_reference.safetensors)
  std::vector<double> feat64, logits64;  // numpy float64 (metrics_reference.safetensors)
};

const Reference& reference() {
  static const Reference r = [] {
    Reference r;
    const auto t = lowbit::read_safetensors(kRoot / "tests/data/dit_reference.safetensors",
                                            {"featnet_in", "featnet_feat", "featnet_logits"});
    r.in = t[0];
    r.feat = lowbit::to_f32(t[1]);
    r.logits = lowbit::to_f32(t[2]);
    const auto m = lowbit::read_safetensors(kRoot / "tests/data/metrics_reference.safetensors",
                                            {"featnet64.feat", "featnet64.logits"});
    r.feat64 = lowbit::to_f64(m[0]);
    r.logits64 = lowbit::to_f64(m[1]);
    return r;
  }();
  return r;
}

// Max |x − ref| and max |ref| over a matrix stored row-major like the reference vectors.
template <typename V>
std::pair<double, double> max_diff(const MatrixF& x, const std::vector<V>& ref) {
  double d = 0, m = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(x.data()[i]) - static_cast<double>(ref[i])));
    m = std::max(m, std::abs(static_cast<double>(ref[i])));
  }
  return {d, m};
}

TEST(FeatNetShipped, MatchesPyTorchFloat32AndNumpyFloat64) {
  const FeatNet net = FeatNet::load_dir(kRoot / "models/featnet");
  const auto& r = reference();
  ASSERT_EQ(r.in.shape, (std::vector<int64_t>{8, 3, 32, 32}));
  MatrixF feat, logits;
  const auto x = lowbit::to_f32(r.in);
  net.forward(lowbit::image_batch(x, r.in.shape, "featnet_in"), &feat, &logits);
  ASSERT_EQ(feat.rows(), 8);
  ASSERT_EQ(feat.cols(), 128);
  ASSERT_EQ(logits.cols(), 12);

  // Tolerance. Both float32 forwards (PyTorch's and this one) round differently only through
  // summation order (dot products of up to 576 terms, the average pool), and each lies within
  // the float32 rounding scale E of the exact (float64) result: PyTorch's distance to float64
  // is 2.8e-7·max|feat| and 1.5e-7·max|logits| here (make_metrics_reference.py prints it). So
  // |C++ − PyTorch| <= 2E; the bound 2e-6·max leaves a margin of over 3x on that, while a real
  // error (a wrong tap, padding or pool) moves features by O(1)-O(100).
  const auto [df_torch, fmax] = max_diff(feat, r.feat);
  const auto [dl_torch, lmax] = max_diff(logits, r.logits);
  const auto [df_64, fmax64] = max_diff(feat, r.feat64);
  const auto [dl_64, lmax64] = max_diff(logits, r.logits64);
  const double torch_vs_64 = max_diff(lowbit::quant::matrix_from(r.feat, 8, 128), r.feat64).first;
  RecordProperty("feat_vs_torch_rel", fmt::format("{:.3g}", df_torch / fmax));
  RecordProperty("feat_vs_f64_rel", fmt::format("{:.3g}", df_64 / fmax64));
  EXPECT_GT(fmax, 10.0);  // the fixture is not degenerate
  EXPECT_LT(df_torch, 2e-6 * fmax) << "max |C++ - PyTorch| over features, max |feat| " << fmax;
  EXPECT_LT(dl_torch, 2e-6 * lmax) << "logits";
  // Against float64, C++ float32 is within the same scale as PyTorch's float32.
  EXPECT_LT(df_64, 1e-6 * fmax64) << "PyTorch float32 vs float64: " << torch_vs_64;
  EXPECT_LT(dl_64, 1e-6 * lmax64);
  // Dead (zero) features are zero in both: ReLU decided the same way.
  for (size_t i = 0; i < r.feat.size(); ++i)
    if (r.feat64[i] == 0.0) EXPECT_EQ(feat.data()[i], 0.0f) << "feature " << i;
  // Same class decisions.
  for (int64_t i = 0; i < 8; ++i) {
    Eigen::Index a = 0, b = 0;
    logits.row(i).maxCoeff(&a);
    lowbit::quant::matrix_from(r.logits, 8, 12).row(i).maxCoeff(&b);
    EXPECT_EQ(a, b) << "image " << i;
  }
  // The Tensor overloads give the same values.
  EXPECT_EQ(net.features(r.in), feat);
  EXPECT_EQ(net.logits(r.in), logits);
}

TEST(FeatNetShipped, ConfigFile) {
  const FeatNetConfig c = lowbit::read_featnet_config(kRoot / "models/featnet/config.json");
  EXPECT_EQ(c.in_channels, 3);
  EXPECT_EQ(c.width, 32);
  EXPECT_EQ(c.feat_dim, 128);
  EXPECT_EQ(c.num_classes, 12);
  ASSERT_EQ(c.class_names.size(), 12u);
  EXPECT_EQ(c.class_names[0], "astronaut");
  EXPECT_EQ(c.class_names[11], "flower");
}

TEST(FeatNetShipped, BatchAndThreadIndependent) {
  const FeatNet net = FeatNet::load_dir(kRoot / "models/featnet");
  const int64_t n = 6;
  const auto x = random_images(n * 3 * 32 * 32, 5);
  const std::vector<int64_t> shape = {n, 3, 32, 32};
  const MatrixF all = net.features(lowbit::image_batch(x, shape, "x"));
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<int64_t> one = {1, 3, 32, 32};
    const MatrixF f = net.features(lowbit::image_batch(
        std::span<const float>(x).subspan(static_cast<size_t>(i * 3072), 3072), one, "x"));
    EXPECT_EQ(f, all.row(i)) << "image " << i;
  }
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const MatrixF serial = net.features(lowbit::image_batch(x, shape, "x"));
  omp_set_num_threads(threads);
  EXPECT_EQ(serial, all);
  // An empty batch gives an empty N x 128 matrix.
  const std::vector<int64_t> none = {0, 3, 32, 32};
  EXPECT_EQ(net.features(lowbit::image_batch({}, none, "x")).rows(), 0);
  EXPECT_EQ(net.features(lowbit::image_batch({}, none, "x")).cols(), 128);
}

TEST(FeatNetShipped, NanStaysInItsImage) {
  const FeatNet net = FeatNet::load_dir(kRoot / "models/featnet");
  auto x = random_images(3 * 3 * 32 * 32, 9);
  const std::vector<int64_t> shape = {3, 3, 32, 32};
  const MatrixF clean = net.features(lowbit::image_batch(x, shape, "x"));
  x[3072 + 1000] = std::numeric_limits<float>::quiet_NaN();  // image 1
  const MatrixF f = net.features(lowbit::image_batch(x, shape, "x"));
  EXPECT_EQ(f.row(0), clean.row(0));
  EXPECT_EQ(f.row(2), clean.row(2));
  // NaN · w is NaN for every tap weight, ReLU and max keep it, so it reaches every conv5 channel
  // through the receptive field and every feature through the average pool and fc1.
  for (int64_t j = 0; j < 128; ++j) EXPECT_TRUE(std::isnan(f(1, j))) << "feature " << j;
}

// ---- hand-built networks -------------------------------------------------------------------

TEST_F(FeatNetFileTest, ZeroKernelsGiveBiasDrivenOutputs) {
  // With zero kernels every conv layer outputs relu(bias) everywhere, whatever the input, so
  // features = relu(W1·relu(b5) + bf1) and logits = W2·features + bf2.
  const FeatNetConfig c = small_config();
  Weights w(c);
  w["conv1.bias"] = {0.5f};
  w["conv2.bias"] = {-3.0f};
  w["conv5.bias"] = {0.25f, -1.0f, 2.0f, 0.0f};
  w["fc1.weight"] = {1, 2, 3, 4, /**/ -1, 0, 0, 0, /**/ 0, 0, -1, 1};
  w["fc1.bias"] = {0.125f, 0.5f, 0.0f};
  w["fc2.weight"] = {1, 1, 1, /**/ 0.5f, -2, 0};
  w["fc2.bias"] = {0, 10};
  const FeatNet net = load(c, w);
  const double g[4] = {0.25, 0.0, 2.0, 0.0};  // relu(b5)
  const double f0 = std::max(0.0, 1 * g[0] + 2 * g[1] + 3 * g[2] + 4 * g[3] + 0.125);  // 6.375
  const double f1 = std::max(0.0, -g[0] + 0.5);                                       // 0.25
  const double f2 = std::max(0.0, -g[2] + g[3]);                                      // 0
  const auto x = random_images(2 * 2 * 8 * 9, 3, -5.0f, 5.0f);
  const std::vector<int64_t> shape = {2, 2, 8, 9};
  MatrixF feat, logits;
  net.forward(lowbit::image_batch(x, shape, "x"), &feat, &logits);
  for (int i = 0; i < 2; ++i) {
    EXPECT_FLOAT_EQ(feat(i, 0), 6.375f);
    EXPECT_FLOAT_EQ(feat(i, 1), 0.25f);
    EXPECT_EQ(feat(i, 2), 0.0f);
    EXPECT_FLOAT_EQ(logits(i, 0), static_cast<float>(f0 + f1 + f2));
    EXPECT_FLOAT_EQ(logits(i, 1), static_cast<float>(0.5 * f0 - 2 * f1 + 10));
  }
}

// Naive reference pieces for the single-tap test.
std::vector<double> shift(const float* plane, int64_t h, int64_t w, int64_t dy, int64_t dx) {
  // out[y, x] = in[y + dy, x + dx], 0 outside (a 3x3 cross-correlation with one unit tap at
  // (ky, kx) = (dy + 1, dx + 1) and zero padding).
  std::vector<double> out(static_cast<size_t>(h * w), 0.0);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < h && xx >= 0 && xx < w) out[static_cast<size_t>(y * w + x)] = plane[yy * w + xx];
    }
  return out;
}

std::vector<double> pool(const std::vector<double>& in, int64_t& h, int64_t& w) {
  const int64_t h2 = h / 2, w2 = w / 2;  // floor mode: the odd last row/column is dropped
  std::vector<double> out(static_cast<size_t>(h2 * w2));
  for (int64_t y = 0; y < h2; ++y)
    for (int64_t x = 0; x < w2; ++x) {
      auto at = [&](int64_t yy, int64_t xx) { return in[static_cast<size_t>(yy * w + xx)]; };
      out[static_cast<size_t>(y * w2 + x)] =
          std::max({at(2 * y, 2 * x), at(2 * y, 2 * x + 1), at(2 * y + 1, 2 * x), at(2 * y + 1, 2 * x + 1)});
    }
  h = h2;
  w = w2;
  return out;
}

TEST_F(FeatNetFileTest, SingleTapShiftsTheImage) {
  // conv1 has one unit tap from input channel 1 at (ky, kx); conv2..conv5 pass channel 0
  // through with a centre tap; fc1 reads channel 0 of the pool. Then
  //   feature 0 = mean(pool(pool(relu(shift(x[1], ky − 1, kx − 1))))),
  // and an odd-sized 11x13 image checks the floor-mode pools (11x13 -> 5x6 -> 2x3).
  const FeatNetConfig c = small_config();
  const int64_t h = 11, w = 13;
  const auto x = random_images(2 * h * w, 17, -1.0f, 1.0f);
  const std::vector<int64_t> shape = {1, 2, h, w};
  for (int64_t ky = 0; ky < 3; ++ky)
    for (int64_t kx = 0; kx < 3; ++kx) {
      SCOPED_TRACE(fmt::format("tap ({}, {})", ky, kx));
      Weights wt(c);
      wt["conv1.weight"][static_cast<size_t>(9 + ky * 3 + kx)] = 1.0f;  // [0, 1, ky, kx]
      wt["conv2.weight"][4] = 1.0f;                                     // [0, 0, 1, 1]
      wt["conv3.weight"][4] = 1.0f;                                     // [0, 0, 1, 1]
      wt["conv4.weight"][4] = 1.0f;                                     // [0, 0, 1, 1] of 2x2x3x3
      wt["conv5.weight"][4] = 1.0f;                                     // [0, 0, 1, 1]
      wt["fc1.weight"][0] = 1.0f;                                       // [0, 0]
      wt["fc2.weight"] = {0, 0, 0, 2, 0, 0};
      wt["fc2.bias"] = {0.25f, -1.0f};
      const FeatNet net = load(c, wt);

      auto s = shift(x.data() + h * w, h, w, ky - 1, kx - 1);
      for (double& v : s) v = std::max(v, 0.0);
      int64_t ph = h, pw = w;
      s = pool(pool(s, ph, pw), ph, pw);
      ASSERT_EQ(ph * pw, 6);
      double mean = 0;
      for (double v : s) mean += v;
      mean /= static_cast<double>(s.size());

      MatrixF feat, logits;
      net.forward(lowbit::image_batch(x, shape, "x"), &feat, &logits);
      EXPECT_FLOAT_EQ(feat(0, 0), static_cast<float>(mean));
      EXPECT_GT(feat(0, 0), 0.0f);
      EXPECT_EQ(feat(0, 1), 0.0f);
      EXPECT_EQ(feat(0, 2), 0.0f);
      EXPECT_FLOAT_EQ(logits(0, 0), 0.25f);
      EXPECT_FLOAT_EQ(logits(0, 1), static_cast<float>(2 * mean - 1));
    }
}

TEST_F(FeatNetFileTest, LoaderRejectsBadWeights) {
  const FeatNetConfig c = small_config();
  const Weights good(c);
  auto build = [&](std::vector<Tensor> t) { FeatNet(c, t, "test weights"); };
  {
    auto t = good.tensors();
    t.erase(t.begin() + 5);  // conv3.bias
    expect_error([&] { build(t); }, "missing tensor 'conv3.bias'");
  }
  {
    auto t = good.tensors();
    t.push_back(lowbit::tensor_from_f32({1}, std::vector<float>{0}, "bn.weight"));
    expect_error([&] { build(t); }, "unexpected tensor 'bn.weight'");
  }
  {
    auto t = good.tensors();
    t.push_back(t[0]);
    expect_error([&] { build(t); }, "duplicate tensor 'conv1.weight'");
  }
  {
    auto t = good.tensors();
    t[2] = lowbit::tensor_from_f32({1, 1, 1, 9}, std::vector<float>(9), "conv2.weight");
    expect_error([&] { build(t); }, "tensor 'conv2.weight' has shape (1, 1, 1, 9), expected (1, 1, 3, 3)");
  }
  {
    auto t = good.tensors();
    const std::vector<uint16_t> half(4, 0);
    t[13] = lowbit::tensor_from_raw(lowbit::DType::F16, {2}, std::as_bytes(std::span(half)).first(4), "fc2.bias");
    expect_error([&] { build(t); }, "tensor 'fc2.bias' is F16, expected F32");
  }
  // Through a file: the error names the file.
  Weights w(c);
  auto t = w.tensors();
  t.pop_back();
  lowbit::write_safetensors(file("featnet.safetensors"), t);
  write_raw("config.json", R"({"config": {"in_channels": 2, "width": 1, "feat_dim": 3, "num_classes": 2}})");
  expect_error([&] { FeatNet::load_dir(dir_); }, "featnet.safetensors: missing tensor 'fc2.bias'");
  // Shipped weights under a wrong config: the shape error says which config.
  write_raw("wide.json", R"({"config": {"in_channels": 3, "width": 16, "feat_dim": 128, "num_classes": 12}})");
  expect_error([&] { FeatNet::load(kRoot / "models/featnet/featnet.safetensors", file("wide.json")); },
               "width=16");
}

TEST_F(FeatNetFileTest, ConfigRejectsBadFields) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"model": "featnet"})", "missing the \"config\" object"},
      {R"({"config": {"in_channels": 3, "width": 32, "feat_dim": 128}})", "config is missing 'num_classes'"},
      {R"({"config": {"in_channels": 3, "width": 0, "feat_dim": 128, "num_classes": 12}})", "config.width must be a positive integer"},
      {R"({"config": {"in_channels": 3, "width": 32.5, "feat_dim": 128, "num_classes": 12}})", "config.width must be a positive integer"},
      {R"({"config": {"in_channels": 3, "width": 32, "feat_dim": 128, "num_classes": 12, "depth": 5}})", "unknown config key 'depth'"},
      {R"({"config": {"in_channels": 3, "width": 32, "feat_dim": 128, "num_classes": 2}, "class_names": ["a"]})", "class_names must be an array of num_classes = 2"},
      {R"({"config": {"in_channels": 3, "in_channels": 3}})", "duplicate key 'in_channels'"},
      {R"([1, 2])", "not a JSON object"},
      {R"({"config": )", "not valid JSON"},
  };
  for (const auto& [json, word] : cases) {
    SCOPED_TRACE(json);
    expect_error([&] { lowbit::read_featnet_config(write_raw("c.json", json)); }, word);
  }
  expect_error([&] { lowbit::read_featnet_config(file("absent.json")); }, "absent.json");
}

TEST_F(FeatNetFileTest, RejectsBadImages) {
  const FeatNetConfig c = small_config();
  const FeatNet net(c, Weights(c).tensors());
  const std::vector<float> x(3 * 8 * 8);
  expect_error([&] { net.features(lowbit::image_batch(x, std::vector<int64_t>{1, 3, 8, 8}, "x")); },
               "images have 3 channels, the network takes 2");
  const std::vector<float> small(2 * 3 * 8);
  expect_error([&] { net.features(lowbit::image_batch(small, std::vector<int64_t>{1, 2, 3, 8}, "x")); },
               "too small");
  expect_error([&] { lowbit::image_batch(x, std::vector<int64_t>{3, 8, 8}, "gen"); }, "gen: images must be 4-D");
  expect_error([&] { lowbit::image_batch(x, std::vector<int64_t>{1, 2, 8, 8}, "gen"); },
               "needs 128 values but 192 were given");
  expect_error([&] { net.features(lowbit::tensor_from_f32({2, 96}, x, "flat")); }, "featnet: tensor 'flat'");
  // A hand-made view whose values do not cover its shape.
  expect_error([&] { net.features(lowbit::ImageBatch{x, 2, 2, 8, 8}); }, "does not match its shape");
}

}  // namespace
