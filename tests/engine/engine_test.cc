// The engine on the real stories260K model: greedy parity with llama2.c, concurrency,
// cancellation, stop strings, seeds and failure isolation.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include "engine/stories_engine.h"

namespace lmserve::engine {
namespace {

TEST_F(EngineTest, GreedyMatchesLlama2cForEveryCaseWhileRunningConcurrently) {
  Engine engine(*model_, *tokenizer_, {.max_sequences = 32, .prefill_step_size = 7});
  const auto& cases = (*reference_)["cases"];
  std::vector<std::unique_ptr<Collector>> collectors;
  for (const auto& c : cases) {
    collectors.push_back(std::make_unique<Collector>());
    engine.submit(greedy(c, 200), collectors.back()->sink());
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    GenerationEvent end = collectors[i]->wait();
    ASSERT_EQ(end.kind, GenerationEvent::Kind::kFinished) << end.error;
    EXPECT_EQ(end.completion_ids, expected_ids(cases[i])) << cases[i]["prompt"];
    EXPECT_EQ(end.finish_reason, FinishReason::kLength);
    EXPECT_EQ(end.usage.completion_tokens, 200);
    EXPECT_EQ(end.usage.prompt_tokens, static_cast<int>(cases[i]["prompt_ids"].size()));
    EXPECT_EQ(
        collectors[i]->text(),
        tokenizer_->decode(end.completion_ids, false, tokenizer_->clean_up_tokenization_spaces()));
  }
}

TEST_F(EngineTest, MaxTokensBoundsTheCompletion) {
  Engine engine(*model_, *tokenizer_, {});
  Collector col;
  engine.submit(greedy((*reference_)["cases"][1], 3), col.sink());
  GenerationEvent end = col.wait();
  EXPECT_EQ(end.finish_reason, FinishReason::kLength);
  EXPECT_EQ(end.completion_ids.size(), 3u);
}

TEST_F(EngineTest, StopStringEndsGenerationAndIsNotEmitted) {
  const auto& c = (*reference_)["cases"][1];
  const std::string full = tokenizer_->decode(expected_ids(c));
  // A stop string taken from the middle of the known greedy continuation.
  const std::size_t at = full.size() / 2;
  const std::string stop = full.substr(at, 5);
  const std::size_t first = full.find(stop);
  Engine engine(*model_, *tokenizer_, {});
  Collector col;
  auto req = greedy(c, 200);
  req.stop = {stop};
  engine.submit(req, col.sink());
  GenerationEvent end = col.wait();
  EXPECT_EQ(end.finish_reason, FinishReason::kStop);
  EXPECT_EQ(col.text(), full.substr(0, first));
  EXPECT_LT(end.usage.completion_tokens, 200);
}

TEST_F(EngineTest, CancelFreesTheSequence) {
  Engine engine(*model_, *tokenizer_, {});
  Collector col;
  auto handle = engine.submit(greedy((*reference_)["cases"][1], 200), col.sink());
  handle->cancel();
  GenerationEvent end = col.wait();
  EXPECT_EQ(end.kind, GenerationEvent::Kind::kFinished);
  EXPECT_EQ(end.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(end.usage.completion_tokens, 200);
}

TEST_F(EngineTest, SeededSamplingIsReproducibleUnderConcurrency) {
  const auto& c = (*reference_)["cases"][1];
  auto seeded = [&](std::uint64_t seed) {
    GenerationRequest r = greedy(c, 40);
    r.sampling = {.temperature = 1.0f, .top_p = 0.9f, .seed = seed};
    return r;
  };
  Engine engine(*model_, *tokenizer_, {});
  Collector alone;
  engine.submit(seeded(99), alone.sink());
  auto reference_ids = alone.wait().completion_ids;

  Collector a, b, other;
  engine.submit(seeded(5), other.sink());
  engine.submit(seeded(99), a.sink());
  engine.submit(seeded(99), b.sink());
  EXPECT_EQ(a.wait().completion_ids, reference_ids);
  EXPECT_EQ(b.wait().completion_ids, reference_ids);
  other.wait();
}

TEST_F(EngineTest, AFailingRequestDoesNotAffectOthers) {
  Engine engine(*model_, *tokenizer_, {});
  Collector bad, good;
  GenerationRequest too_long{.prompt = std::vector<std::int32_t>(600, 5), .max_tokens = 5};
  engine.submit(too_long, bad.sink());
  engine.submit(greedy((*reference_)["cases"][1], 5), good.sink());
  EXPECT_EQ(bad.wait().kind, GenerationEvent::Kind::kFailed);
  GenerationEvent end = good.wait();
  EXPECT_EQ(end.kind, GenerationEvent::Kind::kFinished);
  EXPECT_EQ(end.completion_ids.size(), 5u);
  EXPECT_TRUE(engine.alive());
}

TEST_F(EngineTest, EosSetIsTheUnionOfAllSources) {
  Engine engine(*model_, *tokenizer_, {.extra_eos_ids = {7}});
  EXPECT_EQ(engine.eos_ids(), (std::vector<std::int32_t>{2, 7}));
}

TEST_F(EngineTest, ExtraEosStopsGenerationAndIsNotShown) {
  const auto& c = (*reference_)["cases"][1];
  auto ids = expected_ids(c);
  const std::int32_t stop_id = ids[4];
  Engine engine(*model_, *tokenizer_, {.extra_eos_ids = {stop_id}});
  Collector col;
  engine.submit(greedy(c, 200), col.sink());
  GenerationEvent end = col.wait();
  EXPECT_EQ(end.finish_reason, FinishReason::kStop);
  std::size_t first = std::find(ids.begin(), ids.end(), stop_id) - ids.begin();
  ASSERT_EQ(end.completion_ids.size(), first + 1);
  EXPECT_EQ(end.usage.completion_tokens, static_cast<int>(first + 1));  // the EOS counts
  std::vector<std::int32_t> shown(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(first));
  EXPECT_EQ(col.text(), tokenizer_->decode(shown));
}

TEST_F(EngineTest, RequestSamplingParametersReachTheSampler) {
  // At temperature 1.5, 30 tokens of this model's greedy continuation are (far) less likely
  // than any fixed seed's sample: a run that ignores the parameters returns greedy each time.
  const auto& c = (*reference_)["cases"][1];
  const auto greedy_ids = expected_ids(c);
  Engine engine(*model_, *tokenizer_, {});
  int differing = 0;
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    Collector col;
    GenerationRequest r = greedy(c, 30);
    r.sampling = {.temperature = 1.5f, .seed = seed};
    engine.submit(r, col.sink());
    auto ids = col.wait().completion_ids;
    differing += ids != std::vector<std::int32_t>(greedy_ids.begin(), greedy_ids.begin() + 30);
  }
  EXPECT_GT(differing, 0);
}

TEST_F(EngineTest, RepetitionPenaltyWindowIncludesThePrompt) {
  // A prompt whose greedy next token already occurs in its last `window` tokens: the
  // greedy continuation so far, cut just before a token that repeats.
  const auto& c = (*reference_)["cases"][1];
  const auto prompt = c["prompt_ids"].get<std::vector<std::int32_t>>();
  const auto ids = expected_ids(c);
  const int window = 20;
  std::vector<std::int32_t> history = prompt;
  std::size_t n = 0;
  auto in_window = [&](std::int32_t id) {
    auto from = history.end() - std::min<std::ptrdiff_t>(window, std::ssize(history));
    return std::find(from, history.end(), id) != history.end();
  };
  while (n < ids.size() && !in_window(ids[n])) history.push_back(ids[n++]);
  ASSERT_LT(n, ids.size()) << "no repeated token in the reference continuation";

  Engine engine(*model_, *tokenizer_, {});
  Collector col;
  GenerationRequest r{.prompt = history,
                      .sampling = {.temperature = 0.0f,
                                   .repetition_penalty = 1000.0f,
                                   .repetition_context_size = window},
                      .max_tokens = 1};
  engine.submit(r, col.sink());
  GenerationEvent end = col.wait();
  ASSERT_EQ(end.completion_ids.size(), 1u);
  EXPECT_NE(end.completion_ids[0], ids[n]) << "the prompt's copy of the token was not penalised";
}

TEST_F(EngineTest, HeldBackTextIsReleasedWhenMaxTokensEndsGeneration) {
  const auto& c = (*reference_)["cases"][1];
  auto ids = expected_ids(c);
  ids.resize(12);
  const std::string full =
      tokenizer_->decode(ids, false, tokenizer_->clean_up_tokenization_spaces());
  ASSERT_GE(full.size(), 3u);
  // The last two characters could start this stop string, so they are held back...
  const std::string stop = full.substr(full.size() - 2) + "\x01never";
  Engine engine(*model_, *tokenizer_, {});
  Collector col;
  GenerationRequest r = greedy(c, 12);
  r.stop = {stop};
  engine.submit(r, col.sink());
  GenerationEvent end = col.wait();
  EXPECT_EQ(end.finish_reason, FinishReason::kLength);
  EXPECT_EQ(col.text(), full);  // ... and released when the budget ends generation
}

// A server's model repacks in the background: stats() reports it until the engine has adopted
// every copy, then the bytes a model repacked at load holds.
TEST(EngineRepack, StatsFollowTheBackgroundCopy) {
  const auto path = testing::fixture("models/tiny/llama-q/llama-q-Q8_0.gguf");
  util::ThreadPool pool(2);
  const auto at_load = model::Model::load(path, pool);
  const auto model = model::Model::load(path, pool, model::Model::Repack::kInBackground);
  const auto tokenizer = tokenizer::Tokenizer::load(path);
  Engine engine(*model, tokenizer, {});
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (engine.stats().weights_repacking) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the copy never ended";
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(engine.stats().weights_repacked_bytes, at_load->repacked_bytes());
}

}  // namespace
}  // namespace lmserve::engine
