// Hadamard-family rotations, the DuQuant-style outlier-aware rotation, the fluctuation metric J
// and the two rotation algorithms on linear layers: plain rotation (QuaRot-style, ALGORITHMS.md
// §7 "Hadamard rotation") and LRQ-DiT's Adaptive Rotation Scheme (ALGORITHMS.md §4.2).
//
// Every rotation acts on the right of both sides of the layer: X·Wᵀ = (X·H)·(W·H)ᵀ (rotation.hpp).
//
// Kinds (make_rotation):
//   hadamard  H = (H_m ⊗ H_{2^k}) / sqrt(m·2^k) for dim = m·2^k (hadamard_matrix picks m): FWHT
//             along the 2^k factor, then a dense m × m multiply.
//   rht       randomized Hadamard x ← x·diag(ε)·H (signs first, then the Hadamard above), with
//             ε_i = 1 − 2·(sr_bits(seed, i) & 1) (formats/philox.hpp, so a GPU can reproduce
//             them). This is QuaRot's random_hadamard_matrix = diag(ε)·H order.
//   block     block-diagonal Hadamard, blocks of `block` (a power of two) consecutive channels,
//             each the normalized Sylvester H_block (LRQ-DiT / ConvRot, block 64 or 128).
//   duquant   needs calibration activations: make_duquant_rotation (see DuQuantRotation).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "formats/spec.hpp"
#include "quantizers/linear.hpp"
#include "quantizers/matrix.hpp"
#include "quantizers/rotation.hpp"

namespace lowbit::quant {

// In-place normalized fast Walsh–Hadamard transform of every row: x ← x·H_n/sqrt(n) with H_n
// the Sylvester matrix (H_1 = [1], H_2n = [[H, H], [H, −H]]). Butterflies (a, b) → (a + b, a − b)
// over log2(n) stages with strides 1, 2, 4, ..., then one scale by 1/sqrt(n); float arithmetic.
// lowbit::Error unless cols is a power of two.
void fwht_rows(MatrixF& x);

// Dense unnormalized ±1 Hadamard matrix of order n (H·Hᵀ = n·I), n = m·2^k with
//   m = 1                                   Sylvester,
//   m = q + 1,   q prime, q ≡ 3 (mod 4)     Paley I   (12, 20, 24, 32, 44, 48, 60, 68, 72, 80, ...),
//   m = 2(q + 1), q prime, q ≡ 1 (mod 4)    Paley II  (12, 28, 36, 60, 76, 84, ...),
// and H_n = H_m ⊗ H_{2^k} (Sylvester). The smallest such m is used (Paley I before Paley II at
// the same m), e.g. 12 = Paley I (q = 11), 20 = Paley I (q = 19), 36 = Paley II (q = 17).
// DiT dims: 1152 = 36·32, 4608 = 36·128, 3072 = 12·256, 320 = 20·16. lowbit::Error otherwise.
MatrixF hadamard_matrix(int64_t n);
// The factorisation n = m·2^k hadamard_matrix uses: {m, 2^k}; lowbit::Error if unsupported.
std::pair<int64_t, int64_t> hadamard_factors(int64_t n);

// Builds a Hadamard-family rotation (see the file banner). `seed` is used by rht, `block` by
// block. lowbit::Error on an unknown kind, an unsupported dimension or block, or "duquant".
RotationPtr make_rotation(std::string_view kind, int64_t dim, uint64_t seed, int64_t block = 128);

// DuQuant-style dual transform x ← x·R̂1·P·R̂2 (DuQuant, Lin et al. NeurIPS 2024; as used by
// LRQ-DiT's released `viditq_quant_layer.py`, ALGORITHMS.md §4.2). Built from calibration data:
//
//  1. Greedy block rotation R̂1. Base rotation R = H_B/sqrt(B)·diag(1, Q') with H_B Sylvester
//     (first row uniform, standing in for the released code's pickled `Rot.pkl`) and Q' a
//     random orthogonal (B−1)×(B−1) matrix (Q of a Householder QR of a Gaussian matrix from
//     Philox), drawn once per greedy search as the code's get_rot() does. Starting from the
//     block's calibration columns C, each step finds the largest and smallest entries of C,
//     records peak = max − min, takes the channel c of whichever has the larger magnitude, and
//     sets C ← C·E_c·R·E_c (E_c swaps channels 0 and c: the outlier channel is spread by R's
//     uniform first row). After max_steps steps the prefix with the smallest peak (first
//     minimum; zero steps allowed) is kept: R̂ = Π E_{c_k} R E_{c_k}.
//     Per block (each block of B channels gets its own search, the DuQuant paper), or
//     shared = true: one search over all blocks stacked as rows (the released LRQ-DiT code).
//     The released code takes the row index of the flattened argmax as the channel; that looks
//     like an indexing slip and the channel (column) index is used here.
//  2. Permutation P: channels sorted by range (max − min over the rotated calibration rows,
//     descending, stable), cut into consecutive runs of `buckets` channels, and dealt
//     round-robin: position order run0[0], run1[0], ..., run0[1], run1[1], ... (the released
//     code's `permutation_zigzag`; it hardcodes buckets = 9 = 1152/128, the default here is
//     dim/block). The DuQuant paper's boustrophedon zig-zag is not implemented.
//  3. Second greedy rotation R̂2 on the permuted calibration data, with a fresh Q'.
class DuQuantRotation final : public Rotation {
 public:
  DuQuantRotation(int64_t dim, int64_t block, std::vector<MatrixF> first, std::vector<int64_t> perm,
                  std::vector<MatrixF> second, std::vector<int> first_steps, std::vector<int> second_steps);
  std::string spec() const override;
  int64_t dim() const override { return dim_; }
  void apply(MatrixF& x) const override;

