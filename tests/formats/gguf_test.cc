// GGUF reader: every fixture file (vocab-only, stories260K, tiny models incl. quantized types)
// parses with the right metadata and tensors; hand-built and truncated/corrupted files are a
// precise FileError, never a crash or bad_alloc.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "formats/tensor_store.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::formats {
namespace {

namespace fs = std::filesystem;
using lmserve::testing::fixture;
using lmserve::testing::read_json;
using lmserve::testing::TempDir;
using lmserve::testing::write_file;

std::string read_bytes(const fs::path& p) { return lmserve::testing::read_file(p); }

// Little-endian encoders for hand-built files.
template <typename T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
std::string u32(std::uint32_t v) { return le(v); }
std::string u64(std::uint64_t v) { return le(v); }
std::string str(const std::string& s) { return u64(s.size()) + s; }

// Metadata entries: key, type id, value bytes.
std::string kv(const std::string& key, GgufType type, const std::string& value) {
  return str(key) + u32(static_cast<std::uint32_t>(type)) + value;
}
std::string kv_u32(const std::string& key, std::uint32_t v) {
  return kv(key, GgufType::kUint32, u32(v));
}
std::string kv_str(const std::string& key, const std::string& v) {
  return kv(key, GgufType::kString, str(v));
}
std::string array(GgufType elem, std::uint64_t count, const std::string& elems) {
  return u32(static_cast<std::uint32_t>(elem)) + u64(count) + elems;
}

std::string tensor_info(const std::string& name, std::vector<std::uint64_t> dims,
                        std::uint32_t type, std::uint64_t offset) {
  std::string s = str(name) + u32(static_cast<std::uint32_t>(dims.size()));
  for (auto d : dims) s += u64(d);
  return s + u32(type) + u64(offset);
}

// A whole file: header, `kvs` (n_kv of them), tensor infos, padding to `alignment`, data.
std::string gguf(std::uint64_t n_kv, const std::string& kvs, std::uint64_t n_tensors,
                 const std::string& infos, const std::string& data, std::size_t alignment = 32,
                 std::uint32_t version = 3) {
  std::string s = "GGUF" + u32(version) + u64(n_tensors) + u64(n_kv) + kvs + infos;
  if (n_tensors > 0 || !data.empty()) {
    while (s.size() % alignment != 0) s += '\0';
  }
  return s + data;
}

std::string f32s(std::initializer_list<float> v) {
  std::string s;
  for (float f : v) s += le(f);
  return s;
}

class GgufFiles : public ::testing::Test {
 protected:
  fs::path write(const std::string& bytes) {
    auto p = dir_.path() / ("f" + std::to_string(n_++) + ".gguf");
    write_file(p, bytes);
    return p;
  }
  // Opening `bytes` must fail with a FileError whose message contains `needle`.
  void expect_error(const std::string& bytes, const std::string& needle) {
    auto p = write(bytes);
    try {
      GgufFile f(p);
      ADD_FAILURE() << "expected a FileError containing \"" << needle << "\"";
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "message: " << e.what() << "\nexpected to contain: " << needle;
    }
  }

