// Tensor helpers: dtype table, checked shape arithmetic, construction, and widening to float32.
#include "sim/tensor.hpp"

#include <cstring>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "formats/error.hpp"
#include "formats/tensor_format.hpp"
#include "formats/hd.hpp"

namespace lowbit {

namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I8, "I8", 1},   {DType::U8, "U8", 1},   {DType::U16, "U16", 2},
    {DType::U32, "U32", 4}, {DType::I32, "I32", 4}, {DType::F64, "F64", 8},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d;
  throw Error(fmt::format("invalid DType value {}", static_cast<int>(dtype)));
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T, typename F, typename Out>
void widen(const Tensor& t, std::vector<Out>& out, F convert) {
  const uint8_t* p = t.data.data();
  for (size_t i = 0; i < out.size(); ++i) out[i] = convert(load<T>(p + i * sizeof(T)));
}

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }
size_t dtype_size(DType dtype) { return info(dtype).size; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

std::optional<uint64_t> checked_byte_size(std::span<const int64_t> shape, size_t itemsize) {
  // The product of the non-zero dims times itemsize must fit, whatever the order of the dims
  // and even when a zero dim makes the tensor empty: (0, 2^62, 2^62) is rejected as absurd.
  // numel() of an accepted shape therefore always fits in int64.
  constexpr uint64_t limit = static_cast<uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
  uint64_t bytes = itemsize == 0 ? 1 : itemsize;
  if (bytes > limit) return std::nullopt;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) {
      empty = true;
      continue;
    }
    const auto ud = static_cast<uint64_t>(d);
    if (bytes > limit / ud) return std::nullopt;
    bytes *= ud;
  }
  return empty || itemsize == 0 ? 0 : bytes;
}

std::string shape_to_string(std::span<const int64_t> shape) { return shape_str(shape); }

int64_t Tensor::numel() const {
  if (!checked_byte_size(shape, 1))
    throw Error(fmt::format("tensor '{}': invalid shape {} (negative or overflowing dimension)",
                            name, shape_to_string(shape)));
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor tensor_from_f32(std::vector<int64_t> shape, std::span<const float> values,
                       std::string name) {
  return tensor_from_raw(DType::F32, std::move(shape), std::as_bytes(values), std::move(name));
}

Tensor tensor_from_f64(std::vector<int64_t> shape, std::span<const double> values,
                       std::string name) {
  return tensor_from_raw(DType::F64, std::move(shape), std::as_bytes(values), std::move(name));
}

Tensor tensor_from_raw(DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes,
                       std::string name) {
  const auto need = checked_byte_size(shape, dtype_size(dtype));
  if (!need)
    throw Error(fmt::format("tensor '{}': invalid shape {} (negative or overflowing dimension)",
                            name, shape_to_string(shape)));
  if (bytes.size() != *need)
    throw Error(fmt::format("tensor '{}': shape {} of {} needs {} bytes but {} were given", name,
                            shape_to_string(shape), dtype_name(dtype), *need, bytes.size()));
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  t.data.assign(p, p + bytes.size());
  return t;
}

float f16_bits_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits >> 15) << 31;
  const uint32_t exp = (bits >> 10) & 0x1Fu;
  uint32_t mant = bits & 0x3FFu;
  if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (mant << 13));  // Inf / NaN
  if (exp != 0) return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));  // 127-15
  if (mant == 0) return f32_from_bits(sign);
  // Subnormal: value = mant * 2^-24. Normalise so the leading one lands on bit 10; each shift
  // lowers the binary32 exponent by one, starting from that of 2^-14 (biased 113).
  uint32_t e = 113;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return f32_from_bits(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

// bfloat16 is the top half of binary32 (same exponent field), so widening is a shift.
float bf16_bits_to_f32(uint16_t bits) { return f32_from_bits(static_cast<uint32_t>(bits) << 16); }

namespace {

void check_bytes(const Tensor& t) {
  const auto need = checked_byte_size(t.shape, dtype_size(t.dtype));
  if (!need || t.data.size() != *need)
    throw Error(fmt::format("tensor '{}': holds {} bytes, inconsistent with shape {} of {}",
                            t.name, t.data.size(), shape_to_string(t.shape),
                            dtype_name(t.dtype)));
}

// Every dtype converted to Out by a plain C++ conversion, except the 16-bit floats, which are
// widened through their exact float32 value.
template <typename Out>
std::vector<Out> convert_all(const Tensor& t) {
  check_bytes(t);
  std::vector<Out> out(static_cast<size_t>(t.numel()));
  auto cast = [](auto v) { return static_cast<Out>(v); };
  auto f16 = [](uint16_t b) { return static_cast<Out>(f16_bits_to_f32(b)); };
  auto bf16 = [](uint16_t b) { return static_cast<Out>(bf16_bits_to_f32(b)); };
  switch (t.dtype) {
    case DType::F32: widen<float>(t, out, cast); break;
    case DType::F16: widen<uint16_t>(t, out, f16); break;
    case DType::BF16: widen<uint16_t>(t, out, bf16); break;
    case DType::I8: widen<int8_t>(t, out, cast); break;
    case DType::U8: widen<uint8_t>(t, out, cast); break;
    case DType::U16: widen<uint16_t>(t, out, cast); break;
    case DType::U32: widen<uint32_t>(t, out, cast); break;
    case DType::I32: widen<int32_t>(t, out, cast); break;
    case DType::F64: widen<double>(t, out, cast); break;
  }
  return out;
}

}  // namespace

std::vector<float> to_f32(const Tensor& t) { return convert_all<float>(t); }
std::vector<double> to_f64(const Tensor& t) { return convert_all<double>(t); }

}  // namespace lowbit
