// Error analysis of a quantised tensor against its reference, beyond sim/metrics.hpp: cosine
// similarity, the error on the small-magnitude half of the tensor (QuaRTZ's claim that naive
// INT4 collapses the near-zero mass, ALGORITHMS.md §3.2), code-usage entropy of a packed tensor
// (whole-code and bit-wise, QuaRTZ Fig. 4) and the LZS FLAG histogram. All sums in double.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/tensor_format.hpp"
#include "quantizers/matrix.hpp"

namespace lowbit {

// Metrics of q against the reference x. Non-finite handling as error_metrics (sim/metrics.hpp):
// elements whose reference is NaN/Inf are left out and counted in `skipped`; a finite reference
// whose quantised value is NaN/Inf is left out and counted in `nonfinite_out`. Undefined ratios
// (all-zero signal, no elements left) are NaN; an exact match gives sqnr_db = +inf.
//
// Small-magnitude set: the floor(count / 2) compared elements of smallest |x| (ties broken by
// element index, so the set is unique even when many |x| are equal, e.g. exact zeros), i.e. the
// elements below the median |x|. small_threshold is the largest |x| in the set.
//   small_rel_mse  = Σ_small (x − q)² / Σ_small x²
//   small_flushed  = #{small, x ≠ 0, q = 0} / #{small, x ≠ 0}  (near-zero values quantised to 0)
struct TensorAnalysis {
  int64_t count = 0;          // elements compared
  int64_t skipped = 0;        // reference NaN/Inf
  int64_t nonfinite_out = 0;  // finite reference, quantised NaN/Inf
  double mse = 0;
  double rel_mse = 0;         // Σ(x − q)² / Σx²
  double sqnr_db = 0;         // −10 log10(rel_mse)
  double cosine = 0;          // <x, q> / (‖x‖‖q‖); NaN if either norm is 0
  double max_abs = 0;         // max |x − q|
  double mean_abs = 0;        // mean |x − q|
  int64_t small_count = 0;
  double small_threshold = 0;
  double small_rel_mse = 0;
  int64_t small_nonzero = 0;  // small elements with x ≠ 0
  double small_flushed = 0;   // fraction of those with q = 0 (NaN if none)
  double zero_fraction = 0;   // fraction of all compared elements with q = 0
};

// Throws lowbit::Error if the sizes differ or the tensors are empty.
TensorAnalysis analyze_tensor(std::span<const float> reference, std::span<const float> quantized);
// Layer outputs Y (reference) and Ŷ: the same metrics over all entries; the shapes must match.
TensorAnalysis analyze_output(const quant::MatrixF& y, const quant::MatrixF& y_hat);

// Code usage of a packed tensor. H = −Σ p_c log2 p_c over the histogram of element codes
// (0 ≤ H ≤ code_bits; a uniform histogram over k codes gives log2 k). Bit-wise entropy (QuaRTZ
// Fig. 4): for each bit position b of the code, the binary entropy h(P(bit b = 1)) in bits;
// mean_bit_entropy is their average over the code_bits positions (1 = every bit a fair coin).
struct CodeEntropy {
  int code_bits = 0;
  int64_t count = 0;
  int64_t distinct = 0;             // codes that occur
  std::vector<int64_t> histogram;   // 2^code_bits counts when code_bits <= 16, else empty
  double entropy_bits = 0;
  std::vector<double> bit_entropy;  // per bit position, LSB first
  double mean_bit_entropy = 0;
};

// Codes as TensorFormat::unpacked_codes returns them; throws on an empty input, a code_bits
// outside 1..32 or a code that does not fit code_bits.
CodeEntropy code_entropy(std::span<const uint32_t> codes, int code_bits);
CodeEntropy code_entropy(const TensorFormat& format, const PackedTensor& packed);

// Per-group FLAG histogram of a packed lzs4 tensor (formats/lzs.hpp lzs_flag_histogram).
struct FlagHistogram {
  std::array<int64_t, 5> counts{};  // groups with FLAG 0..4
  int64_t groups = 0;
  std::array<double, 5> fraction{};
  double p_flag_positive = 0;       // fraction of groups with FLAG > 0 (NaN if no groups)
};
FlagHistogram lzs_flags(const PackedTensor& packed);

// JSON (NaN and ±Inf written as null).
nlohmann::json to_json(const TensorAnalysis& a);
nlohmann::json to_json(const CodeEntropy& e);
nlohmann::json to_json(const FlagHistogram& h);

// A double as JSON: null for NaN/Inf (JSON has neither).
nlohmann::json json_number(double v);

}  // namespace lowbit