  TempDir dir_;
  int n_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Fixtures

struct VocabCase {
  const char* file;
  const char* model;
  const char* pre;  // nullptr: key absent
  std::uint64_t tokens;
  std::uint64_t merges;  // 0: no merges array
  std::int64_t bos;      // -1: key absent
};

// Expected values from shared/fixtures/vocab/README.md's table.
const VocabCase kVocab[] = {
    {"ggml-vocab-bert-bge.gguf", "bert", "bert-bge", 30522, 0, -1},
    {"ggml-vocab-deepseek-coder.gguf", "gpt2", "deepseek-coder", 32256, 31757, 32013},
    {"ggml-vocab-deepseek-llm.gguf", "gpt2", "deepseek-llm", 102400, 99757, 100000},
    {"ggml-vocab-falcon.gguf", "gpt2", "falcon", 65024, 64784, 11},
    {"ggml-vocab-gpt-2.gguf", "gpt2", "gpt-2", 50257, 50000, 50256},
    {"ggml-vocab-llama-bpe.gguf", "gpt2", "llama-bpe", 128256, 280147, 128000},
    {"ggml-vocab-llama-spm.gguf", "llama", "default", 32000, 0, 1},
    {"ggml-vocab-mpt.gguf", "gpt2", "mpt", 50432, 50009, 0},
    {"ggml-vocab-phi-3.gguf", "llama", "default", 32064, 0, 1},
    {"ggml-vocab-qwen2.gguf", "gpt2", "qwen2", 151936, 151387, 151643},
    {"ggml-vocab-refact.gguf", "gpt2", "refact", 49216, 48891, 0},
    {"ggml-vocab-starcoder.gguf", "gpt2", "starcoder", 49152, 48872, 0},
};

TEST(GgufFixtures, EveryVocabFileParses) {
  for (const auto& c : kVocab) {
    SCOPED_TRACE(c.file);
    GgufFile f(fixture(std::string("vocab/") + c.file));
    EXPECT_EQ(f.version(), 3u);
    EXPECT_TRUE(f.tensors().empty());
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), c.model);
    if (c.pre != nullptr) {
      EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), c.pre);
    }
    auto tokens = f.get_array<std::string_view>("tokenizer.ggml.tokens");
    EXPECT_EQ(tokens.size(), c.tokens);
    EXPECT_EQ(f.get_array_size("tokenizer.ggml.tokens"), c.tokens);
    auto types = f.get_array<std::int32_t>("tokenizer.ggml.token_type");
    EXPECT_EQ(types.size(), c.tokens);
    for (auto t : types) ASSERT_TRUE(t >= 1 && t <= 6) << t;
    if (c.merges > 0) {
      EXPECT_EQ(f.get_array<std::string>("tokenizer.ggml.merges").size(), c.merges);
    } else {
      EXPECT_FALSE(f.has("tokenizer.ggml.merges"));
    }
    if (c.bos >= 0) {
      EXPECT_EQ(f.get_uint("tokenizer.ggml.bos_token_id"), static_cast<std::uint64_t>(c.bos));
    }
    // Every key is listed once, in file order.
    EXPECT_EQ(f.metadata().front().key, "general.architecture");
  }
}

TEST(GgufFixtures, LlamaSpmVocabDetails) {
  GgufFile f(fixture("vocab/ggml-vocab-llama-spm.gguf"));
  auto tokens = f.get_array<std::string_view>("tokenizer.ggml.tokens");
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  auto scores = f.get_array<float>("tokenizer.ggml.scores");
  ASSERT_EQ(scores.size(), 32000u);
  auto types = f.get_array<std::uint8_t>("tokenizer.ggml.token_type");
  EXPECT_EQ(types[0], 2);  // unknown
  EXPECT_EQ(types[1], 3);  // control
  EXPECT_EQ(types[3], 6);  // byte
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
}

