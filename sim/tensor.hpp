// Tensor — a raw host tensor as read from / written to .npy and .safetensors files: a dtype
// tag, a C-order shape and the little-endian bytes. Conversion to float32 lives here too; the
// quantizers work on std::vector<float> obtained through to_f32().
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

// Tensor bytes are stored exactly as in the files (little-endian) and reinterpreted in place,
// so a big-endian host would silently misread every multi-byte value.
static_assert(std::endian::native == std::endian::little,
              "lowbit tensor IO assumes a little-endian host");

// Element types. Names and sizes follow the safetensors spelling ("F32", "BF16", ...).
// F64 holds cached statistics (feature means and covariances) and float64 reference outputs.
enum class DType { F32, F16, BF16, I8, U8, U16, U32, I32, F64 };

std::string_view dtype_name(DType dtype);
size_t dtype_size(DType dtype);
// Inverse of dtype_name (exact, case-sensitive match); nullopt for anything else.
std::optional<DType> parse_dtype(std::string_view name);

// Byte size of a C-order tensor of `shape` with `itemsize`-byte elements; nullopt if a dim is
// negative or numel * itemsize overflows (the limit is PTRDIFF_MAX, what a std::vector can hold).
std::optional<uint64_t> checked_byte_size(std::span<const int64_t> shape, size_t itemsize);

// Python tuple spelling of a shape, as numpy prints it: "()", "(5,)", "(3, 4)".
std::string shape_to_string(std::span<const int64_t> shape);

struct Tensor {
  std::string name;            // tensor name ("" for .npy)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // empty = scalar (numel 1); a zero dim = empty tensor
  std::vector<uint8_t> data;   // numel * dtype_size bytes, C order, little-endian

  // Product of shape (1 for a scalar). Throws lowbit::Error on a negative or overflowing shape.
  int64_t numel() const;
};

// Builds an F32 tensor; values.size() must equal the shape's numel.
Tensor tensor_from_f32(std::vector<int64_t> shape, std::span<const float> values,
                       std::string name = "");
// Builds a tensor of any dtype from its raw little-endian bytes, e.g.
// tensor_from_raw(DType::F16, {4}, std::as_bytes(std::span(u16_bits))).
// bytes.size() must equal numel * dtype_size(dtype).
Tensor tensor_from_raw(DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes,
                       std::string name = "");

// Exact IEEE binary16 / bfloat16 -> binary32 widening by bit manipulation (no FP arithmetic,
// so NaN payloads and signalling bits are kept): subnormals, signed zeros, Inf and NaN included.
float f16_bits_to_f32(uint16_t bits);
float bf16_bits_to_f32(uint16_t bits);

// Builds an F64 tensor; values.size() must equal the shape's numel.
Tensor tensor_from_f64(std::vector<int64_t> shape, std::span<const double> values,
                       std::string name = "");

// Converts every element to float32: exact for F32/F16/BF16/I8/U8/U16; I32/U32 round to nearest
// even when |x| > 2^24; F64 rounds to nearest even (the C++ double -> float conversion under the
// default rounding mode), overflowing to ±Inf, NaN staying NaN.
std::vector<float> to_f32(const Tensor& tensor);

// Converts every element to float64; exact for every dtype (F64 bits are kept as they are).
std::vector<double> to_f64(const Tensor& tensor);

}  // namespace lowbit
