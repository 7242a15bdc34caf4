// DitModel — the CPU engine of the DiT (Peebles & Xie) that lowbit runs under quantization
// recipes: a C++ forward of experiments/tinydit/model.py with the reference parameter names
// (facebookresearch/DiT), and the rectified-flow Euler sampler of experiments/tinydit/train.py.
//
//   tokens = PatchEmbed(x) + pos_embed                      (conv p×p stride p, token = h·G + w)
//   c      = t_embedder(1000·t) + y_embedder(y)             (sinusoidal 256: cos half, sin half)
//   block  = x += gate_msa · attn(modulate(LN(x), shift_msa, scale_msa))
//            x += gate_mlp · mlp(modulate(LN(x), shift_mlp, scale_mlp))
//            with [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp] =
//            adaLN_modulation.1(SiLU(c)); LN without affine, eps 1e-6; modulate = x(1 + scale) +
//            shift; attention with fused qkv, heads of D/H, softmax(q·kᵀ/√(D/H))·v; MLP fc1,
//            GELU (tanh approximation), fc2
//   out    = final_layer.linear(modulate(LN(x), shift, scale)), unpatchified "nhwpqc -> nchpwq"
//
// Sampler (train.sample_euler without autocast): t_i = torch.linspace(1, 0, steps + 1) in
// float32, the model sees 1000·t_i, x ← x + (t_{i+1} − t_i)·v; classifier-free guidance runs the
// batch twice (conditional, then the null label num_classes) and uses
// v = uncond + s·(cond − uncond); the final image is clamped to [-1, 1].
//
// Every one of the 44 linear layers (named as its PyTorch module: t_embedder.mlp.0,
// blocks.N.attn.qkv, ..., final_layer.linear) goes through one function, so a LinearHook can
// observe its input (calibration) or replace its product (quantization recipes). Arithmetic is
// float32 with Eigen GEMMs: against PyTorch's float32 CPU forward only the summation order
// differs (tests/sim/test_dit.cpp states the tolerance against the float64 reference).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantizers/matrix.hpp"

namespace lowbit {

struct DitConfig {
  int64_t input_size = 32;
  int64_t patch_size = 2;
  int64_t in_channels = 3;
  int64_t hidden_size = 256;
  int64_t depth = 8;
  int64_t num_heads = 4;
  double mlp_ratio = 4.0;
  int64_t num_classes = 12;
  int64_t frequency_size = 256;  // TimestepEmbedder.frequency_embedding_size
  int64_t sample_steps = 50;     // config.json default_sample_steps
  double cfg_scale = 2.0;        // config.json default_cfg_scale

  int64_t grid() const { return input_size / patch_size; }
  int64_t tokens() const { return grid() * grid(); }
  int64_t mlp_hidden() const { return static_cast<int64_t>(static_cast<double>(hidden_size) * mlp_ratio); }
  int64_t image_numel() const { return in_channels * input_size * input_size; }
  int64_t null_class() const { return num_classes; }
};

// Reads config.json ("dit_config" and the sampler defaults); lowbit::Error naming the file and key.
DitConfig read_dit_config(const std::filesystem::path& path);

// What a forward pass does at each linear layer. Default: nothing (the plain float32 product).
class LinearHook {
 public:
  virtual ~LinearHook() = default;
  // Sees the layer's input (rows × in) before the product.
  virtual void observe(std::string_view layer, const quant::MatrixF& x) {}
  // Returns true and sets y (rows × out, bias included) to replace the product.
  virtual bool replace(std::string_view layer, const quant::MatrixF& x, quant::MatrixF& y) { return false; }
};

class DitModel {
 public:
  // Loads DIR/config.json and DIR/tinydit.safetensors (or the given checkpoint): every expected
  // tensor present with its shape, nothing else; lowbit::Error naming the file and tensor.
  static DitModel load(const std::filesystem::path& dir);
  static DitModel load(const std::filesystem::path& config_json, const std::filesystem::path& checkpoint);

