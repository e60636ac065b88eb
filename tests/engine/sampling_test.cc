#include "engine/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace lmserve::engine {
namespace {

std::int32_t sample_once(SamplingParams p, std::vector<float> logits,
                         std::vector<std::int32_t> history = {}) {
  Sampler s(p);
  return s.sample(logits, history);
}

TEST(Sampler, GreedyTakesArgmaxAndFirstOnTies) {
  SamplingParams p{.temperature = 0.0f};
  EXPECT_EQ(sample_once(p, {0.1f, 3.0f, -1.0f, 2.9f}), 1);
  EXPECT_EQ(sample_once(p, {1.0f, 5.0f, 5.0f}), 1);
}

TEST(Sampler, RepetitionPenaltyIsSignAwareAndWindowed) {
  SamplingParams p{.temperature = 0.0f, .repetition_penalty = 2.0f, .repetition_context_size = 2};
  // Token 0 (logit 3) is in the window: 3/2 = 1.5 < 2.0, so token 1 wins.
  EXPECT_EQ(sample_once(p, {3.0f, 2.0f, -5.0f}, {5, 0}), 1);
  // Token 0 is outside the 2-token window: no penalty.
  EXPECT_EQ(sample_once(p, {3.0f, 2.0f, -5.0f}, {0, 5, 6}), 0);
  // Negative logits are multiplied: -1 * 2 = -2 < -1.5.
  EXPECT_EQ(sample_once(p, {-1.0f, -1.5f}, {0}), 1);
}

TEST(Sampler, PenaltyOneAndZeroAreNoOps) {
  for (float penalty : {0.0f, 1.0f}) {
    SamplingParams p{.temperature = 0.0f, .repetition_penalty = penalty};
    EXPECT_EQ(sample_once(p, {3.0f, 2.0f}, {0, 0, 0}), 0);
  }
}

TEST(Sampler, TopPZeroKeepsOnlyTheMostProbableToken) {
  SamplingParams p{.temperature = 5.0f, .top_p = 0.0f, .seed = 1};
  for (int i = 0; i < 50; ++i) {
    p.seed = static_cast<std::uint64_t>(i);
    EXPECT_EQ(sample_once(p, {1.0f, 1.2f, 0.9f}), 1);
  }
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p{.temperature = 10.0f, .top_k = 1};
  for (int i = 0; i < 50; ++i) {
    p.seed = static_cast<std::uint64_t>(i);
    EXPECT_EQ(sample_once(p, {1.0f, 0.5f, 1.1f, 0.0f}), 2);
  }
}

TEST(Sampler, TopPKeepsSmallestSetReachingMass) {
  // Probabilities 0.5, 0.3, 0.2: top_p 0.7 keeps {0, 1}; token 2 never appears.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  std::map<std::int32_t, int> counts;
  SamplingParams p{.temperature = 1.0f, .top_p = 0.7f};
  for (int i = 0; i < 2000; ++i) {
    p.seed = static_cast<std::uint64_t>(i);
    ++counts[sample_once(p, logits)];
  }
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / 2000.0, 0.5 / 0.8, 0.05);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.35f), std::log(0.05f)};
  SamplingParams p{.temperature = 1.0f, .min_p = 0.2f};
  for (int i = 0; i < 500; ++i) {
    p.seed = static_cast<std::uint64_t>(i);
    EXPECT_NE(sample_once(p, logits), 2);
  }
}

TEST(Sampler, MatchesTheDistributionAtTemperature) {
  // Temperature 0.5 squares the probabilities: 0.8 : 0.2 becomes 0.64 : 0.04 = 16 : 1.
  std::vector<float> logits = {std::log(0.8f), std::log(0.2f)};
  SamplingParams p{.temperature = 0.5f, .seed = 7};
  Sampler s(p);
  int zeros = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    auto l = logits;
    zeros += s.sample(l, {}) == 0;
  }
  EXPECT_NEAR(zeros / static_cast<double>(n), 16.0 / 17.0, 0.01);
}

TEST(Sampler, SameSeedSameTokens) {
  std::vector<float> logits(50);
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i));
  SamplingParams p{.temperature = 1.0f, .seed = 1234};
  Sampler a(p), b(p);
  for (int i = 0; i < 100; ++i) {
    auto la = logits, lb = logits;
    EXPECT_EQ(a.sample(la, {}), b.sample(lb, {}));
  }
}

}  // namespace
}  // namespace lmserve::engine
