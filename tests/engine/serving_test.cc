// The serving core on the real stories260K model: batch invariance, prefix reuse,
// cancellation in every state, back-pressure and a full KV pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "engine/engine.h"
#include "engine/prefix_cache.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/stories_engine.h"

namespace lmserve::engine {
namespace {

class ServingTest : public EngineTest {
 protected:
  static std::vector<std::int32_t> run_alone(GenerationRequest request) {
    Engine engine(*model_, *tokenizer_, {.max_sequences = 1});
    return run_to_end(engine, std::move(request)).completion_ids;
  }

  // A prompt of n tokens drawn from the reference prompts (all valid ids).
  static std::vector<std::int32_t> long_prompt(int n) {
    std::vector<std::int32_t> ids;
    for (const auto& c : (*reference_)["cases"]) {
      for (auto id : c["prompt_ids"]) {
        if (static_cast<int>(ids.size()) < n) ids.push_back(id.get<std::int32_t>());
      }
    }
    while (static_cast<int>(ids.size()) < n)
      ids.push_back(static_cast<std::int32_t>(ids.size() % 400 + 10));
    return ids;
  }
};

// 16 requests of different lengths and budgets, some submitted while others decode, with
// tiny prefill chunks and a small step budget so prefill and decode rows share steps: each
// gives exactly the ids it gives alone, greedy and seeded.
TEST_F(ServingTest, MixedBatchEqualsEachRequestAlone) {
  const auto& cases = (*reference_)["cases"];
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r = greedy(cases[static_cast<std::size_t>(i) % cases.size()], 20 + 9 * i);
    if (i % 4 == 1) r.prompt = long_prompt(40 + 17 * i);
    if (i % 3 == 2)
      r.sampling = {.temperature = 0.9f, .top_k = 40, .seed = 1000u + static_cast<unsigned>(i)};
    requests.push_back(r);
  }
  std::vector<std::vector<std::int32_t>> alone;
  for (const auto& r : requests) alone.push_back(run_alone(r));

