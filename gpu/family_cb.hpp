// The GPU implementations of the codebook (gpu/codebook.cu) and lzs4 (gpu/lzs.cu) families,
// shaped like element_encode / element_decode in gpu/family.hpp: inputs and outputs are device
// pointers over a rows x cols view of the tensor (blocks / groups along the rows), aux vectors
// are host copies of the CPU encode's sections after "codes", in order, one u32 per entry (f32
// as its bits, u8 widened). Every function checks its launches, synchronises before returning
// and throws lowbit::Error on bad aux sections or out-of-range codes, as the CPU decode does.
#pragma once
#include <cstdint>
#include <vector>

#include "formats/params.hpp"
#include "gpu/cuda_check.hpp"

namespace lowbit::gpu {

// Codebook formats (nf4, bnb_fp4, af4, codebook:...): formats/codebook_rules.hpp.
// codes (device, n) and/or values (device, n) may be null. aux receives
//   no dq: "scales" (f32 absmax, rows * cols / block)
//   dq:    "absmax_codes" (u8, rows * cols / block), "absmax_scales" (f32, ceil(blocks / 256)),
//          "absmax_offset" (f32, 1)
// Codes are unpacked (one per element); packing, order=hi included, is the caller's.
void codebook_encode(const CodebookParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes,
                     float* values, std::vector<std::vector<uint32_t>>* aux);
void codebook_decode(const CodebookParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
                     const std::vector<std::vector<uint32_t>>& aux, float* values);

// lzs4 (QuaRTZ): formats/lzs_rules.hpp. aux receives "flags" (u8, rows * cols / group) and
// "s8" (f32: 1 per tensor, or rows per token).
// The stage-1 scales s8 on the device (one per row for s8=token, else one), as lzs_encode
// derives them.
DeviceArray<float> lzs_scales_device(const LzsParams& p, const float* x, int64_t rows, int64_t cols);
void lzs_encode(const LzsParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes, float* values,
                std::vector<std::vector<uint32_t>>* aux);
void lzs_decode(const LzsParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
                const std::vector<std::vector<uint32_t>>& aux, float* values);

}  // namespace lowbit::gpu
