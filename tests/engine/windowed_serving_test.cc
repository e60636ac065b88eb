// Serving a model with sliding-window layers (the tiny Gemma 3: five layers with a window of 8
// positions, one global layer): window blocks are released as sequences move past them, yet
// every logit equals the reference cache's, which keeps every position; batches, the prefix
// cache (with its reuse rule) and the pool sizing per cache kind.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "engine/engine.h"
#include "engine/prefix_cache.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/stories_engine.h"

namespace lmserve::engine {
namespace {

constexpr int kContext = 256;

class WindowedServingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto dir = testing::fixture("models/tiny/gemma3/hf");
    pool_ = new util::ThreadPool(2);
    tokenizer_ = new tokenizer::Tokenizer(tokenizer::Tokenizer::load(dir));
    model_ = model::Model::load(dir, *pool_).release();
    prompts_ = new nlohmann::json(testing::read_json(testing::fixture("models/tiny/prompts.json")));
  }
  static void TearDownTestSuite() {
    delete prompts_;
    delete model_;
    delete tokenizer_;
    delete pool_;
  }

  static std::vector<std::int32_t> prompt(std::size_t i) {
    return (*prompts_)[i]["ids"].get<std::vector<std::int32_t>>();
  }
  static GenerationRequest greedy(std::vector<std::int32_t> prompt, int max_tokens) {
    return {.prompt = std::move(prompt),
            .sampling = {.temperature = 0.0f},
            .max_tokens = max_tokens,
            .ignore_eos = true};
  }
  static int window() { return model_->config().sliding_window; }

  static std::vector<std::int32_t> run_alone(GenerationRequest request, EngineOptions options) {
    options.max_sequences = 1;
    Engine engine(*model_, *tokenizer_, options);
    return run_to_end(engine, std::move(request)).completion_ids;
  }

  static inline util::ThreadPool* pool_ = nullptr;
  static inline tokenizer::Tokenizer* tokenizer_ = nullptr;
  static inline model::Model* model_ = nullptr;
  static inline nlohmann::json* prompts_ = nullptr;
};

// The engine's step, by hand: a 41-token prompt in chunks of 7, then 200 greedy tokens. The
// logits of every step are bit-identical to those of a reference cache keeping every position
// (same block size), and between steps the sequence holds at most ceil(window / block) + 1
// window blocks: the rest went back to the pool as it moved past them.
TEST_F(WindowedServingTest, WindowBlocksStayWithinTheWindowOverALongGeneration) {
  for (int block : {4, 16}) {
    SCOPED_TRACE("block size " + std::to_string(block));
    const SchedulerLimits limits{
        .max_sequences = 1, .max_batch_tokens = 64, .prefill_step_size = 7, .ctx_size = kContext};
    model::KvLayout layout = model_->kv_layout(model::KvType::kF16, block, kContext);
    ASSERT_EQ(layout.kinds.size(), 2u);
    ASSERT_EQ(layout.kinds[1].window, window());
    std::vector<int> blocks;
    for (const auto& kind : layout.kinds)
      blocks.push_back(Scheduler::sequence_blocks(kind, kContext) +
                       Scheduler::chunk_blocks(kind, limits));
    model::KvPools pools(layout, blocks);
    PrefixCache cache(pools);
    Scheduler scheduler(pools, cache, limits);
    std::vector<std::unique_ptr<Sequence>> active;
    active.push_back(std::make_unique<Sequence>(
        greedy(prompt(1), 200), [](const GenerationEvent&) {}, *tokenizer_));
    Sequence& seq = *active.back();
    ASSERT_TRUE(scheduler.admit(seq, active));

    model::KvCache reference(layout, kContext);
    const int vocab = model_->config().vocab_size;
    std::vector<float> logits(static_cast<std::size_t>(vocab)), expected(logits.size());
    const int most = (window() + block - 1) / block + 1;
    int steps = 0;
    while (!seq.done()) {
      const auto plan = scheduler.plan(active);
      ASSERT_EQ(plan.size(), 1u);
      scheduler.prepare(plan);
      const int n = plan[0].n_rows;
      const std::span<const std::int32_t> rows(seq.tokens().data() + seq.kv_len(),
                                               static_cast<std::size_t>(n));
      const model::BatchSequence batch_seq{.n_rows = n,
                                           .start_pos = seq.kv_len(),
                                           .blocks = seq.blocks(),
                                           .want_logits = plan[0].want_logits};
      std::span<float> out(logits.data(), plan[0].want_logits ? logits.size() : 0);
      model_->forward({.tokens = rows, .sequences = std::span(&batch_seq, 1)}, pools, out);
      model_->forward(rows, reference, expected);
      seq.advance_kv(n);
      scheduler.advance(seq);
      const auto& table = seq.blocks()[1];
      const auto held =
          std::count_if(table.begin(), table.end(), [](auto b) { return b != model::kNoBlock; });
      if (plan[0].want_logits) {
        ASSERT_EQ(logits, expected) << "at position " << seq.kv_len();
        EXPECT_LE(held, most) << "at position " << seq.kv_len();
        seq.accept_token(seq.sample(logits, {}), {}, kContext);
      }
      ++steps;
    }
    EXPECT_EQ(seq.kv_len(), 41 + 199);
    EXPECT_GE(steps, 200 + 41 / 7);
    scheduler.release(seq);
  }
}

