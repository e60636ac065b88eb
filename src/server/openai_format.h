// Chat completions and completions as a ResponseFormat: chat.completion(.chunk) and
// text_completion bodies and chunks (api-contract §3) of one or more choices (`n`),
// logprobs, `data: [DONE]`.
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
  int choices = 1;                            // n
};

class OpenAiFormat final : public ResponseFormat {
 public:
  explicit OpenAiFormat(OpenAiShape shape);

  void prompt_done(int choice, std::string& out) override { send_role(choice, out); }
  void delta(int choice, const chat::MessageDelta& delta, std::string& out) override;
  void finish_choice(int choice, const GenerationOutcome& outcome, std::string& out) override;
  void finish(const GenerationOutcome& outcome, std::string& out) override;
  json body(const std::vector<ChoiceResult>& choices, const GenerationOutcome& outcome) override;
  void add_logprobs(int choice, const std::vector<engine::TokenLogprob>& entries) override;

 private:
  struct Choice {
    bool role_sent = false;                     // completions streams have no role event
    std::optional<LogprobsFormatter> logprobs;  // each choice has its own text offsets
    std::vector<engine::TokenLogprob> pending_logprobs;
  };

  void send_role(int choice, std::string& out);  // a chat choice's stream opens with its role
  // Puts the choice's pending logprobs on this chunk (the first one sent after they were
  // sampled).
  void attach_logprobs(Choice& choice, json& chunk);

  OpenAiShape shape_;
  std::vector<Choice> choices_;
};

}  // namespace lmserve::server
