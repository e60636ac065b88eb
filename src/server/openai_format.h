// Chat completions and completions as a ResponseFormat: chat.completion(.chunk) and
// text_completion bodies and chunks (api-contract §3), logprobs, `data: [DONE]`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "server/logprobs_json.h"
#include "server/openai_response.h"
#include "server/response_writers.h"

namespace lmserve::server {

struct OpenAiShape {
  ResponseMeta meta;
  bool chat = true;
  bool include_usage = false;  // stream_options.include_usage
  ReasoningFormat reasoning_format = ReasoningFormat::kReasoningContent;
  std::optional<LogprobsFormatter> logprobs;  // when the request asked for them
};

class OpenAiFormat final : public ResponseFormat {
 public:
  explicit OpenAiFormat(OpenAiShape shape) : shape_(std::move(shape)), role_sent_(!shape_.chat) {}

  void prompt_done(std::string& out) override { send_role(out); }
  void delta(const chat::MessageDelta& delta, std::string& out) override;
  void finish(const GenerationOutcome& outcome, std::string& out) override;
  json body(const chat::ChatMessage& message, const GenerationOutcome& outcome) override;
  void add_logprobs(const std::vector<engine::TokenLogprob>& entries) override {
    pending_logprobs_.insert(pending_logprobs_.end(), entries.begin(), entries.end());
  }

 private:
  void send_role(std::string& out);  // chat streams open with the assistant role
  // Puts the pending logprobs on this chunk (the first one sent after they were sampled).
  void attach_logprobs(json& chunk);

  OpenAiShape shape_;
  bool role_sent_;  // completions streams have no role event
  std::vector<engine::TokenLogprob> pending_logprobs_;
};

}  // namespace lmserve::server
