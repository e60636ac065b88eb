// Acceptance test: greedy decoding of stories260K reproduces llama2.c's run.c token for token.
// See shared/fixtures/models/stories260K/README.md, "Stop rule": with HF semantics id 1 (BOS)
// is an ordinary token, so the expected ids are output_ids_ignoring_bos_stop when present.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/model.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

using lmserve::testing::fixture;
using lmserve::testing::read_json;

std::int32_t argmax(const std::vector<float>& v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

struct Case {
  std::string prompt;
  std::vector<std::int32_t> prompt_ids;
  std::vector<std::int32_t> expected;
};

std::vector<Case> load_cases(int& max_new_tokens) {
  auto ref = read_json(fixture("models/stories260K/reference_greedy.json"));
  max_new_tokens = ref.at("max_new_tokens").get<int>();
  std::vector<Case> cases;
  for (const auto& c : ref.at("cases")) {
    Case k;
    k.prompt = c.at("prompt").get<std::string>();
    k.prompt_ids = c.at("prompt_ids").get<std::vector<std::int32_t>>();
    const auto& out = c.contains("output_ids_ignoring_bos_stop")
                          ? c.at("output_ids_ignoring_bos_stop")
                          : c.at("output_ids");
    k.expected = out.get<std::vector<std::int32_t>>();
    cases.push_back(std::move(k));
  }
  return cases;
}

// Greedy decoding with no stop token. The prompt is fed in chunks of `chunk` tokens
// (0 = the whole prompt in one forward call).
std::vector<std::int32_t> greedy(Model& model, const std::vector<std::int32_t>& prompt, int n,
                                 std::size_t chunk) {
  auto cache = model.new_cache(model.config().max_position_embeddings);
  std::vector<float> logits(static_cast<std::size_t>(model.config().vocab_size));
  if (chunk == 0) chunk = prompt.size();
  for (std::size_t i = 0; i < prompt.size(); i += chunk) {
    std::size_t len = std::min(chunk, prompt.size() - i);
    model.forward(std::span(prompt).subspan(i, len), *cache, logits);
  }
  EXPECT_EQ(cache->size(), static_cast<int>(prompt.size()));
  std::vector<std::int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::int32_t next = argmax(logits);
    out.push_back(next);
    if (i + 1 < n) model.forward(std::span(&next, 1), *cache, logits);
  }
  return out;
}

class Stories260K : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(fixture("models/stories260K"), pool_);
    cases_ = load_cases(max_new_tokens_);
  }

  void check_all(std::size_t chunk) {
    ASSERT_EQ(cases_.size(), 18u);
    for (const auto& c : cases_) {
      SCOPED_TRACE("prompt \"" + c.prompt + "\", chunk " + std::to_string(chunk));
      ASSERT_EQ(c.expected.size(), static_cast<std::size_t>(max_new_tokens_));
      EXPECT_EQ(greedy(*model_, c.prompt_ids, max_new_tokens_, chunk), c.expected);
    }
  }

  util::ThreadPool pool_{2};
  std::unique_ptr<Model> model_;
  std::vector<Case> cases_;
  int max_new_tokens_ = 0;
};

TEST_F(Stories260K, ConfigMatchesCheckpoint) {
  const auto& c = model_->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<std::int32_t>{2});
}

TEST_F(Stories260K, GreedyWholePromptPrefill) { check_all(0); }

TEST_F(Stories260K, GreedyTokenByToken) { check_all(1); }

TEST_F(Stories260K, GreedyChunkedPrefill) { check_all(3); }

// Truncating the cache and re-evaluating gives the same continuation (the engine relies on
// this for prefix reuse).
TEST_F(Stories260K, TruncateAndReplay) {
  const auto& c = cases_.at(2);
  auto cache = model_->new_cache(512);
  std::vector<float> logits(512), replay(512);
  model_->forward(c.prompt_ids, *cache, logits);
  std::int32_t next = argmax(logits);
  model_->forward(std::span(&next, 1), *cache, logits);
  cache->truncate(static_cast<int>(c.prompt_ids.size()) - 2);
  EXPECT_EQ(cache->size(), static_cast<int>(c.prompt_ids.size()) - 2);
  std::vector<std::int32_t> rest(c.prompt_ids.end() - 2, c.prompt_ids.end());
  rest.push_back(next);
  model_->forward(rest, *cache, replay);
  for (std::size_t i = 0; i < logits.size(); ++i)
    ASSERT_NEAR(replay[i], logits[i], 1e-4f) << "logit " << i;
}

TEST_F(Stories260K, RejectsBadForwardInputs) {
  auto cache = model_->new_cache(4);
  std::vector<float> logits(512);
  std::vector<std::int32_t> bad = {1, 512};
  EXPECT_THROW(model_->forward(bad, *cache, logits), std::invalid_argument);
  std::vector<std::int32_t> negative = {-1};
  EXPECT_THROW(model_->forward(negative, *cache, logits), std::invalid_argument);
  EXPECT_THROW(model_->forward({}, *cache, logits), std::invalid_argument);
  std::vector<std::int32_t> too_long = {1, 2, 3, 4, 5};
  EXPECT_THROW(model_->forward(too_long, *cache, logits), std::invalid_argument);
  EXPECT_EQ(cache->size(), 0);
  std::vector<float> short_logits(10);
  std::vector<std::int32_t> ok = {1};
  EXPECT_THROW(model_->forward(ok, *cache, short_logits), std::invalid_argument);
  EXPECT_THROW(model_->new_cache(0), std::invalid_argument);
  EXPECT_THROW(model_->new_cache(513), std::invalid_argument);
}

}  // namespace
}  // namespace lmserve::model
