// Anthropic's Messages API request (POST /v1/messages, /v1/messages/count_tokens) mapped onto
// a chat request: system and content blocks become chat messages (tool_use as tool_calls,
// tool_result as tool messages, thinking as reasoning_content), tools and tool_choice their
// chat forms, `thinking` a reasoning budget. Pure functions: every violation is an ApiError
// naming its param.
#pragma once

#include "server/openai_request.h"

namespace lmserve::server {

ChatRequest parse_messages_request(const json& body, const RequestDefaults& defaults);
// count_tokens: the prompt fields only (max_tokens is not needed).
chat::ChatPromptInput parse_count_tokens_request(const json& body);

}  // namespace lmserve::server
