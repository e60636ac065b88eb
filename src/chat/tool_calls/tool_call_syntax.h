// How a model family writes tool calls: the text that opens and closes a call and the parse
// of what lies between. The output parser (chat/output_parser.h) finds the markers while
// text streams; a syntax only ever parses one complete segment, so a call is either parsed
// whole or returned as text, never half-emitted.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::chat {

struct ParsedCall {
  std::string name;
  std::string arguments;  // JSON text of an object
};

using ParsedCalls = std::optional<std::vector<ParsedCall>>;

struct ToolCallSyntax {
  std::string_view name;   // the --tool-call-format value
  std::string_view start;  // opens a call segment
  std::string_view end;    // closes it; empty: the segment runs to the end of the output
  // A JSON object that opens the answer is a call without a start marker (Llama 3.x).
  bool bare_json_at_start = false;
  // Ids of 9 alphanumerics (Mistral templates refuse any other tool_call_id in history).
  bool short_ids = false;
  // The calls in one segment (markers excluded), or nullopt when it is not a valid call.
  // `tools` is the request's tool list (schemas type the values of XML-style arguments).
  ParsedCalls (*parse)(std::string_view body, const nlohmann::ordered_json& tools) = nullptr;
};

// Hermes / Qwen 2.5-3: <tool_call>{"name": ..., "arguments": {...}}</tool_call>.
const ToolCallSyntax& json_tools_syntax();
// Qwen3-Coder: <tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>.
const ToolCallSyntax& qwen3_coder_syntax();
// Llama 3.x: {"name": ..., "parameters": {...}} opening the answer, or after <|python_tag|>.
const ToolCallSyntax& llama3_json_syntax();
// Mistral: [TOOL_CALLS][{"name", "arguments"}...] or [TOOL_CALLS]NAME[ARGS]{...} (repeated).
const ToolCallSyntax& mistral_syntax();

// LFM2: <|tool_call_start|>[f(a=1), g(s="x")]<|tool_call_end|> (Python calls and literals).
const ToolCallSyntax& pythonic_syntax();

// By --tool-call-format name; nullptr when unknown.
const ToolCallSyntax* find_tool_call_syntax(std::string_view name);
std::vector<std::string_view> tool_call_syntax_names();
// The tool-call format a chat template teaches its model (api-contract §4.7, first matching
// rule), also for formats lmserve does not parse (find_tool_call_syntax gives nullptr).
std::optional<std::string_view> infer_tool_call_format(std::string_view template_source);

// "call_" + 24 alphanumerics, or 9 alphanumerics for short ids.
std::string new_tool_call_id(bool short_id);

// Helpers shared by the syntaxes.
namespace tool_call_text {

// Compact JSON without ASCII escaping, as OpenAI's `arguments` strings are.
std::string dump(const nlohmann::ordered_json& value);
// Parses JSON text (bounded nesting); nullopt when invalid.
std::optional<nlohmann::ordered_json> parse_json(std::string_view text);
// {"name": N, "arguments"|"parameters": {...} or a JSON string of one} -> a call.
std::optional<ParsedCall> call_from_object(const nlohmann::ordered_json& object);
// Where the JSON object or array starting at text[from] ends (one past its closing
// bracket), by bracket matching outside strings; nullopt when it does not close.
std::optional<std::size_t> json_value_end(std::string_view text, std::size_t from);
std::string_view trim(std::string_view text);

}  // namespace tool_call_text

}  // namespace lmserve::chat
