// NumPy .npy reader/writer. Layout (numpy/lib/format.py, "Format Version 1.0"):
//   "\x93NUMPY" | major u8 | minor u8 | HEADER_LEN (u16 LE for 1.0, u32 LE for 2.0/3.0) |
//   header: repr of a dict {'descr', 'fortran_order', 'shape'}, space padded, ending in '\n' |
//   data (numel * itemsize bytes, nothing after).
// numpy reads the header with ast.literal_eval; here a strict subset of Python literal syntax
// is parsed by hand (string keys, one string, a bool, a tuple of ints), which is everything
// numpy writes for the supported dtypes.
#include "sim/npy.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit {

namespace {

constexpr std::array<char, 6> kMagic = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kAlign = 64;               // numpy ARRAY_ALIGN
constexpr size_t kGrowthAxisMaxDigits = 21;  // numpy GROWTH_AXIS_MAX_DIGITS

struct DescrInfo {
  std::string_view descr;  // as written by numpy (dtype.str)
  DType dtype;
};

constexpr DescrInfo kDescrs[] = {
    {"<f4", DType::F32}, {"<f2", DType::F16}, {"|i1", DType::I8},  {"|u1", DType::U8},
    {"<u2", DType::U16}, {"<u4", DType::U32}, {"<i4", DType::I32}, {"<f8", DType::F64},
};

constexpr std::string_view kSupported = "<f4, <f2, |i1, |u1, <u2, <u4, <i4, <f8";

std::optional<DType> dtype_from_descr(std::string_view d) {
  for (const auto& e : kDescrs)
    if (e.descr == d) return e.dtype;
  // Byte order is meaningless for 1-byte types: numpy writes '|', but '<', '>' and '=' are
  // valid spellings of the same dtype.
  if (d.size() == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '=') && d.substr(1) == "i1")
    return DType::I8;
  if (d.size() == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '=') && d.substr(1) == "u1")
    return DType::U8;
  return std::nullopt;
}

