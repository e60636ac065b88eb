#include "server/messages_format.h"

namespace lmserve::server {
namespace {

const char* anthropic_error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

// end_turn, max_tokens, stop_sequence or tool_use.
const char* stop_reason(const GenerationOutcome& outcome) {
  const std::string_view reason = outcome.finish_reason;
  if (reason == "length") return "max_tokens";
  if (reason == "tool_calls") return "tool_use";
  return outcome.stop_sequence.empty() ? "end_turn" : "stop_sequence";
}

json stop_sequence(const GenerationOutcome& outcome) {
  return outcome.stop_sequence.empty() ? json(nullptr) : json(outcome.stop_sequence);
}

// Anthropic counts cached prompt tokens apart from the others.
json usage(const UsageCounts& u) {
  return {{"input_tokens", u.prompt_tokens - u.cached_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", u.cached_tokens},
          {"output_tokens", u.completion_tokens}};
}

json arguments_object(const std::string& text) {
  json input = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return input.is_object() ? input : json::object();
}

}  // namespace

json anthropic_error_body(const ApiError& error) {
  return {{"type", "error"},
          {"error",
           {{"type", anthropic_error_type(error.http_status())}, {"message", error.message()}}}};
}

json MessagesFormat::message(json content) const {
  return {{"id", meta_.id},
          {"type", "message"},
          {"role", "assistant"},
          {"model", meta_.model},
          {"content", std::move(content)},
          {"stop_reason", nullptr},
          {"stop_sequence", nullptr},
          {"usage", usage({.prompt_tokens = prompt_tokens_})}};
}

void MessagesFormat::open(std::string& out) {
  out +=
      sse_event("message_start", {{"type", "message_start"}, {"message", message(json::array())}});
  out += keepalive(0, 0);
}

std::string MessagesFormat::keepalive(int, int) const {
  return sse_event("ping", {{"type", "ping"}});
}

void MessagesFormat::begin_block(Block kind, std::string& out, const chat::ToolCallDelta* call) {
  if (block_ == kind && kind != Block::kToolUse) return;
  end_block(out);
  block_ = kind;
  ++index_;
  json block;
  switch (kind) {
    case Block::kThinking:
      block = {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}};
      break;
    case Block::kText:
      block = {{"type", "text"}, {"text", ""}};
      break;
    case Block::kToolUse:
      block = {
          {"type", "tool_use"}, {"id", call->id}, {"name", call->name}, {"input", json::object()}};
      break;
    case Block::kNone:
      return;
  }
  out += sse_event("content_block_start",
                   {{"type", "content_block_start"}, {"index", index_}, {"content_block", block}});
}

void MessagesFormat::end_block(std::string& out) {
  if (block_ == Block::kNone) return;
  out += sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
  block_ = Block::kNone;
}

// One choice (the API has no `n`).
void MessagesFormat::delta(int /*choice*/, const chat::MessageDelta& delta, std::string& out) {
  auto send = [&](json d) {
    out += sse_event("content_block_delta",
                     {{"type", "content_block_delta"}, {"index", index_}, {"delta", std::move(d)}});
  };
  if (!delta.reasoning.empty()) {
    begin_block(Block::kThinking, out);
    send({{"type", "thinking_delta"}, {"thinking", delta.reasoning}});
  }
  if (!delta.content.empty()) {
    begin_block(Block::kText, out);
    send({{"type", "text_delta"}, {"text", delta.content}});
  }
  for (const chat::ToolCallDelta& piece : delta.tool_calls) {
    if (!piece.id.empty()) begin_block(Block::kToolUse, out, &piece);
    if (!piece.arguments.empty())
      send({{"type", "input_json_delta"}, {"partial_json", piece.arguments}});
  }
}

void MessagesFormat::finish(const GenerationOutcome& outcome, std::string& out) {
  if (!outcome.ok) {
    const ApiError error(outcome.status, "server_error", outcome.code, std::nullopt, outcome.error);
    out += sse_event("error", anthropic_error_body(error));
    return;
  }
  end_block(out);
  out += sse_event(
      "message_delta",
      {{"type", "message_delta"},
       {"delta",
        {{"stop_reason", stop_reason(outcome)}, {"stop_sequence", stop_sequence(outcome)}}},
       {"usage", usage(outcome.usage)}});
  out += sse_event("message_stop", {{"type", "message_stop"}});
}

json MessagesFormat::body(const std::vector<ChoiceResult>& choices,
                          const GenerationOutcome& outcome) {
  const chat::ChatMessage& message = choices.front().message;
  json content = json::array();
  if (!message.reasoning.empty()) {
    content.push_back({{"type", "thinking"}, {"thinking", message.reasoning}, {"signature", ""}});
  }
  if (!message.content.empty()) content.push_back({{"type", "text"}, {"text", message.content}});
  for (const chat::ToolCall& call : message.tool_calls) {
    content.push_back({{"type", "tool_use"},
                       {"id", call.id},
                       {"name", call.name},
                       {"input", arguments_object(call.arguments)}});
  }
  json body = this->message(std::move(content));
  body["stop_reason"] = stop_reason(outcome);
  body["stop_sequence"] = stop_sequence(outcome);
  body["usage"] = usage(outcome.usage);
  return body;
}

}  // namespace lmserve::server
