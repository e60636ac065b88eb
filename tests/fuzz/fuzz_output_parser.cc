// Fuzzes the chat output parser: the first byte picks a tool-call syntax and the reasoning
// options, the second how the rest is cut into streamed pieces. Whatever the text, the
// parser must not crash, every parsed call's arguments must be a JSON object, and the
// pieces must fold to exactly the message the whole text gives (streaming equals
// non-streaming).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "chat/output_parser.h"

namespace {

namespace chat = lmserve::chat;

chat::ChatMessage parse(const chat::OutputParserOptions& base,
                        const std::vector<std::string_view>& pieces) {
  chat::OutputParserOptions options = base;
  int next = 0;
  options.new_call_id = [&next](bool) { return "call_" + std::to_string(next++); };
  chat::OutputParser parser(std::move(options));
  chat::ChatMessage message;
  for (std::string_view piece : pieces) message.apply(parser.push(piece));
  message.apply(parser.finish());
  return message;
}

bool same(const chat::ChatMessage& a, const chat::ChatMessage& b) {
  if (a.reasoning != b.reasoning || a.content != b.content) return false;
  if (a.tool_calls.size() != b.tool_calls.size()) return false;
  for (std::size_t i = 0; i < a.tool_calls.size(); ++i) {
    const auto& x = a.tool_calls[i];
    const auto& y = b.tool_calls[i];
    if (x.id != y.id || x.name != y.name || x.arguments != y.arguments) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const chat::ToolCallSyntax* syntaxes[] = {nullptr,
                                            &chat::json_tools_syntax(),
                                            &chat::qwen3_coder_syntax(),
                                            &chat::llama3_json_syntax(),
                                            &chat::mistral_syntax(),
                                            &chat::pythonic_syntax()};
  chat::OutputParserOptions options;
  options.tool_syntax = syntaxes[(data[0] & 0x07) % 6];
  if (data[0] & 0x08) options.reasoning = chat::ReasoningMarkers{};
  options.starts_in_reasoning = data[0] & 0x10;
  options.parallel_tool_calls = !(data[0] & 0x20);
  options.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f",
      "parameters": {"properties": {"n": {"type": "integer"}, "s": {"type": "string"}}}}}])");
  const std::size_t step = 1 + data[1] % 7;
  const std::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);

  std::vector<std::string_view> pieces;
  for (std::size_t pos = 0; pos < text.size(); pos += step)
    pieces.push_back(text.substr(pos, step));
  const chat::ChatMessage whole = parse(options, {text});
  if (!same(whole, parse(options, pieces))) std::abort();
  for (const chat::ToolCall& call : whole.tool_calls) {
    auto arguments = nlohmann::ordered_json::parse(call.arguments, nullptr, false);
    if (call.name.empty() || !arguments.is_object()) std::abort();
  }
  return 0;
}
