// Builds the Model of a tokenizer.json "model" object (BPE, Unigram, WordPiece).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "tokenizer/model.h"

namespace lmserve::tokenizer::detail {

// `file` names the tokenizer.json in errors. Throws FileError for unsupported or malformed
// models.
std::unique_ptr<Model> make_model(const nlohmann::json& model, const std::string& file);

}  // namespace lmserve::tokenizer::detail
