// Llama 3.x: the answer is {"name": ..., "parameters": {...}} (several separated by ';' when
// parallel), either bare or after <|python_tag|>; the call runs to the end of the output.
#include "chat/tool_calls/tool_call_syntax.h"

namespace lmserve::chat {
namespace {

ParsedCalls parse(std::string_view body, const nlohmann::ordered_json&) {
  std::vector<ParsedCall> calls;
  std::size_t pos = 0;
  for (;;) {
    pos = body.find_first_not_of(" \t\r\n;", pos);
    if (pos == std::string_view::npos) break;
    if (body[pos] != '{') return std::nullopt;
    auto end = tool_call_text::json_value_end(body, pos);
    if (!end) return std::nullopt;
    auto object = tool_call_text::parse_json(body.substr(pos, *end - pos));
    if (!object) return std::nullopt;
    auto call = tool_call_text::call_from_object(*object);
    if (!call) return std::nullopt;
    calls.push_back(std::move(*call));
    pos = *end;
  }
  if (calls.empty()) return std::nullopt;
  return calls;
}

}  // namespace

const ToolCallSyntax& llama3_json_syntax() {
  static const ToolCallSyntax kSyntax{.name = "llama3_json",
                                      .start = "<|python_tag|>",
                                      .end = "",
                                      .bare_json_at_start = true,
                                      .parse = parse};
  return kSyntax;
}

}  // namespace lmserve::chat
