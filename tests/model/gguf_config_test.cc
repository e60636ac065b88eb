// ModelConfig from GGUF metadata on hand-built files: llama.cpp's keys and defaults, and a
// FileError naming the key for every missing, mistyped or inconsistent value.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
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
  // aligned) holding `values` (zeros when not given); read as the family its
  // general.architecture names.
  ModelConfig parse(const Meta& meta, const std::vector<std::string>& tensors = {},
                    const std::map<std::string, std::array<float, 4>>& values = {}) {
    std::string s = "GGUF" + le<std::uint32_t>(3) + le<std::uint64_t>(tensors.size()) +
                    le<std::uint64_t>(meta.size());
    for (const auto& [k, v] : meta)
      s += str(k) + le(static_cast<std::uint32_t>(v.first)) + v.second;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      // ggml type 0 is F32.
      s += str(tensors[i]) + le<std::uint32_t>(1) + le<std::uint64_t>(4) + le<std::uint32_t>(0) +
           le<std::uint64_t>(32 * i);
    }
    s.resize((s.size() + 31) / 32 * 32, '\0');  // the default data alignment
    for (const std::string& name : tensors) {
      std::string data(32, '\0');
      if (auto it = values.find(name); it != values.end())
        std::memcpy(data.data(), it->second.data(), sizeof(it->second));
      s += data;
    }
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
  expect_error(with("llama.rope.scaling.type", text("ntk")), "\"ntk\" is not supported");
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

// HF's config.json for the same model as llama_meta (head_dim 8), with `rope_scaling`.
ModelConfig hf_twin(const nlohmann::json& rope_scaling, int max_position_embeddings = 128,
                    nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json j = {{"model_type", "llama"},
                      {"hidden_size", 32},
                      {"intermediate_size", 48},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 4},
                      {"vocab_size", 20},
                      {"max_position_embeddings", max_position_embeddings},
                      {"rope_scaling", rope_scaling}};
  j.update(extra);
  return parse_model_config(j.dump());
}

TEST_F(GgufConfig, YarnKeysMeanWhatHfConfigsSay) {
  auto m = llama_meta();
  m["llama.context_length"] = u32(8192);
  m["llama.rope.scaling.type"] = text("yarn");
  m["llama.rope.scaling.factor"] = f32(4.0f);
  m["llama.rope.scaling.original_context_length"] = u32(2048);
  auto c = parse(m);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kYarn);
  auto hf = hf_twin(
      {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 2048}}, 8192);
  EXPECT_EQ(rope_inv_freq(c), rope_inv_freq(hf));
  EXPECT_FLOAT_EQ(rope_attention_factor(c), rope_attention_factor(hf));
  EXPECT_NE(rope_inv_freq(c), rope_inv_freq(parse(llama_meta())));

  m["llama.rope.scaling.attn_factor"] = f32(0.5f);
  m["llama.rope.scaling.yarn_beta_fast"] = f32(8.0f);
  m["llama.rope.scaling.yarn_beta_slow"] = f32(2.0f);
  c = parse(m);
  hf = hf_twin({{"rope_type", "yarn"},
                {"factor", 4.0},
                {"original_max_position_embeddings", 2048},
                {"attention_factor", 0.5},
                {"beta_fast", 8.0},
                {"beta_slow", 2.0}},
               8192);
  EXPECT_EQ(rope_inv_freq(c), rope_inv_freq(hf));
  EXPECT_FLOAT_EQ(rope_attention_factor(c), 0.5f);

  m["llama.rope.scaling.yarn_log_multiplier"] = f32(0.1f);
  expect_error(m, "llama.rope.scaling.yarn_log_multiplier is not supported");
  m.erase("llama.rope.scaling.yarn_log_multiplier");
  m.erase("llama.rope.scaling.factor");
  expect_error(m, "missing metadata \"llama.rope.scaling.factor\"");
}

TEST_F(GgufConfig, Phi3LongRopeFactorTensors) {
  EXPECT_EQ(parse(as("phi3"), {"output_norm.weight"}).sliding_window, 0);
  const std::array<float, 4> long_factors = {1.0f, 2.5f, 8.0f, 30.0f};
  const std::array<float, 4> short_factors = {1.0f, 1.1f, 1.2f, 1.5f};
  auto m = as("phi3");
  m["phi3.context_length"] = u32(131072);
  m["phi3.rope.scaling.original_context_length"] = u32(4096);
  const std::vector<std::string> tensors = {"rope_factors_long.weight",
                                            "rope_factors_short.weight"};
  const std::map<std::string, std::array<float, 4>> values = {
      {"rope_factors_long.weight", long_factors}, {"rope_factors_short.weight", short_factors}};
  auto c = parse(m, tensors, values);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLongRope);
  const nlohmann::json hf_scaling = {
      {"type", "longrope"},
      {"long_factor", std::vector<float>(long_factors.begin(), long_factors.end())},
      {"short_factor", std::vector<float>(short_factors.begin(), short_factors.end())}};
  const nlohmann::json phi3 = {{"model_type", "phi3"}, {"original_max_position_embeddings", 4096}};
  auto hf = hf_twin(hf_scaling, 131072, phi3);
  EXPECT_EQ(rope_inv_freq(c), rope_inv_freq(hf));
  EXPECT_FLOAT_EQ(rope_attention_factor(c), rope_attention_factor(hf));
  EXPECT_FLOAT_EQ(rope_attention_factor(c), std::sqrt(1 + std::log(32.0f) / std::log(4096.0f)));

  // llama.cpp's converter writes the attention factor; a context within the original one
  // rotates with the short factors.
  m["phi3.rope.scaling.attn_factor"] = f32(1.5f);
  m["phi3.context_length"] = u32(4096);
  c = parse(m, tensors, values);
  EXPECT_FLOAT_EQ(rope_attention_factor(c), 1.5f);
  EXPECT_EQ(rope_inv_freq(c), rope_inv_freq(hf_twin(hf_scaling, 4096, phi3)));

  try {
    parse(m, {"rope_factors_long.weight"}, values);
    ADD_FAILURE() << "no FileError";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("needs both the rope_factors_long and the "
                                         "rope_factors_short tensor"),
              std::string::npos)
        << e.what();
  }
  try {
    parse(m, tensors);  // zeros
    ADD_FAILURE() << "no FileError";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("holds a non-positive or non-finite factor"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lmserve::model
