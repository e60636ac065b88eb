// Per-request controls on the real stories260K model: logprobs against the model's own full
// logits, logit_bias, stop token ids, min_tokens and ignore_eos.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/engine.h"
#include "engine/stories_engine.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"

namespace lmserve::engine {
namespace {

using RequestControls = EngineTest;

// Each reported entry equals log_softmax of the logits the model gives for that position
// when run alone over prompt + completion, and the alternatives are its true top-k.
TEST_F(RequestControls, LogprobsMatchTheModelsFullLogits) {
  const auto& c = (*reference_)["cases"][4];
  GenerationRequest request = greedy(c, 12);
  request.logprobs = 4;
  std::vector<TokenLogprob> entries;
  std::vector<std::int32_t> ids;
  {
    Engine engine(*model_, *tokenizer_, {});
    Collector col;
    auto sink = col.sink();
    engine.submit(request, [&](const GenerationEvent& ev) {
      entries.insert(entries.end(), ev.logprobs.begin(), ev.logprobs.end());
      sink(ev);
    });
    ids = col.wait().completion_ids;
  }
  ASSERT_EQ(entries.size(), ids.size());  // 12 tokens, none of them EOS

  std::vector<std::int32_t> tokens = request.prompt;
  auto cache = model_->new_cache(model_->config().max_position_embeddings, model::KvType::kF16);
  std::vector<float> logits(static_cast<std::size_t>(model_->config().vocab_size));
  model_->forward(tokens, *cache, logits);
  for (std::size_t t = 0; t < ids.size(); ++t) {
    double m = *std::max_element(logits.begin(), logits.end()), sum = 0;
    for (float l : logits) sum += std::exp(l - m);
    auto lp = [&](std::int32_t id) {
      return logits[static_cast<std::size_t>(id)] - m - std::log(sum);
    };
    EXPECT_EQ(entries[t].id, ids[t]);
    EXPECT_NEAR(entries[t].logprob, lp(ids[t]), 1e-4) << "token " << t;
    ASSERT_EQ(entries[t].top.size(), 4u);
    std::vector<std::int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
      return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)];
    });
    for (std::size_t k = 0; k < 4; ++k) {
      EXPECT_EQ(entries[t].top[k].first, order[k]) << "token " << t << " rank " << k;
      EXPECT_NEAR(entries[t].top[k].second, lp(order[k]), 1e-4);
    }
    EXPECT_EQ(entries[t].top[0].first, ids[t]);  // greedy picks the best
    model_->forward(std::span(&ids[t], 1), *cache, logits);
  }
}

TEST_F(RequestControls, LogitBiasForcesAndBansTokens) {
  const auto& c = (*reference_)["cases"][1];
  Engine engine(*model_, *tokenizer_, {});
  const auto free_ids = run_to_end(engine, greedy(c, 8)).completion_ids;
  GenerationRequest forced = greedy(c, 8);
  forced.sampling.logit_bias = {{77, 100.0f}};
  EXPECT_EQ(run_to_end(engine, forced).completion_ids, std::vector<std::int32_t>(8, 77));
  GenerationRequest banned = greedy(c, 8);
  banned.sampling.logit_bias = {{free_ids[0], -100.0f}};
  EXPECT_NE(run_to_end(engine, banned).completion_ids[0], free_ids[0]);
}

TEST_F(RequestControls, StopTokenIdsMinTokensAndIgnoreEos) {
  const auto& c = (*reference_)["cases"][1];
  const auto ids = expected_ids(c);
  const std::int32_t stop_id = ids[3];
  Engine engine(*model_, *tokenizer_, {.extra_eos_ids = {stop_id}});

  // A stop token id ends the sequence like EOS: counted, not shown.
  GenerationRequest stop = greedy(c, 50);
  stop.stop_token_ids = {ids[2]};
  GenerationEvent end = run_to_end(engine, stop);
  EXPECT_EQ(end.finish_reason, FinishReason::kStop);
  EXPECT_EQ(end.completion_ids, std::vector<std::int32_t>(ids.begin(), ids.begin() + 3));

  // min_tokens: neither EOS nor stop ids can be sampled before it.
  GenerationRequest at_least = greedy(c, 50);
  at_least.stop_token_ids = {ids[2]};
  at_least.min_tokens = 10;
  end = run_to_end(engine, at_least);
  ASSERT_GE(end.completion_ids.size(), 10u);
  for (std::size_t i = 0; i < 9; ++i) {
    EXPECT_NE(end.completion_ids[i], ids[2]);
    EXPECT_NE(end.completion_ids[i], stop_id);
  }

  // ignore_eos: the (extra) EOS id is an ordinary token; generation runs to max_tokens.
  GenerationRequest through = greedy(c, 20);
  through.ignore_eos = true;
  end = run_to_end(engine, through);
  EXPECT_EQ(end.finish_reason, FinishReason::kLength);
  EXPECT_EQ(end.completion_ids, std::vector<std::int32_t>(ids.begin(), ids.begin() + 20));
}

