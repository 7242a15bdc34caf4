// DitGpu (gpu/dit_gpu.hpp): the DiT forward and Euler sampler on the GPU. Products by cuBLAS
// (float32 for plain layers; float64 for quantized layers, as QuantizedLinear::forward computes
// them on the CPU), everything else by the kernels below, each the CPU engine's operation in
// the same float order (LayerNorm statistics in double, bias added after the product,
// x·(1 + scale) + shift, softmax as exp(s − max)/sum, GELU tanh, Euler x + dt·v).
//
// Speed: a plain layer's bias rides in the product's epilogue (cuBLASLt, float32 compute,
// pedantic: no TF32); a quantized layer's double result is converted, biased and, where the
// model's next operation allows, put through GELU or added into the residual stream by one
// kernel; nothing waits for the device inside a forward (the format kernels are queued behind
// each other, their temporaries stream-ordered).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

#include "formats/float_format.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/dit_gpu.hpp"
#include "gpu/gpu.hpp"
#include "gpu/kernels.cuh"

namespace lowbit::gpu {
namespace {

constexpr int kThreads = 256;

void cublas_check(cublasStatus_t s, const char* what) {
  // (cublasLt calls return the same status type)
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS: ") + what + ": status " + std::to_string(static_cast<int>(s)));
}
#define LOWBIT_CUBLAS(call) cublas_check((call), #call)

// ---------------------------------------------------------------------------------------------
// Kernels.

__global__ void im2col_patches(const float* __restrict x, int64_t n, int64_t C, int64_t S, int64_t p, int64_t G,
                               float* __restrict out) {
  const int64_t P = C * p * p, T = G * G, total = n * T * P;
  for (int64_t i = thread_index(); i < total; i += thread_stride()) {
    const int64_t r = i / P, col = i % P;
    const int64_t b = r / T, tok = r % T, gh = tok / G, gw = tok % G;
    const int64_t ch = col / (p * p), kh = (col / p) % p, kw = col % p;
    out[i] = x[((b * C + ch) * S + gh * p + kh) * S + gw * p + kw];
  }
}

// y[r][j] += b[j]  (and then += pos[r % T][j] when pos is given)
__global__ void add_rows(float* __restrict y, const float* __restrict b, const float* __restrict pos, int64_t rows,
                         int64_t cols, int64_t T) {
  for (int64_t i = thread_index(); i < rows * cols; i += thread_stride()) {
    const int64_t r = i / cols, j = i % cols;
    float v = y[i] + b[j];
    if (pos) v = v + pos[(r % T) * cols + j];
    y[i] = v;
  }
}

__global__ void add_labels(float* __restrict c, const float* __restrict table, const int32_t* __restrict y, int64_t n,
                           int64_t D) {
  for (int64_t i = thread_index(); i < n * D; i += thread_stride()) c[i] = c[i] + table[y[i / D] * D + i % D];
}

__global__ void silu_kernel(const float* __restrict x, float* __restrict y, int64_t count) {
  for (int64_t i = thread_index(); i < count; i += thread_stride()) {
    const float v = x[i];
    y[i] = v / (1.0f + expf(-v));
  }
}

__device__ __forceinline__ float gelu_tanh(float v, float beta) {
  const float inner = beta * (v + 0.044715f * v * v * v);
  return 0.5f * v * (1.0f + tanhf(inner));
}

// count4 float4s (the engine's activations are 16-byte aligned, widths multiples of 4).
__global__ void gelu_tanh_kernel(float4* __restrict x, int64_t count4, float beta) {
  for (int64_t i = thread_index(); i < count4; i += thread_stride()) {
    float4 v = x[i];
    v.x = gelu_tanh(v.x, beta);
    v.y = gelu_tanh(v.y, beta);
    v.z = gelu_tanh(v.z, beta);
    v.w = gelu_tanh(v.w, beta);
    x[i] = v;
  }
}

// One warp per row: LayerNorm (no affine, eps 1e-6; mean and variance in double) then
// x·(1 + scale) + shift with the row's image's modulation columns.
__global__ void ln_modulate(const float* __restrict h, float* __restrict a, const float* __restrict mod, int64_t rows,
                            int64_t D, int64_t T, int64_t mod_cols, int64_t shift_col, int64_t scale_col) {
  const int64_t warp = thread_index() / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows) return;
  const float* x = h + warp * D;
  double s = 0;
  for (int64_t j = lane; j < D; j += 32) s += x[j];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const double mean = s / static_cast<double>(D);
  double v = 0;
  for (int64_t j = lane; j < D; j += 32) v += (x[j] - mean) * (x[j] - mean);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const float m = static_cast<float>(mean);
  const float rstd = static_cast<float>(1.0 / sqrt(v / static_cast<double>(D) + 1e-6));
  const float* md = mod + (warp / T) * mod_cols;
  for (int64_t j = lane; j < D; j += 32) a[warp * D + j] = ((x[j] - m) * rstd) * (1.0f + md[scale_col + j]) + md[shift_col + j];
}

// One block per row r: h[r] += gate(image of r) ⊙ y[r].
__global__ void gated_add_kernel(float* __restrict h, const float* __restrict y, const float* __restrict mod, int64_t D,
                                 int64_t T, int64_t mod_cols, int64_t gate_col) {
  const int64_t r = blockIdx.x;
  const float* g = mod + (r / T) * mod_cols + gate_col;
  float* hr = h + r * D;
  const float* yr = y + r * D;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) hr[j] = hr[j] + g[j] * yr[j];
}

