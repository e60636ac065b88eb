#include "engine/prefix_cache.h"

#include <algorithm>

namespace lmserve::engine {

struct PrefixCache::Node {
  std::vector<std::int32_t> tokens;    // block_size of them (empty at the root)
  std::vector<model::BlockId> blocks;  // per kind; kNoBlock where not cached
  Node* parent = nullptr;
  std::unordered_map<std::vector<std::int32_t>, std::unique_ptr<Node>, BlockHash> children;
  std::uint64_t last_use = 0;
};

std::size_t PrefixCache::BlockHash::operator()(const std::vector<std::int32_t>& tokens) const {
  std::size_t h = 0xcbf29ce484222325ull;  // FNV-1a over the ids
  for (auto t : tokens) h = (h ^ static_cast<std::uint32_t>(t)) * 0x100000001b3ull;
  return h;
}

PrefixCache::PrefixCache(model::KvPools& pools)
    : pools_(pools),
      full_kind_(pools.layout().kinds.front().window == 0 ? 0 : -1),
      root_(std::make_unique<Node>()),
      holders_(static_cast<std::size_t>(pools.num_kinds())) {}

PrefixCache::~PrefixCache() { clear(); }

void PrefixCache::clear() {
  while (!leaves_.empty()) erase(leaves_.begin()->second);
}

bool PrefixCache::is_window_kind(int kind) const { return kind != full_kind_; }

void PrefixCache::restamp(Node* node, std::uint64_t now) {
  if (node->children.empty()) {
    leaves_.erase({node->last_use, node});
    leaves_.insert({now, node});
  }
  for (int k = 0; k < pools_.num_kinds(); ++k) {
    if (!is_window_kind(k) || node->blocks[static_cast<std::size_t>(k)] == model::kNoBlock)
      continue;
    Lru& lru = holders_[static_cast<std::size_t>(k)];
    lru.erase({node->last_use, node});
    lru.insert({now, node});
  }
  node->last_use = now;
}

void PrefixCache::touch(Node* node) {
  // Refresh the whole path: an ancestor is never evicted before its descendants anyway, but
  // its own clock orders it once they are gone. Window blocks of one path go shallow first:
  // the path's end is what a longer match needs.
  int depth = 0;
  for (Node* n = node; n != root_.get(); n = n->parent) ++depth;
  clock_ += static_cast<std::uint64_t>(depth);
  std::uint64_t now = clock_;
  for (; node != root_.get(); node = node->parent) restamp(node, now--);
}

void PrefixCache::take_block(Node* node, int kind, model::BlockId block) {
  pools_[kind].retain(block);
  node->blocks[static_cast<std::size_t>(kind)] = block;
  ++blocks_held_;
  if (is_window_kind(kind)) holders_[static_cast<std::size_t>(kind)].insert({node->last_use, node});
}

void PrefixCache::drop_block(Node* node, int kind) {
  model::BlockId& block = node->blocks[static_cast<std::size_t>(kind)];
  if (is_window_kind(kind)) holders_[static_cast<std::size_t>(kind)].erase({node->last_use, node});
  pools_[kind].release(block);
  block = model::kNoBlock;
  --blocks_held_;
}

PrefixCache::Match PrefixCache::match(std::span<const std::int32_t> tokens, int max_tokens) {
  const std::size_t block_size = static_cast<std::size_t>(pools_.layout().block_size());
  const std::size_t limit =
      std::min(tokens.size(), static_cast<std::size_t>(std::max(0, max_tokens)));
  std::vector<Node*> path;  // path[i] holds tokens [i * B, (i + 1) * B)
  Node* node = root_.get();
  std::vector<std::int32_t> key(block_size);
  std::size_t pos = 0;
  while (pos + block_size <= limit) {
    std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(pos), block_size, key.begin());
    auto it = node->children.find(key);
    if (it == node->children.end()) break;
    node = it->second.get();
    path.push_back(node);
    pos += block_size;
  }
  // A partial block: the child sharing the longest run of the next tokens.
  Node* partial = nullptr;
  std::size_t best = 0;
  const auto rest = tokens.subspan(pos, limit - pos);
  for (auto& [child_tokens, child] : node->children) {
    const std::size_t n = static_cast<std::size_t>(
        std::mismatch(rest.begin(), rest.end(), child_tokens.begin(), child_tokens.end()).first -
        rest.begin());
    if (n > best) best = n, partial = child.get();
  }
  if (partial != nullptr) {
    path.push_back(partial);
    pos += best;
  }

