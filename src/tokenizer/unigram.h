// The Unigram model of tokenizer.json (SentencePiece unigram, e.g. T5, ALBERT, XLNet):
// the segmentation of a word that maximises the sum of piece log-probabilities (Viterbi),
// with unknown characters fused into one unk or spelled as <0xXX> byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hash_map.h"
#include "tokenizer/model.h"
#include "tokenizer/vocabulary.h"

namespace lmserve::tokenizer::detail {

class UnigramModel final : public Model {
 public:
  // `model` is tokenizer.json's "model" object with "type": "Unigram". Throws FileError.
  explicit UnigramModel(const nlohmann::json& model);

  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const override;
  std::optional<std::int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(std::int32_t id) const override { return vocab_.token(id); }
  std::int32_t id_limit() const override { return vocab_.id_limit(); }

 private:
  // A byte trie over the pieces: child of (node, byte) and the piece ending at each node.
  std::int32_t child(std::int32_t node, unsigned char byte) const {
    const std::int32_t* next = trie_edges_.find((static_cast<std::uint64_t>(node) << 8) | byte);
    return next ? *next : -1;
  }
  // Ids of a run of characters the pieces do not cover: bytes, or the unk token.
  void emit_unknown(std::string_view text, std::vector<std::int32_t>& out) const;

  Vocabulary vocab_;
  std::vector<double> scores_;
  U64Map<std::int32_t> trie_edges_;
  std::vector<std::int32_t> trie_piece_;  // id of the piece ending at a node, or -1
  double unk_score_ = 0;
  std::optional<std::int32_t> unk_id_;
  bool byte_fallback_ = false;
  std::array<std::int32_t, 256> byte_ids_{};
};

}  // namespace lmserve::tokenizer::detail
