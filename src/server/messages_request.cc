#include "server/messages_request.h"

#include <climits>

#include "server/request_fields.h"

namespace lmserve::server {
namespace {

const std::string& required_string(const json& object, const char* key, const std::string& p) {
  const json* v = field(object, key);
  if (!v) missing(p + "." + key);
  return require_string(*v, p + "." + key);
}

// Text blocks joined by newlines: every template takes a string (some print a list of parts
// as its Python repr).
void add_text(std::string& text, const std::string& block) {
  if (!text.empty()) text += '\n';
  text += block;
}

// A string, or text blocks (a system prompt, a tool result).
std::string text_content(const json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  require_array(content, param);
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const std::string p = param_at(param, i);
    const json& block = require_object(content[i], p);
    const std::string& type = required_string(block, "type", p);
    if (type != "text") unsupported(p + ".type", "content block type '" + type + "' here");
    add_text(text, required_string(block, "text", p));
  }
  return text;
}

// One message's blocks, appended to `out` as chat messages: a user's tool results become
// tool messages (before its text), an assistant's tool_use blocks its tool_calls.
void add_message(const json& message, const std::string& p, json& out) {
  require_object(message, p);
  const std::string& role = required_string(message, "role", p);
  if (role != "user" && role != "assistant") {
    fail("invalid_value", p + ".role", "'" + p + ".role' must be 'user' or 'assistant'");
  }
  const json* content = field(message, "content");
  if (!content) missing(p + ".content");
  if (content->is_string()) {
    out.push_back({{"role", role}, {"content", *content}});
    return;
  }
  const std::string cp = p + ".content";
  require_array(*content, cp);
  std::string text;
  json calls = json::array();
  std::string thinking;
  for (std::size_t i = 0; i < content->size(); ++i) {
    const std::string bp = param_at(cp, i);
    const json& block = require_object((*content)[i], bp);
    const std::string& type = required_string(block, "type", bp);
    if (type == "text") {
      add_text(text, required_string(block, "text", bp));
    } else if (type == "tool_result" && role == "user") {
      json result = {{"role", "tool"}, {"tool_call_id", required_string(block, "tool_use_id", bp)}};
      const json* c = field(block, "content");
      result["content"] = c ? text_content(*c, bp + ".content") : std::string();
      out.push_back(std::move(result));
    } else if (type == "tool_use" && role == "assistant") {
      const json* input = field(block, "input");
      if (!input) missing(bp + ".input");
      calls.push_back({{"id", required_string(block, "id", bp)},
                       {"type", "function"},
                       {"function",
                        {{"name", required_string(block, "name", bp)},
                         {"arguments", require_object(*input, bp + ".input")}}}});
    } else if (type == "thinking" && role == "assistant") {
      thinking += required_string(block, "thinking", bp);
    } else if (type == "redacted_thinking" && role == "assistant") {
      // Encrypted elsewhere; nothing a local model can read.
    } else if (type == "image" || type == "document" || type == "search_result") {
      unsupported(bp + ".type", "content block type '" + type + "'");
    } else {
      fail("invalid_value", bp + ".type",
           "content block type '" + type + "' is not valid in a " + role + " message");
    }
  }
  if (text.empty() && calls.empty() && thinking.empty()) return;  // only tool results
  json m = {{"role", role}, {"content", std::move(text)}};
  if (!thinking.empty()) m["reasoning_content"] = thinking;
  if (!calls.empty()) m["tool_calls"] = std::move(calls);
  out.push_back(std::move(m));
}

json chat_tools(const json& tools) {
  require_array(tools, "tools");
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const std::string p = param_at("tools", i);
    const json& tool = require_object(tools[i], p);
    if (const json* type = field(tool, "type")) {
      const std::string& t = require_string(*type, p + ".type");
      if (t != "custom") unsupported(p + ".type", "the server tool '" + t + "'");
    }
    json fn = {{"name", required_string(tool, "name", p)}};
    if (const json* d = field(tool, "description")) {
      fn["description"] = require_string(*d, p + ".description");
    }
    const json* schema = field(tool, "input_schema");
    if (!schema) missing(p + ".input_schema");
    fn["parameters"] = require_object(*schema, p + ".input_schema");
    out.push_back({{"type", "function"}, {"function", std::move(fn)}});
  }
  return out;
}

