// formats/lzs_rules.hpp is what the CUDA lzs4 kernels run: the stage-1 statistics (added and
// merged in any order and tree, as the warp and block reductions do), s8, and per group the
// FLAG, codes and values. Here the rules run on the CPU and must give the CPU lzs4 format's
// codes, flags, s8, fake_quant and decode values bit for bit, NaN payloads included, for
// g4 / g16 / g32 / g64, s8=tensor|token, calib=absmax|minmax, round=trunc|rne; against the
// make_format (fast) path and the scalar reference implementation alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <variant>

#include "formats/lzs_rules.hpp"
#include "formats/registry.hpp"
#include "formats/tensor_format.hpp"
#include "sim/crosscheck.hpp"

namespace lowbit {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

using Aux = std::vector<std::vector<uint32_t>>;

struct RuleOut {
  std::vector<uint32_t> codes;
  Aux aux;  // "flags" (one value per group), "s8" (float bits), as the GPU launchers return them
  std::vector<float> values;
};

// s8 per tensor or per row. Per tensor, the statistics are gathered in a shuffled tree of
// chunks (tree_seed) to show that order does not matter.
std::vector<float> scales_rules(const LzsParams& p, const std::vector<float>& x, int64_t rows, int64_t cols,
                                uint32_t tree_seed) {
  if (p.per_token) {
    std::vector<float> s(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) s[r] = lzs_scale(p.calib, lzs_range(p.calib, x.data() + r * cols, cols, r * cols));
    return s;
  }
  const int64_t n = static_cast<int64_t>(x.size());
  std::mt19937 gen(tree_seed);
  std::vector<LzsRange> parts;
  for (int64_t i = 0; i < n;) {
    const int64_t len = std::min<int64_t>(n - i, 1 + gen() % 97);
    if (gen() % 2) {
      parts.push_back(lzs_range(p.calib, x.data() + i, len, i));
    } else {  // backwards, one element at a time
      LzsRange r;
      for (int64_t j = i + len - 1; j >= i; --j) r.add(p.calib, x[j], j);
      parts.push_back(r);
    }
    i += len;
  }
  while (parts.size() > 1) {  // merge random pairs
    const size_t a = gen() % parts.size();
    size_t b = gen() % (parts.size() - 1);
    if (b >= a) ++b;
    parts[a].merge(parts[b]);
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(b));
  }
  return {lzs_scale(p.calib, parts.empty() ? LzsRange{} : parts[0])};
}

std::vector<float> decode_rules(const LzsParams& p, const std::vector<uint32_t>& codes, const Aux& aux, int64_t cols) {
  const int64_t n = static_cast<int64_t>(codes.size()), g = p.group;
  std::vector<float> v(codes.size());
  for (int64_t i = 0; i < n; ++i) {
    const float s = f32_from_bits(aux.at(1).at(p.per_token ? i / cols : 0));
    v[i] = lzs_value(codes[i], static_cast<int>(aux.at(0).at(i / g)), s);
  }
  return v;
}

RuleOut run_rules(const LzsParams& p, const std::vector<float>& x, int64_t rows, int64_t cols, uint32_t tree_seed) {
  const int64_t n = static_cast<int64_t>(x.size()), g = p.group;
  const std::vector<float> s8 = scales_rules(p, x, rows, cols, tree_seed);
  RuleOut o;
  o.codes.resize(x.size());
  o.values.resize(x.size());
  std::vector<uint32_t> flags(static_cast<size_t>(n / g));
  for (int64_t gi = 0; gi < n / g; ++gi) {
    const float s = s8[p.per_token ? (gi * g) / cols : 0];
    flags[gi] = static_cast<uint32_t>(
        lzs_encode_group_rule(p, x.data() + gi * g, g, s, o.codes.data() + gi * g, o.values.data() + gi * g));
  }
  std::vector<uint32_t> sb(s8.size());
  for (size_t i = 0; i < s8.size(); ++i) sb[i] = f32_bits(s8[i]);
  o.aux = {std::move(flags), std::move(sb)};
  return o;
}

