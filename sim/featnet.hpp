// FeatNet — C++ forward of the small CNN whose penultimate layer gives lowbit's Fréchet-distance
// features (experiments/tinydit/featnet.py, weights models/featnet/featnet.safetensors):
//
//   conv1 C→w, ReLU | conv2 w→w, ReLU, max_pool 2 | conv3 w→2w, ReLU | conv4 2w→2w, ReLU,
//   max_pool 2 | conv5 2w→4w, ReLU | global average pool | fc1 4w→feat_dim, ReLU = features |
//   fc2 feat_dim→num_classes = logits
//
// with every conv 3×3, stride 1, zero padding 1, cross-correlation as in torch.nn.Conv2d, and
// max_pool 2 as F.max_pool2d(x, 2): stride 2, no padding, floor mode (an odd last row/column is
// dropped). Input: float32 NCHW images in [-1, 1] (32×32 RGB for the shipped weights; any
// H, W ≥ 4 works). Arithmetic is float32 (im2col + Eigen GEMM; global average pool summed in
// double), so results differ from PyTorch's float32 CPU forward by summation order only.
// NaN/Inf in an image propagate as in PyTorch (ReLU and max keep NaN) and stay in that image.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "quantizers/matrix.hpp"
#include "sim/image_batch.hpp"
#include "sim/tensor.hpp"

namespace lowbit {

struct FeatNetConfig {
  int64_t in_channels = 3;
  int64_t width = 32;  // channels of conv1/conv2; conv3/conv4 have 2·width, conv5 4·width
  int64_t feat_dim = 128;
  int64_t num_classes = 12;
  std::vector<std::string> class_names;  // optional (empty, or num_classes names)
};

// Reads models/featnet/config.json: the "config" object {in_channels, width, feat_dim,
// num_classes} (positive integers, no other keys) and the optional top-level "class_names".
// Other top-level keys (training log) are ignored. lowbit::Error names the file and the field.
FeatNetConfig read_featnet_config(const std::filesystem::path& config_json);

class FeatNet {
 public:
  // PyTorch state-dict names and shapes: convK.weight (out, in, 3, 3), convK.bias (out),
  // fc1.weight (feat_dim, 4·width), fc1.bias, fc2.weight (num_classes, feat_dim), fc2.bias, all
  // F32. A missing, unexpected, duplicated, wrongly shaped or non-F32 tensor throws
  // lowbit::Error naming the tensor and `source` (e.g. the weights file).
  FeatNet(FeatNetConfig config, const std::vector<Tensor>& weights,
          const std::string& source = "featnet weights");

  // Weights from a .safetensors file and the config from config.json.
  static FeatNet load(const std::filesystem::path& weights, const std::filesystem::path& config_json);
  // A model directory holding featnet.safetensors and config.json (models/featnet).
  static FeatNet load_dir(const std::filesystem::path& dir);

  const FeatNetConfig& config() const { return config_; }

  // N × feat_dim features (relu(fc1(.)), FeatNet.features in PyTorch) and N × num_classes
  // logits. The images must have C == in_channels and H, W ≥ 4 (lowbit::Error otherwise);
  // N = 0 gives an empty matrix. Images are processed in parallel (OpenMP); the result of an
  // image does not depend on the batch it is in nor on the number of threads.
  quant::MatrixF features(const ImageBatch& images) const;
  quant::MatrixF logits(const ImageBatch& images) const;
  // Both from one forward pass.
  void forward(const ImageBatch& images, quant::MatrixF* features, quant::MatrixF* logits) const;

  // Tensor overloads: a 4-D tensor of any dtype, converted with to_f32.
  quant::MatrixF features(const Tensor& images) const;
  quant::MatrixF logits(const Tensor& images) const;

 private:
  struct Conv {
    quant::MatrixF w;  // out × (in·9), column index (ci·3 + ky)·3 + kx: the flattened weight
    std::vector<float> b;
    int64_t in = 0, out = 0;
  };
  FeatNetConfig config_;
  Conv conv_[5];
  quant::MatrixF fc1_w_, fc2_w_;  // out × in
  Eigen::RowVectorXf fc1_b_, fc2_b_;
};

}  // namespace lowbit
