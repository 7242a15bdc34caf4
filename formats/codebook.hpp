// Codebook formats with blockwise absmax scaling: bitsandbytes NF4 and "fp4", AF4 and user
// codebooks (FORMATS.md §3). This header holds the scalar pieces, host and device: the code
// tables, bitsandbytes' CUDA decision trees, its 8-bit dynamic-map code choice (used by double
// quantisation), and create_dynamic_map. The tensor format (blocks along the last axis,
// backends, double quantisation, packing, OpenMP) is formats/codebook.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/hd.hpp"

namespace lowbit {

// ---------------------------------------------------------------------------------------------
// NF4 (FORMATS.md §3.1): the float32 literals of bnb csrc/kernels.cu nf4_dequantization_lut
// (= functional.py get_4bit_type("nf4") cast to float32). Codes are indices into this ascending
// table: 7 negative values, 0 (code 7), 8 positive values.
LOWBIT_HD float nf4_value(uint32_t code) {
  constexpr float t[16] = {-1.0f,
                           -0.6961928009986877f,
                           -0.5250730514526367f,
                           -0.39491748809814453f,
                           -0.28444138169288635f,
                           -0.18477343022823334f,
                           -0.09105003625154495f,
                           0.0f,
                           0.07958029955625534f,
                           0.16093020141124725f,
                           0.24611230194568634f,
                           0.33791524171829224f,
                           0.44070982933044434f,
                           0.5626170039176941f,
                           0.7229568362236023f,
                           1.0f};
  return t[code & 15u];
}

// Threshold i (0..14) between NF4 codes i and i + 1 in bnb's CUDA kernel (dQuantizeNF4). The
// kernel writes them as float literals (`f` suffix), so each is the decimal rounded once to
// float32. The exact midpoints at i = 0, 1, 3, 4, 8, 12, 14 lie halfway between two floats; at
// i = 0, 8, 12, 14 decimal -> double -> float would pick the other one. These are the kernel's.
LOWBIT_HD float nf4_threshold_cuda(int i) {
  constexpr float t[15] = {-0.8480964004993439f,  -0.6106329262256622f,  -0.4599952697753906f,
                           -0.33967943489551544f, -0.23460740596055984f, -0.13791173323988914f,
                           -0.045525018125772476f, 0.03979014977812767f,  0.1202552504837513f,
                           0.2035212516784668f,    0.2920137718319893f,   0.3893125355243683f,
                           0.5016634166240692f,    0.6427869200706482f,   0.8614784181118011f};
  return t[i];
}

// NF4 code of a normalised value xn = x * (1/absmax) as bnb's CUDA decision tree gives it: a
// balanced 4-level tree of strict `>` tests on the thresholds above, i.e. the number of
// thresholds t with xn > t. A value equal to a threshold takes the lower code. NaN fails every
// test and gives code 0 (-1.0): that is what an all-zero block (0 * Inf) gets on CUDA.
//
// Computed as that count, not as the tree's descent: a loop with a constant trip count whose
// table index the compiler resolves at compile time, where the descent indexes the table at run
// time (on a GPU, a local-memory array built on every call).
LOWBIT_HD uint32_t nf4_code_cuda(float xn) {
  uint32_t code = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int i = 0; i < 15; ++i) code += xn > nf4_threshold_cuda(i) ? 1u : 0u;
  return code;
}

// ---------------------------------------------------------------------------------------------
// bitsandbytes "fp4" (FORMATS.md §3.3) — not OCP E2M1. Code bits S b2 b1 b0; magnitudes x12 by
// b2b1b0: 000 0, 001 0.0625, 010 8, 011 12, 100 4, 101 6, 110 2, 111 3 (non-monotone order),
// normalised by 12 in fp32 as get_4bit_type("fp4") does (equal to the kernel's
// fp4_dequantization_lut literals). Code 8 is -0.
LOWBIT_HD float bnb_fp4_value(uint32_t code) {
  constexpr float m[8] = {0.0f,         0.0625f / 12.0f, 8.0f / 12.0f, 12.0f / 12.0f,
                          4.0f / 12.0f, 6.0f / 12.0f,    2.0f / 12.0f, 3.0f / 12.0f};
  const float v = m[code & 7u];
  return (code & 8u) ? -v : v;
}

