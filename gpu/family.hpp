// The per-family GPU implementations behind gpu.hpp (one .cu file each). Inputs and outputs are
// device pointers; every function checks its launches and synchronises before returning.
#pragma once
#include <cstdint>
#include <vector>

#include "formats/params.hpp"

namespace lowbit {
struct ElementScale;  // formats/element_rules.hpp
}

namespace lowbit::gpu {

// What a family's encode produces on the device: one u32 code per element and the u32 values of
// the format's other sections, in the order and shapes of the CPU encode's sections after
// "codes" (e.g. "scales", "zero_points"; for NVFP4 also "tensor_scale").
struct DeviceEncoded {
  uint32_t* codes = nullptr;              // n codes (device)
  std::vector<std::vector<uint32_t>> aux; // host copies of the other sections' values
};

// Packs n codes into packed_size(n, code_bits) bytes exactly as pack_codes does (hi_first:
// 4-bit codes with element 0 in the high nibble, bitsandbytes' order=hi), and back.
void pack_codes_device(const uint32_t* codes, int64_t n, int code_bits, bool hi_first, uint8_t* out);
void unpack_codes_device(const uint8_t* bytes, int64_t n, int code_bits, bool hi_first, uint32_t* codes);
int64_t packed_size_host(int64_t n, int code_bits);

// Element formats (intB / uintB / eXmY, plain or scaled): formats/element_rules.hpp.
// rows x cols view of the tensor (groups along the rows). codes (device, n) and/or values
// (device, n) may be null; aux receives "scales" then "zero_points" (if asym).
void element_encode(const ElementParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes,
                    float* values, std::vector<std::vector<uint32_t>>* aux);
// Number of scales of a rows x cols tensor (0 for a plain cast), and the scales themselves
// (device, element_num_scales entries) from the shared rules.
int64_t element_num_scales(const ElementParams& p, int64_t rows, int64_t cols);
void element_scales_device(const ElementParams& p, const float* x, int64_t rows, int64_t cols, ElementScale* scales);
// Values from codes and the aux sections (host values, as encode returned them).
void element_decode(const ElementParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
                    const std::vector<std::vector<uint32_t>>& aux, float* values);

// Fake quantisation of a rows x cols tensor (device pointers) in one fused pass (gpu/fused.cu),
// not synchronised unless it allocated; false where no fused kernel applies (then nothing ran).
bool fused_fake_quant(const FormatParams& p, const float* x, float* y, int64_t rows, int64_t cols);

}  // namespace lowbit::gpu
