#include "server/responses_request.h"

#include "server/request_fields.h"

namespace lmserve::server {
namespace {

// A message item's content: a string, or input_text / output_text parts, joined by newlines
// (every template takes a string; some print a list of parts as its Python repr).
std::string message_content(const json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  require_array(content, param);
  std::string joined;
  for (std::size_t j = 0; j < content.size(); ++j) {
    const std::string p = param_at(param, j);
    const json& part = require_object(content[j], p);
    auto add_text = [&joined, j](const std::string& piece) {
      joined += (j > 0 ? "\n" : "") + piece;
    };
    const json* type = field(part, "type");
    if (!type) missing(p + ".type");
    const std::string& t = require_string(*type, p + ".type");
    if (t == "input_text" || t == "output_text") {
      const json* text = field(part, "text");
      if (!text) missing(p + ".text");
      add_text(require_string(*text, p + ".text"));
    } else if (t == "refusal") {
      const json* text = field(part, "refusal");
      if (!text) missing(p + ".refusal");
      add_text(require_string(*text, p + ".refusal"));
    } else if (t == "input_image" || t == "input_file" || t == "input_audio") {
      unsupported(p + ".type", "content part type '" + t + "' (images, files and audio)");
    } else {
      fail("invalid_value", p + ".type", "unknown content part type '" + t + "'");
    }
  }
  return joined;
}

// Reasoning text of a reasoning item: its reasoning_text content, else its summary.
std::string reasoning_text(const json& item, const std::string& param) {
  std::string text;
  for (const char* key : {"content", "summary"}) {
    const json* parts = field(item, key);
    if (!parts) continue;
    require_array(*parts, param + "." + key);
    for (std::size_t j = 0; j < parts->size(); ++j) {
      const std::string p = param_at(param + "." + key, j);
      const json* t = field(require_object((*parts)[j], p), "text");
      if (!t) missing(p + ".text");
      text += require_string(*t, p + ".text");
    }
    if (!text.empty()) break;
  }
  return text;
}

// The assistant message that a function call or an output message continues: the last
// message when it is an assistant's that no tool result followed, else a new one.
json& assistant_turn(json& messages) {
  if (messages.empty() || messages.back()["role"] != "assistant") {
    messages.push_back({{"role", "assistant"}, {"content", ""}});
  }
  return messages.back();
}

}  // namespace

json responses_input_messages(const json& input) {
  json messages = json::array();
  if (input.is_string()) {
    messages.push_back({{"role", "user"}, {"content", input}});
    return normalize_messages(messages);
  }
  if (!input.is_array()) wrong_type("input", "a string or an array of items", input);
  if (input.empty()) fail("invalid_value", "input", "'input' must not be empty");
  for (std::size_t i = 0; i < input.size(); ++i) {
    const std::string p = param_at("input", i);
    const json& item = require_object(input[i], p);
    const json* type_field = field(item, "type");
    const std::string type =
        type_field ? require_string(*type_field, p + ".type") : std::string("message");
    if (type == "message") {
      const json* role = field(item, "role");
      if (!role) missing(p + ".role");
      const std::string& r = require_string(*role, p + ".role");
      if (r != "user" && r != "assistant" && r != "system" && r != "developer") {
        fail("invalid_value", p + ".role",
             "'" + p + ".role' must be 'user', 'assistant', 'system' or 'developer'");
      }
      const json* content = field(item, "content");
      if (!content) missing(p + ".content");
      std::string parts = message_content(*content, p + ".content");
      // Reasoning items come before the message they belong to.
      if (r == "assistant" && !messages.empty() && messages.back()["role"] == "assistant" &&
          messages.back()["content"] == "" && !messages.back().contains("tool_calls")) {
        messages.back()["content"] = std::move(parts);
      } else {
        messages.push_back({{"role", r}, {"content", std::move(parts)}});
      }
    } else if (type == "function_call") {
      const json* call_id = field(item, "call_id");
      if (!call_id) missing(p + ".call_id");
      const json* name = field(item, "name");
      if (!name) missing(p + ".name");
      const json* arguments = field(item, "arguments");
      if (!arguments) missing(p + ".arguments");
      json& turn = assistant_turn(messages);
      if (!turn.contains("tool_calls")) turn["tool_calls"] = json::array();
      turn["tool_calls"].push_back(
          {{"id", require_string(*call_id, p + ".call_id")},
           {"type", "function"},
           {"function",
            {{"name", require_string(*name, p + ".name")},
             {"arguments", require_string(*arguments, p + ".arguments")}}}});
    } else if (type == "function_call_output") {
      const json* call_id = field(item, "call_id");
      if (!call_id) missing(p + ".call_id");
      const json* output = field(item, "output");
      if (!output) missing(p + ".output");
      messages.push_back({{"role", "tool"},
                          {"tool_call_id", require_string(*call_id, p + ".call_id")},
                          {"content", message_content(*output, p + ".output")}});
    } else if (type == "reasoning") {
      std::string text = reasoning_text(item, p);
      if (!messages.empty() && messages.back()["role"] == "assistant") {
        messages.push_back({{"role", "assistant"}, {"content", ""}});
      }
      json& turn = assistant_turn(messages);
      turn["reasoning_content"] = turn.value("reasoning_content", "") + text;
    } else if (type == "item_reference") {
      unsupported(p + ".type", "'item_reference' (send the items, or previous_response_id)");
    } else {
      unsupported(p + ".type", "input item type '" + type + "'");
    }
  }
  return normalize_messages(messages);
}

namespace {

// Function tools in chat completions' shape; built-in tools refused by name.
json chat_tools(const json& tools) {
  require_array(tools, "tools");
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const std::string p = param_at("tools", i);
    const json& tool = require_object(tools[i], p);
    const json* type = field(tool, "type");
    if (!type) missing(p + ".type");
    const std::string& t = require_string(*type, p + ".type");
    if (t != "function") unsupported(p + ".type", "the built-in tool '" + t + "'");
    const json* name = field(tool, "name");
    if (!name) missing(p + ".name");
    json fn = {{"name", require_string(*name, p + ".name")}};
    if (const json* d = field(tool, "description")) {
      fn["description"] = require_string(*d, p + ".description");
    }
    if (const json* params = field(tool, "parameters")) {
      fn["parameters"] = require_object(*params, p + ".parameters");
    }
    out.push_back({{"type", "function"}, {"function", std::move(fn)}});
  }
  return out;
}

json chat_tool_choice(const json& choice) {
  if (choice.is_string()) return choice;  // none, auto, required: the chat parser checks
  require_object(choice, "tool_choice");
  const json* type = field(choice, "type");
  if (!type) missing("tool_choice.type");
  const std::string& t = require_string(*type, "tool_choice.type");
  if (t != "function") unsupported("tool_choice.type", "'tool_choice' of type '" + t + "'");
  const json* name = field(choice, "name");
  if (!name) missing("tool_choice.name");
  return {{"type", "function"},
          {"function", {{"name", require_string(*name, "tool_choice.name")}}}};
}

// text.format as chat completions' response_format.
json chat_response_format(const json& text) {
  require_object(text, "text");
  const json* format = field(text, "format");
  if (!format) return nullptr;
  require_object(*format, "text.format");
  const json* type = field(*format, "type");
  if (!type) missing("text.format.type");
  const std::string& t = require_string(*type, "text.format.type");
  if (t == "text" || t == "json_object") return {{"type", t}};
  if (t != "json_schema") {
    fail("invalid_value", "text.format.type",
         "'text.format.type' must be 'text', 'json_object' or 'json_schema'");
  }
  json spec = json::object();
  for (const char* key : {"name", "schema", "strict", "description"}) {
    if (const json* v = field(*format, key)) spec[key] = *v;
  }
  if (!spec.contains("schema")) missing("text.format.schema");
  return {{"type", "json_schema"}, {"json_schema", std::move(spec)}};
}

}  // namespace

