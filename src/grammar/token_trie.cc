#include "grammar/token_trie.h"

#include <algorithm>

namespace lmserve::grammar {

TokenTrie::TokenTrie(const std::vector<std::string>& tokens) : tokens_(tokens) {
  std::vector<std::int32_t> order;
  for (std::size_t id = 0; id < tokens_.size(); ++id)
    if (!tokens_[id].empty()) order.push_back(static_cast<std::int32_t>(id));
  std::sort(order.begin(), order.end(),
            [&](std::int32_t a, std::int32_t b) { return bytes(a) < bytes(b); });
  // Breadth-first over sorted ranges: a node is a range of `order` sharing `depth` bytes, so
  // each node's children and tokens are contiguous.
  struct Pending {
    std::size_t begin, end, depth;
  };
  std::vector<Pending> queue{{0, order.size(), 0}};
  nodes_.emplace_back();
  for (std::size_t n = 0; n < queue.size(); ++n) {
    auto [begin, end, depth] = queue[n];
    std::size_t i = begin;
    nodes_[n].tokens_begin = static_cast<std::uint32_t>(token_ids_.size());
    while (i < end && bytes(order[i]).size() == depth) token_ids_.push_back(order[i++]);
    nodes_[n].tokens_end = static_cast<std::uint32_t>(token_ids_.size());
    nodes_[n].edges_begin = static_cast<std::uint32_t>(edges_.size());
    while (i < end) {
      const char b = bytes(order[i])[depth];
      std::size_t j = i;
      while (j < end && bytes(order[j])[depth] == b) ++j;
      edges_.push_back({static_cast<std::uint8_t>(b), static_cast<std::uint32_t>(queue.size())});
      queue.push_back({i, j, depth + 1});
      nodes_.emplace_back();
      i = j;
    }
    nodes_[n].edges_end = static_cast<std::uint32_t>(edges_.size());
  }
}

}  // namespace lmserve::grammar
