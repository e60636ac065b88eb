// ModelConfig parsing: defaults, eos collection, and a precise FileError for every bad value.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "model/model.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

nlohmann::json base_config() {
  return {{"model_type", "llama"},    {"hidden_size", 64},
          {"intermediate_size", 172}, {"num_hidden_layers", 2},
          {"num_attention_heads", 8}, {"num_key_value_heads", 4},
          {"vocab_size", 512},        {"max_position_embeddings", 128},
          {"rms_norm_eps", 1e-5},     {"rope_theta", 10000.0},
          {"eos_token_id", 2}};
}

// Expects parse_model_config to throw a FileError whose message contains every needle.
void expect_error(const nlohmann::json& config, std::initializer_list<std::string> needles,
                  const std::string& generation = {}) {
  try {
    parse_model_config(config.dump(), generation);
    ADD_FAILURE() << "no FileError for " << config.dump();
  } catch (const FileError& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, ParsesAndDefaults) {
  auto j = base_config();
  auto c = parse_model_config(j.dump());
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  j.erase("num_key_value_heads");
  j.erase("max_position_embeddings");
  c = parse_model_config(j.dump());
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.max_position_embeddings, 2048);
}

TEST(ModelConfig, ExplicitHeadDimNeedNotDivideHidden) {
  auto j = base_config();
  j["hidden_size"] = 60;
  j["head_dim"] = 16;
  EXPECT_EQ(parse_model_config(j.dump()).head_dim, 16);
  j["head_dim"] = nullptr;  // null means "derive it"
  expect_error(j, {"hidden_size 60", "not divisible", "num_attention_heads 8"});
}

TEST(ModelConfig, CollectsEosFromBothFiles) {
  auto j = base_config();
  j["eos_token_id"] = {2, 7, 2};
  j["bos_token_id"] = 1;
  auto c = parse_model_config(j.dump(), R"({"eos_token_id": [7, 9], "bos_token_id": 5})");
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int32_t>{2, 7, 9}));
  EXPECT_EQ(c.bos_token_id, 1);
  j.erase("eos_token_id");
  j.erase("bos_token_id");
  c = parse_model_config(j.dump(), R"({"eos_token_id": 3, "bos_token_id": 5})");
  EXPECT_EQ(c.eos_token_ids, std::vector<std::int32_t>{3});
  EXPECT_EQ(c.bos_token_id, 5);
  j["eos_token_id"] = "2";
  expect_error(j, {"eos_token_id"});
  expect_error(base_config(), {"generation_config.json", "eos_token_id"},
               R"({"eos_token_id": [-4]})");
  expect_error(base_config(), {"generation_config.json", "invalid JSON"}, "{oops");
}

TEST(ModelConfig, MistralSlidingWindowLimitsEveryLayerNotTheContext) {
  auto j = base_config();
  j["model_type"] = "mistral";
  j["sliding_window"] = 64;
  auto c = parse_model_config(j.dump());
  EXPECT_EQ(c.architecture, "mistral");
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.sliding_window, 64);
  EXPECT_EQ(c.local_layers, std::vector<bool>(static_cast<std::size_t>(c.num_layers), true));
  EXPECT_EQ(c.local_rope_theta, 0.0f);
  j["sliding_window"] = nullptr;
  c = parse_model_config(j.dump());
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_TRUE(c.local_layers.empty());
}

TEST(ModelConfig, FamilyFeaturesAreRefusedWhereUnsupported) {
  auto j = base_config();
  j["model_type"] = "qwen2";
  j["use_sliding_window"] = true;
  expect_error(j, {"use_sliding_window", "qwen2"});
  j = base_config();
  j["model_type"] = "gemma2";
  j["hidden_activation"] = "silu";
  expect_error(j, {"hidden_activation \"silu\"", "gemma2"});
  j = base_config();
  j["model_type"] = "gemma3_text";
  j["sliding_window"] = 4;
  j["layer_types"] = {"sliding_attention"};  // two layers
  expect_error(j, {"layer_types", "one type per layer"});
  j["layer_types"] = {"sliding_attention", "chunked_attention"};
  expect_error(j, {"layer type \"chunked_attention\" is not supported"});
  j = base_config();
  j["rope_scaling"] = {{"rope_type", "longrope"}};
  expect_error(j, {"rope_scaling: \"short_factor\" must list"});
  j["rope_scaling"] = {{"rope_type", "longrope_v2"}};
  expect_error(j, {"rope_scaling type \"longrope_v2\" is not supported"});
}

