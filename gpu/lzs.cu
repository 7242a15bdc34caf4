// CUDA kernels of lzs4 (QuaRTZ; gpu/family_cb.hpp). Stage-1 scale: one warp per row
// (s8=token), or a two-stage reduction over the tensor (per-block partials, then one thread);
// the statistics are LzsRange, whose merge is order-free and gives the reference's left-fold
// bits (NaN payloads, the first of +0 / -0). Then one thread per group (FLAG, codes, values),
// and for decode one thread per element. Every rule is formats/lzs_rules.hpp.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "formats/lzs_rules.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/kernels.cuh"
#include "gpu/family_cb.hpp"

namespace lowbit::gpu {
namespace {

constexpr int kThreads = 256;

// Warp merge of LzsRange (floats moved as bits, so NaN payloads travel unchanged).
__device__ __forceinline__ LzsRange warp_merge(LzsRange r) {
  for (int o = 16; o > 0; o >>= 1) {
    LzsRange q;
    q.lo = f32_from_bits(__shfl_xor_sync(0xffffffffu, f32_bits(r.lo), o));
    q.hi = f32_from_bits(__shfl_xor_sync(0xffffffffu, f32_bits(r.hi), o));
    q.ilo = __shfl_xor_sync(0xffffffffu, static_cast<long long>(r.ilo), o);
    q.ihi = __shfl_xor_sync(0xffffffffu, static_cast<long long>(r.ihi), o);
    r.merge(q);
  }
  return r;
}

// s8=token: one warp per row.
__global__ void lzs_row_scales(LzsParams p, const float* __restrict x, int64_t rows, int64_t cols,
                               float* __restrict s8) {
  const int64_t warp = thread_index() / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows) return;  // whole warps exit together
  const float* xr = x + warp * cols;
  LzsRange r;
  for (int64_t j = lane; j < cols; j += 32) r.add(p.calib, xr[j], warp * cols + j);
  r = warp_merge(r);
  if (lane == 0) s8[warp] = lzs_scale(p.calib, r);
}

// s8=tensor, stage 1: each block reduces a grid-stride share into partial[blockIdx.x].
__global__ void lzs_tensor_partial(LzsParams p, const float* __restrict x, int64_t n, LzsRange* __restrict partial) {
  __shared__ LzsRange warps[kThreads / 32];
  LzsRange r;
  for (int64_t i = thread_index(); i < n; i += thread_stride()) r.add(p.calib, x[i], i);
  r = warp_merge(r);
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = r;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) r.merge(warps[w]);
    partial[blockIdx.x] = r;
  }
}

// Stage 2: one thread.
__global__ void lzs_tensor_final(LzsParams p, const LzsRange* __restrict partial, int np, float* __restrict s8) {
  LzsRange r;
  for (int i = 0; i < np; ++i) r.merge(partial[i]);
  s8[0] = lzs_scale(p.calib, r);
}

// One thread per group: FLAG, codes and / or values.
__global__ void lzs_groups(LzsParams p, const float* __restrict x, int64_t ng, int64_t cols,
                           const float* __restrict s8, uint32_t* __restrict flags, uint32_t* __restrict codes,
                           float* __restrict values) {
  const int64_t g = p.group;
  for (int64_t k = thread_index(); k < ng; k += thread_stride()) {
    const float s = s8[p.per_token ? (k * g) / cols : 0];
    flags[k] = static_cast<uint32_t>(lzs_encode_group_rule(p, x + k * g, g, s, codes ? codes + k * g : nullptr,
                                                           values ? values + k * g : nullptr));
  }
}

__global__ void lzs_values(LzsParams p, const uint32_t* __restrict codes, int64_t n, int64_t cols,
                           const uint32_t* __restrict flags, const float* __restrict s8, float* __restrict values) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    const float s = s8[p.per_token ? i / cols : 0];
    values[i] = lzs_value(codes[i], static_cast<int>(flags[i / p.group]), s);
  }
}

