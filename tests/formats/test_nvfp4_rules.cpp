// formats/nvfp4_rules.hpp is the per-tensor / per-block reference the CUDA NVFP4 kernels run: for
// every variant (te, torchao, modelopt, tensor_scale=off) and rounding (rne, sr) it must give the
// CPU format's tensor scale, block scales, codes, fake-quantised and decoded values bit for bit
// (fast paths included), on finite data over the whole fp32 range with E2M1-grid ties, zeros, -0
// and subnormals, and on degenerate tensors (all zero, NaN / Inf, tensor amax so small that the
// tensor scale underflows, FLT_MAX); with the tensor amax reduced in the order the kernels use.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "formats/nvfp4_rules.hpp"
#include "formats/registry.hpp"
#include "sim/crosscheck.hpp"

namespace lowbit {
namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// The kernels' tensor amax: per-thread maxima over a grid stride, then the partials' maximum.
uint32_t strided_amax(const std::vector<float>& x, int64_t stride) {
  std::vector<uint32_t> part(static_cast<size_t>(stride), 0u);
  for (size_t i = 0; i < x.size(); ++i) {
    uint32_t& m = part[i % static_cast<size_t>(stride)];
    const uint32_t a = nvfp4_abs_bits(x[i]);
    m = a > m ? a : m;
  }
  uint32_t m = 0;
  for (size_t j = part.size(); j-- > 0;) m = part[j] > m ? part[j] : m;
  return m;
}

// The half-warp kernel's block amax: a butterfly max over 16 lanes.
uint32_t butterfly_amax(const float* x) {
  uint32_t a[kNvfp4Block];
  for (int i = 0; i < kNvfp4Block; ++i) a[i] = nvfp4_abs_bits(x[i]);
  for (int o = 8; o > 0; o >>= 1) {
    uint32_t b[kNvfp4Block];
    for (int i = 0; i < kNvfp4Block; ++i) b[i] = a[i] > a[i ^ o] ? a[i] : a[i ^ o];
    for (int i = 0; i < kNvfp4Block; ++i) a[i] = b[i];
  }
  return a[0];
}

void check_spec(const std::string& spec, const std::vector<float>& x, int64_t rows, int64_t cols) {
  SCOPED_TRACE(spec);
  const auto f = make_format(spec);
  ASSERT_EQ(f->family(), "nvfp4");
  const Nvfp4Params p = std::get<Nvfp4Params>(f->params());
  const Shape shape{rows, cols};
  const int64_t n = rows * cols;
  const PackedTensor pk = f->encode(x, shape);
  ASSERT_EQ(pk.sections.size(), p.two_level ? 3u : 2u);
  ASSERT_EQ(pk.sections[1].name, "scales");
  const std::vector<uint32_t> codes = f->unpacked_codes(pk);
  const std::vector<uint32_t> scales = section_u32(pk.at("scales"));
  std::vector<float> fq(x.size()), dec(x.size());
  f->fake_quant(x, shape, fq);
  f->decode(pk, dec);

  const uint32_t amax = strided_amax(x, 1);
  ASSERT_EQ(strided_amax(x, 257), amax);
  const Nvfp4Tensor t = nvfp4_tensor_of(p, amax);
  float stored = 0.0f;
  if (p.two_level) {
    ASSERT_EQ(pk.sections[2].name, "tensor_scale");
    ASSERT_EQ(pk.sections[2].dtype, "f32");
    const std::vector<float> ts = section_f32(pk.sections[2]);
    ASSERT_EQ(ts.size(), 1u);
    ASSERT_EQ(f32_bits(t.stored), f32_bits(ts[0])) << "tensor scale " << t.stored << " vs " << ts[0];
    stored = ts[0];
  }
  const Nvfp4Tensor td = nvfp4_decode_tensor(p, stored);
  ASSERT_EQ(static_cast<int64_t>(scales.size()), n / kNvfp4Block);
  for (int64_t b = 0; b < n / kNvfp4Block; ++b) {
    const int64_t i0 = b * kNvfp4Block;
    const float* xb = x.data() + i0;
    uint32_t c[kNvfp4Block];
    float v[kNvfp4Block];
    const uint8_t s = nvfp4_encode_block(p, t, xb, static_cast<uint64_t>(i0), c, v);
    ASSERT_EQ(s, scales[b]) << "block " << b;
    const Nvfp4BlockScale bs = nvfp4_block_of(t, butterfly_amax(xb));
    ASSERT_EQ(bs.code, s) << "block " << b;
    for (int i = 0; i < kNvfp4Block; ++i) {
      const int64_t k = i0 + i;
      ASSERT_EQ(c[i], codes[k]) << "block " << b << " element " << k << " x=" << x[k];
      ASSERT_EQ(nvfp4_block_code(p, t, bs, x[k], static_cast<uint64_t>(k)), c[i]) << "element " << k;
      ASSERT_EQ(f32_bits(v[i]), f32_bits(fq[k])) << "fake_quant " << k << " x=" << x[k] << ": " << v[i] << " vs "
                                                 << fq[k];
      const float d = nvfp4_block_value(td, codes[k], static_cast<uint8_t>(scales[b]));
      ASSERT_EQ(f32_bits(d), f32_bits(dec[k])) << "decode " << k << ": " << d << " vs " << dec[k];
    }
  }
}

const char* const kSpecs[] = {"nvfp4",
                              "nvfp4:variant=torchao",
                              "nvfp4:variant=modelopt",
                              "nvfp4:tensor_scale=off",
                              "nvfp4:round=sr:seed=11",
                              "nvfp4:variant=torchao:round=sr:seed=12",
                              "nvfp4:variant=modelopt:round=sr:seed=13",
                              "nvfp4:tensor_scale=off:round=sr:seed=14",
                              "nvfp4:round=sr:seed=0"};

// Finite adversarial rows: crosscheck_inputs with its non-finite values replaced, then blocks of
// E2M1-grid values and midpoints at random block scales, zeros, -0 and fp32 subnormals.
std::vector<float> finite_data(int64_t cols, uint64_t seed) {
  const auto f = make_format("nvfp4");
  std::vector<float> x = crosscheck_inputs(*f, {24, cols}, seed);
  for (float& v : x)
    if (!std::isfinite(v)) v = std::copysign(FLT_MAX, v);
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const float grid[] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float mids[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 7.0f};
  for (int kind = 0; kind < 4; ++kind) {
    for (int64_t c = 0; c < cols; c += kNvfp4Block) {
      const float X = std::ldexp(1.0f, static_cast<int>(g() % 40) - 20);
      for (int i = 0; i < kNvfp4Block; ++i) {
        const float s = (g() & 1) ? -1.0f : 1.0f;
        float v = 0.0f;
        switch (kind) {
          case 0: v = s * mids[g() % 8] * X; break;
          case 1: v = s * grid[g() % 8] * X; break;
          case 2: v = (g() % 3 == 0) ? -0.0f : s * std::ldexp(1.0f, -149 + static_cast<int>(g() % 40)); break;
          case 3: v = u(g) * X; break;
        }
        x.push_back(v);
      }
      if (kind <= 1) x[x.size() - kNvfp4Block + (g() % kNvfp4Block)] = 6.0f * X;
    }
  }
  return x;
}

TEST(Nvfp4Rules, FiniteTensorsAtEveryMagnitudeEqualTheCpuFormat) {
  const int64_t cols = 128;
  const std::vector<float> base = finite_data(cols, 3);
  const int64_t rows = static_cast<int64_t>(base.size()) / cols;
  // Whole-tensor scalings move the tensor amax over the fp32 range (the base holds FLT_MAX, so
  // scaling down first; scaled-up values saturate at FLT_MAX).
  for (int k : {0, -20, -100, -127, -200, -250, -270}) {
    std::vector<float> x = base;
    for (float& v : x) {
      v = std::ldexp(v, k);
      if (!std::isfinite(v)) v = std::copysign(FLT_MAX, v);
    }
    for (const char* spec : kSpecs) {
      SCOPED_TRACE(k);
      check_spec(spec, x, rows, cols);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  // Small tensors without the huge rows: amax of ordinary size, and single-level's clamps.
  std::vector<float> y = finite_data(cols, 4);
  y.erase(y.begin(), y.begin() + 24 * cols);
  for (int k : {0, 8, 12, -10, -130, -140}) {
    std::vector<float> x = y;
    for (float& v : x) v = std::ldexp(v, k);
    for (const char* spec : kSpecs) {
      SCOPED_TRACE(k);
      check_spec(spec, x, static_cast<int64_t>(x.size()) / cols, cols);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(Nvfp4Rules, DegenerateTensorsEqualTheCpuFormat) {
  const int64_t rows = 3, cols = 64, n = rows * cols;
  std::vector<std::vector<float>> tensors;
  tensors.emplace_back(n, 0.0f);
  tensors.emplace_back(n, -0.0f);
  tensors.emplace_back(n, std::ldexp(1.0f, -149));  // tensor scales underflow to 0
  tensors.emplace_back(n, std::ldexp(1.0f, -137));
  tensors.emplace_back(n, FLT_MAX);
  std::vector<float> mixed = finite_data(cols, 7);
  mixed.resize(static_cast<size_t>(n));
  for (float special : {kInf, -kInf, kNan, -kNan}) {
    std::vector<float> x = mixed;
    x[static_cast<size_t>(n / 2 + 3)] = special;
    tensors.push_back(x);
  }
  {
    std::vector<float> x = mixed;  // a NaN block and an Inf block (single level sees both)
    for (int i = 0; i < kNvfp4Block; ++i) x[static_cast<size_t>(i)] = kNan;
    x[static_cast<size_t>(kNvfp4Block + 5)] = kInf;
    x[static_cast<size_t>(2 * kNvfp4Block + 1)] = -kInf;
    x[static_cast<size_t>(2 * kNvfp4Block + 2)] = kNan;
    tensors.push_back(x);
  }
  tensors.emplace_back(n, kInf);
  for (const auto& x : tensors)
    for (const char* spec : kSpecs) {
      check_spec(spec, x, rows, cols);
      if (::testing::Test::HasFatalFailure()) return;
    }
}

// Decoding every code under every block scale code (NaN ones included) and tensor scales no
// encoder writes (NaNs with payloads, signalling, negative; Inf; 0) gives the CPU's values, NaN
// bits included: those are the x86 product's, which nvfp4_block_value forms explicitly.
TEST(Nvfp4Rules, DecodeOfEveryCodeAndScaleEqualsTheCpuFormat) {
  const uint32_t tensor_scales[] = {0x3f800000u, 0x00000001u, 0x7f7fffffu, 0x7f800000u, 0x00000000u,
                                    0x7fc00000u, 0xffc00000u, 0x7fa00001u, 0xff812345u, 0x7fffffffu};
  for (const char* spec : {"nvfp4", "nvfp4:variant=torchao", "nvfp4:variant=modelopt", "nvfp4:tensor_scale=off"}) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    const Nvfp4Params p = std::get<Nvfp4Params>(f->params());
    const int64_t rows = 256, cols = 16, n = rows * cols;  // row r: block scale code r, codes 0..15
    PackedTensor pk = f->encode(std::vector<float>(static_cast<size_t>(n), 1.0f), {rows, cols});
    std::vector<uint32_t> codes(static_cast<size_t>(n)), scales(static_cast<size_t>(rows));
    for (int64_t i = 0; i < n; ++i) codes[i] = static_cast<uint32_t>(i % 16);
    for (int64_t r = 0; r < rows; ++r) scales[r] = static_cast<uint32_t>(r);
    pack_codes(codes, 4, pk.sections[0].bytes);
    pk.sections[1] = make_section_u("scales", 8, pk.sections[1].shape, scales);
    for (uint32_t ts : tensor_scales) {
      SCOPED_TRACE(ts);
      if (p.two_level) {
        const float v[1] = {f32_from_bits(ts)};
        pk.sections[2] = make_section_f32("tensor_scale", {1}, v);
      }
      std::vector<float> dec(static_cast<size_t>(n));
      f->decode(pk, dec);
      const Nvfp4Tensor t = nvfp4_decode_tensor(p, f32_from_bits(ts));
      for (int64_t i = 0; i < n; ++i) {
        const float v = nvfp4_block_value(t, codes[i], static_cast<uint8_t>(scales[i / 16]));
        ASSERT_EQ(f32_bits(v), f32_bits(dec[i])) << "code " << codes[i] << " scale " << scales[i / 16] << ": " << v
                                                 << " vs " << dec[i];
      }
      if (!p.two_level) break;
    }
  }
}

// x86's NaN results, spelled out (the CPU reference runs on x86; CUDA would give 0x7fffffff).
TEST(Nvfp4Rules, X86NanProducts) {
  EXPECT_EQ(f32_bits(nvfp4_mul_x86(2.0f, 3.0f)), f32_bits(6.0f));
  EXPECT_EQ(f32_bits(nvfp4_mul_x86(0.0f, kInf)), 0xffc00000u);
  EXPECT_EQ(f32_bits(nvfp4_mul_x86(-6.0f, f32_from_bits(0x7fc00000u))), 0x7fc00000u);
  EXPECT_EQ(f32_bits(nvfp4_mul_x86(f32_from_bits(0x7fa00001u), 1.0f)), 0x7fe00001u);
  EXPECT_EQ(f32_bits(nvfp4_mul_x86(0.0f, f32_from_bits(0xff812345u))), 0xffc12345u);
  volatile float a = 0.0f, b = kInf;  // the compiler's own product, for comparison
  EXPECT_EQ(f32_bits(a * b), 0xffc00000u);
}

// An empty tensor still has a tensor scale: the amax is 0.
TEST(Nvfp4Rules, EmptyTensorScaleEqualsTheCpuFormat) {
  for (const char* spec : kSpecs) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    const Nvfp4Params p = std::get<Nvfp4Params>(f->params());
    const PackedTensor pk = f->encode(std::vector<float>{}, {0, 16});
    if (!p.two_level) continue;
    const std::vector<float> ts = section_f32(pk.at("tensor_scale"));
    ASSERT_EQ(ts.size(), 1u);
    EXPECT_EQ(f32_bits(nvfp4_tensor_of(p, 0u).stored), f32_bits(ts[0]));
  }
}

// Params with tensor_scale=off but another variant behave as torchao's single-level form.
TEST(Nvfp4Rules, SingleLevelIgnoresTheVariantField) {
  Nvfp4Params a{Nvfp4Variant::Te, false, Round::NearestEven, 0};
  Nvfp4Params b{Nvfp4Variant::Torchao, false, Round::NearestEven, 0};
  const float x[kNvfp4Block] = {0.1f, -3.0f, 1e5f, 2.5f, 0, -0.0f, 7.0f, 1e-3f, 1, 2, 3, 4, 5, 6, 7, 8};
  uint32_t ca[kNvfp4Block], cb[kNvfp4Block];
  float va[kNvfp4Block], vb[kNvfp4Block];
  const Nvfp4Tensor ta = nvfp4_tensor_of(a, 0x7f800000u), tb = nvfp4_tensor_of(b, 0x3f800000u);
  EXPECT_EQ(nvfp4_encode_block(a, ta, x, 0, ca, va), nvfp4_encode_block(b, tb, x, 0, cb, vb));
  for (int i = 0; i < kNvfp4Block; ++i) {
    EXPECT_EQ(ca[i], cb[i]);
    EXPECT_EQ(f32_bits(va[i]), f32_bits(vb[i]));
  }
}

}  // namespace
}  // namespace lowbit
