// yarn and longrope RoPE scaling: the frequencies and attention factor lmserve derives from a
// config.json equal those of a plain numpy reimplementation of HF's modeling_rope_utils
// (rope_scaling_reference.py, run here), for configs that are not in the fixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

// The reference's cases; fails (never skips) when Python cannot run it.
nlohmann::json reference_cases() {
  const std::string command =
      std::string(LMSERVE_PYTHON) + " " + LMSERVE_TEST_SOURCE_DIR + "/rope_scaling_reference.py";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  if (::pclose(pipe) != 0) throw std::runtime_error(command + " failed (run scripts/setup)");
  return nlohmann::json::parse(out);
}

TEST(RopeScaling, MatchesTheNumpyReference) {
  const nlohmann::json cases = reference_cases();
  ASSERT_EQ(cases.size(), 8u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const ModelConfig config = parse_model_config(c["config"].dump());
    const std::vector<float> inv_freq = rope_inv_freq(config);
    const auto expected = c["inv_freq"].get<std::vector<double>>();
    ASSERT_EQ(inv_freq.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      // f32 frequencies, as HF computes them: a few ulps from the float64 reference.
      EXPECT_NEAR(inv_freq[i], expected[i], 4e-7 * expected[i]) << "frequency " << i;
    }
    EXPECT_NEAR(rope_attention_factor(config), c["attention_factor"].get<double>(), 1e-6);
  }
}

// The regimes the reference cases must cover, so that a mistake cannot hide in one of them.
TEST(RopeScaling, CasesExerciseEveryRegime) {
  const nlohmann::json cases = reference_cases();
  const auto& qwen3 = cases[0];
  const auto f = qwen3["inv_freq"].get<std::vector<double>>();
  const double theta = 1e6;
  int kept = 0, interpolated = 0, blended = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const double plain = std::pow(theta, -2.0 * static_cast<double>(i) / 128);
    if (std::abs(f[i] - plain) < 1e-12 * plain) {
      ++kept;
    } else if (std::abs(f[i] - plain / 4) < 1e-12 * plain) {
      ++interpolated;
    } else {
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(interpolated, 0);
  EXPECT_GT(blended, 0);
  // Long factors for phi3-128k, short ones within the original context.
  EXPECT_NE(cases[5]["inv_freq"], cases[6]["inv_freq"]);
  EXPECT_NEAR(cases[5]["attention_factor"].get<double>(),
              std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1e-12);
  EXPECT_EQ(cases[6]["attention_factor"].get<double>(), 1.0);
}

void expect_error(const nlohmann::json& rope_scaling, const std::string& needle) {
  nlohmann::json j = {{"model_type", "phi3"},           {"hidden_size", 64},
                      {"intermediate_size", 64},        {"num_hidden_layers", 1},
                      {"num_attention_heads", 4},       {"vocab_size", 32},
                      {"max_position_embeddings", 256}, {"rope_scaling", rope_scaling}};
  try {
    parse_model_config(j.dump());
    ADD_FAILURE() << "no error for " << rope_scaling.dump();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(RopeScaling, BadConfigsAreRefused) {
  const std::vector<double> eight(8, 1.0);
  expect_error({{"type", "longrope"}, {"long_factor", eight}},
               "\"short_factor\" must list head_dim / 2 = 8 numbers, got nothing");
  expect_error({{"type", "longrope"}, {"short_factor", eight}, {"long_factor", {1.0, 2.0}}},
               "\"long_factor\" must list head_dim / 2 = 8 numbers, got [1.0,2.0]");
  std::vector<nlohmann::json> with_zero(eight.begin(), eight.end());
  with_zero[3] = 0.0;
  expect_error({{"type", "longrope"}, {"short_factor", eight}, {"long_factor", with_zero}},
               "holds 0.0, not a positive finite number");
  expect_error({{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_fast", -1.0}}, "beta_fast");
  expect_error({{"rope_type", "yarn"}, {"factor", 4.0}, {"truncate", "no"}}, "truncate");
  expect_error({{"rope_type", "yarn"}, {"factor", 4.0}, {"attention_factor", 0}},
               "attention_factor");
  expect_error({{"rope_type", "mrope"}},
               "rope_scaling type \"mrope\" is not supported (supported: default, linear, "
               "dynamic, llama3, yarn, longrope)");
}

}  // namespace
}  // namespace lmserve::model