// One warp per row of T scores: exp(s − max) / sum.
__global__ void softmax_rows(float* __restrict s, int64_t rows, int64_t T) {
  const int64_t warp = thread_index() / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows) return;
  float* r = s + warp * T;
  float mx = -INFINITY;
  for (int64_t j = lane; j < T; j += 32) mx = fmaxf(mx, r[j]);
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  float sum = 0;
  for (int64_t j = lane; j < T; j += 32) {
    const float e = expf(r[j] - mx);
    r[j] = e;
    sum += e;
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  for (int64_t j = lane; j < T; j += 32) r[j] = r[j] / sum;
}

__global__ void unpatchify(const float* __restrict o, int64_t n, int64_t C, int64_t S, int64_t p, int64_t G,
                           float* __restrict out) {
  const int64_t total = n * C * S * S, T = G * G;
  for (int64_t i = thread_index(); i < total; i += thread_stride()) {
    const int64_t xw = i % S, yh = (i / S) % S, ch = (i / (S * S)) % C, b = i / (C * S * S);
    const int64_t gh = yh / p, pp = yh % p, gw = xw / p, q = xw % p;
    out[i] = o[(b * T + gh * G + gw) * (p * p * C) + (pp * p + q) * C + ch];
  }
}

__global__ void cfg_combine(const float* __restrict o, int64_t half, float scale, float* __restrict v) {
  for (int64_t i = thread_index(); i < half; i += thread_stride()) {
    const float cond = o[i], uncond = o[half + i];
    v[i] = uncond + scale * (cond - uncond);
  }
}

__global__ void euler_step(float* __restrict x, const float* __restrict v, float dt, int64_t count) {
  for (int64_t i = thread_index(); i < count; i += thread_stride()) x[i] = x[i] + dt * v[i];
}

__global__ void clamp_kernel(float* __restrict x, int64_t count) {
  for (int64_t i = thread_index(); i < count; i += thread_stride()) {
    const float v = x[i];
    x[i] = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
  }
}

// Quantized layers.
__global__ void divide_cols(const float* __restrict x, const float* __restrict s, float* __restrict y, int64_t rows,
                            int64_t cols) {
  for (int64_t i = thread_index(); i < rows * cols; i += thread_stride()) y[i] = x[i] / s[i % cols];
}

// count4 groups of 4 values.
__global__ void to_double(const float4* __restrict x, double2* __restrict y, int64_t count4, bool fp16) {
  constexpr FloatFormat kFp16 = fmt_desc::fp16;
  for (int64_t i = thread_index(); i < count4; i += thread_stride()) {
    float4 v = x[i];
    if (fp16) {
      v.x = round_to_float(kFp16, v.x);
      v.y = round_to_float(kFp16, v.y);
      v.z = round_to_float(kFp16, v.z);
      v.w = round_to_float(kFp16, v.w);
    }
    y[2 * i] = make_double2(v.x, v.y);
    y[2 * i + 1] = make_double2(v.z, v.w);
  }
}

// down (double) -> float -> fp16-rounded (branch_fp16) -> double, in place.
__global__ void round_branch(double* __restrict d, int64_t count, bool fp16) {
  constexpr FloatFormat kFp16 = fmt_desc::fp16;
  for (int64_t i = thread_index(); i < count; i += thread_stride()) {
    const float f = static_cast<float>(d[i]);
    d[i] = static_cast<double>(fp16 ? round_to_float(kFp16, f) : f);
  }
}

