// MatrixQuantizer — a fake quantizer of a matrix whose groups run along rows (the K axis), the
// one interface every weight- and activation-side quantizer of quantizers/ implements.
//
// Two families come from spec strings (make_quantizer):
//  * any format of the registry ("int4:g64", "mxfp4", "nvfp4", "lzs4:g16", "nf4", ...): scales
//    computed from the tensor itself (dynamic), exactly as the format encodes;
//  * "rtn:..." — a uniform/minifloat quantizer with the calibration knobs of ALGORITHMS.md §1/§9:
//    granularity, clipping (absmax, min–max, percentile, MSE search), scale dtype, rounding,
//    static (calibrated once) or dynamic scales. Grammar in uniform.hpp.
//  * "pts:..." — DMQ channel-wise power-of-two activation quantizer (pts.hpp), static;
//  * "tlq:..." / "log2:..." — LRQ-DiT twin-log and plain log2 weight quantizers (twin_log.hpp);
//  * "none" (alias "fp32") keeps the matrix unchanged.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "quantizers/matrix.hpp"

namespace lowbit::quant {

class MatrixQuantizer {
 public:
  virtual ~MatrixQuantizer() = default;
  // Canonical spec string.
  virtual std::string spec() const = 0;
  // Fake quantisation: decode(encode(x)). Throws lowbit::Error on shapes the quantizer cannot
  // handle (groups that do not divide, a static quantizer calibrated for other columns).
  virtual MatrixF quantize(const MatrixF& x) const = 0;
  // Storage bits per element of a rows × cols matrix including scales, zero points and flags.
  virtual double bits_per_element(int64_t rows, int64_t cols) const = 0;
  // Static quantizers return a copy whose scales are frozen from `calib`; dynamic ones return
  // themselves. Calling quantize() on an uncalibrated static quantizer calibrates on its input.
  virtual std::shared_ptr<const MatrixQuantizer> calibrate(const MatrixF& calib) const = 0;
  virtual bool is_static() const { return false; }
  // True for "none": the matrix passes unchanged (a 16/32-bit side).
  virtual bool is_identity() const { return false; }
};

using QuantizerPtr = std::shared_ptr<const MatrixQuantizer>;

// Builds a quantizer from a spec (see the file banner); lowbit::Error on a bad spec.
QuantizerPtr make_quantizer(std::string_view spec);

// Output-error objective used by every calibration search: ‖Y − Ŷ‖²_F.
double output_sq_error(const MatrixF& y_ref, const MatrixF& y_hat);

}  // namespace lowbit::quant
