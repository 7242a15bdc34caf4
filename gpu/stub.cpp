// gpu.hpp without CUDA: the build found no CUDA compiler, so nothing runs on a GPU and every
// entry point says so (available() gives the reason; the rest throw lowbit::Error).
#include "gpu/gpu.hpp"
#include "gpu/dit_gpu.hpp"

#include "formats/error.hpp"

namespace lowbit::gpu {
namespace {
[[noreturn]] void no_cuda() { throw Error("gpu: lowbit was built without CUDA (no nvcc found at configure time)"); }
}  // namespace

bool available(std::string* why) {
  if (why) *why = "lowbit was built without CUDA (no nvcc found at configure time)";
  return false;
}
std::string device_name() { return ""; }
bool supports(const TensorFormat&) { return false; }
PackedTensor encode(const TensorFormat&, std::span<const float>, const Shape&) { no_cuda(); }
void decode(const TensorFormat&, const PackedTensor&, std::span<float>) { no_cuda(); }
void fake_quant(const TensorFormat&, std::span<const float>, const Shape&, std::span<float>) { no_cuda(); }
void encode_codes(const TensorFormat&, std::span<const float>, const Shape&, std::span<uint32_t>) { no_cuda(); }
void fake_quant_device(const TensorFormat&, const float*, float*, const Shape&, bool) { no_cuda(); }
void quantize_device(const TensorFormat&, const float*, const Shape&, uint8_t*, std::vector<std::vector<uint32_t>>*) {
  no_cuda();
}

struct DitGpu::Impl {};
DitGpu::DitGpu(const DitGpuWeights&) { no_cuda(); }
DitGpu::~DitGpu() = default;
std::string DitGpu::products() const { return "none (built without CUDA)"; }
std::vector<float> DitGpu::forward(std::span<const float>, std::span<const float>, std::span<const int32_t>) { no_cuda(); }
std::vector<float> DitGpu::sample(std::span<const float>, std::span<const int32_t>, std::span<const float>, float, bool,
                                  const std::function<void(float, float*)>&, const std::function<void(int64_t)>&) {
  no_cuda();
}

}  // namespace lowbit::gpu
