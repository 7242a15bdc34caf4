// Tests for sim/npy: round trips for every dtype and shape kind, byte-exact output against a
// file built by hand from the .npy format spec, and one test per malformed-file case.
#include <gtest/gtest.h>

#include "tests/sim/temp_dir_test.hpp"
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/error.hpp"
#include "sim/npy.hpp"
#include "sim/tensor.hpp"

namespace fs = std::filesystem;
using lowbit::DType;
using lowbit::Tensor;

namespace {

class NpyTest : public lowbit::testing::TempDirTest {
 protected:
  // A .npy file per the spec: magic, version, LE header length, header padded with spaces to
  // a 64-byte multiple and terminated by '\n' (unless newline is false), then data.
  fs::path write_npy_bytes(const std::string& name, const std::string& dict, const std::string& data,
                           int major = 1, bool newline = true) const {
    const size_t prefix = major == 1 ? 10 : 12;
    std::string header = dict;
    while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
    header.push_back(newline ? '\n' : ' ');
    std::string bytes = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
    for (size_t i = 0; i < prefix - 8; ++i)
      bytes.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
    return write_raw(name, bytes + header + data);
  }

};

// Asserts that fn throws lowbit::Error whose message contains word (and the file name).
void expect_error(const std::function<void()>& fn, const std::string& word,
                  const std::string& file_hint = ".npy") {
  try {
    fn();
    ADD_FAILURE() << "expected lowbit::Error containing '" << word << "'";
  } catch (const lowbit::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(word), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find(file_hint), std::string::npos) << "message: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
  }
}

std::string f32_bytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) s.append(reinterpret_cast<const char*>(&v), sizeof v);
  return s;
}

const std::string kF32_2x3 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

TEST_F(NpyTest, RoundTripEveryDtypeAndShape) {
  const std::vector<DType> dtypes = {DType::F32, DType::F16, DType::I8, DType::U8,
                                     DType::U16, DType::U32, DType::I32, DType::F64};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {7}, {2, 0, 3}, {2, 3, 4}};
  uint32_t state = 12345;
  for (DType dt : dtypes) {
    for (const auto& shape : shapes) {
      const size_t bytes = *lowbit::checked_byte_size(shape, lowbit::dtype_size(dt));
      std::vector<std::byte> data(bytes);
      for (auto& b : data) {
        state = state * 1664525u + 1013904223u;
        b = static_cast<std::byte>(state >> 24);
      }
      const Tensor t = lowbit::tensor_from_raw(dt, shape, data);
      const fs::path p = file("rt.npy");
      lowbit::write_npy(p, t);
      const Tensor r = lowbit::read_npy(p);
      SCOPED_TRACE(fmt::format("{} {}", lowbit::dtype_name(dt), lowbit::shape_to_string(shape)));
      EXPECT_EQ(r.name, "");
      EXPECT_EQ(r.dtype, dt);
      EXPECT_EQ(r.shape, shape);
      EXPECT_EQ(r.data, t.data);
      // Data starts on a 64-byte boundary, as numpy writes it.
      EXPECT_EQ((fs::file_size(p) - bytes) % 64, 0u);
    }
  }
}

TEST_F(NpyTest, WriteMatchesHandBuiltSpecBytes) {
  const std::vector<float> values = {0.f, 1.f, 2.5f, -3.f, 1e-40f, 65504.f};
  lowbit::write_npy(file("w.npy"), lowbit::tensor_from_f32({2, 3}, values));

  // Spec: 6-byte magic, version 1.0, u16 LE HEADER_LEN, header dict padded with spaces so that
  // 10 + HEADER_LEN is a multiple of 64, ending in '\n'. 10 + 59 + 1 = 70 -> 128, so 58 spaces
  // and HEADER_LEN = 118 = 0x76.
  ASSERT_EQ(kF32_2x3.size(), 59u);
  std::string expected("\x93NUMPY\x01\x00\x76\x00", 10);
  expected += kF32_2x3 + std::string(58, ' ') + "\n";
  ASSERT_EQ(expected.size(), 128u);
  expected.append(reinterpret_cast<const char*>(values.data()), values.size() * 4);

  std::ifstream in(file("w.npy"), std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, expected);

  // And the hand-built bytes read back to the same tensor.
  const Tensor r = lowbit::read_npy(write_raw("hand.npy", expected));
  EXPECT_EQ(r.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(lowbit::to_f32(r), values);
}

TEST_F(NpyTest, F64MatchesHandBuiltSpecBytes) {
  // numpy's float64 descr is '<f8'; the header of a (3,) array is 10 + 56 + 1 = 67 -> 128 bytes.
  const std::vector<double> values = {0.1, -2.0, 1e-310};
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  std::string data(reinterpret_cast<const char*>(values.data()), values.size() * 8);
  const Tensor r = lowbit::read_npy(write_npy_bytes("hand.npy", dict + std::string(20, ' '), data));
  EXPECT_EQ(r.dtype, DType::F64);
  EXPECT_EQ(r.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(lowbit::to_f64(r), values);

  lowbit::write_npy(file("w.npy"), lowbit::tensor_from_f64({3}, values));
  std::ifstream in(file("w.npy"), std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(got.size(), 128u + 24u);
  EXPECT_EQ(got.substr(10, dict.size()), dict);
  EXPECT_EQ(got.substr(128), data);
  // A big-endian float64 is named as such.
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes(
        "be.npy", "{'descr': '>f8', 'fortran_order': False, 'shape': (), }", std::string(8, '\0')));
  }, "big-endian");
}