  // The reuse rule: shorten the match until every kind has the blocks its next row reads.
  const auto& kinds = pools_.layout().kinds;
  std::vector<std::vector<int>> missing(kinds.size());  // [k][i]: path[0, i) lacking kind k
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    missing[k].assign(path.size() + 1, 0);
    for (std::size_t i = 0; i < path.size(); ++i)
      missing[k][i + 1] = missing[k][i] + (path[i]->blocks[k] == model::kNoBlock ? 1 : 0);
  }
  auto usable = [&](int m) {
    const auto last = static_cast<std::size_t>((m - 1) / static_cast<int>(block_size));
    for (std::size_t k = 0; k < kinds.size(); ++k) {
      const auto first = static_cast<std::size_t>(kinds[k].first_visible_block(m));
      if (first <= last && missing[k][last + 1] != missing[k][first]) return false;
    }
    return true;
  };
  int m = static_cast<int>(pos);
  while (m > 0 && !usable(m)) --m;

  Match out;
  out.tokens = m;
  const std::size_t n = (static_cast<std::size_t>(m) + block_size - 1) / block_size;
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    auto& table = out.blocks.emplace_back(n, model::kNoBlock);
    for (auto i = static_cast<std::size_t>(kinds[k].first_visible_block(m)); i < n; ++i) {
      table[i] = path[i]->blocks[k];
      pools_[static_cast<int>(k)].retain(table[i]);
    }
  }
  if (n > 0) touch(path[n - 1]);
  return out;
}

void PrefixCache::insert(std::span<const std::int32_t> tokens,
                         std::span<const std::vector<model::BlockId>> blocks) {
  const std::size_t block_size = static_cast<std::size_t>(pools_.layout().block_size());
  const int kinds = pools_.num_kinds();
  auto given = [&](int k, std::size_t i) {
    const auto& table = blocks[static_cast<std::size_t>(k)];
    return i < table.size() ? table[i] : model::kNoBlock;
  };
  Node* node = root_.get();
  for (std::size_t i = 0; i * block_size < tokens.size(); ++i) {
    const std::size_t end = std::min(tokens.size(), (i + 1) * block_size);
    std::vector<std::int32_t> key(tokens.begin() + static_cast<std::ptrdiff_t>(i * block_size),
                                  tokens.begin() + static_cast<std::ptrdiff_t>(end));
    auto it = node->children.find(key);
    Node* child = nullptr;
    if (it == node->children.end()) {
      if (node->children.empty() && node != root_.get()) leaves_.erase({node->last_use, node});
      auto fresh = std::make_unique<Node>();
      fresh->tokens = key;
      fresh->blocks.assign(static_cast<std::size_t>(kinds), model::kNoBlock);
      fresh->parent = node;
      fresh->last_use = clock_;
      child = fresh.get();
      node->children.emplace(std::move(key), std::move(fresh));
      leaves_.insert({child->last_use, child});
    } else {
      child = it->second.get();
    }
    // A new node takes every block given; a cached one the window blocks it had lost.
    for (int k = 0; k < kinds; ++k) {
      const model::BlockId block = given(k, i);
      if (block != model::kNoBlock && child->blocks[static_cast<std::size_t>(k)] == model::kNoBlock)
        take_block(child, k, block);
    }
    node = child;
  }
  if (node != root_.get()) touch(node);
  // A window-only model may have walked through nodes it could give nothing.
  prune(node);
}

void PrefixCache::erase(Node* node) {
  leaves_.erase({node->last_use, node});
  for (int k = 0; k < pools_.num_kinds(); ++k) {
    if (node->blocks[static_cast<std::size_t>(k)] != model::kNoBlock) drop_block(node, k);
  }
  Node* parent = node->parent;
  parent->children.erase(parent->children.find(node->tokens));  // destroys node
  if (parent != root_.get() && parent->children.empty()) {
    leaves_.insert({parent->last_use, parent});
  }
}

void PrefixCache::prune(Node* node) {
  while (node != root_.get() && node->children.empty() &&
         std::all_of(node->blocks.begin(), node->blocks.end(),
                     [](model::BlockId b) { return b == model::kNoBlock; })) {
    Node* parent = node->parent;
    erase(node);
    node = parent;
  }
}

int PrefixCache::evict(int kind, int n) {
  if (!is_window_kind(kind)) return evict_leaves(n);
  int freed = 0;
  const Lru& lru = holders_[static_cast<std::size_t>(kind)];
  auto it = lru.begin();
  while (freed < n && it != lru.end()) {
    Node* node = it->second;
    ++it;
    if (pools_[kind].refcount(node->blocks[static_cast<std::size_t>(kind)]) != 1) continue;
    drop_block(node, kind);
    ++freed;
    prune(node);  // erases only nodes without blocks, none of them in `lru`
  }
  return freed;
}

int PrefixCache::evictable(int window_kind) const {
  const Lru& lru = holders_[static_cast<std::size_t>(window_kind)];
  const model::KvPool& pool = pools_[window_kind];
  return static_cast<int>(std::count_if(lru.begin(), lru.end(), [&](const auto& entry) {
    return pool.refcount(entry.second->blocks[static_cast<std::size_t>(window_kind)]) == 1;
  }));
}

int PrefixCache::evict_leaves(int n) {
  int freed = 0;
  auto it = leaves_.begin();
  while (freed < n && it != leaves_.end()) {
    Node* node = it->second;
    ++it;
    // A live sequence still reads it.
    if (pools_[full_kind_].refcount(node->blocks[static_cast<std::size_t>(full_kind_)]) != 1)
      continue;
    Node* parent = node->parent;
    const bool parent_becomes_leaf = parent != root_.get() && parent->children.size() == 1;
    erase(node);
    ++freed;
    // The parent may now be the oldest leaf: restart from the front to keep LRU order.
    if (parent_becomes_leaf) it = leaves_.begin();
  }
  return freed;
}

}  // namespace lmserve::engine
