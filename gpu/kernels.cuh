// Device building blocks shared by the format kernels: packing codes into bytes exactly as
// formats/tensor_format.cpp pack_codes does, unpacking them, and warp/block reductions.
#pragma once
#include <cstdint>

#include "formats/hd.hpp"

namespace lowbit::gpu {

// Storage width of a code (pack_codes): 1, 2, 4, 8, 16, 32 dense; 3, 5, 6, 7 one byte; 9..15 two.
LOWBIT_HD int storage_bits_of(int code_bits) {
  if (code_bits == 1 || code_bits == 2 || code_bits == 4 || code_bits == 8 || code_bits == 16 || code_bits == 32)
    return code_bits;
  return code_bits < 8 ? 8 : (code_bits < 16 ? 16 : 32);
}

LOWBIT_HD int64_t packed_size(int64_t n, int code_bits) { return (n * storage_bits_of(code_bits) + 7) / 8; }

// Grid-stride loop helpers.
__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t thread_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Code of element i from packed bytes.
__device__ __forceinline__ uint32_t unpack_one(const uint8_t* __restrict bytes, int64_t i, int code_bits,
                                               bool hi_first = false) {
  const int sb = storage_bits_of(code_bits);
  const uint32_t mask = code_bits == 32 ? 0xffffffffu : (1u << code_bits) - 1;
  if (sb >= 8) {
    const int nb = sb / 8;
    uint32_t v = 0;
    for (int k = 0; k < nb; ++k) v |= static_cast<uint32_t>(bytes[i * nb + k]) << (8 * k);
    return v & mask;
  }
  const int per = 8 / sb;
  const int slot = hi_first && sb == 4 ? 1 - static_cast<int>(i % 2) : static_cast<int>(i % per);
  return (static_cast<uint32_t>(bytes[i / per]) >> (sb * slot)) & mask;
}

}  // namespace lowbit::gpu
