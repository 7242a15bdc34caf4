// Shape helpers, code packing and the TensorFormat defaults.
#include "formats/tensor_format.hpp"

#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "formats/error.hpp"

namespace lowbit {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (const int64_t d : shape) {
    if (d < 0) throw Error(fmt::format("shape {} has a negative dimension", shape_str(shape)));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw Error(fmt::format("shape {} overflows 64-bit element count", shape_str(shape)));
    n *= d;
  }
  return n;
}

std::string shape_str(std::span<const int64_t> shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

RowView row_view(const Shape& shape) {
  const int64_t n = shape_numel(shape);
  const int64_t cols = shape.empty() ? 1 : shape.back();
  return {cols == 0 ? 0 : n / cols, cols};
}

void check_groups_divide(std::string_view spec, const Shape& shape, int64_t group, std::string_view what) {
  const int64_t cols = shape.empty() ? 1 : shape.back();
  if (group > 0 && cols % group == 0) return;
  std::vector<int64_t> divisors;
  for (int64_t d = 1; d <= cols && divisors.size() < 8; ++d)
    if (cols % d == 0) divisors.push_back(d);
  throw Error(fmt::format("{}: last dimension {} of shape {} is not divisible by the {} size {} (it must divide the "
                          "last axis; divisors of {}: {}{})",
                          spec, cols, shape_str(shape), what, group, cols, fmt::join(divisors, ", "),
                          divisors.size() == 8 ? ", ..." : ""));
}

const Section* PackedTensor::find(std::string_view name) const {
  for (const auto& s : sections)
    if (s.name == name) return &s;
  return nullptr;
}

const Section& PackedTensor::at(std::string_view name) const {
  const Section* s = find(name);
  if (!s) throw Error(fmt::format("packed tensor ({}) has no '{}' section", spec, name));
  return *s;
}

namespace {
int storage_bits(int code_bits) {
  if (code_bits <= 0 || code_bits > 32) throw Error(fmt::format("unsupported code width {} bits", code_bits));
  if (code_bits == 1 || code_bits == 2 || code_bits == 4 || code_bits == 8 || code_bits == 16 || code_bits == 32)
    return code_bits;
  return code_bits < 8 ? 8 : (code_bits < 16 ? 16 : 32);
}
}  // namespace

int64_t packed_bytes(int64_t n, int code_bits) {
  const int sb = storage_bits(code_bits);
  return (n * sb + 7) / 8;
}

void pack_codes(std::span<const uint32_t> codes, int code_bits, std::span<uint8_t> out) {
  const int sb = storage_bits(code_bits);
  const int64_t n = static_cast<int64_t>(codes.size());
  if (static_cast<int64_t>(out.size()) != packed_bytes(n, code_bits))
    throw Error("pack_codes: output size does not match the code count");
  const uint32_t mask = code_bits == 32 ? 0xffffffffu : (1u << code_bits) - 1;
  const uint32_t* __restrict c = codes.data();
  uint8_t* __restrict o = out.data();
  // The common widths get loops that vectorise.
  if (sb == 8) {
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<uint8_t>(c[i] & mask);
    return;
  }
  if (sb == 4) {
    for (int64_t i = 0; i < n / 2; ++i) o[i] = static_cast<uint8_t>((c[2 * i] & mask) | ((c[2 * i + 1] & mask) << 4));
    if (n % 2) o[n / 2] = static_cast<uint8_t>(c[n - 1] & mask);
    return;
  }
  if (sb > 8) {
    const int nb = sb / 8;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t v = c[i] & mask;
      for (int b = 0; b < nb; ++b) o[i * nb + b] = static_cast<uint8_t>(v >> (8 * b));
    }
    return;
  }
  if (!out.empty()) std::memset(out.data(), 0, out.size());
  const int per_byte = 8 / sb;
  for (int64_t i = 0; i < n; ++i)
    out[i / per_byte] |= static_cast<uint8_t>((codes[i] & mask) << (sb * (i % per_byte)));
}

void unpack_codes(std::span<const uint8_t> bytes, int code_bits, std::span<uint32_t> out) {
  const int sb = storage_bits(code_bits);
  const int64_t n = static_cast<int64_t>(out.size());
  if (static_cast<int64_t>(bytes.size()) != packed_bytes(n, code_bits))
    throw Error(fmt::format("packed codes hold {} bytes, expected {} for {} codes of {} bits", bytes.size(),
                            packed_bytes(n, code_bits), n, code_bits));
  const uint32_t mask = code_bits == 32 ? 0xffffffffu : (1u << code_bits) - 1;
  if (sb >= 8) {
    const int nb = sb / 8;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t c = 0;
      for (int b = 0; b < nb; ++b) c |= static_cast<uint32_t>(bytes[i * nb + b]) << (8 * b);
      out[i] = c & mask;
    }
    return;
  }
  const int per_byte = 8 / sb;
  for (int64_t i = 0; i < n; ++i) out[i] = (bytes[i / per_byte] >> (sb * (i % per_byte))) & mask;
}

