// safetensors reader/writer (https://github.com/huggingface/safetensors, format section):
// 8-byte little-endian u64 header length N, N bytes of JSON header, then the data buffer.
// Supported dtypes: F32 F16 BF16 I8 U8, plus U16 U32 I32 for lowbit's own outputs and F64 for
// cached statistics and float64 reference outputs.
// Validation follows the reference implementation: header < 100 MB, every entry has dtype,
// shape and data_offsets, the tensors cover the data buffer exactly (no gaps, no overlaps),
// and "__metadata__" is a string -> string object. Duplicate JSON keys are also rejected.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sim/tensor.hpp"

namespace lowbit {

// Tensor names in file order (ascending data offset; ties, i.e. empty tensors, in header order).
std::vector<std::string> safetensors_names(const std::filesystem::path& path);

// The "__metadata__" map (empty if absent).
std::map<std::string, std::string> safetensors_metadata(const std::filesystem::path& path);

// names empty: all tensors in file order; otherwise the named tensors in the order asked.
// The whole header is validated even when only some tensors are read.
std::vector<Tensor> read_safetensors(const std::filesystem::path& path,
                                     const std::vector<std::string>& names = {});

// Writes the tensors in the given order, contiguous from offset 0. The header is compact JSON
// ("__metadata__" first when non-empty, then per tensor {"dtype","shape","data_offsets"}),
// padded with spaces to a multiple of 8 bytes as the reference writer does. Names must be
// non-empty, unique, valid UTF-8 and not "__metadata__".
void write_safetensors(const std::filesystem::path& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace lowbit
