// Exhaustive oracle for the scalar minifloat codec (DESIGN.md "Testing", FORMATS.md §2.7, §2.8,
// §10): every one of the 2^32 float32 bit patterns is encoded by lowbit::encode_float and by
// the CUDA 13 toolkit's host conversion functions (cuda_fp4.h / cuda_fp6.h / cuda_fp8.h /
// cuda_fp16.h / cuda_bf16.h, compiled by the host compiler; no GPU involved), and every code
// of every format is decoded by both.
//
// Encodes must agree bit for bit, NaN inputs included: no by-class exception is needed, since
// with NanMode::Cuda lowbit emits CUDA's float-entry NaN codes exactly (sign dropped): E4M3
// 0x7F, E5M2 0x7F (CUDA canonicalises the input to 0x7FFFFFFF, then 0x7E | top mantissa bits),
// E8M0 0xFF, FP16 0x7FFF, BF16 0x7FFF, and +max for FP4 (0x7) / FP6 (0x1F).
// Decodes agree bit for bit on the float32 result except NaN, compared by class: through
// __half2float every E4M3/E5M2/FP16 NaN code becomes float 0x7FFFFFFF (sign and payload
// dropped, e.g. E4M3 0xFF, E5M2 0xFD, fp16 0xFC01), through __bfloat162float E8M0 0xFF
// (bf16 0x7FFF) becomes 0x7FFF0000 and BF16 NaN codes keep their bits in the upper half;
// lowbit gives 0x7FC00000 / 0xFFC00000 (sign of the code kept, payload dropped).
//
// Mode correspondence (lowbit ↔ CUDA), all with NanMode::Cuda:
//   FP4/FP6  Round::NearestEven ↔ cudaRoundNearest, Round::TowardZero ↔ cudaRoundZero;
//            Overflow::Saturate (the CUDA FP4/FP6 conversions always saturate).
//   FP8      Overflow::Saturate ↔ __NV_SATFINITE, Overflow::Inf ↔ __NV_NOSAT (RN only).
//   E8M0     Round::TowardZero ↔ cudaRoundZero, Round::Up ↔ cudaRoundPosInf;
//            Overflow::Saturate ↔ __NV_SATFINITE; __NV_NOSAT ↔ Overflow::NaN *and* Overflow::Inf
//            (E8M0 has no Inf, so Overflow::Inf falls back to the NaN code 0xFF; both are
//            checked in the same pass).
//   FP16/BF16  __float2half_rn / __float2bfloat16_rn ↔ Round::NearestEven, Overflow::Inf.
//
// Work: 2^16 chunks of 2^16 inputs under OpenMP; on failure the (up to) 10 smallest mismatching
// inputs are printed in hex with both outputs, plus the total mismatch count.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/float_format.hpp"

#if defined(LOWBIT_HAVE_CUDA_HEADERS)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp4.h>
#include <cuda_fp6.h>
#include <cuda_fp8.h>
#endif

