// CPU throughput of fake quantisation (and encode to packed bytes) for every format family,
// beside memcpy of the same float32 buffer measured in the same run. Each format benchmark
// reports GB/s of float32 input and `x_memcpy`, its ratio to the memcpy rate. Runs on one
// thread (OpenMP forced to 1) unless LOWBIT_BENCH_THREADS is set.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "formats/registry.hpp"
#include "sim/synthetic.hpp"

namespace {

constexpr int64_t kRows = 1024, kCols = 4096;  // 16 MiB of float32: larger than the caches

const std::vector<float>& input() {
  static const std::vector<float> x = lowbit::synthetic_tensor("gaussian", {kRows, kCols}, 1);
  return x;
}

// memcpy bandwidth of the same buffer: best of 20 copies (the figure BM_memcpy also reports).
double memcpy_bytes_per_second() {
  static const double rate = [] {
    const auto& x = input();
    std::vector<float> y(x.size());
    double best = 1e30;
    for (int r = 0; r < 20; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      std::memcpy(y.data(), x.data(), x.size() * sizeof(float));
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, dt);
    }
    return static_cast<double>(x.size() * sizeof(float)) / best;
  }();
  return rate;
}

void BM_memcpy(benchmark::State& state) {
  const auto& x = input();
  std::vector<float> y(x.size());
  for (auto _ : state) {
    std::memcpy(y.data(), x.data(), x.size() * sizeof(float));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(x.size() * sizeof(float)));
}

void report(benchmark::State& state) {
  const auto& x = input();
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(x.size() * sizeof(float)));
}

void BM_fake_quant(benchmark::State& state, const std::string& spec) {
  const auto f = lowbit::make_format(spec);
  const auto& x = input();
  std::vector<float> y(x.size());
  const double mrate = memcpy_bytes_per_second();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    f->fake_quant(x, {kRows, kCols}, y);
    benchmark::DoNotOptimize(y.data());
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report(state);
  const double rate = static_cast<double>(state.iterations()) * static_cast<double>(x.size() * sizeof(float)) / dt;
  state.counters["x_memcpy"] = rate / mrate;
}

void BM_encode(benchmark::State& state, const std::string& spec) {
  const auto f = lowbit::make_format(spec);
  const auto& x = input();
  const double mrate = memcpy_bytes_per_second();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto p = f->encode(x, {kRows, kCols});
    benchmark::DoNotOptimize(p.sections.data());
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report(state);
  const double rate = static_cast<double>(state.iterations()) * static_cast<double>(x.size() * sizeof(float)) / dt;
  state.counters["x_memcpy"] = rate / mrate;
}

const std::vector<std::string> kFakeQuant = {
    "int8",          "int8:row",      "int4:g64",     "uint4:g64",     "fp8_e4m3",   "fp8_e5m2",
    "fp6_e2m3",      "fp4_e2m1",      "fp4_e2m1:g16:scale=e4m3",       "bf16",       "fp16",
    "mxfp8_e4m3",    "mxfp8_e5m2",    "mxfp6_e2m3",   "mxfp6_e3m2",    "mxfp4",      "mxint8",
    "nvfp4",         "nf4",           "bnb_fp4",      "lzs4:g16",      "fp8_e4m3:round=sr:seed=1",
    "mxfp4:round=sr:seed=1"};
const std::vector<std::string> kEncode = {"int4:g64", "fp8_e4m3", "mxfp4", "nvfp4", "nf4", "lzs4:g16"};

}  // namespace

int main(int argc, char** argv) {
  const char* threads = std::getenv("LOWBIT_BENCH_THREADS");
  omp_set_num_threads(threads ? std::max(1, std::atoi(threads)) : 1);
  benchmark::RegisterBenchmark("memcpy", BM_memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const auto& s : kFakeQuant)
    benchmark::RegisterBenchmark(("fake_quant/" + s).c_str(), BM_fake_quant, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  for (const auto& s : kEncode)
    benchmark::RegisterBenchmark(("encode/" + s).c_str(), BM_encode, s)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
