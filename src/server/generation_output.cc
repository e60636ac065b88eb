#include "server/generation_output.h"

#include <spdlog/spdlog.h>

namespace lmserve::server {

GenerationOutput::GenerationOutput(const chat::RenderedPrompt& prompt)
    : parser_(std::in_place, prompt.output),
      think_token_ids_(prompt.output.reasoning ? prompt.think_token_ids : std::nullopt),
      starts_in_reasoning_(prompt.output.starts_in_reasoning) {}

chat::MessageDelta GenerationOutput::push(const std::string& text) {
  if (!parser_) return {.content = text};
  return parser_->push(text);
}

GenerationOutcome GenerationOutput::finish(const engine::GenerationEvent& event, int prompt_tokens,
                                           ServerCancel cause) {
  using Kind = engine::GenerationEvent::Kind;
  using engine::FinishReason;
  GenerationOutcome outcome;
  if (event.kind == Kind::kFailed) {
    outcome.error = event.error.empty() ? "Generation failed" : event.error;
    spdlog::error("generation failed: {}", outcome.error);
    return outcome;
  }
  if (event.finish_reason == FinishReason::kCancelled) {
    switch (cause) {
      case ServerCancel::kShutdown:
        outcome.status = 503;
        outcome.code = "shutting_down";
        outcome.error = "The server is shutting down";
        break;
      case ServerCancel::kWorkerLost:
        outcome.status = 503;
        outcome.code = "worker_unavailable";
        outcome.error = "The generation worker stopped";
        break;
      case ServerCancel::kNone:
        outcome.error = "Generation was cancelled";
        break;
    }
    return outcome;
  }
  if (event.finish_reason != FinishReason::kStop && event.finish_reason != FinishReason::kLength) {
    outcome.error = "Generation failed";
    return outcome;
  }
  outcome.ok = true;
  if (parser_) outcome.tail = parser_->finish();
  // A stop after at least one parsed call is "tool_calls"; "length" stays (§4.3).
  outcome.finish_reason = event.finish_reason == FinishReason::kLength ? "length"
                          : parser_ && parser_->tool_call_count() > 0  ? "tool_calls"
                                                                       : "stop";
  outcome.stop_sequence = event.stop_sequence;
  outcome.usage = {.prompt_tokens = prompt_tokens,
                   .completion_tokens = event.usage.completion_tokens,
                   .cached_tokens = event.usage.cached_tokens};
  if (think_token_ids_) {
    outcome.usage.reasoning_tokens =
        chat::count_reasoning_tokens(event.completion_ids, think_token_ids_->first,
                                     think_token_ids_->second, starts_in_reasoning_);
  }
  return outcome;
}

}  // namespace lmserve::server
