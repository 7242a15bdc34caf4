// DitModel (sim/dit.hpp): loading with validation, the float32 forward, CFG, the Euler sampler
// and the reproducible noise.
#include "sim/dit.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <numbers>
#include <set>
#include <sstream>

#include "formats/error.hpp"
#include "formats/philox.hpp"
#include "sim/json_fields.hpp"
#include "sim/json_strict.hpp"
#include "sim/safetensors.hpp"

namespace lowbit {

using quant::MatrixF;
using quant::VectorF;

DitConfig read_dit_config(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open the model config", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  const nlohmann::json root = parse_json_strict(ss.str(), path.string());
  const JsonFields f(path.string());
  f.object(root, "");
  if (!root.contains("dit_config")) f.fail("dit_config", "missing");
  const nlohmann::json& d = f.object(root["dit_config"], "dit_config");
  auto get_int = [&](const char* k, int64_t lo, int64_t hi) {
    if (!d.contains(k)) f.fail(std::string("dit_config.") + k, "missing");
    return f.integer(d[k], std::string("dit_config.") + k, lo, hi, fmt::format("an integer in [{}, {}]", lo, hi));
  };
  DitConfig c;
  c.input_size = get_int("input_size", 2, 1024);
  c.patch_size = get_int("patch_size", 1, 64);
  c.in_channels = get_int("in_channels", 1, 64);
  c.hidden_size = get_int("hidden_size", 2, 1 << 14);
  c.depth = get_int("depth", 1, 1024);
  c.num_heads = get_int("num_heads", 1, 1024);
  c.num_classes = get_int("num_classes", 1, 1 << 20);
  if (!d.contains("mlp_ratio")) f.fail("dit_config.mlp_ratio", "missing");
  c.mlp_ratio = f.number(d["mlp_ratio"], "dit_config.mlp_ratio", 0.0625, 64.0);
  if (d.contains("learn_sigma") && f.boolean(d["learn_sigma"], "dit_config.learn_sigma"))
    f.fail("dit_config.learn_sigma", "true is not supported (the engine predicts the velocity only)");
  if (c.input_size % c.patch_size != 0) f.fail("dit_config.patch_size", "does not divide input_size");
  if (c.hidden_size % c.num_heads != 0) f.fail("dit_config.num_heads", "does not divide hidden_size");
  if (c.hidden_size % 4 != 0) f.fail("dit_config.hidden_size", "must be a multiple of 4 (2-D sin-cos position embedding)");
  if (root.contains("default_sample_steps"))
    c.sample_steps = f.integer(root["default_sample_steps"], "default_sample_steps", 1, 100000, "a positive integer");
  if (root.contains("default_cfg_scale")) c.cfg_scale = f.number(root["default_cfg_scale"], "default_cfg_scale", 0.0, 100.0);
  if (root.contains("null_class") &&
      f.integer(root["null_class"], "null_class", 0, INT64_MAX, "an integer") != c.num_classes)
    f.fail("null_class", "must equal dit_config.num_classes (the last row of the label table)");
  return c;
}

namespace {

struct Expected {
  std::string name;
  std::vector<int64_t> shape;
};

std::vector<Expected> expected_tensors(const DitConfig& c, std::vector<std::string>& linear_names) {
  const int64_t D = c.hidden_size, p = c.patch_size, C = c.in_channels, Hm = c.mlp_hidden();
  std::vector<Expected> e = {{"pos_embed", {1, c.tokens(), D}},
                             {"x_embedder.proj.weight", {D, C, p, p}},
                             {"x_embedder.proj.bias", {D}},
                             {"y_embedder.embedding_table.weight", {c.num_classes + 1, D}}};
  auto lin = [&](const std::string& n, int64_t out, int64_t in) {
    linear_names.push_back(n);
    e.push_back({n + ".weight", {out, in}});
    e.push_back({n + ".bias", {out}});
  };
  lin("t_embedder.mlp.0", D, c.frequency_size);
  lin("t_embedder.mlp.2", D, D);
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string b = fmt::format("blocks.{}.", i);
    lin(b + "adaLN_modulation.1", 6 * D, D);
    lin(b + "attn.qkv", 3 * D, D);
    lin(b + "attn.proj", D, D);
    lin(b + "mlp.fc1", Hm, D);
    lin(b + "mlp.fc2", D, Hm);
  }
  lin("final_layer.adaLN_modulation.1", 2 * D, D);
  lin("final_layer.linear", p * p * C, D);
  return e;
}

MatrixF to_matrix(const Tensor& t, int64_t rows, int64_t cols) {
  const std::vector<float> v = to_f32(t);
  MatrixF m(rows, cols);
  std::copy(v.begin(), v.end(), m.data());
  return m;
}

VectorF to_vector(const Tensor& t) {
  const std::vector<float> v = to_f32(t);
  VectorF out(static_cast<int64_t>(v.size()));
  std::copy(v.begin(), v.end(), out.data());
  return out;
}

// LayerNorm without affine (eps 1e-6), row by row; mean and variance accumulated in double.
MatrixF layer_norm(const MatrixF& x) {
  MatrixF y(x.rows(), x.cols());
  const int64_t d = x.cols();
#pragma omp parallel for schedule(static) if (x.rows() >= 64)
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* xr = x.data() + r * d;
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += xr[j];
    const double mean = s / static_cast<double>(d);
    double v = 0;
    for (int64_t j = 0; j < d; ++j) v += (xr[j] - mean) * (xr[j] - mean);
    const float m = static_cast<float>(mean);
    const float rstd = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(d) + 1e-6));
    float* yr = y.data() + r * d;
    for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) * rstd;
  }
  return y;
}

