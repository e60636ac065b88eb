// Qwen3-Coder (also Qwen3.5, Nemotron 3): XML-like calls
//   <tool_call>\n<function=NAME>\n<parameter=P>\nvalue\n</parameter>\n</function>\n</tool_call>
// Values are text; the tool's JSON schema says which are numbers, booleans, objects...
#include "chat/tool_calls/tool_call_syntax.h"

namespace lmserve::chat {
namespace {

using nlohmann::ordered_json;

constexpr std::string_view kFunction = "<function=";
constexpr std::string_view kFunctionEnd = "</function>";
constexpr std::string_view kParameter = "<parameter=";
constexpr std::string_view kParameterEnd = "</parameter>";

// The declared JSON-schema type of parameter `param` of tool `function`, "" when unknown.
std::string declared_type(const ordered_json& tools, std::string_view function,
                          const std::string& param) {
  if (!tools.is_array()) return "";
  for (const auto& tool : tools) {
    const ordered_json* fn = tool.contains("function") ? &tool["function"] : &tool;
    if (!fn->is_object() || fn->value("name", "") != function) continue;
    auto props = fn->find("parameters");
    if (props == fn->end() || !props->is_object()) return "";
    auto properties = props->find("properties");
    if (properties == props->end() || !properties->is_object()) return "";
    auto schema = properties->find(param);
    if (schema == properties->end() || !schema->is_object()) return "";
    auto type = schema->find("type");
    return type != schema->end() && type->is_string() ? type->get<std::string>() : "";
  }
  return "";
}

// A value as its schema types it; text that does not convert stays a string.
ordered_json typed_value(std::string_view text, const std::string& type) {
  if (type == "string") return std::string(text);
  auto parsed = tool_call_text::parse_json(text);
  if (!parsed) return std::string(text);
  bool fits = type.empty() || (type == "integer" && parsed->is_number_integer()) ||
              (type == "number" && parsed->is_number()) ||
              (type == "boolean" && parsed->is_boolean()) ||
              (type == "object" && parsed->is_object()) ||
              (type == "array" && parsed->is_array()) || (type == "null" && parsed->is_null());
  // Without a schema, only structured values and literals are taken as JSON.
  if (type.empty() && parsed->is_string()) return std::string(text);
  return fits ? *parsed : ordered_json(std::string(text));
}

// One newline after the opening tag and before the closing one belong to the layout.
std::string_view strip_layout_newlines(std::string_view value) {
  if (value.starts_with('\n')) value.remove_prefix(1);
  if (value.ends_with('\n')) value.remove_suffix(1);
  return value;
}

std::optional<ParsedCall> parse_function(std::string_view block, const ordered_json& tools) {
  // block: NAME>...parameters... (after "<function=", before "</function>")
  std::size_t close = block.find('>');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view name = tool_call_text::trim(block.substr(0, close));
  if (name.empty()) return std::nullopt;
  ordered_json args = ordered_json::object();
  std::string_view rest = block.substr(close + 1);
  for (;;) {
    std::string_view gap = rest;
    std::size_t open = rest.find(kParameter);
    if (open != std::string_view::npos) gap = rest.substr(0, open);
    if (!tool_call_text::trim(gap).empty()) return std::nullopt;  // stray text
    if (open == std::string_view::npos) break;
    rest.remove_prefix(open + kParameter.size());
    std::size_t name_end = rest.find('>');
    if (name_end == std::string_view::npos) return std::nullopt;
    std::string param(tool_call_text::trim(rest.substr(0, name_end)));
    if (param.empty()) return std::nullopt;
    rest.remove_prefix(name_end + 1);
    // A missing </parameter> (models drop it) ends the value at the next parameter.
    std::size_t end = rest.find(kParameterEnd);
    std::size_t next = rest.find(kParameter);
    std::size_t value_end = std::min(end, next);
    std::string_view value = strip_layout_newlines(rest.substr(0, value_end));
    args[param] = typed_value(value, declared_type(tools, name, param));
    rest.remove_prefix(value_end == std::string_view::npos ? rest.size() : value_end);
    if (rest.starts_with(kParameterEnd)) rest.remove_prefix(kParameterEnd.size());
  }
  return ParsedCall{std::string(name), tool_call_text::dump(args)};
}

ParsedCalls parse(std::string_view body, const ordered_json& tools) {
  std::vector<ParsedCall> calls;
  std::string_view rest = tool_call_text::trim(body);
  while (!rest.empty()) {
    if (!rest.starts_with(kFunction)) return std::nullopt;
    std::size_t end = rest.find(kFunctionEnd);
    if (end == std::string_view::npos) return std::nullopt;
    auto call = parse_function(rest.substr(kFunction.size(), end - kFunction.size()), tools);
    if (!call) return std::nullopt;
    calls.push_back(std::move(*call));
    rest = tool_call_text::trim(rest.substr(end + kFunctionEnd.size()));
  }
  if (calls.empty()) return std::nullopt;
  return calls;
}

}  // namespace

const ToolCallSyntax& qwen3_coder_syntax() {
  static const ToolCallSyntax kSyntax{
      .name = "qwen3_coder", .start = "<tool_call>", .end = "</tool_call>", .parse = parse};
  return kSyntax;
}

}  // namespace lmserve::chat
