// Tests for sim/safetensors: round trips for every dtype, byte-exact output against a file built
// by hand from the safetensors format description, and one test per malformed-file case.
#include <gtest/gtest.h>

#include "tests/sim/temp_dir_test.hpp"
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/safetensors.hpp"
#include "sim/tensor.hpp"

namespace fs = std::filesystem;
using lowbit::DType;
using lowbit::Tensor;

namespace {

class SafetensorsTest : public lowbit::testing::TempDirTest {
 protected:
  // Spec layout: u64 LE header length, the JSON header, then the data buffer.
  fs::path write_st(const std::string& name, const std::string& json, const std::string& data) const {
    return write_raw(name, le64(json.size()) + json + data);
  }

  static std::string le64(uint64_t n) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    return s;
  }

  std::string slurp(const fs::path& p) const {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

};

void expect_error(const std::function<void()>& fn, const std::string& word) {
  try {
    fn();
    ADD_FAILURE() << "expected lowbit::Error containing '" << word << "'";
  } catch (const lowbit::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(word), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find(".safetensors"), std::string::npos) << "no file name: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
  }
}

// Entry JSON for hand-built headers.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t begin, uint64_t end) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype,
                     shape, begin, end);
}

TEST_F(SafetensorsTest, RoundTripEveryDtypeAndShape) {
  const std::vector<DType> dtypes = {DType::F32, DType::F16, DType::BF16, DType::I8,
                                     DType::U8,  DType::U16, DType::U32,  DType::I32,
                                     DType::F64};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {5}, {3, 0, 2}, {2, 3, 4}};
  std::vector<Tensor> tensors;
  uint32_t state = 777;
  for (DType dt : dtypes) {
    for (size_t s = 0; s < shapes.size(); ++s) {
      const size_t bytes = *lowbit::checked_byte_size(shapes[s], lowbit::dtype_size(dt));
      std::vector<std::byte> data(bytes);
      for (auto& b : data) {
        state = state * 1664525u + 1013904223u;
        b = static_cast<std::byte>(state >> 24);
      }
      // Names deliberately not in alphabetical order, with '.' and ':' in them.
      tensors.push_back(lowbit::tensor_from_raw(
          dt, shapes[s], data, fmt::format("z{}.layer:{}", tensors.size(), lowbit::dtype_name(dt))));
    }
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"source", "lowbit test"}};
  const fs::path p = file("all.safetensors");
  lowbit::write_safetensors(p, tensors, meta);

  const auto names = lowbit::safetensors_names(p);
  ASSERT_EQ(names.size(), tensors.size());
  const auto back = lowbit::read_safetensors(p);
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    EXPECT_EQ(names[i], tensors[i].name);
    EXPECT_EQ(back[i].name, tensors[i].name);
    EXPECT_EQ(back[i].dtype, tensors[i].dtype);
    EXPECT_EQ(back[i].shape, tensors[i].shape);
    EXPECT_EQ(back[i].data, tensors[i].data);
  }
  EXPECT_EQ(lowbit::safetensors_metadata(p), meta);

  // The JSON header is padded to 8 bytes, so the data buffer is 8-byte aligned.
  const std::string bytes = slurp(p);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
}

TEST_F(SafetensorsTest, WriteMatchesHandBuiltSpecBytes) {
  const std::vector<float> w = {1.0f, -2.0f};
  const uint8_t bias = 7;
  lowbit::write_safetensors(
      file("w.safetensors"),
      {lowbit::tensor_from_f32({2}, w, "w"),
       lowbit::tensor_from_raw(DType::U8, {}, std::as_bytes(std::span(&bias, 1)), "bias")},
      {{"format", "pt"}});

  // Header: compact JSON, __metadata__ first, tensors in the order given, offsets relative to
  // the data buffer; 139 bytes padded with 5 spaces to 144.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("bias":{"dtype":"U8","shape":[],"data_offsets":[8,9]}})";
  ASSERT_EQ(json.size(), 139u);
  std::string expected("\x90\0\0\0\0\0\0\0", 8);  // 144 little-endian
  expected += json + "     ";
  expected += std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x07", 9);  // 1.0f, -2.0f, 7
  EXPECT_EQ(slurp(file("w.safetensors")), expected);

  const auto back = lowbit::read_safetensors(write_raw("hand.safetensors", expected));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(lowbit::to_f32(back[0]), w);
  EXPECT_EQ(back[1].data, std::vector<uint8_t>{7});
  EXPECT_TRUE(back[1].shape.empty());
}

