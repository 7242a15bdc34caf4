// FeatNet forward: im2col + Eigen float32 GEMM per conv layer, one image per OpenMP iteration
// with per-thread buffers. See featnet.hpp for the architecture and its PyTorch source.
#include "sim/featnet.hpp"

#include <cmath>
#include <map>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "formats/error.hpp"
#include "sim/json_strict.hpp"
#include "sim/safetensors.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit {

namespace {

using quant::MatrixF;

// PyTorch's ReLU keeps NaN (NaN < 0 is false), and -0 stays -0 as in torch.relu.
inline float relu(float v) { return v < 0.0f ? 0.0f : v; }

// max that propagates NaN like F.max_pool2d (PyTorch takes v when `v > m || isnan(v)`).
inline float nan_max(float m, float v) { return (v > m || std::isnan(v)) ? v : m; }

// out (L.out × h·w) = relu(W · im2col(in) + b) for a 3×3 convolution with zero padding 1.
// im2col row (ci·3 + ky)·3 + kx, column y·w + x holds in[ci, y + ky − 1, x + kx − 1] (0 outside
// the image): the cross-correlation of torch.nn.Conv2d, matching the flattened weight's columns.
template <typename Conv>
void conv3x3_relu(const Conv& L, const float* in, int64_t h, int64_t w, MatrixF& col, MatrixF& out) {
  const int64_t hw = h * w;
  col.resize(L.in * 9, hw);
  for (int64_t ci = 0; ci < L.in; ++ci) {
    const float* src = in + ci * hw;
    for (int64_t ky = 0; ky < 3; ++ky) {
      for (int64_t kx = 0; kx < 3; ++kx) {
        float* dst = col.data() + ((ci * 3 + ky) * 3 + kx) * hw;
        for (int64_t y = 0; y < h; ++y) {
          const int64_t yy = y + ky - 1;
          float* d = dst + y * w;
          if (yy < 0 || yy >= h) {
            for (int64_t x = 0; x < w; ++x) d[x] = 0.0f;
            continue;
          }
          const float* s = src + yy * w;
          for (int64_t x = 0; x < w; ++x) {
            const int64_t xx = x + kx - 1;
            d[x] = (xx >= 0 && xx < w) ? s[xx] : 0.0f;
          }
        }
      }
    }
  }
  out.resize(L.out, hw);
  out.noalias() = L.w * col;
  for (int64_t o = 0; o < L.out; ++o) {
    float* r = out.data() + o * hw;
    const float b = L.b[static_cast<size_t>(o)];
    for (int64_t j = 0; j < hw; ++j) r[j] = relu(r[j] + b);
  }
}

// 2×2 max pool, stride 2, floor mode: (c × h·w) -> (c × (h/2)·(w/2)).
void max_pool2(const MatrixF& in, int64_t h, int64_t w, MatrixF& out) {
  const int64_t c = in.rows(), h2 = h / 2, w2 = w / 2;
  out.resize(c, h2 * w2);
  for (int64_t ch = 0; ch < c; ++ch) {
    const float* s = in.data() + ch * h * w;
    float* d = out.data() + ch * h2 * w2;
    for (int64_t y = 0; y < h2; ++y)
      for (int64_t x = 0; x < w2; ++x) {
        const float* p = s + 2 * y * w + 2 * x;
        d[y * w2 + x] = nan_max(nan_max(nan_max(p[0], p[1]), p[w]), p[w + 1]);
      }
  }
}

// y = W·x + b with double accumulation (W: out × in, row-major), ReLU optional.
void dense(const MatrixF& wt, const Eigen::RowVectorXf& b, const float* x, float* y, bool apply_relu) {
  for (int64_t o = 0; o < wt.rows(); ++o) {
    const float* r = wt.data() + o * wt.cols();
    double acc = 0.0;
    for (int64_t k = 0; k < wt.cols(); ++k) acc += static_cast<double>(r[k]) * x[k];
    const float v = static_cast<float>(acc + static_cast<double>(b[o]));
    y[o] = apply_relu ? relu(v) : v;
  }
}

int64_t config_int(const nlohmann::json& cfg, const char* key, const std::string& file) {
  if (!cfg.contains(key)) throw Error(fmt::format("{}: config is missing '{}'", file, key));
  const auto& v = cfg[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 20))
    throw Error(fmt::format("{}: config.{} must be a positive integer (at most 2^20), got {}", file,
                            key, v.dump()));
  return v.get<int64_t>();
}

}  // namespace

