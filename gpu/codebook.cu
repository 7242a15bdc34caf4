// CUDA kernels of the codebook formats (nf4, bnb_fp4, af4, codebook:...; gpu/family_cb.hpp).
// One thread per block of g elements (absmax, codes, values without dq); dq: the offset by one
// CUDA block (the reference's sequential double sum, added by one thread from shared memory), one
// thread per dq block of 256 absmax values, then one thread per element for the values. Fake
// quantisation without dq takes gpu/fused.cu's fused kernel instead. Every rule is formats/codebook_rules.hpp, and the
// tables it needs (CodebookTables, CodebookDqTables) are built on the host from CodebookParams
// and copied to device memory per call.
#include <cuda_runtime.h>

#include <string>

#include "formats/codebook_rules.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/kernels.cuh"
#include "gpu/family_cb.hpp"

namespace lowbit::gpu {
namespace {

constexpr int kThreads = 256;

// Per block: absmax, and codes / values (either may be null; values with the exact absmax).
__global__ void cb_blocks(const CodebookTables* __restrict t, const float* __restrict x, int64_t g, int64_t nb,
                          float* __restrict absmax, uint32_t* __restrict codes, float* __restrict values) {
  for (int64_t b = thread_index(); b < nb; b += thread_stride())
    absmax[b] = codebook_encode_block(*t, x + b * g, g, codes ? codes + b * g : nullptr, values ? values + b * g : nullptr);
}

// The dq offset is the reference's sequential double sum (codebook_dq_offset), the only order
// that gives its bits: one CUDA block stages chunks of the absmax array in shared memory with
// coalesced loads, and thread 0 adds them in order from there (what one thread alone does, minus
// the latency of its global loads).
constexpr int kDqChunk = 4096;

__global__ void cb_dq_offset(const float* __restrict absmax, int64_t nb, float* __restrict offset) {
  __shared__ float buf[kDqChunk];
  HxMeanF32 m;
  for (int64_t s = 0; s < nb; s += kDqChunk) {
    const int len = static_cast<int>(nb - s < kDqChunk ? nb - s : kDqChunk);
    for (int i = static_cast<int>(threadIdx.x); i < len; i += static_cast<int>(blockDim.x)) buf[i] = absmax[s + i];
    __syncthreads();
    if (threadIdx.x == 0)
      for (int i = 0; i < len; ++i) m.add(buf[i]);
    __syncthreads();
  }
  if (threadIdx.x == 0) offset[0] = nb > 0 ? m.mean(nb) : 0.0f;
}

__global__ void cb_dq_blocks(const CodebookDqTables* __restrict d, bool torch, const float* __restrict absmax,
                             int64_t nb, const float* __restrict offset, uint32_t* __restrict q,
                             float* __restrict scales) {
  const int64_t nd = (nb + kCodebookDqBlock - 1) / kCodebookDqBlock;
  for (int64_t k = thread_index(); k < nd; k += thread_stride()) {
    const int64_t s = k * kCodebookDqBlock;
    const int64_t len = nb - s < kCodebookDqBlock ? nb - s : kCodebookDqBlock;
    scales[k] = codebook_dq_block(*d, torch, absmax + s, len, offset[0], q + s);
  }
}

__global__ void cb_dq_absmax(const CodebookDqTables* __restrict d, const uint32_t* __restrict q,
                             const float* __restrict scales, const float* __restrict offset, int64_t nb,
                             float* __restrict absmax) {
  for (int64_t b = thread_index(); b < nb; b += thread_stride())
    absmax[b] = codebook_dq_absmax(*d, q[b], scales[b / kCodebookDqBlock], offset[0]);
}

// values[i] = table[codes[i]] * absmax[i / g]; a code outside the table sets *bad (the CPU
// decode throws) and reads entry 0.
__global__ void cb_values(const CodebookTables* __restrict t, const uint32_t* __restrict codes,
                          const float* __restrict absmax, int64_t g, int64_t n, float* __restrict values,
                          unsigned* __restrict bad) {
  const uint32_t ncodes = static_cast<uint32_t>(t->n);
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    uint32_t c = codes[i];
    if (c >= ncodes) {
      atomicOr(bad, 1u);
      c = 0;
    }
    values[i] = codebook_value(*t, c, absmax[i / g]);
  }
}

std::vector<uint32_t> float_bits(const std::vector<float>& v) {
  std::vector<uint32_t> u(v.size());
  for (size_t i = 0; i < v.size(); ++i) u[i] = f32_bits(v[i]);
  return u;
}

template <class T>
DeviceArray<T> to_device(const T& h) {
  DeviceArray<T> d(1);
  d.upload(&h, 1);
  return d;
}

void check_blocks(const CodebookParams& p, int64_t cols) {
  if (p.block <= 0 || cols % p.block != 0)
    throw Error("gpu codebook: the block size " + std::to_string(p.block) + " does not divide the last dimension " +
                std::to_string(cols));
}

// Decoded per-block absmax on the device from q, scales, offset (dq).
void dq_decode_absmax(const DeviceArray<CodebookDqTables>& d, const DeviceArray<uint32_t>& q,
                      const DeviceArray<float>& scales, const DeviceArray<float>& offset, int64_t nb,
                      DeviceArray<float>& out) {
  cb_dq_absmax<<<grid_for(nb, kThreads), kThreads>>>(d.get(), q.get(), scales.get(), offset.get(), nb, out.get());
  LOWBIT_CUDA_LAUNCHED("cb_dq_absmax");
}

}  // namespace

