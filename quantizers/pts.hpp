// DMQ channel-wise Power-of-Two Scaling (PTS) with voting — a static activation quantizer
// (ALGORITHMS.md §5.3, FORMATS.md §7.2; from released code LeeDongYeun/dmq
// `quant/quantizer.py::ActivationQuantizer.get_ptf_scale_zero_point`, `run_quant.py`).
//
// Base: B-bit asymmetric min–max over the whole calibration tensor (DMQ ActivationQuantizer,
// channel_wise=False):  Δ = (max − min)/(2^B − 1),  zp = round(−min/Δ), NOT clamped to the code
// range (DMQ comments the clamp out), shared by every channel.
// Channel k (a column of X) uses Δ_k = Δ·2^−δ_k, δ_k ∈ {0, 1, 2, 3}:
//     q = clamp(round(x/Δ_k) + zp, 0, 2^B − 1),   x̂ = Δ_k·(q − zp)          (RNE, fp32 as torch)
// so a channel 8× smaller than the outlier channels that set Δ gets an 8× finer grid. In an
// integer kernel the multiplier moves into the weights (W̃_{:,k} ≪ δ_k), so Ŷ = Qpts(X)·Q(W)ᵀ.
//
// Calibration on N samples; a sample is a block of `sample_rows` consecutive rows of X (DMQ: one
// batch element = one image's feature map at one timestep; here the tokens of one capture).
//   1. per sample n and channel k: δ*_{n,k} = argmin_j Σ_{rows of n} (x − x̂_j)², ties to the
//      larger j (DMQ: torch.argmin over [Δ/8, Δ/4, Δ/2, Δ] returns the first minimum);
//   2. mode=vote: δ_k = mode_n δ*_{n,k} (ties to the larger δ: torch.mode on CPU returns the
//      smallest of the modal indices, and DMQ index 0 is Δ/8); agreement r_k = #(δ* = δ_k)/N;
//      r_k < κ → δ_k = 0 (multiplier 1). κ = 0.85: run_quant.py CLI default and the released
//      run scripts (the paper's κ); κ = 1: ActivationQuantizer's constructor default (unanimity).
//   mode=mse (no vote; the "MSE" rows of the DMQ PTS ablation, ALGORITHMS.md §10 question 8):
//      δ_k = argmin_j of the squared error summed over the whole calibration set.
// calibrate() freezes Δ, zp and δ; later tensors reuse them (values outside the calibrated range
// saturate at the code range).
//
// Differences from DMQ, on purpose: DMQ's calibration search rounds round(x/Δ_k + zp) while its
// forward pass rounds round(x/Δ_k) + zp; with RNE these differ only on exact ties when zp is odd.
// Both steps here use the forward-pass form, so the search scores exactly what quantize() does.
// A constant calibration tensor (max = min) takes Δ = max(|max|, |min|)/(2^B − 1) (1/(2^B − 1)
// for all zeros) instead of DMQ's division by zero. Non-finite values are left out of min/max and
// of the MSE scores; NaN quantises to NaN, ±Inf saturates. DMQ's post-SiLU shift (subtract
// silu_min before quantising) is not applied here: shift the data before calling.
//
// Storage (bits_per_element): B-bit codes + 2 bits of δ per channel amortised over the rows
// (2/rows per element) + the fp32 scale Δ and the fp32 zero point (64 bits per tensor).
//
// Spec: pts[:bits=8][:kappa=0.85][:mode=vote|mse][:sample_rows=64]
//   sample_rows default 64 = the token count of one captured input in data/captured; a trailing
//   block of fewer rows is one more sample; rows ≤ sample_rows gives N = 1 (vote = mse then).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/spec.hpp"
#include "quantizers/linear.hpp"
#include "quantizers/quantizer.hpp"

