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
  std::vector<BlockId> blocks;
  int done = 0;  // positions evaluated
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
    KvPool pool(model_->kv_shape(type, kBlock), 32);
    // Five sequences of different lengths; blocks handed out in a shuffled order.
    std::vector<int> lengths = {1, 9, 23, 40, 17, 70};
    std::vector<BlockId> ids(32);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<Seq> seqs;
    std::size_t next = 0;
    for (int len : lengths) {
      Seq s{random_tokens(rng, len), {}, 0};
      for (int b = 0; b < (len + kBlock - 1) / kBlock; ++b) s.blocks.push_back(ids[next++]);
      seqs.push_back(std::move(s));
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
      model_->forward({.tokens = tokens, .sequences = rows}, pool, logits);
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
  KvPool pool(model_->kv_shape(KvType::kF16, kBlock), 4);
  const int vocab = model_->config().vocab_size;
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::vector<std::int32_t> tokens = {1, 2};
  std::vector<BlockId> one_block = {0};
  auto run = [&](std::vector<BatchSequence> rows, std::span<float> out) {
    model_->forward({.tokens = tokens, .sequences = rows}, pool, out);
  };
  // Rows that do not add up to the tokens, a block table too short, a block outside the
  // pool, logits of the wrong size, a pool of another shape.
  EXPECT_THROW(run({{.n_rows = 1, .blocks = one_block, .want_logits = true}}, logits),
               std::invalid_argument);
  EXPECT_THROW(
      run({{.n_rows = 2, .start_pos = 15, .blocks = one_block, .want_logits = true}}, logits),
      std::invalid_argument);
  std::vector<BlockId> outside = {9};
  EXPECT_THROW(run({{.n_rows = 2, .blocks = outside, .want_logits = true}}, logits),
               std::invalid_argument);
  EXPECT_THROW(run({{.n_rows = 2, .blocks = one_block, .want_logits = false}}, logits),
               std::invalid_argument);
  KvShape other = model_->kv_shape(KvType::kF16, kBlock);
  other.num_layers += 1;
  KvPool wrong(other, 4);
  std::vector<BatchSequence> rows = {{.n_rows = 2, .blocks = one_block, .want_logits = true}};
  EXPECT_THROW(model_->forward({.tokens = tokens, .sequences = rows}, wrong, logits),
               std::invalid_argument);
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
