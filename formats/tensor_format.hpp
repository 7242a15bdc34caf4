// The type-erased tensor format: what the registry hands to the CLI, sweeps and bindings.
// A format encodes a float32 tensor to a PackedTensor (element codes packed into bytes, scale
// codes, any second-level metadata) and decodes it back; fake quantisation is
// decode(encode(x)). Hot loops live in the concrete formats, templated on the element codec.
// Groups and blocks run along the last axis. Layouts: docs/layouts.md.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/params.hpp"

namespace lowbit {

using Shape = std::vector<int64_t>;

// Number of elements of a shape; throws lowbit::Error on negative dims or overflow.
int64_t shape_numel(const Shape& shape);
// Python tuple spelling, as numpy prints shapes: "()", "(5,)", "(3, 4)".
std::string shape_str(std::span<const int64_t> shape);

// One named little-endian array of a packed tensor.
struct Section {
  std::string name;   // "codes", "scales", "tensor_scale", "zero_points", "flags", ...
  std::string dtype;  // "u8", "u16", "u32", "i8", "f32"
  Shape shape;        // logical shape of the array (for "codes": the tensor shape)
  std::vector<uint8_t> bytes;
};

struct PackedTensor {
  std::string spec;     // canonical spec of the format that made it
  Shape shape;          // shape of the encoded tensor
  int code_bits = 0;    // bits per element code (packing: see pack_codes)
  std::vector<Section> sections;  // "codes" first, then "scales" if the format has them

  const Section* find(std::string_view name) const;
  const Section& at(std::string_view name) const;  // throws if absent
};

// Dense LSB-first packing for code widths 1, 2, 4, 8, 16, 32 (4-bit: element 0 in the low
// nibble); widths 3, 5, 6, 7 take one byte each (low bits) and 9..15 two bytes, as CUDA,
// torchao and ml_dtypes store sub-byte types they do not pack.
int64_t packed_bytes(int64_t n, int code_bits);
void pack_codes(std::span<const uint32_t> codes, int code_bits, std::span<uint8_t> out);
void unpack_codes(std::span<const uint8_t> bytes, int code_bits, std::span<uint32_t> out);
// Element codes of a packed tensor, one per element (unpacked from its "codes" section).
std::vector<uint32_t> element_codes(const PackedTensor& p);
// Values of an unsigned-integer section ("u8", "u16", "u32") widened to u32.
std::vector<uint32_t> section_u32(const Section& s);
// Inverse of section_u32: rewrites s.bytes from one value per entry, at the width of s.dtype
// (f32 sections take the float bit patterns); lowbit::Error if the count differs from s.shape.
void set_section_u32(Section& s, std::span<const uint32_t> values);
std::vector<float> section_f32(const Section& s);
// The named section of p as u32 values, after checking its dtype and shape (lowbit::Error
// naming the format otherwise).
std::vector<uint32_t> checked_section_u32(const PackedTensor& p, std::string_view name, std::string_view dtype,
                                          const Shape& shape);
Section make_section_u(std::string name, int bits, Shape shape, std::span<const uint32_t> values);
Section make_section_f32(std::string name, Shape shape, std::span<const float> values);

struct FormatLimits {
  double max_value = 0;     // largest finite representable magnitude (element max x max scale)
  double min_positive = 0;  // smallest positive representable magnitude
};

class TensorFormat {
 public:
  virtual ~TensorFormat() = default;
  virtual std::string spec() const = 0;  // canonical spec string
  virtual std::string family() const = 0;
  virtual int code_bits() const = 0;
  // Storage cost per element including scales, zero points, flags and tensor scales.
  virtual double bits_per_element(const Shape& shape) const = 0;
  virtual FormatLimits limits() const = 0;
  // Throws lowbit::Error if the shape does not fit the format (e.g. groups do not divide).
  virtual void check_shape(const Shape& shape) const {}
  virtual PackedTensor encode(std::span<const float> x, const Shape& shape) const = 0;
  virtual void decode(const PackedTensor& p, std::span<float> out) const = 0;
  virtual void fake_quant(std::span<const float> x, const Shape& shape, std::span<float> out) const;
  // The parameters the format was built with (formats/params.hpp), for other implementations.
  virtual FormatParams params() const = 0;
  // One code per element, read from the packed bytes in this format's layout.
  virtual std::vector<uint32_t> unpacked_codes(const PackedTensor& p) const { return element_codes(p); }

 protected:
  // Checks x.size() against the shape and shape against the format.
  void check_input(std::span<const float> x, const Shape& shape) const;
  // Checks that p was made by this format and holds the named sections with the right sizes.
  void check_packed(const PackedTensor& p, std::span<float> out) const;
};

// Throws lowbit::Error unless the last dimension of `shape` divides into groups of `group`;
// the message names the format, the shape, the kind of group ("group", "MX block", ...) and
// the divisors that would work.
void check_groups_divide(std::string_view spec, const Shape& shape, int64_t group, std::string_view what);

// Rows x columns view of a tensor whose groups run along the last axis.
struct RowView {
  int64_t rows = 0;
  int64_t cols = 0;
};
RowView row_view(const Shape& shape);

}  // namespace lowbit
