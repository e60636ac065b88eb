// What one generation produced, as a response reports it. Chat text goes through the
// output parser (reasoning, content, tool calls) and completion text passes verbatim; the
// end of the generation becomes one GenerationOutcome. Both response writers
// (response_writers.h) consume exactly these deltas and this outcome, so a stream and a
// whole response of the same generation cannot differ.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "chat/chat_formatter.h"
#include "chat/message_delta.h"
#include "chat/output_parser.h"
#include "engine/engine.h"
#include "server/openai_response.h"

namespace lmserve::server {

// Why the server, not the client, cancelled a generation: what its response then says.
enum class ServerCancel { kNone, kShutdown, kWorkerLost };

struct GenerationOutcome {
  bool ok = false;  // finished with "stop", "length" or "tool_calls"
  // ok:
  const char* finish_reason = "stop";
  UsageCounts usage;
  chat::MessageDelta tail;    // what the parser still held at the end
  std::string stop_sequence;  // the stop string that ended the generation ("" if none did)
  // !ok: a whole response's error status and code, and the message for the client.
  int status = 500;
  const char* code = "internal_error";
  std::string error;
};

class GenerationOutput {
 public:
  GenerationOutput() = default;  // completions: text verbatim
  explicit GenerationOutput(const chat::RenderedPrompt& prompt);

  chat::MessageDelta push(const std::string& text);
  // The end of the generation (a kFinished or kFailed event).
  GenerationOutcome finish(const engine::GenerationEvent& event, int prompt_tokens,
                           ServerCancel cause);

 private:
  std::optional<chat::OutputParser> parser_;
  std::optional<std::pair<std::int32_t, std::int32_t>> think_token_ids_;
  bool starts_in_reasoning_ = false;
};

}  // namespace lmserve::server
