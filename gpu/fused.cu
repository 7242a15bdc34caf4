// Fused fake quantisation on the device: the fast path of gpu::fake_quant_device (and so of the
// model engine). One pass over the tensor with 16-byte loads and stores; a group (an element
// format's gN group or row, an MX block, an NVFP4 block, a codebook block, an LZS group) is held
// by L lanes of one warp, each with C float4 chunks in registers, its statistic reduced by an
// L-lane butterfly, its scale derived by every lane from the shared rule, then every element's
// value written. Tensor-level statistics (NVFP4's amax, LZS's s8, per-tensor / per-column
// element scales, per-row scales of rows beyond 1024 elements) are computed by the reference
// kernels first, a second read. (One CUDA block per long row, the row in registers, was tried
// and measured slower than that second read on the H100: 0.23 vs 0.43 of the copy at 16384
// columns, 0.26 vs 0.39 at 1024.)
//
// Every scale rule is the reference of formats/*_rules.hpp. Element values use a cheaper form
// where one is proven equal to the reference and tested exhaustively on the CPU:
//   float elements, RNE:    FastRne::value (formats/fast_float.hpp; equal to
//                           decode_float(encode_float(.)) with NanMode::Cuda, every overflow mode)
//   int elements, RNE:      rint then clamp (= round_to_int's RNE for finite t; NaN gives 0)
//   MX, RNE and SR:         FastRne of fl(V * 2^-k) (formats/mx.cpp's fast path and its proof)
//   NVFP4, RNE, te/torchao: FastRne(e2m1) of q = x * m (Nvfp4Blocks below)
// and the reference rules otherwise. `lowbit crosscheck` compares this path's values with the
// CPU's for every registered format (gpu::fake_quant runs it), exhaustively for element formats.
//
// fused_fake_quant returns false where no fused kernel applies (the caller runs the reference
// kernels): a shape or pointer alignment that does not allow float4 access, group sizes beyond
// 4 * 32 * 8 = 1024 elements, codebook dq and backend=torch (whose absmax keeps the first NaN: an
// order-dependent rule).
#include <cuda_runtime.h>

#include <cstdint>

#include "formats/codebook_rules.hpp"
#include "formats/element_rules.hpp"
#include "formats/fast_float.hpp"
#include "formats/lzs_rules.hpp"
#include "formats/mx_rules.hpp"
#include "formats/nvfp4_rules.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/family.hpp"
#include "gpu/family_cb.hpp"
#include "gpu/family_mx.hpp"
#include "gpu/kernels.cuh"

namespace lowbit::gpu {
namespace {

constexpr int kThreads = 256;
// Resident blocks per SM the group kernel is compiled for (a register cap of 64 per thread): its
// loop is load -> reduce -> scale -> store with no overlap inside a thread, so latency is hidden
// by occupancy (at the uncapped 111 registers, 24 % occupancy gave 0.52x of the copy bandwidth).
constexpr int kMinBlocks = 4;

// ---------------------------------------------------------------------------------------------
// Element values.

// How an element format's value is computed.
enum class ElemPath : uint8_t { Reference, FloatRne, IntRne };

struct ElemRule {
  ElementParams p;
  ElemPath path = ElemPath::Reference;
  FastRne k{};
  float qlo = 0, qhi = 0;  // IntRne: the code range (symmetric) or [-2^30, 2^30] (asymmetric)

