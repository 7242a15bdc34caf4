// DitGpu — the CUDA twin of the CPU DiT engine (sim/dit.hpp): the same forward and Euler
// sampler with the weights in device memory, cuBLAS for the products and small kernels for the
// rest; quantized layers run as quantizers/linear.hpp's QuantizedLinear::forward does:
//
//   X̂ = (X / smooth)·H (per input feature; H the layer's rotation, if any, as a dense float32
//        product: the CPU applies it as a fast transform, so X̂ agrees to float rounding)
//   Ŷ = Qa(X̂)·Wᵀ + round16(round16(X̂)·lr_downᵀ)·lr_upᵀ + b    (products in float64, as the CPU;
//        with float32_products, float32 GEMMs as the CPU's float32 path, the bias in the epilogue)
//
// with Qa a registry format run by the GPU format kernels (gpu::fake_quant_device, the fused
// kernels), so the activation codes equal the CPU's for the same input. Host-side API without
// CUDA types; the caller (sim/e2e) fills DitGpuWeights from a DitModel and a recipe.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/tensor_format.hpp"

namespace lowbit::gpu {

struct DitGpuLayer {
  std::string name;
  int64_t out = 0, in = 0;
  std::vector<float> w;        // out × in, row-major (already fake-quantized for quantized layers)
  std::vector<float> b;        // out or empty
  bool quantized = false;      // false: the plain float32 product (FP32 GEMM)
  std::vector<float> smooth;   // in, divisor; empty = none
  std::vector<float> rotation; // in × in, row-major: X̂ = (X / smooth)·H; empty = none
  std::shared_ptr<const TensorFormat> act;  // activation format; null = none
  int64_t rank = 0;
  std::vector<float> lr_up;    // out × rank
  std::vector<float> lr_down;  // rank × in
  bool branch_fp16 = true;
  bool float32_products = false;  // products as float32 GEMMs (cuBLASLt, bias epilogue), not float64
};

struct DitGpuWeights {
  int64_t input_size = 32, patch = 2, channels = 3, hidden = 256, depth = 8, heads = 4, mlp = 1024;
  int64_t num_classes = 12, frequency_size = 256;
  std::vector<float> patch_w;    // hidden × (C·p·p)
  std::vector<float> patch_b;    // hidden
  std::vector<float> pos_embed;  // tokens × hidden
  std::vector<float> y_table;    // (num_classes + 1) × hidden
  std::vector<DitGpuLayer> layers;  // the 44 linears in forward order (sim/dit.hpp)
};

class DitGpu {
 public:
  explicit DitGpu(const DitGpuWeights& w);
  ~DitGpu();
  DitGpu(const DitGpu&) = delete;
  DitGpu& operator=(const DitGpu&) = delete;

  // Velocity of n images (host in, host out), time features tfreq (n × frequency_size, host).
  std::vector<float> forward(std::span<const float> x, std::span<const float> tfreq, std::span<const int32_t> y);
  // Euler sampling as sim/dit.hpp sample_euler: times = the steps + 1 grid, features(t, out) the
  // timestep features of the model input t (1000·t_i).
  std::vector<float> sample(std::span<const float> noise, std::span<const int32_t> labels, std::span<const float> times,
                            float cfg_scale, bool clamp, const std::function<void(float, float*)>& features,
                            const std::function<void(int64_t)>& progress = {});
  // How the products run (after the first forward): e.g. "plain layers: cuBLASLt
  // CUBLAS_COMPUTE_32F_PEDANTIC with bias epilogue; quantized layers: cuBLAS DGEMM".
  std::string products() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit::gpu
