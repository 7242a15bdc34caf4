// Tests of the Philox4x32-10 generator and the stochastic-rounding bit stream
// (formats/philox.hpp): Random123 known-answer vectors, the documented (seed, index) → word
// mapping of sr_bits, and a chi-square uniformity check.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <set>

#include "formats/philox.hpp"

namespace {

using lowbit::Philox4x32;
using lowbit::sr_bits;

std::array<uint32_t, 4> philox(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  std::array<uint32_t, 4> out{};
  Philox4x32::generate(ctr.data(), key.data(), out.data());
  return out;
}

TEST(Philox, Random123KnownAnswers) {
  // Random123 kat_vectors, philox4x32 with 10 rounds.
  EXPECT_EQ(philox({0, 0, 0, 0}, {0, 0}), (std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (std::array<uint32_t, 4>{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, SrBitsWordMapping) {
  // Element i uses word i % 4 of Philox(counter = (i / 4 low, i / 4 high, 0, 0),
  // key = (seed low, seed high)).
  for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{0x0123456789abcdefull}, ~uint64_t{0}}) {
    const std::array<uint32_t, 2> key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
    for (uint64_t base : {uint64_t{0}, uint64_t{4096}, uint64_t{0xfffffffcull}, uint64_t{0x400000000ull}, uint64_t{0x123456789abcull << 2}}) {
      for (uint64_t i = base; i < base + 12; ++i) {
        const uint64_t block = i / 4;
        const auto words = philox({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0, 0}, key);
        EXPECT_EQ(sr_bits(seed, i), words[i % 4]) << "seed " << seed << " index " << i;
      }
    }
  }
  // Seed 0, indices 0..3: the first known-answer vector.
  EXPECT_EQ(sr_bits(0, 0), 0x6627e8d5u);
  EXPECT_EQ(sr_bits(0, 1), 0xe169c58du);
  EXPECT_EQ(sr_bits(0, 2), 0xbc57ac4cu);
  EXPECT_EQ(sr_bits(0, 3), 0x9b00dbd8u);
  // The high word of the block index reaches the counter: index 2^34 is block 2^32.
  EXPECT_NE(sr_bits(5, uint64_t{1} << 34), sr_bits(5, 0));
  EXPECT_NE(sr_bits(uint64_t{1} << 32, 0), sr_bits(0, 0));  // the seed's high word reaches the key
}

TEST(Philox, TopFourBitsAreUniform) {
  // 16 bins over 1e6 draws: chi-square with 15 degrees of freedom has mean 15 and standard
  // deviation 5.5; 50 is exceeded with probability about 1e-5.
  constexpr int kN = 1000000;
  for (uint64_t seed : {uint64_t{0x0123456789abcdefull}, uint64_t{7}}) {
    int64_t bins[16] = {};
    for (int i = 0; i < kN; ++i) ++bins[sr_bits(seed, i) >> 28];
    const double expected = kN / 16.0;
    double chi2 = 0;
    for (int64_t b : bins) chi2 += (b - expected) * (b - expected) / expected;
    EXPECT_LT(chi2, 50.0) << "seed " << seed;
    EXPECT_GT(chi2, 1.0) << "seed " << seed << ": suspiciously uniform";
  }
  // No repeats among the first 65536 words (a birthday collision among 2^16 uniform 32-bit words
  // happens with probability ~0.4, so compare full 64-bit pairs of consecutive words).
  std::set<uint64_t> seen;
  for (uint64_t i = 0; i < 65536; i += 2) seen.insert(uint64_t{sr_bits(9, i)} << 32 | sr_bits(9, i + 1));
  EXPECT_EQ(seen.size(), 32768u);
}

}  // namespace
