// CUDA kernels of the element formats (intB / uintB / eXmY, plain casts and gN / row / col /
// tensor scaling). Scales: one warp per group or row, one thread per column, a two-stage
// reduction per tensor; elements: one thread each (grid-stride). Every rule is the shared host+
// device reference in formats/element_rules.hpp, so the bytes equal the CPU's.
#include <cuda_runtime.h>

#include "formats/element_rules.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/family.hpp"

namespace lowbit::gpu {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ ElementRange warp_reduce(ElementRange r) {
  for (int o = 16; o > 0; o >>= 1) {
    ElementRange q;
    q.amax = __shfl_xor_sync(0xffffffffu, r.amax, o);
    q.kmin = __shfl_xor_sync(0xffffffffu, r.kmin, o);
    q.kmax = __shfl_xor_sync(0xffffffffu, r.kmax, o);
    r.merge(q);
  }
  return r;
}

// One warp per contiguous segment of `len` elements (a group, or a row).
__global__ void segment_scales(ElementParams p, const float* __restrict x, int64_t len, int64_t ns,
                               ElementScale* __restrict scales) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= ns) return;  // whole warps exit together
  const float* seg = x + warp * len;
  ElementRange r;
  for (int64_t j = lane; j < len; j += 32) r.add(seg[j]);
  r = warp_reduce(r);
  if (lane == 0) scales[warp] = element_group_scale(p, r);
}

// One thread per column, walking down the rows (coalesced across the warp).
__global__ void column_scales(ElementParams p, const float* __restrict x, int64_t rows, int64_t cols,
                              ElementScale* __restrict scales) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  ElementRange r;
  for (int64_t i = 0; i < rows; ++i) r.add(x[i * cols + c]);
  scales[c] = element_group_scale(p, r);
}

// Per-tensor: each block reduces a grid-stride share into partial[blockIdx.x].
__global__ void tensor_partial(const float* __restrict x, int64_t n, ElementRange* __restrict partial) {
  __shared__ ElementRange warps[kThreads / 32];
  ElementRange r;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    r.add(x[i]);
  r = warp_reduce(r);
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = r;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) r.merge(warps[w]);
    partial[blockIdx.x] = r;
  }
}

__global__ void tensor_final(ElementParams p, const ElementRange* __restrict partial, int np,
                             ElementScale* __restrict scale) {
  ElementRange r;
  for (int i = 0; i < np; ++i) r.merge(partial[i]);
  scale[0] = element_group_scale(p, r);
}

__device__ __forceinline__ int64_t scale_index(const ElementParams& p, int64_t i, int64_t cols) {
  switch (p.gran) {
    case Granularity::Group: return i / p.group;
    case Granularity::Row: return i / cols;
    case Granularity::Col: return i % cols;
    default: return 0;
  }
}

__global__ void encode_elements(ElementParams p, const float* __restrict x, int64_t n, int64_t cols,
                                const ElementScale* __restrict scales, uint32_t* __restrict codes,
                                float* __restrict values) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const ElementScale* s = scales ? scales + scale_index(p, i, cols) : nullptr;
    const uint32_t c = element_encode(p, x[i], s, static_cast<uint64_t>(i));
    if (codes) codes[i] = c;
    if (values) values[i] = element_value(p, c, s);
  }
}

__global__ void decode_scales(ElementParams p, const uint32_t* __restrict sc, const uint32_t* __restrict zp,
                              int64_t ns, ElementScale* __restrict out) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= ns) return;
  ElementScale s;
  s.code = sc[g];
  s.dec = decode_float(p.scale_fmt, sc[g]);  // as the CPU's decode (a NaN code decodes to the canonical NaN)
  s.zp = zp ? static_cast<int32_t>(zp[g]) : 0;
  out[g] = s;
}

__global__ void decode_elements(ElementParams p, const uint32_t* __restrict codes, int64_t n, int64_t cols,
                                const ElementScale* __restrict scales, float* __restrict values) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const ElementScale* s = scales ? scales + scale_index(p, i, cols) : nullptr;
    values[i] = element_value(p, codes[i], s);
  }
}

}  // namespace

