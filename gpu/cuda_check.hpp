// CUDA error checks and device buffers for gpu/ (included by .cu and .cpp files alike, so it uses
// no fmt: nvcc's front end rejects fmt's compile-time format strings): every runtime call is checked and a failure
// becomes a lowbit::Error naming the call.
#pragma once
#include <cuda_runtime.h>
#include <string>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "formats/error.hpp"

namespace lowbit::gpu {

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}
#define LOWBIT_CUDA(call) ::lowbit::gpu::cuda_check((call), #call)
// After a launch: launch errors now, execution errors at the next synchronisation.
#define LOWBIT_CUDA_LAUNCHED(name) ::lowbit::gpu::cuda_check(cudaGetLastError(), name)

// Stream-ordered allocation on the default stream from the device's default memory pool (kept,
// not returned to the driver at each synchronisation, so repeated temporaries cost no cudaMalloc):
// a buffer may be released while kernels that use it are still queued, with no synchronisation.
// Devices without memory pools get cudaMalloc / cudaFree.
inline bool pooled_allocation() {
  static const bool pooled = [] {
    int dev = 0, ok = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&ok, cudaDevAttrMemoryPoolsSupported, dev) != cudaSuccess || !ok) {
      cudaGetLastError();
      return false;
    }
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, dev) != cudaSuccess) return false;
    uint64_t keep = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    return true;
  }();
  return pooled;
}

// Owning device array of T.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n) {
    if (n) {
      if (pooled_allocation()) LOWBIT_CUDA(cudaMallocAsync(reinterpret_cast<void**>(&p_), n * sizeof(T), 0));
      else LOWBIT_CUDA(cudaMalloc(&p_, n * sizeof(T)));
    }
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceArray() {
    if (!p_) return;
    if (pooled_allocation()) cudaFreeAsync(p_, 0);
    else cudaFree(p_);
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const T* h, size_t n) {
    if (n) LOWBIT_CUDA(cudaMemcpy(p_, h, n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    if (n_) LOWBIT_CUDA(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// Blocks for a grid-stride loop over n work items: enough to cover n, at least 1, at most 2^20
// (the loops stride beyond).
inline unsigned grid_for(int64_t n, int threads = 256) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < (int64_t{1} << 20) ? (b > 0 ? b : 1) : (int64_t{1} << 20));
}

}  // namespace lowbit::gpu