// A think budget: once `budget` tokens followed the start marker (or the prompt, when it left
// the block open), the end marker is the only token sampled; nothing changes before.
TEST_F(RequestControls, ThinkBudgetForcesTheEndMarker) {
  const auto& c = (*reference_)["cases"][1];
  const auto ids = expected_ids(c);
  ASSERT_NE(ids[0], ids[1]);
  ASSERT_EQ(std::count(ids.begin() + 2, ids.begin() + 5, ids[1]), 0);
  const std::int32_t end_id = 77;
  ASSERT_EQ(std::count(ids.begin(), ids.begin() + 8, end_id), 0);
  Engine engine(*model_, *tokenizer_, {});

  GenerationRequest marked = greedy(c, 8);
  marked.think_budget = ThinkBudget{.start_id = ids[1], .end_id = end_id, .budget = 3};
  auto got = run_to_end(engine, marked).completion_ids;
  ASSERT_GE(got.size(), 6u);
  EXPECT_EQ(std::vector<std::int32_t>(got.begin(), got.begin() + 5),
            std::vector<std::int32_t>(ids.begin(), ids.begin() + 5));
  EXPECT_EQ(got[5], end_id);

  GenerationRequest open = greedy(c, 8);
  open.think_budget = ThinkBudget{.start_id = -1, .end_id = end_id, .budget = 2, .open = true};
  got = run_to_end(engine, open).completion_ids;
  ASSERT_GE(got.size(), 3u);
  EXPECT_EQ(got[0], ids[0]);
  EXPECT_EQ(got[1], ids[1]);
  EXPECT_EQ(got[2], end_id);
}

// kFinished names the stop string that ended the sequence (the earliest match).
TEST_F(RequestControls, FinishedEventNamesTheMatchedStopString) {
  const auto& c = (*reference_)["cases"][1];
  Engine engine(*model_, *tokenizer_, {});
  Collector free_run;
  engine.submit(greedy(c, 12), free_run.sink());
  free_run.wait();
  const std::string text = free_run.text();
  ASSERT_GE(text.size(), 8u);
  GenerationRequest stopped = greedy(c, 12);
  stopped.stop = {"never in this text", text.substr(4, 3)};
  GenerationEvent end = run_to_end(engine, stopped);
  EXPECT_EQ(end.finish_reason, FinishReason::kStop);
  EXPECT_EQ(end.stop_sequence, text.substr(4, 3));
  EXPECT_EQ(run_to_end(engine, greedy(c, 12)).stop_sequence, "");
}

}  // namespace
}  // namespace lmserve::engine

namespace lmserve::engine {
namespace {

std::shared_ptr<const grammar::Grammar> schema_grammar(const char* schema) {
  return std::make_shared<const grammar::Grammar>(
      grammar::parse_gbnf(grammar::json_schema_to_gbnf(nlohmann::ordered_json::parse(schema))));
}

// Sampled at temperature 1, every finished output is a JSON text of the schema's shape;
// a constrained and a free request share the batch.
TEST_F(RequestControls, GrammarConstrainsSampling) {
  const auto g = schema_grammar(
      R"({"type":"object","properties":{"n":{"type":"integer","minimum":0},"w":{"enum":["yes","no"]}},"required":["n","w"]})");
  Engine engine(*model_, *tokenizer_, {.max_sequences = 4});
  int finished = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    GenerationRequest constrained{
        .prompt = (*reference_)["cases"][0]["prompt_ids"].get<std::vector<std::int32_t>>(),
        .sampling = {.temperature = 1.0f, .seed = seed},
        .max_tokens = 120,
        .grammar = g};
    GenerationRequest free = constrained;
    free.grammar = nullptr;
    Collector a, b;
    engine.submit(constrained, a.sink());
    engine.submit(free, b.sink());
    const GenerationEvent end = a.wait();
    ASSERT_EQ(end.kind, GenerationEvent::Kind::kFinished) << end.error;
    EXPECT_EQ(b.wait().kind, GenerationEvent::Kind::kFinished);
    if (end.finish_reason != FinishReason::kStop) continue;
    ++finished;
    const auto value = nlohmann::json::parse(a.text());
    EXPECT_TRUE(value["n"].is_number_unsigned()) << a.text();
    EXPECT_TRUE(value["w"] == "yes" || value["w"] == "no") << a.text();
  }
  EXPECT_GE(finished, 3);
}

TEST_F(RequestControls, GrammarCutShortByMaxTokensEndsWithLength) {
  Engine engine(*model_, *tokenizer_, {});
  Collector col;
  engine.submit(
      {.prompt = (*reference_)["cases"][0]["prompt_ids"].get<std::vector<std::int32_t>>(),
       .sampling = {.temperature = 1.0f, .seed = 3},
       .max_tokens = 2,
       .grammar = schema_grammar(
           R"({"type":"object","properties":{"long_name":{"type":"string"}},"required":["long_name"]})")},
      col.sink());
  const GenerationEvent end = col.wait();
  EXPECT_EQ(end.finish_reason, FinishReason::kLength);
  EXPECT_EQ(col.text().substr(0, 1), "{");
}

}  // namespace
}  // namespace lmserve::engine
