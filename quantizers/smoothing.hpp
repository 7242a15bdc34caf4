// SmoothQuant-style smoothing (ALGORITHMS.md §2.2, §7): migrate activation outliers into the
// weight with a per-input-channel factor λ, X̂ = X·diag(λ)⁻¹, Ŵ = W·diag(λ) (W is n × m, so
// column j of W is scaled), which keeps X·Wᵀ exact before quantisation.
//   λ_j = span_x,j^α / span_w,j^β, span = AbsMax (max |·| over tokens / output channels) or RMS;
//   λ_j = 0 or non-finite → 1 (deepcompressor).
// SmoothQuant: β = 1 − α, α = 0.5 default. SVDQuant's search (deepcompressor GridSearch,
// num_grids 20, beta −2): candidates {(0,0)} ∪ {(α,0)} ∪ {(α,1−α)}, α ∈ {1/20, …, 19/20} = 39,
// each scored by the layer output error with both sides quantised as at inference; argmin kept.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "quantizers/linear.hpp"

namespace lowbit::quant {

enum class Span { AbsMax, Rms };

// Per-column span of a matrix (column j = input channel j, for both X and W).
VectorF channel_span(const MatrixF& m, Span span);

// λ for (α, β); zero or non-finite entries become 1.
VectorF smoothing_factors(const VectorF& span_x, const VectorF& span_w, double alpha, double beta);

struct SmoothCandidate {
  double alpha = 0, beta = 0;
};

// SVDQuant's grid: (0,0), then (α,0) and (α,1−α) for α = k/grid, k = 1..grid−1.
std::vector<SmoothCandidate> svdquant_smooth_grid(int grid);

// Picks the candidate with the smallest calibration error; `build` makes the quantized layer
// for a given λ. Ties keep the earlier candidate. Returns λ and fills `report` with every
// candidate's (alpha, beta, error).
VectorF search_smoothing(const LinearProblem& p, const std::vector<SmoothCandidate>& grid, Span span,
                         const std::function<QuantizedLinear(const VectorF&)>& build, nlohmann::json& report);

// Applies λ and quantises both sides (no low-rank branch).
QuantizedLinear smoothed_linear(const LinearProblem& p, const VectorF& lambda);

// "smoothquant[:alpha=0.5|search][:beta=B][:span=absmax|rms][:grid=20]"
QuantizedLinear smoothquant_linear(const LinearProblem& p, Spec& spec);

}  // namespace lowbit::quant
