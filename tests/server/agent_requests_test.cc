// The Responses and Messages requests as the chat requests they amount to: input items and
// content blocks as chat messages, tools and tool_choice, budgets, and the params of refusals.
#include <gtest/gtest.h>

#include "server/messages_request.h"
#include "server/responses_request.h"
#include "util/error.h"

namespace lmserve::server {
namespace {

template <typename F>
void expect_refused(F&& f, const std::string& code, const std::string& param) {
  try {
    f();
    ADD_FAILURE() << "expected ApiError " << code << " for " << param;
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.code(), code) << e.message();
    EXPECT_EQ(e.param().value_or(""), param) << e.message();
  }
}

TEST(ResponsesRequest, InputItemsBecomeChatMessages) {
  const json input = json::parse(R"([
    {"role": "developer", "content": "Be brief."},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
    {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "Call it."}]},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me see."}]},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
  ])");
  const json messages = responses_input_messages(input);
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0]["role"], "developer");
  EXPECT_EQ(messages[1]["content"], "Weather?");
  // One assistant turn: its reasoning, its text and its call.
  EXPECT_EQ(messages[2]["role"], "assistant");
  EXPECT_EQ(messages[2]["reasoning_content"], "Call it.");
  EXPECT_EQ(messages[2]["content"], "Let me see.");
  EXPECT_EQ(messages[2]["tool_calls"][0]["function"]["arguments"], json({{"city", "Paris"}}));
  EXPECT_EQ(messages[3],
            json({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}));
  const json parts = json::parse(
      R"([{"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}])");
  EXPECT_EQ(responses_input_messages(parts)[0]["content"], "a\nb");
  EXPECT_EQ(responses_input_messages("Hi"), json::parse(R"([{"role":"user","content":"Hi"}])"));
}

TEST(ResponsesRequest, MapsFieldsOntoTheChatRequest) {
  const json body = json::parse(R"({
    "model": "m", "input": "Hi", "instructions": "Sys", "max_output_tokens": 7,
    "temperature": 0.5, "store": false, "previous_response_id": "resp_x",
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    "tool_choice": {"type": "function", "name": "f"},
    "reasoning": {"effort": "low"}
  })");
  const ResponsesRequest r = parse_responses_request(body, {});
  EXPECT_EQ(r.chat.common.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.chat.common.sampling.temperature, 0.5f);
  EXPECT_TRUE(r.chat.force_tool_call);
  EXPECT_EQ(r.chat.prompt.tools[0]["function"]["name"], "f");
  EXPECT_EQ(r.chat.prompt.template_kwargs["reasoning_effort"], "low");
  EXPECT_EQ(r.instructions, "Sys");
  EXPECT_EQ(r.previous_response_id, "resp_x");
  EXPECT_FALSE(r.store);
  EXPECT_EQ(r.echo["max_output_tokens"], 7);
  EXPECT_EQ(r.echo["instructions"], "Sys");

  const json text = json::parse(
      R"({"input": "x", "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}}})");
  EXPECT_TRUE(parse_responses_request(text, {}).chat.common.grammar);
}

// Neither API has `n`: a body that carries one still asks for one generation, which is all
// their formats can word.
TEST(AgentRequests, HaveOneChoiceWhateverTheBodySays) {
  EXPECT_EQ(parse_responses_request(json::parse(R"({"input": "x", "n": 3})"), {}).chat.common.n, 1);
  const json messages =
      json::parse(R"({"max_tokens": 5, "n": 3, "messages": [{"role": "user", "content": "x"}]})");
  EXPECT_EQ(parse_messages_request(messages, {}).common.n, 1);
}

