// The batch seam on tiny models (llama: GQA, llama3 rope scaling; gemma2: sliding windows of
// 8 and soft-caps; gemma3: local RoPE base, q/k norms; qwen2: biases; phi3: fused
// projections) in F32 and F16: a sequence's logits are bit-identical whether it runs alone, in one
// chunk or many, or inside a batch with other sequences at other positions, over any block layout,
// with f16 and f32 KV.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"
#include "support/fixtures.h"

namespace lmserve::model {
namespace {

using lmserve::testing::fixture;

// The block size of Model::new_cache: the online softmax advances block by block, so results are
// bit-identical for one block size (the engine uses one per run).
constexpr int kBlock = 16;

struct Seq {
  std::vector<std::int32_t> tokens;
  std::vector<std::vector<BlockId>> blocks;  // per cache kind
  int done = 0;                              // positions evaluated
};

class BatchInvariance : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<util::ThreadPool>(3);
    model_ = Model::load(fixture(std::string("models/tiny/") + GetParam()), *pool_);
  }

  std::vector<std::int32_t> random_tokens(std::mt19937& rng, int n) const {
    std::uniform_int_distribution<std::int32_t> id(0, model_->config().vocab_size - 1);
    std::vector<std::int32_t> t(static_cast<std::size_t>(n));
    for (auto& x : t) x = id(rng);
    return t;
  }

  // Logits of the last token of `tokens`, evaluated alone in chunks of `chunk`.
  std::vector<float> alone(const std::vector<std::int32_t>& tokens, int chunk, KvType type) {
    auto cache = model_->new_cache(static_cast<int>(tokens.size()), type);
    std::vector<float> logits(static_cast<std::size_t>(model_->config().vocab_size));
    for (std::size_t i = 0; i < tokens.size(); i += static_cast<std::size_t>(chunk)) {
      const std::size_t n = std::min(tokens.size() - i, static_cast<std::size_t>(chunk));
      model_->forward(std::span(tokens).subspan(i, n), *cache, logits);
    }
    return logits;
  }

  std::unique_ptr<util::ThreadPool> pool_;
  std::unique_ptr<Model> model_;
};

TEST_P(BatchInvariance, LogitsAreBitIdenticalAloneAndInAnyBatch) {
  std::mt19937 rng(17);
  const int vocab = model_->config().vocab_size;
  for (KvType type : {KvType::kF32, KvType::kF16, KvType::kQ8_0}) {
    const KvLayout layout =
        model_->kv_layout(type, kBlock, model_->config().max_position_embeddings);
    KvPools pools(layout, std::vector<int>(layout.kinds.size(), 32));
    // Five sequences of different lengths; each kind's blocks handed out in a shuffled order.
    std::vector<int> lengths = {1, 9, 23, 40, 17, 70};
    std::vector<Seq> seqs;
    for (int len : lengths) seqs.push_back({random_tokens(rng, len), {}, 0});
    for (std::size_t k = 0; k < layout.kinds.size(); ++k) {
      std::vector<BlockId> ids(32);
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), rng);
      std::size_t next = 0;
      for (Seq& s : seqs) {
        auto& table = s.blocks.emplace_back();
        const int len = static_cast<int>(s.tokens.size());
        for (int b = 0; b < (len + kBlock - 1) / kBlock; ++b) table.push_back(ids[next++]);
      }
    }
    // Each step takes a different-size piece of every unfinished sequence (decode-like single
    // rows and prefill-like chunks mixed); logits are kept for finished sequences.
    std::vector<std::vector<float>> batched(seqs.size());
    for (int step = 0;
         std::any_of(seqs.begin(), seqs.end(),
                     [](const Seq& s) { return s.done < static_cast<int>(s.tokens.size()); });
         ++step) {
      std::vector<std::int32_t> tokens;
      std::vector<BatchSequence> rows;
      std::vector<std::size_t> wanting;
      for (std::size_t i = 0; i < seqs.size(); ++i) {
        Seq& s = seqs[i];
        const int rest = static_cast<int>(s.tokens.size()) - s.done;
        if (rest == 0) continue;
        const int n =
            std::min(rest, 1 + static_cast<int>((i + static_cast<std::size_t>(step)) % 6));
        tokens.insert(tokens.end(), s.tokens.begin() + s.done, s.tokens.begin() + s.done + n);
        rows.push_back(
            {.n_rows = n, .start_pos = s.done, .blocks = s.blocks, .want_logits = n == rest});
        if (n == rest) wanting.push_back(i);
        s.done += n;
      }
      std::vector<float> logits(wanting.size() * static_cast<std::size_t>(vocab));
      model_->forward({.tokens = tokens, .sequences = rows}, pools, logits);
      for (std::size_t k = 0; k < wanting.size(); ++k) {
        batched[wanting[k]].assign(
            logits.begin() + static_cast<std::ptrdiff_t>(k * static_cast<std::size_t>(vocab)),
            logits.begin() +
                static_cast<std::ptrdiff_t>((k + 1) * static_cast<std::size_t>(vocab)));
      }
    }
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      SCOPED_TRACE("sequence " + std::to_string(i) + " " + to_string(type));
      const auto whole = alone(seqs[i].tokens, 1000, type);
      const auto one_by_one = alone(seqs[i].tokens, 1, type);
      ASSERT_EQ(batched[i], whole);
      ASSERT_EQ(one_by_one, whole);
    }
  }
}

