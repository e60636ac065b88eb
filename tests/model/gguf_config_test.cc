// ModelConfig from GGUF metadata on hand-built files: llama.cpp's keys and defaults, and a
// FileError naming the key for every missing, mistyped or inconsistent value.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "model/architecture.h"
#include "model/loading.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

namespace fs = std::filesystem;
using formats::GgufType;

template <typename T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
std::string str(const std::string& s) { return le<std::uint64_t>(s.size()) + s; }

// Metadata as key -> (type, encoded value); written in key order.
using Meta = std::map<std::string, std::pair<GgufType, std::string>>;

std::pair<GgufType, std::string> u32(std::uint32_t v) { return {GgufType::kUint32, le(v)}; }
std::pair<GgufType, std::string> f32(float v) { return {GgufType::kFloat32, le(v)}; }
std::pair<GgufType, std::string> text(const std::string& v) { return {GgufType::kString, str(v)}; }
std::pair<GgufType, std::string> tokens(int n) {
  std::string s = le(static_cast<std::uint32_t>(GgufType::kString)) + le<std::uint64_t>(n);
  for (int i = 0; i < n; ++i) {
    std::string token = std::to_string(i);
    token.insert(token.begin(), 't');  // (gcc 12 -Wrestrict misfires on "t" + to_string)
    s += str(token);
  }
  return {GgufType::kArray, s};
}

Meta llama_meta() {
  return {
      {"general.architecture", text("llama")},
      {"llama.context_length", u32(128)},
      {"llama.embedding_length", u32(32)},
      {"llama.block_count", u32(2)},
      {"llama.feed_forward_length", u32(48)},
      {"llama.attention.head_count", u32(4)},
      {"llama.attention.layer_norm_rms_epsilon", f32(1e-6f)},
      {"tokenizer.ggml.tokens", tokens(20)},
      {"tokenizer.ggml.bos_token_id", u32(1)},
      {"tokenizer.ggml.eos_token_id", u32(2)},
  };
}

class GgufConfig : public ::testing::Test {
 protected:
  GgufConfig() {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("lmserve_gguf_config_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  ~GgufConfig() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A file with `meta` and, for each name in `tensors`, an F32 tensor of 4 elements (32-byte
  // aligned); read as the family its general.architecture names.
  ModelConfig parse(const Meta& meta, const std::vector<std::string>& tensors = {}) {
    std::string s = "GGUF" + le<std::uint32_t>(3) + le<std::uint64_t>(tensors.size()) +
                    le<std::uint64_t>(meta.size());
    for (const auto& [k, v] : meta)
      s += str(k) + le(static_cast<std::uint32_t>(v.first)) + v.second;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      s += str(tensors[i]) + le<std::uint32_t>(1) + le<std::uint64_t>(4) +
           le(static_cast<std::uint32_t>(formats::DType::kF32)) + le<std::uint64_t>(32 * i);
    }
    s.resize((s.size() + 31) / 32 * 32, '\0');  // the default data alignment
    s.append(32 * tensors.size(), '\0');
    auto p = dir_ / "m.gguf";
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(s.data(), static_cast<long>(s.size()));
    formats::GgufFile file(p);
    const auto* arch = find_gguf_architecture(file.get_string("general.architecture"));
    if (arch == nullptr) throw FileError("no family for this architecture");
    return model_config_from_gguf(file, *arch);
  }

  void expect_error(const Meta& meta, const std::string& needle) {
    try {
      parse(meta);
      ADD_FAILURE() << "expected a FileError containing " << needle;
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
};

TEST_F(GgufConfig, LlamaKeysAndDefaults) {
  auto m = llama_meta();
  m["tokenizer.ggml.eot_token_id"] = u32(7);
  auto c = parse(m);
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.intermediate_size, 48);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 4);  // head_count_kv defaults to head_count
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 20);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int32_t>{2, 7}));
  EXPECT_TRUE(c.tie_word_embeddings);  // no output.weight tensor
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
}

TEST_F(GgufConfig, ExplicitValues) {
  auto m = llama_meta();
  m["llama.attention.head_count_kv"] = u32(2);
  m["llama.attention.key_length"] = u32(16);
  m["llama.attention.value_length"] = u32(16);
  m["llama.rope.dimension_count"] = u32(16);
  m["llama.rope.freq_base"] = f32(500000.0f);
  m["llama.vocab_size"] = u32(20);
  m["llama.rope.scaling.type"] = text("linear");
  m["llama.rope.scaling.factor"] = f32(4.0f);
  auto c = parse(m);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 4.0f);
}