// x(1 + scale) + shift, with (shift, scale) the columns [so, so + D), [sc, sc + D) of mod's row b
// for the tokens of image b.
void modulate(MatrixF& x, const MatrixF& mod, int64_t tokens, int64_t shift_col, int64_t scale_col) {
  const int64_t d = x.cols();
#pragma omp parallel for schedule(static) if (x.rows() >= 64)
  for (int64_t r = 0; r < x.rows(); ++r) {
    const int64_t b = r / tokens;
    float* xr = x.data() + r * d;
    const float* sh = mod.data() + b * mod.cols() + shift_col;
    const float* sc = mod.data() + b * mod.cols() + scale_col;
    for (int64_t j = 0; j < d; ++j) xr[j] = xr[j] * (1.0f + sc[j]) + sh[j];
  }
}

// h += gate · y, gate the columns [gate_col, gate_col + D) of mod's row b.
void gated_add(MatrixF& h, const MatrixF& y, const MatrixF& mod, int64_t tokens, int64_t gate_col) {
  const int64_t d = h.cols();
#pragma omp parallel for schedule(static) if (h.rows() >= 64)
  for (int64_t r = 0; r < h.rows(); ++r) {
    const float* g = mod.data() + (r / tokens) * mod.cols() + gate_col;
    float* hr = h.data() + r * d;
    const float* yr = y.data() + r * d;
    for (int64_t j = 0; j < d; ++j) hr[j] = hr[j] + g[j] * yr[j];
  }
}

MatrixF silu(const MatrixF& x) {
  MatrixF y(x.rows(), x.cols());
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data()[i];
    y.data()[i] = v / (1.0f + std::exp(-v));
  }
  return y;
}

void gelu_tanh(MatrixF& x) {
  // torch GELU(approximate="tanh"): 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
  const float beta = static_cast<float>(std::numbers::sqrt2 * (2.0 / std::sqrt(std::numbers::pi)) * 0.5);
  const float kappa = 0.044715f;
#pragma omp parallel for schedule(static) if (x.size() >= 65536)
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data()[i];
    const float inner = beta * (v + kappa * v * v * v);
    x.data()[i] = 0.5f * v * (1.0f + std::tanh(inner));
  }
}

}  // namespace

DitModel DitModel::load(const std::filesystem::path& dir) {
  return load(dir / "config.json", dir / "tinydit.safetensors");
}

