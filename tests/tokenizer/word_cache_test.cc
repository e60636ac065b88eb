// The per-thread BPE word cache holds a fixed amount of memory, committed on its first insert,
// whatever it is fed afterwards; and what it returns is what was inserted last for a word.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/hash_map.h"

namespace lmserve::tokenizer::detail {
namespace {

using Ids = std::vector<std::int32_t>;

// Inserts `count` distinct words of `word_bytes` bytes with `id_count` ids each, then checks
// that the last one is found with its ids and that the cache's memory did not move.
void churn(WordCache& cache, int count, std::size_t word_bytes, std::size_t id_count) {
  const std::size_t memory = cache.memory_bytes();
  std::string word;
  Ids ids;
  for (int i = 0; i < count; ++i) {
    word = std::to_string(i);
    word.resize(word_bytes, 'x');
    ids.assign(id_count, i);
    cache.insert(word, hash_bytes(word), ids);
  }
  Ids found;
  ASSERT_TRUE(cache.find(word, hash_bytes(word), found)) << word_bytes << " bytes";
  EXPECT_EQ(found, ids);
  EXPECT_EQ(cache.memory_bytes(), memory) << count << " words of " << word_bytes << " bytes";
}

TEST(WordCache, MemoryIsFixedFromTheFirstInsert) {
  WordCache cache;
  EXPECT_EQ(cache.memory_bytes(), 0u);
  cache.insert("a", hash_bytes("a"), Ids{7});
  const std::size_t fixed = cache.memory_bytes();
  EXPECT_GE(fixed, WordCache::kKeyBytes + WordCache::kMaxIds * sizeof(std::int32_t));
  // Past each bound in turn: the slot count (short words), the key bytes (long words, as a
  // tokenizer without a pre-tokenizer caches whole prompts) and the ids (many per word).
  churn(cache, 3 * static_cast<int>(WordCache::kSlots), 8, 1);
  churn(cache, 3 * static_cast<int>(WordCache::kKeyBytes / 1000), 1000, 1);
  churn(cache, 3 * static_cast<int>(WordCache::kMaxIds / 1000), 10, 1000);
  EXPECT_EQ(cache.memory_bytes(), fixed);
}

TEST(WordCache, ClearedEntriesAreGoneAndOversizedWordsAreNotCached) {
  WordCache cache;
  cache.insert("hello", hash_bytes("hello"), Ids{1, 2});
  Ids found;
  ASSERT_TRUE(cache.find("hello", hash_bytes("hello"), found));
  EXPECT_EQ(found, (Ids{1, 2}));
  cache.clear();
  found.clear();
  EXPECT_FALSE(cache.find("hello", hash_bytes("hello"), found));

  const std::size_t memory = cache.memory_bytes();
  const std::string huge(WordCache::kKeyBytes + 1, 'y');
  cache.insert(huge, hash_bytes(huge), Ids{3});
  EXPECT_FALSE(cache.find(huge, hash_bytes(huge), found));
  EXPECT_EQ(cache.memory_bytes(), memory);
}

}  // namespace
}  // namespace lmserve::tokenizer::detail