  // The value of x under scale s (null: a plain cast); idx: flat index (stochastic rounding).
  __device__ __forceinline__ float value(float x, const ElementScale* s, uint64_t idx) const {
    if (path == ElemPath::Reference) return element_value(p, element_encode(p, x, s, idx), s);
    if (s && (s->dec == 0.0f || s->dec != s->dec)) return hx_mul(0.0f, s->dec);
    const float t = !s ? x : (p.op_mul ? hx_mul(x, 1.0f / s->dec) : hx_div(x, s->dec));
    if (path == ElemPath::FloatRne) {
      const float v = k.value(t);
      return s ? hx_mul(v, s->dec) : v;
    }
    // IntRne: round_to_int(t, lo, hi, RNE): NaN -> 0, else the nearest integer (ties to even),
    // clamped (Inf clamps too).
    float r = t != t ? 0.0f : rintf(t);
    r = fminf(fmaxf(r, qlo), qhi);
    if (!s) return r + 0.0f;  // the integer's value: +0 for 0
    if (p.asym) {
      const float hi = static_cast<float>(p.fi.mask());
      const float c = fminf(fmaxf(r + static_cast<float>(s->zp), 0.0f), hi);  // exact: |r| <= 2^30
      return hx_mul(s->dec, c - static_cast<float>(s->zp));
    }
    return hx_mul(s->dec, r + 0.0f);
  }
};

ElemRule make_elem_rule(const ElementParams& p) {
  ElemRule r;
  r.p = p;
  const bool rne = p.pol.round == Round::NearestEven;
  const bool scaled = p.gran != Granularity::None;
  if (rne && !p.is_int && p.pol.nan == NanMode::Cuda && fast_rne_supported(p.ff)) {
    r.path = ElemPath::FloatRne;
    r.k = FastRne::make(p.ff, p.pol.overflow);
  } else if (rne && p.is_int) {
    r.path = ElemPath::IntRne;
    if (p.asym) {
      r.qlo = -1073741824.0f;
      r.qhi = 1073741824.0f;
    } else {
      r.qlo = static_cast<float>(scaled && !p.full_range ? -p.fi.hi() : p.fi.lo());
      r.qhi = static_cast<float>(p.fi.hi());
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Group rules: Stat (a statistic that an L-lane butterfly reduces), Scale, and the value.

template <int L>
__device__ __forceinline__ uint32_t group_max(uint32_t v) {
#pragma unroll
  for (int o = L / 2; o > 0; o >>= 1) {
    const uint32_t q = __shfl_xor_sync(0xffffffffu, v, o);
    v = q > v ? q : v;
  }
  return v;
}

// Element formats with gN groups, symmetric: the |x| bit-pattern max (NaN and Inf above every
// finite pattern), as ElementRange::amax.
struct ElemSymGroups {
  ElemRule r;
  using Stat = uint32_t;
  using Scale = ElementScale;
  __device__ Stat init(int64_t) const { return 0; }
  __device__ void add(Stat& s, float x) const {
    const uint32_t a = f32_bits(x) & 0x7fffffffu;
    s = a > s ? a : s;
  }
  template <int L>
  __device__ Stat reduce(Stat s) const { return group_max<L>(s); }
  __device__ Scale scale(Stat s) const {
    ElementRange g;
    g.amax = s;
    return element_group_scale(r.p, g);
  }
  __device__ float value(float x, const Scale& s, uint64_t idx) const { return r.value(x, &s, idx); }
};

// Asymmetric: the whole ElementRange (its merge is order-free).
struct ElemAsymGroups {
  ElemRule r;
  using Stat = ElementRange;
  using Scale = ElementScale;
  __device__ Stat init(int64_t) const { return ElementRange{}; }
  __device__ void add(Stat& s, float x) const { s.add(x); }
  template <int L>
  __device__ Stat reduce(Stat s) const {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) {
      ElementRange q;
      q.amax = __shfl_xor_sync(0xffffffffu, s.amax, o);
      q.kmin = __shfl_xor_sync(0xffffffffu, s.kmin, o);
      q.kmax = __shfl_xor_sync(0xffffffffu, s.kmax, o);
      s.merge(q);
    }
    return s;
  }
  __device__ Scale scale(const Stat& s) const { return element_group_scale(r.p, s); }
  __device__ float value(float x, const Scale& s, uint64_t idx) const { return r.value(x, &s, idx); }
};

// OCP MX blocks of 32.
struct MxBlocks {
  MxParams p;
  bool fast = false;  // RNE or SR: formats/mx.cpp's fast element path
  FastRne k{};
  using Stat = uint32_t;
  using Scale = MxBlockScale;
  __device__ Stat init(int64_t) const { return 0; }
  __device__ void add(Stat& s, float x) const {
    const uint32_t a = mx_abs_bits(x);
    s = a > s ? a : s;
  }
  template <int L>
  __device__ Stat reduce(Stat s) const { return group_max<L>(s); }
  __device__ Scale scale(Stat s) const { return mx_block_scale(p, s); }
  __device__ float value(float x, const Scale& s, uint64_t idx) const {
    if (!fast) return mx_block_value(p, mx_block_code(p, s, x, idx), s.e);
    // formats/mx.cpp, fast path: t = fl(V * 2^-k) rounds as V with scale_exp = k; the value is
    // P * X with mx_decode_element's operands. Zero blocks: +0; NaN scale: the quiet NaN.
    if (s.zero) return 0.0f;
    if (s.e == kE8m0Nan) return f32_from_bits(0x7fc00000u);
    const int kexp = static_cast<int>(s.e) - 127;
    const float t = x * exp2i(-kexp);
    const bool sr = p.opt.round == Round::Stochastic;
    if (p.elem.int8) {
      const float lo = p.opt.int8_min128 ? -128.0f : -127.0f;
      float q = fminf(fmaxf(t * 64.0f, lo), 127.0f);
      if (!sr) {
        q = (q + 12582912.0f) - 12582912.0f;  // RNE to an integer (|q| <= 128)
      } else {
        const uint32_t rb = sr_bits(p.opt.seed, idx);
        const uint32_t qb = f32_bits(q);
        const float a = f32_from_bits(qb & 0x7fffffffu);
        const int32_t u = static_cast<int32_t>(a);
        const uint32_t frac32 = static_cast<uint32_t>((a - static_cast<float>(u)) * 4294967296.0f);
        const float qa = static_cast<float>(u + (rb < frac32 ? 1 : 0));
        q = f32_from_bits(f32_bits(qa) | (qb & 0x80000000u));
      }
      return (q + 0.0f) * exp2i(static_cast<int>(s.e) - 133);  // +0 for k = 0
    }
    const float v = sr ? k.value_sr(t, sr_bits(p.opt.seed, idx)) : k.value(t);
    return v * exp2i(kexp);
  }
};

// NVFP4 blocks of 16 under the tensor-level state (computed first by nvfp4_tensor_device).
// Fast values (RNE, variants te and torchao, two-level or single-level): the element code is
// encode_float(e2m1, q, RNE, Saturate) of q = x * m (torchao first clamps q to [-6, 6], which
// saturation already does for every non-NaN q), so its value is FastRne(e2m1).value(q), and the
// value is that times the block factor, as nvfp4_decode_element multiplies. Any NaN on the way
// (a NaN q or block or tensor scale) takes the reference rules, which give the CPU's NaN bits.
struct Nvfp4Blocks {
  Nvfp4Params p;
  const Nvfp4Tensor* t = nullptr;  // device
  bool fast = false;
  FastRne k{};
  struct Scale {
    Nvfp4Tensor t;
    Nvfp4BlockScale b;
    float factor;
    bool fast;
  };
  using Stat = uint32_t;
  __device__ Stat init(int64_t) const { return 0; }
  __device__ void add(Stat& s, float x) const {
    const uint32_t a = nvfp4_abs_bits(x);
    s = a > s ? a : s;
  }
  template <int L>
  __device__ Stat reduce(Stat s) const { return group_max<L>(s); }
  __device__ Scale scale(Stat s) const {
    const Nvfp4Tensor tt = *t;
    const Nvfp4BlockScale b = nvfp4_block_of(tt, s);
    return {tt, b, nvfp4_block_factor(tt, b.code), fast && !tt.nan && !tt.zero};
  }
  __device__ float value(float x, const Scale& s, uint64_t idx) const {
    if (s.fast) {
      const float q = x * s.b.m;
      const float v = k.value(q) * s.factor;
      if (q == q && v == v) return v;
    }
    return nvfp4_block_value(s.t, nvfp4_block_code(p, s.t, s.b, x, idx), s.b.code);
  }
};

// Codebook blocks (backend=cuda, no dq): fmaxf-style absmax from -FLT_MAX (NaN never wins, so
// the max is order-free), codes by the table's coder, values table[code] * absmax.
struct CodebookBlocks {
  const CodebookTables* t = nullptr;  // device
  struct Scale {
    float absmax, recip;
  };
  using Stat = float;
  __device__ Stat init(int64_t) const { return -3.40282347e38f; }
  __device__ void add(Stat& s, float x) const {
    const float a = hx_abs(x);
    if (a > s) s = a;
  }
  template <int L>
  __device__ Stat reduce(Stat s) const {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) {
      const float q = __shfl_xor_sync(0xffffffffu, s, o);
      if (q > s) s = q;
    }
    return s;
  }
  __device__ Scale scale(Stat s) const { return {s, codebook_recip(false, s)}; }
  __device__ float value(float x, const Scale& s, uint64_t) const {
    return codebook_value(*t, codebook_code(*t, x, s.recip), s.absmax);
  }
};

// LZS (QuaRTZ lzs4) groups under the stage-1 scale s8 computed first (lzs_scales_device): the
// group's FLAG from the OR of its int8 magnitudes (an order-free reduction), then every code and
// value by the reference rules.
struct LzsGroups {
  LzsParams p;
  const float* s8 = nullptr;  // device: one per row (s8=token) or one
  int64_t groups_per_row = 1;
  struct Stat {
    uint32_t mag_or;
    float s8;
  };
  struct Scale {
    int flag;
    float s8;
  };
  __device__ Stat init(int64_t g) const { return {0u, s8[p.per_token ? g / groups_per_row : 0]}; }
  __device__ void add(Stat& s, float x) const {
    const int32_t q = lzs_quantize_int8(x, s.s8);
    s.mag_or |= static_cast<uint32_t>(q < 0 ? -q : q);
  }
  template <int L>
  __device__ Stat reduce(Stat s) const {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) s.mag_or |= __shfl_xor_sync(0xffffffffu, s.mag_or, o);
    return s;
  }
  __device__ Scale scale(const Stat& s) const { return {lzs_flag(s.mag_or), s.s8}; }
  __device__ float value(float x, const Scale& s, uint64_t) const {
    return lzs_value(lzs_code(x, s.s8, s.flag, p.round), s.flag, s.s8);
  }
};

// ---------------------------------------------------------------------------------------------
// Kernels.

__device__ __forceinline__ float get(const float4& v, int j) {
  return j == 0 ? v.x : (j == 1 ? v.y : (j == 2 ? v.z : v.w));
}
__device__ __forceinline__ void set(float4& v, int j, float f) {
  if (j == 0) v.x = f;
  else if (j == 1) v.y = f;
  else if (j == 2) v.z = f;
  else v.w = f;
}

// Groups of 4 * L * C elements: lane l of a group holds float4 chunks c * L + l (coalesced per
// c), in registers. All 32 lanes of a warp run the same number of iterations (the bound is per
// warp), so the full-mask shuffles always have every lane; lanes past the last group load zeros
// and store nothing. C is a compile-time constant so that the chunks stay in registers.
template <int L, int C, class Rule>
__global__ void __launch_bounds__(kThreads, kMinBlocks) fused_groups(Rule rule, const float4* __restrict x, float4* __restrict y,
                                                         int64_t ngroups) {
  constexpr int kGroupsPerWarp = 32 / L;
  constexpr int64_t kPerGroup = static_cast<int64_t>(L) * C;  // float4 per group
  const int lane = static_cast<int>(threadIdx.x % L);
  const int sub = static_cast<int>((threadIdx.x % 32) / L);
  const int64_t nwarps = thread_stride() / 32;
  for (int64_t w = thread_index() / 32; w * kGroupsPerWarp < ngroups; w += nwarps) {
    const int64_t g = w * kGroupsPerWarp + sub;
    const bool valid = g < ngroups;
    float4 v[C];
    typename Rule::Stat st = rule.init(g);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      v[c] = valid ? x[g * kPerGroup + c * L + lane] : make_float4(0.f, 0.f, 0.f, 0.f);
      rule.add(st, v[c].x);
      rule.add(st, v[c].y);
      rule.add(st, v[c].z);
      rule.add(st, v[c].w);
    }
    st = rule.template reduce<L>(st);
    if (!valid) continue;
    const typename Rule::Scale s = rule.scale(st);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t q = g * kPerGroup + c * L + lane;
      float4 o;
#pragma unroll
      for (int j = 0; j < 4; ++j) set(o, j, rule.value(get(v[c], j), s, static_cast<uint64_t>(4 * q + j)));
      y[q] = o;
    }
  }
}

