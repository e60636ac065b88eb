// Token log-probabilities in OpenAI's two response shapes (api-contract §3.4): the chat
// `{"content": [...]}` list and the legacy completions object. One formatter serves a whole
// response and a stream alike, so the concatenated chunks equal the whole response's list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/sampling.h"
#include "server/openai_response.h"

namespace lmserve::server {

// The bytes one token contributes (may be incomplete UTF-8).
using TokenBytes = std::function<std::string(std::int32_t)>;

class LogprobsFormatter {
 public:
  // top: alternatives per token (completions: null top_logprobs when 0).
  LogprobsFormatter(bool chat, int top, TokenBytes token_bytes);

  // The logprobs object for these entries, continuing the offsets of earlier calls.
  json format(const std::vector<engine::TokenLogprob>& entries);

 private:
  json chat_entry(std::int32_t id, float logprob) const;

  bool chat_;
  int top_;
  TokenBytes token_bytes_;
  std::size_t text_offset_ = 0;  // completions: characters before the next token
};

}  // namespace lmserve::server
