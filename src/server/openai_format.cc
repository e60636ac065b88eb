#include "server/openai_format.h"

namespace lmserve::server {

OpenAiFormat::OpenAiFormat(OpenAiShape shape)
    : shape_(std::move(shape)),
      choices_(static_cast<std::size_t>(shape_.choices),
               Choice{.role_sent = !shape_.chat, .logprobs = shape_.logprobs}) {}

void OpenAiFormat::send_role(int choice, std::string& out) {
  bool& sent = choices_[static_cast<std::size_t>(choice)].role_sent;
  if (sent) return;
  sent = true;
  out += sse_data(chat_chunk(shape_.meta, choice, {{"role", "assistant"}, {"content", ""}},
                             std::nullopt, shape_.include_usage));
}

void OpenAiFormat::add_logprobs(int choice, const std::vector<engine::TokenLogprob>& entries) {
  auto& pending = choices_[static_cast<std::size_t>(choice)].pending_logprobs;
  pending.insert(pending.end(), entries.begin(), entries.end());
}

void OpenAiFormat::attach_logprobs(Choice& choice, json& chunk) {
  if (!choice.logprobs || choice.pending_logprobs.empty()) return;
  chunk["choices"][0]["logprobs"] = choice.logprobs->format(choice.pending_logprobs);
  choice.pending_logprobs.clear();
}

void OpenAiFormat::delta(int index, const chat::MessageDelta& delta, std::string& out) {
  send_role(index, out);
  Choice& choice = choices_[static_cast<std::size_t>(index)];
  if (!shape_.chat) {
    if (!delta.content.empty()) {
      json chunk =
          text_chunk(shape_.meta, index, delta.content, std::nullopt, shape_.include_usage);
      attach_logprobs(choice, chunk);
      out += sse_data(chunk);
    }
    return;
  }
  for (json& chunk : chat_delta_chunks(shape_.meta, index, delta, shape_.reasoning_format,
                                       shape_.include_usage)) {
    attach_logprobs(choice, chunk);
    out += sse_data(chunk);
  }
}

void OpenAiFormat::finish_choice(int index, const GenerationOutcome& outcome, std::string& out) {
  send_role(index, out);
  json last = shape_.chat
                  ? chat_chunk(shape_.meta, index, json::object(), outcome.finish_reason,
                               shape_.include_usage)
                  : text_chunk(shape_.meta, index, "", outcome.finish_reason, shape_.include_usage);
  attach_logprobs(choices_[static_cast<std::size_t>(index)], last);
  out += sse_data(last);
}

void OpenAiFormat::finish(const GenerationOutcome& outcome, std::string& out) {
  if (!outcome.ok) {
    out += sse_data(error_body("server_error", "generation_failed", std::nullopt, outcome.error));
    return;
  }
  if (shape_.include_usage) out += sse_data(usage_chunk(shape_.meta, shape_.chat, outcome.usage));
  out += sse_done();
}

json OpenAiFormat::body(const std::vector<ChoiceResult>& results,
                        const GenerationOutcome& outcome) {
  json choices = json::array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    const ChoiceResult& r = results[i];
    const int index = static_cast<int>(i);
    json choice = shape_.chat ? chat_choice(index, r.message, r.outcome.finish_reason,
                                            shape_.reasoning_format)
                              : text_choice(index, r.message.content, r.outcome.finish_reason);
    Choice& state = choices_[i];
    if (state.logprobs) choice["logprobs"] = state.logprobs->format(state.pending_logprobs);
    choices.push_back(std::move(choice));
  }
  return shape_.chat ? chat_completion_body(shape_.meta, std::move(choices), outcome.usage)
                     : text_completion_body(shape_.meta, std::move(choices), outcome.usage);
}

}  // namespace lmserve::server
