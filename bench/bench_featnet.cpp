// CPU throughput of the featnet forward (sim/featnet.hpp, shipped weights, 32×32 RGB images),
// beside an Eigen float32 GEMM measured in the same run: the forward's GFLOP/s and `x_gemm`,
// its ratio to the GEMM's rate (the forward is im2col + GEMM per conv layer, so the GEMM rate
// is its ceiling). Thread count as set by lowbit_bench's main (1 unless LOWBIT_BENCH_THREADS);
// the forward runs one image per OpenMP thread, the baseline GEMM is one call (Eigen
// parallelises it over the same threads).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "quantizers/matrix.hpp"
#include "sim/featnet.hpp"

namespace {

constexpr int64_t kImages = 256;

// Multiply-adds of one 32×32 forward: Σ over conv layers of out·in·9·H·W, plus fc1 and fc2.
constexpr double kMacsPerImage = 32.0 * 3 * 9 * 1024 + 32.0 * 32 * 9 * 1024 + 64.0 * 32 * 9 * 256 +
                                 64.0 * 64 * 9 * 256 + 128.0 * 64 * 9 * 64 + 128.0 * 128 + 12.0 * 128;

const lowbit::FeatNet& net() {
  static const lowbit::FeatNet n = lowbit::FeatNet::load_dir(LOWBIT_SOURCE_DIR "/models/featnet");
  return n;
}

const std::vector<float>& images() {
  static const std::vector<float> x = [] {
    std::vector<float> v(static_cast<size_t>(kImages * 3 * 32 * 32));
    std::mt19937 g(1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& f : v) f = u(g);
    return v;
  }();
  return x;
}

// The conv4 GEMM shape scaled up (128 × 576 · 576 × 1024): best of 10 calls, in FLOP/s.
double gemm_flops_per_second() {
  using lowbit::quant::MatrixF;
  const MatrixF a = MatrixF::Random(128, 576), b = MatrixF::Random(576, 1024);
  MatrixF c(128, 1024);
  double best = 1e30;
  for (int r = 0; r < 10; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * 128 * 576 * 1024 / best;
}

void BM_gemm_baseline(benchmark::State& state) {
  using lowbit::quant::MatrixF;
  const MatrixF a = MatrixF::Random(128, 576), b = MatrixF::Random(576, 1024);
  MatrixF c(128, 1024);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 128 * 576 * 1024 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_featnet_features(benchmark::State& state) {
  const auto& x = images();
  const std::vector<int64_t> shape = {kImages, 3, 32, 32};
  const auto batch = lowbit::image_batch(x, shape, "bench");
  const double gemm = gemm_flops_per_second();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto f = net().features(batch);
    benchmark::DoNotOptimize(f.data());
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double images_per_s = static_cast<double>(state.iterations() * kImages) / dt;
  state.counters["images/s"] = images_per_s;
  state.counters["GFLOP/s"] = images_per_s * 2.0 * kMacsPerImage * 1e-9;
  state.counters["x_gemm"] = images_per_s * 2.0 * kMacsPerImage / gemm;
}

BENCHMARK(BM_gemm_baseline)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_featnet_features)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
