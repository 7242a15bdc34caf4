// safetensors reader/writer. Layout (safetensors README, "Format"):
//   N: u64 little-endian | N bytes of UTF-8 JSON, may be padded with trailing spaces |
//   data buffer; each header entry {"dtype", "shape", "data_offsets": [begin, end]} addresses
//   [begin, end) relative to the start of the buffer.
// Validation mirrors the reference crate (safetensors/src/tensor.rs): MAX_HEADER_SIZE of 100 MB,
// header starting with '{', byte size == numel * dtype size, and the sorted offsets tiling the
// buffer exactly ("the byte buffer needs to be entirely indexed, and cannot contain holes").
#include "sim/safetensors.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "formats/error.hpp"
#include "sim/json_strict.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit {

namespace {

using Json = nlohmann::ordered_json;  // keeps header order, used to order empty tensors

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // safetensors MAX_HEADER_SIZE
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kSupported = "F32, F16, BF16, I8, U8, U16, U32, I32, F64";

struct Entry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct Index {
  InputFile file;
  uint64_t data_start = 0;
  std::vector<Entry> entries;  // file order: ascending (begin, end), ties in header order
  std::map<std::string, std::string> metadata;
};

Json parse_header_json(std::string_view text, const std::string& file) { return parse_json_strict(text, file + ": header"); }

uint64_t get_offset(const Json& v, const std::string& where) {
  if (!v.is_number_unsigned())
    throw Error(fmt::format("{}: data_offsets must be two non-negative integers", where));
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const Json& v, const std::string& file,
                  uint64_t buffer_size) {
  const std::string where = fmt::format("{}: tensor '{}'", file, name);
  if (!v.is_object()) throw Error(fmt::format("{}: entry is not a JSON object", where));
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      throw Error(fmt::format("{}: unknown field '{}'", where, it.key()));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) throw Error(fmt::format("{}: missing field '{}'", where, key));

  Entry e;
  e.name = name;
  const Json& dt = v["dtype"];
  if (!dt.is_string()) throw Error(fmt::format("{}: dtype is not a string", where));
  const auto dtype = parse_dtype(dt.get<std::string>());
  if (!dtype)
    throw Error(fmt::format("{}: unsupported dtype '{}' (supported: {})", where,
                            dt.get<std::string>(), kSupported));
  e.dtype = *dtype;

  const Json& shape = v["shape"];
  if (!shape.is_array()) throw Error(fmt::format("{}: shape is not an array", where));
  for (const Json& d : shape) {
    if (!d.is_number_integer())
      throw Error(fmt::format("{}: shape must be an array of non-negative integers", where));
    if (!d.is_number_unsigned())
      throw Error(fmt::format("{}: negative dimension {} in shape", where, d.get<int64_t>()));
    const auto u = d.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(fmt::format("{}: shape dimension {} overflows int64", where, u));
    e.shape.push_back(static_cast<int64_t>(u));
  }

  const Json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    throw Error(fmt::format("{}: data_offsets must be two non-negative integers", where));
  e.begin = get_offset(off[0], where);
  e.end = get_offset(off[1], where);
  if (e.begin > e.end)
    throw Error(fmt::format("{}: data_offsets [{}, {}] have begin > end", where, e.begin, e.end));
  if (e.end > buffer_size)
    throw Error(fmt::format("{}: data_offsets [{}, {}] lie outside the data buffer of {} bytes",
                            where, e.begin, e.end, buffer_size));

  const auto need = checked_byte_size(e.shape, dtype_size(e.dtype));
  if (!need)
    throw Error(fmt::format("{}: shape {} of {} overflows the addressable size", where,
                            shape_to_string(e.shape), dtype_name(e.dtype)));
  if (e.end - e.begin != *need)
    throw Error(fmt::format("{}: data_offsets span {} bytes but shape {} of {} has size {}", where,
                            e.end - e.begin, shape_to_string(e.shape), dtype_name(e.dtype), *need));
  return e;
}