ResponsesRequest parse_responses_request(const json& body, const RequestDefaults& defaults) {
  for (const char* key : {"background", "conversation", "prompt"}) {
    const json* v = field(body, key);
    if (v && !(v->is_boolean() && !v->get<bool>())) unsupported(key, std::string("'") + key + "'");
  }
  ResponsesRequest r;
  const json* input = field(body, "input");
  if (!input) missing("input");
  // The chat completions request this one amounts to: one parser, one set of checks.
  json chat = {{"messages", responses_input_messages(*input)}};
  if (const json* v = field(body, "model")) chat["model"] = *v;
  if (const json* v = field(body, "tools")) chat["tools"] = chat_tools(*v);
  if (const json* v = field(body, "tool_choice")) chat["tool_choice"] = chat_tool_choice(*v);
  if (const json* v = field(body, "parallel_tool_calls")) chat["parallel_tool_calls"] = *v;
  if (const json* v = field(body, "text")) {
    json format = chat_response_format(*v);
    if (!format.is_null()) chat["response_format"] = std::move(format);
  }
  if (const json* v = field(body, "max_output_tokens")) {
    if (require_int(*v, "max_output_tokens") < 1) {
      fail("invalid_value", "max_output_tokens", "'max_output_tokens' must be at least 1");
    }
    chat["max_completion_tokens"] = *v;
  }
  for (const char* key : {"temperature", "top_p", "stream"}) {
    if (const json* v = field(body, key)) chat[key] = *v;
  }
  if (const json* v = field(body, "top_logprobs"); v && require_int(*v, "top_logprobs") != 0) {
    unsupported("top_logprobs", "'top_logprobs'");
  }
  if (const json* v = field(body, "reasoning")) {
    require_object(*v, "reasoning");
    if (const json* effort = field(*v, "effort")) {
      chat["reasoning_effort"] = require_string(*effort, "reasoning.effort");
    }
  }
  r.chat = parse_chat_request(chat, defaults);

  if (const json* v = field(body, "instructions")) {
    r.instructions = require_string(*v, "instructions");
  }
  if (const json* v = field(body, "previous_response_id")) {
    r.previous_response_id = require_string(*v, "previous_response_id");
  }
  if (const json* v = field(body, "store")) r.store = require_bool(*v, "store");
  if (const json* v = field(body, "metadata")) require_object(*v, "metadata");

  // What the response object repeats, as given (or its defaults).
  json& e = r.echo;
  e["instructions"] = r.instructions ? json(*r.instructions) : json(nullptr);
  e["max_output_tokens"] = body.value("max_output_tokens", json(nullptr));
  e["metadata"] = body.value("metadata", json::object());
  e["parallel_tool_calls"] = r.chat.prompt.parallel_tool_calls;
  e["previous_response_id"] = body.value("previous_response_id", json(nullptr));
  e["reasoning"] = body.value("reasoning", json{{"effort", nullptr}, {"summary", nullptr}});
  e["store"] = r.store;
  e["temperature"] = r.chat.common.sampling.temperature;
  e["text"] = body.value("text", json{{"format", {{"type", "text"}}}});
  e["tool_choice"] = body.value("tool_choice", json("auto"));
  e["tools"] = body.value("tools", json::array());
  e["top_p"] = r.chat.common.sampling.top_p;
  e["truncation"] = "disabled";
  return r;
}

}  // namespace lmserve::server