FeatNetConfig read_featnet_config(const std::filesystem::path& config_json) {
  InputFile f(config_json);
  const auto raw = f.read_bytes(0, static_cast<size_t>(f.size()), "config");
  const std::string& file = f.name();
  const nlohmann::json j =
      parse_json_strict(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()), file);
  if (!j.is_object()) throw Error(fmt::format("{}: not a JSON object", file));
  if (!j.contains("config") || !j["config"].is_object())
    throw Error(fmt::format("{}: missing the \"config\" object", file));
  const auto& cfg = j["config"];
  for (const auto& [key, value] : cfg.items())
    if (key != "in_channels" && key != "width" && key != "feat_dim" && key != "num_classes")
      throw Error(fmt::format("{}: unknown config key '{}' (expected in_channels, width, feat_dim, "
                              "num_classes)", file, key));
  FeatNetConfig c;
  c.in_channels = config_int(cfg, "in_channels", file);
  c.width = config_int(cfg, "width", file);
  c.feat_dim = config_int(cfg, "feat_dim", file);
  c.num_classes = config_int(cfg, "num_classes", file);
  if (j.contains("class_names")) {
    const auto& names = j["class_names"];
    if (!names.is_array() || static_cast<int64_t>(names.size()) != c.num_classes)
      throw Error(fmt::format("{}: class_names must be an array of num_classes = {} strings", file,
                              c.num_classes));
    for (const auto& n : names) {
      if (!n.is_string())
        throw Error(fmt::format("{}: class_names must be an array of strings", file));
      c.class_names.push_back(n.get<std::string>());
    }
  }
  return c;
}

FeatNet::FeatNet(FeatNetConfig config, const std::vector<Tensor>& weights, const std::string& source)
    : config_(std::move(config)) {
  const int64_t w = config_.width;
  const int64_t ins[5] = {config_.in_channels, w, w, 2 * w, 2 * w};
  const int64_t outs[5] = {w, w, 2 * w, 2 * w, 4 * w};
  if (!config_.class_names.empty() &&
      static_cast<int64_t>(config_.class_names.size()) != config_.num_classes)
    throw Error(fmt::format("{}: {} class names for num_classes = {}", source,
                            config_.class_names.size(), config_.num_classes));

  std::map<std::string, std::vector<int64_t>> expected;
  for (int k = 0; k < 5; ++k) {
    expected[fmt::format("conv{}.weight", k + 1)] = {outs[k], ins[k], 3, 3};
    expected[fmt::format("conv{}.bias", k + 1)] = {outs[k]};
  }
  expected["fc1.weight"] = {config_.feat_dim, 4 * w};
  expected["fc1.bias"] = {config_.feat_dim};
  expected["fc2.weight"] = {config_.num_classes, config_.feat_dim};
  expected["fc2.bias"] = {config_.num_classes};

  std::map<std::string, const Tensor*> by_name;
  for (const Tensor& t : weights) {
    if (!expected.contains(t.name))
      throw Error(fmt::format("{}: unexpected tensor '{}' (featnet has conv1..conv5 and fc1, fc2 "
                              "weights and biases)", source, t.name));
    if (!by_name.emplace(t.name, &t).second)
      throw Error(fmt::format("{}: duplicate tensor '{}'", source, t.name));
    const auto& shape = expected.at(t.name);
    if (t.shape != shape)
      throw Error(fmt::format("{}: tensor '{}' has shape {}, expected {} for config in_channels={} "
                              "width={} feat_dim={} num_classes={}", source, t.name,
                              shape_to_string(t.shape), shape_to_string(shape), config_.in_channels,
                              w, config_.feat_dim, config_.num_classes));
    if (t.dtype != DType::F32)
      throw Error(fmt::format("{}: tensor '{}' is {}, expected F32", source, t.name,
                              dtype_name(t.dtype)));
  }
  for (const auto& [name, shape] : expected)
    if (!by_name.contains(name))
      throw Error(fmt::format("{}: missing tensor '{}' of shape {}", source, name, shape_to_string(shape)));

  auto values = [&](const std::string& name) { return to_f32(*by_name.at(name)); };
  for (int k = 0; k < 5; ++k) {
    Conv& c = conv_[k];
    c.in = ins[k];
    c.out = outs[k];
    c.w = quant::matrix_from(values(fmt::format("conv{}.weight", k + 1)), c.out, c.in * 9);
    c.b = values(fmt::format("conv{}.bias", k + 1));
  }
  fc1_w_ = quant::matrix_from(values("fc1.weight"), config_.feat_dim, 4 * w);
  fc2_w_ = quant::matrix_from(values("fc2.weight"), config_.num_classes, config_.feat_dim);
  const auto b1 = values("fc1.bias"), b2 = values("fc2.bias");
  fc1_b_ = Eigen::Map<const Eigen::RowVectorXf>(b1.data(), static_cast<Eigen::Index>(b1.size()));
  fc2_b_ = Eigen::Map<const Eigen::RowVectorXf>(b2.data(), static_cast<Eigen::Index>(b2.size()));
}