TEST_F(SafetensorsTest, F64HandBuiltAndReferenceWriter) {
  // Hand-built: "F64" entries are 8 bytes per element, little-endian IEEE binary64.
  const std::vector<double> v = {0.1, -3.5};
  const fs::path p = write_st("f.safetensors", "{" + entry("x", "F64", "[2]", 0, 16) + "}",
                              std::string(reinterpret_cast<const char*>(v.data()), 16));
  const auto back = lowbit::read_safetensors(p);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].dtype, DType::F64);
  EXPECT_EQ(lowbit::to_f64(back[0]), v);
  // Byte size is checked against 8 bytes per element.
  expect_error([&] {
    lowbit::read_safetensors(write_st("g.safetensors", "{" + entry("x", "F64", "[2]", 0, 8) + "}",
                                      std::string(8, '\0')));
  }, "has size 16");

  // A file of the reference writer (safetensors.torch.save_file, experiments/tinydit/
  // make_reference.py): the float64 run of the same computation agrees with the float32 one
  // to float32 rounding, which a misread F64 (wrong size or byte order) would not.
  const fs::path ref = fs::path(LOWBIT_SOURCE_DIR) / "tests/data/dit_reference.safetensors";
  const auto t = lowbit::read_safetensors(ref, {"forward", "forward_f64"});
  ASSERT_EQ(t[1].dtype, DType::F64);
  ASSERT_EQ(t[1].shape, t[0].shape);
  const auto f32 = lowbit::to_f32(t[0]);
  const auto f64 = lowbit::to_f64(t[1]);
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < f32.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(f64[i] - f32[i]));
    max_abs = std::max(max_abs, std::abs(f64[i]));
  }
  EXPECT_GT(max_abs, 0.1);
  EXPECT_LT(max_diff, 1e-3 * max_abs);
}

TEST_F(SafetensorsTest, FileOrderIsOffsetOrder) {
  // Header order b, a, e; layout a [0,4), e empty at 4, b [4,6). Also: trailing header spaces.
  const std::string json = "{" + entry("b", "BF16", "[1]", 4, 6) + "," +
                           entry("a", "I8", "[2,2]", 0, 4) + "," + entry("e", "F32", "[0,3]", 4, 4) +
                           "}   ";
  const fs::path p = write_st("o.safetensors", json, std::string("\x01\x02\x03\xfc\x80\x3f", 6));
  EXPECT_EQ(lowbit::safetensors_names(p), (std::vector<std::string>{"a", "e", "b"}));
  const auto all = lowbit::read_safetensors(p);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(lowbit::to_f32(all[0]), (std::vector<float>{1, 2, 3, -4}));
  EXPECT_EQ(all[1].numel(), 0);
  EXPECT_EQ(lowbit::to_f32(all[2]), std::vector<float>{1.0f});  // bf16 0x3F80
  EXPECT_TRUE(lowbit::safetensors_metadata(p).empty());

  // Selected names come back in the order asked.
  const auto sel = lowbit::read_safetensors(p, {"b", "a"});
  ASSERT_EQ(sel.size(), 2u);
  EXPECT_EQ(sel[0].name, "b");
  EXPECT_EQ(sel[1].name, "a");
  EXPECT_EQ(sel[1].shape, (std::vector<int64_t>{2, 2}));
}

TEST_F(SafetensorsTest, EmptyFileWithNoTensors) {
  const fs::path p = write_st("e.safetensors", "{}", "");
  EXPECT_TRUE(lowbit::read_safetensors(p).empty());
  lowbit::write_safetensors(file("w.safetensors"), {});
  EXPECT_EQ(slurp(file("w.safetensors")), le64(8) + "{}      ");
  EXPECT_TRUE(lowbit::safetensors_names(file("w.safetensors")).empty());
}

TEST_F(SafetensorsTest, FileShorterThan8Bytes) {
  expect_error([&] { lowbit::read_safetensors(write_raw("s.safetensors", "\x02\0\0")); }, "too short");
}