TEST_P(BatchInvariance, RejectsMalformedBatches) {
  const int context = model_->config().max_position_embeddings;
  const KvLayout layout = model_->kv_layout(KvType::kF16, kBlock, context);
  KvPools pools(layout, std::vector<int>(layout.kinds.size(), 4));
  const int vocab = model_->config().vocab_size;
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::vector<std::int32_t> tokens = {1, 2};
  const std::vector<std::vector<BlockId>> one_block(layout.kinds.size(), {0});
  auto run = [&](std::vector<BatchSequence> rows, std::span<float> out) {
    model_->forward({.tokens = tokens, .sequences = rows}, pools, out);
  };
  // Rows that do not add up to the tokens, a block table too short, a block outside the
  // pool, a table missing for a kind, logits of the wrong size, pools of another shape.
  EXPECT_THROW(run({{.n_rows = 1, .blocks = one_block, .want_logits = true}}, logits),
               std::invalid_argument);
  EXPECT_THROW(
      run({{.n_rows = 2, .start_pos = 15, .blocks = one_block, .want_logits = true}}, logits),
      std::invalid_argument);
  for (std::size_t k = 0; k < layout.kinds.size(); ++k) {
    auto outside = one_block;
    outside[k] = {9};
    EXPECT_THROW(run({{.n_rows = 2, .blocks = outside, .want_logits = true}}, logits),
                 std::invalid_argument);
  }
  const std::vector<std::vector<BlockId>> too_few(layout.kinds.size() - 1, {0});
  EXPECT_THROW(run({{.n_rows = 2, .blocks = too_few, .want_logits = true}}, logits),
               std::invalid_argument);
  EXPECT_THROW(run({{.n_rows = 2, .blocks = one_block, .want_logits = false}}, logits),
               std::invalid_argument);
  KvShape other = model_->kv_shape(KvType::kF16, kBlock);
  const std::vector<int> windows(static_cast<std::size_t>(other.num_layers + 1), 0);
  KvPools wrong(make_kv_layout(other, windows, context), std::vector<int>{4});
  std::vector<BatchSequence> rows = {{.n_rows = 2, .blocks = one_block, .want_logits = true}};
  EXPECT_THROW(model_->forward({.tokens = tokens, .sequences = rows}, wrong, logits),
               std::invalid_argument);
}

// A windowed kind's table holds real blocks only where rows still look: blocks that fall
// out of the window go back to the pool at once (and are handed out again, a free list being
// a stack), yet the logits stay bit-identical to the reference cache, which keeps every
// position, while the window pool never holds more than ceil(window / block) + 1 blocks.
TEST_P(BatchInvariance, WindowedKindsKeepOnlyTheirWindow) {
  const int context = model_->config().max_position_embeddings;
  const KvLayout layout = model_->kv_layout(KvType::kF16, kBlock, context);
  std::mt19937 rng(5);
  const auto tokens = random_tokens(rng, context - 10);
  std::vector<int> blocks;
  for (const KvKind& kind : layout.kinds) blocks.push_back(kind.window > 0 ? 6 : context / kBlock);
  KvPools pools(layout, blocks);
  std::vector<std::vector<BlockId>> tables(layout.kinds.size());
  auto reference = model_->new_cache(static_cast<int>(tokens.size()), KvType::kF16);
  const int vocab = model_->config().vocab_size;
  std::vector<float> logits(static_cast<std::size_t>(vocab)), expected(logits.size());
  int pos = 0;
  for (int step = 0; pos < static_cast<int>(tokens.size()); ++step) {
    const int n = std::min(static_cast<int>(tokens.size()) - pos, step < 3 ? 11 : 1);
    for (std::size_t k = 0; k < layout.kinds.size(); ++k) {
      auto& table = tables[k];
      table.resize(static_cast<std::size_t>((pos + n - 1) / kBlock + 1), kNoBlock);
      for (auto& b : table) {
        if (b != kNoBlock) continue;
        if (layout.kinds[k].window > 0 && &b - table.data() < pos / kBlock) continue;
        b = *pools[static_cast<int>(k)].allocate();
      }
    }
    const std::span<const std::int32_t> rows(tokens.data() + pos, static_cast<std::size_t>(n));
    const BatchSequence seq{.n_rows = n, .start_pos = pos, .blocks = tables, .want_logits = true};
    model_->forward({.tokens = rows, .sequences = std::span(&seq, 1)}, pools, logits);
    model_->forward(rows, *reference, expected);
    ASSERT_EQ(logits, expected) << "at position " << pos;
    pos += n;
    for (std::size_t k = 0; k < layout.kinds.size(); ++k) {
      const KvKind& kind = layout.kinds[k];
      if (kind.window == 0) continue;
      for (int i = 0; i < kind.first_visible_block(pos); ++i) {
        auto& b = tables[k][static_cast<std::size_t>(i)];
        if (b != kNoBlock) pools[static_cast<int>(k)].release(std::exchange(b, kNoBlock));
      }
      const int used =
          pools[static_cast<int>(k)].num_blocks() - pools[static_cast<int>(k)].free_blocks();
      // (The first steps are prefill chunks, whose rows together see more.)
      if (step >= 3) {
        EXPECT_LE(used, (kind.window + kBlock - 1) / kBlock + 1);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, BatchInvariance,
                         ::testing::Values("llama/hf", "llama/llama-F16.gguf", "gemma2/hf",
                                           "gemma3/gemma3-F16.gguf", "qwen2/hf", "phi3/hf"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace lmserve::model
