// Philox4x32-10 counter-based generator (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC'11; constants as in Random123). Stateless: the random bits of element i under a
// seed are a pure function of (seed, i), so CPU and GPU produce identical stochastic rounding.
#pragma once
#include <array>
#include <cstdint>

#include "formats/hd.hpp"

namespace lowbit {

struct Philox4x32 {
  static constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  static constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

  // Ten rounds over counter c with key k; returns the four output words.
  LOWBIT_HD static void generate(const uint32_t c_in[4], const uint32_t k_in[2], uint32_t out[4]) {
    uint32_t c0 = c_in[0], c1 = c_in[1], c2 = c_in[2], c3 = c_in[3];
    uint32_t k0 = k_in[0], k1 = k_in[1];
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
      const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
      const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
      const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
      c0 = hi1 ^ c1 ^ k0;
      c1 = lo1;
      c2 = hi0 ^ c3 ^ k1;
      c3 = lo0;
      k0 += kW0;
      k1 += kW1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
  }
};

// The 32 random bits used to stochastically round element `index` under `seed`:
// word (index mod 4) of Philox4x32-10 with counter = (index / 4 as two 32-bit words, 0, 0) and
// key = (seed low word, seed high word). One generator call serves four consecutive elements.
LOWBIT_HD uint32_t sr_bits(uint64_t seed, uint64_t index) {
  const uint64_t block = index >> 2;
  const uint32_t ctr[4] = {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u};
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  uint32_t out[4];
  Philox4x32::generate(ctr, key, out);
  return out[index & 3];
}

// sr_bits(seed, first + j) for j in [0, n), written to out; whole counter blocks are generated
// in a loop the compiler vectorises.
inline void sr_bits_fill(uint64_t seed, uint64_t first, int64_t n, uint32_t* out) {
  int64_t j = 0;
  for (; j < n && ((first + j) & 3) != 0; ++j) out[j] = sr_bits(seed, first + j);
  const int64_t blocks = (n - j) / 4;
  const uint64_t b0 = (first + j) >> 2;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  uint32_t* __restrict o = out + j;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t blk = b0 + static_cast<uint64_t>(b);
    uint32_t c0 = static_cast<uint32_t>(blk), c1 = static_cast<uint32_t>(blk >> 32), c2 = 0, c3 = 0;
    uint32_t key0 = k0, key1 = k1;
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = static_cast<uint64_t>(Philox4x32::kM0) * c0;
      const uint64_t p1 = static_cast<uint64_t>(Philox4x32::kM1) * c2;
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ key0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ key1;
      c1 = static_cast<uint32_t>(p1);
      c3 = static_cast<uint32_t>(p0);
      c0 = n0;
      c2 = n2;
      key0 += Philox4x32::kW0;
      key1 += Philox4x32::kW1;
    }
    o[4 * b] = c0;
    o[4 * b + 1] = c1;
    o[4 * b + 2] = c2;
    o[4 * b + 3] = c3;
  }
  for (j += 4 * blocks; j < n; ++j) out[j] = sr_bits(seed, first + j);
}

}  // namespace lowbit
