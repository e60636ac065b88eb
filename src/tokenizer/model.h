// The tokenizer "model": turns one pre-token ("word") into ids. BPE, Unigram, WordPiece
// (tokenizer.json) and SentencePiece BPE (GGUF vocabularies) implement it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::tokenizer::detail {

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-token to `out`. Thread-safe.
  virtual void tokenize(std::string_view word, std::vector<std::int32_t>& out) const = 0;
  virtual std::optional<std::int32_t> token_to_id(std::string_view token) const = 0;
  // nullptr for ids the vocabulary does not have.
  virtual const std::string* id_to_token(std::int32_t id) const = 0;
  // One past the largest id in the vocabulary.
  virtual std::int32_t id_limit() const = 0;
};

}  // namespace lmserve::tokenizer::detail
