#include "grammar/token_trie.h"

#include <algorithm>
#include <stdexcept>

namespace lmserve::grammar {

TokenTrie::TokenTrie(const std::vector<std::string>& tokens) : tokens_(tokens) {
  std::vector<std::int32_t> order;
  for (std::size_t id = 0; id < tokens_.size(); ++id) {
    if (tokens_[id].size() > 0xFFFF) throw std::invalid_argument("a token is over 65535 bytes");
    if (!tokens_[id].empty()) order.push_back(static_cast<std::int32_t>(id));
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t a, std::int32_t b) { return bytes(a) < bytes(b); });
  // Sorted, a prefix comes before its extensions: each token extends the current path
  // after their common prefix, so nodes come out in preorder.
  nodes_.emplace_back();
  std::vector<std::uint32_t> path{0};  // path[d] = the node at depth d
  std::string_view previous;
  for (std::int32_t id : order) {
    const std::string& t = bytes(id);
    const auto common = static_cast<std::size_t>(
        std::mismatch(t.begin(), t.end(), previous.begin(), previous.end()).first - t.begin());
    while (path.size() > common + 1) {
      nodes_[path.back()].end = static_cast<std::uint32_t>(nodes_.size());
      path.pop_back();
    }
    for (std::size_t d = common; d < t.size(); ++d) {
      path.push_back(static_cast<std::uint32_t>(nodes_.size()));
      nodes_.push_back({0, static_cast<std::uint32_t>(token_ids_.size()),
                        static_cast<std::uint16_t>(d + 1), static_cast<std::uint8_t>(t[d])});
    }
    token_ids_.push_back(id);  // into the last node made: its tokens stay contiguous
    max_depth_ = std::max(max_depth_, static_cast<int>(t.size()));
    previous = t;
  }
  for (std::uint32_t n : path) nodes_[n].end = static_cast<std::uint32_t>(nodes_.size());
  nodes_.push_back({0, static_cast<std::uint32_t>(token_ids_.size()), 0, 0});
}

}  // namespace lmserve::grammar
