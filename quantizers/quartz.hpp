// QuaRTZ as a W/A quantizer of a linear layer (ALGORITHMS.md §3, §3.4): activations through
// lowbit's bit-exact lzs4 format (INT8 stage + leading-zero suppression, shared FLAG per group),
// weights by one of the three candidate schemes the paper leaves open.
//
//   quartz[:g=16][:s8=token|tensor][:calib=absmax|minmax][:round=trunc|rne][:w=given|int4_row|int4_g64|lzs]
//
// w=given (default) uses the problem's weight quantizer; int4_row = INT4 RTN per output channel;
// int4_g64 = INT4 groups of 64 along K; lzs = the LZS format on the weight rows (per-row INT8
// stage, same group size). The activation-side quantizer of the problem is replaced (info
// "replaced_act_quantizer"); a recipe rejects an act other than none or this one (sim/recipe.hpp).
#pragma once
#include "quantizers/linear.hpp"

namespace lowbit::quant {

QuantizedLinear quartz_linear(const LinearProblem& p, Spec& spec);

}  // namespace lowbit::quant
