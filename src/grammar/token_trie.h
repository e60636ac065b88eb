// Every token's bytes in one trie, built once per tokenizer, so one walk against the
// grammar state decides all tokens that share a prefix together. Nodes are stored in
// preorder with the end of their subtree, so a walk is one pass over an array that skips a
// dead prefix's whole subtree in one step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lmserve::grammar {

class TokenTrie {
 public:
  // tokens[id] = the id's bytes; an empty entry (special tokens, unused ids) is never allowed.
  explicit TokenTrie(const std::vector<std::string>& tokens);

  struct Node {
    std::uint32_t end = 0;           // one past the last node of this subtree
    std::uint32_t tokens_begin = 0;  // ids whose bytes end here: token_ids()[tokens_begin,
                                     // next node's tokens_begin)
    std::uint16_t depth = 0;         // bytes from the root
    std::uint8_t byte = 0;           // the edge into this node
  };

  // nodes()[0] is the root (the empty prefix); a last sentinel node closes the token ranges.
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<std::int32_t>& token_ids() const { return token_ids_; }
  const std::string& bytes(std::int32_t id) const { return tokens_[static_cast<std::size_t>(id)]; }
  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  int max_depth() const { return max_depth_; }

 private:
  std::vector<std::string> tokens_;
  std::vector<Node> nodes_;
  std::vector<std::int32_t> token_ids_;
  int max_depth_ = 0;
};

}  // namespace lmserve::grammar