  const DitConfig& config() const { return cfg_; }
  // The 44 linear layers in forward order.
  const std::vector<std::string>& linear_names() const { return names_; }
  const quant::MatrixF& weight(std::string_view layer) const;  // out × in
  const quant::VectorF& bias(std::string_view layer) const;    // out
  int64_t parameters() const;                                  // every tensor's elements
  // The non-linear parameters (for the GPU engine): patch embedding hidden × (C·p·p) with column
  // c·p·p + kh·p + kw, its bias, the position embedding tokens × hidden, the label table.
  const quant::MatrixF& patch_weight() const { return patch_w_; }
  const quant::VectorF& patch_bias() const { return patch_b_; }
  const quant::MatrixF& pos_embed() const { return pos_embed_; }
  const quant::MatrixF& label_table() const { return y_table_; }

  // Velocity for a batch: x (n × C × H × W, NCHW), t the model's time input (1000·t), y labels
  // in [0, num_classes] (num_classes = the null label). Returns n × C × H × W.
  std::vector<float> forward(std::span<const float> x, std::span<const float> t, std::span<const int32_t> y,
                             LinearHook* hook = nullptr) const;
  // Classifier-free guidance as DiT.forward_with_cfg: one forward of the 2n batch
  // [x; x], [t; t], [y; null], then uncond + scale·(cond − uncond).
  std::vector<float> forward_cfg(std::span<const float> x, std::span<const float> t, std::span<const int32_t> y,
                                 float scale, LinearHook* hook = nullptr) const;

 private:
  struct Linear {
    quant::MatrixF w;
    quant::VectorF b;
  };
  quant::MatrixF linear(const std::string& name, const quant::MatrixF& x, LinearHook* hook) const;
  void check_batch(std::span<const float> x, std::span<const float> t, std::span<const int32_t> y) const;

  DitConfig cfg_;
  std::vector<std::string> names_;
  std::map<std::string, Linear, std::less<>> linears_;
  quant::MatrixF patch_w_;    // hidden × (C·p·p), column index c·p·p + kh·p + kw
  quant::VectorF patch_b_;
  quant::MatrixF pos_embed_;  // tokens × hidden
  quant::MatrixF y_table_;    // (num_classes + 1) × hidden
};

struct SamplerOptions {
  int64_t steps = 50;
  float cfg_scale = 2.0f;  // 1: no guidance (one forward of the n batch)
  bool clamp = true;       // clamp the final image to [-1, 1]
};

// The sinusoidal timestep features of one time input (TimestepEmbedder.timestep_embedding):
// out[i] = cos(t·f_i), out[F/2 + i] = sin(t·f_i), f_i = exp(−ln(10000)·i/(F/2)) in float32.
void timestep_features(float t, int64_t frequency_size, float* out);

// The time grid: torch.linspace(1, 0, steps + 1) in float32 (ATen's two-sided formula).
std::vector<float> euler_times(int64_t steps);

// Euler sampling from noise (n × C × H × W) with labels (n); progress(step) after each step.
std::vector<float> sample_euler(const DitModel& model, std::span<const float> noise, std::span<const int32_t> labels,
                                const SamplerOptions& options, LinearHook* hook = nullptr,
                                const std::function<void(int64_t)>& progress = {});

// Standard normal noise of image `index` of a generation with `seed`: count values, a function of
// (seed, index, position) only, so an image's noise does not depend on the batch it is drawn in.
// Box–Muller on Philox4x32-10 (formats/philox.hpp) with key = seed and counter = (index,
// position / 2): u1 = (bits0 + 1) · 2^-32 in (0, 1], u2 = bits1 · 2^-32; r = sqrt(−2 ln u1),
// values r·cos(2π u2) (even positions) and r·sin(2π u2) (odd), computed in double and rounded to
// float.
std::vector<float> dit_noise(uint64_t seed, int64_t index, int64_t count);

// Class labels of a generation: image i gets class i mod num_classes.
std::vector<int32_t> dit_labels(int64_t first, int64_t n, int64_t num_classes);

}  // namespace lowbit
