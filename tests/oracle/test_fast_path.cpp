// The vectorised RNE fast path (formats/fast_float.hpp) against the reference codec, over every
// non-negative float32 bit pattern (the fast path handles the sign by OR-ing it back, checked
// on both signs of every boundary below), for each format the fast path serves.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cstdio>
#include <random>

#include "formats/fast_float.hpp"
#include "formats/float_format.hpp"
#include "formats/philox.hpp"

using namespace lowbit;

namespace {

struct Case {
  const char* name;
  FloatFormat f;
};

const Case kCases[] = {{"e2m1", fmt_desc::e2m1}, {"e2m3", fmt_desc::e2m3}, {"e3m2", fmt_desc::e3m2},
                       {"e4m3", fmt_desc::e4m3}, {"e5m2", fmt_desc::e5m2}, {"fp16", fmt_desc::fp16},
                       {"bf16", fmt_desc::bf16}, {"e3m4", FloatFormat{3, 4, 3}}, {"e1m2", FloatFormat{1, 2, 0}}};

// Checks code and value of the fast path against encode_float / decode_float for input bits u.
// decode_float of every code, so the exhaustive loop pays for one reference encode per input.
std::vector<float> decode_table(const FloatFormat& f) {
  std::vector<float> t(size_t{1} << f.total_bits());
  for (uint32_t c = 0; c < t.size(); ++c) t[c] = decode_float(f, c);
  return t;
}

bool agrees(const FloatFormat& f, const std::vector<float>& table, const FastRne& k, Overflow o, uint32_t u, char* msg,
            size_t len) {
  const float x = f32_from_bits(u);
  const uint32_t ref_code = encode_float(f, x, Round::NearestEven, o, NanMode::Cuda);
  const float ref_val = table[ref_code];
  const uint32_t code = k.code(x);
  const float val = k.value(x);
  if (code == ref_code && f32_bits(val) == f32_bits(ref_val)) return true;
  std::snprintf(msg, len, "x=0x%08x: code 0x%x (ref 0x%x), value 0x%08x (ref 0x%08x)", u, code, ref_code,
                f32_bits(val), f32_bits(ref_val));
  return false;
}

}  // namespace

TEST(FastPathExhaustive, AllNonNegativeFloat32Saturating) {
  for (const Case& c : kCases) {
    ASSERT_TRUE(fast_rne_supported(c.f)) << c.name;
    const FastRne k = FastRne::make(c.f, Overflow::Saturate);
    const std::vector<float> table = decode_table(c.f);
    std::atomic<int> failures{0};
    char first[200] = {0};
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t hi = 0; hi < (int64_t{1} << 15); ++hi) {
      char msg[200];
      for (uint32_t lo = 0; lo < (1u << 16); ++lo) {
        const uint32_t u = (static_cast<uint32_t>(hi) << 16) | lo;
        if (!agrees(c.f, table, k, Overflow::Saturate, u, msg, sizeof msg)) {
          if (failures.fetch_add(1) == 0) {
#pragma omp critical
            std::snprintf(first, sizeof first, "%s", msg);
          }
        }
      }
    }
    EXPECT_EQ(failures.load(), 0) << c.name << ": first mismatch " << first;
  }
}

TEST(FastPathExhaustive, BothSignsAndEveryPolicyAtBoundaries) {
  // Every value of the format, the midpoints between neighbours, +-1 ulp of each, specials.
  for (const Case& c : kCases) {
    for (const Overflow o : {Overflow::Saturate, Overflow::Inf, Overflow::NaN}) {
      const FastRne k = FastRne::make(c.f, o);
      const std::vector<float> table = decode_table(c.f);
      std::vector<float> pts = {0.0f, INFINITY, NAN, 3.4e38f, 1e-45f, 1e-40f};
      const uint32_t maxc = c.f.max_finite_code();
      for (uint32_t code = 0; code <= maxc; ++code) {
        const float v = decode_float(c.f, code);
        const float w = code < maxc ? decode_float(c.f, code + 1) : v * 1.25f;
        pts.push_back(v);
        pts.push_back(v + (w - v) / 2);
      }
      char msg[200];
      for (const float p : pts) {
        for (const int d : {-1, 0, 1}) {
          const uint32_t u = f32_bits(p) + static_cast<uint32_t>(d);
          for (const uint32_t sign : {0u, 0x80000000u}) {
            ASSERT_TRUE(agrees(c.f, table, k, o, (u & 0x7fffffffu) | sign, msg, sizeof msg))
                << c.name << " overflow " << static_cast<int>(o) << ": " << msg;
          }
        }
      }
    }
  }
}

TEST(FastPathStochastic, MatchesReferenceOnEvery997thInput) {
  // Stochastic rounding fast path (value_sr / code_sr) vs encode_float(Round::Stochastic) with
  // the same random bits, on 4.3 million inputs spread over all 2^32 bit patterns.
  for (const Case& c : kCases) {
    for (const Overflow o : {Overflow::Saturate, Overflow::Inf}) {
      const FastRne k = FastRne::make(c.f, o);
      std::atomic<int> failures{0};
#pragma omp parallel for schedule(static)
      for (int64_t u = 0; u < (int64_t{1} << 32); u += 997) {
        const float x = f32_from_bits(static_cast<uint32_t>(u));
        const uint32_t rb = sr_bits(42, static_cast<uint64_t>(u));
        const uint32_t ref = encode_float(c.f, x, Round::Stochastic, o, NanMode::Cuda, rb);
        if (k.code_sr(x, rb) != ref || f32_bits(k.value_sr(x, rb)) != f32_bits(decode_float(c.f, ref))) {
          if (failures.fetch_add(1) < 5) {
#pragma omp critical
            ADD_FAILURE() << c.name << ": x=0x" << std::hex << u << " rbits=0x" << rb << " code 0x" << k.code_sr(x, rb)
                          << " ref 0x" << ref;
          }
        }
      }
      EXPECT_EQ(failures.load(), 0) << c.name;
    }
  }
}
