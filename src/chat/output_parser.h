// The chat output parser: consumes the generated text as it streams and splits it into
// message deltas — reasoning (<think>…</think>), visible content, and tool calls in the
// model's syntax. It holds back only text that could still be the start of a marker, and a
// tool-call segment until it is complete (so that a call that does not parse is returned as
// content, never dropped and never half-sent). Streaming sends its deltas; the whole
// response is their fold (ChatMessage), so the two cannot differ.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/message_delta.h"
#include "chat/tool_calls/tool_call_syntax.h"

namespace lmserve::chat {

struct ReasoningMarkers {
  std::string start = "<think>";
  std::string end = "</think>";
};

struct OutputParserOptions {
  std::optional<ReasoningMarkers> reasoning;    // nullopt: thinking stays in the content
  bool starts_in_reasoning = false;             // the prompt opened a think block
  const ToolCallSyntax* tool_syntax = nullptr;  // nullptr: no tool-call parsing
  nlohmann::ordered_json tools;                 // the request's tools (schemas type values)
  bool parallel_tool_calls = true;              // false keeps only the first call
  std::function<std::string(bool short_id)> new_call_id = new_tool_call_id;
};

class OutputParser {
 public:
  explicit OutputParser(OutputParserOptions options);

  // The deltas that `text` (the next piece of output) completes.
  MessageDelta push(std::string_view text);
  // End of output: everything still held is attributed.
  MessageDelta finish();

  bool in_reasoning() const { return state_ == State::kReasoning; }
  int tool_call_count() const { return calls_; }

 private:
  enum class State { kContent, kReasoning, kToolCall };

  void scan(MessageDelta& out, bool at_end);
  // Each returns false when it needs more text.
  bool scan_content(MessageDelta& out, bool at_end);
  bool scan_reasoning(MessageDelta& out, bool at_end);
  bool scan_tool_call(MessageDelta& out, bool at_end);
  void close_tool_call(std::string_view body, std::string_view end_marker, MessageDelta& out);
  void emit_content(std::string_view text, MessageDelta& out);
  std::vector<std::string_view> markers() const;

  OutputParserOptions options_;
  State state_;
  std::string buffer_;              // output not yet attributed
  std::string segment_opening_;     // text that opened the current tool-call segment
  bool content_started_ = false;    // visible text was emitted
  bool trim_next_content_ = false;  // leading whitespace after reasoning or a call is layout
  bool reasoning_started_ = false;  // leading whitespace of a think block is layout
  int calls_ = 0;
};

// Tokens sampled inside think blocks: `ids` walked with the markers' single token ids.
int count_reasoning_tokens(const std::vector<std::int32_t>& ids, std::int32_t start_id,
                           std::int32_t end_id, bool starts_in_reasoning);

// Whether a rendered prompt leaves a think block open (Qwen3 / DeepSeek-R1 style templates
// end the prompt with "<think>\n"): its last start marker comes after its last end marker.
bool prompt_opens_reasoning(std::string_view prompt, const ReasoningMarkers& markers);

}  // namespace lmserve::chat