// Sixteen requests far longer than the window, in tiny prefill chunks, some arriving while
// others decode: each gives exactly the ids it gives alone.
TEST_F(WindowedServingTest, BatchedRequestsEqualEachAlone) {
  const EngineOptions options{.max_sequences = 6,
                              .prefill_step_size = 5,
                              .max_batch_tokens = 20,
                              .ctx_size = kContext,
                              .block_size = 4};
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r = greedy(prompt(static_cast<std::size_t>(i % 3)), 40 + 13 * i);
    if (i % 4 == 3) r.sampling = {.temperature = 0.8f, .seed = 7u + static_cast<unsigned>(i)};
    requests.push_back(std::move(r));
  }
  std::vector<std::vector<std::int32_t>> alone;
  for (const auto& r : requests) alone.push_back(run_alone(r, options));

  Engine engine(*model_, *tokenizer_, options);
  expect_batched_as_alone(engine, requests, alone, 6);
}

// The reuse rule (prefix_cache.h): a prefix is reused only while the window blocks its next
// row reads are cached. A pool with little room to spare keeps only the last window blocks
// of a finished sequence: its next turn reuses every token, a request sharing only its first
// 141 tokens nothing; with room to spare both are reused. Either way the output equals a
// cold run's.
TEST_F(WindowedServingTest, APrefixIsReusedOnlyWhileItsWindowIsCached) {
  const GenerationRequest first = greedy(prompt(1), 150);  // 41 + 149 positions computed
  for (int step : {8, 512}) {
    SCOPED_TRACE("prefill step " + std::to_string(step));
    const EngineOptions options{
        .max_sequences = 1, .prefill_step_size = step, .ctx_size = kContext, .block_size = 4};
    Engine engine(*model_, *tokenizer_, options);
    const GenerationEvent a = run_to_end(engine, first);
    ASSERT_EQ(a.completion_ids.size(), 150u);

    GenerationRequest middle = greedy(prompt(1), 30);
    middle.prompt.insert(middle.prompt.end(), a.completion_ids.begin(),
                         a.completion_ids.begin() + 100);
    middle.prompt.push_back(a.completion_ids[100] == 5 ? 6 : 5);  // diverges at 141
    const GenerationEvent b = run_to_end(engine, middle);
    EXPECT_EQ(b.usage.cached_tokens, step == 8 ? 0 : 141);
    EXPECT_EQ(b.completion_ids, run_alone(middle, options));

    GenerationRequest next_turn = greedy(prompt(1), 30);
    next_turn.prompt.insert(next_turn.prompt.end(), a.completion_ids.begin(),
                            a.completion_ids.end());
    next_turn.prompt.push_back(7);
    if (step == 8) {
      // The middle request's blocks pushed out the first one's last window: run it again.
      run_to_end(engine, first);
    }
    const GenerationEvent c = run_to_end(engine, next_turn);
    EXPECT_EQ(c.usage.cached_tokens, 41 + 149);
    EXPECT_EQ(c.completion_ids, run_alone(next_turn, options));
    expect_no_leaked_blocks(engine);
  }
}

