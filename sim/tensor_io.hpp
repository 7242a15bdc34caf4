// Tensor file IO entry point: load_tensors() opens "X.npy", "X.safetensors" or
// "X.safetensors:name" specs (the form the CLI and sweeps take), plus the checked binary file
// reader/writer that the .npy and .safetensors codecs share.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "sim/tensor.hpp"

namespace lowbit {

// "X.npy" -> the one (unnamed) tensor; "X.safetensors" -> all tensors in file order;
// "X.safetensors:name" -> that tensor (the error lists the available names if it is absent).
// The path ends at the first ".safetensors:", so tensor names may contain ':' and '.'.
std::vector<Tensor> load_tensors(const std::string& spec);

// A regular file opened for binary reading whose size is known up front. Every read is checked
// against that size before anything is allocated or read, and every short read throws.
// Errors are lowbit::Error and start with the file name.
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path);
  const std::string& name() const { return name_; }
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at offset into dst; `what` names the field in the error message.
  void read(uint64_t offset, void* dst, size_t n, std::string_view what);
  std::vector<uint8_t> read_bytes(uint64_t offset, size_t n, std::string_view what);

 private:
  std::string name_;
  uint64_t size_ = 0;
  std::ifstream in_;
};

// A file opened for binary writing (truncated); write() and close() throw on any failure.
class OutputFile {
 public:
  explicit OutputFile(const std::filesystem::path& path);
  void write(const void* src, size_t n);
  void close();

 private:
  std::string name_;
  std::ofstream out_;
};

}  // namespace lowbit