TEST_F(NpyTest, WriteScalarAndOneDimHeaders) {
  // Scalar: shape "()" and no growth-axis spaces; 1-D: Python's one-tuple "(5,)".
  const float one = 1.f;
  lowbit::write_npy(file("s.npy"), lowbit::tensor_from_f32({}, std::span(&one, 1)));
  std::ifstream in(file("s.npy"), std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // 10 + 55 + 1 = 66 -> 128: HEADER_LEN 118, data at 128.
  ASSERT_EQ(got.size(), 128u + 4u);
  EXPECT_EQ(got.substr(8, 2), std::string("\x76\x00", 2));
  EXPECT_EQ(got.substr(10, 55), "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
  EXPECT_EQ(got.substr(65, 62), std::string(62, ' '));
  EXPECT_EQ(got[127], '\n');

  const std::vector<uint8_t> u = {1, 2, 3, 4, 5};
  lowbit::write_npy(file("v.npy"), lowbit::tensor_from_raw(DType::U8, {5}, std::as_bytes(std::span(u))));
  std::ifstream in2(file("v.npy"), std::ios::binary);
  const std::string got2((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got2.substr(10, 57), "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }");
  // Then the 20 growth-axis spaces (21 - len("5")) before the alignment padding.
  EXPECT_EQ(got2.substr(67, 20), std::string(20, ' '));
  EXPECT_EQ(got2.size(), 128u + 5u);
  EXPECT_EQ(got2.substr(got2.size() - 5), std::string("\1\2\3\4\5"));
}

TEST_F(NpyTest, WriteKeepsNumpyGrowthAxisSpaces) {
  // numpy appends 21 - len(repr(shape[0])) spaces before padding (GROWTH_AXIS_MAX_DIGITS, so
  // the first axis can grow in place). With 15 unit dims the dict is 98 chars: 10 + 98 + 1 =
  // 109 would fit in 128, but the 20 extra spaces push the data to 192 (HEADER_LEN 182).
  const std::vector<int64_t> shape(15, 1);
  const float v = 2.f;
  lowbit::write_npy(file("g.npy"), lowbit::tensor_from_f32(shape, std::span(&v, 1)));
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': "
                           "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), }";
  ASSERT_EQ(dict.size(), 98u);
  std::string expected("\x93NUMPY\x01\x00\xb6\x00", 10);
  expected += dict + std::string(20 + 63, ' ') + "\n";
  ASSERT_EQ(expected.size(), 192u);
  expected.append(reinterpret_cast<const char*>(&v), 4);
  std::ifstream in(file("g.npy"), std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, expected);
}

TEST_F(NpyTest, ReadsVersions2And3) {
  for (int major : {2, 3}) {
    const Tensor t = lowbit::read_npy(
        write_npy_bytes(fmt::format("v{}.npy", major), kF32_2x3,
                        f32_bytes({1, 2, 3, 4, 5, 6}), major));
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(lowbit::to_f32(t), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  }
}

TEST_F(NpyTest, AcceptsLiteralVariants) {
  // Key order, double quotes, trailing-comma-free dict, Python 2 long suffix, 1-byte byte orders.
  const Tensor a = lowbit::read_npy(write_npy_bytes(
      "a.npy", "{\"shape\": (2L, 1), 'descr': \"=i1\", 'fortran_order': False}", "\x01\xff"));
  EXPECT_EQ(a.dtype, DType::I8);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(lowbit::to_f32(a), (std::vector<float>{1.f, -1.f}));
  const Tensor b = lowbit::read_npy(
      write_npy_bytes("b.npy", "{'descr':'<u1','fortran_order':False,'shape':(3,),}", "abc"));
  EXPECT_EQ(b.dtype, DType::U8);
  EXPECT_EQ(b.data, (std::vector<uint8_t>{'a', 'b', 'c'}));
}

TEST_F(NpyTest, WriteRejectsBf16AndBadTensors) {
  Tensor t;
  t.dtype = DType::BF16;
  t.shape = {1};
  t.data = {0, 0};
  expect_error([&] { lowbit::write_npy(file("b.npy"), t); }, "BF16");
  t.dtype = DType::F16;
  t.shape = {2};  // needs 4 bytes, holds 2
  expect_error([&] { lowbit::write_npy(file("b.npy"), t); }, "needs 4");
}

TEST_F(NpyTest, MissingFile) {
  expect_error([&] { lowbit::read_npy(file("absent.npy")); }, "no such file");
}

TEST_F(NpyTest, EmptyFile) {
  expect_error([&] { lowbit::read_npy(write_raw("e.npy", "")); }, "magic");
}

TEST_F(NpyTest, BadMagic) {
  expect_error([&] { lowbit::read_npy(write_raw("m.npy", std::string("\x93NUMPX\x01\x00", 8))); },
               "magic");
}

TEST_F(NpyTest, UnsupportedVersion) {
  expect_error([&] { lowbit::read_npy(write_npy_bytes("v.npy", kF32_2x3, "", 4)); },
               "version 4.0");
  std::string bytes = std::string("\x93NUMPY\x01\x01\x00\x00", 10);
  expect_error([&] { lowbit::read_npy(write_raw("v11.npy", bytes)); }, "version 1.1");
}

TEST_F(NpyTest, HeaderLengthPastEof) {
  // v2 header length 0xFFFFFFF0 in a 40-byte file: must not allocate 4 GB.
  std::string bytes("\x93NUMPY\x02\x00\xf0\xff\xff\xff", 12);
  bytes += std::string(28, ' ');
  expect_error([&] { lowbit::read_npy(write_raw("h.npy", bytes)); }, "past the end");
  expect_error([&] { lowbit::read_npy(write_raw("h2.npy", std::string("\x93NUMPY\x01\x00\x10", 9))); },
               "header length");
}

TEST_F(NpyTest, HeaderNotTerminatedByNewline) {
  expect_error([&] { lowbit::read_npy(write_npy_bytes("n.npy", kF32_2x3, "", 1, false)); },
               "newline");
}

TEST_F(NpyTest, HeaderNotADictLiteral) {
  for (const std::string& dict :
       {std::string("['descr', '<f4']"), std::string("{'descr': '<f4', 'fortran_order': False"),
        std::string("{'descr' '<f4'}"), std::string("{'descr': '<f4\\n'}"),
        std::string("{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} junk"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (02, 3)}")}) {
    SCOPED_TRACE(dict);
    expect_error([&] { lowbit::read_npy(write_npy_bytes("d.npy", dict, "")); }, "dict literal");
  }
}

TEST_F(NpyTest, UnknownKey) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes(
        "k.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'extra': 1}", "abcd"));
  }, "unknown key 'extra'");
}

TEST_F(NpyTest, MissingKey) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes("k.npy", "{'descr': '<f4', 'shape': ()}", "abcd"));
  }, "missing key 'fortran_order'");
}