// y = fp16-rounded x, in float (the low-rank branch of a float32-products layer).
__global__ void round_fp16_float(const float* x, float* y, int64_t count) {  // may run in place
  constexpr FloatFormat kFp16 = fmt_desc::fp16;
  for (int64_t i = thread_index(); i < count; i += thread_stride()) y[i] = round_to_float(kFp16, x[i]);
}

// What follows a quantized layer's product, fused into its conversion to float.
enum class After : uint8_t { Store, Gelu, GatedAdd };

// One block per row r: v = float(y[r] + b) (the bias added in double), then out[r] = v,
// out[r] = GELU(v), or out[r] += gate(image of r) ⊙ v (out = the residual stream h).
__global__ void finish_quantized(const double* __restrict y, const double* __restrict b, float* __restrict out,
                                 int64_t cols, After after, float beta, const float* __restrict mod, int64_t T,
                                 int64_t mod_cols, int64_t gate_col) {
  const int64_t r = blockIdx.x;
  const double* yr = y + r * cols;
  float* o = out + r * cols;
  const float* g = after == After::GatedAdd ? mod + (r / T) * mod_cols + gate_col : nullptr;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = static_cast<float>(b ? yr[j] + b[j] : yr[j]);
    if (after == After::Store) o[j] = v;
    else if (after == After::Gelu) o[j] = gelu_tanh(v, beta);
    else o[j] = o[j] + g[j] * v;
  }
}

template <class T>
DeviceArray<T> upload(const std::vector<T>& h) {
  DeviceArray<T> d(h.size());
  d.upload(h.data(), h.size());
  return d;
}

DeviceArray<double> upload_double(const std::vector<float>& h) {
  std::vector<double> d(h.begin(), h.end());
  return upload(d);
}

template <class K, class... Args>
void launch(K kernel, int64_t work, Args... args) {
  kernel<<<grid_for(work, kThreads), kThreads>>>(args...);
  LOWBIT_CUDA_LAUNCHED("dit kernel");
}

}  // namespace

struct DevLayer {
  int64_t out = 0, in = 0, rank = 0;
  bool quantized = false, branch_fp16 = true, f32 = false;  // f32: float32 products (plain layers always)
  DeviceArray<float> w, b, smooth, rot, up, down;  // w, b: plain and float32-products layers
  DeviceArray<double> wd, bd, upd, downd;
  std::shared_ptr<const TensorFormat> act;
};

// A cuBLASLt product with a bias epilogue for one shape: row-major y (M×N) = x (M×K)·Wᵀ + b.
struct LtGemm {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool ok = false;
  void release() {
    if (op) cublasLtMatmulDescDestroy(op);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    op = nullptr;
    a = b = c = nullptr;
  }
};

struct DitGpu::Impl {
  DitGpuWeights dims;  // scalars only (vectors cleared)
  cublasHandle_t handle = nullptr;
  cublasLtHandle_t lt = nullptr;
  static constexpr size_t kLtWorkspace = size_t{32} << 20;
  DeviceArray<uint8_t> lt_ws;
  std::map<std::tuple<int64_t, int64_t, int64_t>, LtGemm> lt_plans;
  std::string lt_compute;  // the compute type the plans use ("" until the first)
  DeviceArray<float> patch_w, patch_b, pos, ytab;
  std::vector<DevLayer> layers;
  int64_t cap = 0;  // images the workspace holds
  DeviceArray<float> patches, h, a, qkv, att, tmp, m1, scores, otok, cond, sc, mod, tf, xs, xr, xq, xb, bf;
  DeviceArray<double> xd, yd, bd2;
  DeviceArray<int32_t> labels;
  int64_t max_in = 0, max_out = 0, max_rank = 0;
  bool any_f64 = false, any_f32 = false;  // quantized layers with float64 / float32 products

  ~Impl() {
    for (auto& [k, g] : lt_plans) g.release();
    if (lt) cublasLtDestroy(lt);
    if (handle) cublasDestroy(handle);
  }

