// Every token's bytes in one trie, built once per tokenizer, so one walk against the
// grammar state decides all tokens that share a prefix together.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lmserve::grammar {

class TokenTrie {
 public:
  // tokens[id] = the id's bytes; an empty entry (special tokens, unused ids) is never allowed.
  explicit TokenTrie(const std::vector<std::string>& tokens);

  struct Edge {
    std::uint8_t byte;
    std::uint32_t node;
  };
  struct Node {
    std::uint32_t edges_begin = 0, edges_end = 0;    // into edges(), sorted by byte
    std::uint32_t tokens_begin = 0, tokens_end = 0;  // ids whose bytes end here
  };

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Edge>& edges() const { return edges_; }
  const std::vector<std::int32_t>& token_ids() const { return token_ids_; }
  const std::string& bytes(std::int32_t id) const { return tokens_[static_cast<std::size_t>(id)]; }
  int vocab_size() const { return static_cast<int>(tokens_.size()); }

 private:
  std::vector<std::string> tokens_;
  std::vector<Node> nodes_;  // nodes_[0] is the root (the empty prefix)
  std::vector<Edge> edges_;
  std::vector<std::int32_t> token_ids_;
};

}  // namespace lmserve::grammar