  Engine engine(*model_, *tokenizer_,
                {.max_sequences = 16, .prefill_step_size = 5, .max_batch_tokens = 30});
  // Stagger: the second half arrives while the first half is decoding.
  expect_batched_as_alone(engine, requests, alone, 8);
}

// Requests that reach an idle engine a moment apart are prefilled in one step: the engine
// waits a fraction of its last step for them (here a stalled 150 ms one: 50 ms at most).
// Without the wait, a request that arrives once a step has begun goes to the next step.
TEST_F(ServingTest, RequestsSentTogetherToAnIdleEngineShareTheirFirstStep) {
  const auto& cases = (*reference_)["cases"];
  auto steps_for_two = [&](Engine& engine, const std::function<void()>& between) {
    const std::uint64_t steps_before = engine.stats().steps;
    Collector first, second;
    engine.submit(greedy(cases[1], 1), first.sink());
    between();
    engine.submit(greedy(cases[2], 1), second.sink());
    EXPECT_EQ(first.wait().kind, GenerationEvent::Kind::kFinished);
    EXPECT_EQ(second.wait().kind, GenerationEvent::Kind::kFinished);
    // A step is counted before its tokens are delivered.
    return engine.stats().steps - steps_before;
  };
  {
    Engine engine(*model_, *tokenizer_,
                  {.max_sequences = 4, .admission_wait = 1.0, .test_stall_step_ms = 150});
    run_to_end(engine, greedy(cases[0], 1));  // its one step is the stalled one
    EXPECT_EQ(steps_for_two(engine, [] { std::this_thread::sleep_for(5ms); }), 1u);
  }
  {
    Engine engine(*model_, *tokenizer_,
                  {.max_sequences = 4, .admission_wait = 0.0, .test_stall_step_ms = 150});
    // The first request's step (stalled) has admitted it by the time the second arrives.
    EXPECT_EQ(steps_for_two(engine,
                            [&] {
                              while (engine.step_running_for() < 20ms) std::this_thread::yield();
                            }),
              2u);
  }
}

// The second request repeats the first one's prompt and part of its answer: every token the
// first one computed is reused, token-exact, and the continuation is unchanged.
TEST_F(ServingTest, PrefixCacheReusesEarlierSequencesTokenExact) {
  const auto& c = (*reference_)["cases"][3];
  Engine engine(*model_, *tokenizer_, {});
  Collector first;
  engine.submit(greedy(c, 30), first.sink());
  GenerationEvent a = first.wait();
  ASSERT_EQ(a.kind, GenerationEvent::Kind::kFinished);
  EXPECT_EQ(a.usage.cached_tokens, 0);

  GenerationRequest next = greedy(c, 25);
  next.prompt.insert(next.prompt.end(), a.completion_ids.begin(), a.completion_ids.begin() + 21);
  next.prompt.push_back(5);  // diverges from the cached answer here
  Collector second;
  engine.submit(next, second.sink());
  GenerationEvent b = second.wait();
  ASSERT_EQ(b.kind, GenerationEvent::Kind::kFinished);
  EXPECT_EQ(b.usage.cached_tokens, static_cast<int>(c["prompt_ids"].size()) + 21);
  // (The engine is idle now: the model is not shared by two forward passes at once.)
  EXPECT_EQ(b.completion_ids, run_alone(next));
  EXPECT_GE(engine.stats().prefix_cache_hits, 1u);
  expect_no_leaked_blocks(engine);
}

TEST_F(ServingTest, TwoClientsShareASystemPromptWhileBothRun) {
  auto shared = long_prompt(120);
  GenerationRequest a{.prompt = shared, .sampling = {.temperature = 0}, .max_tokens = 40};
  GenerationRequest b = a;
  a.prompt.push_back(300);
  b.prompt.push_back(301);
  Engine engine(*model_, *tokenizer_, {.max_sequences = 2});
  Collector ca, cb;
  engine.submit(a, ca.sink());
  ca.wait();
  engine.submit(b, cb.sink());
  GenerationEvent end = cb.wait();
  EXPECT_EQ(end.usage.cached_tokens, 120);
  EXPECT_EQ(end.completion_ids, run_alone(b));
}

// Every step carries each decoding sequence's next token, and a long prompt only adds chunks
// of at most prefill_step_size tokens within the step budget.
TEST_F(ServingTest, ALongPromptDelaysRunningStreamsByAtMostOneChunk) {
  model::KvPools pools(model_->kv_layout(model::KvType::kF16, 16, 512), std::vector<int>{96});
  PrefixCache cache(pools);
  Scheduler scheduler(
      pools, cache,
      {.max_sequences = 4, .max_batch_tokens = 40, .prefill_step_size = 24, .ctx_size = 512});
  std::vector<std::unique_ptr<Sequence>> active;
  auto add = [&](GenerationRequest r) {
    active.push_back(std::make_unique<Sequence>(
        std::move(r), [](const GenerationEvent&) {}, *tokenizer_));
    ASSERT_TRUE(scheduler.admit(*active.back(), active));
  };
  const auto& c = (*reference_)["cases"][2];
  add(greedy(c, 50));
  add(greedy((*reference_)["cases"][3], 50));
  // Both short prompts fit one step; then they decode.
  for (const auto& seq : active) seq->accept_token(5, {}, 512);
  add({.prompt = long_prompt(300), .sampling = {.temperature = 0}, .max_tokens = 5});
  auto other = long_prompt(200);
  other[1] = 7;  // shares no block with the first long prompt, so it does not wait for it
  add({.prompt = other, .sampling = {.temperature = 0}, .max_tokens = 5});
  for (int step = 0; step < 5; ++step) {
    const auto plan = scheduler.plan(active);
    int rows = 0;
    ASSERT_GE(plan.size(), 2u);
    EXPECT_EQ(plan[0].sequence, active[0].get());  // decode rows come first
    EXPECT_EQ(plan[1].sequence, active[1].get());
    EXPECT_EQ(plan[0].n_rows, 1);
    EXPECT_EQ(plan[1].n_rows, 1);
    for (const auto& p : plan) {
      rows += p.n_rows;
      EXPECT_LE(p.n_rows, 24);
      p.sequence->advance_kv(p.n_rows);
    }
    EXPECT_LE(rows, 40);
  }
}

// Two requests with one long prompt arrive together: the second waits for the first's
// prefill instead of computing the same blocks again, and both give their alone results.
TEST_F(ServingTest, SimultaneousSharedPromptsArePrefilledOnce) {
  GenerationRequest a{.prompt = long_prompt(300), .sampling = {.temperature = 0}, .max_tokens = 20};
  GenerationRequest b = a;
  b.prompt.push_back(42);
  const auto a_alone = run_alone(a), b_alone = run_alone(b);
  Engine engine(*model_, *tokenizer_, {.max_sequences = 4, .prefill_step_size = 32});
  Collector ca, cb;
  engine.submit(a, ca.sink());
  engine.submit(b, cb.sink());
  GenerationEvent ea = ca.wait(), eb = cb.wait();
  EXPECT_EQ(ea.completion_ids, a_alone);
  EXPECT_EQ(eb.completion_ids, b_alone);
  EXPECT_EQ(ea.usage.cached_tokens, 0);
  EXPECT_GE(eb.usage.cached_tokens, 288);
  expect_no_leaked_blocks(engine);
}

TEST_F(ServingTest, CancelWhileQueuedPrefillingOrDecodingFreesItsBlocks) {
  const auto& c = (*reference_)["cases"][2];
  const auto neighbour_alone = run_alone(greedy(c, 60));
  Engine engine(*model_, *tokenizer_, {.max_sequences = 2, .prefill_step_size = 4});
  // Decoding: cancelled after its first text.
  Collector decoding;
  auto d = engine.submit(greedy(c, 400), decoding.sink());
  // Prefilling: a long prompt in 4-token chunks, cancelled at once.
  Collector prefilling;
  auto p =
      engine.submit({.prompt = long_prompt(300), .sampling = {.temperature = 0}, .max_tokens = 5},
                    prefilling.sink());
  // Queued: both slots are taken.
  Collector queued;
  auto q = engine.submit(greedy(c, 5), queued.sink());
  q->cancel();
  p->cancel();
  EXPECT_EQ(queued.wait().finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(prefilling.wait().finish_reason, FinishReason::kCancelled);
  d->cancel();
  GenerationEvent end = decoding.wait();
  EXPECT_EQ(end.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(end.usage.completion_tokens, 400);
  expect_no_leaked_blocks(engine);

  // The engine still serves, and a neighbour of a cancelled stream is undisturbed.
  Collector neighbour, victim;
  auto v = engine.submit(greedy((*reference_)["cases"][5], 100), victim.sink());
  engine.submit(greedy(c, 60), neighbour.sink());
  v->cancel();
  EXPECT_EQ(neighbour.wait().completion_ids, neighbour_alone);
}

TEST_F(ServingTest, AFullQueueRefusesNewRequests) {
  const auto& c = (*reference_)["cases"][1];
  Engine engine(*model_, *tokenizer_, {.max_sequences = 1, .max_queue = 2});
  Collector running, w1, w2;
  auto r = engine.submit(greedy(c, 400), running.sink());
  // Wait until it is admitted, so the queue holds exactly what follows.
  while (engine.stats().running == 0) std::this_thread::yield();
  engine.submit(greedy(c, 3), w1.sink());
  engine.submit(greedy(c, 3), w2.sink());
  Collector refused;
  EXPECT_THROW(engine.submit(greedy(c, 3), refused.sink()), QueueFull);
  r->cancel();
  EXPECT_EQ(w1.wait().kind, GenerationEvent::Kind::kFinished);
  EXPECT_EQ(w2.wait().kind, GenerationEvent::Kind::kFinished);
}

// A pool with room for one context serves four requests one after another: they wait for
// blocks, none fails, and the results are those of each request alone.
TEST_F(ServingTest, AFullPoolMakesRequestsWait) {
  const auto& cases = (*reference_)["cases"];
  std::vector<std::vector<std::int32_t>> alone;
  for (std::size_t i = 0; i < 4; ++i) alone.push_back(run_alone(greedy(cases[i], 450)));
  const std::size_t one_context = model_->kv_shape(model::KvType::kF16, 16).bytes_per_block() * 32;
  Engine engine(*model_, *tokenizer_,
                {.max_sequences = 4, .ctx_size = 512, .kv_memory = one_context});
  EXPECT_EQ(engine.memory().kv_blocks, 32);
  std::vector<std::unique_ptr<Collector>> cols;
  for (std::size_t i = 0; i < 4; ++i) {
    cols.push_back(std::make_unique<Collector>());
    engine.submit(greedy(cases[i], 450), cols.back()->sink());
  }
  for (std::size_t i = 0; i < 4; ++i) {
    GenerationEvent end = cols[i]->wait();
    ASSERT_EQ(end.kind, GenerationEvent::Kind::kFinished) << end.error;
    EXPECT_EQ(end.completion_ids, alone[i]);
  }
  expect_no_leaked_blocks(engine);
}

// The previous answer fills a pool sized for one context; the next request matches its
// first block, which must itself be evicted to make room: it is admitted without reuse.
TEST_F(ServingTest, APoolFullOfTheMatchedPrefixStillAdmits) {
  const auto& c = (*reference_)["cases"][1];
  const std::size_t one_context = model_->kv_shape(model::KvType::kF16, 16).bytes_per_block() * 32;
  Engine engine(*model_, *tokenizer_,
                {.max_sequences = 1, .ctx_size = 512, .kv_memory = one_context});
  GenerationRequest whole_context = greedy(c, 512 - static_cast<int>(c["prompt_ids"].size()));
  for (int i = 0; i < 3; ++i) {
    Collector col;
    engine.submit(whole_context, col.sink());
    GenerationEvent end = col.wait();
    ASSERT_EQ(end.kind, GenerationEvent::Kind::kFinished) << end.error;
    EXPECT_EQ(end.finish_reason, FinishReason::kLength);
  }
  expect_no_leaked_blocks(engine);
}

TEST_F(ServingTest, RefusesAPoolThatCannotHoldOneContext) {
  EXPECT_THROW(Engine(*model_, *tokenizer_, {.ctx_size = 512, .kv_memory = 1000}),
               std::invalid_argument);
  EXPECT_THROW(Engine(*model_, *tokenizer_, {.ctx_size = 100000}), std::invalid_argument);
}

}  // namespace
}  // namespace lmserve::engine