// The memory figures: the window kind needs ceil(window / block) + 1 blocks per sequence (plus
// one prefill chunk's spare), the global layer a whole context. The pools the engine sets
// aside for four contexts take fewer bytes than one context took when every layer kept every
// position, and admit four sequences of 240 positions (30 windows) at once, not a fifth.
TEST_F(WindowedServingTest, APoolSizedForNSequencesAdmitsNLongOnes) {
  const int block = 4;
  const EngineOptions options{
      .max_sequences = 4, .prefill_step_size = 8, .ctx_size = kContext, .block_size = block};
  Engine engine(*model_, *tokenizer_, options);
  const EngineMemory& memory = engine.memory();
  ASSERT_EQ(memory.kv_kinds.size(), 2u);
  const KvKindMemory& global = memory.kv_kinds[0];
  const KvKindMemory& local = memory.kv_kinds[1];
  EXPECT_EQ(global.window, 0);
  EXPECT_EQ(global.layers, 1);
  EXPECT_EQ(global.sequence_blocks, kContext / block);
  EXPECT_EQ(global.blocks, 4 * kContext / block);
  EXPECT_EQ(local.window, window());
  EXPECT_EQ(local.layers, 5);
  EXPECT_EQ(local.sequence_blocks, (window() + block - 1) / block + 1);
  // A chunk of 8 rows sees 7 + 8 positions: 5 blocks at most, 2 beyond a sequence's 3.
  EXPECT_EQ(local.chunk_blocks, 2);
  EXPECT_EQ(local.blocks, 4 * local.sequence_blocks + local.chunk_blocks);
  const model::KvShape all_layers = model_->kv_shape(model::KvType::kF16, block);
  const model::KvLayout layout = model_->kv_layout(model::KvType::kF16, block, kContext);
  EXPECT_EQ(global.bytes,
            static_cast<std::size_t>(global.blocks) * layout.kinds[0].shape.bytes_per_block());
  EXPECT_EQ(memory.kv_pool_bytes, global.bytes + local.bytes);
  // Smaller than what one context took when every layer kept every position.
  const std::size_t old_context_bytes = (kContext / block) * all_layers.bytes_per_block();
  EXPECT_LT(memory.kv_pool_bytes, old_context_bytes);

  // --kv-memory of exactly those bytes gives the same pools.
  Engine same(*model_, *tokenizer_,
              {.max_sequences = 4,
               .prefill_step_size = 8,
               .ctx_size = kContext,
               .kv_memory = memory.kv_pool_bytes,
               .block_size = block});
  EXPECT_EQ(same.memory().kv_kinds[0].blocks, global.blocks);
  EXPECT_EQ(same.memory().kv_kinds[1].blocks, local.blocks);

  // Admission over pools of those sizes: four long sequences at once, not a fifth.
  model::KvPools pools(layout, std::vector<int>{global.blocks, local.blocks});
  PrefixCache cache(pools);
  Scheduler scheduler(
      pools, cache,
      {.max_sequences = 5, .max_batch_tokens = 2048, .prefill_step_size = 8, .ctx_size = kContext});
  std::vector<std::unique_ptr<Sequence>> active;
  for (int i = 0; i < 5; ++i) {
    auto p = prompt(1);
    p[1] = 300 + i;  // no shared prefix
    active.push_back(std::make_unique<Sequence>(
        greedy(p, 200), [](const GenerationEvent&) {}, *tokenizer_));
    EXPECT_EQ(scheduler.admit(*active.back(), active), i < 4) << "sequence " << i;
  }
  active.pop_back();
  for (auto& seq : active) scheduler.release(*seq);

  // And they run: four long requests in the engine sized for four, each as alone (computed
  // first: two engines must not share the model at once).
  std::vector<GenerationRequest> requests;
  std::vector<std::vector<std::int32_t>> alone;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(greedy(prompt(static_cast<std::size_t>(i % 3)), 190));
    requests.back().prompt[1] = 300 + i;
    alone.push_back(run_alone(requests.back(), options));
  }
  expect_batched_as_alone(engine, requests, alone);
}

}  // namespace
}  // namespace lmserve::engine