// The chat request's prompt fields (messages, tools, tool_choice) of a Messages body.
json chat_prompt_body(const json& body) {
  json messages = json::array();
  if (const json* system = field(body, "system")) {
    messages.push_back({{"role", "system"}, {"content", text_content(*system, "system")}});
  }
  const json* list = field(body, "messages");
  if (!list) missing("messages");
  require_array(*list, "messages");
  if (list->empty()) fail("invalid_value", "messages", "'messages' must not be empty");
  for (std::size_t i = 0; i < list->size(); ++i)
    add_message((*list)[i], param_at("messages", i), messages);
  json chat = {{"messages", std::move(messages)}};
  if (const json* v = field(body, "model")) chat["model"] = *v;
  if (const json* v = field(body, "tools")) chat["tools"] = chat_tools(*v);
  if (const json* choice = field(body, "tool_choice")) {
    require_object(*choice, "tool_choice");
    const std::string& type = required_string(*choice, "type", "tool_choice");
    if (type == "auto" || type == "none") {
      chat["tool_choice"] = type;
    } else if (type == "any") {
      chat["tool_choice"] = "required";
    } else if (type == "tool") {
      chat["tool_choice"] = {
          {"type", "function"},
          {"function", {{"name", required_string(*choice, "name", "tool_choice")}}}};
    } else {
      fail("invalid_value", "tool_choice.type",
           "'tool_choice.type' must be 'auto', 'any', 'tool' or 'none'");
    }
    if (const json* v = field(*choice, "disable_parallel_tool_use")) {
      chat["parallel_tool_calls"] = !require_bool(*v, "tool_choice.disable_parallel_tool_use");
    }
  }
  // Templates that can think (Qwen3's enable_thinking) follow the request's `thinking`.
  if (const json* thinking = field(body, "thinking")) {
    require_object(*thinking, "thinking");
    const std::string& type = required_string(*thinking, "type", "thinking");
    if (type != "enabled" && type != "disabled") {
      fail("invalid_value", "thinking.type", "'thinking.type' must be 'enabled' or 'disabled'");
    }
    chat["chat_template_kwargs"] = {{"enable_thinking", type == "enabled"}};
  }
  return chat;
}

}  // namespace

ChatRequest parse_messages_request(const json& body, const RequestDefaults& defaults) {
  json chat = chat_prompt_body(body);
  const json* max_tokens = field(body, "max_tokens");
  if (!max_tokens) missing("max_tokens");
  if (require_int(*max_tokens, "max_tokens") < 1) {
    fail("invalid_value", "max_tokens", "'max_tokens' must be at least 1");
  }
  chat["max_tokens"] = *max_tokens;
  if (const json* v = field(body, "stop_sequences")) {
    require_array(*v, "stop_sequences");
    chat["stop"] = *v;
  }
  for (const char* key : {"temperature", "top_p", "top_k", "stream"}) {
    if (const json* v = field(body, key)) chat[key] = *v;
  }
  ChatRequest r = parse_chat_request(chat, defaults);
  const json* thinking = field(body, "thinking");
  if (thinking && (*thinking)["type"] == "enabled") {
    const json* budget = field(*thinking, "budget_tokens");
    if (!budget) missing("thinking.budget_tokens");
    const std::int64_t n = require_int(*budget, "thinking.budget_tokens");
    if (n < 1 || n >= r.common.max_tokens) {
      fail("invalid_value", "thinking.budget_tokens",
           "'thinking.budget_tokens' must be at least 1 and less than 'max_tokens'");
    }
    r.reasoning_budget = static_cast<int>(n);
  }
  return r;
}

chat::ChatPromptInput parse_count_tokens_request(const json& body) {
  return parse_chat_request(chat_prompt_body(body), RequestDefaults{}).prompt;
}

}  // namespace lmserve::server
