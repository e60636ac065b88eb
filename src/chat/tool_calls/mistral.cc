// Mistral: [TOOL_CALLS] then either a JSON array of {"name", "arguments"} (v3, Nemo) or
// NAME[ARGS]{...} (v11+, optionally NAME[CALL_ID]id[ARGS]{...}); parallel calls repeat the
// marker. There is no end marker: the calls run to the end of the output.
#include "chat/tool_calls/tool_call_syntax.h"

namespace lmserve::chat {
namespace {

constexpr std::string_view kMarker = "[TOOL_CALLS]";
constexpr std::string_view kArgs = "[ARGS]";
constexpr std::string_view kCallId = "[CALL_ID]";

bool parse_array(std::string_view text, std::vector<ParsedCall>& calls) {
  auto array = tool_call_text::parse_json(text);
  if (!array || !array->is_array() || array->empty()) return false;
  for (const auto& object : *array) {
    auto call = tool_call_text::call_from_object(object);
    if (!call) return false;
    calls.push_back(std::move(*call));
  }
  return true;
}

// NAME[ARGS]{...}, NAME[CALL_ID]id[ARGS]{...} or NAME{...}.
bool parse_named(std::string_view text, std::vector<ParsedCall>& calls) {
  std::size_t brace = text.find('{');
  if (brace == std::string_view::npos) return false;
  std::string_view head = text.substr(0, brace);
  if (head.ends_with(kArgs)) head.remove_suffix(kArgs.size());
  if (auto id = head.find(kCallId); id != std::string_view::npos) head = head.substr(0, id);
  std::string_view name = tool_call_text::trim(head);
  if (name.empty() || name.find_first_of(" \t\r\n[]{}\"") != std::string_view::npos) return false;
  auto end = tool_call_text::json_value_end(text, brace);
  if (!end || !tool_call_text::trim(text.substr(*end)).empty()) return false;
  auto args = tool_call_text::parse_json(text.substr(brace, *end - brace));
  if (!args || !args->is_object()) return false;
  calls.push_back({std::string(name), tool_call_text::dump(*args)});
  return true;
}

ParsedCalls parse(std::string_view body, const nlohmann::ordered_json&) {
  std::vector<ParsedCall> calls;
  std::size_t pos = 0;
  for (;;) {
    std::size_t next = body.find(kMarker, pos);
    std::string_view piece = tool_call_text::trim(body.substr(pos, next - pos));
    bool ok = piece.starts_with('[') ? parse_array(piece, calls) : parse_named(piece, calls);
    if (!ok) return std::nullopt;
    if (next == std::string_view::npos) break;
    pos = next + kMarker.size();
  }
  return calls;
}

}  // namespace

const ToolCallSyntax& mistral_syntax() {
  static const ToolCallSyntax kSyntax{
      .name = "mistral", .start = kMarker, .end = "", .short_ids = true, .parse = parse};
  return kSyntax;
}

}  // namespace lmserve::chat
