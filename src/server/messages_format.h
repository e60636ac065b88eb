// Anthropic's Messages API as a ResponseFormat: the message object (thinking, text and
// tool_use content blocks; stop_reason; usage) and its event stream (message_start,
// content_block_start/delta/stop, message_delta, message_stop, ping), and its error shape.
#pragma once

#include <string>

#include "server/openai_response.h"
#include "server/response_writers.h"

namespace lmserve::server {

// {"type": "error", "error": {"type", "message"}}: Anthropic's type for the status.
json anthropic_error_body(const ApiError& error);

class MessagesFormat final : public ResponseFormat {
 public:
  // meta.id is "msg_…"; prompt_tokens are reported in message_start.
  MessagesFormat(ResponseMeta meta, int prompt_tokens)
      : meta_(std::move(meta)), prompt_tokens_(prompt_tokens) {}

  void open(std::string& out) override;
  std::string keepalive(int processed, int total) const override;
  void delta(int choice, const chat::MessageDelta& delta, std::string& out) override;
  void finish(const GenerationOutcome& outcome, std::string& out) override;
  json body(const std::vector<ChoiceResult>& choices, const GenerationOutcome& outcome) override;

 private:
  enum class Block { kNone, kThinking, kText, kToolUse };
  void begin_block(Block kind, std::string& out, const chat::ToolCallDelta* call = nullptr);
  void end_block(std::string& out);
  json message(json content) const;

  ResponseMeta meta_;
  int prompt_tokens_;
  Block block_ = Block::kNone;
  int index_ = -1;  // the open (or last) content block
};

}  // namespace lmserve::server
