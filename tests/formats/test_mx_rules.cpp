// formats/mx_rules.hpp is the per-block reference the CUDA MX kernels run: for every MX element,
// scale rule, rounding mode and option it must give the CPU format's scale bytes, codes,
// fake-quantised and decoded values bit for bit (fast paths included), on data with element-grid
// ties, scale-rule boundaries, zeros, -0, fp32 subnormals, huge values and NaN / Inf blocks; both
// as a whole block (mx_encode_block) and composed lane by lane with a butterfly amax, as the
// warp-per-block kernel (gpu/mx.cu) does.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "formats/mx_rules.hpp"
#include "formats/registry.hpp"
#include "sim/crosscheck.hpp"

namespace lowbit {
namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Non-negative finite element magnitudes, ascending.
std::vector<float> element_grid(const MxElement& el) {
  std::vector<float> g;
  if (el.int8) {
    for (int k = 0; k <= 128; ++k) g.push_back(static_cast<float>(k) / 64.0f);  // 2.0: beyond -127
    return g;
  }
  const float mx = float_max(el.fp);
  for (uint32_t c = 0; c < (1u << (el.bits() - 1)); ++c) {
    const float v = decode_float(el.fp, c);
    if (std::isfinite(v) && v <= mx) g.push_back(v);
  }
  return g;
}

// Extra rows of adversarial blocks for element el (cols a multiple of 32).
void append_adversarial(const MxElement& el, int64_t cols, uint64_t seed, std::vector<float>& x) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::vector<float> grid = element_grid(el);
  const float emax_val = mx_element_max(el);
  auto sgn = [&] { return (g() & 1) ? -1.0f : 1.0f; };
  const int64_t nb = cols / kMxBlock;
  for (int kind = 0; kind < 8; ++kind) {
    for (int64_t b = 0; b < nb; ++b) {
      float blk[kMxBlock];
      const int k = static_cast<int>(g() % 270) - 140;  // block scale exponent
      const float X = std::ldexp(1.0f, k);
      switch (kind) {
        case 0:  // element-grid midpoints (ties under FLOOR: amax = max_elem * X sets X)
        case 1:
          for (int i = 0; i < kMxBlock; ++i) {
            const size_t j = static_cast<size_t>(g() % (grid.size() - 1));
            const float mid = (grid[j] + grid[j + 1]) * 0.5f;
            blk[i] = sgn() * (kind == 0 ? mid : grid[j]) * X;
          }
          blk[g() % kMxBlock] = sgn() * emax_val * X;
          break;
        case 2: {  // amax at the scale rules' boundaries: 2^j, max_elem * 2^j, and +-1 ulp
          const float bases[] = {1.0f, emax_val, emax_val * (1.0f + std::ldexp(1.0f, -el.mbits() - 1)), 1.5f};
          float a = bases[g() % 4] * X;
          const int d = static_cast<int>(g() % 3) - 1;
          if (d) a = std::nextafter(a, d > 0 ? kInf : 0.0f);
          for (int i = 0; i < kMxBlock; ++i) blk[i] = u(g) * a;
          blk[g() % kMxBlock] = sgn() * a;
          break;
        }
        case 3:  // fp32 subnormals and the normal boundary
          for (int i = 0; i < kMxBlock; ++i)
            blk[i] = sgn() * std::ldexp(1.0f, -149 + static_cast<int>(g() % 30)) * (1.0f + static_cast<float>(g() % 8) / 8.0f);
          if (b % 3 == 0) blk[0] = std::ldexp(1.0f, -126);
          if (b % 3 == 1) blk[0] = -std::nextafter(std::ldexp(1.0f, -126), 0.0f);
          break;
        case 4:  // huge: near FLT_MAX, tiny elements beside it
          for (int i = 0; i < kMxBlock; ++i) blk[i] = u(g) * std::ldexp(1.0f, 100 + static_cast<int>(g() % 28));
          blk[g() % kMxBlock] = sgn() * (b % 2 ? FLT_MAX : std::nextafter(FLT_MAX, 0.0f));
          blk[g() % kMxBlock] = std::ldexp(1.0f, -149);
          break;
        case 5:  // zeros and -0; one block all -0, one all +0
          for (int i = 0; i < kMxBlock; ++i) blk[i] = (g() % 3 == 0) ? -0.0f : (g() % 2 ? 0.0f : u(g) * X);
          if (b == 0)
            for (float& v : blk) v = -0.0f;
          if (b == 1)
            for (float& v : blk) v = 0.0f;
          break;
        case 6: {  // NaN / Inf beside finite values, and alone
          for (int i = 0; i < kMxBlock; ++i) blk[i] = u(g) * X;
          const int m = static_cast<int>(b % 5);
          if (m == 0) blk[g() % kMxBlock] = kInf;
          if (m == 1) blk[g() % kMxBlock] = -kInf;
          if (m == 2) blk[g() % kMxBlock] = kNan;
          if (m == 3) {
            blk[1] = kInf;
            blk[7] = -kNan;
          }
          if (m == 4)
            for (float& v : blk) v = -kInf;
          break;
        }
        case 7:  // MXINT8 / small-element rounding: values at k/64 +- half steps, large and tiny
          for (int i = 0; i < kMxBlock; ++i)
            blk[i] = sgn() * (static_cast<float>(g() % 256) / 128.0f) * X;
          blk[0] = sgn() * 1.984375f * X;
          break;
      }
      x.insert(x.end(), blk, blk + kMxBlock);
    }
  }
}

