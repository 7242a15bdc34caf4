// gpu.hpp with CUDA (host code, compiled by the C++ compiler): device queries, the host-memory round trips used by the cross-check, and the
// dispatch from a format's parameters (formats/params.hpp) to its family's kernels. Section
// names, dtypes and shapes are the CPU format's; every byte in them is computed on the GPU.
#include "gpu/gpu.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <cstring>
#include <variant>

#include "gpu/cuda_check.hpp"
#include "gpu/family.hpp"
#include "gpu/family_cb.hpp"
#include "gpu/family_mx.hpp"

namespace lowbit::gpu {
namespace {

bool hi_first(const TensorFormat& f) {
  const FormatParams p = f.params();
  const auto* cb = std::get_if<CodebookParams>(&p);
  return cb && cb->hi_nibble;
}

[[noreturn]] void unsupported(const TensorFormat& f) {
  throw Error(fmt::format("gpu: no CUDA kernels for '{}' (family {}) in this build", f.spec(), f.family()));
}

// Runs the family's encode: codes and/or values into device memory, aux sections to the host.
void run_encode(const TensorFormat& f, const float* d_x, const Shape& shape, uint32_t* d_codes, float* d_values,
                std::vector<std::vector<uint32_t>>* aux) {
  f.check_shape(shape);
  const RowView rv = row_view(shape);
  const FormatParams p = f.params();
  if (const auto* e = std::get_if<ElementParams>(&p))
    return element_encode(*e, d_x, rv.rows, rv.cols, d_codes, d_values, aux);
  if (const auto* m = std::get_if<MxParams>(&p)) return mx_encode(*m, d_x, rv.rows, rv.cols, d_codes, d_values, aux);
  if (const auto* q = std::get_if<Nvfp4Params>(&p))
    return nvfp4_encode(*q, d_x, rv.rows, rv.cols, d_codes, d_values, aux);
  if (const auto* c = std::get_if<CodebookParams>(&p))
    return codebook_encode(*c, d_x, rv.rows, rv.cols, d_codes, d_values, aux);
  if (const auto* l = std::get_if<LzsParams>(&p)) return lzs_encode(*l, d_x, rv.rows, rv.cols, d_codes, d_values, aux);
  unsupported(f);
}

void require_device() {
  std::string why;
  if (!available(&why)) throw Error("gpu: " + why);
}

}  // namespace

bool available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why)
      *why = e != cudaSuccess ? fmt::format("no usable CUDA device ({})", cudaGetErrorString(e))
                              : std::string("no CUDA device");
    return false;
  }
  return true;
}