TEST(GgufFixtures, Stories260K) {
  GgufFile f(fixture("models/stories260K/stories260K.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 22u);
  EXPECT_EQ(f.tensor_infos().size(), 47u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 5u);
  EXPECT_EQ(f.get_uint("llama.embedding_length"), 64u);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_NEAR(f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token"));
  EXPECT_EQ(f.get_array<std::string_view>("tokenizer.ggml.tokens").size(), 512u);

  const auto& info = f.tensor_infos().front();
  EXPECT_EQ(info.name, "token_embd.weight");
  EXPECT_EQ(info.dims, (std::vector<std::uint64_t>{64, 512}));  // fastest first
  EXPECT_EQ(info.ggml_type, 0u);
  const auto* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->shape, (std::vector<std::int64_t>{512, 64}));  // outermost first
  EXPECT_EQ(embd->dtype, DType::kF32);
  EXPECT_EQ(embd->nbytes, 512u * 64u * 4u);
  EXPECT_TRUE(embd->element_aligned());
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied

  // The same numbers as the HF copy, for tensors the conversion does not permute.
  SafetensorsFile hf(fixture("models/stories260K/model.safetensors"));
  auto same_bytes = [&](const char* gguf_name, const char* hf_name) {
    const auto* g = f.find_tensor(gguf_name);
    const auto* h = hf.find(hf_name);
    ASSERT_NE(g, nullptr) << gguf_name;
    ASSERT_NE(h, nullptr) << hf_name;
    EXPECT_EQ(g->shape, h->shape) << gguf_name;
    ASSERT_EQ(g->nbytes, h->nbytes) << gguf_name;
    EXPECT_EQ(std::memcmp(g->data, h->data, g->nbytes), 0) << gguf_name;
  };
  same_bytes("token_embd.weight", "model.embed_tokens.weight");
  same_bytes("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight");
  same_bytes("blk.4.ffn_down.weight", "model.layers.4.mlp.down_proj.weight");
  same_bytes("output_norm.weight", "model.norm.weight");

  auto store = TensorStore::from_gguf(
      std::make_shared<const GgufFile>(fixture("models/stories260K/stories260K.gguf")));
  EXPECT_EQ(store.size(), 47u);
  EXPECT_EQ(store.get("blk.0.attn_k.weight", {32, 64}).dtype, DType::kF32);
  EXPECT_THROW(store.get("blk.0.attn_k.weight", {64, 32}), FileError);
  EXPECT_THROW(store.get("output.weight"), FileError);
}

TEST(GgufFixtures, EveryTinyModelFileParsesWithTheReferenceTensorTypes) {
  int files = 0;
  for (const auto& dir : fs::directory_iterator(fixture("models/tiny"))) {
    if (!dir.is_directory()) continue;
    auto ref = read_json(dir.path() / "reference.json");
    for (const auto& entry : fs::directory_iterator(dir.path())) {
      if (entry.path().extension() != ".gguf") continue;
      const std::string name = entry.path().filename().string();
      SCOPED_TRACE(name);
      GgufFile f(entry.path());
      ++files;
      const auto& types = ref.at("files").at(name).at("tensor_types");
      ASSERT_EQ(f.tensors().size(), types.size());
      for (const auto& [tname, type] : types.items()) {
        const auto* t = f.find_tensor(tname);
        ASSERT_NE(t, nullptr) << tname;
        EXPECT_EQ(dtype_name(t->dtype), type.get<std::string>()) << tname;
      }
      EXPECT_EQ(f.get_uint("general.file_type"),
                ref.at("files").at(name).at("general.file_type").get<std::uint64_t>());
      // Tensors are packed: each one ends where the next (aligned) one begins, so the block
      // sizes we know for every type are the ones the writer used.
      std::vector<std::pair<std::uint64_t, std::uint64_t>> by_offset;
      for (const auto& info : f.tensor_infos()) {
        by_offset.emplace_back(info.offset, f.find_tensor(info.name)->nbytes);
      }
      std::sort(by_offset.begin(), by_offset.end());
      for (std::size_t i = 1; i < by_offset.size(); ++i) {
        const auto end = by_offset[i - 1].first + by_offset[i - 1].second;
        EXPECT_EQ((end + f.alignment() - 1) / f.alignment() * f.alignment(), by_offset[i].first)
            << "gap or overlap before tensor at offset " << by_offset[i].first;
      }
      const auto last = by_offset.back().first + by_offset.back().second;
      EXPECT_EQ(fs::file_size(entry.path()) - f.data_offset(),
                (last + f.alignment() - 1) / f.alignment() * f.alignment());
    }
  }
  EXPECT_EQ(files, 29);
}

// ---------------------------------------------------------------------------------------------
// Hand-built files

TEST_F(GgufFiles, EveryValueTypeRoundTrips) {
  std::string kvs;
  kvs += kv("u8", GgufType::kUint8, std::string(1, '\xfe'));
  kvs += kv("i8", GgufType::kInt8, std::string(1, '\xfe'));
  kvs += kv("u16", GgufType::kUint16, le<std::uint16_t>(65000));
  kvs += kv("i16", GgufType::kInt16, le<std::int16_t>(-300));
  kvs += kv_u32("u32", 4000000000u);
  kvs += kv("i32", GgufType::kInt32, le<std::int32_t>(-7));
  kvs += kv("f32", GgufType::kFloat32, le(1.5f));
  kvs += kv("bool", GgufType::kBool, std::string(1, '\1'));
  kvs += kv_str("str", "héllo");
  kvs += kv("u64", GgufType::kUint64, u64(1ull << 62));
  kvs += kv("i64", GgufType::kInt64, le<std::int64_t>(-(1ll << 40)));
  kvs += kv("f64", GgufType::kFloat64, le(0.25));
  kvs += kv("strs", GgufType::kArray, array(GgufType::kString, 3, str("a") + str("") + str("ccc")));
  kvs += kv(
      "ints", GgufType::kArray,
      array(GgufType::kInt32, 3, le<std::int32_t>(1) + le<std::int32_t>(-2) + le<std::int32_t>(3)));
  kvs += kv("floats", GgufType::kArray, array(GgufType::kFloat32, 2, f32s({0.5f, -2.0f})));
  kvs += kv("bools", GgufType::kArray, array(GgufType::kBool, 2, std::string("\1\0", 2)));
  kvs += kv("empty", GgufType::kArray, array(GgufType::kUint64, 0, ""));
  kvs += kv("general.alignment", GgufType::kUint32, u32(64));
  const std::string infos = tensor_info("w", {2, 3}, 0, 0) + tensor_info("h", {4}, 1, 64);
  std::string data = f32s({1, 2, 3, 4, 5, 6});
  data.resize(64, '\0');
  data += le<std::uint16_t>(0x3c00) + le<std::uint16_t>(0) + le<std::uint16_t>(0) +
          le<std::uint16_t>(0xc000);
  auto p = write(gguf(18, kvs, 2, infos, data, 64, 2));

  GgufFile f(p);
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.get_uint("u8"), 254u);
  EXPECT_EQ(f.get_int("i8"), -2);
  EXPECT_EQ(f.get_uint("u16"), 65000u);
  EXPECT_EQ(f.get_int("i16"), -300);
  EXPECT_EQ(f.get_uint("u32"), 4000000000u);
  EXPECT_EQ(f.get_int("i32"), -7);
  EXPECT_EQ(f.get_float("f32"), 1.5);
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_string("str"), "héllo");
  EXPECT_EQ(f.get_uint("u64"), 1ull << 62);
  EXPECT_EQ(f.get_int("i64"), -(1ll << 40));
  EXPECT_EQ(f.get_float("f64"), 0.25);
  EXPECT_EQ(f.get_array<std::string>("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_array<std::int64_t>("ints"), (std::vector<std::int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_array<double>("floats"), (std::vector<double>{0.5, -2.0}));
  EXPECT_EQ(f.get_array<bool>("bools"), (std::vector<bool>{true, false}));
  EXPECT_TRUE(f.get_array<std::uint32_t>("empty").empty());
  EXPECT_EQ(f.find("strs")->array_type, GgufType::kString);
  EXPECT_EQ(f.metadata()[3].key, "i16");

  // Getters name the key and the type mismatch.
  auto expect_msg = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no exception, expected " << needle;
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { f.get_string("u8"); }, "\"u8\" is uint8, expected string");
  expect_msg([&] { f.get_uint("missing"); }, "missing metadata \"missing\"");
  expect_msg([&] { f.get_uint("i32"); }, "must not be negative");
  expect_msg([&] { f.get_float("str"); }, "expected float");
  expect_msg([&] { f.get_bool("u8"); }, "expected bool");
  expect_msg([&] { f.get_array<std::uint32_t>("ints"); }, "\"ints\" element 1 is out of range");
  expect_msg([&] { f.get_array<std::int8_t>("strs"); },
             "array of string, expected array of integers");
  expect_msg([&] { f.get_array<std::string_view>("ints"); }, "expected array of strings");
  expect_msg([&] { f.get_array_size("str"); }, "expected array");

  const auto* w = f.find_tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(w->nbytes, 24u);
  float v[6];
  std::memcpy(v, w->data, 24);
  EXPECT_EQ(v[5], 6.0f);
  const auto* h = f.find_tensor("h");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->dtype, DType::kF16);
  EXPECT_EQ(h->shape, (std::vector<std::int64_t>{4}));
  EXPECT_EQ(h->data, w->data + 64);
}