DitModel DitModel::load(const std::filesystem::path& config_json, const std::filesystem::path& checkpoint) {
  DitModel m;
  m.cfg_ = read_dit_config(config_json);
  const std::vector<Expected> expected = expected_tensors(m.cfg_, m.names_);
  const std::string file = checkpoint.string();
  const std::vector<std::string> present = safetensors_names(checkpoint);
  std::set<std::string> want;
  for (const auto& e : expected) want.insert(e.name);
  for (const auto& n : present)
    if (!want.count(n)) throw Error(fmt::format("{}: unexpected tensor '{}' (not a parameter of this DiT config)", file, n));
  const std::set<std::string> have(present.begin(), present.end());
  std::vector<std::string> names;
  for (const auto& e : expected) {
    if (!have.count(e.name)) throw Error(fmt::format("{}: missing tensor '{}'", file, e.name));
    names.push_back(e.name);
  }
  const std::vector<Tensor> ts = read_safetensors(checkpoint, names);
  std::map<std::string, const Tensor*> by_name;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    if (t.shape != expected[i].shape)
      throw Error(fmt::format("{}: tensor '{}' has shape {}, expected {}", file, t.name, shape_to_string(t.shape),
                              shape_to_string(expected[i].shape)));
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      throw Error(fmt::format("{}: tensor '{}' is {}, expected a float dtype", file, t.name, dtype_name(t.dtype)));
    by_name[t.name] = &t;
  }
  const DitConfig& c = m.cfg_;
  const int64_t D = c.hidden_size;
  m.pos_embed_ = to_matrix(*by_name["pos_embed"], c.tokens(), D);
  m.patch_w_ = to_matrix(*by_name["x_embedder.proj.weight"], D, c.in_channels * c.patch_size * c.patch_size);
  m.patch_b_ = to_vector(*by_name["x_embedder.proj.bias"]);
  m.y_table_ = to_matrix(*by_name["y_embedder.embedding_table.weight"], c.num_classes + 1, D);
  for (const auto& n : m.names_) {
    const Tensor& w = *by_name[n + ".weight"];
    Linear l;
    l.w = to_matrix(w, w.shape[0], w.shape[1]);
    l.b = to_vector(*by_name[n + ".bias"]);
    m.linears_.emplace(n, std::move(l));
  }
  return m;
}

const MatrixF& DitModel::weight(std::string_view layer) const {
  const auto it = linears_.find(layer);
  if (it == linears_.end()) throw Error(fmt::format("dit: no linear layer '{}'", layer));
  return it->second.w;
}

const VectorF& DitModel::bias(std::string_view layer) const {
  const auto it = linears_.find(layer);
  if (it == linears_.end()) throw Error(fmt::format("dit: no linear layer '{}'", layer));
  return it->second.b;
}

int64_t DitModel::parameters() const {
  int64_t n = pos_embed_.size() + patch_w_.size() + patch_b_.size() + y_table_.size();
  for (const auto& [k, l] : linears_) n += l.w.size() + l.b.size();
  return n;
}

MatrixF DitModel::linear(const std::string& name, const MatrixF& x, LinearHook* hook) const {
  const Linear& l = linears_.find(name)->second;
  if (hook) {
    hook->observe(name, x);
    MatrixF y;
    if (hook->replace(name, x, y)) {
      if (y.rows() != x.rows() || y.cols() != l.w.rows())
        throw Error(fmt::format("dit: the hook of '{}' returned {} x {}, expected {} x {}", name, y.rows(), y.cols(),
                                x.rows(), l.w.rows()));
      return y;
    }
  }
  MatrixF y = x * l.w.transpose();
  y.rowwise() += l.b.transpose();
  return y;
}

void DitModel::check_batch(std::span<const float> x, std::span<const float> t, std::span<const int32_t> y) const {
  const int64_t n = static_cast<int64_t>(t.size());
  if (n == 0) throw Error("dit: empty batch");
  if (static_cast<int64_t>(y.size()) != n)
    throw Error(fmt::format("dit: {} labels for {} time values", y.size(), n));
  if (static_cast<int64_t>(x.size()) != n * cfg_.image_numel())
    throw Error(fmt::format("dit: {} input values for {} images of {} x {} x {}", x.size(), n, cfg_.in_channels,
                            cfg_.input_size, cfg_.input_size));
  for (const int32_t l : y)
    if (l < 0 || l > cfg_.num_classes)
      throw Error(fmt::format("dit: label {} outside [0, {}] ({} is the null label)", l, cfg_.num_classes, cfg_.num_classes));
}

