// FormatParams — the parameters a registered format was built with, as plain data: what another
// implementation of the same format (the CUDA kernels in gpu/, a user's kernel) needs to
// reproduce it byte for byte. TensorFormat::params() returns them; the CPU classes keep their
// own copies. Every field is the value after spec parsing and defaults.
#pragma once
#include <cstdint>
#include <variant>
#include <vector>

#include "formats/codebook.hpp"
#include "formats/float_format.hpp"
#include "formats/int_format.hpp"
#include "formats/mx.hpp"
#include "formats/nvfp4.hpp"
#include "formats/lzs.hpp"
#include "formats/rounding.hpp"
#include "formats/spec.hpp"

namespace lowbit {

// Where an element format's scales come from (formats/element_format.cpp).
enum class Granularity : uint8_t { None, Group, Row, Col, Tensor };

// intB / uintB / eXmY, plain casts or scaled (formats/element_format.cpp).
struct ElementParams {
  bool is_int = false;
  FloatFormat ff{};          // float element (is_int false)
  IntFormat fi{8, true};     // int element; asymmetric formats store unsigned codes
  ElementPolicy pol{};       // element rounding, overflow, NaN mode, SR seed
  Granularity gran = Granularity::None;
  int64_t group = 0;         // Granularity::Group
  FloatFormat scale_fmt = fmt_desc::fp32;
  Round scale_round = Round::NearestEven;
  bool op_mul = false;       // x * (1/s) instead of x / s
  bool asym = false;         // min–max with zero points
  bool full_range = false;   // symmetric int with q in [-2^(b-1), 2^(b-1)-1]
};

// OCP MX (formats/mx.cpp): element type and options; blocks of kMxBlock along the last axis.
struct MxParams {
  MxElement elem{};
  MxOptions opt{};
};

// NVFP4 (formats/nvfp4.cpp): blocks of kNvfp4Block.
struct Nvfp4Params {
  Nvfp4Variant variant = Nvfp4Variant::Te;
  bool two_level = true;
  Round round = Round::NearestEven;
  uint64_t seed = 0;
};

enum class CodebookKind : uint8_t { Nf4, BnbFp4, Af4, User };
enum class CodebookBackend : uint8_t { Cuda, Torch };

// NF4 / bnb FP4 / AF4 / user codebooks (formats/codebook.cpp).
struct CodebookParams {
  CodebookKind kind = CodebookKind::Nf4;
  std::vector<float> table;  // code -> normalised value
  int code_bits = 4;
  int64_t block = 64;
  bool dq = false;           // double quantisation of the absmax
  CodebookBackend backend = CodebookBackend::Cuda;
  bool hi_nibble = false;    // order=hi: first element in the high nibble
  DynamicMapBuild dq_build = DynamicMapBuild::Avx2;  // dqmap=: how the dq dynamic map was built
};

enum class LzsCalib : uint8_t { Absmax, Minmax };

// QuaRTZ lzs4 (formats/lzs.cpp).
struct LzsParams {
  int64_t group = 16;
  bool per_token = false;
  LzsCalib calib = LzsCalib::Absmax;
  LzsRound round = LzsRound::Trunc;
  bool operator==(const LzsParams&) const = default;
};

using FormatParams = std::variant<ElementParams, MxParams, Nvfp4Params, CodebookParams, LzsParams>;

}  // namespace lowbit