  int64_t block() const { return block_; }
  // x_new[:, i] = x[:, permutation()[i]] between the two rotations.
  const std::vector<int64_t>& permutation() const { return perm_; }
  // Greedy steps kept per rotation matrix (one entry if shared, else one per block).
  const std::vector<int>& first_steps() const { return first_steps_; }
  const std::vector<int>& second_steps() const { return second_steps_; }

 private:
  int64_t dim_, block_;
  std::vector<MatrixF> first_, second_;  // one B × B matrix (shared) or one per block
  std::vector<int64_t> perm_;
  std::vector<int> first_steps_, second_steps_;
};

// lowbit::Error if block is not a power of two ≥ 2 dividing x_calib.cols(), max_steps < 0,
// buckets < 1 or the calibration set is empty. buckets = 0 means dim/block.
RotationPtr make_duquant_rotation(const MatrixF& x_calib, int64_t block, int max_steps, uint64_t seed = 0,
                                  bool shared = false, int64_t buckets = 0);

// LRQ-DiT fluctuation metric J = ‖X‖_F / sqrt(numel) (the RMS of X, ALGORITHMS.md §4.2),
// accumulated in double. lowbit::Error on an empty matrix.
double fluctuation_j(const MatrixF& x);

// "rotate[:kind=hadamard|rht|block|duquant][:block=128][:seed=S][:steps=256][:shared]"
// Rotates both sides with one rotation (seed defaults to p.seed; block is used by block and
// duquant; steps and shared by duquant, which calibrates on p.x), then X̂ = Qa(X·H) with Qa
// calibrated on the rotated calibration set and Ŵ = Qw(W·H).
QuantizedLinear rotate_linear(const LinearProblem& p, Spec& spec);

// LRQ-DiT Adaptive Rotation Scheme
// "ars[:tau=1][:block=128][:alpha=0.5][:small=block|rht][:steps=256][:shared][:seed=S]":
//  1. SmoothQuant balancing λ_j = max|X_j|^α / max|W_j|^{1−α} over input channel j (λ = 0 or
//     non-finite → 1); X̃ = X/λ, W̃ = W·diag(λ) (QuantizedLinear::smooth = λ). The released
//     LRQ-DiT code writes the mask as max|W_j|^α / max|X_j|^{1−α} (multiplying X), i.e. its α
//     is 1 − α here; both are 0.5 by default.
//  2. J = fluctuation_j(X̃). J < τ → block-diagonal Hadamard of size `block` (small=block,
//     ALGORITHMS.md §4.2), or a randomized full Hadamard (small=rht: the matrix the released
//     code's smoothed Hadamard path multiplies by, QuaRot's random_hadamard_matrix); J ≥ τ →
//     DuQuant (make_duquant_rotation on X̃).
// info records J, tau, alpha and the choice ("hadamard" or "duquant"). The released script
// picks the DuQuant layers by a name list instead of J (ALGORITHMS.md §9.1); a name-list choice
// is the model driver's: it can call rotate_linear with kind=duquant after ars-style smoothing.
// Cost of DuQuant: 2·max_steps products of (calibration rows × block) by (block × block) per
// block (shared: over all blocks stacked), i.e. O(rows·dim·block·max_steps).
QuantizedLinear ars_linear(const LinearProblem& p, Spec& spec);

}  // namespace lowbit::quant
