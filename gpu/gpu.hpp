// The CUDA mirror of formats/: every registered format encoded, decoded and fake-quantised on the
// GPU, producing the CPU's bytes exactly (codes packed as docs/layouts.md says, the same scale
// codes). Host-side API without CUDA types, so CPU-only code (the CLI, tests) can call it; when
// lowbit is built without CUDA, or no device is present, available() says why and the other
// functions throw lowbit::Error.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/tensor_format.hpp"

namespace lowbit::gpu {

// True when kernels can run; otherwise `why` (if given) says why: built without CUDA, no
// driver, no device.
bool available(std::string* why = nullptr);
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)", or "" when unavailable.
std::string device_name();
// Whether this build has kernels for the format's family.
bool supports(const TensorFormat& f);

// Host-memory round trips (inputs copied to the device, results back): the cross-check API.
PackedTensor encode(const TensorFormat& f, std::span<const float> x, const Shape& shape);
void decode(const TensorFormat& f, const PackedTensor& p, std::span<float> out);
void fake_quant(const TensorFormat& f, std::span<const float> x, const Shape& shape, std::span<float> out);

// One code per element, unpacked (no packing, no other sections): the exhaustive sweep's path.
void encode_codes(const TensorFormat& f, std::span<const float> x, const Shape& shape, std::span<uint32_t> codes);

// Device-memory fake quantisation (d_x, d_out: device pointers of numel(shape) floats), on the
// default stream: for benchmarks and the model engine. Synchronised unless `synchronize` is false
// (the model engine queues the next kernels behind it; the fused kernels then return without
// waiting, the reference path still waits).
void fake_quant_device(const TensorFormat& f, const float* d_x, float* d_out, const Shape& shape, bool synchronize = true);

// Device-memory quantisation (the reference encode kernels, then packing on the device): the
// packed "codes" section into d_packed (packed_bytes(numel, f.code_bits()) bytes, device), the
// other sections' values to the host; synchronised. For benchmarks.
void quantize_device(const TensorFormat& f, const float* d_x, const Shape& shape, uint8_t* d_packed,
                     std::vector<std::vector<uint32_t>>* aux);

}  // namespace lowbit::gpu
