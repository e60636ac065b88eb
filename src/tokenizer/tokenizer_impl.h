// Tokenizer::Impl: the loaded pipeline (added tokens, normalizer, pre-tokenizer, BPE,
// post-processor, decoder) plus tokenizer_config.json facts. Internal to the stage.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::tokenizer {

struct Tokenizer::Impl {
  std::unique_ptr<detail::Normalizer> normalizer;
  std::unique_ptr<detail::PreTokenizer> pre_tokenizer;
  std::unique_ptr<detail::Model> model;  // BpeModel, SpmModel, ...
  detail::AddedVocabulary added;
  detail::SpecialTemplate post;
  std::unique_ptr<detail::Decoder> decoder;

  // Indexed by id, over the model vocab and the added tokens together.
  std::vector<std::string> pieces;
  std::vector<std::uint8_t> known;    // 1 when the id has a piece
  std::vector<std::uint8_t> special;  // 1 for added tokens flagged special
  std::vector<std::int16_t>
      byte_value;  // byte of a "<0xXX>" piece when ByteFallback decodes, else -1
  std::vector<std::pair<std::string, std::int32_t>> added_by_content;  // sorted, for token_to_id

  std::optional<std::int32_t> bos_id, eos_id;
  std::vector<std::int32_t> end_of_turn_ids;  // besides eos_id (GGUF only)
  std::string bos_token, eos_token;
  std::optional<std::string> chat_template;
  std::optional<std::string> tool_use_chat_template;  // the named "tool_use" template
  std::optional<std::string> tool_parser_type;        // tokenizer_config.json, mlx_lm's key
  std::vector<std::pair<std::string, std::string>> special_tokens_map;  // key -> text
  bool clean_up_spaces = false;

  bool valid(std::int32_t id) const {
    return id >= 0 && static_cast<std::size_t>(id) < known.size() &&
           known[static_cast<std::size_t>(id)];
  }
  // Decoded bytes (not yet UTF-8 sanitized) of ids, as a whole text or a continuing window.
  std::string decode_raw(std::span<const std::int32_t> ids, bool skip_special, bool at_start) const;
};

}  // namespace lmserve::tokenizer
