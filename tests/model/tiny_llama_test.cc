// tiny/llama (llama3 rope scaling, untied head, GQA) against llama.cpp's top-10 log-probs.
// Tolerance 1e-3 on F32 weights, as shared/fixtures/models/tiny/README.md recommends.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "model/model.h"
#include "support/fixtures.h"

namespace lmserve::model {
namespace {

using lmserve::testing::fixture;
using lmserve::testing::read_json;

constexpr double kTolerance = 1e-3;

std::vector<double> log_softmax(const std::vector<float>& logits) {
  double m = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(l - m);
  double lse = m + std::log(sum);
  std::vector<double> out(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
  return out;
}

void expect_top10(const std::vector<float>& logits, const nlohmann::json& top,
                  const std::string& where) {
  auto lp = log_softmax(logits);
  ASSERT_EQ(top.size(), 10u) << where;
  for (const auto& e : top) {
    auto id = e.at("id").get<std::size_t>();
    EXPECT_NEAR(lp.at(id), e.at("logprob").get<double>(), kTolerance) << where << " id " << id;
  }
  // llama.cpp's first entry is its argmax.
  auto best =
      static_cast<std::size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  auto ref_best = top[0].at("id").get<std::size_t>();
  if (best != ref_best) {
    EXPECT_NEAR(lp[best], lp[ref_best], kTolerance)
        << where << ": argmax differs beyond a near tie";
  }
}

class TinyLlama : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(fixture("models/tiny/llama/hf"), pool_);
    ref_ = read_json(fixture("models/tiny/llama/reference.json"));
  }
  util::ThreadPool pool_{2};
  std::unique_ptr<Model> model_;
  nlohmann::json ref_;
};

TEST_F(TinyLlama, ConfigHasLlama3RopeScaling) {
  const auto& c = model_->config();
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_FALSE(c.tie_word_embeddings);
}

// Teacher-forced, one token per call: every prompt position is checked, then the greedy
// continuation while llama.cpp's top-1 margin leaves no doubt about the next id.
TEST_F(TinyLlama, EveryPositionMatchesLlamaCppTokenByToken) {
  const auto& file = ref_.at("files").at("llama-F32.gguf");
  const auto& prompts = ref_.at("prompts");
  ASSERT_EQ(prompts.size(), 3u);
  std::vector<float> logits(static_cast<std::size_t>(model_->config().vocab_size));
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    auto ids = prompts[p].at("ids").get<std::vector<std::int32_t>>();
    const auto& top = file.at("prompts")[p].at("top");
    const auto& greedy = file.at("prompts")[p].at("greedy");
    ASSERT_EQ(top.size(), ids.size());
    auto cache = model_->new_cache(model_->config().max_position_embeddings);
    for (std::size_t pos = 0; pos < ids.size(); ++pos) {
      model_->forward(std::span(&ids[pos], 1), *cache, logits);
      expect_top10(logits, top[pos], "prompt " + std::to_string(p) + " pos " + std::to_string(pos));
    }
    int compared = 0;
    for (std::size_t k = 0; k < greedy.size(); ++k) {
      auto lp = log_softmax(logits);
      auto id = greedy[k].at("id").get<std::int32_t>();
      auto ours = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) -
                                            logits.begin());
      if (greedy[k].at("margin").get<double>() < 0.01) break;  // a near tie: may diverge from here
      ASSERT_EQ(ours, id) << "prompt " << p << " greedy step " << k;
      EXPECT_NEAR(lp[static_cast<std::size_t>(id)], greedy[k].at("logprob").get<double>(),
                  kTolerance)
          << "prompt " << p << " greedy step " << k;
      ++compared;
      model_->forward(std::span(&id, 1), *cache, logits);
    }
    EXPECT_GE(compared, 4) << "prompt " << p;
  }
}

// The whole prompt in one call (and in two chunks) gives the last position's distribution.
TEST_F(TinyLlama, PrefillMatchesLlamaCpp) {
  const auto& file = ref_.at("files").at("llama-F32.gguf");
  const auto& prompts = ref_.at("prompts");
  std::vector<float> logits(static_cast<std::size_t>(model_->config().vocab_size));
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    auto ids = prompts[p].at("ids").get<std::vector<std::int32_t>>();
    const auto& top = file.at("prompts")[p].at("top");
    auto cache = model_->new_cache(256);
    model_->forward(ids, *cache, logits);
    expect_top10(logits, top.back(), "prompt " + std::to_string(p) + " one call");

    auto cache2 = model_->new_cache(256);
    std::size_t split = ids.size() / 2;
    model_->forward(std::span(ids).first(split), *cache2, logits);
    expect_top10(logits, top[split - 1], "prompt " + std::to_string(p) + " first half");
    model_->forward(std::span(ids).subspan(split), *cache2, logits);
    expect_top10(logits, top.back(), "prompt " + std::to_string(p) + " second half");
  }
}

}  // namespace
}  // namespace lmserve::model