  // The plan of an M×N×K product with a bias epilogue: float32 compute, pedantic (no TF32, no
  // reduced-precision reductions) where cuBLASLt offers it, else plain CUBLAS_COMPUTE_32F (also
  // true float32); ok = false when cuBLASLt has no algorithm (the caller then uses cuBLAS and a
  // bias kernel).
  LtGemm& lt_plan(int64_t M, int64_t N, int64_t K) {
    auto [it, fresh] = lt_plans.try_emplace(std::make_tuple(M, N, K));
    LtGemm& g = it->second;
    if (!fresh || !lt) return g;
    for (const cublasComputeType_t ct : {CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_COMPUTE_32F}) {
      if (cublasLtMatmulDescCreate(&g.op, ct, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) {
        g.op = nullptr;
        continue;
      }
      const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      cublasLtMatmulPreference_t pref = nullptr;
      cublasLtMatmulHeuristicResult_t res{};
      int found = 0;
      size_t ws = kLtWorkspace;
      const bool made =
          cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == CUBLAS_STATUS_SUCCESS &&
          cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == CUBLAS_STATUS_SUCCESS &&
          cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS &&
          cublasLtMatrixLayoutCreate(&g.a, CUDA_R_32F, static_cast<uint64_t>(K), static_cast<uint64_t>(N), K) ==
              CUBLAS_STATUS_SUCCESS &&
          cublasLtMatrixLayoutCreate(&g.b, CUDA_R_32F, static_cast<uint64_t>(K), static_cast<uint64_t>(M), K) ==
              CUBLAS_STATUS_SUCCESS &&
          cublasLtMatrixLayoutCreate(&g.c, CUDA_R_32F, static_cast<uint64_t>(N), static_cast<uint64_t>(M), N) ==
              CUBLAS_STATUS_SUCCESS &&
          cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) ==
              CUBLAS_STATUS_SUCCESS &&
          cublasLtMatmulAlgoGetHeuristic(lt, g.op, g.a, g.b, g.c, g.c, pref, 1, &res, &found) == CUBLAS_STATUS_SUCCESS &&
          found > 0;
      if (pref) cublasLtMatmulPreferenceDestroy(pref);
      if (made) {
        g.algo = res.algo;
        g.ok = true;
        if (lt_compute.empty()) lt_compute = ct == CUBLAS_COMPUTE_32F_PEDANTIC ? "32F_PEDANTIC" : "32F";
        return g;
      }
      g.release();
    }
    return g;
  }

