// The packed-tensor container (.bin written by `lowbit quantize --packed`), layout in
// docs/layouts.md: 8-byte magic "LOWBITPK", u32 version (1), u32 header length H, H bytes of
// JSON {spec, shape, code_bits, sections: [{name, dtype, shape, offset, nbytes}]}, then the
// section bytes, offsets relative to the end of the header, in order, without gaps.
#pragma once
#include <filesystem>

#include "formats/tensor_format.hpp"

namespace lowbit {

void write_packed(const std::filesystem::path& path, const PackedTensor& p);
// Validates every field; throws lowbit::Error naming the file and the problem.
PackedTensor read_packed(const std::filesystem::path& path);

}  // namespace lowbit
