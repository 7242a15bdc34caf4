// Quantized linear layers and the algorithm registry.
//
// Every algorithm of ALGORITHMS.md (RTN, SmoothQuant, SVDQuant, LoRC, rotations, DMQ PTS,
// QuaRTZ, TLQ, ...) turns a calibration problem (calibration activations X, weight W, the
// weight-side and activation-side quantizers) into one QuantizedLinear:
//
//     X̂ = (X · diag(smooth)⁻¹) · H                         input transform (each part optional)
//     Ŷ = Qa(X̂) · weightᵀ + round16(round16(X̂) · lr_downᵀ) · lr_upᵀ + bias
//
// `weight` is the already fake-quantized (transformed) weight or SVDQuant residual Q(R);
// lr_up (n × r) · lr_down (r × m) is the 16-bit low-rank branch (SVDQuant L1·L2 with
// L1 = U_rΣ_r as lr_up, L2 = V_r as lr_down; LoRC's error compensation). Without smoothing,
// rotation and branch this is plain W/A fake quantisation.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/spec.hpp"
#include "quantizers/matrix.hpp"
#include "quantizers/quantizer.hpp"
#include "quantizers/rotation.hpp"

namespace lowbit::quant {

struct QuantizedLinear {
  std::string algorithm;    // canonical algorithm spec
  VectorF smooth;           // per-in-channel divisor λ (size m); empty = no smoothing
  RotationPtr rotation;     // null = no rotation
  QuantizerPtr act;         // activation quantizer (frozen if static); null or identity = 16/32-bit
  MatrixF weight;           // n × m fake-quantized weight (or residual) in the transformed basis
  MatrixF lr_up;            // n × r; empty when there is no low-rank branch
  MatrixF lr_down;          // r × m
  VectorF bias;             // size n or empty
  bool branch_fp16 = true;  // round the branch's input and factors to fp16 ("kept in 16 bit")
  // Products of forward(): false (default) = float64 accumulation, one rounding to float at the
  // end (the reference; what the algorithms' searches use); true = float32 GEMMs, as a
  // float32-accumulating GPU kernel would run them (sum order unspecified, so results agree
  // with the float64 path to float rounding, not bit for bit).
  bool float32_products = false;
  double weight_bits = 32;  // bits/element of the quantized weight part (scales included)
  double act_bits = 32;     // bits/element of the quantized activations (scales included)
  nlohmann::json info = nlohmann::json::object();  // what the algorithm chose (α, rank, iterations, ...)

  int64_t rank() const { return lr_up.cols(); }
  // X → X̂ (smoothing then rotation).
  MatrixF transform(const MatrixF& x) const;
  // Ŷ for new activations (the activation quantizer runs on X̂; dynamic scales are recomputed).
  MatrixF forward(const MatrixF& x) const;
  // Weight storage per weight element including the 16-bit branch: weight_bits + 16·r(m+n)/(m·n).
  double weight_bits_per_element() const;
};

// What an algorithm is given.
struct LinearProblem {
  MatrixF x;                 // calibration activations, b × m
  MatrixF w;                 // weight, n × m
  VectorF bias;              // size n or empty
  QuantizerPtr wq;           // weight-side quantizer (make_quantizer("none") keeps W)
  QuantizerPtr aq;           // activation-side quantizer
  uint64_t seed = 0;         // for randomized parts (random Hadamard signs, SR)
};

// The one error measure calibration searches minimise: ‖X·Wᵀ − Ŷ‖²_F on the calibration set.
double calibration_error(const LinearProblem& p, const QuantizedLinear& q);

// Plain RTN: Ŷ = Qa(X)·Qw(W)ᵀ (static activation quantizers are calibrated on p.x).
QuantizedLinear rtn_linear(const LinearProblem& p);

using LinearAlgorithmFn = std::function<QuantizedLinear(const LinearProblem&, Spec&)>;

struct LinearAlgorithmEntry {
  std::string name;      // spec name, e.g. "svdquant"
  std::string summary;   // one line
  std::string options;   // accepted options with defaults
  LinearAlgorithmFn run; // consumes its options from the Spec; the registry calls finish()
};

// Every registered linear algorithm, in listing order.
const std::vector<LinearAlgorithmEntry>& linear_algorithms();

// Runs the algorithm named by `spec` ("rtn", "smoothquant:alpha=0.5", "svdquant:rank=32", ...)
// on the problem. lowbit::Error on an unknown algorithm or option.
QuantizedLinear quantize_linear(std::string_view spec, const LinearProblem& p);

}  // namespace lowbit::quant