std::vector<uint32_t> float_bits(const std::vector<float>& v) {
  std::vector<uint32_t> u(v.size());
  for (size_t i = 0; i < v.size(); ++i) u[i] = f32_bits(v[i]);
  return u;
}

void check_groups(const LzsParams& p, int64_t cols) {
  if (p.group <= 0 || (cols > 0 && cols % p.group != 0))
    throw Error("gpu lzs4: the group size " + std::to_string(p.group) + " does not divide the last dimension " +
                std::to_string(cols));
}

}  // namespace

DeviceArray<float> lzs_scales_device(const LzsParams& p, const float* x, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  const int64_t ns = p.per_token ? rows : 1;
  DeviceArray<float> s8(static_cast<size_t>(ns));
  if (ns > 0) LOWBIT_CUDA(cudaMemset(s8.get(), 0, static_cast<size_t>(ns) * sizeof(float)));  // no element: 0
  if (n > 0) {
    if (p.per_token) {
      lzs_row_scales<<<static_cast<unsigned>((rows * 32 + kThreads - 1) / kThreads), kThreads>>>(p, x, rows, cols,
                                                                                                 s8.get());
      LOWBIT_CUDA_LAUNCHED("lzs_row_scales");
    } else {
      const int np = static_cast<int>(std::min<int64_t>(1024, (n + kThreads - 1) / kThreads));
      DeviceArray<LzsRange> partial(static_cast<size_t>(np));
      lzs_tensor_partial<<<np, kThreads>>>(p, x, n, partial.get());
      LOWBIT_CUDA_LAUNCHED("lzs_tensor_partial");
      lzs_tensor_final<<<1, 1>>>(p, partial.get(), np, s8.get());
      LOWBIT_CUDA_LAUNCHED("lzs_tensor_final");
    }
  }
  return s8;
}

void lzs_encode(const LzsParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes, float* values,
                std::vector<std::vector<uint32_t>>* aux) {
  check_groups(p, cols);
  const int64_t n = rows * cols, ng = n / p.group;
  const DeviceArray<float> s8 = lzs_scales_device(p, x, rows, cols);
  DeviceArray<uint32_t> flags(static_cast<size_t>(ng));
  if (ng > 0) {
    lzs_groups<<<grid_for(ng, kThreads), kThreads>>>(p, x, ng, cols, s8.get(), flags.get(), codes, values);
    LOWBIT_CUDA_LAUNCHED("lzs_groups");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
  if (aux) {
    aux->push_back(flags.download());
    aux->push_back(float_bits(s8.download()));
  }
}

void lzs_decode(const LzsParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
                const std::vector<std::vector<uint32_t>>& aux, float* values) {
  check_groups(p, cols);
  const int64_t n = rows * cols, ng = n / p.group;
  const int64_t ns = p.per_token ? rows : 1;
  if (aux.size() != 2 || static_cast<int64_t>(aux[0].size()) != ng || static_cast<int64_t>(aux[1].size()) != ns)
    throw Error("gpu lzs4 decode: expected 'flags' (" + std::to_string(ng) + ") and 's8' (" + std::to_string(ns) +
                ") sections");
  for (const uint32_t f : aux[0])
    if (f > static_cast<uint32_t>(kLzsMaxFlag))
      throw Error("gpu lzs4 decode: FLAG " + std::to_string(f) + " is outside 0..4");
  if (n == 0) return;
  DeviceArray<uint32_t> flags(static_cast<size_t>(ng));
  DeviceArray<float> s8(static_cast<size_t>(ns));
  flags.upload(aux[0].data(), aux[0].size());
  LOWBIT_CUDA(cudaMemcpy(s8.get(), aux[1].data(), static_cast<size_t>(ns) * 4, cudaMemcpyHostToDevice));
  lzs_values<<<grid_for(n, kThreads), kThreads>>>(p, codes, n, cols, flags.get(), s8.get(), values);
  LOWBIT_CUDA_LAUNCHED("lzs_values");
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

}  // namespace lowbit::gpu