// The warp kernel's amax: a butterfly (xor-shuffle) max over 32 lanes.
uint32_t butterfly_amax(const float* x) {
  uint32_t a[kMxBlock];
  for (int i = 0; i < kMxBlock; ++i) a[i] = mx_abs_bits(x[i]);
  for (int o = 16; o > 0; o >>= 1) {
    uint32_t b[kMxBlock];
    for (int i = 0; i < kMxBlock; ++i) b[i] = a[i] > a[i ^ o] ? a[i] : a[i ^ o];
    for (int i = 0; i < kMxBlock; ++i) a[i] = b[i];
  }
  for (int i = 1; i < kMxBlock; ++i) EXPECT_EQ(a[i], a[0]);
  return a[0];
}

// Everything the CPU format gives for x equals the rules, block by block.
void check_spec(const std::string& spec, const std::vector<float>& x, int64_t rows, int64_t cols) {
  SCOPED_TRACE(spec);
  const auto f = make_format(spec);
  ASSERT_EQ(f->family(), "mx");
  const MxParams p = std::get<MxParams>(f->params());
  const Shape shape{rows, cols};
  const int64_t n = rows * cols;
  const PackedTensor pk = f->encode(x, shape);
  ASSERT_EQ(pk.sections.size(), 2u);
  ASSERT_EQ(pk.sections[1].name, "scales");
  const std::vector<uint32_t> codes = f->unpacked_codes(pk);
  const std::vector<uint32_t> scales = section_u32(pk.at("scales"));
  std::vector<float> fq(x.size()), dec(x.size());
  f->fake_quant(x, shape, fq);
  f->decode(pk, dec);
  ASSERT_EQ(static_cast<int64_t>(scales.size()), n / kMxBlock);
  for (int64_t b = 0; b < n / kMxBlock; ++b) {
    const int64_t i0 = b * kMxBlock;
    const float* xb = x.data() + i0;
    uint32_t c[kMxBlock];
    float v[kMxBlock];
    const uint8_t e = mx_encode_block(p, xb, static_cast<uint64_t>(i0), c, v);
    ASSERT_EQ(e, scales[b]) << "block " << b;
    // Lane by lane, as the kernel composes the same functions.
    const MxBlockScale s = mx_block_scale(p, butterfly_amax(xb));
    ASSERT_EQ(s.e, e) << "block " << b;
    for (int i = 0; i < kMxBlock; ++i) {
      const int64_t k = i0 + i;
      ASSERT_EQ(c[i], codes[k]) << "block " << b << " element " << k << " x=" << x[k];
      ASSERT_EQ(mx_block_code(p, s, x[k], static_cast<uint64_t>(k)), c[i]) << "element " << k;
      ASSERT_EQ(f32_bits(v[i]), f32_bits(fq[k])) << "fake_quant " << k << " x=" << x[k] << ": " << v[i] << " vs "
                                                 << fq[k];
      const float d = mx_block_value(p, codes[k], static_cast<uint8_t>(scales[b]));
      ASSERT_EQ(f32_bits(d), f32_bits(dec[k])) << "decode " << k << ": " << d << " vs " << dec[k];
    }
  }
}

