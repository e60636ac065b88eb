// The prefix cache: a radix tree over token ids whose nodes own full KV blocks, so a prompt
// that starts like an earlier sequence (same system prompt, the previous chat turn) reuses
// its keys and values instead of recomputing them.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/kv_pool.h"

namespace lmserve::engine {

// Each node is one block of block_size tokens (a finished sequence's last block may hold
// fewer: a partial leaf); a path from the root spells a prefix.
// The cache holds one pool reference per node; sequences hold their own references to the
// blocks they use, so a block is free only when neither needs it. Unreferenced leaves are
// evicted least recently used first, on demand, when the pool runs out of free blocks.
// Engine-thread only.
class PrefixCache {
 public:
  explicit PrefixCache(model::KvPool& pool);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  struct Match {
    // Blocks holding the first `tokens` tokens, one reference each retained for the caller.
    // When tokens % block_size != 0 the last block is only partly valid and still shared:
    // the caller must copy it before writing into it.
    std::vector<model::BlockId> blocks;
    int tokens = 0;
  };
  // The longest cached prefix of `tokens`, at most max_tokens long, token-exact.
  Match match(std::span<const std::int32_t> tokens, int max_tokens);

  // Offers a sequence's blocks: blocks[i] holds tokens [i * B, (i + 1) * B). Prefixes not
  // cached yet become nodes (retaining their blocks); cached ones are refreshed. A last
  // block with fewer than B tokens becomes a partial leaf: it can be matched (and copied)
  // but never extended, so its owner must never write into it again.
  void insert(std::span<const std::int32_t> tokens, std::span<const model::BlockId> blocks);

  // Releases up to n blocks that only the cache references, least recently used leaves
  // first. Returns how many it freed.
  int evict(int n);

  int cached_blocks() const { return static_cast<int>(nodes_); }
  void clear();  // releases every node

 private:
  struct Node;
  struct BlockHash {
    std::size_t operator()(const std::vector<std::int32_t>& tokens) const;
  };
  void touch(Node* node);
  void erase(Node* node);

  model::KvPool& pool_;
  std::unique_ptr<Node> root_;
  std::set<std::pair<std::uint64_t, Node*>> leaves_;  // by last use: the eviction order
  std::uint64_t clock_ = 0;
  std::size_t nodes_ = 0;
};

}  // namespace lmserve::engine