namespace {

#if defined(LOWBIT_HAVE_CUDA_HEADERS)

using lowbit::FloatFormat;
using lowbit::NanMode;
using lowbit::Overflow;
using lowbit::Round;
namespace fd = lowbit::fmt_desc;

constexpr int kMaxReport = 10;

struct Mismatch {
  uint32_t input;
  uint32_t ours;
  uint32_t theirs;
};

// Runs check(bits, ours, theirs) -> bool over all 2^32 inputs; ours(x)/theirs(x) return codes.
// Reports the smallest kMaxReport mismatching inputs and the total count as test failures.
template <class Ours, class Theirs>
void exhaust_float32(const std::string& label, int code_hex_digits, Ours ours, Theirs theirs) {
  std::atomic<uint64_t> n_bad{0};
  std::vector<Mismatch> bad;
  std::mutex bad_mutex;
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t chunk = 0; chunk < (int64_t{1} << 16); ++chunk) {
    const uint32_t base = static_cast<uint32_t>(chunk) << 16;
    uint64_t local_bad = 0;
    for (uint32_t lo = 0; lo < (1u << 16); ++lo) {
      const uint32_t bits = base | lo;
      const float x = lowbit::f32_from_bits(bits);
      const uint32_t a = ours(x);
      const uint32_t b = theirs(x);
      if (a != b) {
        // Within a chunk inputs increase, so the first kMaxReport of each chunk contain the
        // kMaxReport smallest overall.
        if (++local_bad <= kMaxReport) {
          std::lock_guard<std::mutex> lock(bad_mutex);
          bad.push_back({bits, a, b});
        }
      }
    }
    if (local_bad) n_bad += local_bad;
  }
  std::sort(bad.begin(), bad.end(), [](const Mismatch& p, const Mismatch& q) { return p.input < q.input; });
  for (size_t i = 0; i < bad.size() && i < static_cast<size_t>(kMaxReport); ++i) {
    const float x = lowbit::f32_from_bits(bad[i].input);
    ADD_FAILURE() << fmt::format("{}: x = {:#010x} ({:a}, {}): lowbit {:#0{}x}, CUDA {:#0{}x}", label, bad[i].input,
                                 x, x, bad[i].ours, code_hex_digits + 2, bad[i].theirs, code_hex_digits + 2);
  }
  EXPECT_EQ(n_bad.load(), 0u) << label << ": number of mismatching float32 inputs out of 2^32";
}

// Compares decode_float against a CUDA decode (code -> float) for every code of a format.
template <class Theirs>
void exhaust_codes(const std::string& label, const FloatFormat& f, Theirs theirs) {
  const uint32_t n = 1u << f.total_bits();
  int n_bad = 0;
  int n_nan = 0;
  for (uint32_t c = 0; c < n; ++c) {
    const float ours = lowbit::decode_float(f, c);
    const float cuda = theirs(c);
    const bool same = (std::isnan(ours) && std::isnan(cuda)) ||
                      (lowbit::f32_bits(ours) == lowbit::f32_bits(cuda));
    n_nan += std::isnan(cuda) ? 1 : 0;
    if (!same && ++n_bad <= kMaxReport) {
      ADD_FAILURE() << fmt::format("{}: code {:#x}: lowbit {} ({:#010x}), CUDA {} ({:#010x})", label, c, ours,
                                   lowbit::f32_bits(ours), cuda, lowbit::f32_bits(cuda));
    }
  }
  EXPECT_EQ(n_bad, 0) << label << ": mismatching codes";
  // Guard against a vacuous comparison (e.g. both sides returning NaN for everything).
  EXPECT_LT(n_nan, static_cast<int>(n / 2)) << label;
}

// ---- CUDA side ----------------------------------------------------------------------------

inline uint32_t cuda_fp8(float x, __nv_saturation_t sat, __nv_fp8_interpretation_t kind) {
  return __nv_cvt_float_to_fp8(x, sat, kind);
}
inline uint32_t cuda_fp6(float x, __nv_fp6_interpretation_t kind, cudaRoundMode r) {
  return __nv_cvt_float_to_fp6(x, kind, r);
}
inline uint32_t cuda_fp4(float x, cudaRoundMode r) { return __nv_cvt_float_to_fp4(x, __NV_E2M1, r); }
inline uint32_t cuda_e8m0(float x, __nv_saturation_t sat, cudaRoundMode r) {
  return __nv_cvt_float_to_e8m0(x, sat, r);
}
inline uint32_t cuda_fp16(float x) { return static_cast<__half_raw>(__float2half_rn(x)).x; }
inline uint32_t cuda_bf16(float x) { return static_cast<__nv_bfloat16_raw>(__float2bfloat16_rn(x)).x; }

inline float half_raw_to_float(__half_raw h) { return __half2float(__half(h)); }
inline float bf16_raw_to_float(__nv_bfloat16_raw h) { return __bfloat162float(__nv_bfloat16(h)); }

#endif  // LOWBIT_HAVE_CUDA_HEADERS

}  // namespace