TEST_F(NpyTest, DuplicateKey) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes(
        "k.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'shape': (1,)}", "abcd"));
  }, "duplicate key 'shape'");
}

TEST_F(NpyTest, UnsupportedDescr) {
  for (const char* descr : {"<f16", "<c8", "<i8", "|b1", "f4", "=f4", "f8", "<U3"}) {
    SCOPED_TRACE(descr);
    expect_error([&] {
      lowbit::read_npy(write_npy_bytes(
          "d.npy", fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': (), }}", descr),
          "abcdefgh"));
    }, "unsupported descr");
  }
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes(
        "s.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (), }", "abcd"));
  }, "structured");
}

TEST_F(NpyTest, BigEndianDescr) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes("b.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                                     "abcd"));
  }, "big-endian");
}

TEST_F(NpyTest, FortranOrder) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes("f.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                                     std::string(24, '\0')));
  }, "fortran_order");
}

TEST_F(NpyTest, NegativeDimension) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes("n.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, -3), }", ""));
  }, "negative");
}

TEST_F(NpyTest, OverflowingShape) {
  // A dim beyond int64, and dims whose product * itemsize overflows (no huge allocation).
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes(
        "o.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""));
  }, "overflow");
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes(
        "o2.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", ""));
  }, "overflow");
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes(
        "o3.npy", "{'descr': '<u2', 'fortran_order': False, 'shape': (4611686018427387904,), }", ""));
  }, "overflow");
}

TEST_F(NpyTest, DataTooShort) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes("s.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
                                     std::string(40, '\0')));
  }, "shape (3, 4) = 12 elements but the file holds 40 bytes of data, expected 48 (file is truncated)");
}

TEST_F(NpyTest, TrailingBytes) {
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes("t.npy", kF32_2x3, std::string(25, '\0')));
  }, "1 trailing bytes");
  // An empty tensor must hold no data at all.
  expect_error([&] {
    lowbit::read_npy(write_npy_bytes("t0.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }",
                                     "x"));
  }, "trailing");
}

}  // namespace