Index open_index(const std::filesystem::path& path) {
  InputFile f(path);
  const std::string file = f.name();
  if (f.size() < 8)
    throw Error(fmt::format("{}: file of {} bytes is too short for a safetensors header length",
                            file, f.size()));
  uint8_t len_buf[8];
  f.read(0, len_buf, 8, "header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len_buf[i]) << (8 * i);
  if (n > kMaxHeaderSize)
    throw Error(fmt::format("{}: header length {} exceeds the {}-byte limit", file, n,
                            kMaxHeaderSize));
  if (n > f.size() - 8)
    throw Error(fmt::format("{}: header length {} runs past the end of the file ({} bytes)", file,
                            n, f.size()));

  const auto raw = f.read_bytes(8, static_cast<size_t>(n), "header");
  const std::string_view text(reinterpret_cast<const char*>(raw.data()), raw.size());
  const Json j = parse_header_json(text, file);
  if (!j.is_object()) throw Error(fmt::format("{}: header is not a JSON object", file));
  if (text.front() != '{') throw Error(fmt::format("{}: header must start with '{{'", file));

  const uint64_t buffer_size = f.size() - 8 - n;
  Index idx{std::move(f), 8 + n, {}, {}};
  for (const auto& [key, value] : j.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        throw Error(fmt::format("{}: __metadata__ must be an object of string values", file));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw Error(fmt::format("{}: __metadata__ must be an object of string values; '{}' is {}",
                                  file, mk, mv.type_name()));
        idx.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    idx.entries.push_back(parse_entry(key, value, file, buffer_size));
  }

  // The sorted [begin, end) ranges must tile [0, buffer_size) exactly.
  std::stable_sort(idx.entries.begin(), idx.entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : idx.entries) {
    if (e.begin < pos)
      throw Error(fmt::format("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap in the data buffer",
                              file, prev->name, prev->begin, prev->end, e.name, e.begin, e.end));
    if (e.begin > pos)
      throw Error(fmt::format("{}: gap in the data buffer: bytes [{}, {}) belong to no tensor",
                              file, pos, e.begin));
    pos = e.end;
    if (e.end > e.begin) prev = &e;
  }
  if (pos != buffer_size)
    throw Error(fmt::format("{}: gap in the data buffer: bytes [{}, {}) at its end belong to no tensor",
                            file, pos, buffer_size));
  return idx;
}

std::string list_names(const std::vector<Entry>& entries) {
  constexpr size_t kMaxListed = 20;
  if (entries.empty()) return "(none)";
  std::string s;
  for (size_t i = 0; i < entries.size() && i < kMaxListed; ++i)
    s += fmt::format("{}'{}'", i ? ", " : "", entries[i].name);
  if (entries.size() > kMaxListed) s += fmt::format(", ... ({} more)", entries.size() - kMaxListed);
  return s;
}

}  // namespace

std::vector<std::string> safetensors_names(const std::filesystem::path& path) {
  const Index idx = open_index(path);
  std::vector<std::string> names;
  for (const Entry& e : idx.entries) names.push_back(e.name);
  return names;
}

std::map<std::string, std::string> safetensors_metadata(const std::filesystem::path& path) {
  return open_index(path).metadata;
}

std::vector<Tensor> read_safetensors(const std::filesystem::path& path,
                                     const std::vector<std::string>& names) {
  Index idx = open_index(path);
  std::vector<const Entry*> wanted;
  if (names.empty()) {
    for (const Entry& e : idx.entries) wanted.push_back(&e);
  } else {
    std::unordered_map<std::string_view, const Entry*> by_name;
    for (const Entry& e : idx.entries) by_name.emplace(e.name, &e);
    for (const std::string& n : names) {
      const auto it = by_name.find(n);
      if (it == by_name.end())
        throw Error(fmt::format("{}: no tensor named '{}'; available: {}", idx.file.name(), n,
                                list_names(idx.entries)));
      wanted.push_back(it->second);
    }
  }
  std::vector<Tensor> out;
  out.reserve(wanted.size());
  for (const Entry* e : wanted) {
    Tensor t;
    t.name = e->name;
    t.dtype = e->dtype;
    t.shape = e->shape;
    t.data = idx.file.read_bytes(idx.data_start + e->begin, static_cast<size_t>(e->end - e->begin),
                                 fmt::format("tensor '{}' data", e->name));
    out.push_back(std::move(t));
  }
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header[std::string(kMetadataKey)] = std::move(m);
  }
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.name.empty()) throw Error(fmt::format("{}: tensor {} has an empty name", file, i));
    if (t.name == kMetadataKey)
      throw Error(fmt::format("{}: tensor name '__metadata__' is reserved", file));
    if (!seen.insert(t.name).second)
      throw Error(fmt::format("{}: duplicate tensor name '{}'", file, t.name));
    const auto need = checked_byte_size(t.shape, dtype_size(t.dtype));
    if (!need)
      throw Error(fmt::format("{}: tensor '{}' has a negative or overflowing shape {}", file,
                              t.name, shape_to_string(t.shape)));
    if (t.data.size() != *need)
      throw Error(fmt::format("{}: tensor '{}' holds {} bytes but shape {} of {} needs {}", file,
                              t.name, t.data.size(), shape_to_string(t.shape), dtype_name(t.dtype),
                              *need));
    Json entry = Json::object();
    entry["dtype"] = std::string(dtype_name(t.dtype));
    entry["shape"] = t.shape;
    entry["data_offsets"] = Json::array({offset, offset + *need});
    header[t.name] = std::move(entry);
    offset += *need;
  }
  std::string text;
  try {
    text = header.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception&) {
    throw Error(fmt::format("{}: a tensor name or metadata string is not valid UTF-8", file));
  }
  // Pad with spaces so the data buffer starts 8-byte aligned (reference writer does the same).
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t len_buf[8];
  for (int i = 0; i < 8; ++i) len_buf[i] = static_cast<uint8_t>((text.size() >> (8 * i)) & 0xFF);
  OutputFile out(path);
  out.write(len_buf, 8);
  out.write(text.data(), text.size());
  for (const Tensor& t : tensors) out.write(t.data.data(), t.data.size());
  out.close();
}

}  // namespace lowbit