// Each test body runs only where the CUDA headers were found at configure time.
#if defined(LOWBIT_HAVE_CUDA_HEADERS)
#define LOWBIT_ORACLE_BODY(...) __VA_ARGS__
#else
#define LOWBIT_ORACLE_BODY(...) \
  GTEST_SKIP() << "CUDA toolkit headers not found at configure time: exhaustive oracle checks skipped"
#endif

// ---- FP4 E2M1 -----------------------------------------------------------------------------

TEST(CudaOracleE2M1, EncodeRoundNearest) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E2M1 RN", 1,
      [](float x) { return lowbit::encode_float(fd::e2m1, x, Round::NearestEven, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp4(x, cudaRoundNearest); }));
}

TEST(CudaOracleE2M1, EncodeRoundZero) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E2M1 RZ", 1,
      [](float x) { return lowbit::encode_float(fd::e2m1, x, Round::TowardZero, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp4(x, cudaRoundZero); }));
}

TEST(CudaOracleE2M1, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("E2M1 decode", fd::e2m1, [](uint32_t c) {
    return half_raw_to_float(__nv_cvt_fp4_to_halfraw(static_cast<__nv_fp4_storage_t>(c), __NV_E2M1));
  }));
}

// ---- FP6 E2M3 / E3M2 ----------------------------------------------------------------------

TEST(CudaOracleE2M3, EncodeRoundNearest) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E2M3 RN", 2,
      [](float x) { return lowbit::encode_float(fd::e2m3, x, Round::NearestEven, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp6(x, __NV_E2M3, cudaRoundNearest); }));
}

TEST(CudaOracleE2M3, EncodeRoundZero) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E2M3 RZ", 2,
      [](float x) { return lowbit::encode_float(fd::e2m3, x, Round::TowardZero, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp6(x, __NV_E2M3, cudaRoundZero); }));
}

TEST(CudaOracleE2M3, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("E2M3 decode", fd::e2m3, [](uint32_t c) {
    return half_raw_to_float(__nv_cvt_fp6_to_halfraw(static_cast<__nv_fp6_storage_t>(c), __NV_E2M3));
  }));
}

TEST(CudaOracleE3M2, EncodeRoundNearest) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E3M2 RN", 2,
      [](float x) { return lowbit::encode_float(fd::e3m2, x, Round::NearestEven, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp6(x, __NV_E3M2, cudaRoundNearest); }));
}

TEST(CudaOracleE3M2, EncodeRoundZero) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E3M2 RZ", 2,
      [](float x) { return lowbit::encode_float(fd::e3m2, x, Round::TowardZero, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp6(x, __NV_E3M2, cudaRoundZero); }));
}

TEST(CudaOracleE3M2, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("E3M2 decode", fd::e3m2, [](uint32_t c) {
    return half_raw_to_float(__nv_cvt_fp6_to_halfraw(static_cast<__nv_fp6_storage_t>(c), __NV_E3M2));
  }));
}

// ---- FP8 E4M3 / E5M2 ----------------------------------------------------------------------

TEST(CudaOracleE4M3, EncodeSatfinite) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E4M3 SATFINITE", 2,
      [](float x) { return lowbit::encode_float(fd::e4m3, x, Round::NearestEven, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp8(x, __NV_SATFINITE, __NV_E4M3); }));
}

TEST(CudaOracleE4M3, EncodeNosat) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E4M3 NOSAT", 2,
      [](float x) { return lowbit::encode_float(fd::e4m3, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda); },
      [](float x) { return cuda_fp8(x, __NV_NOSAT, __NV_E4M3); }));
}

TEST(CudaOracleE4M3, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("E4M3 decode", fd::e4m3, [](uint32_t c) {
    return half_raw_to_float(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(c), __NV_E4M3));
  }));
}

TEST(CudaOracleE5M2, EncodeSatfinite) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E5M2 SATFINITE", 2,
      [](float x) { return lowbit::encode_float(fd::e5m2, x, Round::NearestEven, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_fp8(x, __NV_SATFINITE, __NV_E5M2); }));
}