const char* const kElements[] = {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8"};
const char* const kRules[] = {"floor", "rceil", "ceil", "even"};
const char* const kRounds[] = {"rne", "rna", "rz", "rd", "ru", "sr:seed=7"};

TEST(MxRules, EveryElementRuleRoundingAndOptionEqualsTheCpuFormat) {
  const int64_t cols = 256;
  for (const char* elem : kElements) {
    const auto base = make_format(elem);
    const MxElement el = std::get<MxParams>(base->params()).elem;
    const int64_t rows0 = 24;
    std::vector<float> x = crosscheck_inputs(*base, {rows0, cols}, 3);
    append_adversarial(el, cols, 11, x);
    const int64_t rows = static_cast<int64_t>(x.size()) / cols;
    const bool int8 = std::string(elem) == "mxint8";
    for (const char* rule : kRules)
      for (const char* round : kRounds)
        for (int opt = 0; opt < (int8 ? 8 : 4); ++opt) {
          std::string spec = std::string(elem) + ":scale=" + rule + ":round=" + round;
          if (opt & 1) spec += ":inf=sat";
          if (opt & 2) spec += ":flush_subnormals";
          if (opt & 4) spec += ":int8_min=-128";
          check_spec(spec, x, rows, cols);
          if (::testing::Test::HasFatalFailure()) return;
        }
  }
}

TEST(MxRules, DefaultsAndSeedsEqualTheCpuFormat) {
  const int64_t cols = 64;
  for (const char* elem : kElements) {
    const auto base = make_format(elem);
    std::vector<float> x = crosscheck_inputs(*base, {48, cols}, 5);
    append_adversarial(std::get<MxParams>(base->params()).elem, cols, 12, x);
    const int64_t rows = static_cast<int64_t>(x.size()) / cols;
    for (const std::string opt : {"", ":round=sr:seed=0", ":round=sr:seed=123456789", ":round=sr:seed=5:inf=sat"}) {
      check_spec(elem + opt, x, rows, cols);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(MxRules, DegenerateTensorsEqualTheCpuFormat) {
  const int64_t rows = 4, cols = 64, n = rows * cols;
  const std::vector<std::vector<float>> tensors = {
      std::vector<float>(n, 0.0f), std::vector<float>(n, -0.0f), std::vector<float>(n, kNan),
      std::vector<float>(n, kInf), std::vector<float>(n, std::ldexp(1.0f, -149)), std::vector<float>(n, FLT_MAX)};
  for (const char* elem : kElements)
    for (const auto& x : tensors)
      for (const std::string opt : {"", ":inf=sat", ":flush_subnormals", ":scale=rceil", ":scale=even:round=sr:seed=1"}) {
        check_spec(elem + opt, x, rows, cols);
        if (::testing::Test::HasFatalFailure()) return;
      }
}

// Decoding every code under every scale byte (bytes no encoder writes included: NaN and Inf
// element codes under finite scales) gives the CPU's values, NaN bits included.
TEST(MxRules, DecodeOfEveryCodeAndScaleEqualsTheCpuFormat) {
  for (const char* elem : kElements) {
    SCOPED_TRACE(elem);
    const auto f = make_format(elem);
    const MxParams p = std::get<MxParams>(f->params());
    const int bits = p.elem.bits();
    const int64_t ncodes = int64_t{1} << bits;
    const int64_t rows = 256, cols = ncodes < kMxBlock ? kMxBlock : ncodes, n = rows * cols;  // row r: scale r
    PackedTensor pk = f->encode(std::vector<float>(static_cast<size_t>(n), 0.0f), {rows, cols});
    std::vector<uint32_t> codes(static_cast<size_t>(n)), scales(static_cast<size_t>(n / kMxBlock));
    for (int64_t i = 0; i < n; ++i) codes[i] = static_cast<uint32_t>((i % cols) % ncodes);
    for (int64_t b = 0; b < n / kMxBlock; ++b) scales[b] = static_cast<uint32_t>((b * kMxBlock) / cols);
    pack_codes(codes, bits, pk.sections[0].bytes);
    pk.sections[1] = make_section_u("scales", 8, pk.sections[1].shape, scales);
    std::vector<float> dec(static_cast<size_t>(n));
    f->decode(pk, dec);
    for (int64_t i = 0; i < n; ++i) {
      const float v = mx_block_value(p, codes[i], static_cast<uint8_t>(scales[i / kMxBlock]));
      ASSERT_EQ(f32_bits(v), f32_bits(dec[i])) << "code " << codes[i] << " scale " << scales[i / kMxBlock];
    }
  }
}

// The zero-amax, NaN-block and flushed-block conventions, spelled out.
TEST(MxRules, BlockConventions) {
  MxParams p{mx_elem::e2m1, MxOptions{}};
  float x[kMxBlock] = {};
  uint32_t c[kMxBlock];
  float v[kMxBlock];
  EXPECT_EQ(mx_encode_block(p, x, 0, c, v), 0x00);  // zero amax -> 0x00, +0 everywhere
  for (int i = 0; i < kMxBlock; ++i) EXPECT_EQ(f32_bits(v[i]), 0u);
  x[3] = kNan;
  EXPECT_EQ(mx_encode_block(p, x, 0, c, v), kE8m0Nan);
  for (int i = 0; i < kMxBlock; ++i) EXPECT_EQ(c[i], 0u);
  for (int i = 0; i < kMxBlock; ++i) EXPECT_TRUE(std::isnan(v[i]));
  p.opt.flush_subnormals = true;
  x[3] = std::ldexp(1.0f, -130);
  EXPECT_EQ(mx_encode_block(p, x, 0, c, v), 0x00);
  EXPECT_EQ(f32_bits(v[3]), 0u);
}

}  // namespace
}  // namespace lowbit
