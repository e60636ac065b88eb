#include "server/responses_format.h"

namespace lmserve::server {

std::string new_response_id(std::string_view prefix) {
  std::string id(prefix);
  for (char c : new_uuid4()) {
    if (c != '-') id += c;
  }
  return id;
}

json assistant_chat_message(const chat::ChatMessage& message) {
  json m = {{"role", "assistant"}, {"content", message.content}};
  if (!message.reasoning.empty()) m["reasoning_content"] = message.reasoning;
  if (message.tool_calls.empty()) return m;
  json calls = json::array();
  for (const chat::ToolCall& call : message.tool_calls) {
    json arguments = json::parse(call.arguments, nullptr, /*allow_exceptions=*/false);
    if (arguments.is_discarded()) arguments = json::object();
    calls.push_back({{"id", call.id},
                     {"type", "function"},
                     {"function", {{"name", call.name}, {"arguments", std::move(arguments)}}}});
  }
  m["tool_calls"] = std::move(calls);
  return m;
}

namespace {

json usage_object(const UsageCounts& u) {
  return {{"input_tokens", u.prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"output_tokens", u.completion_tokens},
          {"output_tokens_details", {{"reasoning_tokens", u.reasoning_tokens}}},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json reasoning_item(const std::string& id, const std::string& text) {
  return {{"id", id},
          {"type", "reasoning"},
          {"summary", json::array()},
          {"content", json::array({{{"type", "reasoning_text"}, {"text", text}}})},
          {"status", "completed"}};
}

json text_part(const std::string& text) {
  return {{"type", "output_text"},
          {"text", text},
          {"annotations", json::array()},
          {"logprobs", json::array()}};
}

json message_item(const std::string& id, const std::string& text) {
  return {{"id", id},
          {"type", "message"},
          {"status", "completed"},
          {"role", "assistant"},
          {"content", json::array({text_part(text)})}};
}

json function_call_item(const std::string& id, const std::string& call_id, const std::string& name,
                        const std::string& arguments, std::string_view status = "completed") {
  return {{"id", id},     {"type", "function_call"}, {"status", status}, {"call_id", call_id},
          {"name", name}, {"arguments", arguments}};
}

}  // namespace

ResponsesFormat::ResponsesFormat(ResponseMeta meta, json echo, ResponseCompleted on_completed)
    : meta_(std::move(meta)), echo_(std::move(echo)), on_completed_(std::move(on_completed)) {}

json ResponsesFormat::response(std::string_view status, json output) const {
  json r = {{"id", meta_.id},
            {"object", "response"},
            {"created_at", meta_.created},
            {"status", status},
            {"background", false},
            {"error", nullptr},
            {"incomplete_details", nullptr},
            {"model", meta_.model},
            {"output", std::move(output)},
            {"usage", nullptr},
            {"user", nullptr}};
  for (const auto& [key, value] : echo_.items()) r[key] = value;
  return r;
}

void ResponsesFormat::event(std::string_view type, json data, std::string& out) {
  json e = {{"type", type}, {"sequence_number", sequence_++}};
  for (auto& [key, value] : data.items()) e[key] = std::move(value);
  out += sse_event(type, e);
}

void ResponsesFormat::open(std::string& out) {
  event("response.created", {{"response", response("in_progress", json::array())}}, out);
  event("response.in_progress", {{"response", response("in_progress", json::array())}}, out);
}

void ResponsesFormat::begin_item(Item kind, std::string& out, const chat::ToolCallDelta* call) {
  if (item_ == kind && kind != Item::kFunctionCall) return;
  end_item(out);
  item_ = kind;
  text_.clear();
  const int index = static_cast<int>(output_.size());
  json part;
  switch (kind) {
    case Item::kReasoning:
      current_ = {{"id", new_response_id("rs_")},
                  {"type", "reasoning"},
                  {"summary", json::array()},
                  {"content", json::array()}};
      part = {{"type", "reasoning_text"}, {"text", ""}};
      break;
    case Item::kMessage:
      current_ = {{"id", new_response_id("msg_")},
                  {"type", "message"},
                  {"status", "in_progress"},
                  {"role", "assistant"},
                  {"content", json::array()}};
      part = {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}};
      break;
    case Item::kFunctionCall:
      current_ =
          function_call_item(new_response_id("fc_"), call->id, call->name, "", "in_progress");
      break;
    case Item::kNone:
      return;
  }
  event("response.output_item.added", {{"output_index", index}, {"item", current_}}, out);
  if (!part.is_null()) {
    event("response.content_part.added",
          {{"item_id", current_["id"]},
           {"output_index", index},
           {"content_index", 0},
           {"part", std::move(part)}},
          out);
  }
}

void ResponsesFormat::end_item(std::string& out) {
  if (item_ == Item::kNone) return;
  const int index = static_cast<int>(output_.size());
  const json id = current_["id"];
  json item;
  auto done_part = [&](std::string_view done_type, json part) {
    event(done_type,
          {{"item_id", id}, {"output_index", index}, {"content_index", 0}, {"text", text_}}, out);
    event("response.content_part.done",
          {{"item_id", id}, {"output_index", index}, {"content_index", 0}, {"part", part}}, out);
  };
  switch (item_) {
    case Item::kReasoning:
      done_part("response.reasoning_text.done", {{"type", "reasoning_text"}, {"text", text_}});
      item = reasoning_item(id, text_);
      break;
    case Item::kMessage:
      done_part("response.output_text.done", text_part(text_));
      item = message_item(id, text_);
      break;
    case Item::kFunctionCall:
      event("response.function_call_arguments.done",
            {{"item_id", id},
             {"output_index", index},
             {"name", current_["name"]},
             {"arguments", text_}},
            out);
      item = function_call_item(id, current_["call_id"], current_["name"], text_);
      break;
    case Item::kNone:
      return;
  }
  event("response.output_item.done", {{"output_index", index}, {"item", item}}, out);
  output_.push_back(std::move(item));
  item_ = Item::kNone;
}

// One choice (the API has no `n`).
void ResponsesFormat::delta(int /*choice*/, const chat::MessageDelta& delta, std::string& out) {
  message_.apply(delta);
  auto text_delta = [&](Item kind, std::string_view type, const std::string& text) {
    if (text.empty()) return;
    begin_item(kind, out);
    text_ += text;
    json data = {{"item_id", current_["id"]},
                 {"output_index", static_cast<int>(output_.size())},
                 {"content_index", 0},
                 {"delta", text}};
    if (kind == Item::kMessage) data["logprobs"] = json::array();
    event(type, std::move(data), out);
  };
  text_delta(Item::kReasoning, "response.reasoning_text.delta", delta.reasoning);
  text_delta(Item::kMessage, "response.output_text.delta", delta.content);
  for (const chat::ToolCallDelta& piece : delta.tool_calls) {
    if (!piece.id.empty()) begin_item(Item::kFunctionCall, out, &piece);
    if (piece.arguments.empty()) continue;
    text_ += piece.arguments;
    event("response.function_call_arguments.delta",
          {{"item_id", current_["id"]},
           {"output_index", static_cast<int>(output_.size())},
           {"delta", piece.arguments}},
          out);
  }
}

json ResponsesFormat::completed(const chat::ChatMessage& message,
                                const GenerationOutcome& outcome) {
  const bool cut = std::string_view(outcome.finish_reason) == "length";
  json r = response(cut ? "incomplete" : "completed", output_);
  if (cut) r["incomplete_details"] = {{"reason", "max_output_tokens"}};
  r["usage"] = usage_object(outcome.usage);
  if (on_completed_) on_completed_(r, message);
  return r;
}

void ResponsesFormat::finish(const GenerationOutcome& outcome, std::string& out) {
  if (!outcome.ok) {
    json r = response("failed", output_);
    r["error"] = {{"code", "server_error"}, {"message", outcome.error}};
    event("response.failed", {{"response", std::move(r)}}, out);
    return;
  }
  end_item(out);
  json r = completed(message_, outcome);
  const bool cut = r["status"] == "incomplete";
  event(cut ? "response.incomplete" : "response.completed", {{"response", std::move(r)}}, out);
}

json ResponsesFormat::body(const std::vector<ChoiceResult>& choices,
                           const GenerationOutcome& outcome) {
  const chat::ChatMessage& message = choices.front().message;
  if (!message.reasoning.empty()) {
    output_.push_back(reasoning_item(new_response_id("rs_"), message.reasoning));
  }
  if (!message.content.empty()) {
    output_.push_back(message_item(new_response_id("msg_"), message.content));
  }
  for (const chat::ToolCall& call : message.tool_calls) {
    output_.push_back(
        function_call_item(new_response_id("fc_"), call.id, call.name, call.arguments));
  }
  return completed(message, outcome);
}

}  // namespace lmserve::server
