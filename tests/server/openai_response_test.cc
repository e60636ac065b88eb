// Response bodies, stream chunks, error objects and SSE framing (api-contract §3, §5.1).
#include "server/openai_response.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace lmserve::server {
namespace {

const ResponseMeta kMeta{"chatcmpl-abc", 1767225600, "gpt-4o"};

TEST(Ids, Uuid4FormatAndUniqueness) {
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_uuid4();
    ASSERT_EQ(id.size(), 36u);
    ASSERT_TRUE(std::regex_match(id, uuid)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Fingerprint, NamesVersionAndSha) {
  const std::string& fp = system_fingerprint();
  EXPECT_TRUE(std::regex_match(fp, std::regex("fp_lmserve-[0-9]+\\.[0-9]+\\.[0-9]+-[0-9a-z]+")))
      << fp;
  EXPECT_EQ(&fp, &system_fingerprint());
}

TEST(ErrorBody, AlwaysHasTheFourKeys) {
  json e = error_body(
      ApiError::invalid_request("invalid_value", "temperature", "temperature must be at least 0"));
  EXPECT_EQ(e, json({{"error",
                      {{"message", "temperature must be at least 0"},
                       {"type", "invalid_request_error"},
                       {"param", "temperature"},
                       {"code", "invalid_value"}}}}));
  json n = error_body(ApiError(500, "server_error", "internal_error", std::nullopt, "boom"));
  EXPECT_TRUE(n["error"].contains("param"));
  EXPECT_TRUE(n["error"]["param"].is_null());
  json none = error_body("server_error", std::nullopt, std::nullopt, "x");
  EXPECT_TRUE(none["error"]["code"].is_null());
}

TEST(DumpJson, RawUtf8AndNoThrowOnInvalidBytes) {
  EXPECT_EQ(dump_json(json{{"t", "caf\xc3\xa9 \xe6\x97\xa5"}}),
            "{\"t\":\"caf\xc3\xa9 \xe6\x97\xa5\"}");
  EXPECT_EQ(dump_json(json{{"t", "a\xff"}}), "{\"t\":\"a\xef\xbf\xbd\"}");
}

TEST(ChatBody, Shape) {
  json b = chat_completion_body(
      kMeta, {chat_choice(0, {.content = "Hello!"}, "stop", ReasoningFormat::kReasoningContent)},
      {20, 3});
  EXPECT_EQ(b["id"], "chatcmpl-abc");
  EXPECT_EQ(b["object"], "chat.completion");
  EXPECT_EQ(b["created"], 1767225600);
  EXPECT_EQ(b["model"], "gpt-4o");
  EXPECT_EQ(b["system_fingerprint"], system_fingerprint());
  EXPECT_EQ(
      b["choices"],
      json::parse(R"([{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},
                                           "logprobs":null,"finish_reason":"stop"}])"));
  EXPECT_EQ(b["usage"], json::parse(R"({"prompt_tokens":20,"completion_tokens":3,"total_tokens":23,
                                        "prompt_tokens_details":{"cached_tokens":0},
                                        "completion_tokens_details":{"reasoning_tokens":0}})"));
  json empty =
      chat_completion_body(kMeta, {chat_choice(0, {}, "length", ReasoningFormat::kNone)}, {1, 1});
  EXPECT_TRUE(empty["choices"][0]["message"].contains("content"));
  EXPECT_TRUE(empty["choices"][0]["message"]["content"].is_null());
}

TEST(ChatBody, ToolCallsAndReasoning) {
  chat::ChatMessage message{.reasoning = "Weather, so a call.",
                            .tool_calls = {{"call_1", "get_weather", R"({"city":"Paris"})"}}};
  json b = chat_completion_body(
      kMeta, {chat_choice(0, message, "tool_calls", ReasoningFormat::kReasoningContent)},
      {.prompt_tokens = 20, .completion_tokens = 9, .reasoning_tokens = 5});
  EXPECT_EQ(b["choices"][0]["message"], json::parse(R"({"role":"assistant","content":null,
      "refusal":null,"reasoning_content":"Weather, so a call.","tool_calls":[{"id":"call_1",
      "type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]})"));
  EXPECT_EQ(b["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(b["usage"]["completion_tokens_details"]["reasoning_tokens"], 5);

  json both = chat_message_json({.reasoning = "r"}, ReasoningFormat::kBoth);
  EXPECT_EQ(both["reasoning"], "r");
  EXPECT_EQ(both["reasoning_content"], "r");
  EXPECT_FALSE(chat_message_json({.reasoning = "r"}, ReasoningFormat::kReasoning)
                   .contains("reasoning_content"));
  EXPECT_EQ(parse_reasoning_format("both"), ReasoningFormat::kBoth);
  EXPECT_EQ(parse_reasoning_format("deepseek"), std::nullopt);
}

TEST(Chunks, DeltaChunksInOpenAiStreamForm) {
  chat::MessageDelta delta{
      .reasoning = "hm",
      .content = "ok",
      .tool_calls = {{.index = 0, .id = "call_1", .name = "f"}, {.index = 0, .arguments = "{}"}}};
  std::vector<json> chunks =
      chat_delta_chunks(kMeta, 0, delta, ReasoningFormat::kReasoningContent, false);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], json::parse(R"({"reasoning_content":"hm"})"));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], json::parse(R"({"content":"ok"})"));
  EXPECT_EQ(chunks[2]["choices"][0]["delta"], json::parse(R"({"tool_calls":[{"index":0,
      "id":"call_1","type":"function","function":{"name":"f","arguments":""}}]})"));
  EXPECT_EQ(chunks[3]["choices"][0]["delta"],
            json::parse(R"({"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]})"));
  EXPECT_TRUE(chunks[3]["choices"][0]["finish_reason"].is_null());
}

