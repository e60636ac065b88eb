// OpenAI's Responses API request (POST /v1/responses) mapped onto a chat request: input items
// become chat messages, function tools chat tools, text.format a response_format. Built-in
// tools, files and images are refused naming them. Pure functions: every violation is an
// ApiError naming its param.
#pragma once

#include <optional>
#include <string>

#include "server/openai_request.h"

namespace lmserve::server {

struct ResponsesRequest {
  // prompt.messages holds the new input only (no instructions, no previous conversation).
  ChatRequest chat;
  std::optional<std::string> instructions;
  std::optional<std::string> previous_response_id;
  bool store = true;
  // The request fields a response object repeats (instructions, tools, text, ...).
  json echo = json::object();
};

ResponsesRequest parse_responses_request(const json& body, const RequestDefaults& defaults);

// Input items (a string, or message / function_call / function_call_output / reasoning
// items) as chat messages, normalised as chat completions' are.
json responses_input_messages(const json& input);

}  // namespace lmserve::server