TEST_F(GgufFiles, GetIntOfHugeUnsignedIsAnError) {
  auto p = write(gguf(1, kv("big", GgufType::kUint64, u64(~0ull)), 0, "", ""));
  GgufFile f(p);
  EXPECT_THROW(f.get_int("big"), FileError);
  EXPECT_EQ(f.get_uint("big"), ~0ull);
}

TEST_F(GgufFiles, QuantizedTypesHaveTheirBlockSizes) {
  // Q4_0: 32 values in 18 bytes; Q6_K: 256 values in 210 bytes; IQ4_XS: 256 in 136.
  std::string infos = tensor_info("q4", {64, 2}, 2, 0) + tensor_info("q6", {256}, 14, 96) +
                      tensor_info("iq", {512}, 23, 320);
  std::string data(320 + 272, '\x11');
  GgufFile f(write(gguf(0, "", 3, infos, data)));
  EXPECT_EQ(f.find_tensor("q4")->dtype, DType::kQ4_0);
  EXPECT_EQ(f.find_tensor("q4")->nbytes, 72u);
  EXPECT_EQ(f.find_tensor("q6")->nbytes, 210u);
  EXPECT_EQ(f.find_tensor("iq")->dtype, DType::kIQ4_XS);
  EXPECT_EQ(f.find_tensor("iq")->nbytes, 272u);
  EXPECT_TRUE(is_block_quantized(DType::kQ6_K));
  EXPECT_EQ(dtype_block_elements(DType::kQ8_0), 32u);
  EXPECT_EQ(dtype_size(DType::kQ8_0), 34u);
  // Block types are not safetensors dtypes.
  EXPECT_FALSE(parse_dtype("Q4_0").has_value());
  EXPECT_EQ(dtype_from_ggml_type(30), DType::kBF16);
  EXPECT_FALSE(dtype_from_ggml_type(4).has_value());
  EXPECT_FALSE(dtype_from_ggml_type(1000).has_value());
}

