// formats/element_rules.hpp is the per-group / per-element reference the CUDA kernels run: it
// must give the CPU element formats' codes, scales, zero points and values bit for bit, fast
// paths included, on data with ties, specials and degenerate groups.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <variant>

#include "formats/element_rules.hpp"
#include "formats/registry.hpp"

namespace lowbit {
namespace {

std::vector<float> test_data(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(g) * std::ldexp(1.0f, static_cast<int>(g() % 9) - 4);
  // A few exact ties, zeros, subnormals; a zero group and a negative-only group at the start.
  for (int64_t i = 0; i < n; i += 37) x[i] = static_cast<float>(static_cast<int>(g() % 15) - 7) * 0.5f;
  for (int i = 0; i < 16 && i < n; ++i) x[i] = 0.0f;
  for (int i = 16; i < 32 && i < n; ++i) x[i] = -std::ldexp(1.0f, -140 + i);
  if (n > 300) {
    x[200] = std::numeric_limits<float>::quiet_NaN();
    x[290] = -std::numeric_limits<float>::infinity();
  }
  return x;
}

int64_t scale_index(const ElementParams& p, int64_t i, int64_t cols) {
  switch (p.gran) {
    case Granularity::Group: return i / p.group;
    case Granularity::Row: return i / cols;
    case Granularity::Col: return i % cols;
    default: return 0;
  }
}

TEST(ElementRules, EqualTheCpuFormatsBitForBit) {
  const char* specs[] = {"int8", "int4", "uint8", "fp8_e4m3", "fp8_e5m2:overflow=inf", "fp4_e2m1", "e3m4:round=sr:seed=3",
                         "fp8_e4m3:nan=mldtypes", "int4:g16", "int4:g32:scale=fp16", "int8:row", "int4:col",
                         "int3:tensor:scale=bf16", "uint4:g32", "int4:g64:asym:scale=fp16", "int4:g16:sym=full",
                         "int4:g16:round=sr:seed=5", "int4:g16:round=away", "fp4_e2m1:g16:scale=e4m3",
                         "fp8_e4m3:g32:scale=e8m0", "fp6_e2m3:g32:scale=e8m0:op=mul", "fp8_e5m2:row:round=sr:seed=9",
                         "fp4_e2m1:tensor", "fp6_e3m2:col:scale=fp16", "int8:g128:op=mul", "uint8:row:round=sr:seed=1"};
  const int64_t rows = 6, cols = 512, n = rows * cols;
  for (uint32_t seed : {1u, 2u}) {
    const std::vector<float> x = test_data(n, seed);
    for (const char* spec : specs) {
      SCOPED_TRACE(spec);
      const auto f = make_format(spec);
      const ElementParams p = std::get<ElementParams>(f->params());
      const PackedTensor pk = f->encode(x, {rows, cols});
      const std::vector<uint32_t> codes = f->unpacked_codes(pk);
      std::vector<float> fq(x.size());
      f->fake_quant(x, {rows, cols}, fq);
      // Scales from the rule.
      std::vector<ElementScale> scales;
      if (p.gran != Granularity::None) {
        const int64_t ns = p.gran == Granularity::Group ? n / p.group
                           : p.gran == Granularity::Row ? rows
                           : p.gran == Granularity::Col ? cols
                                                        : 1;
        std::vector<ElementRange> r(static_cast<size_t>(ns));
        for (int64_t i = 0; i < n; ++i) r[static_cast<size_t>(scale_index(p, i, cols))].add(x[i]);
        for (const auto& g : r) scales.push_back(element_group_scale(p, g));
        const std::vector<uint32_t> sc = section_u32(pk.at("scales"));
        ASSERT_EQ(sc.size(), scales.size());
        for (size_t g = 0; g < sc.size(); ++g) ASSERT_EQ(sc[g], scales[g].code) << "scale " << g;
        if (p.asym) {
          const std::vector<uint32_t> zp = section_u32(pk.at("zero_points"));
          for (size_t g = 0; g < zp.size(); ++g) ASSERT_EQ(zp[g], static_cast<uint32_t>(scales[g].zp)) << "zp " << g;
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        const ElementScale* s = scales.empty() ? nullptr : &scales[static_cast<size_t>(scale_index(p, i, cols))];
        const uint32_t c = element_encode(p, x[i], s, static_cast<uint64_t>(i));
        ASSERT_EQ(c, codes[i]) << "element " << i << " x=" << x[i];
        const float v = element_value(p, c, s);
        uint32_t a, b;
        std::memcpy(&a, &v, 4);
        std::memcpy(&b, &fq[i], 4);
        ASSERT_EQ(a, b) << "value " << i << " x=" << x[i] << ": " << v << " vs " << fq[i];
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
