// tokenizer.json "post_processor" for single sequences: the special ids placed before and
// after the encoded text (TemplateProcessing, Bert/Roberta, ByteLevel, Sequence).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <vector>

namespace lmserve::tokenizer::detail {

struct SpecialTemplate {
  std::vector<std::int32_t> prefix;
  std::vector<std::int32_t> suffix;
};

// An empty template for a JSON null. Throws FileError naming any unsupported type.
SpecialTemplate make_post_processor(const nlohmann::json& config);

}  // namespace lmserve::tokenizer::detail