int64_t element_num_scales(const ElementParams& p, int64_t rows, int64_t cols) {
  switch (p.gran) {
    case Granularity::None: return 0;
    case Granularity::Group: return rows * (cols / p.group);
    case Granularity::Row: return rows;
    case Granularity::Col: return cols;
    case Granularity::Tensor: return 1;
  }
  return 0;
}

void element_scales_device(const ElementParams& p, const float* x, int64_t rows, int64_t cols, ElementScale* scales) {
  const int64_t n = rows * cols;
  const int64_t ns = element_num_scales(p, rows, cols);
  if (ns == 0 || n == 0) return;
  switch (p.gran) {
    case Granularity::Group:
    case Granularity::Row: {
      const int64_t len = p.gran == Granularity::Group ? p.group : cols;
      segment_scales<<<blocks_for(ns * 32, kThreads), kThreads>>>(p, x, len, ns, scales);
      break;
    }
    case Granularity::Col:
      column_scales<<<blocks_for(cols, kThreads), kThreads>>>(p, x, rows, cols, scales);
      break;
    case Granularity::Tensor: {
      const int np = static_cast<int>(std::min<int64_t>(1024, blocks_for(n, kThreads)));
      DeviceArray<ElementRange> partial(static_cast<size_t>(np));
      tensor_partial<<<np, kThreads>>>(x, n, partial.get());
      LOWBIT_CUDA_LAUNCHED("tensor_partial");
      tensor_final<<<1, 1>>>(p, partial.get(), np, scales);
      LOWBIT_CUDA_LAUNCHED("tensor_final");
      break;
    }
    default: break;
  }
  LOWBIT_CUDA_LAUNCHED("element scales");
}

void element_encode(const ElementParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes,
                    float* values, std::vector<std::vector<uint32_t>>* aux) {
  const int64_t n = rows * cols;
  const int64_t ns = element_num_scales(p, rows, cols);
  DeviceArray<ElementScale> scales(static_cast<size_t>(ns));
  element_scales_device(p, x, rows, cols, scales.get());
  if (n > 0) {
    encode_elements<<<grid_for(n, kThreads), kThreads>>>(p, x, n, cols, ns ? scales.get() : nullptr, codes, values);
    LOWBIT_CUDA_LAUNCHED("encode_elements");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
  if (aux && ns > 0) {
    const std::vector<ElementScale> h = scales.download();
    std::vector<uint32_t> sc(h.size()), zp(h.size());
    for (size_t g = 0; g < h.size(); ++g) {
      sc[g] = h[g].code;
      zp[g] = static_cast<uint32_t>(h[g].zp);
    }
    aux->push_back(std::move(sc));
    if (p.asym) aux->push_back(std::move(zp));
  }
}

void element_decode(const ElementParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
                    const std::vector<std::vector<uint32_t>>& aux, float* values) {
  const int64_t n = rows * cols;
  const int64_t ns = element_num_scales(p, rows, cols);
  DeviceArray<ElementScale> scales(static_cast<size_t>(ns));
  if (ns > 0) {
    if (aux.empty() || static_cast<int64_t>(aux[0].size()) != ns || (p.asym && (aux.size() < 2 || aux[1].size() != aux[0].size())))
      throw Error("gpu element decode: scale sections do not match the shape");
    DeviceArray<uint32_t> sc(static_cast<size_t>(ns)), zp(p.asym ? static_cast<size_t>(ns) : 0);
    sc.upload(aux[0].data(), aux[0].size());
    if (p.asym) zp.upload(aux[1].data(), aux[1].size());
    decode_scales<<<blocks_for(ns, kThreads), kThreads>>>(p, sc.get(), p.asym ? zp.get() : nullptr, ns, scales.get());
    LOWBIT_CUDA_LAUNCHED("decode_scales");
    LOWBIT_CUDA(cudaDeviceSynchronize());
  }
  if (n > 0) {
    decode_elements<<<grid_for(n, kThreads), kThreads>>>(p, codes, n, cols, ns ? scales.get() : nullptr, values);
    LOWBIT_CUDA_LAUNCHED("decode_elements");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

}  // namespace lowbit::gpu
