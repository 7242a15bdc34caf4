// formats/codebook_rules.hpp is what the CUDA codebook kernels run: per block (absmax, codes,
// values) and per dq block, with tables built on the host. Here the rules run on the CPU, block
// by block as the kernels do, and must give the CPU codebook formats' codes, every section's
// bytes (through the same aux -> section conversion gpu/gpu.cpp uses), fake_quant and decode
// values bit for bit, NaN payloads included, for nf4 / bnb_fp4 / af4 / user codebooks under
// both backends, several block sizes, dq and order=hi; against the make_format (fast) path and
// the scalar reference implementation alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <variant>

#include "formats/codebook_rules.hpp"
#include "formats/registry.hpp"
#include "formats/tensor_format.hpp"
#include "sim/crosscheck.hpp"

namespace lowbit {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
float up(float x) { return std::nextafter(x, kInf); }
float down(float x) { return std::nextafter(x, -kInf); }

using Aux = std::vector<std::vector<uint32_t>>;

struct RuleOut {
  std::vector<uint32_t> codes;
  Aux aux;  // the sections after "codes", as the GPU launchers return them
  std::vector<float> values;
};

// Decoded absmax per block from the aux sections (the kernels' decode side).
std::vector<float> absmax_from_aux(const CodebookParams& p, const Aux& aux, int64_t nb) {
  std::vector<float> a(static_cast<size_t>(nb));
  if (!p.dq) {
    for (int64_t b = 0; b < nb; ++b) a[b] = f32_from_bits(aux.at(0).at(b));
    return a;
  }
  const CodebookDqTables d = codebook_dq_tables(p);
  const float offset = f32_from_bits(aux.at(2).at(0));
  for (int64_t b = 0; b < nb; ++b)
    a[b] = codebook_dq_absmax(d, aux.at(0).at(b), f32_from_bits(aux.at(1).at(b / kCodebookDqBlock)), offset);
  return a;
}

std::vector<float> decode_rules(const CodebookParams& p, const std::vector<uint32_t>& codes, const Aux& aux) {
  const CodebookTables t = codebook_tables(p);
  const int64_t n = static_cast<int64_t>(codes.size()), g = p.block, nb = n / g;
  const std::vector<float> a = absmax_from_aux(p, aux, nb);
  std::vector<float> v(codes.size());
  for (int64_t i = 0; i < n; ++i) v[i] = codebook_value(t, codes[i], a[i / g]);
  return v;
}

// The encode pipeline of gpu/codebook.cu, sequentially: one block at a time, then dq.
RuleOut run_rules(const CodebookParams& p, const std::vector<float>& x) {
  const CodebookTables t = codebook_tables(p);
  const int64_t n = static_cast<int64_t>(x.size()), g = p.block, nb = n / g;
  RuleOut o;
  o.codes.resize(x.size());
  std::vector<float> absmax(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b)
    absmax[b] = codebook_encode_block(t, x.data() + b * g, g, o.codes.data() + b * g, nullptr);
  if (!p.dq) {
    std::vector<uint32_t> s(absmax.size());
    for (size_t b = 0; b < s.size(); ++b) s[b] = f32_bits(absmax[b]);
    o.aux.push_back(std::move(s));
  } else {
    const CodebookDqTables d = codebook_dq_tables(p);
    const float offset = codebook_dq_offset(absmax.data(), nb);
    std::vector<uint32_t> q(static_cast<size_t>(nb)), scales;
    for (int64_t s = 0; s < nb; s += kCodebookDqBlock)
      scales.push_back(f32_bits(codebook_dq_block(d, t.torch, absmax.data() + s, std::min(kCodebookDqBlock, nb - s),
                                                  offset, q.data() + s)));
    o.aux = {std::move(q), std::move(scales), {f32_bits(offset)}};
  }
  o.values = decode_rules(p, o.codes, o.aux);
  return o;
}

// gpu/gpu.cpp's conversions between sections and aux vectors.
Aux aux_of(const PackedTensor& pk) {
  Aux aux;
  for (size_t k = 1; k < pk.sections.size(); ++k) aux.push_back(section_u32(pk.sections[k]));
  return aux;
}

std::vector<uint8_t> section_bytes(const Section& layout, const std::vector<uint32_t>& v) {
  Section s = layout;
  set_section_u32(s, v);
  return s.bytes;
}

// Packed codes as gpu/gpu.cpp packs them (pack_codes, or high nibble first for order=hi).
std::vector<uint8_t> pack(const std::vector<uint32_t>& codes, int code_bits, bool hi) {
  std::vector<uint8_t> b(static_cast<size_t>(packed_bytes(static_cast<int64_t>(codes.size()), code_bits)));
  if (!hi) {
    pack_codes(codes, code_bits, b);
  } else {
    for (size_t i = 0; i < codes.size(); ++i) b[i / 2] |= static_cast<uint8_t>(codes[i] << ((i & 1) ? 0 : 4));
  }
  return b;
}

void expect_bits(const std::vector<float>& want, const std::vector<float>& got, const std::vector<float>& x,
                 const char* what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(f32_bits(want[i]), f32_bits(got[i]))
        << what << " element " << i << " x=" << x[i] << " (0x" << std::hex << f32_bits(x[i]) << "): cpu 0x"
        << f32_bits(want[i]) << ", rules 0x" << f32_bits(got[i]) << std::dec;
}

// Everything the CPU format produces for x, against the rules.
void check_equal(const TensorFormat& f, const std::vector<float>& x, const Shape& shape) {
  const CodebookParams p = std::get<CodebookParams>(f.params());
  const PackedTensor pk = f.encode(x, shape);
  const RuleOut r = run_rules(p, x);
  const std::vector<uint32_t> codes = f.unpacked_codes(pk);
  ASSERT_EQ(codes.size(), r.codes.size());
  for (size_t i = 0; i < codes.size(); ++i)
    ASSERT_EQ(codes[i], r.codes[i]) << "code of element " << i << " x=" << x[i] << " (0x" << std::hex << f32_bits(x[i])
                                    << std::dec << ")";
  ASSERT_EQ(pack(r.codes, pk.code_bits, p.hi_nibble), pk.sections[0].bytes) << "packed codes";
  ASSERT_EQ(r.aux.size() + 1, pk.sections.size());
  for (size_t k = 1; k < pk.sections.size(); ++k) {
    const std::vector<uint8_t> b = section_bytes(pk.sections[k], r.aux[k - 1]);
    ASSERT_EQ(b.size(), pk.sections[k].bytes.size()) << pk.sections[k].name;
    for (size_t i = 0; i < b.size(); ++i)
      ASSERT_EQ(b[i], pk.sections[k].bytes[i]) << "section " << pk.sections[k].name << " byte " << i;
  }
  std::vector<float> fq(x.size()), dec(x.size());
  f.fake_quant(x, shape, fq);
  expect_bits(fq, r.values, x, "fake_quant");
  f.decode(pk, dec);
  expect_bits(dec, decode_rules(p, f.unpacked_codes(pk), aux_of(pk)), x, "decode");
}

// Adversarial data for a codebook: blocks of exact ties (element 0 = +-2^k, so xn = x * 2^-k is
// exact, the others at every threshold / midpoint and the floats either side of it), zero and
// -0 blocks, subnormal and huge blocks, absmax below torch's 1e-38 clamp, and (specials) blocks
// with NaN of several payloads (a signalling one too) and +-Inf. NaN blocks sit at block 3, 256
// and 300 (dq: different payloads in different dq blocks, the order of NaN operands).
std::vector<float> adversarial(const CodebookTables& t, int64_t g, int64_t n, bool specials, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(static_cast<size_t>(n));
  const int64_t nb = n / g;
  for (int64_t b = 0; b < nb; ++b) {
    const float sc = std::ldexp(1.0f, static_cast<int>(gen() % 41) - 20);
    for (int64_t i = b * g; i < (b + 1) * g; ++i) x[i] = nd(gen) * sc;
  }
  std::vector<float> cand;
  for (int j = 0; j < 15; ++j) cand.push_back(nf4_threshold_cuda(j));
  for (int j = 0; j < 7; ++j) {
    cand.push_back(bnb_fp4_threshold_cuda(j));
    cand.push_back(-bnb_fp4_threshold_cuda(j));
  }
  for (int j = 0; j + 1 < t.n; ++j) {
    cand.push_back(t.thr[j]);
    const double mid = (static_cast<double>(t.value[j]) + t.value[j + 1]) / 2.0;
    cand.push_back(static_cast<float>(mid));
    const float tv = t.value[t.order[j]], tw = t.value[t.order[j + 1]];
    cand.push_back((tv + tw) / 2.0f);
  }
  for (int c = 0; c < t.n; ++c) cand.push_back(t.value[c]);
  std::vector<float> ties;
  for (const float c : cand)
    for (const float v : {c, up(c), down(c), -c})
      if (std::fabs(v) <= 1.0f) ties.push_back(v);
  ties.push_back(0.0f);
  ties.push_back(-0.0f);
  int64_t b = 8;  // tie blocks from block 8 on, specials below
  const int exps[] = {0, 3, -5, 20, -100};
  for (int rep = 0; rep < 5 && b < nb; ++rep) {
    const float s = std::ldexp(1.0f, exps[rep]);
    for (size_t start = 0; start < ties.size() && b < nb; ++b) {
      if (b == 256 || b == 300) continue;
      float* xb = x.data() + b * g;
      xb[0] = (b & 1) ? -s : s;
      for (int64_t i = 1; i < g; ++i) xb[i] = ties[(start + static_cast<size_t>(i) - 1) % ties.size()] * s;
      start += static_cast<size_t>(g - 1);
    }
  }
  auto block = [&](int64_t bi) -> float* { return bi < nb ? x.data() + bi * g : nullptr; };
  if (float* z = block(0))
    for (int64_t i = 0; i < g; ++i) z[i] = 0.0f;
  if (float* z = block(1))
    for (int64_t i = 0; i < g; ++i) z[i] = (i % 3 == 0) ? -0.0f : f32_from_bits(static_cast<uint32_t>(i));  // subnormals
  if (float* z = block(2))
    for (int64_t i = 0; i < g; ++i) z[i] = (i % 2 ? -0.0f : 0.0f) + (i == g - 1 ? 5e-39f : 0.0f);  // absmax < 1e-38
  if (float* z = block(4))
    for (int64_t i = 0; i < g; ++i) z[i] = (i % 2 ? -1.0f : 1.0f) * std::numeric_limits<float>::max() * (1.0f - 0.01f * (i % 7));
  if (float* z = block(5))
    for (int64_t i = 0; i < g; ++i) z[i] = -0.0f;
  if (float* z = block(6))
    for (int64_t i = 0; i < g; ++i) z[i] = -std::fabs(z[i]) * 1e30f;
  if (specials) {
    if (float* z = block(3)) {
      z[1] = f32_from_bits(0x7fc00001u);
      z[g / 2] = f32_from_bits(0xffc00005u);
    }
    if (float* z = block(7)) {
      z[0] = kInf;
      z[g - 1] = -0.0f;
    }
    if (float* z = block(256)) z[g - 1] = f32_from_bits(0xffc0beefu);
    if (float* z = block(300)) z[0] = f32_from_bits(0x7f800003u);  // signalling
    if (float* z = block(10)) z[g / 3] = -kInf;
    if (float* z = block(11))
      for (int64_t i = 0; i < g; ++i) z[i] = f32_from_bits(0x7fc00000u + static_cast<uint32_t>(i));  // all NaN
    if (float* z = block(12)) {
      z[0] = kInf;
      z[1] = f32_from_bits(0x7fc12345u);
      z[2] = 0.0f;
    }
  }
  return x;
}

// The specs under test: every codebook kind, both backends, block sizes, dq, order=hi.
std::vector<std::string> specs() {
  const std::string user16 = "codebook:values=-8/-6/-4/-3/-2/-1.5/-1/-0.5/0/0.5/1/1.5/2/3/4/6";
  const std::string user6 = "codebook:values=-0.7/-0.3/0.1/0.35/0.5/0.9";
  std::string user20 = "codebook:values=";
  for (int i = -9; i <= 10; ++i) user20 += std::to_string(i * i * i) + (i < 10 ? "/" : "");
  const std::string bases[] = {"nf4", "bnb_fp4", "af4", user16, user6, user20, "codebook:values=-1/1"};
  std::vector<std::string> out;
  for (const std::string& b : bases) {
    const bool four = b == "nf4" || b == "bnb_fp4" || b == "af4" || b == user16;
    for (const char* be : {"cuda", "torch"}) {
      const std::string s = b + ":backend=" + be;
      out.push_back(s);
      out.push_back(s + ":g32");
      out.push_back(s + ":g128:dq");
      out.push_back(s + ":dq");
      if (four) {
        out.push_back(s + ":order=hi");
        out.push_back(s + ":g256:dq:order=hi");
      }
    }
  }
  return out;
}

TEST(CodebookRules, EqualTheCpuFormatsBitForBit) {
  const Shape shape{40, 1024};
  const int64_t n = shape_numel(shape);
  for (const std::string& spec : specs()) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    const auto fr = detail::make_codebook_format(spec, detail::CodebookImpl::Reference);
    const CodebookParams p = std::get<CodebookParams>(f->params());
    const CodebookTables t = codebook_tables(p);
    struct Data {
      const char* name;
      std::vector<float> x;
    };
    const Data data[] = {{"crosscheck_inputs", crosscheck_inputs(*f, shape, 1)},
                         {"adversarial finite", adversarial(t, p.block, n, false, 2)},
                         {"adversarial specials", adversarial(t, p.block, n, true, 3)},
                         {"all zero", std::vector<float>(static_cast<size_t>(n), 0.0f)}};
    for (const Data& d : data) {
      SCOPED_TRACE(d.name);
      check_equal(*f, d.x, shape);
      check_equal(*fr, d.x, shape);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

// The rules see every element of a block once per pass and nothing of other blocks: a tensor of
// one row, odd shapes and an empty tensor work the same.
TEST(CodebookRules, OddShapes) {
  for (const char* spec : {"nf4:g4", "af4:g2:backend=torch:dq", "bnb_fp4:g8:dq", "codebook:values=-1/0/2:g3:backend=torch"}) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    const CodebookParams p = std::get<CodebookParams>(f->params());
    for (const Shape& shape : {Shape{1, 24}, Shape{3, 2, 24}, Shape{24}, Shape{0, 24}}) {
      const int64_t n = shape_numel(shape);
      std::vector<float> x = adversarial(codebook_tables(p), p.block, n, true, 7);
      check_equal(*f, x, shape);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

template <class P>
constexpr bool kHasDqBuild = requires(const P& p) { p.dq_build; };

// dqmap= changes the dynamic map; the rules can only see it through CodebookParams.
TEST(CodebookRules, DqMapOption) {
  if constexpr (!kHasDqBuild<CodebookParams>) {
    GTEST_SKIP() << "CodebookParams has no dq_build member: the rules (and the GPU) use the default dqmap=avx2 map";
  } else {
    const Shape shape{40, 1024};
    for (const char* spec : {"nf4:dq:dqmap=avx512", "af4:dq:dqmap=scalar:backend=torch"}) {
      SCOPED_TRACE(spec);
      const auto f = make_format(spec);
      const CodebookParams p = std::get<CodebookParams>(f->params());
      check_equal(*f, adversarial(codebook_tables(p), p.block, shape_numel(shape), false, 4), shape);
    }
  }
}

// The Nearest thresholds decide as the reference's exact double midpoints: thr[j] is not above
// the midpoint and the next float is.
TEST(CodebookRules, NearestThresholdsAreTheExactMidpoints) {
  const auto f = make_format("codebook:values=-0.7/-0.3/0.1/0.35/0.5/0.9");
  const CodebookTables t = codebook_tables(std::get<CodebookParams>(f->params()));
  ASSERT_EQ(t.coder, CodebookCoder::Nearest);
  for (int j = 0; j + 1 < t.n; ++j) {
    const double mid = (static_cast<double>(t.value[j]) + t.value[j + 1]) / 2.0;
    EXPECT_LE(static_cast<double>(t.thr[j]), mid);
    EXPECT_GT(static_cast<double>(up(t.thr[j])), mid);
    EXPECT_EQ(codebook_code(t, t.thr[j], 1.0f), static_cast<uint32_t>(j));
    EXPECT_EQ(codebook_code(t, up(t.thr[j]), 1.0f), static_cast<uint32_t>(j + 1));
  }
}

// The x86 NaN rules of formats/host_nan.hpp equal the host's own arithmetic.
TEST(CodebookRules, HostNanArithmeticEqualsTheHost) {
  const uint32_t pats[] = {0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, 0x7f800000u, 0xff800000u,
                           0x7fc00000u, 0xffc00000u, 0x7fc00001u, 0xffd23456u, 0x7f800001u, 0xff812345u,
                           0x00000001u, 0x7f7fffffu, 0x00800000u, 0x40490fdbu};
  for (const uint32_t ua : pats)
    for (const uint32_t ub : pats) {
      volatile float a = f32_from_bits(ua), b = f32_from_bits(ub);
      const float m = a * b, s = a + b, d = a - b, q = a / b;
      EXPECT_EQ(f32_bits(hx_mul(a, b)), f32_bits(m)) << std::hex << ua << " * " << ub;
      EXPECT_EQ(f32_bits(hx_add(a, b)), f32_bits(s)) << std::hex << ua << " + " << ub;
      EXPECT_EQ(f32_bits(hx_sub(a, b)), f32_bits(d)) << std::hex << ua << " - " << ub;
      EXPECT_EQ(f32_bits(hx_div(a, b)), f32_bits(q)) << std::hex << ua << " / " << ub;
      EXPECT_EQ(f32_bits(hx_abs(a)), f32_bits(std::fabs(a)));
    }
}

}  // namespace
}  // namespace lowbit
