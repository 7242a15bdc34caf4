// Exhaustive check of the FP32 description (fmt_desc::fp32) over all 2^32 codes: decoding a
// code gives the float32 with those bits (the value definition of FORMATS.md §2.1 for E8M23),
// and encoding a finite float32 gives its own bits back (RNE on every pattern; RU, RD, RZ with
// the three overflow policies on every 61st): nothing to round, nothing overflows, ±0 keeps its
// sign. ±Inf is itself under Overflow::Inf and ±max under Saturate. NaN: NanMode::Cuda gives
// the canonical 0x7FFFFFFF, NanMode::MlDtypes the quiet canonical NaN with the input's sign
// (0x7FC00000 / 0xFFC00000; rounding.hpp). Needs no CUDA; lives here because it is exhaustive
// (ctest label `exhaustive`).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "formats/float_format.hpp"

namespace {

using lowbit::NanMode;
using lowbit::Overflow;
using lowbit::Round;

TEST(Fp32Exhaustive, DecodeAndEncodeAreIdentity) {
  const lowbit::FloatFormat& f = lowbit::fmt_desc::fp32;
  std::atomic<uint64_t> n_bad{0};
  std::vector<uint32_t> bad;
  std::mutex bad_mutex;
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t chunk = 0; chunk < (int64_t{1} << 16); ++chunk) {
    uint64_t local_bad = 0;
    for (uint32_t lo = 0; lo < (1u << 16); ++lo) {
      const uint32_t c = static_cast<uint32_t>(chunk) << 16 | lo;
      const float x = lowbit::f32_from_bits(c);
      const float d = lowbit::decode_float(f, c);
      bool ok;
      if ((c & 0x7fffffffu) > 0x7f800000u) {
        ok = std::isnan(d) && lowbit::encode_float(f, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda) == 0x7fffffffu &&
             lowbit::encode_float(f, x, Round::NearestEven, Overflow::Inf, NanMode::MlDtypes) ==
                 ((c & 0x80000000u) | 0x7fc00000u);
      } else if ((c & 0x7fffffffu) == 0x7f800000u) {
        // ±Inf is itself under Overflow::Inf whatever the rounding; Saturate gives ±max.
        ok = lowbit::f32_bits(d) == c &&
             lowbit::encode_float(f, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda) == c &&
             lowbit::encode_float(f, x, Round::TowardZero, Overflow::Inf, NanMode::Cuda) == c &&
             lowbit::encode_float(f, x, Round::Up, Overflow::Saturate, NanMode::Cuda) == (c - 1);
      } else {
        ok = lowbit::f32_bits(d) == c && lowbit::encode_float(f, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda) == c;
        // The other modes/policies on every 61st pattern (they share the exact path; this keeps
        // the test at a few seconds).
        if (ok && lo % 61 == 0)
          ok = lowbit::encode_float(f, x, Round::Up, Overflow::Saturate, NanMode::Cuda) == c &&
               lowbit::encode_float(f, x, Round::Down, Overflow::NaN, NanMode::Cuda) == c &&
               lowbit::encode_float(f, x, Round::TowardZero, Overflow::Saturate, NanMode::Cuda) == c;
      }
      if (!ok && ++local_bad <= 10) {
        std::lock_guard<std::mutex> lock(bad_mutex);
        bad.push_back(c);
      }
    }
    if (local_bad) n_bad += local_bad;
  }
  std::sort(bad.begin(), bad.end());
  for (size_t i = 0; i < bad.size() && i < 10; ++i) {
    const uint32_t c = bad[i];
    const float x = lowbit::f32_from_bits(c);
    ADD_FAILURE() << fmt::format(
        "fp32 code {:#010x}: decode {:#010x}; encode rne/inf {:#010x}, ru/sat {:#010x}, rd/nan {:#010x}, rne mldtypes {:#010x}", c,
        lowbit::f32_bits(lowbit::decode_float(f, c)),
        lowbit::encode_float(f, x, Round::NearestEven, Overflow::Inf, NanMode::Cuda),
        lowbit::encode_float(f, x, Round::Up, Overflow::Saturate, NanMode::Cuda),
        lowbit::encode_float(f, x, Round::Down, Overflow::NaN, NanMode::Cuda),
        lowbit::encode_float(f, x, Round::NearestEven, Overflow::Inf, NanMode::MlDtypes));
  }
  EXPECT_EQ(n_bad.load(), 0u) << "fp32 codes that are not the identity";
}

}  // namespace
