// Cross-check harness: an implementation of a format (lowbit's CUDA kernels, or a user's own
// kernel) against lowbit's CPU reference, byte for byte.
//
// Plug in your own kernel: wrap it as an EncodeFn that returns the packed layout of
// docs/layouts.md (a PackedTensor whose sections have the CPU format's names, dtypes and
// shapes — the easiest way is to take the CPU format's encode() of the same shape as the
// template and overwrite the bytes), then
//
//     auto f = lowbit::make_format("nvfp4");
//     lowbit::Shape shape{256, 4096};
//     auto x = lowbit::crosscheck_inputs(*f, shape, /*seed=*/1);
//     auto report = lowbit::crosscheck_encode(*f, my_encode, x, shape);
//     if (!report.ok()) for (auto& line : report.first) puts(line.c_str());
//
// Every section is compared byte for byte and, for "codes", element by element, so a report
// names the first offending inputs with both implementations' codes and scales in hex.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "formats/tensor_format.hpp"

namespace lowbit {

using EncodeFn = std::function<PackedTensor(std::span<const float> x, const Shape& shape)>;
using DecodeFn = std::function<void(const PackedTensor& p, std::span<float> out)>;
using FakeQuantFn = std::function<void(std::span<const float> x, const Shape& shape, std::span<float> out)>;

struct CrosscheckReport {
  std::string spec;
  int64_t elements = 0;
  int64_t code_mismatches = 0;     // elements whose code differs
  int64_t section_mismatches = 0;  // bytes that differ in the other sections (scales, zero points, ...)
  int64_t byte_mismatches = 0;     // bytes that differ in the packed codes
  int64_t value_mismatches = 0;    // fake-quantised or decoded values whose bits differ
  std::vector<std::string> first;  // the first offending inputs, both outputs in hex
  bool ok() const { return code_mismatches + section_mismatches + byte_mismatches + value_mismatches == 0; }
  void merge(const CrosscheckReport& o, size_t max_report = 8);
};

// Encodes x with the CPU format and with `candidate`, compares every section.
CrosscheckReport crosscheck_encode(const TensorFormat& f, const EncodeFn& candidate, std::span<const float> x,
                                   const Shape& shape, size_t max_report = 8);
// Compares the candidate's fake quantisation with the CPU's, bit for bit (NaN payloads too).
CrosscheckReport crosscheck_fake_quant(const TensorFormat& f, const FakeQuantFn& candidate, std::span<const float> x,
                                       const Shape& shape, size_t max_report = 8);
// Decodes the CPU's packed bytes of x with the candidate and compares with the CPU's decode.
CrosscheckReport crosscheck_decode(const TensorFormat& f, const DecodeFn& candidate, std::span<const float> x,
                                   const Shape& shape, size_t max_report = 8);

// lowbit's own CUDA kernels (gpu/gpu.hpp) against the CPU: encode, fake quantisation and (with
// `decode`) decoding of the CPU's bytes, merged into one report.
CrosscheckReport crosscheck_gpu(const TensorFormat& f, std::span<const float> x, const Shape& shape,
                                bool decode = true, size_t max_report = 8);

// Test inputs for a format: rows of Gaussian data at scales from 2^-30 to 2^30, exact ties of
// the element grid, values at and just past the largest representable magnitude, all-zero
// rows, negative zeros, float32 subnormals, rows holding NaN / +Inf / -Inf, huge and tiny
// values; deterministic in `seed`.
std::vector<float> crosscheck_inputs(const TensorFormat& f, const Shape& shape, uint64_t seed);

// A shape of about `n` elements that the format accepts: rows x cols with cols a multiple of
// every block and group size lowbit uses (4096 unless the format needs more), and at least 24
// rows so every row kind of crosscheck_inputs appears twice.
Shape crosscheck_shape(const TensorFormat& f, int64_t n);

// The float32 values with bit patterns first .. first + count - 1 (the exhaustive sweep).
void bit_pattern_chunk(uint64_t first, std::span<float> out);

}  // namespace lowbit
