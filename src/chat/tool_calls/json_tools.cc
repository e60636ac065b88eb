// Hermes / Qwen 2.5 / Qwen3: one JSON object per <tool_call> block.
#include "chat/tool_calls/tool_call_syntax.h"

namespace lmserve::chat {
namespace {

ParsedCalls parse(std::string_view body, const nlohmann::ordered_json&) {
  auto object = tool_call_text::parse_json(tool_call_text::trim(body));
  if (!object) return std::nullopt;
  auto call = tool_call_text::call_from_object(*object);
  if (!call) return std::nullopt;
  return std::vector<ParsedCall>{std::move(*call)};
}

}  // namespace

const ToolCallSyntax& json_tools_syntax() {
  static const ToolCallSyntax kSyntax{
      .name = "json_tools", .start = "<tool_call>", .end = "</tool_call>", .parse = parse};
  return kSyntax;
}

}  // namespace lmserve::chat
