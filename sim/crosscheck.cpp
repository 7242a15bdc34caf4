// Cross-check harness (see crosscheck.hpp).
#include "sim/crosscheck.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "formats/error.hpp"
#include "formats/philox.hpp"
#include "gpu/gpu.hpp"

namespace lowbit {
namespace {

uint32_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

std::string hex_bytes(const std::vector<uint8_t>& b, size_t at, size_t n) {
  std::string s;
  for (size_t i = at; i < at + n && i < b.size(); ++i) s += fmt::format("{:02x}", b[i]);
  return s;
}

void note(CrosscheckReport& r, size_t max_report, std::string line) {
  if (r.first.size() < max_report) r.first.push_back(std::move(line));
}

}  // namespace

void CrosscheckReport::merge(const CrosscheckReport& o, size_t max_report) {
  elements += o.elements;
  code_mismatches += o.code_mismatches;
  section_mismatches += o.section_mismatches;
  byte_mismatches += o.byte_mismatches;
  value_mismatches += o.value_mismatches;
  for (const auto& l : o.first)
    if (first.size() < max_report) first.push_back(l);
}

CrosscheckReport crosscheck_encode(const TensorFormat& f, const EncodeFn& candidate, std::span<const float> x,
                                   const Shape& shape, size_t max_report) {
  CrosscheckReport r;
  r.spec = f.spec();
  r.elements = static_cast<int64_t>(x.size());
  const PackedTensor ref = f.encode(x, shape);
  const PackedTensor got = candidate(x, shape);
  if (got.shape != ref.shape || got.code_bits != ref.code_bits || got.sections.size() != ref.sections.size())
    throw Error(fmt::format("crosscheck {}: the candidate's layout differs (shape {} vs {}, {} vs {} code bits, {} vs {} "
                            "sections)",
                            r.spec, shape_str(got.shape), shape_str(ref.shape), got.code_bits, ref.code_bits,
                            got.sections.size(), ref.sections.size()));
  const std::vector<uint32_t> rc = f.unpacked_codes(ref);
  const std::vector<uint32_t> gc = f.unpacked_codes(got);
  const RowView rv = row_view(shape);
  for (size_t i = 0; i < rc.size(); ++i) {
    if (rc[i] == gc[i]) continue;
    ++r.code_mismatches;
    note(r, max_report,
         fmt::format("{} code of element {} (row {}, col {}): x = {:a} (0x{:08x}): cpu 0x{:x}, candidate 0x{:x}", r.spec, i,
                     rv.cols ? static_cast<int64_t>(i) / rv.cols : 0, rv.cols ? static_cast<int64_t>(i) % rv.cols : 0,
                     x[i], bits_of(x[i]), rc[i], gc[i]));
  }
  for (size_t k = 0; k < ref.sections.size(); ++k) {
    const Section& a = ref.sections[k];
    const Section& b = got.sections[k];
    if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape || a.bytes.size() != b.bytes.size())
      throw Error(fmt::format("crosscheck {}: section {} is '{}' {} {} ({} bytes) on the CPU but '{}' {} {} ({} bytes)",
                              r.spec, k, a.name, a.dtype, shape_str(a.shape), a.bytes.size(), b.name, b.dtype,
                              shape_str(b.shape), b.bytes.size()));
    for (size_t i = 0; i < a.bytes.size(); ++i) {
      if (a.bytes[i] == b.bytes[i]) continue;
      if (k == 0) {
        ++r.byte_mismatches;
        note(r, max_report, fmt::format("{} packed codes byte {}: cpu 0x{:02x}, candidate 0x{:02x}", r.spec, i, a.bytes[i],
                                        b.bytes[i]));
      } else {
        ++r.section_mismatches;
        const size_t w = a.dtype == "u16" ? 2 : (a.dtype == "u8" || a.dtype == "i8" ? 1 : 4);
        const size_t at = i / w * w;
        note(r, max_report,
             fmt::format("{} section '{}' entry {}: cpu 0x{}, candidate 0x{} (little-endian bytes)", r.spec, a.name,
                         i / w, hex_bytes(a.bytes, at, w), hex_bytes(b.bytes, at, w)));
      }
    }
  }
  return r;
}

CrosscheckReport crosscheck_fake_quant(const TensorFormat& f, const FakeQuantFn& candidate, std::span<const float> x,
                                       const Shape& shape, size_t max_report) {
  CrosscheckReport r;
  r.spec = f.spec();
  r.elements = static_cast<int64_t>(x.size());
  std::vector<float> a(x.size()), b(x.size());
  f.fake_quant(x, shape, a);
  candidate(x, shape, b);
  for (size_t i = 0; i < a.size(); ++i) {
    if (bits_of(a[i]) == bits_of(b[i])) continue;
    ++r.value_mismatches;
    note(r, max_report,
         fmt::format("{} fake-quant of element {}: x = {:a} (0x{:08x}): cpu {:a} (0x{:08x}), candidate {:a} (0x{:08x})",
                     r.spec, i, x[i], bits_of(x[i]), a[i], bits_of(a[i]), b[i], bits_of(b[i])));
  }
  return r;
}