// Magnitude thresholds of bnb's dQuantizeFP4 in ascending order (strict `>`), and the 3-bit
// magnitude code of each interval between them.
LOWBIT_HD float bnb_fp4_threshold_cuda(int i) {
  constexpr float t[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
  return t[i];
}

// bnb "fp4" code of xn as the CUDA kernel gives it: sign bit = (xn < 0) (so -0.0 and NaN get a
// positive code), magnitude = the interval of |xn| among the thresholds (NaN -> 0b000).
LOWBIT_HD uint32_t bnb_fp4_code_cuda(float xn) {
  // mag_code[rank] for ranks 0..7 = 0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011, as
  // 3-bit fields of one word (no run-time indexed array: see nf4_code_cuda).
  constexpr uint32_t kMagCodes = 0u | (1u << 3) | (6u << 6) | (7u << 9) | (4u << 12) | (5u << 15) | (2u << 18) | (3u << 21);
  const uint32_t sign = xn < 0.0f ? 8u : 0u;
  const float a = xn < 0.0f ? -xn : xn;
  int rank = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int i = 0; i < 7; ++i)
    if (a > bnb_fp4_threshold_cuda(i)) rank = i + 1;
  return sign | ((kMagCodes >> (3 * rank)) & 7u);
}

// ---------------------------------------------------------------------------------------------
// AF4 (FORMATS.md §3.4, arXiv 2306.06965, bnb get_4bit_type("af4") for blocksize 64), ascending
// (bnb stores the list reversed; lowbit's codes are indices into the ascending table). The
// decimals go through double to float32 as torch.tensor(list) does.
LOWBIT_HD float af4_value(uint32_t code) {
  constexpr float t[16] = {static_cast<float>(-1.0),        static_cast<float>(-0.69441008),
                           static_cast<float>(-0.51243739), static_cast<float>(-0.3736951),
                           static_cast<float>(-0.25607552), static_cast<float>(-0.14982478),
                           static_cast<float>(-0.04934812), static_cast<float>(0.0),
                           static_cast<float>(0.04273164),  static_cast<float>(0.12934483),
                           static_cast<float>(0.21961274),  static_cast<float>(0.31675666),
                           static_cast<float>(0.42563882),  static_cast<float>(0.55496234),
                           static_cast<float>(0.72424863),  static_cast<float>(1.0)};
  return t[code & 15u];
}

// ---------------------------------------------------------------------------------------------
// bitsandbytes' 8-bit blockwise code choice (kQuantizeBlockwise, General8bit, deterministic),
// used for double quantisation of the absmax values. `map` is the sorted 256-entry code.
// A 7-step binary search starting at index 127 (steps 64, 32, ..., 1; `x > map[pivot]` moves
// up) ends at a pivot; then x is compared in fp32 with the midpoint (a + b) * 0.5f between the
// pivot's value and the last visited neighbour on x's side. A value exactly at that midpoint
// stays at the pivot, so ties resolve up or down depending on the search path. NaN fails every
// comparison and gives code 0.
LOWBIT_HD uint32_t bnb_dynamic8_code(const float* map, float x) {
  int pivot = 127, above = 255, below = 0;
  float v = map[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > v) {
      below = pivot;
      pivot += step;
    } else {
      above = pivot;
      pivot -= step;
    }
    v = map[pivot];
  }
  if (x > v) return static_cast<uint32_t>(x > (map[above] + v) * 0.5f ? above : pivot);
  return static_cast<uint32_t>(x < (map[below] + v) * 0.5f ? below : pivot);
}