  // Row-major y (M×N) = x (M×K)·Wᵀ (W: N×K) + b, bias in the epilogue when cuBLASLt can.
  void sgemm_bias(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t N, int64_t K) {
    LtGemm& g = lt_plan(M, N, K);
    if (g.ok) {
      const float one = 1.0f, zero = 0.0f;
      LOWBIT_CUBLAS(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
      LOWBIT_CUBLAS(cublasLtMatmul(lt, g.op, &one, w, g.a, x, g.b, &zero, y, g.c, y, g.c, &g.algo, lt_ws.get(),
                                   kLtWorkspace, nullptr));
      return;
    }
    sgemm_nt(x, K, w, K, y, N, M, N, K);
    launch(add_rows, M * N, y, b, static_cast<const float*>(nullptr), M, N, int64_t{1});
  }

  void ensure(int64_t n) {
    if (n <= cap) return;
    const int64_t T = tokens(), D = dims.hidden, rows = n * T;
    patches = DeviceArray<float>(static_cast<size_t>(rows * dims.channels * dims.patch * dims.patch));
    h = DeviceArray<float>(static_cast<size_t>(rows * D));
    a = DeviceArray<float>(static_cast<size_t>(rows * D));
    qkv = DeviceArray<float>(static_cast<size_t>(rows * 3 * D));
    att = DeviceArray<float>(static_cast<size_t>(rows * D));
    tmp = DeviceArray<float>(static_cast<size_t>(rows * std::max(D, max_out)));
    m1 = DeviceArray<float>(static_cast<size_t>(rows * dims.mlp));
    scores = DeviceArray<float>(static_cast<size_t>(n * T * T));
    otok = DeviceArray<float>(static_cast<size_t>(rows * dims.patch * dims.patch * dims.channels));
    cond = DeviceArray<float>(static_cast<size_t>(n * D));
    sc = DeviceArray<float>(static_cast<size_t>(n * D));
    mod = DeviceArray<float>(static_cast<size_t>(n * 6 * D));
    tf = DeviceArray<float>(static_cast<size_t>(n * dims.frequency_size));
    labels = DeviceArray<int32_t>(static_cast<size_t>(n));
    xs = DeviceArray<float>(static_cast<size_t>(rows * max_in));
    xq = DeviceArray<float>(static_cast<size_t>(rows * max_in));
    xr = DeviceArray<float>(static_cast<size_t>(rows * max_in));
    if (any_f32 && max_rank > 0) {
      xb = DeviceArray<float>(static_cast<size_t>(rows * max_in));
      bf = DeviceArray<float>(static_cast<size_t>(rows * max_rank));
    }
    xd = DeviceArray<double>(static_cast<size_t>(rows * max_in));
    yd = DeviceArray<double>(static_cast<size_t>(rows * max_out));
    bd2 = DeviceArray<double>(static_cast<size_t>(rows * std::max<int64_t>(max_rank, 1)));
    cap = n;
  }

  int64_t tokens() const { return (dims.input_size / dims.patch) * (dims.input_size / dims.patch); }

  // Row-major C (M×N) = A (M×K, row stride lda) · Bᵀ (B: N×K, row stride ldb).
  void sgemm_nt(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t M, int64_t N,
                int64_t K, float beta = 0.0f) {
    const float alpha = 1.0f;
    LOWBIT_CUBLAS(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                              static_cast<int>(K), &alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda), &beta, C,
                              static_cast<int>(ldc)));
  }
  void dgemm_nt(const double* A, int64_t lda, const double* B, int64_t ldb, double* C, int64_t ldc, int64_t M, int64_t N,
                int64_t K, double beta) {
    const double alpha = 1.0;
    LOWBIT_CUBLAS(cublasDgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                              static_cast<int>(K), &alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda), &beta, C,
                              static_cast<int>(ldc)));
  }

  // y (rows × out) = layer(x (rows × in)), then `after`: y = GELU(y), or (GatedAdd) y is the
  // residual stream h (rows × out, T rows per image) and h += mod[image][gate_col + j] · layer(x).
  void linear(int idx, const float* x, int64_t rows, float* y, After after = After::Store, int64_t gate_col = 0) {
    DevLayer& l = layers[static_cast<size_t>(idx)];
    const float beta = gelu_beta();
    const int64_t T = tokens(), mod_cols = 6 * dims.hidden;
    // Float32 products: dst = x·Wᵀ + b (+ the branch), then `after` as a separate kernel.
    auto float_product = [&](const float* xin, const float* xt) {
      float* dst = after == After::GatedAdd ? tmp.get() : y;
      sgemm_bias(xin, l.w.get(), l.b.get(), dst, rows, l.out, l.in);
      if (l.rank > 0) {  // dst += round16(round16(X̂)·lr_downᵀ)·lr_upᵀ
        const float* xbr = xt;
        if (l.branch_fp16) {
          launch(round_fp16_float, rows * l.in, xt, xb.get(), rows * l.in);
          xbr = xb.get();
        }
        sgemm_nt(xbr, l.in, l.down.get(), l.in, bf.get(), l.rank, rows, l.rank, l.in);
        if (l.branch_fp16) launch(round_fp16_float, rows * l.rank, static_cast<const float*>(bf.get()), bf.get(), rows * l.rank);
        sgemm_nt(bf.get(), l.rank, l.up.get(), l.rank, dst, l.out, rows, l.out, l.rank, 1.0f);
      }
      if (after == After::Gelu)
        launch(gelu_tanh_kernel, rows * l.out / 4, reinterpret_cast<float4*>(y), rows * l.out / 4, beta);
      else if (after == After::GatedAdd)
        gated_add_kernel<<<static_cast<unsigned>(rows), kThreads>>>(y, dst, mod.get(), l.out, T, mod_cols, gate_col);
      LOWBIT_CUDA_LAUNCHED("dit linear epilogue");
    };
    if (!l.quantized) {
      float_product(x, x);
      return;
    }
    const float* xt = x;
    if (l.smooth.size()) {
      launch(divide_cols, rows * l.in, x, static_cast<const float*>(l.smooth.get()), xs.get(), rows, l.in);
      xt = xs.get();
    }
    if (l.rot.size()) {  // X̂ = X̂·H: row-major C = A·H is column-major Cᵀ = Hᵀ·Aᵀ
      const float one = 1.0f, zero = 0.0f;
      const int in = static_cast<int>(l.in);
      LOWBIT_CUBLAS(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, in, static_cast<int>(rows), in, &one, l.rot.get(), in, xt,
                                in, &zero, xr.get(), in));
      xt = xr.get();
    }
    const float* q = xt;
    if (l.act) {
      fake_quant_device(*l.act, xt, xq.get(), Shape{rows, l.in}, /*synchronize=*/false);
      q = xq.get();
    }
    if (l.f32) {
      float_product(q, xt);
      return;
    }
    const int64_t n4 = rows * l.in / 4;
    launch(to_double, n4, reinterpret_cast<const float4*>(q), reinterpret_cast<double2*>(xd.get()), n4, false);
    dgemm_nt(xd.get(), l.in, l.wd.get(), l.in, yd.get(), l.out, rows, l.out, l.in, 0.0);
    if (l.rank > 0) {
      launch(to_double, n4, reinterpret_cast<const float4*>(xt), reinterpret_cast<double2*>(xd.get()), n4, l.branch_fp16);
      dgemm_nt(xd.get(), l.in, l.downd.get(), l.in, bd2.get(), l.rank, rows, l.rank, l.in, 0.0);
      launch(round_branch, rows * l.rank, bd2.get(), rows * l.rank, l.branch_fp16);
      dgemm_nt(bd2.get(), l.rank, l.upd.get(), l.rank, yd.get(), l.out, rows, l.out, l.rank, 1.0);
    }
    finish_quantized<<<static_cast<unsigned>(rows), kThreads>>>(yd.get(), l.bd.size() ? l.bd.get() : nullptr, y, l.out,
                                                               after, beta, mod.get(), T, mod_cols, gate_col);
    LOWBIT_CUDA_LAUNCHED("finish_quantized");
  }

  static float gelu_beta() { return static_cast<float>(1.4142135623730951 * (2.0 / 1.7724538509055159) * 0.5); }

  // out (n × C × S × S) = velocity of x (device) with time features tf and labels (device).
  void forward_dev(const float* x, int64_t n, float* out) {
    const int64_t C = dims.channels, S = dims.input_size, p = dims.patch, G = S / p, T = G * G, D = dims.hidden;
    const int64_t rows = n * T, P = C * p * p, H = dims.heads, hd = D / H;
    launch(im2col_patches, rows * P, x, n, C, S, p, G, patches.get());
    sgemm_nt(patches.get(), P, patch_w.get(), P, h.get(), D, rows, D, P);
    launch(add_rows, rows * D, h.get(), static_cast<const float*>(patch_b.get()), static_cast<const float*>(pos.get()),
           rows, D, T);
    linear(0, tf.get(), n, a.get());  // t_embedder.mlp.0 (n × D), a as scratch
    launch(silu_kernel, n * D, static_cast<const float*>(a.get()), sc.get(), n * D);
    linear(1, sc.get(), n, cond.get());
    launch(add_labels, n * D, cond.get(), static_cast<const float*>(ytab.get()), static_cast<const int32_t*>(labels.get()), n, D);
    launch(silu_kernel, n * D, static_cast<const float*>(cond.get()), sc.get(), n * D);
    const float scale = 1.0f / sqrtf(static_cast<float>(hd));
    for (int64_t i = 0; i < dims.depth; ++i) {
      const int base = static_cast<int>(2 + 5 * i);
      linear(base, sc.get(), n, mod.get());  // n × 6D
      launch(ln_modulate, rows * 32, static_cast<const float*>(h.get()), a.get(), static_cast<const float*>(mod.get()), rows, D,
             T, 6 * D, int64_t{0}, D);
      linear(base + 1, a.get(), rows, qkv.get());
      for (int64_t hh = 0; hh < H; ++hh) {
        const float alpha = scale, zero = 0.0f, one = 1.0f;
        // scores[b] (T × T) = Q_b,h · K_b,hᵀ · scale
        LOWBIT_CUBLAS(cublasSgemmStridedBatched(
            handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(T), static_cast<int>(T), static_cast<int>(hd), &alpha,
            qkv.get() + D + hh * hd, static_cast<int>(3 * D), T * 3 * D, qkv.get() + hh * hd, static_cast<int>(3 * D),
            T * 3 * D, &zero, scores.get(), static_cast<int>(T), T * T, static_cast<int>(n)));
        launch(softmax_rows, n * T * 32, scores.get(), n * T, T);
        // att[b] columns of head h (T × hd) = P_b · V_b,h
        LOWBIT_CUBLAS(cublasSgemmStridedBatched(
            handle, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(hd), static_cast<int>(T), static_cast<int>(T), &one,
            qkv.get() + 2 * D + hh * hd, static_cast<int>(3 * D), T * 3 * D, scores.get(), static_cast<int>(T), T * T,
            &zero, att.get() + hh * hd, static_cast<int>(D), T * D, static_cast<int>(n)));
      }
      linear(base + 2, att.get(), rows, h.get(), After::GatedAdd, 2 * D);
      launch(ln_modulate, rows * 32, static_cast<const float*>(h.get()), a.get(), static_cast<const float*>(mod.get()), rows, D,
             T, 6 * D, 3 * D, 4 * D);
      linear(base + 3, a.get(), rows, m1.get(), After::Gelu);
      linear(base + 4, m1.get(), rows, h.get(), After::GatedAdd, 5 * D);
    }
    const int fin = static_cast<int>(2 + 5 * dims.depth);
    linear(fin, sc.get(), n, mod.get());  // n × 2D
    launch(ln_modulate, rows * 32, static_cast<const float*>(h.get()), a.get(), static_cast<const float*>(mod.get()), rows, D,
           T, 2 * D, int64_t{0}, D);
    linear(fin + 1, a.get(), rows, otok.get());
    launch(unpatchify, n * C * S * S, static_cast<const float*>(otok.get()), n, C, S, p, G, out);
  }
};

