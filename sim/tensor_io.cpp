// Tensor file IO: the load_tensors() spec dispatcher and the checked binary file reader/writer.
#include "sim/tensor_io.hpp"

#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/npy.hpp"
#include "sim/safetensors.hpp"

namespace lowbit {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::vector<Tensor> load_tensors(const std::string& spec) {
  constexpr std::string_view st = ".safetensors";
  if (ends_with(spec, ".npy")) {
    std::vector<Tensor> out;
    out.push_back(read_npy(spec));
    return out;
  }
  if (ends_with(spec, st)) return read_safetensors(spec);
  if (const auto pos = spec.find(".safetensors:"); pos != std::string::npos) {
    const std::string path = spec.substr(0, pos + st.size());
    const std::string name = spec.substr(pos + st.size() + 1);
    if (name.empty()) throw Error(fmt::format("{}: empty tensor name after ':'", spec));
    return read_safetensors(path, {name});
  }
  throw Error(fmt::format(
      "{}: unrecognised tensor spec; expected X.npy, X.safetensors or X.safetensors:name", spec));
}

InputFile::InputFile(const std::filesystem::path& path) : name_(path.string()) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    throw Error(fmt::format("{}: cannot open: no such file", name_));
  if (!std::filesystem::is_regular_file(st))
    throw Error(fmt::format("{}: cannot open: not a regular file", name_));
  size_ = std::filesystem::file_size(path, ec);
  if (ec) throw Error(fmt::format("{}: cannot determine file size: {}", name_, ec.message()));
  in_.open(path, std::ios::binary);
  if (!in_) throw Error(fmt::format("{}: cannot open for reading: {}", name_, std::strerror(errno)));
}

void InputFile::read(uint64_t offset, void* dst, size_t n, std::string_view what) {
  if (offset > size_ || n > size_ - offset)
    throw Error(fmt::format("{}: file too short for {}: needs {} bytes at offset {} but the file has {} bytes",
                            name_, what, n, offset, size_));
  if (n == 0) return;
  constexpr auto max_off = static_cast<uint64_t>(std::numeric_limits<std::streamoff>::max());
  constexpr auto max_n = static_cast<uint64_t>(std::numeric_limits<std::streamsize>::max());
  if (offset > max_off || n > max_n)
    throw Error(fmt::format("{}: {} at offset {} is beyond what the stream can address", name_,
                            what, offset));
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
  if (!in_ || static_cast<uint64_t>(in_.gcount()) != n)
    throw Error(fmt::format("{}: read error for {} ({} bytes at offset {}); file changed or unreadable",
                            name_, what, n, offset));
}

std::vector<uint8_t> InputFile::read_bytes(uint64_t offset, size_t n, std::string_view what) {
  // Size check first so that a corrupt length never turns into a huge allocation.
  if (offset > size_ || n > size_ - offset)
    throw Error(fmt::format("{}: file too short for {}: needs {} bytes at offset {} but the file has {} bytes",
                            name_, what, n, offset, size_));
  std::vector<uint8_t> out(n);
  read(offset, out.data(), n, what);
  return out;
}

OutputFile::OutputFile(const std::filesystem::path& path) : name_(path.string()) {
  out_.open(path, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error(fmt::format("{}: cannot open for writing: {}", name_, std::strerror(errno)));
}

void OutputFile::write(const void* src, size_t n) {
  if (n == 0) return;
  out_.write(static_cast<const char*>(src), static_cast<std::streamsize>(n));
  if (!out_) throw Error(fmt::format("{}: write failed ({} bytes)", name_, n));
}

void OutputFile::close() {
  out_.close();
  if (!out_) throw Error(fmt::format("{}: write failed on close", name_));
}

}  // namespace lowbit
