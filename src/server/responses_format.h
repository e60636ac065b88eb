// OpenAI's Responses API as a ResponseFormat: the response object (output items: reasoning,
// message, function_call; usage with cached and reasoning tokens) and its stream of typed
// events (response.created … response.completed, each with a sequence_number).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "server/openai_response.h"
#include "server/response_writers.h"

namespace lmserve::server {

// The response object's id ("resp_" + 32 hex digits); items get "msg_", "rs_", "fc_".
std::string new_response_id(std::string_view prefix = "resp_");

// An assistant message as a chat message (what the store keeps of the output): content,
// reasoning_content, and tool_calls with their arguments parsed, as templates take them.
json assistant_chat_message(const chat::ChatMessage& message);

// Called with the final response object and the assistant message of a generation that
// ended ok (the store keeps them).
using ResponseCompleted = std::function<void(const json& response, const chat::ChatMessage&)>;

class ResponsesFormat final : public ResponseFormat {
 public:
  // `echo`: the request fields the response repeats (ResponsesRequest::echo).
  ResponsesFormat(ResponseMeta meta, json echo, ResponseCompleted on_completed);

  void open(std::string& out) override;
  void delta(int choice, const chat::MessageDelta& delta, std::string& out) override;
  void finish(const GenerationOutcome& outcome, std::string& out) override;
  json body(const std::vector<ChoiceResult>& choices, const GenerationOutcome& outcome) override;

 private:
  enum class Item { kNone, kReasoning, kMessage, kFunctionCall };

  json response(std::string_view status, json output) const;  // the response object
  void event(std::string_view type, json data, std::string& out);
  void begin_item(Item kind, std::string& out, const chat::ToolCallDelta* call = nullptr);
  void end_item(std::string& out);
  json completed(const chat::ChatMessage& message, const GenerationOutcome& outcome);

  ResponseMeta meta_;
  json echo_;
  ResponseCompleted on_completed_;
  int sequence_ = 0;
  // The stream's items so far and the open one.
  json output_ = json::array();
  Item item_ = Item::kNone;
  json current_;               // the open item
  std::string text_;           // its text (reasoning, message) or arguments (function call)
  chat::ChatMessage message_;  // the stream's deltas folded
};

}  // namespace lmserve::server
