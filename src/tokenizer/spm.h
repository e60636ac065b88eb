// SentencePiece BPE as llama.cpp runs GGUF "llama" vocabularies: starting from UTF-8
// characters, repeatedly merge the adjacent pair whose concatenation is the vocab entry with
// the highest score; characters left without a piece fall back to <0xXX> byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/model.h"

namespace lmserve::tokenizer::detail {

class SpmModel final : public Model {
 public:
  // Token i has text pieces[i] and score scores[i] (same length). Pieces must be distinct
  // (the caller reports duplicates with the file's name). `unk_id` stands for a character
  // that has neither a piece nor byte tokens, if given.
  SpmModel(std::vector<std::string> pieces, std::vector<float> scores,
           std::optional<std::int32_t> unk_id);

  // `word` is already escaped (spaces as U+2581) and must be valid UTF-8.
  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const override;

  std::optional<std::int32_t> token_to_id(std::string_view token) const override;
  const std::string* id_to_token(std::int32_t id) const override;
  std::int32_t id_limit() const override { return static_cast<std::int32_t>(pieces_.size()); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, std::int32_t, Hash, std::equal_to<>> ids_;
  std::array<std::int32_t, 256> byte_ids_{};  // id of "<0xXX>", -1 when absent
  std::optional<std::int32_t> unk_id_;
};

}  // namespace lmserve::tokenizer::detail