CrosscheckReport crosscheck_decode(const TensorFormat& f, const DecodeFn& candidate, std::span<const float> x,
                                   const Shape& shape, size_t max_report) {
  CrosscheckReport r;
  r.spec = f.spec();
  r.elements = static_cast<int64_t>(x.size());
  const PackedTensor p = f.encode(x, shape);
  std::vector<float> a(x.size()), b(x.size());
  f.decode(p, a);
  candidate(p, b);
  for (size_t i = 0; i < a.size(); ++i) {
    if (bits_of(a[i]) == bits_of(b[i])) continue;
    ++r.value_mismatches;
    note(r, max_report,
         fmt::format("{} decode of element {}: x = {:a}: cpu {:a} (0x{:08x}), candidate {:a} (0x{:08x})", r.spec, i, x[i],
                     a[i], bits_of(a[i]), b[i], bits_of(b[i])));
  }
  return r;
}

CrosscheckReport crosscheck_gpu(const TensorFormat& f, std::span<const float> x, const Shape& shape, bool decode,
                                size_t max_report) {
  CrosscheckReport r = crosscheck_encode(
      f, [&](std::span<const float> v, const Shape& s) { return gpu::encode(f, v, s); }, x, shape, max_report);
  r.merge(crosscheck_fake_quant(
              f, [&](std::span<const float> v, const Shape& s, std::span<float> o) { gpu::fake_quant(f, v, s, o); }, x,
              shape, max_report),
          max_report);
  if (decode)
    r.merge(crosscheck_decode(
                f, [&](const PackedTensor& p, std::span<float> o) { gpu::decode(f, p, o); }, x, shape, max_report),
            max_report);
  r.elements = static_cast<int64_t>(x.size());
  return r;
}

Shape crosscheck_shape(const TensorFormat& f, int64_t n) {
  for (int64_t cols : {int64_t{4096}, int64_t{4096 * 3}, int64_t{4096 * 5}, int64_t{4096 * 7}}) {
    const int64_t rows = std::max<int64_t>(24, n / cols);  // every input kind (12 row kinds) at least twice
    try {
      f.check_shape({rows, cols});
      return {rows, cols};
    } catch (const Error&) {
    }
  }
  throw Error(fmt::format("crosscheck {}: no rows x 4096·k shape fits the format", f.spec()));
}

std::vector<float> crosscheck_inputs(const TensorFormat& f, const Shape& shape, uint64_t seed) {
  const int64_t n = shape_numel(shape);
  const RowView rv = row_view(shape);
  std::vector<float> x(static_cast<size_t>(n));
  const double vmax = f.limits().max_value;
  const float fmax = static_cast<float>(std::min<double>(vmax, std::numeric_limits<float>::max()));
  auto uniform = [&](uint64_t i) { return (static_cast<double>(sr_bits(seed, i)) + 0.5) / 4294967296.0; };
  auto gauss = [&](uint64_t i) {
    const double u1 = uniform(2 * i), u2 = uniform(2 * i + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  };
  for (int64_t r = 0; r < rv.rows; ++r) {
    const int kind = static_cast<int>(r % 12);
    // Scale of this row's Gaussian data: 2^-30 .. 2^30 across rows.
    const double scale = std::ldexp(1.0, static_cast<int>((r * 7) % 61) - 30);
    for (int64_t c = 0; c < rv.cols; ++c) {
      const uint64_t i = static_cast<uint64_t>(r * rv.cols + c);
      const double g = gauss(i);
      float v = static_cast<float>(g * scale);
      switch (kind) {
        case 0: break;                                          // plain Gaussian
        case 1: v = static_cast<float>(std::round(g * 8) / 4);  // exact multiples of 1/4: ties
          break;
        case 2: v = static_cast<float>(std::round(g * 64) / 16); break;
        case 3: v = (c % 7 == 0) ? fmax * (c % 2 ? 1.0f : -1.0f) : v; break;       // at the top of the range
        case 4: v = (c % 5 == 0) ? std::nextafter(fmax, INFINITY) : v; break;       // just past it
        case 5: v = 0.0f; break;                                                    // all zero
        case 6: v = (c % 3 == 0) ? -0.0f : static_cast<float>(g * 1e-41); break;   // -0 and fp32 subnormals
        case 7: v = (c == rv.cols / 3) ? std::numeric_limits<float>::quiet_NaN() : v; break;
        case 8: v = (c == rv.cols / 2) ? std::numeric_limits<float>::infinity() : v; break;
        case 9: v = (c == 5) ? -std::numeric_limits<float>::infinity() : v; break;
        case 10: v = static_cast<float>(g * 1e37); break;                           // huge
        case 11: v = (c % 16 == 0) ? static_cast<float>(g * 100) : static_cast<float>(g * 0.01); break;  // outliers
      }
      x[static_cast<size_t>(i)] = v;
    }
  }
  return x;
}

void bit_pattern_chunk(uint64_t first, std::span<float> out) {
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t u = static_cast<uint32_t>(first + i);
    std::memcpy(&out[i], &u, 4);
  }
}

}  // namespace lowbit
