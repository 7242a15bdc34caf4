// Numerical checks of the error-bound propositions of ALGORITHMS.md: SVDQuant Prop 4.1 (error
// decomposition of a quantised linear layer) and Prop 4.2 (Gaussian quantisation-error bound),
// §2.7, and the QuaRTZ error comparison LZS vs naive INT4, §3.2 (with its critique). Everything
// is accumulated in double; the results are plain structs with a to_json each. A bound that
// fails is a finding, not an error: lowbit::Error is thrown only for bad input (empty or
// non-finite tensors, mismatched shapes, bad options).
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/tensor_format.hpp"
#include "quantizers/quantizer.hpp"
#include "sim/analysis.hpp"

namespace lowbit {

// ---- Prop 4.1 ------------------------------------------------------------------------------
// For X (b×m), W (n×m, PyTorch layout, Y = X·Wᵀ):
//   LHS = ‖XWᵀ − Q(X)Q(W)ᵀ‖_F
//   RHS = ‖X‖_F‖W − Q(W)‖_F + ‖X − Q(X)‖_F(‖W‖_F + ‖W − Q(W)‖_F)
// held: LHS ≤ (RHS + fp_allowance)·(1 + rel_tol), where fp_allowance = γ_m(‖X‖_F‖W‖_F +
// ‖Q(X)‖_F‖Q(W)‖_F) bounds the rounding of the two double GEMMs inside LHS and rel_tol =
// max(1e-12, γ_{N+4}) that of the norm reductions (γ_k = k·u/(1 − k·u), u = 2^-53, N the
// largest number of terms of a norm); docs/bounds.md derives both. The bound itself is exact
// algebra, so a "no" beyond these allowances means a bug, not a finding about Q.
struct Prop41Sample {
  int64_t row_begin = 0;
  int64_t rows = 0;
  double lhs = 0;
  double rhs = 0;
  double x_norm = 0, x_err = 0;  // ‖X‖_F, ‖X − Q(X)‖_F of the sample
  double w_norm = 0, w_err = 0;  // ‖W‖_F, ‖W − Q(W)‖_F
  double fp_allowance = 0;
  double rel_tol = 0;
  bool held = false;
  double slack = 0;              // RHS / LHS (+inf when LHS = 0 < RHS, NaN when both are 0)
};

struct Prop41Result {
  std::string x_quantizer, w_quantizer;
  int64_t b = 0, m = 0, n = 0;
  int64_t sample_rows = 1;
  Prop41Sample whole;                 // the whole X as one sample
  std::vector<Prop41Sample> samples;  // row blocks of sample_rows rows (the last may be shorter)
  int64_t samples_held = 0;
  bool all_held = false;              // whole and every sample
  double min_slack = 0, median_slack = 0;  // over `samples`
  TensorAnalysis output;              // layer output Y = XWᵀ vs Q(X)Q(W)ᵀ (whole X)
};

// Each sample's activations are quantised by themselves (Q(X_s) = qx applied to the block, after
// qx->calibrate(X) so static quantizers use the scales of the whole X); Q(W) once. Throws
// lowbit::Error on empty or non-finite X/W, mismatched in-features, sample_rows < 1.
Prop41Result check_prop41(const quant::MatrixF& x, const quant::MatrixF& w, const quant::QuantizerPtr& qx,
                          const quant::QuantizerPtr& qw, int64_t sample_rows = 1);

// The LHS and RHS of one pair of already-quantised matrices (exposed for tests).
Prop41Sample prop41_terms(const quant::MatrixF& x, const quant::MatrixF& qx, const quant::MatrixF& w,
                          const quant::MatrixF& qw);

// ---- Prop 4.2 ------------------------------------------------------------------------------
// R ~ N(0,1)^n (sim/synthetic.hpp "gaussian", Philox-keyed), absmax scale per tensor (group 0)
// or per group of G consecutive elements, s = max|R_g|/q_max, Q(R) = s·rne(R/s) in double.
//   ratio    = mean_t ‖R_t − Q(R_t)‖_F / mean_t ‖R_t‖_F over T trials
//   bound    = sqrt(π·ln N)/q_max, N = n (per tensor) or G (per group)
//   c        = sqrt(π·ln N / N) (bound = c·sqrt(N)/q_max), c_meas = ratio·q_max/sqrt(N)
//   held     = ratio ≤ bound, slack = bound/ratio
struct Prop42Options {
  std::vector<int64_t> sizes{4096, 65536, 1048576};
  std::vector<int> qmax{7, 127};
  std::vector<int64_t> groups{0, 64};  // 0 = one scale for the tensor
  int trials = 8;
  uint64_t seed = 0;
};

struct Prop42Row {
  int64_t n = 0;
  int qmax = 0;
  int64_t group = 0;       // 0 = per tensor
  int64_t bound_size = 0;  // N in the bound: n or G
  int trials = 0;
  double mean_err_norm = 0, mean_norm = 0;
  double ratio = 0, ratio_min = 0, ratio_max = 0;  // ratio, and per-trial extremes of ‖R − Q(R)‖/‖R‖
  double bound = 0;
  double c = 0, c_meas = 0;
  bool held = false;
  double slack = 0;
};

// Trial t of size n uses synthetic_tensor("gaussian", {n}, seed_t) with seed_t a splitmix64 mix
// of (seed, n, t). Throws on sizes < 2, q_max < 1, trials < 1, groups that do not divide n.
std::vector<Prop42Row> check_prop42(const Prop42Options& opt);

// ---- QuaRTZ (ALGORITHMS.md §3.2) -------------------------------------------------------------
// For x (rows = tokens, groups along the last axis) and an lzs4 spec, with lowbit's own codec:
//   E_q8    = mean |x − s8·q8|            (q8 recomputed with lzs_quantize_int8 from the packed s8,
//                                           checked against the packed codes and FLAGs)
//   E_LZS   = mean |s8·q8 − s8·q̂|         (q̂ = ±(c << FLAG) decoded from the packed tensor)
//   E_total = mean |x − LZS(x)|
//   E_q4    = mean |x − INT4(x)|, INT4 = lowbit "int4:tensor" or "int4:row" (absmax, q_max 7,
//             the s8 granularity); worst case s4/2 (mean over elements of the row's s4/2)
// Thresholds on E[E_LZS] in units of s8 (per element, then averaged): the paper's 7.5 (s4 = 16·s8),
// the §3.2 correction s4/s8 = 127/7 → 127/14 − 1/2 ≈ 8.571, and the tensor's actual mean
// (s4/s8)/2 − 1/2 (lowbit's absmax s8 = amax/128, so s4/s8 = 128/7 there).
struct QuartzResult {
  std::string format, int4_format;
  int64_t rows = 0, cols = 0, group = 0;
  bool per_token = false;
  std::string round;  // "trunc" | "rne"
  double s8_min = 0, s8_max = 0;
  double s4_over_s8 = 0;  // mean over elements of s4/s8 (NaN where s8 = 0)
  double e_q8 = 0, e_lzs = 0, e_total = 0;
  double e_q4_mean = 0, e_q4_bound = 0;
  double e_lzs_in_s8 = 0;   // mean |q8 − q̂| (integer units of s8)
  double e_q8_in_s8 = 0;    // mean |x/s8 − q8|
  double threshold_paper = 7.5, threshold_spec = 0, threshold_actual = 0;
  double p_elem_ge8 = 0;        // P(|q8| ≥ 8)
  double p_group_flag = 0;      // P(group FLAG > 0)
  double p_elem_truncated = 0;  // P(q̂ ≠ q8)
  FlagHistogram flags;
  // E_total ≤ E_q8 + E_LZS: checked element by element, |x − LZS| ≤ |x − Q8| + |Q8 − LZS|
  // (every difference of floats is exact in double; 4u relative for the one rounded add), which
  // implies it for the means without a summation tolerance; slack = (E_q8 + E_LZS)/E_total.
  bool triangle_held = false;
  int64_t triangle_violations = 0;
  double triangle_slack = 0;
  // E_q8 + E_LZS < E_q4 (mean vs mean); slack = E_q4 / (E_q8 + E_LZS).
  bool beats_int4_mean = false;
  double int4_mean_slack = 0;
  // E_q8 + E_LZS < s4/2 (the paper's mean-vs-worst-case comparison); slack likewise.
  bool beats_int4_bound = false;
  double int4_bound_slack = 0;
  // E_total < E_q4: the quantity that matters.
  bool total_beats_int4 = false;
  TensorAnalysis lzs, int4;            // small-magnitude collapse, cosine, ...
  CodeEntropy lzs_codes, int4_codes;   // bit-wise entropy (QuaRTZ Fig. 4)
};

// x is rows × cols (C order); spec must be an lzs4 spec ("lzs4:g16:s8=token:round=trunc").
// Throws on an empty or non-finite x, a non-lzs4 spec, groups that do not divide cols.
QuartzResult check_quartz(std::span<const float> x, int64_t rows, int64_t cols, const std::string& spec);

nlohmann::json to_json(const Prop41Sample& s);
nlohmann::json to_json(const Prop41Result& r);
nlohmann::json to_json(const Prop42Row& r);
nlohmann::json to_json(const QuartzResult& r);

}  // namespace lowbit
