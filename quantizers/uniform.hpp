// UniformQuantizer — round-to-nearest ("RTN") with every calibration knob of ALGORITHMS.md §1
// and §9: the naive baseline, and the building block of the static-scale algorithms.
//
// Spec grammar (options in any order, defaults first):
//   rtn[:elem=int8|intB|uintB|fp8_e4m3|fp4_e2m1|eXmY...]   element: signed int (symmetric,
//        q_max = 2^(B-1) − 1, −2^(B-1) unused as in deepcompressor/nunchaku), unsigned int
//        (implies asym), or a minifloat (symmetric, q_max = its largest finite value)
//      [:row|col|tensor|gN]      granularity: per row (per token of X / per output channel of W),
//                                per column (per input channel), per tensor, or groups of N
//                                consecutive columns (along K)
//      [:asym]                   min–max with a zero point (integers only):
//                                s = (max − min)/(2^B − 1), z = round(−min/s), q ∈ [0, 2^B − 1]
//      [:clip=absmax|minmax|pP|mse]  absmax (default; min–max for asym), the P-th percentile of
//                                |x| (e.g. p99.9; asym: of x at P and 100 − P), or the MSE-best
//                                shrink c·range over c = 1 − i/100, i = 0..80 (GPTQ/QuaRot grid)
//      [:norm=2]                 error norm of the MSE search (GPTQ uses 2.4)
//      [:scale=fp32|fp16|bf16|e4m3|e8m0]  dtype the scale is stored in (RNE; e8m0 rounds up to
//                                the next power of two so nothing clips)
//      [:static]                 scales calibrated once (calibrate()) and frozen; per-row static
//                                scales require the same number of rows
//      [:round=even|away|zero|down|up|sr][:seed=S]   rounding of x/s (sr: Philox bits, the
//                                same counter scheme as the formats)
// Scales are divided (q = round(x / s)), as torch and deepcompressor do.
#pragma once
#include <string_view>

#include "formats/spec.hpp"
#include "quantizers/quantizer.hpp"

namespace lowbit::quant {

// Consumes the options of an "rtn" spec; the caller has checked spec.name() == "rtn".
QuantizerPtr make_uniform_quantizer(Spec& spec);

}  // namespace lowbit::quant