std::string_view descr_from_dtype(DType dtype) {
  for (const auto& e : kDescrs)
    if (e.dtype == dtype) return e.descr;
  return {};
}

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// Recursive-descent parser for the header dict. Syntax errors report "not a valid Python
// dict literal" with the column; semantic errors (keys, dims) have their own messages.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& file) : s_(text), file_(file) {}

  NpyHeader parse() {
    NpyHeader h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    skip_ws();
    expect('{', "'{' opening the dict");
    skip_ws();
    while (!eat('}')) {
      const std::string key = parse_string("a string key");
      skip_ws();
      expect(':', "':' after the key");
      skip_ws();
      auto mark_seen = [&](bool& seen) {
        if (seen) throw Error(fmt::format("{}: duplicate key '{}' in the header dict", file_, key));
        seen = true;
      };
      if (key == "descr") {
        mark_seen(seen_descr);
        if (peek() == '[')
          throw Error(fmt::format("{}: unsupported descr: structured dtypes are not supported "
                                  "(supported: {})", file_, kSupported));
        h.descr = parse_string("a string value for 'descr'");
      } else if (key == "fortran_order") {
        mark_seen(seen_fortran);
        h.fortran_order = parse_bool();
      } else if (key == "shape") {
        mark_seen(seen_shape);
        h.shape = parse_tuple();
      } else {
        throw Error(fmt::format("{}: unknown key '{}' in the header dict (expected 'descr', "
                                "'fortran_order', 'shape')", file_, key));
      }
      skip_ws();
      if (eat('}')) break;
      expect(',', "',' or '}' after a value");
      skip_ws();
    }
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the closing '}'");
    for (auto [seen, key] : {std::pair{seen_descr, "descr"}, std::pair{seen_fortran, "fortran_order"},
                             std::pair{seen_shape, "shape"}})
      if (!seen) throw Error(fmt::format("{}: the header dict is missing key '{}'", file_, key));
    return h;
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    throw Error(fmt::format("{}: header is not a valid Python dict literal: {} at column {}",
                            file_, what, pos_ + 1));
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c, std::string_view what) {
    if (!eat(c)) fail(fmt::format("expected {}", what));
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r' || s_[pos_] == '\f'))
      ++pos_;
  }
  bool match_word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    const size_t end = pos_ + w.size();
    if (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_'))
      return false;
    pos_ = end;
    return true;
  }

  // 'abc' or "abc"; escapes and string prefixes are not part of the supported subset.
  std::string parse_string(std::string_view what) {
    const char q = peek();
    if (q != '\'' && q != '"') fail(fmt::format("expected {}", what));
    ++pos_;
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') fail("escape sequences in strings are not supported");
      if (s_[pos_] == '\n') fail("unterminated string");
      ++pos_;
    }
    if (pos_ == s_.size()) fail("unterminated string");
    ++pos_;
    return std::string(s_.substr(start, pos_ - 1 - start));
  }

  bool parse_bool() {
    if (match_word("True")) return true;
    if (match_word("False")) return false;
    fail("expected True or False for 'fortran_order'");
  }

  // Python int: optional sign, no leading zeros; a trailing 'L' (Python 2 long, which numpy's
  // reader also strips) is accepted.
  int64_t parse_int() {
    const size_t start = pos_;
    bool negative = false;
    if (peek() == '-' || peek() == '+') negative = s_[pos_++] == '-';
    if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected an integer in 'shape'");
    if (peek() == '0' && pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))
      fail("integer with a leading zero");
    uint64_t v = 0;
    bool overflow = false;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      const auto digit = static_cast<uint64_t>(s_[pos_++] - '0');
      if (v > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - digit) / 10)
        overflow = true;
      else
        v = v * 10 + digit;
    }
    if (peek() == 'L' || peek() == 'l') ++pos_;
    const std::string_view text = s_.substr(start, pos_ - start);
    if (overflow)
      throw Error(fmt::format("{}: shape dimension {} overflows int64", file_, text));
    if (negative && v != 0)
      throw Error(fmt::format("{}: negative dimension {} in shape", file_, text));
    return static_cast<int64_t>(v);
  }

  // () | (n,) | (n, m, ...) with an optional trailing comma; "(n)" is an int, not a tuple.
  std::vector<int64_t> parse_tuple() {
    expect('(', "a tuple '(' for 'shape'");
    std::vector<int64_t> dims;
    skip_ws();
    if (eat(')')) return dims;
    while (true) {
      dims.push_back(parse_int());
      skip_ws();
      if (eat(')')) {
        if (dims.size() == 1) fail("'shape' of one dim needs a trailing comma, e.g. (5,)");
        return dims;
      }
      expect(',', "',' or ')' in 'shape'");
      skip_ws();
      if (eat(')')) return dims;
    }
  }

  std::string_view s_;
  const std::string& file_;
  size_t pos_ = 0;
};