TEST_F(GgufFiles, HeaderErrors) {
  expect_error("", "GGUF magic needs 4 bytes");
  expect_error("GGML" + u32(3) + u64(0) + u64(0), "not a GGUF file");
  expect_error("GGUF" + u32(1) + u64(0) + u64(0), "GGUF version 1 is not supported");
  expect_error("GGUF" + u32(4) + u64(0) + u64(0), "GGUF version 4 is not supported");
  expect_error("GGUF" + u32(3u << 24) + u64(0) + u64(0), "big-endian");
  expect_error("GGUF" + u32(3) + u64(0), "metadata count needs 8 bytes");
  expect_error(gguf(1ull << 60, "", 0, "", ""), "metadata count 1152921504606846976 cannot fit");
  expect_error(gguf(0, "", 1ull << 60, "", ""), "tensor count 1152921504606846976 cannot fit");
}

TEST_F(GgufFiles, MetadataErrors) {
  // A 2^60-byte string length must be an error before anything is allocated.
  expect_error(gguf(1, u64(1ull << 60) + "k" + std::string(16, 'x'), 0, "", ""),
               "metadata key 0 length 1152921504606846976 runs past the end");
  expect_error(gguf(1, str("k") + u32(8) + u64(1ull << 60) + "v", 0, "", ""),
               "metadata \"k\" length 1152921504606846976 runs past the end");
  expect_error(gguf(1, str("k") + u32(13) + u32(0), 0, "", ""),
               "metadata \"k\": unknown value type 13");
  expect_error(
      gguf(1, kv("k", GgufType::kArray, array(GgufType::kUint32, 1ull << 60, "")), 0, "", ""),
      "array of 1152921504606846976 uint32 values cannot fit");
  expect_error(
      gguf(1, kv("k", GgufType::kArray, array(GgufType::kUint64, (1ull << 61) + 1, "")), 0, "", ""),
      "cannot fit");
  expect_error(
      gguf(1, kv("k", GgufType::kArray, array(GgufType::kString, 1ull << 60, "")), 0, "", ""),
      "array of 1152921504606846976 strings cannot fit");
  expect_error(
      gguf(1, kv("k", GgufType::kArray, array(GgufType::kString, 2, str("a") + u64(1ull << 62))), 0,
           "", ""),
      "metadata \"k\" element 1 length 4611686018427387904 runs past the end");
  expect_error(gguf(1, kv("k", GgufType::kArray, array(GgufType::kArray, 1, "")), 0, "", ""),
               "nested arrays are not supported");
  expect_error(gguf(1, kv("k", GgufType::kArray, u32(99) + u64(0)), 0, "", ""),
               "unknown array element type 99");
  expect_error(gguf(2, kv_u32("k", 1) + kv_u32("k", 2), 0, "", ""), "duplicate metadata \"k\"");
  expect_error(gguf(1, kv("b", GgufType::kBool, "\x02"), 0, "", ""), "neither 0 nor 1");
  expect_error(gguf(1, kv("b", GgufType::kArray, array(GgufType::kBool, 2, "\x01\x05")), 0, "", ""),
               "bool element 1 is neither 0 nor 1");
  expect_error(gguf(1, kv("general.alignment", GgufType::kUint32, u32(48)), 0, "", ""),
               "general.alignment 48 is not a power of two");
  expect_error(gguf(1, kv("general.alignment", GgufType::kUint32, u32(0)), 0, "", ""),
               "not a power of two");
  expect_error(gguf(1, kv_str("general.alignment", "32"), 0, "", ""),
               "general.alignment must be an unsigned integer");
  // Control characters in file-provided keys are not echoed raw.
  expect_error(
      gguf(2, kv_u32(std::string("a\nb", 3), 1) + kv_u32(std::string("a\nb", 3), 1), 0, "", ""),
      "duplicate metadata \"a?b\"");
}

