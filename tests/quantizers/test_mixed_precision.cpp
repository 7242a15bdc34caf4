// Mixed precision: the exact assignment against brute force, greedy and bit-penalty baselines,
// and option tables evaluated on real quantizers.
#include <gtest/gtest.h>

#include <random>

#include "formats/error.hpp"
#include "quantizers/mixed_precision.hpp"

namespace lowbit::quant {
namespace {

MpCosts random_costs(std::mt19937& gen, int layers, int options) {
  std::uniform_real_distribution<double> err(0.0, 1.0), bits(2.0, 8.0);
  std::uniform_int_distribution<int> params(1, 1000);
  MpCosts c;
  for (int l = 0; l < layers; ++l) {
    c.params.push_back(params(gen));
    c.error.emplace_back();
    c.bits.emplace_back();
    for (int o = 0; o < options; ++o) {
      c.error.back().push_back(err(gen));
      c.bits.back().push_back(bits(gen));
    }
  }
  return c;
}

double min_avg_bits(const MpCosts& c, bool highest) {
  double num = 0, den = 0;
  for (size_t l = 0; l < c.params.size(); ++l) {
    const auto& b = c.bits[l];
    num += c.params[l] * (highest ? *std::max_element(b.begin(), b.end()) : *std::min_element(b.begin(), b.end()));
    den += c.params[l];
  }
  return num / den;
}

TEST(MixedPrecision, ExactEqualsBruteForceAndGreedyNeverWins) {
  std::mt19937 gen(11);
  int strict_greedy_losses = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const MpCosts c = random_costs(gen, 4, 3);
    const double lo = min_avg_bits(c, false), hi = min_avg_bits(c, true);
    const double budget = lo + (hi - lo) * std::uniform_real_distribution<double>(0.0, 1.0)(gen);
    const MpAssignment bf = mp_assign_brute_force(c, budget);
    const MpAssignment ex = mp_assign_exact(c, budget);
    const MpAssignment gr = mp_assign_greedy(c, budget);
    ASSERT_TRUE(bf.feasible && ex.feasible && gr.feasible) << trial;
    EXPECT_TRUE(ex.exact);
    EXPECT_EQ(ex.choice, bf.choice) << trial;
    EXPECT_DOUBLE_EQ(ex.total_error, bf.total_error) << trial;
    EXPECT_LE(ex.avg_bits, budget * (1 + 1e-12)) << trial;
    EXPECT_LE(gr.avg_bits, budget * (1 + 1e-12)) << trial;
    EXPECT_GE(gr.total_error, ex.total_error - 1e-12) << trial;
    if (gr.total_error > ex.total_error + 1e-9) ++strict_greedy_losses;
  }
  EXPECT_GT(strict_greedy_losses, 0);  // the comparison has teeth: greedy is not optimal
}

TEST(MixedPrecision, ExactOnLargerTablesAndThinning) {
  std::mt19937 gen(12);
  int thinned = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const MpCosts c = random_costs(gen, 7, 4);  // 16384 combinations
    const double budget = 0.5 * (min_avg_bits(c, false) + min_avg_bits(c, true));
    const MpAssignment bf = mp_assign_brute_force(c, budget), ex = mp_assign_exact(c, budget);
    EXPECT_DOUBLE_EQ(ex.total_error, bf.total_error) << trial;
    // A thinned frontier stays within the budget and can only be worse.
    const MpAssignment th = mp_assign_exact(c, budget, 3);
    ASSERT_TRUE(th.feasible);
    EXPECT_LE(th.avg_bits, budget * (1 + 1e-12));
    EXPECT_GE(th.total_error, ex.total_error - 1e-12);
    if (th.total_error > ex.total_error) {
      EXPECT_FALSE(th.exact);
    }
    thinned += th.exact ? 0 : 1;
  }
  EXPECT_GT(thinned, 0);
}

TEST(MixedPrecision, InfeasibleBudget) {
  std::mt19937 gen(13);
  const MpCosts c = random_costs(gen, 4, 3);
  const double budget = min_avg_bits(c, false) - 0.01;
  EXPECT_FALSE(mp_assign_exact(c, budget).feasible);
  EXPECT_FALSE(mp_assign_brute_force(c, budget).feasible);
  EXPECT_FALSE(mp_assign_greedy(c, budget).feasible);
  // The loosest budget: everything at the lowest error.
  const MpAssignment all = mp_assign_exact(c, 100);
  EXPECT_EQ(all.choice, mp_assign_penalty(c, 0).choice);
}

TEST(MixedPrecision, PenaltyExtremes) {
  std::mt19937 gen(14);
  const MpCosts c = random_costs(gen, 6, 4);
  const MpAssignment zero = mp_assign_penalty(c, 0), huge = mp_assign_penalty(c, 1e12),
                     inf = mp_assign_penalty(c, std::numeric_limits<double>::infinity());
  for (size_t l = 0; l < c.params.size(); ++l) {
    const auto& e = c.error[l];
    const auto& b = c.bits[l];
    EXPECT_EQ(zero.choice[l], std::min_element(e.begin(), e.end()) - e.begin());
    EXPECT_EQ(huge.choice[l], std::min_element(b.begin(), b.end()) - b.begin());
    EXPECT_EQ(inf.choice[l], huge.choice[l]);
  }
  EXPECT_DOUBLE_EQ(huge.avg_bits, min_avg_bits(c, false));
  // Average bits fall monotonically as λ grows.
  double prev = 1e9;
  for (const double lambda : {0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0}) {
    const double b = mp_assign_penalty(c, lambda).avg_bits;
    EXPECT_LE(b, prev + 1e-12) << lambda;
    prev = b;
  }
  EXPECT_THROW(mp_assign_penalty(c, -1), Error);
}

