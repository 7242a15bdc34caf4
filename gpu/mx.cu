// CUDA kernels of the OCP MX formats (mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2, mxfp4,
// mxint8): one warp per block of 32, lane i holding element i — a coalesced load, the block amax
// by an integer max-reduction of |x| bit patterns (exact in any order), then every lane derives
// the same scale byte and encodes its element. Every rule is formats/mx_rules.hpp, the functions
// the CPU reference path composes, so the bytes equal the CPU's.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "formats/mx_rules.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/family_mx.hpp"

namespace lowbit::gpu {
namespace {

constexpr int kThreads = 256;  // a multiple of 32: warps never straddle a CUDA block

static_assert(kMxBlock == 32, "one lane per element of an MX block");

// Grid-stride over MX blocks, one per warp; the loop bound is uniform across a warp, so the
// full-mask reduction always has all 32 lanes. Flat index of element i of block b: 32 b + i
// (cols is a multiple of 32), the stochastic rounding key.
__global__ void mx_encode_blocks(MxParams p, const float* __restrict x, int64_t nblk, uint32_t* __restrict scales,
                                 uint32_t* __restrict codes, float* __restrict values) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t b = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; b < nblk; b += nwarps) {
    const int64_t k = b * kMxBlock + lane;
    const float v = x[k];
    const uint32_t amax = __reduce_max_sync(0xffffffffu, mx_abs_bits(v));
    const MxBlockScale s = mx_block_scale(p, amax);
    const uint32_t c = mx_block_code(p, s, v, static_cast<uint64_t>(k));
    if (codes) codes[k] = c;
    if (values) values[k] = mx_block_value(p, c, s.e);
    if (scales && lane == 0) scales[b] = s.e;
  }
}

__global__ void mx_decode_elements(MxParams p, const uint32_t* __restrict codes, const uint32_t* __restrict scales,
                                   int64_t n, float* __restrict values) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    values[i] = mx_block_value(p, codes[i], static_cast<uint8_t>(scales[i / kMxBlock]));
}

void check_cols(const char* what, int64_t cols) {
  if (cols % kMxBlock != 0)
    throw Error(std::string(what) + ": " + std::to_string(cols) + " columns, not a multiple of " +
                std::to_string(kMxBlock));
}

}  // namespace

void mx_encode(const MxParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes, float* values,
               std::vector<std::vector<uint32_t>>* aux) {
  check_cols("gpu mx encode", cols);
  const int64_t nblk = rows * cols / kMxBlock;
  DeviceArray<uint32_t> scales(aux ? static_cast<size_t>(nblk) : 0);
  if (nblk > 0) {
    mx_encode_blocks<<<grid_for(nblk * 32, kThreads), kThreads>>>(p, x, nblk, aux ? scales.get() : nullptr, codes, values);
    LOWBIT_CUDA_LAUNCHED("mx_encode_blocks");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
  if (aux) aux->push_back(scales.download());
}

void mx_decode(const MxParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
               const std::vector<std::vector<uint32_t>>& aux, float* values) {
  check_cols("gpu mx decode", cols);
  const int64_t n = rows * cols;
  const int64_t nblk = n / kMxBlock;
  if (aux.empty() || static_cast<int64_t>(aux[0].size()) != nblk)
    throw Error("gpu mx decode: the 'scales' section does not match the shape (" + std::to_string(nblk) +
                " blocks)");
  DeviceArray<uint32_t> scales(static_cast<size_t>(nblk));
  scales.upload(aux[0].data(), aux[0].size());
  if (n > 0) {
    mx_decode_elements<<<grid_for(n, kThreads), kThreads>>>(p, codes, scales.get(), n, values);
    LOWBIT_CUDA_LAUNCHED("mx_decode_elements");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

}  // namespace lowbit::gpu
