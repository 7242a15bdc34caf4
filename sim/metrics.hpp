// Error metrics of a quantised tensor against its reference: MSE, relative MSE, SQNR, max
// absolute error. Accumulated in double. Elements whose reference is NaN/Inf are left out of
// the sums and counted; a finite reference whose quantised value is not finite is counted too.
#pragma once
#include <cstdint>
#include <span>

namespace lowbit {

struct ErrorMetrics {
  int64_t count = 0;          // elements compared (finite reference)
  int64_t skipped = 0;        // reference NaN/Inf, left out
  int64_t nonfinite_out = 0;  // finite reference, quantised value NaN/Inf (left out of the sums)
  double mse = 0;             // mean (x - q)^2
  double signal_power = 0;    // mean x^2
  double rel_mse = 0;         // mse / signal_power (NaN when the signal is all zero)
  double sqnr_db = 0;         // 10 log10(signal_power / mse) (+inf when exact)
  double max_abs = 0;         // max |x - q|
};

// Throws lowbit::Error if the sizes differ or the tensors are empty.
ErrorMetrics error_metrics(std::span<const float> reference, std::span<const float> quantized);

}  // namespace lowbit