TEST_F(SafetensorsTest, HeaderLengthPastEof) {
  expect_error([&] { lowbit::read_safetensors(write_raw("h.safetensors", le64(64) + "{}")); },
               "past the end");
}

TEST_F(SafetensorsTest, HeaderLengthAbsurd) {
  // 2^63 and 200 MB: rejected before any allocation, even though the file is tiny.
  expect_error([&] { lowbit::read_safetensors(write_raw("a.safetensors", le64(1ull << 63) + "{}")); },
               "limit");
  expect_error([&] { lowbit::read_safetensors(write_raw("b.safetensors", le64(200'000'000) + "{}")); },
               "limit");
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  for (const std::string& json : {std::string("{\"a\":"), std::string("not json"), std::string(""),
                                  std::string("{} x"), std::string("{\"a\":1,}")}) {
    SCOPED_TRACE(json);
    expect_error([&] { lowbit::read_safetensors(write_st("j.safetensors", json, "")); }, "not valid JSON");
  }
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  expect_error([&] { lowbit::read_safetensors(write_st("a.safetensors", "[1, 2]", "")); },
               "not a JSON object");
  expect_error([&] { lowbit::read_safetensors(write_st("b.safetensors", " {}", "")); },
               "start with '{'");
}

TEST_F(SafetensorsTest, EntryMissingField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"t":{"shape":[1],"data_offsets":[0,1]}})", "missing field 'dtype'"},
      {R"({"t":{"dtype":"U8","data_offsets":[0,1]}})", "missing field 'shape'"},
      {R"({"t":{"dtype":"U8","shape":[1]}})", "missing field 'data_offsets'"},
      {R"({"t":[1]})", "not a JSON object"},
      {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"crc":0}})", "unknown field 'crc'"},
  };
  for (const auto& [json, word] : cases) {
    SCOPED_TRACE(json);
    expect_error([&] { lowbit::read_safetensors(write_st("m.safetensors", json, "x")); }, word);
  }
}

TEST_F(SafetensorsTest, UnknownDtype) {
  for (const char* dt : {"I64", "BOOL", "F8_E4M3", "f32", "f64"}) {
    SCOPED_TRACE(dt);
    expect_error([&] {
      lowbit::read_safetensors(
          write_st("d.safetensors", "{" + entry("t", dt, "[1]", 0, 8) + "}", std::string(8, '\0')));
    }, "unsupported dtype");
  }
  expect_error([&] {
    lowbit::read_safetensors(write_st(
        "d2.safetensors", R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,1]}})", "x"));
  }, "dtype is not a string");
}

TEST_F(SafetensorsTest, DataOffsetsNotTwoNonNegativeIntegers) {
  for (const std::string off : {"[0]", "[0,1,1]", "[-1,1]", "[0,1.0]", "\"0,1\"", "[0,null]"}) {
    SCOPED_TRACE(off);
    expect_error([&] {
      lowbit::read_safetensors(write_st(
          "o.safetensors", R"({"t":{"dtype":"U8","shape":[1],"data_offsets":)" + off + "}}", "x"));
    }, "two non-negative integers");
  }
}

TEST_F(SafetensorsTest, DataOffsetsBeginAfterEnd) {
  expect_error([&] {
    lowbit::read_safetensors(write_st("o.safetensors", "{" + entry("t", "U8", "[0]", 1, 0) + "}", "x"));
  }, "begin > end");
}

TEST_F(SafetensorsTest, DataOffsetsOutOfBuffer) {
  expect_error([&] {
    lowbit::read_safetensors(
        write_st("o.safetensors", "{" + entry("t", "U8", "[4]", 0, 4) + "}", "xyz"));
  }, "outside the data buffer");
  // Huge offsets must not wrap around.
  expect_error([&] {
    lowbit::read_safetensors(write_st(
        "o2.safetensors", "{" + entry("t", "U8", "[1]", 18446744073709551615ull, 18446744073709551615ull) + "}",
        "x"));
  }, "outside the data buffer");
}

TEST_F(SafetensorsTest, ByteSizeMismatch) {
  expect_error([&] {
    lowbit::read_safetensors(
        write_st("s.safetensors", "{" + entry("t", "F16", "[2,2]", 0, 6) + "}", std::string(6, '\0')));
  }, "span 6 bytes but shape (2, 2) of F16 has size 8");
}

