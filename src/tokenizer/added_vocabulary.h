// Added tokens (tokenizer.json "added_tokens"): found in the text before the model runs,
// longest match first, honouring special / lstrip / rstrip / single_word / normalized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::tokenizer::detail {

struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A piece of the input: an added token (id >= 0) or a text range to run through the model.
struct Segment {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::int32_t id = -1;
};

class AddedVocabulary {
 public:
  // `match_forms[i]` is the text that tokens[i] is searched as: its content, or for
  // normalized tokens the normalizer's output on it.
  AddedVocabulary(std::vector<AddedToken> tokens, const std::vector<std::string>& match_forms);
  AddedVocabulary() = default;

  // Splits `text` around the added tokens of one kind: the `normalized` ones (searched in
  // normalized text) or the others (searched in raw text). With parse_special false,
  // special tokens are left in the text.
  std::vector<Segment> split(std::string_view text, bool normalized, bool parse_special) const;

  bool has_normalized() const { return !tries_[1].nodes.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;  // sorted by byte
    int token = -1;                                       // index into tokens_
  };
  struct Trie {
    std::vector<Node> nodes;
    bool first_byte[256] = {};
  };
  void insert(Trie& trie, std::string_view form, int token);

  std::vector<AddedToken> tokens_;
  Trie tries_[2];  // [0] raw-text tokens, [1] normalized-text tokens
};

}  // namespace lmserve::tokenizer::detail