TEST_F(GgufFiles, TensorErrors) {
  const std::string data = f32s({1, 2, 3, 4, 5, 6, 7, 8});
  expect_error(gguf(0, "", 1, tensor_info("t", {}, 0, 0), data),
               "tensor \"t\": rank 0 is outside 1..4");
  expect_error(gguf(0, "", 1, tensor_info("t", {1, 1, 1, 1, 1}, 0, 0), data), "rank 5 is outside");
  expect_error(gguf(0, "", 1, tensor_info("t", {1ull << 40, 1ull << 40}, 0, 0), data),
               "overflows the element count");
  expect_error(gguf(0, "", 1, tensor_info("t", {1ull << 63}, 0, 0), data),
               "overflows the element count");
  expect_error(gguf(0, "", 1, tensor_info("t", {8}, 4, 0), data), "unknown ggml type 4");
  expect_error(gguf(0, "", 1, tensor_info("t", {8}, 77, 0), data), "unknown ggml type 77");
  expect_error(gguf(0, "", 1, tensor_info("t", {8}, 0, 16), data),
               "data offset 16 is not a multiple of the alignment 32");
  expect_error(gguf(0, "", 1, tensor_info("t", {9}, 0, 0), data), "runs past the end of the file");
  expect_error(gguf(0, "", 1, tensor_info("t", {8}, 0, 1ull << 63), data),
               "runs past the end of the file");
  expect_error(gguf(0, "", 1, tensor_info("t", {1ull << 62}, 0, 0), data), "byte size overflows");
  expect_error(gguf(0, "", 1, tensor_info("t", {48}, 2, 0), std::string(64, '\0')),
               "Q4_0 stores blocks of 32 values but the row length is 48");
  expect_error(gguf(0, "", 2, tensor_info("t", {8}, 0, 0) + tensor_info("t", {8}, 0, 32), data),
               "duplicate tensor \"t\"");
  std::string two = data + data + data;
  expect_error(gguf(0, "", 2, tensor_info("a", {16}, 0, 0) + tensor_info("b", {8}, 0, 32), two),
               "tensors \"a\" and \"b\" have overlapping data");
  expect_error(gguf(0, "", 1, u64(1ull << 60) + "t", data), "tensor 0 name length");
}

// Cutting a valid file anywhere must give a FileError, never a crash or another exception.
TEST_F(GgufFiles, EveryTruncationIsAFileError) {
  const std::string full = read_bytes(fixture("models/tiny/llama/llama-F16.gguf"));
  GgufFile whole(fixture("models/tiny/llama/llama-F16.gguf"));
  const std::size_t header = static_cast<std::size_t>(whole.data_offset());
  std::vector<std::size_t> cuts;
  for (std::size_t n = 0; n < header + 64; ++n) cuts.push_back(n);
  for (std::size_t n = header + 64; n < full.size(); n += 997) cuts.push_back(n);
  cuts.push_back(full.size() - 1);
  const auto p = dir_.path() / "cut.gguf";
  int failures = 0;
  for (std::size_t n : cuts) {
    write_file(p, full.substr(0, n));
    try {
      GgufFile f(p);
      ++failures;
      ADD_FAILURE() << "truncation at " << n << " parsed";
    } catch (const FileError&) {
    } catch (const std::exception& e) {
      ++failures;
      ADD_FAILURE() << "truncation at " << n << ": " << typeid(e).name() << ": " << e.what();
    }
    if (failures > 5) break;
  }
}

// Random byte corruption of the header: a FileError or a consistent parse, nothing else.
TEST_F(GgufFiles, RandomHeaderCorruptionIsHandled) {
  const std::string full = read_bytes(fixture("models/stories260K/stories260K.gguf"));
  GgufFile whole(fixture("models/stories260K/stories260K.gguf"));
  const auto header = static_cast<std::size_t>(whole.data_offset());
  std::mt19937 rng(1234);
  const auto p = dir_.path() / "corrupt.gguf";
  int parsed = 0, errors = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string bytes = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      bytes[rng() % header] = static_cast<char>(rng() % 256);
    }
    write_file(p, bytes);
    try {
      GgufFile f(p);
      ++parsed;
      std::uint64_t total = 0;
      for (const auto& [name, t] : f.tensors()) total += t.nbytes;
      EXPECT_LE(f.data_offset() + total, bytes.size());
    } catch (const FileError&) {
      ++errors;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << iter << ": " << typeid(e).name() << ": " << e.what();
    }
  }
  EXPECT_EQ(parsed + errors, 300);
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace lmserve::formats
