// Factories of the format families; the registry (formats/registry.cpp) is the one place that
// maps spec names to them. Each factory consumes its options from the Spec and calls
// spec.finish() so unknown options are rejected.
#pragma once
#include <memory>

#include "formats/spec.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

// Element casts and scaled element formats: intB, uintB, fp4_e2m1, fp8_e4m3, eXmY, ... with
// optional gN / row / col / tensor scaling (formats/element_format.cpp).
std::unique_ptr<TensorFormat> make_element_format(Spec& spec);
// OCP MX v1.0 block formats: mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2, mxfp4, mxint8
// (formats/mx.cpp).
std::unique_ptr<TensorFormat> make_mx_format(Spec& spec);
// NVFP4 (formats/nvfp4.cpp).
std::unique_ptr<TensorFormat> make_nvfp4_format(Spec& spec);
// Codebook formats with blockwise absmax: nf4, bnb_fp4, af4, codebook (formats/codebook.cpp).
std::unique_ptr<TensorFormat> make_codebook_format(Spec& spec);
// QuaRTZ leading-zero suppression: lzs4 (formats/lzs.cpp).
std::unique_ptr<TensorFormat> make_lzs_format(Spec& spec);

}  // namespace lowbit