uint32_t load_le(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

Tensor read_npy(const std::filesystem::path& path) {
  InputFile f(path);
  const std::string& file = f.name();

  std::array<uint8_t, 8> pre{};
  const size_t got = static_cast<size_t>(std::min<uint64_t>(f.size(), pre.size()));
  f.read(0, pre.data(), got, "magic");
  if (got < kMagic.size() || std::memcmp(pre.data(), kMagic.data(), kMagic.size()) != 0)
    throw Error(fmt::format("{}: not a .npy file (bad magic; expected \\x93NUMPY)", file));
  if (got < 8) throw Error(fmt::format("{}: file ends inside the version bytes", file));
  const int major = pre[6], minor = pre[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    throw Error(fmt::format("{}: unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)",
                            file, major, minor));

  // Header length field: u16 LE for 1.0, u32 LE for 2.0 and 3.0.
  const size_t len_bytes = major == 1 ? 2 : 4;
  std::array<uint8_t, 4> len_buf{};
  if (f.size() < 8 + len_bytes)
    throw Error(fmt::format("{}: file ends inside the header length field", file));
  f.read(8, len_buf.data(), len_bytes, "header length");
  const uint64_t header_len = load_le(len_buf.data(), len_bytes);
  const uint64_t data_offset = 8 + len_bytes + header_len;
  if (data_offset > f.size())
    throw Error(fmt::format("{}: header length {} runs past the end of the file ({} bytes)", file,
                            header_len, f.size()));

  const auto raw = f.read_bytes(8 + len_bytes, static_cast<size_t>(header_len), "header");
  const std::string_view text(reinterpret_cast<const char*>(raw.data()), raw.size());
  if (text.empty() || text.back() != '\n')
    throw Error(fmt::format("{}: header is not terminated by a newline", file));
  const NpyHeader h = HeaderParser(text, file).parse();

  const auto dtype = dtype_from_descr(h.descr);
  if (!dtype) {
    if (h.descr.size() > 1 && h.descr[0] == '>')
      throw Error(fmt::format("{}: descr '{}' is big-endian; only little-endian data is supported",
                              file, h.descr));
    throw Error(fmt::format("{}: unsupported descr '{}' (supported: {})", file, h.descr, kSupported));
  }
  if (h.fortran_order)
    throw Error(fmt::format("{}: fortran_order is True; only C-order arrays are supported", file));

  const size_t itemsize = dtype_size(*dtype);
  const auto need = checked_byte_size(h.shape, itemsize);
  if (!need)
    throw Error(fmt::format("{}: shape {} with {}-byte elements overflows the addressable size",
                            file, shape_to_string(h.shape), itemsize));
  const uint64_t have = f.size() - data_offset;
  if (have != *need) {
    uint64_t numel = 1;
    for (int64_t d : h.shape) numel *= static_cast<uint64_t>(d);
    throw Error(fmt::format(
        "{}: header declares shape {} = {} elements but the file holds {} bytes of data, "
        "expected {} ({})", file, shape_to_string(h.shape), numel, have, *need,
        have < *need ? "file is truncated" : fmt::format("{} trailing bytes", have - *need)));
  }

  Tensor t;
  t.dtype = *dtype;
  t.shape = h.shape;
  t.data = f.read_bytes(data_offset, static_cast<size_t>(*need), "data");
  return t;
}

std::vector<uint8_t> npy_bytes(const Tensor& t, const std::string& where) {
  const std::string_view descr = descr_from_dtype(t.dtype);
  if (descr.empty())
    throw Error(fmt::format("{}: {} has no .npy dtype; write it as .safetensors", where,
                            dtype_name(t.dtype)));
  const auto need = checked_byte_size(t.shape, dtype_size(t.dtype));
  if (!need)
    throw Error(fmt::format("{}: tensor shape {} is negative or overflows", where,
                            shape_to_string(t.shape)));
  if (t.data.size() != *need)
    throw Error(fmt::format("{}: tensor holds {} bytes but shape {} of {} needs {}", where,
                            t.data.size(), shape_to_string(t.shape), dtype_name(t.dtype), *need));

  // numpy _write_array_header: keys sorted, repr values, then spare spaces so the first axis
  // can grow to GROWTH_AXIS_MAX_DIGITS digits in place, then _wrap_header pads with 1..64
  // spaces plus '\n' so that magic + version + length + header is a multiple of 64.
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                   descr, shape_to_string(t.shape));
  if (!t.shape.empty())
    header.append(kGrowthAxisMaxDigits - fmt::formatted_size("{}", t.shape[0]), ' ');
  // numpy tries version 1.0 and falls back to 2.0 when the header does not fit in a u16.
  size_t prefix = 10;
  size_t pad = kAlign - (prefix + header.size() + 1) % kAlign;
  if (header.size() + 1 + pad > 0xFFFF) {
    prefix = 12;
    pad = kAlign - (prefix + header.size() + 1) % kAlign;
  }
  const uint64_t hlen = header.size() + pad + 1;
  header.append(pad, ' ');
  header.push_back('\n');

  std::vector<uint8_t> out(kMagic.begin(), kMagic.end());
  out.push_back(static_cast<uint8_t>(prefix == 10 ? 1 : 2));
  out.push_back(0);
  for (size_t i = 0; i < prefix - 8; ++i) out.push_back(static_cast<uint8_t>((hlen >> (8 * i)) & 0xFF));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), t.data.begin(), t.data.end());
  return out;
}

void write_npy(const std::filesystem::path& path, const Tensor& t) {
  const std::vector<uint8_t> bytes = npy_bytes(t, path.string());
  OutputFile out(path);
  out.write(bytes.data(), bytes.size());
  out.close();
}

}  // namespace lowbit
