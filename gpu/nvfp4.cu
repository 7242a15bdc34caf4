// CUDA kernels of NVFP4 (variants te, torchao, modelopt; tensor_scale=off): the tensor amax by a
// two-stage integer max-reduction of |x| bit patterns (per CUDA block, then one thread over the
// partials, which also derives the tensor-level state), then two blocks of 16 per warp, lane i
// of each half holding element i: the block amax by a 16-lane butterfly, every lane derives the
// same block scale and encodes its element. An integer max is exact in any order and orders
// every NaN above Inf, as the CPU's amax does. Every rule is formats/nvfp4_rules.hpp, the
// functions the CPU reference path composes, so the bytes equal the CPU's.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "formats/nvfp4_rules.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/family_mx.hpp"

namespace lowbit::gpu {
namespace {

constexpr int kThreads = 256;  // a multiple of 32: warps never straddle a CUDA block
constexpr int kMaxPartials = 1024;

static_assert(kNvfp4Block == 16, "one half-warp per NVFP4 block");

// Each CUDA block reduces a grid-stride share of |x| bit patterns into partial[blockIdx.x].
__global__ void nvfp4_amax_partial(const float* __restrict x, int64_t n, uint32_t* __restrict partial) {
  __shared__ uint32_t warps[kThreads / 32];
  uint32_t m = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t a = nvfp4_abs_bits(x[i]);
    m = a > m ? a : m;
  }
  m = __reduce_max_sync(0xffffffffu, m);
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) m = warps[w] > m ? warps[w] : m;
    partial[blockIdx.x] = m;
  }
}

// The tensor amax from np partials (np = 0: an empty tensor, or single level, amax 0) and the
// tensor-level state derived from it.
__global__ void nvfp4_tensor_final(Nvfp4Params p, const uint32_t* __restrict partial, int np,
                                   Nvfp4Tensor* __restrict t) {
  uint32_t m = 0;
  for (int i = 0; i < np; ++i) m = partial[i] > m ? partial[i] : m;
  *t = nvfp4_tensor_of(p, m);
}

// Grid-stride over pairs of NVFP4 blocks, one pair per warp (block 2w in lanes 0-15, 2w + 1 in
// lanes 16-31); the loop bound is uniform across a warp, so the full-mask shuffles always have
// all 32 lanes (a missing last block contributes 0 and writes nothing). Flat index of element i
// of block b: 16 b + i (cols is a multiple of 16), the stochastic rounding key.
__global__ void nvfp4_encode_blocks(Nvfp4Params p, const Nvfp4Tensor* __restrict tp, const float* __restrict x,
                                    int64_t nblk, uint32_t* __restrict scales, uint32_t* __restrict codes,
                                    float* __restrict values) {
  const Nvfp4Tensor t = *tp;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int i = lane % kNvfp4Block;
  const int64_t npairs = (nblk + 1) / 2;
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; w < npairs; w += nwarps) {
    const int64_t b = 2 * w + lane / kNvfp4Block;
    const bool valid = b < nblk;
    const int64_t k = b * kNvfp4Block + i;
    const float v = valid ? x[k] : 0.0f;
    uint32_t a = nvfp4_abs_bits(v);
    for (int o = kNvfp4Block / 2; o > 0; o >>= 1) {  // xor offsets < 16 stay within the half
      const uint32_t q = __shfl_xor_sync(0xffffffffu, a, o);
      a = q > a ? q : a;
    }
    if (!valid) continue;
    const Nvfp4BlockScale bs = nvfp4_block_of(t, a);
    const uint32_t c = nvfp4_block_code(p, t, bs, v, static_cast<uint64_t>(k));
    if (codes) codes[k] = c;
    if (values) values[k] = nvfp4_block_value(t, c, bs.code);
    if (scales && i == 0) scales[b] = bs.code;
  }
}

__global__ void nvfp4_decode_elements(Nvfp4Tensor t, const uint32_t* __restrict codes,
                                      const uint32_t* __restrict scales, int64_t n, float* __restrict values) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    values[i] = nvfp4_block_value(t, codes[i], static_cast<uint8_t>(scales[i / kNvfp4Block]));
}

void check_cols(const char* what, int64_t cols) {
  if (cols % kNvfp4Block != 0)
    throw Error(std::string(what) + ": " + std::to_string(cols) + " columns, not a multiple of " +
                std::to_string(kNvfp4Block));
}

}  // namespace

DeviceArray<Nvfp4Tensor> nvfp4_tensor_device(const Nvfp4Params& p, const float* x, int64_t n) {
  // Single level needs no tensor amax (the CPU computes none either).
  int np = 0;
  DeviceArray<uint32_t> partial;
  if (p.two_level && n > 0) {
    np = static_cast<int>(std::min<int64_t>(kMaxPartials, (n + kThreads - 1) / kThreads));
    partial = DeviceArray<uint32_t>(static_cast<size_t>(np));
    nvfp4_amax_partial<<<np, kThreads>>>(x, n, partial.get());
    LOWBIT_CUDA_LAUNCHED("nvfp4_amax_partial");
  }
  DeviceArray<Nvfp4Tensor> t(1);
  nvfp4_tensor_final<<<1, 1>>>(p, partial.get(), np, t.get());
  LOWBIT_CUDA_LAUNCHED("nvfp4_tensor_final");
  return t;
}

void nvfp4_encode(const Nvfp4Params& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes, float* values,
                  std::vector<std::vector<uint32_t>>* aux) {
  check_cols("gpu nvfp4 encode", cols);
  const int64_t n = rows * cols;
  const int64_t nblk = n / kNvfp4Block;
  const DeviceArray<Nvfp4Tensor> t = nvfp4_tensor_device(p, x, n);
  DeviceArray<uint32_t> scales(aux ? static_cast<size_t>(nblk) : 0);
  if (nblk > 0) {
    nvfp4_encode_blocks<<<grid_for((nblk + 1) / 2 * 32, kThreads), kThreads>>>(p, t.get(), x, nblk,
                                                                       aux ? scales.get() : nullptr, codes, values);
    LOWBIT_CUDA_LAUNCHED("nvfp4_encode_blocks");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
  if (aux) {
    aux->push_back(scales.download());
    if (p.two_level) aux->push_back({f32_bits(t.download()[0].stored)});
  }
}

void nvfp4_decode(const Nvfp4Params& p, const uint32_t* codes, int64_t rows, int64_t cols,
                  const std::vector<std::vector<uint32_t>>& aux, float* values) {
  check_cols("gpu nvfp4 decode", cols);
  const int64_t n = rows * cols;
  const int64_t nblk = n / kNvfp4Block;
  if (aux.empty() || static_cast<int64_t>(aux[0].size()) != nblk)
    throw Error("gpu nvfp4 decode: the 'scales' section does not match the shape (" + std::to_string(nblk) +
                " blocks)");
  if (p.two_level && (aux.size() < 2 || aux[1].size() != 1))
    throw Error("gpu nvfp4 decode: expected one 'tensor_scale' value");
  const Nvfp4Tensor t = nvfp4_decode_tensor(p, p.two_level ? f32_from_bits(aux[1][0]) : 0.0f);
  DeviceArray<uint32_t> scales(static_cast<size_t>(nblk));
  scales.upload(aux[0].data(), aux[0].size());
  if (n > 0) {
    nvfp4_decode_elements<<<grid_for(n, kThreads), kThreads>>>(t, codes, scales.get(), n, values);
    LOWBIT_CUDA_LAUNCHED("nvfp4_decode_elements");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

}  // namespace lowbit::gpu