void expect_bits(const std::vector<float>& want, const std::vector<float>& got, const std::vector<float>& x,
                 const char* what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(f32_bits(want[i]), f32_bits(got[i]))
        << what << " element " << i << " x=" << x[i] << " (0x" << std::hex << f32_bits(x[i]) << "): cpu 0x"
        << f32_bits(want[i]) << ", rules 0x" << f32_bits(got[i]) << std::dec;
}

void check_equal(const TensorFormat& f, const std::vector<float>& x, const Shape& shape, uint32_t tree_seed) {
  const LzsParams p = std::get<LzsParams>(f.params());
  const RowView rv = row_view(shape);
  const PackedTensor pk = f.encode(x, shape);
  const RuleOut r = run_rules(p, x, rv.rows, rv.cols, tree_seed);
  ASSERT_EQ(pk.sections.size(), 3u);
  ASSERT_EQ(pk.sections[1].name, "flags");
  ASSERT_EQ(pk.sections[2].name, "s8");
  const std::vector<uint32_t> codes = f.unpacked_codes(pk);
  ASSERT_EQ(codes.size(), r.codes.size());
  for (size_t i = 0; i < codes.size(); ++i)
    ASSERT_EQ(codes[i], r.codes[i]) << "code of element " << i << " x=" << x[i];
  std::vector<uint8_t> packed(static_cast<size_t>(packed_bytes(static_cast<int64_t>(codes.size()), 4)));
  pack_codes(r.codes, 4, packed);
  ASSERT_EQ(packed, pk.sections[0].bytes) << "packed codes";
  ASSERT_EQ(make_section_u("flags", 8, pk.sections[1].shape, r.aux[0]).bytes, pk.sections[1].bytes) << "flags";
  std::vector<uint8_t> s8b(r.aux[1].size() * 4);
  if (!s8b.empty()) std::memcpy(s8b.data(), r.aux[1].data(), s8b.size());
  ASSERT_EQ(s8b, pk.sections[2].bytes) << "s8";
  std::vector<float> fq(x.size()), dec(x.size());
  f.fake_quant(x, shape, fq);
  expect_bits(fq, r.values, x, "fake_quant");
  f.decode(pk, dec);
  std::vector<uint32_t> s8w(pk.sections[2].bytes.size() / 4);
  if (!s8w.empty()) std::memcpy(s8w.data(), pk.sections[2].bytes.data(), s8w.size() * 4);
  expect_bits(dec, decode_rules(p, codes, {section_u32(pk.sections[1]), s8w}, rv.cols), x, "decode");
}

// Rows of 128 built to hit each rule (kind = row % 16): exact .5 ties of x / s8 (s8 = 1 under
// absmax and minmax), all +0, all -0, +-0 mixed starting with -0, a constant row (minmax s8 = 0),
// NaN payloads (a signalling one), +Inf, all +Inf (minmax: Inf - Inf), -Inf, subnormals, huge
// values whose range overflows (minmax s8 = Inf), one-sided data, Gaussian rows. finite: no NaN
// or Inf rows (so a per-tensor s8 is a number).
std::vector<float> adversarial(int64_t rows, int64_t cols, bool finite, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x.data() + r * cols;
    int kind = static_cast<int>(r % 16);
    if (finite && (kind == 6 || kind == 7 || kind == 8 || kind == 9 || kind == 11)) kind = 15;
    for (int64_t c = 0; c < cols; ++c) {
      const float h = static_cast<float>(static_cast<int>(gen() % 255) - 127) + 0.5f;  // -126.5 .. 127.5
      float v = nd(gen) * std::ldexp(1.0f, static_cast<int>(r % 9) - 4);
      switch (kind) {
        case 0: v = c == 0 ? 128.0f : std::min(h, 127.5f); break;              // absmax: s8 = 1
        case 1: v = c == 0 ? 127.5f : (c == 1 ? -127.5f : h); break;           // minmax: s8 = 1
        case 2: v = 0.0f; break;
        case 3: v = -0.0f; break;
        case 4: v = (c % 2 == 0) ? -0.0f : 0.0f; break;
        case 5: v = 3.25f; break;
        case 6: v = c == 7 ? f32_from_bits(0x7fc00001u) : (c == 9 ? f32_from_bits(0xff800005u) : v); break;
        case 7: v = c == cols - 1 ? kInf : v; break;
        case 8: v = kInf; break;
        case 9: v = c == 3 ? -kInf : v; break;
        case 10: v = f32_from_bits(static_cast<uint32_t>(gen() % 0x7fffffu)) * ((c % 2) ? -1.0f : 1.0f); break;
        case 11: v = (c % 2 ? -1.0f : 1.0f) * std::numeric_limits<float>::max() * 0.75f; break;
        case 12: v = std::fabs(v) + 1.0f; break;
        case 13: v = -std::fabs(v) * 1e-30f; break;
        case 14: v = (c % 16 == 0) ? v * 100.0f : v; break;
        default: break;
      }
      xr[c] = v;
    }
  }
  return x;
}