TEST(MixedPrecision, SensitivityUsesLowestAndHighestBitOptions) {
  MpCosts c;
  c.params = {10, 10};
  c.bits = {{4, 8, 3}, {3, 3, 8}};
  c.error = {{0.1, 0.01, 0.5}, {0.4, 0.2, 0.0}};
  const auto s = mp_sensitivity(c);
  EXPECT_EQ(s[0].low_option, 2);
  EXPECT_EQ(s[0].high_option, 1);
  EXPECT_DOUBLE_EQ(s[0].score, 0.49);
  EXPECT_DOUBLE_EQ(s[0].ratio, 50.0);
  EXPECT_EQ(s[1].low_option, 1);  // tie on 3 bits: the lower error
  EXPECT_DOUBLE_EQ(s[1].score, 0.2);
  EXPECT_TRUE(std::isinf(s[1].ratio));
}

MatrixF gaussian(int64_t rows, int64_t cols, uint32_t seed, float outlier = 0) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(gen);
  if (outlier != 0) m.col(3) *= outlier;
  return m;
}

TEST(MixedPrecision, EvaluatesOptionTablesOnRealQuantizers) {
  std::vector<MpLayer> layers = {
      {"fc_a", gaussian(32, 64, 1), gaussian(48, 64, 2), VectorF()},
      {"fc_b", gaussian(32, 128, 3, 30), gaussian(16, 128, 4), VectorF::Constant(16, 0.5f)},
      {"fc_c", gaussian(16, 64, 5), gaussian(64, 64, 6, 10), VectorF()},
  };
  const std::vector<MpOption> options = {
      {"fp32", "none", "none", "rtn"},
      {"w8", "int8:row", "none", "rtn"},
      {"w4g64", "int4:g64", "none", "rtn"},
      {"mxfp4", "mxfp4", "none", "rtn"},
      {"w4g64-a8", "int4:g64", "int8:row", "rtn"},
  };
  const MpTable t = evaluate_mixed_precision(layers, options);
  ASSERT_EQ(t.eval.size(), 3u);
  EXPECT_EQ(t.params, (std::vector<double>{48 * 64, 16 * 128, 64 * 64}));
  for (size_t l = 0; l < 3; ++l) {
    const auto& e = t.eval[l];
    EXPECT_EQ(e[0].rel_error, 0.0);
    EXPECT_EQ(e[0].weight_bits, 32.0);
    EXPECT_GT(e[1].rel_error, 0.0);
    EXPECT_LT(e[1].rel_error, e[2].rel_error);
    EXPECT_DOUBLE_EQ(e[2].weight_bits, 4.5);   // int4 codes + fp32 scale per 64
    EXPECT_DOUBLE_EQ(e[3].weight_bits, 4.25);  // MXFP4
    EXPECT_EQ(e[2].act_bits, 32.0);
    EXPECT_LT(e[4].act_bits, 32.0);
    EXPECT_GE(e[4].rel_error, 0.0);
    // The table's error is the relative output error of that quantized layer.
    LinearProblem p{layers[l].x, layers[l].w, layers[l].bias, make_quantizer("int4:g64"), make_quantizer("none")};
    const MatrixF y = linear_forward(p.x, p.w, p.bias);
    EXPECT_DOUBLE_EQ(e[2].rel_error, sq_diff(y, rtn_linear(p).forward(p.x)) / sq_norm(y));
  }
  const MpCosts c = mp_costs(t);
  const MpAssignment ex = mp_assign_exact(c, 6.0), bf = mp_assign_brute_force(c, 6.0);
  ASSERT_TRUE(ex.feasible);
  EXPECT_EQ(ex.choice, bf.choice);
  EXPECT_LE(ex.avg_bits, 6.0);
  const nlohmann::json r = mp_report(t, ex);
  EXPECT_EQ(r["layers"].size(), 3u);
  EXPECT_EQ(r["layers"][1]["layer"], "fc_b");
  EXPECT_DOUBLE_EQ(r["avg_weight_bits"].get<double>(), ex.avg_bits);
  EXPECT_GT(r["avg_act_bits"].get<double>(), 0.0);
}

TEST(MixedPrecision, ErrorsNameLayerAndOption) {
  std::vector<MpLayer> layers = {{"proj", gaussian(8, 64, 1), gaussian(8, 64, 2), VectorF()}};
  try {
    evaluate_mixed_precision(layers, std::vector<MpOption>{{"bad", "int4:g7x", "none", "rtn"}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'proj'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos) << e.what();
  }
  layers[0].w = gaussian(8, 32, 3);
  EXPECT_THROW(evaluate_mixed_precision(layers, std::vector<MpOption>{{"w8", "int8:row"}}), Error);
  MpCosts c;
  c.params = {1, 2};
  c.bits = {{4}};
  c.error = {{0.1}};
  EXPECT_THROW(mp_assign_exact(c, 4), Error);
}

}  // namespace
}  // namespace lowbit::quant
