// GPU throughput of every format family's fake quantisation beside a device-to-device copy of
// the same bytes measured in the same run (the hardware ceiling): effective bandwidth counts the
// float32 tensor read once and written once, as the copy does.
//   lowbit_gpu_bench [--rows R] [--cols C] [--reps N] [--formats SPEC,...] [--quantize 0|1]
// Prints one table row per format: ms (median of N), GB/s, ratio to the copy; --quantize 1 adds
// a row for quantisation to packed codes (float32 read + packed bytes written, over the copy's
// bandwidth).
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/gpu.hpp"
#include "sim/crosscheck.hpp"

namespace {

using lowbit::gpu::DeviceArray;

template <class Fn>
double median_ms(int reps, Fn&& fn) {
  cudaEvent_t a, b;
  LOWBIT_CUDA(cudaEventCreate(&a));
  LOWBIT_CUDA(cudaEventCreate(&b));
  fn();  // warm-up
  LOWBIT_CUDA(cudaDeviceSynchronize());
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    LOWBIT_CUDA(cudaEventRecord(a));
    fn();
    LOWBIT_CUDA(cudaEventRecord(b));
    LOWBIT_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    LOWBIT_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 16384, cols = 16384;
  int reps = 20;
  bool quantize = false;
  std::string list =
      "int8,fp8_e4m3,fp8_e5m2,bf16,fp4_e2m1,int8:row,int4:g64,int4:g64:scale=fp16,uint4:g64,int4:g128,"
      "fp4_e2m1:g16:scale=e4m3,fp8_e4m3:g32:scale=e8m0,int4:g16:round=sr:seed=1,fp8_e4m3:round=sr:seed=1,"
      "mxfp8_e4m3,mxfp6_e2m3,mxfp4,mxint8,mxfp4:round=sr:seed=1,nvfp4,nf4,nf4:dq,af4,lzs4:g16,lzs4:g16:s8=token";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--rows") rows = std::stoll(v);
    else if (k == "--cols") cols = std::stoll(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--formats") list = v;
    else if (k == "--quantize") quantize = v == "1";
    else {
      fmt::print(stderr, "usage: lowbit_gpu_bench [--rows R] [--cols C] [--reps N] [--formats SPEC,...] [--quantize 0|1]\n");
      return 2;
    }
  }
  try {
    std::string why;
    if (!lowbit::gpu::available(&why)) throw lowbit::Error(why);
    const int64_t n = rows * cols;
    const double bytes = 2.0 * 4.0 * static_cast<double>(n);  // read + write float32
    DeviceArray<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    {
      // Realistic data (not zeros): the cross-check input mix without its NaN/Inf rows.
      const auto f = lowbit::make_format("fp32");
      std::vector<float> h = lowbit::crosscheck_inputs(*f, {rows, cols}, 7);
      for (float& v : h)
        if (!(std::abs(v) <= 3.4e38f)) v = 1.0f;
      x.upload(h.data(), h.size());
    }
    const double copy_ms = median_ms(reps, [&] {
      LOWBIT_CUDA(cudaMemcpy(y.get(), x.get(), static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice));
    });
    fmt::print("GPU {}; tensor {} x {} float32 ({:.2f} GiB); median of {} runs\n", lowbit::gpu::device_name(), rows, cols,
               static_cast<double>(n) * 4 / (1 << 30), reps);
    fmt::print("{:<32} {:>9} {:>9} {:>9}\n", "operation", "ms", "GB/s", "vs copy");
    fmt::print("{:<32} {:>9.3f} {:>9.1f} {:>9.2f}\n", "device-to-device copy", copy_ms, bytes / copy_ms / 1e6, 1.0);
    for (const auto& spec : lowbit::split_specs(list)) {
      const auto f = lowbit::make_format(spec);
      if (!lowbit::gpu::supports(*f)) {
        fmt::print("{:<32} {:>9}\n", spec, "no kernel");
        continue;
      }
      const double ms = median_ms(reps, [&] { lowbit::gpu::fake_quant_device(*f, x.get(), y.get(), {rows, cols}); });
      fmt::print("{:<32} {:>9.3f} {:>9.1f} {:>9.2f}\n", spec, ms, bytes / ms / 1e6, copy_ms / ms);
      if (quantize) {
        // Quantise: read float32, write the packed codes; scales come back to the host (counted
        // in the time, not in the bytes).
        DeviceArray<uint8_t> packed(static_cast<size_t>(lowbit::packed_bytes(n, f->code_bits())));
        const double qms = median_ms(reps, [&] {
          std::vector<std::vector<uint32_t>> aux;
          lowbit::gpu::quantize_device(*f, x.get(), {rows, cols}, packed.get(), &aux);
        });
        const double qbytes = 4.0 * static_cast<double>(n) + static_cast<double>(packed.size());
        fmt::print("{:<32} {:>9.3f} {:>9.1f} {:>9.2f}\n", "  quantize " + spec, qms, qbytes / qms / 1e6,
                   (qbytes / qms) / (bytes / copy_ms));
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "lowbit_gpu_bench: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
