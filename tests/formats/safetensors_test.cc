// Safetensors reader: valid files (single and sharded) and a precise FileError, never a
// crash, for every kind of malformed file.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::formats {
namespace {

namespace fs = std::filesystem;
using lmserve::testing::TempDir;
using lmserve::testing::write_file;

std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A file with this header text (padded to 8 bytes) followed by `data`.
std::string safetensors_bytes(std::string header, const std::string& data) {
  while (header.size() % 8 != 0) header += ' ';
  return le64(header.size()) + header + data;
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

class Safetensors : public ::testing::Test {
 protected:
  fs::path write(const std::string& bytes, const std::string& name = "model.safetensors") {
    auto p = dir_.path() / name;
    write_file(p, bytes);
    return p;
  }

  // Expects opening `bytes` as a file to throw FileError mentioning each needle.
  void expect_error(const std::string& bytes, std::initializer_list<std::string> needles) {
    auto p = write(bytes);
    try {
      SafetensorsFile f(p);
      ADD_FAILURE() << "no FileError";
    } catch (const FileError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
      for (const auto& n : needles)
        EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
    }
  }

  TempDir dir_;
};

TEST_F(Safetensors, ReadsTensorsAndMetadata) {
  std::string data = floats({1, 2, 3, 4, 5, 6});
  data += std::string("\x00\x3c\x00\xc0", 4);  // f16 1.0, -2.0
  data += std::string("\x80\x3f", 2);          // bf16 1.0
  data += std::string(2, '\0');                // padding, unowned bytes are allowed
  auto p = write(safetensors_bytes(
      R"({"__metadata__":{"format":"pt","n":3},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("h":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[28,30]},)"
      R"("s":{"dtype":"U32","shape":[],"data_offsets":[24,28]},"e":{"dtype":"I8","shape":[0],"data_offsets":[30,30]}})",
      data));
  // "s" shares bytes with "h": overlapping, must fail; rewrite without it first.
  EXPECT_THROW(SafetensorsFile{p}, FileError);
  p = write(safetensors_bytes(
      R"({"__metadata__":{"format":"pt","n":3},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("h":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[28,30]},)"
      R"("e":{"dtype":"I8","shape":[0],"data_offsets":[30,30]}})",
      data));
  SafetensorsFile f(p);
  EXPECT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("n"), "3");
  const auto* a = f.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_EQ(a->shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a->numel(), 6);
  EXPECT_EQ(a->nbytes, 24u);
  EXPECT_EQ(a->shape_string(), "[2, 3]");
  EXPECT_TRUE(a->element_aligned());
  float v[6];
  std::memcpy(v, a->data, 24);
  EXPECT_EQ(v[5], 6.0f);
  EXPECT_EQ(f.find("h")->dtype, DType::kF16);
  EXPECT_EQ(f.find("b")->dtype, DType::kBF16);
  EXPECT_EQ(f.find("e")->numel(), 0);
  EXPECT_EQ(f.find("missing"), nullptr);
}

TEST_F(Safetensors, KnowsQuantizedDtypeNames) {
  for (const char* name :
       {"U8", "U32", "I32", "I64", "F64", "BOOL", "F8_E4M3", "I8", "U16", "I16"}) {
    auto d = parse_dtype(name);
    ASSERT_TRUE(d.has_value()) << name;
    EXPECT_EQ(dtype_name(*d), name);
  }
  EXPECT_EQ(dtype_size(DType::kU32), 4u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_FALSE(parse_dtype("Q4_0").has_value());
  EXPECT_FALSE(is_float_weight(DType::kU8));
  EXPECT_TRUE(is_float_weight(DType::kBF16));
}

TEST_F(Safetensors, RejectsTruncatedAndAbsurdHeaders) {
  expect_error("", {"shorter than the 8-byte header length"});
  expect_error("\x05\x00\x00", {"shorter than the 8-byte header length"});
  expect_error(le64(100) + "{}", {"header length 100", "past the end"});
  expect_error(le64(~0ull) + "{}", {"absurd"});
  expect_error(le64(1ull << 40) + "{}", {"absurd"});
  expect_error(le64(0), {"too short"});
}

TEST_F(Safetensors, RejectsBadJson) {
  expect_error(safetensors_bytes("{\"a\": ", ""), {"invalid JSON"});
  expect_error(safetensors_bytes("not json at all", ""), {"invalid JSON"});
  expect_error(safetensors_bytes("[1,2,3]", ""), {"not an object"});
  expect_error(safetensors_bytes("\"str\"", ""), {"not an object"});
  expect_error(safetensors_bytes(std::string(50000, '['), ""), {"nested deeper"});
  expect_error(safetensors_bytes(R"({"__metadata__": 5})", ""), {"__metadata__"});
  expect_error(safetensors_bytes(R"({"a": 5})", ""), {"\"a\"", "not a JSON object"});
}

TEST_F(Safetensors, RejectsBadEntries) {
  const std::string d = floats({1, 2, 3, 4});
  auto one = [&](const std::string& entry) {
    return safetensors_bytes("{\"w\":" + entry + "}", d);
  };
  expect_error(one(R"({"dtype":"F33","shape":[4],"data_offsets":[0,16]})"),
               {"\"w\"", "unknown dtype \"F33\""});
  expect_error(one(R"({"dtype":7,"shape":[4],"data_offsets":[0,16]})"), {"dtype"});
  expect_error(one(R"({"shape":[4],"data_offsets":[0,16]})"), {"dtype"});
  expect_error(one(R"({"dtype":"F32","data_offsets":[0,16]})"), {"shape"});
  expect_error(one(R"({"dtype":"F32","shape":[-4],"data_offsets":[0,16]})"), {"shape entry -4"});
  expect_error(one(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,16]})"), {"shape entry"});
  expect_error(one(R"({"dtype":"F32","shape":[4]})"), {"data_offsets"});
  expect_error(one(R"({"dtype":"F32","shape":[4],"data_offsets":[0]})"), {"data_offsets"});
  expect_error(one(R"({"dtype":"F32","shape":[4],"data_offsets":[0,-16]})"), {"data_offsets"});
  expect_error(one(R"({"dtype":"F32","shape":[4],"data_offsets":[16,0]})"), {"begin 16 > end 0"});
  expect_error(one(R"({"dtype":"F32","shape":[8],"data_offsets":[0,32]})"),
               {"past the end of the data (16 bytes)"});
  expect_error(one(R"({"dtype":"F32","shape":[4],"data_offsets":[8,24]})"), {"past the end"});
  expect_error(one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,16]})"),
               {"need 12 bytes", "span 16"});
  expect_error(one(R"({"dtype":"F16","shape":[4],"data_offsets":[0,16]})"),
               {"F16", "[4]", "need 8 bytes"});
  // 2^32 * 2^32 elements overflows 64 bits; must be caught, not wrapped to a small size.
  expect_error(one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]})"),
               {"overflows"});
  expect_error(one(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]})"),
               {"overflows"});
  expect_error(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]})"),
               {"past the end"});
  expect_error(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                 d),
               {"overlapping", "\"a\"", "\"b\""});
}