// Element formats without groups: a plain cast (scales null), or per-row / per-column /
// per-tensor scales computed beforehand (cols a multiple of 4, so a float4 never straddles rows).
__global__ void __launch_bounds__(kThreads) fused_elements(ElemRule r, const float4* __restrict x, float4* __restrict y,
                                                           int64_t n4, int64_t cols, const ElementScale* __restrict scales) {
  for (int64_t q = thread_index(); q < n4; q += thread_stride()) {
    const float4 v = x[q];
    const int64_t i0 = 4 * q;
    float4 o;
    if (!scales) {
#pragma unroll
      for (int j = 0; j < 4; ++j) set(o, j, r.value(get(v, j), nullptr, static_cast<uint64_t>(i0 + j)));
    } else if (r.p.gran == Granularity::Col) {
      const int64_t c0 = i0 % cols;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const ElementScale s = scales[c0 + j];
        set(o, j, r.value(get(v, j), &s, static_cast<uint64_t>(i0 + j)));
      }
    } else {
      const ElementScale s = scales[r.p.gran == Granularity::Row ? i0 / cols : 0];
#pragma unroll
      for (int j = 0; j < 4; ++j) set(o, j, r.value(get(v, j), &s, static_cast<uint64_t>(i0 + j)));
    }
    y[q] = o;
  }
}