TEST(ModelConfig, RejectsBadValues) {
  auto with = [](const char* key, nlohmann::json v) {
    auto j = base_config();
    j[key] = std::move(v);
    return j;
  };
  expect_error(with("model_type", "gpt2"), {"unsupported model_type \"gpt2\"", "llama"});
  expect_error(with("model_type", 3), {"model_type"});
  expect_error(with("hidden_size", 0), {"hidden_size", "positive"});
  expect_error(with("hidden_size", -64), {"hidden_size", "positive"});
  expect_error(with("hidden_size", 65), {"not divisible"});
  expect_error(with("hidden_size", "64"), {"hidden_size", "integer"});
  expect_error(with("hidden_size", 64.5), {"hidden_size", "integer"});
  expect_error(with("hidden_size", 1ull << 40), {"hidden_size", "out of range"});
  expect_error(with("num_hidden_layers", 0), {"num_hidden_layers"});
  expect_error(with("num_attention_heads", -8), {"num_attention_heads"});
  expect_error(with("num_key_value_heads", 3), {"not a multiple of num_key_value_heads 3"});
  expect_error(with("num_key_value_heads", 0), {"num_key_value_heads"});
  expect_error(with("vocab_size", 0), {"vocab_size"});
  expect_error(with("intermediate_size", -1), {"intermediate_size"});
  expect_error(with("max_position_embeddings", 0), {"max_position_embeddings"});
  expect_error(with("rms_norm_eps", -1.0), {"rms_norm_eps"});
  expect_error(with("rope_theta", 0), {"rope_theta"});
  expect_error(with("head_dim", 7), {"head_dim 7", "even"});
  expect_error(with("tie_word_embeddings", "yes"), {"tie_word_embeddings"});
  expect_error(with("hidden_act", "gelu"), {"hidden_act \"gelu\""});
  expect_error(with("attention_bias", true), {"attention_bias"});
  expect_error(with("rope_scaling", {{"rope_type", "yarn"}, {"factor", -4.0}}),
               {"rope_scaling: \"factor\" = -4.0 must be a positive finite number"});
  expect_error(with("rope_scaling", {{"rope_type", "llama3"}}), {"factor"});
  expect_error(with("rope_scaling", "linear"), {"rope_scaling"});
  auto missing = base_config();
  missing.erase("vocab_size");
  expect_error(missing, {"missing \"vocab_size\""});
  missing = base_config();
  missing.erase("model_type");
  expect_error(missing, {"model_type"});
  EXPECT_THROW(parse_model_config("[1, 2]"), FileError);
  EXPECT_THROW(parse_model_config("{\"model_type\": "), FileError);
  EXPECT_THROW(parse_model_config(std::string(100000, '[')), FileError);
}

TEST(ModelConfig, RopeFrequencies) {
  auto j = base_config();
  auto c = parse_model_config(j.dump());
  auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 4u);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(f[static_cast<std::size_t>(i)], std::pow(10000.0, -2.0 * i / 8), 1e-7);

  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  auto lin = rope_inv_freq(parse_model_config(j.dump()));
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(lin[static_cast<std::size_t>(i)], f[static_cast<std::size_t>(i)] / 2, 1e-7);

  // HF's dynamic NTK keeps the base up to max_position_embeddings, the whole context here.
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 4.0}};
  auto dynamic = parse_model_config(j.dump());
  EXPECT_EQ(dynamic.rope_scaling.type, RopeScaling::Type::kDynamic);
  EXPECT_EQ(rope_inv_freq(dynamic), f);
  j["rope_scaling"] = {{"type", "dynamic"}};
  expect_error(j, {"\"dynamic\" needs \"factor\""});

  // llama3: head_dim 16, theta 500000 as in tiny/llama: the 8 frequencies hit the unscaled,
  // smoothed and divided regimes.
  j["hidden_size"] = 64;
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 2;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto l3 = rope_inv_freq(parse_model_config(j.dump()));
  ASSERT_EQ(l3.size(), 8u);
  int kept = 0, divided = 0, smoothed = 0;
  for (int i = 0; i < 8; ++i) {
    double base = std::pow(500000.0, -2.0 * i / 16);
    double wavelen = 2 * M_PI / base;
    double expected = base;
    if (wavelen > 8192.0) {
      expected = base / 8;
      ++divided;
    } else if (wavelen >= 2048.0) {
      double s = (8192.0 / wavelen - 1.0) / 3.0;
      expected = (1 - s) * base / 8 + s * base;
      ++smoothed;
    } else {
      ++kept;
    }
    EXPECT_NEAR(l3[static_cast<std::size_t>(i)], expected, 1e-6 * base) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

}  // namespace
}  // namespace lmserve::model
