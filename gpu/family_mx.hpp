// The GPU implementations of the OCP MX and NVFP4 block formats (gpu/mx.cu, gpu/nvfp4.cu), with
// the shape of element_encode / element_decode in gpu/family.hpp: device pointers in and out,
// the sections after "codes" as host u32 values, launches checked and synchronised. Every rule is
// formats/mx_rules.hpp / formats/nvfp4_rules.hpp, so the bytes equal the CPU format's.
#pragma once
#include <cstdint>
#include <vector>

#include "formats/nvfp4.hpp"
#include "formats/params.hpp"
#include "gpu/cuda_check.hpp"

namespace lowbit::gpu {

// OCP MX: rows x cols row-major (cols a multiple of kMxBlock). codes (device, n, within the
// element's bits) and/or values (device, n) may be null; aux (may be null) receives "scales":
// n / 32 E8M0 bytes as u32.
void mx_encode(const MxParams& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes, float* values,
               std::vector<std::vector<uint32_t>>* aux);
// Values (device, n) from codes (device, n) and aux = {"scales"} (host values).
void mx_decode(const MxParams& p, const uint32_t* codes, int64_t rows, int64_t cols,
               const std::vector<std::vector<uint32_t>>& aux, float* values);

// NVFP4: rows x cols row-major (cols a multiple of kNvfp4Block). aux (may be null) receives
// "scales" (n / 16 E4M3 codes as u32) and, two-level, "tensor_scale" (one f32 as its bits).
void nvfp4_encode(const Nvfp4Params& p, const float* x, int64_t rows, int64_t cols, uint32_t* codes, float* values,
                  std::vector<std::vector<uint32_t>>* aux);
// Values from codes and aux = {"scales"} or {"scales", "tensor_scale" bits}.
// The tensor-level state of n values on the device (two-stage amax; single level: the default
// state), as nvfp4_encode derives it.
DeviceArray<Nvfp4Tensor> nvfp4_tensor_device(const Nvfp4Params& p, const float* x, int64_t n);
void nvfp4_decode(const Nvfp4Params& p, const uint32_t* codes, int64_t rows, int64_t cols,
                  const std::vector<std::vector<uint32_t>>& aux, float* values);

}  // namespace lowbit::gpu
