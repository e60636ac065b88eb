// What the output parser produces: increments of an assistant message (reasoning text,
// visible text, tool-call pieces) and the message they add up to. The non-streaming
// response is ChatMessage folded from exactly the deltas a stream sends, so the two agree.
#pragma once

#include <string>
#include <vector>

namespace lmserve::chat {

struct ToolCall {
  std::string id;  // "call_" + 24 alphanumerics, the same in both response forms
  std::string name;
  std::string arguments;  // JSON text of the arguments object
};

// One piece of one tool call, OpenAI's streamed form: the first piece of call `index`
// carries id and name (arguments empty), later pieces append to arguments.
struct ToolCallDelta {
  int index = 0;
  std::string id;    // first piece only
  std::string name;  // first piece only
  std::string arguments;
};

struct MessageDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCallDelta> tool_calls;

  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
  // Appends `next` (keeps the order of its pieces).
  void append(MessageDelta next);
};

struct ChatMessage {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;

  void apply(const MessageDelta& delta);
};

}  // namespace lmserve::chat
