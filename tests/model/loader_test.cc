// Model::load on synthetic checkpoints written to a temp dir: F16/BF16 weights and shards
// agree with F32, and every malformed input is a FileError with a useful message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/convert.h"
#include "model/model.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

namespace fs = std::filesystem;
using lmserve::testing::TempDir;
using lmserve::testing::write_file;
using nlohmann::json;

struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // exactly representable in every dtype we write
};

// A tiny random Llama: hidden 16, 2 layers, 2 query heads sharing 1 KV head, head_dim 8.
constexpr int kHidden = 16, kInter = 24, kLayers = 2, kHeads = 2, kKvHeads = 1, kHeadDim = 8,
              kVocab = 32;

json tiny_config() {
  return {{"model_type", "llama"},         {"hidden_size", kHidden},
          {"intermediate_size", kInter},   {"num_hidden_layers", kLayers},
          {"num_attention_heads", kHeads}, {"num_key_value_heads", kKvHeads},
          {"vocab_size", kVocab},          {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-5},          {"rope_theta", 10000.0},
          {"tie_word_embeddings", false},  {"eos_token_id", 2}};
}

std::map<std::string, Tensor> tiny_weights() {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  std::map<std::string, Tensor> w;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float offset = 0.0f) {
    Tensor t{shape, {}};
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    // Values rounded to bf16 (hence also exact in f16 at this magnitude) so every dtype
    // holds the same numbers.
    for (std::int64_t i = 0; i < n; ++i)
      t.values.push_back(kernels::bf16_to_f32(kernels::f32_to_bf16(offset + dist(rng))));
    w[name] = std::move(t);
  };
  add("model.embed_tokens.weight", {kVocab, kHidden});
  add("model.norm.weight", {kHidden}, 1.0f);
  add("lm_head.weight", {kVocab, kHidden});
  for (int l = 0; l < kLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {kHidden}, 1.0f);
    add(p + "post_attention_layernorm.weight", {kHidden}, 1.0f);
    add(p + "self_attn.q_proj.weight", {kHeads * kHeadDim, kHidden});
    add(p + "self_attn.k_proj.weight", {kKvHeads * kHeadDim, kHidden});
    add(p + "self_attn.v_proj.weight", {kKvHeads * kHeadDim, kHidden});
    add(p + "self_attn.o_proj.weight", {kHidden, kHeads * kHeadDim});
    add(p + "mlp.gate_proj.weight", {kInter, kHidden});
    add(p + "mlp.up_proj.weight", {kInter, kHidden});
    add(p + "mlp.down_proj.weight", {kHidden, kInter});
  }
  return w;
}

