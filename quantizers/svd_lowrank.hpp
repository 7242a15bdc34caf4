// SVD low-rank branch, SVDQuant and LoRC (ALGORITHMS.md §2.1–2.4).
//
// W (n × m) = U Σ Vᵀ (float64 SVD); rank-r branch lr_up = U_r Σ_r (n × r, deepcompressor's "b"),
// lr_down = V_rᵀ (r × m, its "a"), both rounded to fp16 (the branch is kept in 16 bit) before the
// residual R = W − lr_up·lr_down is formed, so branch + residual reconstruct W up to one float
// rounding per element.
//
// SVDQuant: smoothing (fixed α, or the 39-candidate search with the low-rank-aware objective,
// deepcompressor allow_low_rank), SVD of Ŵ, residual quantised, iterative refinement:
//   Q_0 = 0; L_k = SVD_r(Ŵ − Q_{k−1}); R_k = Ŵ − L_k; Q_k = Q(R_k); error of X̂L_k + Q(X̂)Q_k;
//   keep the best (ties to the newer); early stop at the first iteration not ≤ the best so far.
// LoRC (ZeroQuant-V2, the ablation SVDQuant compares with): Q(W) first, then a rank-r branch
// of the weight error W − Q(W).
#pragma once
#include "quantizers/linear.hpp"

namespace lowbit::quant {

struct LowRank {
  MatrixF up;                   // n × r
  MatrixF down;                 // r × m
  Eigen::VectorXd singular;     // all singular values of the decomposed matrix, descending
};

// Rank-r factors of w (r ≤ min(n, m); r = 0 gives empty factors); fp16-rounded when `fp16`.
LowRank low_rank(const MatrixF& w, int64_t rank, bool fp16 = true);

// "svdquant[:rank=32][:smooth=search|off|ALPHA][:iters=1][:early_stop=on|off][:grid=20][:span=absmax|rms]"
QuantizedLinear svdquant_linear(const LinearProblem& p, Spec& spec);
// "svd[:rank=32]": the SVD branch alone (no smoothing, one iteration) — the "SVD only" ablation.
QuantizedLinear svd_only_linear(const LinearProblem& p, Spec& spec);
// "lorc[:rank=32]": low-rank compensation of the weight quantisation error.
QuantizedLinear lorc_linear(const LinearProblem& p, Spec& spec);

}  // namespace lowbit::quant
