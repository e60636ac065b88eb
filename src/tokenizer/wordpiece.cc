#include "tokenizer/wordpiece.h"

#include <nlohmann/json.hpp>

#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {

WordPieceModel::WordPieceModel(const nlohmann::json& model) {
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    throw FileError("tokenizer.json: WordPiece model has no \"vocab\" object");
  }
  vocab_.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > INT32_MAX) {
      throw FileError("tokenizer.json: vocab entry \"" + token + "\" has an invalid id");
    }
    vocab_.add(token, id.get<std::int32_t>());
    longest_piece_ = std::max(longest_piece_, token.size());
  }
  // HF fails an encode that needs a missing unk token; without one such words are dropped.
  unk_id_ = vocab_.find(json_string_or(model, "unk_token", "[UNK]"));
  prefix_ = json_string_or(model, "continuing_subword_prefix", "##");
  const long long max_chars = json_int(model, "max_input_chars_per_word", 100);
  if (max_chars < 0) throw FileError("tokenizer.json: negative max_input_chars_per_word");
  max_chars_ = static_cast<std::size_t>(max_chars);
}

void WordPieceModel::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < word.size() && chars <= max_chars_; ++chars) next_code_point(word, i);
  const auto unk = [&] {
    if (unk_id_) out.push_back(*unk_id_);
  };
  if (chars > max_chars_) return unk();

  const std::size_t mark = out.size();
  thread_local std::string candidate;
  for (std::size_t start = 0; start < word.size();) {
    // Longest vocab entry starting here (with the prefix after the first piece); a piece
    // can be no longer than the longest entry, which bounds the work per position.
    std::size_t end = std::min(word.size(), start + longest_piece_);
    while (end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) --end;
    std::optional<std::int32_t> found;
    while (end > start) {
      std::optional<std::int32_t> id;
      if (start == 0) {
        id = vocab_.find(word.substr(0, end));
      } else {
        candidate.assign(prefix_);
        candidate.append(word.substr(start, end - start));
        id = vocab_.find(candidate);
      }
      if (id) {
        found = id;
        break;
      }
      // Drop the last character.
      do {
        --end;
      } while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (!found) {
      out.resize(mark);
      return unk();
    }
    out.push_back(*found);
    start = end;
  }
}

}  // namespace lmserve::tokenizer::detail