std::vector<uint32_t> element_codes(const PackedTensor& p) {
  const Section& s = p.at("codes");
  std::vector<uint32_t> codes(static_cast<size_t>(shape_numel(p.shape)));
  unpack_codes(s.bytes, p.code_bits, codes);
  return codes;
}

namespace {
int dtype_bits(const Section& s) {
  if (s.dtype == "u8" || s.dtype == "i8") return 8;
  if (s.dtype == "u16") return 16;
  if (s.dtype == "u32" || s.dtype == "f32") return 32;
  throw Error(fmt::format("section '{}' has unknown dtype '{}'", s.name, s.dtype));
}
}  // namespace

std::vector<uint32_t> section_u32(const Section& s) {
  const int bits = dtype_bits(s);
  const int64_t n = shape_numel(s.shape);
  std::vector<uint32_t> v(static_cast<size_t>(n));
  unpack_codes(s.bytes, bits, v);
  return v;
}

void set_section_u32(Section& s, std::span<const uint32_t> values) {
  const int bits = dtype_bits(s);
  if (static_cast<int64_t>(values.size()) != shape_numel(s.shape))
    throw Error(fmt::format("section '{}' has {} entries, got {} values", s.name, shape_numel(s.shape), values.size()));
  s.bytes.assign(static_cast<size_t>(packed_bytes(static_cast<int64_t>(values.size()), bits)), 0);
  pack_codes(values, bits, s.bytes);
}

std::vector<float> section_f32(const Section& s) {
  if (s.dtype != "f32") throw Error(fmt::format("section '{}' is {}, expected f32", s.name, s.dtype));
  const int64_t n = shape_numel(s.shape);
  if (static_cast<int64_t>(s.bytes.size()) != 4 * n)
    throw Error(fmt::format("section '{}' holds {} bytes, expected {}", s.name, s.bytes.size(), 4 * n));
  std::vector<float> v(static_cast<size_t>(n));
  if (n > 0) std::memcpy(v.data(), s.bytes.data(), s.bytes.size());
  return v;
}

std::vector<uint32_t> checked_section_u32(const PackedTensor& p, std::string_view name, std::string_view dtype,
                                          const Shape& shape) {
  const Section& s = p.at(name);
  if (s.dtype != dtype || s.shape != shape)
    throw Error(fmt::format("{}: '{}' section is {} {}, expected {} {}", p.spec, name, s.dtype, shape_str(s.shape), dtype,
                            shape_str(shape)));
  return section_u32(s);
}

Section make_section_u(std::string name, int bits, Shape shape, std::span<const uint32_t> values) {
  Section s{std::move(name), bits == 8 ? "u8" : (bits == 16 ? "u16" : "u32"), std::move(shape), {}};
  const int sb = bits <= 8 ? 8 : (bits <= 16 ? 16 : 32);
  s.dtype = sb == 8 ? "u8" : (sb == 16 ? "u16" : "u32");
  s.bytes.resize(static_cast<size_t>(packed_bytes(static_cast<int64_t>(values.size()), sb)));
  pack_codes(values, sb, s.bytes);
  return s;
}

Section make_section_f32(std::string name, Shape shape, std::span<const float> values) {
  Section s{std::move(name), "f32", std::move(shape), {}};
  s.bytes.resize(values.size() * 4);
  if (!values.empty()) std::memcpy(s.bytes.data(), values.data(), s.bytes.size());
  return s;
}

void TensorFormat::fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const {
  const PackedTensor p = encode(x, shape);
  decode(p, out);
}

void TensorFormat::check_input(std::span<const float> x, const Shape& shape) const {
  const int64_t n = shape_numel(shape);
  if (static_cast<int64_t>(x.size()) != n)
    throw Error(fmt::format("{}: {} values given for shape {}", spec(), x.size(), shape_str(shape)));
  check_shape(shape);
}

void TensorFormat::check_packed(const PackedTensor& p, std::span<float> out) const {
  if (p.spec != spec()) throw Error(fmt::format("packed tensor was made by '{}', not '{}'", p.spec, spec()));
  const int64_t n = shape_numel(p.shape);
  if (static_cast<int64_t>(out.size()) != n)
    throw Error(fmt::format("{}: output holds {} values, packed tensor {}", spec(), out.size(), shape_str(p.shape)));
  check_shape(p.shape);
  if (p.code_bits != code_bits())
    throw Error(fmt::format("{}: packed tensor has {}-bit codes, expected {}", spec(), p.code_bits, code_bits()));
  const Section& c = p.at("codes");
  if (static_cast<int64_t>(c.bytes.size()) != packed_bytes(n, p.code_bits))
    throw Error(fmt::format("{}: codes section holds {} bytes, expected {}", spec(), c.bytes.size(),
                            packed_bytes(n, p.code_bits)));
}

}  // namespace lowbit
