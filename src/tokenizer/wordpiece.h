// The WordPiece model of tokenizer.json (BERT & co.): greedy longest-match-first pieces,
// continuations spelled with a prefix ("##"); a word with no full cover, or longer than
// max_input_chars_per_word, becomes the unk token.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/model.h"
#include "tokenizer/vocabulary.h"

namespace lmserve::tokenizer::detail {

class WordPieceModel final : public Model {
 public:
  // `model` is tokenizer.json's "model" object with "type": "WordPiece". Throws FileError.
  explicit WordPieceModel(const nlohmann::json& model);

  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const override;
  std::optional<std::int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(std::int32_t id) const override { return vocab_.token(id); }
  std::int32_t id_limit() const override { return vocab_.id_limit(); }

 private:
  Vocabulary vocab_;
  std::optional<std::int32_t> unk_id_;
  std::string prefix_;
  std::size_t max_chars_ = 100;
  std::size_t longest_piece_ = 0;  // bytes, prefix excluded: no longer match can exist
};

}  // namespace lmserve::tokenizer::detail