std::string device_name() {
  if (!available()) return "";
  cudaDeviceProp prop{};
  int dev = 0;
  LOWBIT_CUDA(cudaGetDevice(&dev));
  LOWBIT_CUDA(cudaGetDeviceProperties(&prop, dev));
  return fmt::format("{} (sm_{}{}, {} SMs)", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
}

bool supports(const TensorFormat& f) {
  (void)f;
  return true;  // every family of formats/params.hpp has kernels
}

PackedTensor encode(const TensorFormat& f, std::span<const float> x, const Shape& shape) {
  require_device();
  if (static_cast<int64_t>(x.size()) != shape_numel(shape))
    throw Error(fmt::format("gpu encode: {} values for shape {}", x.size(), shape_str(shape)));
  f.check_shape(shape);
  const int64_t n = static_cast<int64_t>(x.size());
  // The layout (section names, dtypes, shapes) is the CPU format's; the bytes come from the GPU.
  const std::vector<float> zeros(x.size(), 0.0f);
  PackedTensor out = f.encode(zeros, shape);
  DeviceArray<float> dx(x.size());
  dx.upload(x.data(), x.size());
  DeviceArray<uint32_t> codes(x.size());
  std::vector<std::vector<uint32_t>> aux;
  run_encode(f, dx.get(), shape, codes.get(), nullptr, &aux);
  const int64_t nbytes = packed_size_host(n, out.code_bits);
  DeviceArray<uint8_t> bytes(static_cast<size_t>(nbytes));
  pack_codes_device(codes.get(), n, out.code_bits, hi_first(f), bytes.get());
  out.sections[0].bytes = bytes.download();
  if (aux.size() + 1 != out.sections.size())
    throw Error(fmt::format("gpu encode '{}': {} sections from the GPU, {} from the CPU layout", f.spec(), aux.size() + 1,
                            out.sections.size()));
  for (size_t k = 1; k < out.sections.size(); ++k) {
    Section& s = out.sections[k];
    if (static_cast<int64_t>(aux[k - 1].size()) != shape_numel(s.shape))
      throw Error(fmt::format("gpu encode '{}': section '{}' has {} values, expected {}", f.spec(), s.name,
                              aux[k - 1].size(), shape_numel(s.shape)));
    set_section_u32(s, aux[k - 1]);
  }
  return out;
}

void encode_codes(const TensorFormat& f, std::span<const float> x, const Shape& shape, std::span<uint32_t> codes) {
  require_device();
  if (static_cast<int64_t>(x.size()) != shape_numel(shape) || codes.size() != x.size())
    throw Error(fmt::format("gpu encode_codes: {} values / {} codes for shape {}", x.size(), codes.size(), shape_str(shape)));
  DeviceArray<float> dx(x.size());
  dx.upload(x.data(), x.size());
  DeviceArray<uint32_t> dc(x.size());
  std::vector<std::vector<uint32_t>> aux;
  run_encode(f, dx.get(), shape, dc.get(), nullptr, &aux);
  if (!codes.empty()) LOWBIT_CUDA(cudaMemcpy(codes.data(), dc.get(), codes.size() * 4, cudaMemcpyDeviceToHost));
}

void decode(const TensorFormat& f, const PackedTensor& p, std::span<float> out) {
  require_device();
  const int64_t n = shape_numel(p.shape);
  if (static_cast<int64_t>(out.size()) != n) throw Error("gpu decode: output size does not match the packed shape");
  const Section& c = p.at("codes");
  if (static_cast<int64_t>(c.bytes.size()) != packed_size_host(n, p.code_bits))
    throw Error(fmt::format("gpu decode: codes hold {} bytes, expected {}", c.bytes.size(), packed_size_host(n, p.code_bits)));
  DeviceArray<uint8_t> bytes(c.bytes.size());
  bytes.upload(c.bytes.data(), c.bytes.size());
  DeviceArray<uint32_t> codes(static_cast<size_t>(n));
  unpack_codes_device(bytes.get(), n, p.code_bits, hi_first(f), codes.get());
  std::vector<std::vector<uint32_t>> aux;
  for (size_t k = 1; k < p.sections.size(); ++k) aux.push_back(section_u32(p.sections[k]));
  DeviceArray<float> values(static_cast<size_t>(n));
  const RowView rv = row_view(p.shape);
  const FormatParams prm = f.params();
  if (const auto* e = std::get_if<ElementParams>(&prm)) {
    element_decode(*e, codes.get(), rv.rows, rv.cols, aux, values.get());
  } else if (const auto* m = std::get_if<MxParams>(&prm)) {
    mx_decode(*m, codes.get(), rv.rows, rv.cols, aux, values.get());
  } else if (const auto* q = std::get_if<Nvfp4Params>(&prm)) {
    nvfp4_decode(*q, codes.get(), rv.rows, rv.cols, aux, values.get());
  } else if (const auto* c = std::get_if<CodebookParams>(&prm)) {
    codebook_decode(*c, codes.get(), rv.rows, rv.cols, aux, values.get());
  } else if (const auto* l = std::get_if<LzsParams>(&prm)) {
    lzs_decode(*l, codes.get(), rv.rows, rv.cols, aux, values.get());
  } else {
    unsupported(f);
  }
  const std::vector<float> h = values.download();
  std::copy(h.begin(), h.end(), out.begin());
}

void fake_quant(const TensorFormat& f, std::span<const float> x, const Shape& shape, std::span<float> out) {
  require_device();
  if (static_cast<int64_t>(x.size()) != shape_numel(shape) || out.size() != x.size())
    throw Error(fmt::format("gpu fake_quant: {} values / {} outputs for shape {}", x.size(), out.size(), shape_str(shape)));
  DeviceArray<float> dx(x.size()), dy(x.size());
  dx.upload(x.data(), x.size());
  fake_quant_device(f, dx.get(), dy.get(), shape);
  const std::vector<float> h = dy.download();
  std::copy(h.begin(), h.end(), out.begin());
}

void fake_quant_device(const TensorFormat& f, const float* d_x, float* d_out, const Shape& shape, bool synchronize) {
  f.check_shape(shape);
  const RowView rv = row_view(shape);
  if (fused_fake_quant(f.params(), d_x, d_out, rv.rows, rv.cols)) {
    if (synchronize) LOWBIT_CUDA(cudaDeviceSynchronize());
    return;
  }
  run_encode(f, d_x, shape, nullptr, d_out, nullptr);
}

void quantize_device(const TensorFormat& f, const float* d_x, const Shape& shape, uint8_t* d_packed,
                     std::vector<std::vector<uint32_t>>* aux) {
  const int64_t n = shape_numel(shape);
  DeviceArray<uint32_t> codes(static_cast<size_t>(n));
  run_encode(f, d_x, shape, codes.get(), nullptr, aux);
  pack_codes_device(codes.get(), n, f.code_bits(), hi_first(f), d_packed);
  LOWBIT_CUDA(cudaDeviceSynchronize());
}

}  // namespace lowbit::gpu
