// Text <-> token ids, exactly as Hugging Face `tokenizers` does for tokenizer.json.
// Immutable after loading and safe to share between threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmserve::formats {
class Checkpoint;
}

namespace lmserve::tokenizer {

class Tokenizer {
 public:
  // `path` is a directory holding tokenizer.json (+ optional tokenizer_config.json,
  // special_tokens_map.json, chat_template.jinja), a tokenizer.json file itself, or a GGUF
  // file (vocab-only or a whole model) whose tokenizer.ggml.* vocabulary is used.
  // Throws FileError on unreadable or unsupported input, naming what is unsupported.
  static Tokenizer load(const std::filesystem::path& path);
  // The same from a model checkpoint already open (whose GGUF mapping the model shares).
  static Tokenizer load(const formats::Checkpoint& checkpoint);

  // add_special_tokens: apply the post-processor (BOS/EOS per tokenizer_config.json).
  // parse_special: text of special added tokens maps to their ids; false treats it as text.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true,
                                   bool parse_special = true) const;

  // Full decode as HF `decode(ids, skip_special_tokens)`; invalid UTF-8 becomes U+FFFD.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const;
  // The same followed, when clean_up_spaces is set, by clean_up_tokenization(): Python's
  // decode(ids, skip_special_tokens, clean_up_tokenization_spaces=clean_up_spaces). Pass
  // clean_up_tokenization_spaces() to get transformers' default for this tokenizer.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens,
                     bool clean_up_spaces) const;

  // Raw bytes of one token as the decoder would produce them mid-sequence (no
  // leading-space stripping); may be an incomplete UTF-8 sequence (byte-fallback pieces).
  std::string token_bytes(std::int32_t id) const;

  // The vocabulary string of a token (e.g. "▁the", "<0x0A>", "Ġworld").
  const std::string& piece(std::int32_t id) const;

  int vocab_size() const;
  bool is_special(std::int32_t id) const;

  // Id of a vocabulary or added-token string, if it has one.
  std::optional<std::int32_t> token_to_id(std::string_view token) const;

  // tokenizer_config.json's clean_up_tokenization_spaces: Python transformers applies
  // clean_up_tokenization() after decode() when it is set (llama3 sets it).
  bool clean_up_tokenization_spaces() const;
  // transformers' clean-up: drops the space before . ? ! , and before 's 'm 've 're n't.
  static std::string clean_up_tokenization(std::string_view text);

  std::optional<std::int32_t> bos_id() const;
  std::optional<std::int32_t> eos_id() const;
  const std::string& bos_token() const;  // "" when none
  const std::string& eos_token() const;  // "" when none
  bool adds_bos() const;                 // encode(add_special_tokens=true) prepends BOS
  // Every id that ends a generation: eos_id, plus for GGUF vocabularies the end-of-turn ids
  // llama.cpp stops at (tokenizer.ggml.eot/eom_token_id, "<|eot_id|>", "<|im_end|>" ...).
  // Sorted, without duplicates.
  std::vector<std::int32_t> end_of_generation_ids() const;

  // Jinja source of the chat template shipped with the tokenizer, if any.
  const std::optional<std::string>& chat_template() const;
  // The "tool_use" template of a tokenizer_config.json that names several; used instead of
  // chat_template() when a request has tools.
  const std::optional<std::string>& tool_use_chat_template() const;
  // The special tokens transformers passes to chat templates ("bos_token", "eos_token",
  // "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"), those defined.
  const std::vector<std::pair<std::string, std::string>>& special_tokens_map() const;
  // tokenizer_config.json's "tool_parser_type" (how the model writes tool calls), if set.
  const std::optional<std::string>& tool_parser_type() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Turns a stream of ids into text incrementally. The concatenation of every push() result
// and finish() equals tokenizer.decode(all ids) byte for byte, and no result ever ends in
// (or contains) a broken UTF-8 sequence. Amortised O(1) work per token (for decoders that
// only know their output at the end, BPEDecoder and CTC, everything waits for finish()).
// The tokenizer must outlive the detokenizer. A run of ByteFallback byte tokens is held
// back until the run ends, because HF turns a whole run into U+FFFDs when any part of it is
// invalid.
class StreamingDetokenizer {
 public:
  // skip_special_tokens: special ids add nothing, as decode(ids, true) drops them.
  // clean_up_spaces: the stream equals decode(ids, skip_special_tokens, true) instead; text
  // that clean-up could still rewrite (a space that may turn out to precede "." or "'s")
  // is held back until what follows settles it. Pass tokenizer.clean_up_tokenization_spaces()
  // to match transformers' default decode.
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false,
                                bool clean_up_spaces = false);

  // Text that became final with this token (often "", e.g. mid-way through a multibyte char).
  std::string push(std::int32_t id);

  // Everything still held back (incomplete UTF-8 becomes U+FFFD, as decode() does).
  std::string finish();

 private:
  std::string push_raw(std::int32_t id);
  std::string finish_raw();

  const Tokenizer* tokenizer_;
  bool skip_special_;
  bool clean_up_;
  std::string pending_;  // decoded text held back from clean-up
  // The window: ids after the last point where the text so far was final and the
  // decoder's output splits cleanly. Everything before it has been emitted.
  std::vector<std::int32_t> ids_;
  bool at_start_ = true;     // the window begins at the first id of the stream
  std::size_t emitted_ = 0;  // bytes of the window's decoded text already emitted
};

}  // namespace lmserve::tokenizer