TEST(CudaOracleE5M2, EncodeNosat) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E5M2 NOSAT", 2,
      [](float x) { return lowbit::encode_float(fd::e5m2, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda); },
      [](float x) { return cuda_fp8(x, __NV_NOSAT, __NV_E5M2); }));
}

TEST(CudaOracleE5M2, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("E5M2 decode", fd::e5m2, [](uint32_t c) {
    return half_raw_to_float(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(c), __NV_E5M2));
  }));
}

// ---- E8M0 ---------------------------------------------------------------------------------
// NOSAT cases check Overflow::NaN and Overflow::Inf against the same CUDA code; the lowbit
// side packs both codes into one word (NaN mode in the low byte, Inf mode in the next) and the
// CUDA code is duplicated, so a mismatch print shows which lowbit mode disagreed.

TEST(CudaOracleE8M0, EncodeRoundZeroSatfinite) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E8M0 RZ SATFINITE", 2,
      [](float x) { return lowbit::encode_float(fd::e8m0, x, Round::TowardZero, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_e8m0(x, __NV_SATFINITE, cudaRoundZero); }));
}

TEST(CudaOracleE8M0, EncodeRoundZeroNosat) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E8M0 RZ NOSAT (low byte: Overflow::NaN, high byte: Overflow::Inf)", 4,
      [](float x) {
        return lowbit::encode_float(fd::e8m0, x, Round::TowardZero, Overflow::NaN, NanMode::Cuda) |
               (lowbit::encode_float(fd::e8m0, x, Round::TowardZero, Overflow::Inf, NanMode::Cuda) << 8);
      },
      [](float x) { return cuda_e8m0(x, __NV_NOSAT, cudaRoundZero) * 0x101u; }));
}

TEST(CudaOracleE8M0, EncodeRoundUpSatfinite) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E8M0 RP SATFINITE", 2,
      [](float x) { return lowbit::encode_float(fd::e8m0, x, Round::Up, Overflow::Saturate, NanMode::Cuda); },
      [](float x) { return cuda_e8m0(x, __NV_SATFINITE, cudaRoundPosInf); }));
}

TEST(CudaOracleE8M0, EncodeRoundUpNosat) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "E8M0 RP NOSAT (low byte: Overflow::NaN, high byte: Overflow::Inf)", 4,
      [](float x) {
        return lowbit::encode_float(fd::e8m0, x, Round::Up, Overflow::NaN, NanMode::Cuda) |
               (lowbit::encode_float(fd::e8m0, x, Round::Up, Overflow::Inf, NanMode::Cuda) << 8);
      },
      [](float x) { return cuda_e8m0(x, __NV_NOSAT, cudaRoundPosInf) * 0x101u; }));
}

TEST(CudaOracleE8M0, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("E8M0 decode", fd::e8m0, [](uint32_t c) {
    return bf16_raw_to_float(__nv_cvt_e8m0_to_bf16raw(static_cast<__nv_fp8_storage_t>(c)));
  }));
}

// ---- FP16 / BF16 --------------------------------------------------------------------------

TEST(CudaOracleFP16, EncodeRoundNearest) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "FP16 RNE", 4,
      [](float x) { return lowbit::encode_float(fd::fp16, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda); },
      [](float x) { return cuda_fp16(x); }));
}

TEST(CudaOracleFP16, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("FP16 decode", fd::fp16, [](uint32_t c) {
    __half_raw h;
    h.x = static_cast<unsigned short>(c);
    return half_raw_to_float(h);
  }));
}

TEST(CudaOracleBF16, EncodeRoundNearest) {
  LOWBIT_ORACLE_BODY(exhaust_float32(
      "BF16 RNE", 4,
      [](float x) { return lowbit::encode_float(fd::bf16, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda); },
      [](float x) { return cuda_bf16(x); }));
}

TEST(CudaOracleBF16, DecodeAllCodes) {
  LOWBIT_ORACLE_BODY(exhaust_codes("BF16 decode", fd::bf16, [](uint32_t c) {
    __nv_bfloat16_raw h;
    h.x = static_cast<unsigned short>(c);
    return bf16_raw_to_float(h);
  }));
}
