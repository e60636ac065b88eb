#include "chat/message_delta.h"

#include <iterator>
#include <utility>

namespace lmserve::chat {

void MessageDelta::append(MessageDelta next) {
  reasoning += next.reasoning;
  content += next.content;
  tool_calls.insert(tool_calls.end(), std::make_move_iterator(next.tool_calls.begin()),
                    std::make_move_iterator(next.tool_calls.end()));
}

void ChatMessage::apply(const MessageDelta& delta) {
  reasoning += delta.reasoning;
  content += delta.content;
  for (const ToolCallDelta& piece : delta.tool_calls) {
    if (piece.index >= static_cast<int>(tool_calls.size())) {
      tool_calls.resize(static_cast<std::size_t>(piece.index) + 1);
    }
    ToolCall& call = tool_calls[static_cast<std::size_t>(piece.index)];
    call.id += piece.id;
    call.name += piece.name;
    call.arguments += piece.arguments;
  }
}

}  // namespace lmserve::chat
