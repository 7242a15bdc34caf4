// NumPy .npy reader/writer (format versions 1.0, 2.0, 3.0; see numpy/lib/format.py).
// Supported descrs: <f4 <f2 |i1 |u1 <u2 <u4 <i4 <f8 (1-byte types also as '<', '>' or '='),
// C order only. The reader validates magic, version, header length, the header dict (parsed
// here as a strict Python literal subset, not evaluated), shape arithmetic and the data size.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sim/tensor.hpp"

namespace lowbit {

// Returns the tensor with name "". Throws lowbit::Error naming the file and the problem.
Tensor read_npy(const std::filesystem::path& path);

// Writes format version 1.0 (2.0 only if the header exceeds 65535 bytes, as numpy does), with
// numpy's exact header layout: sorted keys, growth-axis spare spaces, padded with spaces and
// a final '\n' so the data starts on a 64-byte boundary. BF16 has no .npy descr and throws.
void write_npy(const std::filesystem::path& path, const Tensor& tensor);

// The bytes write_npy writes (for archives: write_npz); `where` names the destination in errors.
std::vector<uint8_t> npy_bytes(const Tensor& tensor, const std::string& where);

}  // namespace lowbit