TEST_F(SafetensorsTest, NegativeOrOverflowingShape) {
  expect_error([&] {
    lowbit::read_safetensors(write_st("n.safetensors", "{" + entry("t", "U8", "[-1]", 0, 0) + "}", ""));
  }, "negative");
  expect_error([&] {
    lowbit::read_safetensors(write_st(
        "v.safetensors", "{" + entry("t", "F32", "[4294967296,4294967296]", 0, 0) + "}", ""));
  }, "overflow");
  expect_error([&] {
    lowbit::read_safetensors(write_st("f.safetensors", "{" + entry("t", "U8", "[1.5]", 0, 0) + "}", ""));
  }, "non-negative integers");
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  const std::string json = "{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[2]", 2, 4) + "}";
  expect_error([&] { lowbit::read_safetensors(write_st("o.safetensors", json, "abcd")); }, "overlap");
  // Two tensors sharing the same bytes.
  const std::string same = "{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "I8", "[4]", 0, 4) + "}";
  expect_error([&] { lowbit::read_safetensors(write_st("s.safetensors", same, "abcd")); }, "overlap");
}

TEST_F(SafetensorsTest, GapInBuffer) {
  const std::string json = "{" + entry("a", "U8", "[2]", 0, 2) + "," + entry("b", "U8", "[2]", 3, 5) + "}";
  expect_error([&] { lowbit::read_safetensors(write_st("g.safetensors", json, "abcde")); },
               "gap in the data buffer: bytes [2, 3)");
  // Unindexed bytes after the last tensor.
  expect_error([&] {
    lowbit::read_safetensors(write_st("t.safetensors", "{" + entry("a", "U8", "[2]", 0, 2) + "}", "abc"));
  }, "gap in the data buffer: bytes [2, 3) at its end");
}

TEST_F(SafetensorsTest, DuplicateNames) {
  const std::string json = "{" + entry("a", "U8", "[1]", 0, 1) + "," + entry("a", "U8", "[1]", 1, 2) + "}";
  expect_error([&] { lowbit::read_safetensors(write_st("d.safetensors", json, "ab")); },
               "duplicate key 'a'");
  // Duplicate field inside an entry.
  expect_error([&] {
    lowbit::read_safetensors(write_st(
        "f.safetensors", R"({"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", "a"));
  }, "duplicate key 'dtype'");
}

TEST_F(SafetensorsTest, MetadataNotStringToString) {
  for (const std::string meta : {R"({"n":1})", R"(["a"])", R"("a")", R"({"n":{"x":"y"}})", "null"}) {
    SCOPED_TRACE(meta);
    expect_error([&] {
      lowbit::read_safetensors(write_st("m.safetensors", R"({"__metadata__":)" + meta + "}", ""));
    }, "__metadata__ must be an object of string values");
  }
}

TEST_F(SafetensorsTest, NameAbsent) {
  const std::string json = "{" + entry("alpha", "U8", "[1]", 0, 1) + "," + entry("beta", "U8", "[1]", 1, 2) + "}";
  const fs::path p = write_st("n.safetensors", json, "ab");
  expect_error([&] { lowbit::read_safetensors(p, {"gamma"}); },
               "no tensor named 'gamma'; available: 'alpha', 'beta'");
}

TEST_F(SafetensorsTest, WriteRejectsBadTensors) {
  const float v[2] = {1, 2};
  const auto t = lowbit::tensor_from_f32({2}, v, "t");
  expect_error([&] { lowbit::write_safetensors(file("a.safetensors"), {t, t}); }, "duplicate tensor name");
  expect_error([&] { lowbit::write_safetensors(file("b.safetensors"), {lowbit::tensor_from_f32({2}, v)}); },
               "empty name");
  expect_error([&] {
    lowbit::write_safetensors(file("c.safetensors"), {lowbit::tensor_from_f32({2}, v, "__metadata__")});
  }, "reserved");
  Tensor bad = t;
  bad.data.pop_back();
  expect_error([&] { lowbit::write_safetensors(file("d.safetensors"), {bad}); }, "holds 7 bytes");
  Tensor utf = t;
  utf.name = "\xff\xfe";
  expect_error([&] { lowbit::write_safetensors(file("e.safetensors"), {utf}); }, "UTF-8");
}

}  // namespace
