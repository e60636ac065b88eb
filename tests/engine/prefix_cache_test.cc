// The radix prefix cache over a small KV pool: token-exact matches, partial blocks,
// reference counting and LRU eviction of unreferenced leaves only.
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

void release_all(model::KvPool& pool, const std::vector<model::BlockId>& blocks) {
  for (auto b : blocks) pool.release(b);
}

TEST(PrefixCache, MatchesFullAndPartialBlocksTokenExact) {
  model::KvPool pool(shape(), 16);
  PrefixCache cache(pool);
  auto tokens = iota(10);  // two full blocks and a partial one of 2 tokens
  auto blocks = fill(pool, 10);
  cache.insert(tokens, blocks);
  release_all(pool, blocks);  // the sequence ends; the cache keeps them
  EXPECT_EQ(cache.cached_blocks(), 3);
  EXPECT_EQ(pool.free_blocks(), 13);

  auto query = iota(12);
  query[9] = 99;  // diverges inside the partial block
  PrefixCache::Match m = cache.match(query, 100);
  EXPECT_EQ(m.tokens, 9);
  ASSERT_EQ(m.blocks.size(), 3u);
  EXPECT_EQ(m.blocks, blocks);
  for (auto b : m.blocks) EXPECT_EQ(pool.refcount(b), 2);  // the cache's and the caller's
  release_all(pool, m.blocks);

  // The cap stops inside a full block: that block is returned as a partial one.
  m = cache.match(iota(10), 6);
  EXPECT_EQ(m.tokens, 6);
  EXPECT_EQ(m.blocks, (std::vector<model::BlockId>{blocks[0], blocks[1]}));
  release_all(pool, m.blocks);

  // Nothing in common.
  m = cache.match(iota(8, 50), 100);
  EXPECT_EQ(m.tokens, 0);
  EXPECT_TRUE(m.blocks.empty());
}

TEST(PrefixCache, SharedPrefixesBranch) {
  model::KvPool pool(shape(), 16);
  PrefixCache cache(pool);
  auto a = iota(8);
  auto b = iota(8);
  b[5] = 77;  // same first block, different second
  auto ba = fill(pool, 8), bb = fill(pool, 8);
  cache.insert(a, ba);
  cache.insert(b, bb);  // its first block duplicates a cached one: not added
  EXPECT_EQ(cache.cached_blocks(), 3);
  PrefixCache::Match m = cache.match(b, 100);
  EXPECT_EQ(m.tokens, 8);
  EXPECT_EQ(m.blocks, (std::vector<model::BlockId>{ba[0], bb[1]}));
  release_all(pool, m.blocks);
  release_all(pool, ba);
  release_all(pool, bb);
  EXPECT_EQ(pool.free_blocks(), 16 - 3);  // bb[0] was never cached, so it is free again
}

TEST(PrefixCache, EvictsLeastRecentlyUsedUnreferencedLeavesOnly) {
  model::KvPool pool(shape(), 8);
  PrefixCache cache(pool);
  auto old_tokens = iota(8, 0), new_tokens = iota(8, 100), live_tokens = iota(8, 200);
  auto old_blocks = fill(pool, 8), new_blocks = fill(pool, 8), live_blocks = fill(pool, 8);
  cache.insert(old_tokens, old_blocks);
  cache.insert(new_tokens, new_blocks);
  cache.insert(live_tokens, live_blocks);
  release_all(pool, old_blocks);
  release_all(pool, new_blocks);  // live_blocks stay referenced by a running sequence
  EXPECT_EQ(pool.free_blocks(), 2);

  // Touch "old" so that "new" becomes the least recently used.
  release_all(pool, cache.match(old_tokens, 100).blocks);
  EXPECT_EQ(cache.evict(1), 1);
  PrefixCache::Match m = cache.match(new_tokens, 100);
  EXPECT_EQ(m.tokens, 4);  // its leaf went first
  release_all(pool, m.blocks);
  // Everything unreferenced can go (leaves before their parents), the live blocks cannot.
  EXPECT_EQ(cache.evict(100), 3);
  EXPECT_EQ(cache.match(old_tokens, 100).tokens, 0);
  PrefixCache::Match live = cache.match(live_tokens, 100);
  EXPECT_EQ(live.tokens, 8);
  release_all(pool, live.blocks);
  release_all(pool, live_blocks);
  EXPECT_EQ(cache.evict(100), 2);
  EXPECT_EQ(pool.free_blocks(), 8);
}

}  // namespace
}  // namespace lmserve::engine