std::vector<std::string> specs() {
  std::vector<std::string> out;
  for (const char* g : {"g16", "g32"})
    for (const char* s8 : {"tensor", "token"})
      for (const char* calib : {"absmax", "minmax"})
        for (const char* rnd : {"trunc", "rne"})
          out.push_back(std::string("lzs4:") + g + ":s8=" + s8 + ":calib=" + calib + ":round=" + rnd);
  for (const char* s : {"lzs4", "lzs4:g4:s8=token", "lzs4:g64:calib=minmax:round=rne", "lzs4:g128:s8=token:calib=minmax",
                        "lzs4:g8:round=rne"})
    out.push_back(s);
  return out;
}

TEST(LzsRules, EqualTheCpuFormatBitForBit) {
  const Shape shape{48, 512};
  const int64_t n = shape_numel(shape);
  for (const std::string& spec : specs()) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    const auto fr = detail::make_lzs_format(spec, detail::LzsImpl::Reference);
    struct Data {
      const char* name;
      std::vector<float> x;
    };
    const Data data[] = {{"crosscheck_inputs", crosscheck_inputs(*f, shape, 1)},
                         {"adversarial finite", adversarial(shape[0], shape[1], true, 2)},
                         {"adversarial specials", adversarial(shape[0], shape[1], false, 3)},
                         {"all zero", std::vector<float>(static_cast<size_t>(n), 0.0f)},
                         {"all -0", std::vector<float>(static_cast<size_t>(n), -0.0f)}};
    uint32_t tree = 11;
    for (const Data& d : data) {
      SCOPED_TRACE(d.name);
      check_equal(*f, d.x, shape, ++tree);
      check_equal(*fr, d.x, shape, ++tree);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(LzsRules, OddShapes) {
  for (const char* spec : {"lzs4:g4", "lzs4:g4:s8=token:calib=minmax", "lzs4:g3:s8=token:round=rne"}) {
    SCOPED_TRACE(spec);
    const auto f = make_format(spec);
    for (const Shape& shape : {Shape{1, 48}, Shape{2, 3, 48}, Shape{48}, Shape{0, 48}}) {
      const RowView rv = row_view(shape);
      check_equal(*f, adversarial(rv.rows, rv.cols, false, 5), shape, 3);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

// The statistics are order-free: a NaN beats numbers, the earlier NaN wins, ties go to the
// earlier index (+0 / -0), so any tree of merges gives the left fold's bits.
TEST(LzsRules, RangeMergeIsTheLeftFold) {
  const float vals[] = {0.0f, -0.0f, 1.0f, -1.0f, kInf, -kInf, f32_from_bits(0x7fc00001u), f32_from_bits(0xffc00002u)};
  std::mt19937 gen(9);
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = 1 + static_cast<int>(gen() % 12);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = vals[gen() % 8];
    for (const LzsCalib c : {LzsCalib::Absmax, LzsCalib::Minmax}) {
      const LzsRange fold = lzs_range(c, x.data(), n);
      LzsRange a, b;
      const int cut = static_cast<int>(gen() % static_cast<uint32_t>(n + 1));
      for (int i = n - 1; i >= cut; --i) b.add(c, x[i], i);
      for (int i = 0; i < cut; ++i) a.add(c, x[i], i);
      b.merge(a);
      EXPECT_EQ(f32_bits(lzs_scale(c, fold)), f32_bits(lzs_scale(c, b)));
      EXPECT_EQ(f32_bits(fold.hi), f32_bits(b.hi));
      if (c == LzsCalib::Minmax) {
        EXPECT_EQ(f32_bits(fold.lo), f32_bits(b.lo));
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