std::vector<float> DitModel::forward(std::span<const float> x, std::span<const float> t, std::span<const int32_t> y,
                                     LinearHook* hook) const {
  check_batch(x, t, y);
  const DitConfig& c = cfg_;
  const int64_t n = static_cast<int64_t>(t.size()), T = c.tokens(), D = c.hidden_size, G = c.grid();
  const int64_t p = c.patch_size, C = c.in_channels, S = c.input_size, P = C * p * p;

  // Patch embedding: a p x p stride-p convolution as a GEMM over patches (c, kh, kw).
  MatrixF patches(n * T, P);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t gh = 0; gh < G; ++gh)
      for (int64_t gw = 0; gw < G; ++gw)
        for (int64_t ch = 0; ch < C; ++ch)
          for (int64_t kh = 0; kh < p; ++kh)
            for (int64_t kw = 0; kw < p; ++kw)
              patches(b * T + gh * G + gw, (ch * p + kh) * p + kw) =
                  x[static_cast<size_t>(((b * C + ch) * S + gh * p + kh) * S + gw * p + kw)];
  MatrixF h = patches * patch_w_.transpose();
  h.rowwise() += patch_b_.transpose();
  for (int64_t b = 0; b < n; ++b) h.middleRows(b * T, T) += pos_embed_;

  // Conditioning: timestep embedding (cos half, sin half) through the MLP, plus the label row.
  const int64_t F = c.frequency_size;
  MatrixF tf(n, F);
  for (int64_t b = 0; b < n; ++b) timestep_features(t[static_cast<size_t>(b)], F, tf.data() + b * F);
  MatrixF cond = linear("t_embedder.mlp.2", silu(linear("t_embedder.mlp.0", tf, hook)), hook);
  for (int64_t b = 0; b < n; ++b) cond.row(b) += y_table_.row(y[static_cast<size_t>(b)]);
  const MatrixF sc = silu(cond);

  const int64_t H = c.num_heads, hd = D / H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string pre = fmt::format("blocks.{}.", i);
    const MatrixF mod = linear(pre + "adaLN_modulation.1", sc, hook);  // n x 6D
    MatrixF a = layer_norm(h);
    modulate(a, mod, T, 0, D);
    const MatrixF qkv = linear(pre + "attn.qkv", a, hook);  // (nT) x 3D: q | k | v, head-major inside
    MatrixF att(n * T, D);
#pragma omp parallel for schedule(dynamic) collapse(2)
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t hh = 0; hh < H; ++hh) {
        const auto q = qkv.block(b * T, hh * hd, T, hd);
        const auto k = qkv.block(b * T, D + hh * hd, T, hd);
        const auto v = qkv.block(b * T, 2 * D + hh * hd, T, hd);
        MatrixF s = (q * k.transpose()) * scale;
        for (int64_t r = 0; r < T; ++r) {
          auto row = s.row(r);
          const float mx = row.maxCoeff();
          row = (row.array() - mx).exp();
          row /= row.sum();
        }
        att.block(b * T, hh * hd, T, hd) = s * v;
      }
    }
    gated_add(h, linear(pre + "attn.proj", att, hook), mod, T, 2 * D);
    a = layer_norm(h);
    modulate(a, mod, T, 3 * D, 4 * D);
    MatrixF m1 = linear(pre + "mlp.fc1", a, hook);
    gelu_tanh(m1);
    gated_add(h, linear(pre + "mlp.fc2", m1, hook), mod, T, 5 * D);
  }

  const MatrixF fmod = linear("final_layer.adaLN_modulation.1", sc, hook);  // n x 2D: shift | scale
  MatrixF a = layer_norm(h);
  modulate(a, fmod, T, 0, D);
  const MatrixF o = linear("final_layer.linear", a, hook);  // (nT) x (p p C), columns (pp, q, c)

  std::vector<float> out(static_cast<size_t>(n * c.image_numel()));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t gh = 0; gh < G; ++gh)
      for (int64_t gw = 0; gw < G; ++gw)
        for (int64_t pp = 0; pp < p; ++pp)
          for (int64_t q = 0; q < p; ++q)
            for (int64_t ch = 0; ch < C; ++ch)
              out[static_cast<size_t>(((b * C + ch) * S + gh * p + pp) * S + gw * p + q)] =
                  o(b * T + gh * G + gw, (pp * p + q) * C + ch);
  return out;
}

std::vector<float> DitModel::forward_cfg(std::span<const float> x, std::span<const float> t,
                                         std::span<const int32_t> y, float scale, LinearHook* hook) const {
  check_batch(x, t, y);
  const size_t n = t.size(), e = static_cast<size_t>(cfg_.image_numel());
  std::vector<float> x2(2 * x.size()), t2(2 * n);
  std::vector<int32_t> y2(2 * n);
  std::copy(x.begin(), x.end(), x2.begin());
  std::copy(x.begin(), x.end(), x2.begin() + static_cast<std::ptrdiff_t>(x.size()));
  std::copy(t.begin(), t.end(), t2.begin());
  std::copy(t.begin(), t.end(), t2.begin() + static_cast<std::ptrdiff_t>(n));
  std::copy(y.begin(), y.end(), y2.begin());
  std::fill(y2.begin() + static_cast<std::ptrdiff_t>(n), y2.end(), static_cast<int32_t>(cfg_.null_class()));
  const std::vector<float> o = forward(x2, t2, y2, hook);
  std::vector<float> out(n * e);
  for (size_t i = 0; i < n * e; ++i) {
    const float cond = o[i], uncond = o[n * e + i];
    out[i] = uncond + scale * (cond - uncond);
  }
  return out;
}