void codebook_encode(const CodebookParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes,
                     float* values, std::vector<std::vector<uint32_t>>* aux) {
  check_blocks(p, cols);
  const int64_t n = rows * cols, g = p.block, nb = n / g;
  const DeviceArray<CodebookTables> t = to_device(codebook_tables(p));
  DeviceArray<float> absmax(static_cast<size_t>(nb));
  if (!p.dq) {
    if (nb > 0) {
      cb_blocks<<<grid_for(nb, kThreads), kThreads>>>(t.get(), x, g, nb, absmax.get(), codes, values);
      LOWBIT_CUDA_LAUNCHED("cb_blocks");
    }
    LOWBIT_CUDA(cudaDeviceSynchronize());
    if (aux) aux->push_back(float_bits(absmax.download()));
    return;
  }
  // dq: the codes use the exact absmax, the values the compressed one (as bnb).
  const int64_t nd = (nb + kCodebookDqBlock - 1) / kCodebookDqBlock;
  const DeviceArray<CodebookDqTables> d = to_device(codebook_dq_tables(p));
  DeviceArray<uint32_t> tmp_codes(codes == nullptr && values != nullptr ? static_cast<size_t>(n) : 0);
  uint32_t* c = codes ? codes : tmp_codes.get();
  DeviceArray<uint32_t> q(static_cast<size_t>(nb));
  DeviceArray<float> scales(static_cast<size_t>(nd)), offset(1), dec(static_cast<size_t>(nb));
  DeviceArray<unsigned> bad(1);  // codes from the rules are always in range
  LOWBIT_CUDA(cudaMemset(bad.get(), 0, sizeof(unsigned)));
  if (nb > 0) {
    cb_blocks<<<grid_for(nb, kThreads), kThreads>>>(t.get(), x, g, nb, absmax.get(), c, nullptr);
    LOWBIT_CUDA_LAUNCHED("cb_blocks");
  }
  cb_dq_offset<<<1, kThreads>>>(absmax.get(), nb, offset.get());
  LOWBIT_CUDA_LAUNCHED("cb_dq_offset");
  if (nb > 0) {
    cb_dq_blocks<<<grid_for(nd, kThreads), kThreads>>>(d.get(), p.backend == CodebookBackend::Torch, absmax.get(), nb,
                                              offset.get(), q.get(), scales.get());
    LOWBIT_CUDA_LAUNCHED("cb_dq_blocks");
    if (values) {
      dq_decode_absmax(d, q, scales, offset, nb, dec);
      cb_values<<<grid_for(n, kThreads), kThreads>>>(t.get(), c, dec.get(), g, n, values, bad.get());
      LOWBIT_CUDA_LAUNCHED("cb_values");
    }
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
  if (aux) {
    aux->push_back(q.download());
    aux->push_back(float_bits(scales.download()));
    aux->push_back(float_bits(offset.download()));
  }
}

void codebook_decode(const CodebookParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
                     const std::vector<std::vector<uint32_t>>& aux, float* values) {
  check_blocks(p, cols);
  const int64_t n = rows * cols, g = p.block, nb = n / g;
  const int64_t nd = (nb + kCodebookDqBlock - 1) / kCodebookDqBlock;
  const DeviceArray<CodebookTables> t = to_device(codebook_tables(p));
  DeviceArray<float> absmax(static_cast<size_t>(nb));
  if (!p.dq) {
    if (aux.size() != 1 || static_cast<int64_t>(aux[0].size()) != nb)
      throw Error("gpu codebook decode: expected a 'scales' section of " + std::to_string(nb) + " entries");
    if (nb > 0) LOWBIT_CUDA(cudaMemcpy(absmax.get(), aux[0].data(), static_cast<size_t>(nb) * 4, cudaMemcpyHostToDevice));
  } else {
    if (aux.size() != 3 || static_cast<int64_t>(aux[0].size()) != nb || static_cast<int64_t>(aux[1].size()) != nd ||
        aux[2].size() != 1)
      throw Error("gpu codebook decode: expected 'absmax_codes' (" + std::to_string(nb) + "), 'absmax_scales' (" +
                  std::to_string(nd) + ") and 'absmax_offset' (1) sections");
    for (const uint32_t v : aux[0])
      if (v > 255) throw Error("gpu codebook decode: absmax code " + std::to_string(v) + " out of range");
    if (nb > 0) {
      const DeviceArray<CodebookDqTables> d = to_device(codebook_dq_tables(p));
      DeviceArray<uint32_t> q(static_cast<size_t>(nb));
      DeviceArray<float> scales(static_cast<size_t>(nd)), offset(1);
      q.upload(aux[0].data(), aux[0].size());
      LOWBIT_CUDA(cudaMemcpy(scales.get(), aux[1].data(), static_cast<size_t>(nd) * 4, cudaMemcpyHostToDevice));
      LOWBIT_CUDA(cudaMemcpy(offset.get(), aux[2].data(), 4, cudaMemcpyHostToDevice));
      dq_decode_absmax(d, q, scales, offset, nb, absmax);
      LOWBIT_CUDA(cudaDeviceSynchronize());
    }
  }
  if (n > 0) {
    DeviceArray<unsigned> bad(1);
    LOWBIT_CUDA(cudaMemset(bad.get(), 0, sizeof(unsigned)));
    cb_values<<<grid_for(n, kThreads), kThreads>>>(t.get(), codes, absmax.get(), g, n, values, bad.get());
    LOWBIT_CUDA_LAUNCHED("cb_values");
    LOWBIT_CUDA(cudaDeviceSynchronize());
    unsigned h = 0;
    LOWBIT_CUDA(cudaMemcpy(&h, bad.get(), sizeof h, cudaMemcpyDeviceToHost));
    if (h) throw Error("gpu codebook decode: a code is outside the " + std::to_string(p.table.size()) + "-entry codebook");
  }
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

}  // namespace lowbit::gpu
