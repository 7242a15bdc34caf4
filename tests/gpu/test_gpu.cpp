// The cross-check harness (CPU-only parts run everywhere) and the CUDA kernels against the CPU
// reference (skipped, with the reason, where no GPU is usable — e.g. in CI).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "gpu/gpu.hpp"
#include "sim/crosscheck.hpp"

namespace lowbit {
namespace {

TEST(Crosscheck, TheCpuAgreesWithItselfOnTheAdversarialSet) {
  for (const char* spec : {"int4:g64", "mxfp4", "nvfp4", "nf4", "lzs4:g16", "fp8_e4m3"}) {
    const auto f = make_format(spec);
    const Shape s = crosscheck_shape(*f, 1 << 14);
    const std::vector<float> x = crosscheck_inputs(*f, s, 3);
    const EncodeFn self = [&](std::span<const float> v, const Shape& sh) { return f->encode(v, sh); };
    const CrosscheckReport r = crosscheck_encode(*f, self, x, s);
    EXPECT_TRUE(r.ok()) << spec;
    EXPECT_EQ(r.elements, shape_numel(s));
    // The input set holds what it promises: NaN, both infinities, zeros, -0, ties.
    int nan = 0, pinf = 0, ninf = 0, nz = 0;
    for (float v : x) {
      nan += std::isnan(v);
      pinf += v == INFINITY;
      ninf += v == -INFINITY;
      nz += v == 0.0f && std::signbit(v);
    }
    EXPECT_GT(nan, 0);
    EXPECT_GT(pinf, 0);
    EXPECT_GT(ninf, 0);
    EXPECT_GT(nz, 0);
  }
}

TEST(Crosscheck, ReportsAFlippedCodeAndScaleInHex) {
  const auto f = make_format("int4:g16:scale=fp16");
  const Shape s{4, 64};
  const std::vector<float> x = crosscheck_inputs(*f, s, 5);
  const EncodeFn broken = [&](std::span<const float> v, const Shape& sh) {
    PackedTensor p = f->encode(v, sh);
    p.sections[0].bytes[3] ^= 0x10;  // element 7's code (high nibble of byte 3)
    p.sections[1].bytes[2] ^= 0x01;  // scale 1, low byte
    return p;
  };
  const CrosscheckReport r = crosscheck_encode(*f, broken, x, s);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.code_mismatches, 1);
  EXPECT_EQ(r.byte_mismatches, 1);
  EXPECT_EQ(r.section_mismatches, 1);
  ASSERT_GE(r.first.size(), 2u);
  EXPECT_NE(r.first[0].find("element 7 "), std::string::npos) << r.first[0];
  bool scale_line = false;
  for (const auto& l : r.first) scale_line |= l.find("section 'scales' entry 1") != std::string::npos;
  EXPECT_TRUE(scale_line);
  // Layout differences are errors, not mismatches.
  const EncodeFn wrong_layout = [&](std::span<const float> v, const Shape& sh) {
    PackedTensor p = f->encode(v, sh);
    p.sections.pop_back();
    return p;
  };
  EXPECT_THROW(crosscheck_encode(*f, wrong_layout, x, s), Error);
}

TEST(Crosscheck, BitPatternChunksCoverTheirRange) {
  std::vector<float> v(5);
  bit_pattern_chunk(0x7f7ffffeu, v);
  uint32_t u;
  std::memcpy(&u, &v[4], 4);
  EXPECT_EQ(u, 0x7f800002u);
  EXPECT_TRUE(std::isinf(v[2]));
}

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!gpu::available(&why)) GTEST_SKIP() << "no GPU: " << why;
  }
};

TEST_F(Gpu, ElementFormatsMatchTheCpuOnTheAdversarialSet) {
  for (const char* spec :
       {"int8", "int4", "uint8", "fp8_e4m3", "fp8_e5m2:overflow=inf", "fp4_e2m1", "fp6_e2m3", "fp6_e3m2", "fp16", "bf16",
        "e8m0", "e3m4:round=sr:seed=3", "fp8_e4m3:nan=mldtypes", "int4:g16", "int4:g64:scale=fp16", "int8:row",
        "int4:col", "int3:tensor:scale=bf16", "uint4:g32", "int4:g64:asym:scale=fp16", "int4:g16:sym=full",
        "int4:g16:round=sr:seed=5", "int4:g16:round=away", "fp4_e2m1:g16:scale=e4m3", "fp8_e4m3:g32:scale=e8m0",
        "fp6_e2m3:g32:scale=e8m0:op=mul", "fp8_e5m2:row:round=sr:seed=9", "fp4_e2m1:tensor", "int8:g128:op=mul"}) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    ASSERT_TRUE(gpu::supports(*f));
    const Shape s = crosscheck_shape(*f, 1 << 18);
    const std::vector<float> x = crosscheck_inputs(*f, s, 11);
    const CrosscheckReport r = crosscheck_gpu(*f, x, s);
    EXPECT_TRUE(r.ok()) << (r.first.empty() ? "" : r.first[0]);
  }
}

TEST_F(Gpu, BlockFormatsMatchTheCpuOnTheAdversarialSet) {
  for (const char* spec : {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8", "mxfp4:scale=rceil",
                           "mxfp8_e4m3:scale=even:round=sr:seed=2", "mxfp4:inf=sat:flush_subnormals", "nvfp4",
                           "nvfp4:variant=torchao", "nvfp4:variant=modelopt", "nvfp4:tensor_scale=off",
                           "nvfp4:round=sr:seed=4", "nf4", "nf4:dq", "bnb_fp4:backend=torch", "af4:order=hi", "nf4:g128:dq",
                           "lzs4:g16", "lzs4:g32:s8=token", "lzs4:g16:calib=minmax:round=rne"}) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    const Shape s = crosscheck_shape(*f, 1 << 18);
    const std::vector<float> x = crosscheck_inputs(*f, s, 13);
    const CrosscheckReport r = crosscheck_gpu(*f, x, s);
    EXPECT_TRUE(r.ok()) << (r.first.empty() ? "" : r.first[0]);
  }
}

TEST_F(Gpu, PlainCastsMatchOnA16MElementSliceOfAllBitPatterns) {
  // The full 2^32 sweep is `lowbit crosscheck --exhaustive`; here a strided slice of it.
  std::vector<float> x(1 << 24);
  for (size_t i = 0; i < x.size(); ++i) {
    const uint32_t u = static_cast<uint32_t>(i) * 256u + static_cast<uint32_t>(i % 251);
    std::memcpy(&x[i], &u, 4);
  }
  for (const char* spec : {"fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "fp6_e3m2", "bf16", "fp16", "int8", "e8m0"}) {
    const auto f = make_format(spec);
    const Shape s{static_cast<int64_t>(x.size())};
    const CrosscheckReport r = crosscheck_gpu(*f, x, s, /*decode=*/false);
    EXPECT_TRUE(r.ok()) << spec << ": " << (r.first.empty() ? "" : r.first[0]);
  }
}

TEST_F(Gpu, BadInputIsAnError) {
  const auto f = make_format("int4:g64");
  std::vector<float> x(100);
  EXPECT_THROW(gpu::encode(*f, x, {2, 50}), Error);  // groups do not divide
  EXPECT_THROW(gpu::encode(*f, x, {2, 64}), Error);  // size mismatch
}

}  // namespace
}  // namespace lowbit