DitGpu::DitGpu(const DitGpuWeights& w) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (static_cast<int64_t>(w.layers.size()) != 4 + 5 * w.depth)
    throw Error("gpu dit: " + std::to_string(w.layers.size()) + " layers for depth " + std::to_string(w.depth));
  m.dims.input_size = w.input_size;
  m.dims.patch = w.patch;
  m.dims.channels = w.channels;
  m.dims.hidden = w.hidden;
  m.dims.depth = w.depth;
  m.dims.heads = w.heads;
  m.dims.mlp = w.mlp;
  m.dims.num_classes = w.num_classes;
  m.dims.frequency_size = w.frequency_size;
  LOWBIT_CUBLAS(cublasCreate(&m.handle));
  LOWBIT_CUBLAS(cublasSetMathMode(m.handle, CUBLAS_PEDANTIC_MATH));  // no TF32, no reduced-precision reductions
  if (cublasLtCreate(&m.lt) != CUBLAS_STATUS_SUCCESS) m.lt = nullptr;  // then cuBLAS and a bias kernel
  else m.lt_ws = DeviceArray<uint8_t>(Impl::kLtWorkspace);
  m.patch_w = upload(w.patch_w);
  m.patch_b = upload(w.patch_b);
  m.pos = upload(w.pos_embed);
  m.ytab = upload(w.y_table);
  for (const DitGpuLayer& l : w.layers) {
    DevLayer d;
    d.out = l.out;
    d.in = l.in;
    d.quantized = l.quantized;
    d.rank = l.rank;
    d.branch_fp16 = l.branch_fp16;
    d.f32 = l.quantized && l.float32_products;
    d.act = l.act;
    if (static_cast<int64_t>(l.w.size()) != l.out * l.in) throw Error("gpu dit: layer " + l.name + ": weight size");
    if (l.in % 4 != 0 || l.out % 4 != 0)  // the conversion and GELU kernels move 4 floats at a time
      throw Error("gpu dit: layer " + l.name + ": " + std::to_string(l.out) + " × " + std::to_string(l.in) +
                  " (the GPU engine needs multiples of 4)");
    if (!l.quantized || d.f32) {
      d.w = upload(l.w);
      d.b = upload(l.b.empty() ? std::vector<float>(static_cast<size_t>(l.out), 0.0f) : l.b);
    }
    if (l.quantized) {
      (d.f32 ? m.any_f32 : m.any_f64) = true;
      if (!d.f32) {
        d.wd = upload_double(l.w);
        if (!l.b.empty()) d.bd = upload_double(l.b);
      }
      if (!l.smooth.empty()) d.smooth = upload(l.smooth);
      if (!l.rotation.empty()) {
        if (static_cast<int64_t>(l.rotation.size()) != l.in * l.in) throw Error("gpu dit: layer " + l.name + ": rotation size");
        d.rot = upload(l.rotation);
      }
      if (l.rank > 0 && d.f32) {
        d.up = upload(l.lr_up);
        d.down = upload(l.lr_down);
      } else if (l.rank > 0) {
        d.upd = upload_double(l.lr_up);
        d.downd = upload_double(l.lr_down);
      }
    }
    m.max_in = std::max(m.max_in, l.in);
    m.max_out = std::max(m.max_out, l.out);
    m.max_rank = std::max(m.max_rank, l.rank);
    m.layers.push_back(std::move(d));
  }
}