// Lanes L and float4 chunks per lane C of a group: 16 elements per lane (the scale rule runs
// once per lane, so more elements per lane amortise it), L a power of two <= 32; false if the
// group has no such split (groups of 4 or 8, not a power of two times 16, above 1024: the
// caller falls back to the reference kernels).
bool split_group(int64_t group, int* lanes, int* chunks) {
  if (group <= 0 || group % 4 != 0) return false;
  const int64_t g4 = group / 4;
  // 16 elements per lane: groups 16, 32, ..., 512; 32 elements in 32 lanes: 1024.
  if (g4 % 4 == 0 && g4 / 4 <= 32 && ((g4 / 4) & (g4 / 4 - 1)) == 0) {
    *lanes = static_cast<int>(g4 / 4);
    *chunks = 4;
    return true;
  }
  if (g4 == 256) {
    *lanes = 32;
    *chunks = 8;
    return true;
  }
  return false;
}

template <int L, int C, class Rule>
void launch_lc(const Rule& rule, const float4* x, float4* y, int64_t ngroups) {
  const int64_t warps = (ngroups * L + 31) / 32;
  fused_groups<L, C><<<grid_for(warps * 32, kThreads), kThreads>>>(rule, x, y, ngroups);
}

template <int C, class Rule>
void launch_c(const Rule& rule, int lanes, const float4* x, float4* y, int64_t ngroups) {
  switch (lanes) {
    case 1: return launch_lc<1, C>(rule, x, y, ngroups);
    case 2: return launch_lc<2, C>(rule, x, y, ngroups);
    case 4: return launch_lc<4, C>(rule, x, y, ngroups);
    case 8: return launch_lc<8, C>(rule, x, y, ngroups);
    case 16: return launch_lc<16, C>(rule, x, y, ngroups);
    default: return launch_lc<32, C>(rule, x, y, ngroups);
  }
}

