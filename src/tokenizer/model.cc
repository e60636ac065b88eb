#include <nlohmann/json.hpp>

#include "tokenizer/bpe.h"
#include "tokenizer/model_json.h"
#include "tokenizer/unigram.h"
#include "tokenizer/vocabulary.h"
#include "tokenizer/wordpiece.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {

void Vocabulary::add(std::string_view token, std::int32_t id) {
  if (id < 0) throw FileError("tokenizer.json: vocab entry with a negative id");
  if (id > kMaxTokenId) {
    throw FileError("tokenizer.json: vocab id " + std::to_string(id) + " is above the limit of " +
                    std::to_string(kMaxTokenId));
  }
  const auto i = static_cast<std::size_t>(id);
  if (i >= by_id_.size()) {
    by_id_.resize(i + 1);
    has_id_.resize(i + 1, false);
  }
  if (has_id_[i]) {
    throw FileError("tokenizer.json: id " + std::to_string(id) + " appears twice in the vocab");
  }
  by_id_[i] = std::string(token);
  has_id_[i] = true;
  by_token_.insert(token, id);
}

std::unique_ptr<Model> make_model(const nlohmann::json& model, const std::string& file) {
  const std::string type = model.is_object() ? model.value("type", "") : "";
  // Files from older `tokenizers` versions omit the type of a BPE model.
  if (type == "BPE" || (type.empty() && model.is_object() && model.contains("merges"))) {
    return std::make_unique<BpeModel>(model);
  }
  if (type == "Unigram") return std::make_unique<UnigramModel>(model);
  if (type == "WordPiece") return std::make_unique<WordPieceModel>(model);
  throw FileError("unsupported tokenizer model type \"" + type + "\" in " + file +
                  " (supported: BPE, Unigram, WordPiece)");
}

}  // namespace lmserve::tokenizer::detail
