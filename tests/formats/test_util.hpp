// Shared assertions of the format tests: bit-for-bit equality of float vectors and of packed
// tensors (every section's name, dtype, shape and bytes).
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/hd.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit::testing {

inline void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(f32_bits(a[i]), f32_bits(b[i])) << what << " element " << i << ": " << a[i] << " vs " << b[i];
}

inline void expect_same_packed(const PackedTensor& a, const PackedTensor& b, const std::string& what) {
  EXPECT_EQ(a.spec, b.spec) << what;
  EXPECT_EQ(a.shape, b.shape) << what;
  EXPECT_EQ(a.code_bits, b.code_bits) << what;
  ASSERT_EQ(a.sections.size(), b.sections.size()) << what;
  for (size_t s = 0; s < a.sections.size(); ++s) {
    const Section& sa = a.sections[s];
    const Section& sb = b.sections[s];
    EXPECT_EQ(sa.name, sb.name) << what;
    EXPECT_EQ(sa.dtype, sb.dtype) << what << " " << sa.name;
    EXPECT_EQ(sa.shape, sb.shape) << what << " " << sa.name;
    ASSERT_EQ(sa.bytes.size(), sb.bytes.size()) << what << " " << sa.name;
    for (size_t i = 0; i < sa.bytes.size(); ++i)
      ASSERT_EQ(sa.bytes[i], sb.bytes[i]) << what << " section " << sa.name << " byte " << i;
  }
}

}  // namespace lowbit::testing