TEST_F(GgufConfig, Errors) {
  auto without = [](const std::string& key) {
    auto m = llama_meta();
    m.erase(key);
    return m;
  };
  auto with = [](const std::string& key, std::pair<GgufType, std::string> v) {
    auto m = llama_meta();
    m[key] = std::move(v);
    return m;
  };
  expect_error(without("llama.embedding_length"), "missing metadata \"llama.embedding_length\"");
  expect_error(without("llama.attention.layer_norm_rms_epsilon"),
               "missing metadata \"llama.attention.layer_norm_rms_epsilon\"");
  expect_error(without("tokenizer.ggml.tokens"), "missing metadata \"llama.vocab_size\"");
  expect_error(with("llama.block_count", text("2")), "\"llama.block_count\" is string");
  expect_error(with("llama.block_count", u32(0)), "\"llama.block_count\" = 0 must be in 1..");
  expect_error(with("llama.attention.layer_norm_rms_epsilon", f32(-1.0f)),
               "must be a positive finite number");
  expect_error(with("llama.attention.head_count_kv", u32(3)), "not a multiple");
  expect_error(with("llama.embedding_length", u32(30)), "not divisible by attention.head_count");
  expect_error(with("llama.rope.dimension_count", u32(4)), "partial rotary");
  expect_error(with("llama.attention.value_length", u32(4)), "value_length");
  expect_error(with("llama.vocab_size", u32(32)), "disagrees with the 20 entries");
  expect_error(with("tokenizer.ggml.eos_token_id", u32(20)),
               "\"tokenizer.ggml.eos_token_id\" = 20 is outside the vocabulary");
  expect_error(with("llama.rope.scaling.type", text("yarn")), "\"yarn\" is not supported");
  expect_error(with("llama.rope.scaling.type", text("linear")),
               "missing metadata \"llama.rope.scaling.factor\"");
  expect_error(with("llama.embedding_length", u32(1u << 30)), "implausibly large");
}

// llama_meta's keys under another architecture's prefix.
Meta as(const std::string& arch) {
  Meta out;
  for (const auto& [k, v] : llama_meta()) out[k.starts_with("llama.") ? arch + k.substr(5) : k] = v;
  out["general.architecture"] = text(arch);
  return out;
}

TEST_F(GgufConfig, LocalLayersAndSoftCaps) {
  auto m = as("gemma2");
  m["gemma2.attention.sliding_window"] = u32(8);
  m["gemma2.attn_logit_softcapping"] = f32(50.0f);
  m["gemma2.final_logit_softcapping"] = f32(30.0f);
  auto c = parse(m);
  EXPECT_EQ(c.sliding_window, 8);
  EXPECT_EQ(c.local_layers, (std::vector<bool>{true, false}));
  EXPECT_FLOAT_EQ(c.attn_logit_softcap, 50.0f);
  EXPECT_FLOAT_EQ(c.final_logit_softcap, 30.0f);
  EXPECT_EQ(c.local_rope_theta, 0.0f);  // local layers rotate like global ones

  m = as("gemma3");
  m["gemma3.block_count"] = u32(7);
  m["gemma3.attention.sliding_window"] = u32(512);
  c = parse(m);
  EXPECT_EQ(c.local_layers, (std::vector<bool>{true, true, true, true, true, false, true}));
  EXPECT_FLOAT_EQ(c.local_rope_theta, 10000.0f);  // llama.cpp's default without freq_base_swa
  m["gemma3.rope.freq_base_swa"] = f32(20000.0f);
  EXPECT_FLOAT_EQ(parse(m).local_rope_theta, 20000.0f);

  // A llama GGUF has no window, whatever its metadata says.
  m = llama_meta();
  m["llama.attention.sliding_window"] = u32(8);
  EXPECT_EQ(parse(m).sliding_window, 0);
  EXPECT_TRUE(parse(m).local_layers.empty());
}

TEST_F(GgufConfig, Phi3LongRopeFactorsAreRefused) {
  EXPECT_EQ(parse(as("phi3"), {"output_norm.weight"}).sliding_window, 0);
  try {
    parse(as("phi3"), {"rope_factors_long.weight", "rope_factors_short.weight"});
    ADD_FAILURE() << "no FileError";
  } catch (const FileError& e) {
    EXPECT_NE(
        std::string(e.what()).find("\"rope_factors_long.weight\" is not supported yet (phi3)"),
        std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lmserve::model