TEST_F(Safetensors, ReadsStories260KFixture) {
  SafetensorsFile f(lmserve::testing::fixture("models/stories260K/model.safetensors"));
  EXPECT_EQ(f.tensors().size(), 47u);
  const auto* e = f.find("model.embed_tokens.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->shape, (std::vector<std::int64_t>{512, 64}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.find("lm_head.weight"), nullptr);
}

class Store : public Safetensors {
 protected:
  void write_shards() {
    write(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                            floats({1, 2})),
          "s1.safetensors");
    write(
        safetensors_bytes(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats({3})),
        "s2.safetensors");
  }
  void write_index(const nlohmann::json& j) { write(j.dump(), "model.safetensors.index.json"); }

  void expect_open_error(std::initializer_list<std::string> needles) {
    try {
      TensorStore::open(dir_.path());
      ADD_FAILURE() << "no FileError";
    } catch (const FileError& e) {
      for (const auto& n : needles)
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  }
};

TEST_F(Store, OpensShardsThroughIndex) {
  write_shards();
  write_index({{"metadata", {{"total_size", 12}}},
               {"weight_map", {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}}});
  auto store = TensorStore::open(dir_.path());
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.get("b").numel(), 1);
  EXPECT_EQ(store.get("a", {2}).nbytes, 8u);
  EXPECT_EQ(store.names(), (std::vector<std::string>{"a", "b"}));
  try {
    store.get("a", {3});
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("\"a\" has shape [2], expected [3]"), std::string::npos)
        << e.what();
  }
  try {
    store.get("zzz");
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor \"zzz\""), std::string::npos) << e.what();
  }
}

TEST_F(Store, RejectsBrokenIndexes) {
  expect_open_error({"no model.safetensors"});
  write_shards();
  write_index({{"weight_map", {{"a", "s1.safetensors"}, {"b", "s3.safetensors"}}}});
  expect_open_error({"\"s3.safetensors\"", "does not exist"});
  write_index({{"weight_map", {{"a", "s1.safetensors"}, {"c", "s2.safetensors"}}}});
  expect_open_error({"\"c\"", "does not contain it"});
  write_index({{"weight_map", {{"a", "../s1.safetensors"}}}});
  expect_open_error({"invalid shard"});
  write_index({{"weight_map", {{"a", 3}}}});
  expect_open_error({"not a string"});
  write_index({{"weights", {}}});
  expect_open_error({"weight_map"});
  write_index(nlohmann::json::object({{"weight_map", nlohmann::json::object()}}));
  expect_open_error({"empty"});
  write("{bad", "model.safetensors.index.json");
  expect_open_error({"invalid JSON"});
  // The same tensor in two shards is ambiguous.
  write(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats({3})),
        "s2.safetensors");
  write_index({{"weight_map", {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}}});
  expect_open_error({"also appears in another shard"});
}

}  // namespace
}  // namespace lmserve::formats
