// Packed-tensor container reader/writer (see packed_io.hpp).
#include "sim/packed_io.hpp"

#include <fmt/format.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "formats/error.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit {

namespace {
constexpr char kMagic[8] = {'L', 'O', 'W', 'B', 'I', 'T', 'P', 'K'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxHeader = 1u << 24;

void put_u32(std::vector<uint8_t>& v, uint32_t x) {
  for (int i = 0; i < 4; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

Shape json_shape(const nlohmann::json& j, const std::string& file, const std::string& what) {
  if (!j.is_array()) throw Error(fmt::format("{}: {} shape is not an array", file, what));
  Shape s;
  for (const auto& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      throw Error(fmt::format("{}: {} shape has a non-integer or negative dimension", file, what));
    s.push_back(d.get<int64_t>());
  }
  return s;
}
}  // namespace

void write_packed(const std::filesystem::path& path, const PackedTensor& p) {
  nlohmann::json h;
  h["spec"] = p.spec;
  h["shape"] = p.shape;
  h["code_bits"] = p.code_bits;
  h["sections"] = nlohmann::json::array();
  uint64_t off = 0;
  for (const auto& s : p.sections) {
    h["sections"].push_back({{"name", s.name}, {"dtype", s.dtype}, {"shape", s.shape}, {"offset", off},
                             {"nbytes", s.bytes.size()}});
    off += s.bytes.size();
  }
  const std::string hs = h.dump();
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put_u32(out, kVersion);
  put_u32(out, static_cast<uint32_t>(hs.size()));
  out.insert(out.end(), hs.begin(), hs.end());
  for (const auto& s : p.sections) out.insert(out.end(), s.bytes.begin(), s.bytes.end());
  OutputFile f(path);
  f.write(out.data(), out.size());
  f.close();
}

PackedTensor read_packed(const std::filesystem::path& path) {
  InputFile f(path);
  const std::string& name = f.name();
  if (f.size() < 16) throw Error(fmt::format("{}: too short for a lowbit packed file ({} bytes)", name, f.size()));
  uint8_t head[16];
  f.read(0, head, 16, "file header");
  if (std::memcmp(head, kMagic, 8) != 0) throw Error(fmt::format("{}: not a lowbit packed file (bad magic)", name));
  const uint32_t version = get_u32(head + 8);
  if (version != kVersion) throw Error(fmt::format("{}: unsupported packed-file version {}", name, version));
  const uint32_t hlen = get_u32(head + 12);
  if (hlen > kMaxHeader || hlen > f.size() - 16)
    throw Error(fmt::format("{}: header length {} exceeds the file", name, hlen));
  const std::vector<uint8_t> hb = f.read_bytes(16, hlen, "JSON header");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(hb.begin(), hb.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON", name));
  }
  if (!h.is_object() || !h.contains("spec") || !h["spec"].is_string() || !h.contains("shape") ||
      !h.contains("code_bits") || !h["code_bits"].is_number_integer() || !h.contains("sections") ||
      !h["sections"].is_array())
    throw Error(fmt::format("{}: header needs spec, shape, code_bits and sections", name));
  PackedTensor p;
  p.spec = h["spec"].get<std::string>();
  p.shape = json_shape(h["shape"], name, "tensor");
  shape_numel(p.shape);
  const int64_t cb = h["code_bits"].get<int64_t>();
  if (cb < 1 || cb > 32) throw Error(fmt::format("{}: code_bits {} outside 1..32", name, cb));
  p.code_bits = static_cast<int>(cb);
  const uint64_t data_start = 16 + static_cast<uint64_t>(hlen);
  const uint64_t data_size = f.size() - data_start;
  uint64_t expect_off = 0;
  for (const auto& js : h["sections"]) {
    if (!js.is_object() || !js.contains("name") || !js["name"].is_string() || !js.contains("dtype") ||
        !js["dtype"].is_string() || !js.contains("shape") || !js.contains("offset") ||
        !js["offset"].is_number_unsigned() || !js.contains("nbytes") || !js["nbytes"].is_number_unsigned())
      throw Error(fmt::format("{}: malformed section entry", name));
    Section s;
    s.name = js["name"].get<std::string>();
    s.dtype = js["dtype"].get<std::string>();
    if (s.dtype != "u8" && s.dtype != "u16" && s.dtype != "u32" && s.dtype != "i8" && s.dtype != "f32")
      throw Error(fmt::format("{}: section '{}' has unknown dtype '{}'", name, s.name, s.dtype));
    if (p.find(s.name)) throw Error(fmt::format("{}: section '{}' appears twice", name, s.name));
    s.shape = json_shape(js["shape"], name, "section '" + s.name + "'");
    const uint64_t off = js["offset"].get<uint64_t>(), nb = js["nbytes"].get<uint64_t>();
    if (off != expect_off) throw Error(fmt::format("{}: section '{}' offset {} leaves a gap or overlap", name, s.name, off));
    if (nb > data_size - off || off > data_size)
      throw Error(fmt::format("{}: section '{}' runs past the end of the file", name, s.name));
    if (s.name != "codes") {
      const int64_t n = shape_numel(s.shape);
      const uint64_t width = s.dtype == "u16" ? 2 : ((s.dtype == "u32" || s.dtype == "f32") ? 4 : 1);
      if (static_cast<uint64_t>(n) * width != nb)
        throw Error(fmt::format("{}: section '{}' holds {} bytes, its shape needs {}", name, s.name, nb, n * width));
    }
    s.bytes = f.read_bytes(data_start + off, static_cast<size_t>(nb), "section " + s.name);
    expect_off = off + nb;
    p.sections.push_back(std::move(s));
  }
  if (expect_off != data_size) throw Error(fmt::format("{}: {} trailing bytes after the last section", name, data_size - expect_off));
  if (!p.find("codes")) throw Error(fmt::format("{}: no 'codes' section", name));
  return p;
}

}  // namespace lowbit