DitGpu::~DitGpu() = default;

std::string DitGpu::products() const {
  const Impl& m = *impl_;
  std::string plain = m.lt_compute.empty() ? "cuBLAS SGEMM (pedantic) + bias kernel"
                                           : "cuBLASLt CUBLAS_COMPUTE_" + m.lt_compute + " with bias epilogue";
  std::string quantized = m.any_f64 ? "cuBLAS DGEMM" : "";
  if (m.any_f32) quantized += (quantized.empty() ? "" : " / ") + std::string("float32 as the plain layers (recipe products float32)");
  return "plain layers: " + plain + "; quantized layers: " + (quantized.empty() ? "none" : quantized);
}

std::vector<float> DitGpu::forward(std::span<const float> x, std::span<const float> tfreq, std::span<const int32_t> y) {
  Impl& m = *impl_;
  const int64_t n = static_cast<int64_t>(y.size()), e = m.dims.channels * m.dims.input_size * m.dims.input_size;
  if (n == 0 || static_cast<int64_t>(x.size()) != n * e ||
      static_cast<int64_t>(tfreq.size()) != n * m.dims.frequency_size)
    throw Error("gpu dit forward: input sizes do not match the batch");
  m.ensure(n);
  DeviceArray<float> dx(x.size()), dout(x.size());
  dx.upload(x.data(), x.size());
  m.tf.upload(tfreq.data(), tfreq.size());
  m.labels.upload(y.data(), y.size());
  m.forward_dev(dx.get(), n, dout.get());
  LOWBIT_CUDA(cudaDeviceSynchronize());
  return dout.download();
}