TEST(ResponsesRequest, RefusesWhatItCannotServeNamingIt) {
  auto parse = [](const char* body) { return parse_responses_request(json::parse(body), {}); };
  expect_refused([&] { parse(R"({})"); }, "missing_required_parameter", "input");
  expect_refused([&] { parse(R"({"input": "x", "tools": [{"type": "web_search"}]})"); },
                 "unsupported_parameter", "tools[0].type");
  expect_refused(
      [&] { parse(R"({"input": [{"role": "user", "content": [{"type": "input_image"}]}]})"); },
      "unsupported_parameter", "input[0].content[0].type");
  expect_refused([&] { parse(R"({"input": [{"type": "item_reference", "id": "x"}]})"); },
                 "unsupported_parameter", "input[0].type");
  expect_refused([&] { parse(R"({"input": [{"type": "function_call", "name": "f"}]})"); },
                 "missing_required_parameter", "input[0].call_id");
  expect_refused([&] { parse(R"({"input": [{"role": "tool", "content": "x"}]})"); },
                 "invalid_value", "input[0].role");
  expect_refused([&] { parse(R"({"input": "x", "max_output_tokens": 0})"); }, "invalid_value",
                 "max_output_tokens");
  expect_refused([&] { parse(R"({"input": "x", "background": true})"); }, "unsupported_parameter",
                 "background");
  expect_refused([&] { parse(R"({"input": "x", "tool_choice": {"type": "file_search"}})"); },
                 "unsupported_parameter", "tool_choice.type");
}

TEST(MessagesRequest, BlocksBecomeChatMessages) {
  const json body = json::parse(R"({
    "model": "claude", "max_tokens": 50, "system": [{"type": "text", "text": "Sys"}],
    "messages": [
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Call it.", "signature": "s"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
        {"type": "text", "text": "Thanks"}]}
    ],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
    "stop_sequences": ["END"], "top_k": 5,
    "thinking": {"type": "enabled", "budget_tokens": 20}
  })");
  const ChatRequest r = parse_messages_request(body, {});
  const json& m = r.prompt.messages;
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[0]["content"], "Sys");
  EXPECT_EQ(m[2]["reasoning_content"], "Call it.");
  EXPECT_EQ(m[2]["tool_calls"][0]["id"], "toolu_1");
  EXPECT_EQ(m[2]["tool_calls"][0]["function"]["arguments"], json({{"city", "Paris"}}));
  EXPECT_EQ(m[3]["role"], "tool");
  EXPECT_EQ(m[3]["tool_call_id"], "toolu_1");
  EXPECT_EQ(m[4]["content"], "Thanks");
  EXPECT_EQ(r.prompt.tools[0]["function"]["parameters"], json({{"type", "object"}}));
  EXPECT_TRUE(r.force_tool_call);
  EXPECT_FALSE(r.prompt.parallel_tool_calls);
  EXPECT_EQ(r.common.max_tokens, 50);
  EXPECT_EQ(r.common.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.common.sampling.top_k, 5);
  EXPECT_EQ(r.reasoning_budget, 20);
  EXPECT_EQ(r.prompt.template_kwargs["enable_thinking"], true);
}

TEST(MessagesRequest, RefusesWhatItCannotServeNamingIt) {
  auto parse = [](const char* body) { return parse_messages_request(json::parse(body), {}); };
  const std::string ask = R"("messages": [{"role": "user", "content": "x"}])";
  expect_refused([&] { parse(("{" + ask + "}").c_str()); }, "missing_required_parameter",
                 "max_tokens");
  expect_refused(
      [&] {
        parse(
            R"({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image"}]}]})");
      },
      "unsupported_parameter", "messages[0].content[0].type");
  expect_refused(
      [&] {
        parse(("{\"max_tokens\": 5, \"tools\": [{\"type\": \"bash_20250124\"}], " + ask + "}")
                  .c_str());
      },
      "unsupported_parameter", "tools[0].type");
  expect_refused(
      [&] {
        parse(("{\"max_tokens\": 5, \"thinking\": {\"type\": \"enabled\", \"budget_tokens\": 5}, " +
               ask + "}")
                  .c_str());
      },
      "invalid_value", "thinking.budget_tokens");
  expect_refused(
      [&] {
        parse(("{\"max_tokens\": 5, \"tool_choice\": {\"type\": \"some\"}, " + ask + "}").c_str());
      },
      "invalid_value", "tool_choice.type");
  expect_refused(
      [&] { parse(R"({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})"); },
      "invalid_value", "messages[0].role");
}

}  // namespace
}  // namespace lmserve::server