FeatNet FeatNet::load(const std::filesystem::path& weights, const std::filesystem::path& config_json) {
  return FeatNet(read_featnet_config(config_json), read_safetensors(weights), weights.string());
}

FeatNet FeatNet::load_dir(const std::filesystem::path& dir) {
  return load(dir / "featnet.safetensors", dir / "config.json");
}

void FeatNet::forward(const ImageBatch& images, MatrixF* features, MatrixF* logits) const {
  if (images.n < 0 || images.c < 0 || images.h < 0 || images.w < 0 ||
      static_cast<int64_t>(images.values.size()) != images.n * images.image_size())
    throw Error(fmt::format("featnet: image batch of {} values does not match its shape ({}, {}, {}, {})",
                            images.values.size(), images.n, images.c, images.h, images.w));
  if (images.c != config_.in_channels)
    throw Error(fmt::format("featnet: images have {} channels, the network takes {}", images.c,
                            config_.in_channels));
  if (images.n > 0 && (images.h < 4 || images.w < 4))
    throw Error(fmt::format("featnet: images of {}x{} are too small (two 2x2 max pools need H, W >= 4)",
                            images.h, images.w));
  const int64_t n = images.n, h = images.h, w = images.w, pooled = 4 * config_.width;
  MatrixF feat(n, config_.feat_dim);
  MatrixF out_logits(logits ? n : 0, config_.num_classes);

#pragma omp parallel
  {
    MatrixF col, a, b;
    std::vector<float> gap(static_cast<size_t>(pooled));
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < n; ++i) {
      const float* x = images.values.data() + i * images.image_size();
      conv3x3_relu(conv_[0], x, h, w, col, a);
      conv3x3_relu(conv_[1], a.data(), h, w, col, b);
      max_pool2(b, h, w, a);
      const int64_t h1 = h / 2, w1 = w / 2;
      conv3x3_relu(conv_[2], a.data(), h1, w1, col, b);
      conv3x3_relu(conv_[3], b.data(), h1, w1, col, a);
      max_pool2(a, h1, w1, b);
      const int64_t h2 = h1 / 2, w2 = w1 / 2;
      conv3x3_relu(conv_[4], b.data(), h2, w2, col, a);
      // Global average pool (x.mean(dim=(2, 3))), summed in double.
      for (int64_t ch = 0; ch < pooled; ++ch) {
        const float* r = a.data() + ch * h2 * w2;
        double s = 0.0;
        for (int64_t j = 0; j < h2 * w2; ++j) s += r[j];
        gap[static_cast<size_t>(ch)] = static_cast<float>(s / static_cast<double>(h2 * w2));
      }
      float* f = feat.data() + i * config_.feat_dim;
      dense(fc1_w_, fc1_b_, gap.data(), f, true);
      if (logits) dense(fc2_w_, fc2_b_, f, out_logits.data() + i * config_.num_classes, false);
    }
  }
  if (features) *features = std::move(feat);
  if (logits) *logits = std::move(out_logits);
}

MatrixF FeatNet::features(const ImageBatch& images) const {
  MatrixF f;
  forward(images, &f, nullptr);
  return f;
}

MatrixF FeatNet::logits(const ImageBatch& images) const {
  MatrixF l;
  forward(images, nullptr, &l);
  return l;
}

MatrixF FeatNet::features(const Tensor& images) const {
  const auto v = to_f32(images);
  return features(image_batch(v, images.shape, fmt::format("featnet: tensor '{}'", images.name)));
}

MatrixF FeatNet::logits(const Tensor& images) const {
  const auto v = to_f32(images);
  return logits(image_batch(v, images.shape, fmt::format("featnet: tensor '{}'", images.name)));
}

}  // namespace lowbit