TEST(TextBody, Shape) {
  json b = text_completion_body({"cmpl-x", 5, "m"}, {text_choice(0, " Paris", "length")}, {4, 2});
  EXPECT_EQ(b["object"], "text_completion");
  EXPECT_EQ(
      b["choices"],
      json::parse(R"([{"index":0,"text":" Paris","logprobs":null,"finish_reason":"length"}])"));
  EXPECT_EQ(b["usage"], json::parse(R"({"prompt_tokens":4,"completion_tokens":2,"total_tokens":6,
                                        "prompt_tokens_details":{"cached_tokens":0}})"));
}

TEST(Bodies, SeveralChoicesInIndexOrder) {
  json b = text_completion_body(
      {"cmpl-x", 5, "m"}, {text_choice(0, "a", "stop"), text_choice(1, "b", "length")}, {4, 7});
  EXPECT_EQ(b["choices"], json::parse(R"([
      {"index":0,"text":"a","logprobs":null,"finish_reason":"stop"},
      {"index":1,"text":"b","logprobs":null,"finish_reason":"length"}])"));
  EXPECT_EQ(b["usage"]["total_tokens"], 11);
  json chat =
      chat_completion_body(kMeta,
                           {chat_choice(0, {.content = "x"}, "stop", ReasoningFormat::kNone),
                            chat_choice(1, {.content = "y"}, "stop", ReasoningFormat::kNone)},
                           {4, 2});
  EXPECT_EQ(chat["choices"][1]["index"], 1);
  EXPECT_EQ(chat["choices"][1]["message"]["content"], "y");
}

TEST(Chunks, CarryTheirChoiceIndex) {
  EXPECT_EQ(chat_chunk(kMeta, 3, json::object(), "stop", false)["choices"][0]["index"], 3);
  EXPECT_EQ(text_chunk(kMeta, 2, "t", std::nullopt, false)["choices"][0]["index"], 2);
  for (const json& chunk : chat_delta_chunks(kMeta, 5, {.reasoning = "r", .content = "c"},
                                             ReasoningFormat::kReasoningContent, false)) {
    EXPECT_EQ(chunk["choices"][0]["index"], 5);
  }
}

TEST(Chunks, ChatTextAndUsage) {
  json role = chat_chunk(kMeta, 0, {{"role", "assistant"}, {"content", ""}}, std::nullopt, false);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_FALSE(role.contains("usage"));
  EXPECT_EQ(role["choices"], json::parse(R"([{"index":0,"delta":{"role":"assistant","content":""},
                                              "logprobs":null,"finish_reason":null}])"));
  json fin = chat_chunk(kMeta, 0, json::object(), "stop", true);
  EXPECT_TRUE(fin.contains("usage"));
  EXPECT_TRUE(fin["usage"].is_null());
  EXPECT_EQ(fin["choices"][0]["delta"], json::object());
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "stop");

  json t = text_chunk({"cmpl-1", 1, "m"}, 0, "abc", std::nullopt, true);
  EXPECT_EQ(t["object"], "text_completion");
  EXPECT_EQ(t["choices"][0]["text"], "abc");
  EXPECT_TRUE(t["choices"][0]["finish_reason"].is_null());

  json u = usage_chunk(kMeta, true, {7, 2});
  EXPECT_EQ(u["object"], "chat.completion.chunk");
  EXPECT_EQ(u["choices"], json::array());
  EXPECT_EQ(u["usage"]["total_tokens"], 9);
  EXPECT_EQ(u["id"], kMeta.id);
  EXPECT_EQ(usage_chunk(kMeta, false, {7, 2})["object"], "text_completion");
}

TEST(Sse, Framing) {
  EXPECT_EQ(sse_data(json{{"a", "x\ny"}}), "data: {\"a\":\"x\\ny\"}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  EXPECT_EQ(sse_comment("keepalive 3/10"), ": keepalive 3/10\n\n");
  EXPECT_EQ(sse_comment("a\nb"), ": a b\n\n");
}

}  // namespace
}  // namespace lmserve::server
