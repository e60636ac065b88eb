#include "engine/prefix_cache.h"

#include <algorithm>

namespace lmserve::engine {

struct PrefixCache::Node {
  std::vector<std::int32_t> tokens;  // block_size of them (empty at the root)
  model::BlockId block = -1;
  Node* parent = nullptr;
  std::unordered_map<std::vector<std::int32_t>, std::unique_ptr<Node>, BlockHash> children;
  std::uint64_t last_use = 0;
};

std::size_t PrefixCache::BlockHash::operator()(const std::vector<std::int32_t>& tokens) const {
  std::size_t h = 0xcbf29ce484222325ull;  // FNV-1a over the ids
  for (auto t : tokens) h = (h ^ static_cast<std::uint32_t>(t)) * 0x100000001b3ull;
  return h;
}

PrefixCache::PrefixCache(model::KvPool& pool) : pool_(pool), root_(std::make_unique<Node>()) {}

PrefixCache::~PrefixCache() { clear(); }

void PrefixCache::clear() {
  while (!leaves_.empty()) erase(leaves_.begin()->second);
}

void PrefixCache::touch(Node* node) {
  // Refresh the whole path: an ancestor is never evicted before its descendants anyway, but
  // its own clock orders it once they are gone.
  const std::uint64_t now = ++clock_;
  for (; node != root_.get(); node = node->parent) {
    if (node->children.empty()) {
      leaves_.erase({node->last_use, node});
      leaves_.insert({now, node});
    }
    node->last_use = now;
  }
}

PrefixCache::Match PrefixCache::match(std::span<const std::int32_t> tokens, int max_tokens) {
  const std::size_t block_size = static_cast<std::size_t>(pool_.shape().block_size);
  const std::size_t limit =
      std::min(tokens.size(), static_cast<std::size_t>(std::max(0, max_tokens)));
  Match m;
  Node* node = root_.get();
  std::vector<std::int32_t> key(block_size);
  std::size_t pos = 0;
  while (pos + block_size <= limit) {
    std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(pos), block_size, key.begin());
    auto it = node->children.find(key);
    if (it == node->children.end()) break;
    node = it->second.get();
    m.blocks.push_back(node->block);
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
    m.blocks.push_back(partial->block);
    pos += best;
    touch(partial);
  } else if (node != root_.get()) {
    touch(node);
  }
  for (auto b : m.blocks) pool_.retain(b);
  m.tokens = static_cast<int>(pos);
  return m;
}

void PrefixCache::insert(std::span<const std::int32_t> tokens,
                         std::span<const model::BlockId> blocks) {
  const std::size_t block_size = static_cast<std::size_t>(pool_.shape().block_size);
  Node* node = root_.get();
  for (std::size_t i = 0; i < blocks.size() && i * block_size < tokens.size(); ++i) {
    const std::size_t end = std::min(tokens.size(), (i + 1) * block_size);
    std::vector<std::int32_t> key(tokens.begin() + static_cast<std::ptrdiff_t>(i * block_size),
                                  tokens.begin() + static_cast<std::ptrdiff_t>(end));
    auto it = node->children.find(key);
    if (it == node->children.end()) {
      if (node->children.empty() && node != root_.get()) leaves_.erase({node->last_use, node});
      auto child = std::make_unique<Node>();
      child->tokens = key;
      child->block = blocks[i];
      child->parent = node;
      pool_.retain(blocks[i]);
      ++nodes_;
      Node* raw = child.get();
      node->children.emplace(std::move(key), std::move(child));
      raw->last_use = clock_;
      leaves_.insert({raw->last_use, raw});
      node = raw;
    } else {
      node = it->second.get();
    }
  }
  if (node != root_.get()) touch(node);
}

void PrefixCache::erase(Node* node) {
  leaves_.erase({node->last_use, node});
  pool_.release(node->block);
  --nodes_;
  Node* parent = node->parent;
  parent->children.erase(parent->children.find(node->tokens));  // destroys node
  if (parent != root_.get() && parent->children.empty()) {
    leaves_.insert({parent->last_use, parent});
  }
}

int PrefixCache::evict(int n) {
  int freed = 0;
  auto it = leaves_.begin();
  while (freed < n && it != leaves_.end()) {
    Node* node = it->second;
    ++it;
    if (pool_.refcount(node->block) != 1) continue;  // a live sequence still reads it
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
