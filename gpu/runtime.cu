// Packing and unpacking codes on the device (gpu/family.hpp).
#include <cuda_runtime.h>

#include "gpu/cuda_check.hpp"
#include "gpu/family.hpp"
#include "gpu/kernels.cuh"

namespace lowbit::gpu {
namespace {

// One thread per output byte: LSB-first (element 0 in the low bits of byte 0), or for 4-bit
// codes with hi_first (bitsandbytes' order=hi) element 0 in the high nibble.
__global__ void pack_kernel(const uint32_t* __restrict codes, int64_t n, int code_bits, uint8_t* __restrict out,
                            int64_t nbytes, bool hi_first = false) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= nbytes) return;
  const int sb = storage_bits_of(code_bits);
  const uint32_t mask = code_bits == 32 ? 0xffffffffu : (1u << code_bits) - 1;
  if (sb >= 8) {
    const int nb = sb / 8;
    const int64_t i = b / nb;
    out[b] = static_cast<uint8_t>((codes[i] & mask) >> (8 * (b % nb)));
    return;
  }
  const int per = 8 / sb;
  uint32_t v = 0;
  for (int k = 0; k < per; ++k) {
    const int64_t i = b * per + k;
    const int slot = hi_first && sb == 4 ? 1 - k : k;
    if (i < n) v |= (codes[i] & mask) << (sb * slot);
  }
  out[b] = static_cast<uint8_t>(v);
}

__global__ void unpack_kernel(const uint8_t* __restrict bytes, int64_t n, int code_bits, bool hi_first,
                              uint32_t* __restrict codes) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    codes[i] = unpack_one(bytes, i, code_bits, hi_first);
}

unsigned grid(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < (1 << 20) ? (b > 0 ? b : 1) : (1 << 20));
}

}  // namespace

int64_t packed_size_host(int64_t n, int code_bits) { return packed_size(n, code_bits); }

void pack_codes_device(const uint32_t* codes, int64_t n, int code_bits, bool hi_first, uint8_t* out) {
  const int64_t nbytes = packed_size(n, code_bits);
  if (nbytes == 0) return;
  pack_kernel<<<blocks_for(nbytes, 256), 256>>>(codes, n, code_bits, out, nbytes, hi_first);
  LOWBIT_CUDA_LAUNCHED("pack_kernel");
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

void unpack_codes_device(const uint8_t* bytes, int64_t n, int code_bits, bool hi_first, uint32_t* codes) {
  if (n == 0) return;
  unpack_kernel<<<grid(n), 256>>>(bytes, n, code_bits, hi_first, codes);
  LOWBIT_CUDA_LAUNCHED("unpack_kernel");
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

}  // namespace lowbit::gpu