// Launches the group kernel; split_group(group) must hold.
template <class Rule>
void launch_groups(const Rule& rule, const float* x, float* y, int64_t n, int64_t group) {
  int lanes = 0, chunks = 0;
  split_group(group, &lanes, &chunks);
  const int64_t ngroups = n / group;
  const auto* x4 = reinterpret_cast<const float4*>(x);
  auto* y4 = reinterpret_cast<float4*>(y);
  if (chunks == 8) launch_lc<32, 8>(rule, x4, y4, ngroups);
  else launch_c<4>(rule, lanes, x4, y4, ngroups);
  LOWBIT_CUDA_LAUNCHED("fused_groups");
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool fused_fake_quant(const FormatParams& params, const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  if (n == 0 || cols % 4 != 0 || !aligned16(x) || !aligned16(y)) return false;
  int lanes = 0, chunks = 0;
  if (const auto* e = std::get_if<ElementParams>(&params)) {
    const ElemRule r = make_elem_rule(*e);
    // A row is a group of `cols` elements (the same rule, segment_scales): one pass when the
    // row fits the group kernel, else the scales first.
    const int64_t group = e->gran == Granularity::Group ? e->group : (e->gran == Granularity::Row ? cols : 0);
    if (group > 0 && split_group(group, &lanes, &chunks)) {
      if (e->asym) launch_groups(ElemAsymGroups{r}, x, y, n, group);
      else launch_groups(ElemSymGroups{r}, x, y, n, group);
    } else if (e->gran == Granularity::Group) {
      return false;
    } else {
      DeviceArray<ElementScale> scales(e->gran == Granularity::None ? 0 : static_cast<size_t>(element_num_scales(*e, rows, cols)));
      if (e->gran != Granularity::None) element_scales_device(*e, x, rows, cols, scales.get());
      fused_elements<<<grid_for(n / 4, kThreads), kThreads>>>(r, reinterpret_cast<const float4*>(x),
                                                              reinterpret_cast<float4*>(y), n / 4, cols, scales.get());
      LOWBIT_CUDA_LAUNCHED("fused_elements");
    }
    return true;
  }
  if (const auto* m = std::get_if<MxParams>(&params)) {
    if (cols % kMxBlock != 0) return false;
    MxBlocks rule;
    rule.p = *m;
    rule.fast = (m->opt.round == Round::NearestEven || m->opt.round == Round::Stochastic) &&
                (m->elem.int8 || fast_rne_supported(m->elem.fp));
    if (rule.fast && !m->elem.int8) rule.k = FastRne::make(m->elem.fp, Overflow::Saturate);
    launch_groups(rule, x, y, n, kMxBlock);
    return true;
  }
  if (const auto* q = std::get_if<Nvfp4Params>(&params)) {
    if (cols % kNvfp4Block != 0) return false;
    const DeviceArray<Nvfp4Tensor> t = nvfp4_tensor_device(*q, x, n);
    Nvfp4Blocks rule;
    rule.p = *q;
    rule.t = t.get();
    rule.fast = q->round == Round::NearestEven && (!q->two_level || q->variant != Nvfp4Variant::Modelopt);
    if (rule.fast) rule.k = FastRne::make(fmt_desc::e2m1, Overflow::Saturate);
    launch_groups(rule, x, y, n, kNvfp4Block);
    return true;
  }
  if (const auto* c = std::get_if<CodebookParams>(&params)) {
    if (c->dq || c->backend != CodebookBackend::Cuda || cols % c->block != 0 || !split_group(c->block, &lanes, &chunks))
      return false;
    const CodebookTables h = codebook_tables(*c);
    DeviceArray<CodebookTables> t(1);
    t.upload(&h, 1);
    launch_groups(CodebookBlocks{t.get()}, x, y, n, c->block);
    return true;
  }
  if (const auto* l = std::get_if<LzsParams>(&params)) {
    if (cols % l->group != 0 || !split_group(l->group, &lanes, &chunks)) return false;
    const DeviceArray<float> s8 = lzs_scales_device(*l, x, rows, cols);
    launch_groups(LzsGroups{*l, s8.get(), cols / l->group}, x, y, n, l->group);
    return true;
  }
  return false;
}

}  // namespace lowbit::gpu
