// Logarithmic weight quantizers: LRQ-DiT's Twin-Log Quantization (TLQ, ALGORITHMS.md §4.1,
// "Code semantics", from the released `quant_utils/qdiff/base/base_quantizer.py`
// StaticQuantizer) and a plain sign + log2 quantizer to compare it with.
//
// TLQ, per row (= per output channel of W):
//   ℓ = log2(|w| + η); the positive and the negative elements form two sides, each with its own
//   step Δ and zero z:  Δ = (ℓ_clip − ℓ_min)/2^{b−1},  z = round(ℓ_min/Δ),
//   code = clamp(round(ℓ/Δ) − z, 0, c_max) with c_max = 2^{b−1} − 1 (positive side) or 2^{b−1}
//   (negative side, as released), dequant ±(2^{Δ(code + z)} − η); zeros stay zero.
//   ℓ_clip is the clip-percentile of the side (torch.quantile 'nearest': sorted[round(p·(n−1))],
//   round half to even), ℓ_min its minimum.
//   stats=masked (default; the released code and the paper's W'·M±): the statistics are taken
//     over the whole row with the other side's elements (and zeros) entering as 0, exactly the
//     masked tensors x_pos / x_neg of the code. For |w| < 1 this makes ℓ_clip = 0 whenever a
//     single placeholder lies above the percentile, i.e. the clip grid is mostly inactive.
//   stats=side: statistics over the side's own elements only.
//   Search: η ∈ {0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0, 0.1, 0.2, 0.3, 0.4, 0.5} (the
//   code's order; ties keep the first) × positive clip × negative clip ∈
//   {0.98, 0.99, 0.999, 0.9999, 0.99999}: 325 candidates scored by weight-space squared error.
//   select=row (default, ALGORITHMS.md): the best candidate per row. select=tensor: one
//   candidate for the whole matrix minimising the total error (what the released code does:
//   torch.mean over the tensor), each row keeping its own Δ and z.
//   Magnitudes 2^{Δ(code+z)} − η are clamped at 0 so a weight never changes sign (the released
//   code can flip tiny weights when 2^{Δ(code+z)} < η; clamping only lowers the error);
//   `signflip` reproduces the code.
//   Arithmetic in double (the code: float32). Non-finite elements pass through unchanged and
//   count as zeros in the statistics.
//   Storage (bits_per_element): b bits per element as the paper counts them, plus Δ+, z+, Δ−,
//   z−, η per row as fp32 (160 bits; with select=tensor η is one fp32 per matrix). The exact
//   code alphabet has 2^{b−1} + (2^{b−1} + 1) + 1 (zero) states, one more than b bits hold.
//
// Plain log2 ("log2:bits=b"), per row: e = log2|w| over the nonzero elements, L = 2^{b−1}
//   levels spanning [min e, max e]: Δ = (max e − min e)/(L − 1), code = clamp(round((e −
//   min e)/Δ), 0, L − 1), dequant sign(w)·2^{min e + Δ·code}; zeros stay zero. Storage: a sign
//   bit + b − 1 code bits, plus min e and Δ per row as fp32.
//
// Spec grammar: "tlq[:bits=4][:select=row|tensor][:stats=masked|side][:signflip]",
// "log2[:bits=4]"; bits ∈ [2, 8].
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "formats/spec.hpp"
#include "quantizers/quantizer.hpp"

namespace lowbit::quant {

enum class TwinLogStats { Masked, Side };
enum class TwinLogSelect { Row, Tensor };

// η grid and per-side clip percentiles in the released code's search order.
inline constexpr std::array<double, 13> kTwinLogEtas = {0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05,
                                                        0.0,   0.1,   0.2,  0.3,  0.4,  0.5};
inline constexpr std::array<double, 5> kTwinLogClips = {0.98, 0.99, 0.999, 0.9999, 0.99999};

struct TwinLogSide {
  double delta = 1;  // Δ (log2 units per code)
  double zero = 0;   // z (an integer)
};

struct TwinLogParams {
  double eta = 0;
  double pos_clip = 1, neg_clip = 1;
  TwinLogSide pos, neg;
};

struct TwinLogOptions {
  int bits = 4;
  TwinLogStats stats = TwinLogStats::Masked;
  TwinLogSelect select = TwinLogSelect::Row;
  bool sign_flip = false;
};

// Δ and z of both sides of one row for one (η, positive clip, negative clip) candidate.
// lowbit::Error if bits ∉ [2, 8], η < 0 or a clip ∉ (0, 1].
TwinLogParams tlq_candidate(std::span<const float> row, const TwinLogOptions& opt, double eta, double pos_clip,
                            double neg_clip);
// Dequantizes one row with the given parameters into out (same length, lowbit::Error otherwise).
void tlq_dequant_row(std::span<const float> row, const TwinLogOptions& opt, const TwinLogParams& p,
                     std::span<float> out);
// The grid search: per-row best parameters (select=row), or the one candidate minimising the
// total error applied to every row (select=tensor). One entry per row of x.
std::vector<TwinLogParams> tlq_search(const MatrixF& x, const TwinLogOptions& opt);

class TwinLogQuantizer final : public MatrixQuantizer, public std::enable_shared_from_this<TwinLogQuantizer> {
 public:
  explicit TwinLogQuantizer(TwinLogOptions opt);
  std::string spec() const override;
  MatrixF quantize(const MatrixF& x) const override;
  double bits_per_element(int64_t rows, int64_t cols) const override;
  QuantizerPtr calibrate(const MatrixF&) const override { return shared_from_this(); }
  const TwinLogOptions& options() const { return opt_; }

 private:
  TwinLogOptions opt_;
};

class Log2Quantizer final : public MatrixQuantizer, public std::enable_shared_from_this<Log2Quantizer> {
 public:
  explicit Log2Quantizer(int bits);
  std::string spec() const override;
  MatrixF quantize(const MatrixF& x) const override;
  double bits_per_element(int64_t rows, int64_t cols) const override;
  QuantizerPtr calibrate(const MatrixF&) const override { return shared_from_this(); }

 private:
  int bits_;
};

// Builds "tlq:..." or "log2:..." (spec.name() picks which) and consumes and checks its
// options (calls spec.finish). lowbit::Error on another name or a bad option.
QuantizerPtr make_twin_log_quantizer(Spec& spec);

}  // namespace lowbit::quant
