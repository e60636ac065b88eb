// What the HTTP handlers need from the rest of the pipeline (tokenizer, chat template,
// engine), as one narrow interface: serve() adapts the real objects, tests plug in fakes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_formatter.h"
#include "engine/engine.h"

namespace lmserve::server {

class Backend {
 public:
  virtual ~Backend() = default;

  // Tokenizer. parse_special: special-token text maps to its id (else it is plain text).
  virtual std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens,
                                           bool parse_special = true) const = 0;
  // Text of ids exactly as a generation streams it (specials shown, the tokenizer's
  // clean-up applied, invalid UTF-8 as U+FFFD). Ids must be in range.
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  // The bytes one token contributes mid-sequence (may be incomplete UTF-8).
  virtual std::string token_bytes(std::int32_t id) const = 0;
  virtual int vocab_size() const = 0;
  // The longest token_bytes() of the vocabulary: a text of n bytes is at least
  // n / max_token_bytes() tokens (for tokenizers that drop no text).
  virtual std::size_t max_token_bytes() const = 0;
  virtual const std::string& bos_token() const = 0;  // "" when none
  virtual bool adds_bos() const = 0;

  // Chat prompt and how to read the answer (throws ApiError template_error).
  virtual chat::RenderedPrompt render_chat(const chat::ChatPromptInput& input) const = 0;

  // Engine. Events are delivered on another thread (see engine.h).
  virtual std::shared_ptr<engine::RequestHandle> submit(engine::GenerationRequest request,
                                                        engine::EventSink sink) = 0;
  virtual int context_length() const = 0;
  virtual bool alive() const = 0;
  // How long the engine's current step has been running (zero between steps); lock-free.
  virtual std::chrono::steady_clock::duration step_running_for() const = 0;
  virtual engine::EngineStats stats() const = 0;  // thread-safe
};

}  // namespace lmserve::server
