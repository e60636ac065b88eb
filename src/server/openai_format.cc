#include "server/openai_format.h"

namespace lmserve::server {

void OpenAiFormat::send_role(std::string& out) {
  if (role_sent_) return;
  role_sent_ = true;
  out += sse_data(chat_chunk(shape_.meta, {{"role", "assistant"}, {"content", ""}}, std::nullopt,
                             shape_.include_usage));
}

void OpenAiFormat::attach_logprobs(json& chunk) {
  if (!shape_.logprobs || pending_logprobs_.empty()) return;
  chunk["choices"][0]["logprobs"] = shape_.logprobs->format(pending_logprobs_);
  pending_logprobs_.clear();
}

void OpenAiFormat::delta(const chat::MessageDelta& delta, std::string& out) {
  send_role(out);
  if (!shape_.chat) {
    if (!delta.content.empty()) {
      json chunk = text_chunk(shape_.meta, delta.content, std::nullopt, shape_.include_usage);
      attach_logprobs(chunk);
      out += sse_data(chunk);
    }
    return;
  }
  for (json& chunk :
       chat_delta_chunks(shape_.meta, delta, shape_.reasoning_format, shape_.include_usage)) {
    attach_logprobs(chunk);
    out += sse_data(chunk);
  }
}

void OpenAiFormat::finish(const GenerationOutcome& outcome, std::string& out) {
  if (!outcome.ok) {
    out += sse_data(error_body("server_error", "generation_failed", std::nullopt, outcome.error));
    return;
  }
  send_role(out);
  json last =
      shape_.chat
          ? chat_chunk(shape_.meta, json::object(), outcome.finish_reason, shape_.include_usage)
          : text_chunk(shape_.meta, "", outcome.finish_reason, shape_.include_usage);
  attach_logprobs(last);
  out += sse_data(last);
  if (shape_.include_usage) out += sse_data(usage_chunk(shape_.meta, shape_.chat, outcome.usage));
  out += sse_done();
}

json OpenAiFormat::body(const chat::ChatMessage& message, const GenerationOutcome& outcome) {
  json body = shape_.chat ? chat_completion_body(shape_.meta, message, outcome.finish_reason,
                                                 outcome.usage, shape_.reasoning_format)
                          : text_completion_body(shape_.meta, message.content,
                                                 outcome.finish_reason, outcome.usage);
  if (shape_.logprobs) body["choices"][0]["logprobs"] = shape_.logprobs->format(pending_logprobs_);
  return body;
}

}  // namespace lmserve::server