std::vector<float> DitGpu::sample(std::span<const float> noise, std::span<const int32_t> labels, std::span<const float> times,
                                  float cfg_scale, bool clamp, const std::function<void(float, float*)>& features,
                                  const std::function<void(int64_t)>& progress) {
  Impl& m = *impl_;
  const int64_t n = static_cast<int64_t>(labels.size()), e = m.dims.channels * m.dims.input_size * m.dims.input_size;
  if (n == 0 || static_cast<int64_t>(noise.size()) != n * e || times.size() < 2)
    throw Error("gpu dit sample: input sizes do not match");
  const bool cfg = cfg_scale != 1.0f;
  const int64_t nb = cfg ? 2 * n : n, F = m.dims.frequency_size;
  m.ensure(nb);
  std::vector<int32_t> y2(labels.begin(), labels.end());
  if (cfg) y2.insert(y2.end(), static_cast<size_t>(n), static_cast<int32_t>(m.dims.num_classes));
  m.labels.upload(y2.data(), y2.size());
  DeviceArray<float> x(noise.size()), xb(static_cast<size_t>(nb * e)), ob(static_cast<size_t>(nb * e)), v(noise.size());
  x.upload(noise.data(), noise.size());
  std::vector<float> tf(static_cast<size_t>(nb * F));
  for (size_t i = 0; i + 1 < times.size(); ++i) {
    const float t = times[i], dt = times[i + 1] - t;
    features(t * 1000.0f, tf.data());
    for (int64_t r = 1; r < nb; ++r) std::copy(tf.begin(), tf.begin() + F, tf.begin() + r * F);
    m.tf.upload(tf.data(), tf.size());
    if (cfg) {
      LOWBIT_CUDA(cudaMemcpy(xb.get(), x.get(), noise.size() * 4, cudaMemcpyDeviceToDevice));
      LOWBIT_CUDA(cudaMemcpy(xb.get() + n * e, x.get(), noise.size() * 4, cudaMemcpyDeviceToDevice));
      m.forward_dev(xb.get(), nb, ob.get());
      launch(cfg_combine, n * e, static_cast<const float*>(ob.get()), n * e, cfg_scale, v.get());
    } else {
      m.forward_dev(x.get(), n, v.get());
    }
    launch(euler_step, n * e, x.get(), static_cast<const float*>(v.get()), dt, n * e);
    if (progress) {
      LOWBIT_CUDA(cudaDeviceSynchronize());
      progress(static_cast<int64_t>(i));
    }
  }
  if (clamp) launch(clamp_kernel, n * e, x.get(), n * e);
  LOWBIT_CUDA(cudaDeviceSynchronize());
  return x.download();
}

}  // namespace lowbit::gpu
