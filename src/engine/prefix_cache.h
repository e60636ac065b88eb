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
// fewer: a partial leaf); a path from the root spells a prefix. A node holds one block per
// cache kind: the full-attention block always (when the model has full-attention layers),
// a window kind's block only while it is cached (window blocks are dropped on their own).
// The cache holds one pool reference per block it holds; sequences hold their own references
// to the blocks they use, so a block is free only when neither needs it. Unreferenced blocks
// are evicted least recently used first, on demand, when a pool runs out of free blocks:
// full-attention blocks leaf first (a node without its full block is useless to its
// descendants), window blocks from any node.
//
// Reuse rule: a cached prefix of length m is usable only if the full-attention blocks of
// positions [0, m) and, for every window kind of window w, the blocks covering positions
// [max(0, m + 1 - w), m) (what the row at position m attends to) are all cached. match()
// returns the longest token-exact prefix for which that holds, which may be shorter than the
// longest token-exact prefix (down to 0) when window blocks were dropped.
// Engine-thread only.
class PrefixCache {
 public:
  explicit PrefixCache(model::KvPools& pools);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  struct Match {
    // Per kind, the block table of the first `tokens` tokens (ceil(tokens / block_size)
    // entries), one reference retained for the caller on each block in it; a window kind's
    // entries before first_visible_block(tokens) are model::kNoBlock. When
    // tokens % block_size != 0 the last blocks are only partly valid and still shared: the
    // caller must copy them before writing into them.
    std::vector<std::vector<model::BlockId>> blocks;
    int tokens = 0;
  };
  // The longest usable cached prefix of `tokens`, at most max_tokens long, token-exact.
  Match match(std::span<const std::int32_t> tokens, int max_tokens);

  // Offers a sequence's blocks: blocks[k][i] holds tokens [i * B, (i + 1) * B) of kind k
  // (kNoBlock where the sequence no longer has it). Prefixes not cached yet become nodes
  // (retaining the blocks given); cached ones are refreshed and take the window blocks they
  // lack. A last block with fewer than B tokens becomes a partial leaf: it can be matched
  // (and copied) but never extended, so its owner must never write into it again.
  void insert(std::span<const std::int32_t> tokens,
              std::span<const std::vector<model::BlockId>> blocks);

  // Releases up to n blocks of `kind` that only the cache references, least recently used
  // first. Returns how many it freed.
  int evict(int kind, int n);
  // Blocks of a window kind that only the cache references: every one can be evicted.
  int evictable(int window_kind) const;

  int cached_blocks() const { return static_cast<int>(blocks_held_); }  // every kind's
  void clear();                                                         // releases every node

 private:
  struct Node;
  struct BlockHash {
    std::size_t operator()(const std::vector<std::int32_t>& tokens) const;
  };
  using Lru = std::set<std::pair<std::uint64_t, Node*>>;
  void touch(Node* node);
  // Moves `node` to time `now` in every eviction order that lists it.
  void restamp(Node* node, std::uint64_t now);
  void take_block(Node* node, int kind, model::BlockId block);
  void drop_block(Node* node, int kind);
  void erase(Node* node);
  // Erases `node` and its ancestors while they are leaves holding no block.
  void prune(Node* node);
  int evict_leaves(int n);
  bool is_window_kind(int kind) const;

  model::KvPools& pools_;
  int full_kind_;  // the full-attention kind, -1 when every layer is windowed
  std::unique_ptr<Node> root_;
  Lru leaves_;                // by last use: the order full-attention blocks are evicted in
  std::vector<Lru> holders_;  // per window kind: nodes holding its block, by last use
  std::uint64_t clock_ = 0;
  std::size_t blocks_held_ = 0;
};

}  // namespace lmserve::engine
