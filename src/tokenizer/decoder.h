// tokenizer.json "decoder": turns token strings back into text (ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip, Replace, Sequence), also on windows in the middle of a stream.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::tokenizer::detail {

// One step of the chain. `at_start` says whether tokens[0] is the first token of the whole
// text (steps like Metaspace and a Strip after Fuse treat only that one specially);
// `fused` says whether an earlier step joined the list into one string.
class DecoderStep {
 public:
  virtual ~DecoderStep() = default;
  virtual void decode_chain(std::vector<std::string>& tokens, bool at_start, bool& fused) const = 0;
};

// "<0x0A>"-style byte token: its byte value, or -1.
int byte_token_value(std::string_view token);

class Decoder {
 public:
  // A JSON null means HF's default: tokens joined with single spaces.
  explicit Decoder(const nlohmann::json& config);
  ~Decoder();
  Decoder(Decoder&&) noexcept;

  // Decoded bytes before the final UTF-8 clean-up (byte-level pieces may leave invalid
  // UTF-8 for the caller to sanitize). With at_start false, `tokens` is a window that
  // continues earlier text: the result is what those tokens add to it.
  std::string decode(std::vector<std::string> tokens, bool at_start) const;

  // Whether a ByteFallback step runs: then a run of byte tokens decodes as a unit.
  bool has_byte_fallback() const { return has_byte_fallback_; }
  // False when the output's end may still change after it was produced (a Strip of
  // trailing characters on the joined text), so streaming must wait for the end.
  bool streamable() const { return streamable_; }

 private:
  std::unique_ptr<DecoderStep> root_;
  bool has_byte_fallback_ = false;
  bool streamable_ = true;
};

}  // namespace lmserve::tokenizer::detail