std::string encode(const Tensor& t, const std::string& dtype) {
  std::string out;
  for (float v : t.values) {
    if (dtype == "F32") {
      out.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      std::uint16_t h = dtype == "F16" ? kernels::f32_to_f16(v) : kernels::f32_to_bf16(v);
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return out;
}

// Writes `weights` as one safetensors file; aligned=false pads the header to 8k+1 bytes to
// misalign the data on purpose.
void write_safetensors(const fs::path& path, const std::map<std::string, Tensor>& weights,
                       const std::string& dtype, bool aligned = true) {
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : weights) {
    // F16 files keep norms F32, as converters usually do; BF16 files store them in BF16 too,
    // so both norm paths are exercised.
    std::string dt = (t.shape.size() == 1 && dtype == "F16") ? "F32" : dtype;
    std::string bytes = encode(t, dt);
    header[name] = {{"dtype", dt},
                    {"shape", t.shape},
                    {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string h = header.dump();
  while ((h.size() + (aligned ? 0 : 1)) % 8 != 0) h += ' ';
  if (!aligned) h += ' ';  // header length 8k+1 + 8 bytes => data starts at an odd address
  std::uint64_t len = h.size();
  std::string out(reinterpret_cast<const char*>(&len), 8);
  write_file(path, out + h + data);
}

std::vector<float> run(const fs::path& dir, const std::vector<std::int32_t>& prompt) {
  util::ThreadPool pool(2);
  auto model = Model::load(dir, pool);
  auto cache = model->new_cache(64);
  std::vector<float> logits(kVocab);
  model->forward(prompt, *cache, logits);
  std::int32_t next = 5;
  model->forward(std::span(&next, 1), *cache, logits);
  return logits;
}

class Loader : public ::testing::Test {
 protected:
  void write_model(const json& config, const std::map<std::string, Tensor>& w,
                   const std::string& dtype = "F32") {
    write_file(dir_.path() / "config.json", config.dump());
    write_safetensors(dir_.path() / "model.safetensors", w, dtype);
  }

  void expect_load_error(std::initializer_list<std::string> needles) {
    util::ThreadPool pool(1);
    try {
      Model::load(dir_.path(), pool);
      ADD_FAILURE() << "no FileError";
    } catch (const FileError& e) {
      for (const auto& n : needles)
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
            << "'" << n << "' not in: " << e.what();
    }
  }

  TempDir dir_;
  const std::vector<std::int32_t> prompt_ = {1, 7, 30, 4, 4, 19};
};

TEST_F(Loader, F16Bf16AndShardedAgreeWithF32) {
  auto w = tiny_weights();
  write_model(tiny_config(), w, "F32");
  auto ref = run(dir_.path(), prompt_);
  for (const char* dtype : {"F16", "BF16"}) {
    TempDir other;
    write_file(other.path() / "config.json", tiny_config().dump());
    write_safetensors(other.path() / "model.safetensors", w, dtype);
    auto got = run(other.path(), prompt_);
    for (int i = 0; i < kVocab; ++i)
      EXPECT_NEAR(got[static_cast<std::size_t>(i)], ref[static_cast<std::size_t>(i)], 1e-4)
          << dtype;
  }
  // Sharded: split the tensors over two files and an index; and misaligned data.
  TempDir sharded;
  write_file(sharded.path() / "config.json", tiny_config().dump());
  std::map<std::string, Tensor> a, b;
  json map = json::object();
  int i = 0;
  for (const auto& [name, t] : w) {
    bool first = (i++ % 2) == 0;
    (first ? a : b)[name] = t;
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(sharded.path() / "model-00001-of-00002.safetensors", a, "BF16",
                    /*aligned=*/false);
  write_safetensors(sharded.path() / "model-00002-of-00002.safetensors", b, "F32",
                    /*aligned=*/false);
  write_file(sharded.path() / "model.safetensors.index.json", json{{"weight_map", map}}.dump());
  auto got = run(sharded.path(), prompt_);
  for (int j = 0; j < kVocab; ++j)
    EXPECT_NEAR(got[static_cast<std::size_t>(j)], ref[static_cast<std::size_t>(j)], 1e-4);
}

TEST_F(Loader, MissingLmHeadMeansTied) {
  auto w = tiny_weights();
  auto tied_cfg = tiny_config();
  tied_cfg["tie_word_embeddings"] = true;
  w["lm_head.weight"] = w["model.embed_tokens.weight"];
  write_model(tiny_config(), w);
  auto explicit_head = run(dir_.path(), prompt_);
  w.erase("lm_head.weight");
  write_model(tiny_config(), w);
  EXPECT_EQ(run(dir_.path(), prompt_), explicit_head);
  write_model(tied_cfg, w);
  EXPECT_EQ(run(dir_.path(), prompt_), explicit_head);
}

TEST_F(Loader, RejectsMissingFiles) {
  expect_load_error({"no config.json"});
  write_file(dir_.path() / "config.json", tiny_config().dump());
  expect_load_error({"no model.safetensors"});
  write_file(dir_.path() / "model.safetensors", "short");
  expect_load_error({"shorter than the 8-byte header length"});
}

TEST_F(Loader, RejectsMissingTensor) {
  auto w = tiny_weights();
  w.erase("model.layers.1.mlp.up_proj.weight");
  write_model(tiny_config(), w);
  expect_load_error({"missing tensor \"model.layers.1.mlp.up_proj.weight\""});
}

TEST_F(Loader, RejectsWrongShape) {
  auto w = tiny_weights();
  w["model.layers.0.self_attn.k_proj.weight"].shape = {kHidden, kKvHeads * kHeadDim};  // transposed
  write_model(tiny_config(), w);
  expect_load_error(
      {"\"model.layers.0.self_attn.k_proj.weight\" has shape [16, 8], expected [8, 16]"});
  // The config and the checkpoint disagree on the vocabulary.
  auto cfg = tiny_config();
  cfg["vocab_size"] = 33;
  write_model(cfg, tiny_weights());
  expect_load_error({"model.embed_tokens.weight", "expected [33, 16]"});
}

TEST_F(Loader, RejectsNonFloatDtype) {
  auto w = tiny_weights();
  write_model(tiny_config(), w);
  // Rewrite one matrix as U8 with a consistent byte size: valid file, unusable weight.
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : w) {
    std::string dt = name == "model.layers.0.mlp.gate_proj.weight" ? "U8" : "F32";
    std::string bytes = dt == "U8" ? std::string(t.values.size(), '\x01') : encode(t, "F32");
    header[name] = {{"dtype", dt},
                    {"shape", t.shape},
                    {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h += ' ';
  std::uint64_t len = h.size();
  write_file(dir_.path() / "model.safetensors",
             std::string(reinterpret_cast<const char*>(&len), 8) + h + data);
  expect_load_error({"model.layers.0.mlp.gate_proj.weight", "dtype U8"});
}

TEST_F(Loader, RejectsBadConfigValues) {
  auto w = tiny_weights();
  auto bad = [&](const char* key, json value, std::initializer_list<std::string> needles) {
    auto cfg = tiny_config();
    cfg[key] = std::move(value);
    write_model(cfg, w);
    expect_load_error(needles);
  };
  bad("hidden_size", 15,
      {"config.json", "hidden_size 15 is not divisible by num_attention_heads 2"});
  bad("num_hidden_layers", 0, {"num_hidden_layers"});
  bad("num_attention_heads", -2, {"num_attention_heads"});
  bad("intermediate_size", "24", {"intermediate_size", "must be an integer"});
  bad("model_type", "bert", {"unsupported model_type \"bert\""});
  write_file(dir_.path() / "config.json", "{\"model_type\": \"llama\",");
  expect_load_error({"config.json", "invalid JSON"});
  write_file(dir_.path() / "config.json", tiny_config().dump());
  write_file(dir_.path() / "generation_config.json", "[]");
  expect_load_error({"generation_config.json", "not a JSON object"});
}

}  // namespace
}  // namespace lmserve::model