namespace lowbit::quant {

// δ ∈ {0, …, kPtsShifts − 1}: DMQ num_scales = 4, stored in 2 bits.
inline constexpr int kPtsShifts = 4;
inline constexpr int kPtsShiftBits = 2;

enum class PtsMode { Vote, Mse };

struct PtsOptions {
  int bits = 8;                    // B, 2..16
  double kappa = 0.85;             // agreement threshold κ ∈ [0, 1]
  PtsMode mode = PtsMode::Vote;
  int64_t sample_rows = 64;        // rows per calibration sample
};

// What calibration froze, plus the statistics behind δ.
struct PtsCalibration {
  float scale = 1;                 // base Δ
  float zero_point = 0;            // integer-valued, may lie outside [0, 2^B − 1]
  std::vector<int> delta;          // δ_k used by quantize(), per column
  std::vector<int> voted;          // mode_n δ*_{n,k} before the κ fallback (mse mode: for information)
  std::vector<double> agreement;   // r_k of `voted` (mse mode: for information)
  int64_t samples = 0;             // N
};

// Result of the vote on a samples × channels table of per-sample choices δ*.
struct PtsVote {
  std::vector<int> delta;          // after the κ fallback
  std::vector<int> voted;          // the mode
  std::vector<double> agreement;   // r_k
};

// Voting of §5.3 on `best` (row-major samples × channels, entries in [0, kPtsShifts)).
// lowbit::Error on bad sizes, entries or κ outside [0, 1].
PtsVote pts_vote(std::span<const int> best, int64_t samples, int64_t channels, double kappa);

// Base Δ and zp of asymmetric min–max over the finite entries of x (see the banner).
std::pair<float, float> pts_base_scale(const MatrixF& x, int bits);

// Squared error Σ (x − x̂)² of every (sample, channel, shift j), laid out
// [(n·channels + k)·kPtsShifts + j]; also returns the sample count.
std::vector<double> pts_shift_errors(const MatrixF& x, float scale, float zero_point, int bits,
                                     int64_t sample_rows, int64_t* samples);

// Per-sample MSE-best shift δ*_{n,k} (samples × channels, row-major; ties to the larger j).
std::vector<int> pts_best_shifts(std::span<const double> errors, int64_t samples, int64_t channels);

// Fake quantisation with explicit parameters (δ per column).
MatrixF pts_fake_quant(const MatrixF& x, float scale, float zero_point, std::span<const int> delta, int bits);

// Full calibration of the banner on x.
PtsCalibration pts_calibrate(const MatrixF& x, const PtsOptions& o);

class PtsQuantizer final : public MatrixQuantizer {
 public:
  explicit PtsQuantizer(PtsOptions o, std::optional<PtsCalibration> c = std::nullopt);
  std::string spec() const override;
  MatrixF quantize(const MatrixF& x) const override;
  double bits_per_element(int64_t rows, int64_t cols) const override;
  QuantizerPtr calibrate(const MatrixF& calib) const override;
  bool is_static() const override { return true; }

  const PtsOptions& options() const { return opt_; }
  // Set on a calibrated (frozen) quantizer.
  const std::optional<PtsCalibration>& calibration() const { return cal_; }

 private:
  PtsOptions opt_;
  std::optional<PtsCalibration> cal_;
};

// Consumes kappa=, mode=, sample_rows= and the bit width under `bits_key` ("bits" for the
// quantizer spec "pts:...", "abits" inside the linear algorithm) from the spec.
PtsOptions take_pts_options(Spec& spec, std::string_view bits_key = "bits");
// Builds an uncalibrated PTS quantizer from a "pts:..." spec and calls spec.finish().
QuantizerPtr make_pts_quantizer(Spec& spec);

// Linear algorithm "pts[:abits=8][:kappa=0.85|1][:mode=vote|mse][:sample_rows=64]": the PTS
// activation quantizer (calibrated on p.x) replaces p.aq; weights are p.wq->quantize(W).
// q.info: replaced quantizer, κ, mode, N, Δ, zp, histograms of δ and of the voted δ,
// agreement statistics. Does not call spec.finish() (the registry does).
QuantizedLinear pts_linear(const LinearProblem& p, Spec& spec);

// The accepted options of the linear algorithm (for the registry entry).
inline constexpr const char* kPtsLinearOptions = "abits=8, kappa=0.85, mode=vote|mse, sample_rows=64";

}  // namespace lowbit::quant