void timestep_features(float t, int64_t frequency_size, float* out) {
  const int64_t half = frequency_size / 2;
  const float neg_log = static_cast<float>(-std::log(10000.0));
  for (int64_t i = 0; i < half; ++i) {
    const float freq = std::exp(neg_log * static_cast<float>(i) / static_cast<float>(half));
    const float a = t * freq;
    out[i] = std::cos(a);
    out[half + i] = std::sin(a);
  }
  for (int64_t i = 2 * half; i < frequency_size; ++i) out[i] = 0.0f;  // odd sizes: a zero column
}

std::vector<float> euler_times(int64_t steps) {
  if (steps < 1) throw Error(fmt::format("sampler: {} steps (at least 1)", steps));
  // ATen linspace: step = (end - start) / (count - 1); the first half start + step * i, the second
  // half end - step * (count - 1 - i), in the tensor's dtype.
  const int64_t count = steps + 1, halfway = count / 2;
  const float step = (0.0f - 1.0f) / static_cast<float>(count - 1);
  std::vector<float> ts(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    ts[static_cast<size_t>(i)] = i < halfway ? 1.0f + step * static_cast<float>(i)
                                             : 0.0f - step * static_cast<float>(count - 1 - i);
  return ts;
}

std::vector<float> sample_euler(const DitModel& model, std::span<const float> noise, std::span<const int32_t> labels,
                                const SamplerOptions& options, LinearHook* hook,
                                const std::function<void(int64_t)>& progress) {
  const int64_t n = static_cast<int64_t>(labels.size());
  if (n == 0) throw Error("sampler: no images");
  if (static_cast<int64_t>(noise.size()) != n * model.config().image_numel())
    throw Error(fmt::format("sampler: {} noise values for {} images", noise.size(), n));
  const std::vector<float> ts = euler_times(options.steps);
  std::vector<float> x(noise.begin(), noise.end()), tt(static_cast<size_t>(n));
  for (int64_t i = 0; i < options.steps; ++i) {
    const float t = ts[static_cast<size_t>(i)], dt = ts[static_cast<size_t>(i + 1)] - t;
    std::fill(tt.begin(), tt.end(), t * 1000.0f);
    const std::vector<float> v = options.cfg_scale == 1.0f ? model.forward(x, tt, labels, hook)
                                                           : model.forward_cfg(x, tt, labels, options.cfg_scale, hook);
    for (size_t j = 0; j < x.size(); ++j) x[j] = x[j] + dt * v[j];
    if (progress) progress(i);
  }
  if (options.clamp)
    for (float& v : x) v = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);  // NaN passes, as torch.clamp
  return x;
}

std::vector<float> dit_noise(uint64_t seed, int64_t index, int64_t count) {
  if (index < 0 || count < 0) throw Error("dit_noise: negative index or count");
  std::vector<float> out(static_cast<size_t>(count));
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const double two_pi = 2.0 * std::numbers::pi;
  for (int64_t j = 0; j < count; j += 2) {
    const uint64_t pair = static_cast<uint64_t>(j / 2), idx = static_cast<uint64_t>(index);
    const uint32_t ctr[4] = {static_cast<uint32_t>(pair), static_cast<uint32_t>(pair >> 32), static_cast<uint32_t>(idx),
                             static_cast<uint32_t>(idx >> 32)};
    uint32_t r[4];
    Philox4x32::generate(ctr, key, r);
    const double u1 = (static_cast<double>(r[0]) + 1.0) * 0x1p-32;  // (0, 1]
    const double u2 = static_cast<double>(r[1]) * 0x1p-32;          // [0, 1)
    const double rad = std::sqrt(-2.0 * std::log(u1));
    out[static_cast<size_t>(j)] = static_cast<float>(rad * std::cos(two_pi * u2));
    if (j + 1 < count) out[static_cast<size_t>(j + 1)] = static_cast<float>(rad * std::sin(two_pi * u2));
  }
  return out;
}

std::vector<int32_t> dit_labels(int64_t first, int64_t n, int64_t num_classes) {
  if (first < 0 || n < 0 || num_classes <= 0) throw Error("dit_labels: bad arguments");
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = static_cast<int32_t>((first + i) % num_classes);
  return y;
}

}  // namespace lowbit
