// The radix prefix cache over small KV pools: token-exact matches, partial blocks, reference
// counting, LRU eviction of unreferenced leaves only, and the reuse rule of windowed kinds.
#include "engine/prefix_cache.h"

#include <gtest/gtest.h>

#include <numeric>

namespace lmserve::engine {
namespace {

constexpr int kBlock = 4;

model::KvShape shape() {
  return {.num_layers = 1,
          .num_kv_heads = 1,
          .head_dim = 2,
          .block_size = kBlock,
          .type = model::KvType::kF32};
}

// One full-attention kind of `blocks` blocks (what a model without windows has).
model::KvPools full_pools(int blocks) {
  const std::vector<int> windows = {0};
  return model::KvPools(model::make_kv_layout(shape(), windows, 1000), std::vector<int>{blocks});
}

using Tables = std::vector<std::vector<model::BlockId>>;

std::vector<std::int32_t> iota(int n, int first = 0) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// A "sequence" that owns blocks for n tokens and offers them to the cache.
std::vector<model::BlockId> fill(model::KvPool& pool, int n) {
  std::vector<model::BlockId> blocks;
  for (int i = 0; i < (n + kBlock - 1) / kBlock; ++i) blocks.push_back(*pool.allocate());
  return blocks;
}

// Drops the references a "sequence" or a match holds (kNoBlock entries hold none).
void release_all(model::KvPool& pool, const std::vector<model::BlockId>& blocks) {
  for (auto b : blocks)
    if (b != model::kNoBlock) pool.release(b);
}

TEST(PrefixCache, MatchesFullAndPartialBlocksTokenExact) {
  model::KvPools pools = full_pools(16);
  model::KvPool& pool = pools[0];
  PrefixCache cache(pools);
  auto tokens = iota(10);  // two full blocks and a partial one of 2 tokens
  auto blocks = fill(pool, 10);
  cache.insert(tokens, Tables{blocks});
  release_all(pool, blocks);  // the sequence ends; the cache keeps them
  EXPECT_EQ(cache.cached_blocks(), 3);
  EXPECT_EQ(pool.free_blocks(), 13);

  auto query = iota(12);
  query[9] = 99;  // diverges inside the partial block
  PrefixCache::Match m = cache.match(query, 100);
  EXPECT_EQ(m.tokens, 9);
  ASSERT_EQ(m.blocks[0].size(), 3u);
  EXPECT_EQ(m.blocks[0], blocks);
  for (auto b : m.blocks[0]) EXPECT_EQ(pool.refcount(b), 2);  // the cache's and the caller's
  release_all(pool, m.blocks[0]);

  // The cap stops inside a full block: that block is returned as a partial one.
  m = cache.match(iota(10), 6);
  EXPECT_EQ(m.tokens, 6);
  EXPECT_EQ(m.blocks[0], (std::vector<model::BlockId>{blocks[0], blocks[1]}));
  release_all(pool, m.blocks[0]);

  // Nothing in common.
  m = cache.match(iota(8, 50), 100);
  EXPECT_EQ(m.tokens, 0);
  EXPECT_TRUE(m.blocks[0].empty());
}

TEST(PrefixCache, SharedPrefixesBranch) {
  model::KvPools pools = full_pools(16);
  model::KvPool& pool = pools[0];
  PrefixCache cache(pools);
  auto a = iota(8);
  auto b = iota(8);
  b[5] = 77;  // same first block, different second
  auto ba = fill(pool, 8), bb = fill(pool, 8);
  cache.insert(a, Tables{ba});
  cache.insert(b, Tables{bb});  // its first block duplicates a cached one: not added
  EXPECT_EQ(cache.cached_blocks(), 3);
  PrefixCache::Match m = cache.match(b, 100);
  EXPECT_EQ(m.tokens, 8);
  EXPECT_EQ(m.blocks[0], (std::vector<model::BlockId>{ba[0], bb[1]}));
  release_all(pool, m.blocks[0]);
  release_all(pool, ba);
  release_all(pool, bb);
  EXPECT_EQ(pool.free_blocks(), 16 - 3);  // bb[0] was never cached, so it is free again
}

TEST(PrefixCache, EvictsLeastRecentlyUsedUnreferencedLeavesOnly) {
  model::KvPools pools = full_pools(8);
  model::KvPool& pool = pools[0];
  PrefixCache cache(pools);
  auto old_tokens = iota(8, 0), new_tokens = iota(8, 100), live_tokens = iota(8, 200);
  auto old_blocks = fill(pool, 8), new_blocks = fill(pool, 8), live_blocks = fill(pool, 8);
  cache.insert(old_tokens, Tables{old_blocks});
  cache.insert(new_tokens, Tables{new_blocks});
  cache.insert(live_tokens, Tables{live_blocks});
  release_all(pool, old_blocks);
  release_all(pool, new_blocks);  // live_blocks stay referenced by a running sequence
  EXPECT_EQ(pool.free_blocks(), 2);

  // Touch "old" so that "new" becomes the least recently used.
  release_all(pool, cache.match(old_tokens, 100).blocks[0]);
  EXPECT_EQ(cache.evict(0, 1), 1);
  PrefixCache::Match m = cache.match(new_tokens, 100);
  EXPECT_EQ(m.tokens, 4);  // its leaf went first
  release_all(pool, m.blocks[0]);
  // Everything unreferenced can go (leaves before their parents), the live blocks cannot.
  EXPECT_EQ(cache.evict(0, 100), 3);
  EXPECT_EQ(cache.match(old_tokens, 100).tokens, 0);
  PrefixCache::Match live = cache.match(live_tokens, 100);
  EXPECT_EQ(live.tokens, 8);
  release_all(pool, live.blocks[0]);
  release_all(pool, live_blocks);
  EXPECT_EQ(cache.evict(0, 100), 2);
  EXPECT_EQ(pool.free_blocks(), 8);
}

// Layers 0 and 2 attend to everything, layer 1 to its last 6 positions (kinds: full, window 6).
model::KvPools windowed_pools(int blocks) {
  const std::vector<int> windows = {0, 6, 0};
  return model::KvPools(model::make_kv_layout(shape(), windows, 1000),
                        std::vector<int>{blocks, blocks});
}

// A sequence of n tokens that kept every full block and, of its window blocks, only those
// from block `first_window` on (the ones its next row still reads, and the cache took
// earlier).
Tables windowed_sequence(model::KvPools& pools, int n, int first_window) {
  Tables t = {fill(pools[0], n), fill(pools[1], n)};
  for (int i = 0; i < first_window; ++i) {
    pools[1].release(t[1][static_cast<std::size_t>(i)]);
    t[1][static_cast<std::size_t>(i)] = model::kNoBlock;
  }
  return t;
}

void release_tables(model::KvPools& pools, const Tables& t) {
  for (int k = 0; k < 2; ++k) release_all(pools[k], t[static_cast<std::size_t>(k)]);
}

TEST(PrefixCache, AWindowedPrefixIsUsableWhileItsWindowIsCached) {
  model::KvPools pools = windowed_pools(16);
  PrefixCache cache(pools);
  auto tokens = iota(16);  // four blocks: a finished sequence offered all of them
  Tables seq = windowed_sequence(pools, 16, 0);
  cache.insert(tokens, seq);
  release_tables(pools, seq);
  EXPECT_EQ(cache.cached_blocks(), 8);

  // A prompt of 16 (+1) tokens reuses 16: the row at 16 reads 11..15, blocks 2 and 3; the
  // window blocks before it are not handed out.
  auto prompt = iota(17);
  PrefixCache::Match m = cache.match(prompt, 16);
  EXPECT_EQ(m.tokens, 16);
  ASSERT_EQ(m.blocks[0].size(), 4u);
  EXPECT_EQ(m.blocks[1], (std::vector<model::BlockId>{model::kNoBlock, model::kNoBlock,
                                                      m.blocks[1][2], m.blocks[1][3]}));
  EXPECT_EQ(pools[1].refcount(m.blocks[1][2]), 2);  // the cache's and the caller's
  EXPECT_EQ(pools[1].refcount(m.blocks[1][3]), 2);
  release_tables(pools, m.blocks);

  // Window blocks go least recently used first, and of one refreshed path the shallower
  // first: blocks 0 and 1 go without harm (a match at 16 reads blocks 2 and 3). Once block
  // 2 goes too, no prefix is usable: down to 9 the next row reads block 2, at 8 and below
  // blocks 0 or 1.
  EXPECT_EQ(cache.evict(1, 2), 2);
  m = cache.match(prompt, 16);
  EXPECT_EQ(m.tokens, 16);  // blocks 2 and 3 still cover its window
  release_tables(pools, m.blocks);
  EXPECT_EQ(cache.evict(1, 1), 1);  // block 2: block 3 is deeper
  m = cache.match(prompt, 16);
  EXPECT_EQ(m.tokens, 0);
  EXPECT_EQ(cache.cached_blocks(), 5);  // the full blocks stay: 4 + window block 3
  release_tables(pools, m.blocks);
}

TEST(PrefixCache, AWindowedMatchFallsBackToTheLastIntactWindow) {
  model::KvPools pools = windowed_pools(16);
  PrefixCache cache(pools);
  // The first sequence offered blocks 0..1 while they were in its window; a later one
  // offered the full path but only window blocks 3..4 (its window had passed 0..2).
  auto tokens = iota(20);
  Tables early = windowed_sequence(pools, 8, 0);
  cache.insert(std::span(tokens).first(8), early);
  release_tables(pools, early);
  Tables late = windowed_sequence(pools, 20, 3);
  cache.insert(tokens, late);
  release_tables(pools, late);
  EXPECT_EQ(cache.cached_blocks(), 5 + 4);
  // At 20 the row reads 15..19: blocks 3, 4: usable.
  PrefixCache::Match m = cache.match(iota(21), 20);
  EXPECT_EQ(m.tokens, 20);
  release_tables(pools, m.blocks);
  // A prompt diverging at 14 matches 14 tokens; the row at 14 reads 9..13 (blocks 2, 3):
  // block 2 is gone, and so down to 9 (reads 4..8: blocks 1, 2); at 8 it reads 3..7
  // (blocks 0, 1): usable.
  auto diverging = iota(21);
  diverging[14] = 99;
  m = cache.match(diverging, 20);
  EXPECT_EQ(m.tokens, 8);
  EXPECT_EQ(m.blocks[0].size(), 2u);
  EXPECT_NE(m.blocks[1][0], model::kNoBlock);
  EXPECT_NE(m.blocks[1][1], model::kNoBlock);
  release_tables(pools, m.blocks);
}

TEST(PrefixCache, AWindowOnlyModelPrunesNodesWithoutBlocks) {
  const std::vector<int> windows = {6, 6};
  model::KvPools pools(model::make_kv_layout(shape(), windows, 1000), std::vector<int>{16});
  ASSERT_EQ(pools.num_kinds(), 1);
  PrefixCache cache(pools);
  auto tokens = iota(16);
  Tables seq = {fill(pools[0], 16)};
  cache.insert(tokens, seq);
  release_all(pools[0], seq[0]);
  PrefixCache::Match m = cache.match(iota(17), 16);
  EXPECT_EQ(m.tokens, 16);
  EXPECT_EQ(m.blocks[0][0], model::kNoBlock);  // before the window of the row at 16
  release_all(pools[0], m.blocks[0]);
  EXPECT_EQ(cache.evict(0, 100), 4);
  EXPECT_EQ(pools[0].free_blocks(), 16);
  EXPECT_EQ(cache.cached_blocks(), 0);
  EXPECT_EQ(cache.match(iota(17), 16).tokens, 0);
}

}  // namespace
}  // namespace lmserve::engine