// torch.linspace(start, end, steps, dtype=float32) on the CPU, as ATen's linspace kernel
// computes it (read from the source, not executed): step = (end - start) / (steps - 1) in fp32;
// element i is start + step * i for i < steps / 2 and end - step * (steps - 1 - i) above. The
// kernel's vectorised path (vec_width floats per vector, two vectors per iteration while
// 2 * vec_width elements remain) instead gives element base + k * step with base computed at the
// vector's first index, so results differ by an ulp for some i once steps >= 2 * vec_width.
// vec_width: 0 = scalar formula only; 8 = AVX2 and torch's generic (non-SIMD) build; 16 = AVX512.
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps, int vec_width);

// How the torch that built bitsandbytes' dynamic map ran linspace (see torch_linspace_f32).
enum class DynamicMapBuild : uint8_t { Avx2, Avx512, Scalar };
constexpr int dynamic_map_vec_width(DynamicMapBuild b) {
  return b == DynamicMapBuild::Avx2 ? 8 : (b == DynamicMapBuild::Avx512 ? 16 : 0);
}

// bitsandbytes functional.create_dynamic_map(signed, max_exponent_bits, total_bits), re-derived
// from its definition: for each exponent i in 0..max_exponent_bits-1, the midpoints of
// linspace(0.1, 1, 2^(i + total_bits - 1 - max_exponent_bits [+1 if unsigned]) + 1) in fp32,
// times fp32(10^(i - max_exponent_bits + 1)) (and their negatives when signed); then the
// 2^(total_bits - 1 - max_exponent_bits) - 1 "additional" items at the last exponent; then 0 and
// 1.0; padded with zeros to 256 entries and sorted ascending. The default (true, 7, 8) is
// bnb's "dynamic" map: 127 negatives, 0 (index 127), 127 positives, 1.0 (index 255).
// Requires 2 <= total_bits <= 8 and 1 <= max_exponent_bits <= total_bits - 1; throws
// lowbit::Error otherwise.
std::vector<float> create_dynamic_map(bool is_signed = true, int max_exponent_bits = 7, int total_bits = 8,
                                      DynamicMapBuild build = DynamicMapBuild::Avx2);

// User codebooks: '/'-separated values (spec option values=...) or a file of whitespace-
// separated numbers (file=PATH). Each number is parsed straight to float32 (correctly rounded).
// Throws lowbit::Error naming `context` on anything that is not a finite number, on fewer than
// 2 or more than 256 values, or on values that are not strictly ascending as float32.
std::vector<float> parse_codebook_values(std::string_view text, char separator, std::string_view context);
std::vector<float> read_codebook_file(const std::string& path);

class TensorFormat;  // formats/tensor_format.hpp

namespace detail {
// Implementations of the codebook tensor formats, for tests that compare them bit for bit:
//   Reference  the scalar code (per-element decision trees, binary searches)
//   Portable   the vectorisable loops (selects only) that the compiler vectorises
//   Native     what make_format uses: the build's SIMD kernels (AVX-512) where compiled in,
//              else Portable
enum class CodebookImpl : uint8_t { Reference, Portable, Native };
std::unique_ptr<TensorFormat> make_codebook_format(std::string_view spec, CodebookImpl impl);

// Double quantisation's code choices as the fast paths run them, n values at a time (simd: the
// build's SIMD version where it has one, else loops with selects):
//   dynamic8_codes            q[i] = bnb_dynamic8_code(map, v[i] * recip)
//   dynamic8_bucketize_codes  q[i] = torch.bucketize(clamp(x, -1, 1), bounds, right=False) over
//                             the 255 ascending bounds, x = v[i] / am if partial else v[i] * recip
void dynamic8_codes(const float* map, const float* v, float recip, int64_t n, uint32_t* q, bool simd);
void dynamic8_bucketize_codes(const float* bounds, const float* v, float am, float recip, bool partial, int64_t n,
                              uint32_t* q, bool simd);
}  // namespace detail

}  // namespace lowbit
