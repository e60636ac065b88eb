// Request parsing and validation (api-contract §2, §5.1): defaults, types, ranges, params.
#include "server/openai_request.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "util/error.h"

namespace lmserve::server {
namespace {

RequestDefaults defaults() {
  RequestDefaults d;
  d.max_tokens = 100;
  d.sampling.temperature = 1.0f;
  d.sampling.top_p = 1.0f;
  return d;
}

json chat_body(json extra = json::object()) {
  json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  body.update(extra);
  return body;
}

json completion_body(json extra = json::object()) {
  json body = {{"prompt", "Once"}};
  body.update(extra);
  return body;
}

// Runs f, expecting an ApiError with the given status/code/param.
template <typename F>
void expect_api_error(F&& f, const std::string& code, const std::optional<std::string>& param,
                      int status = 400) {
  try {
    f();
    ADD_FAILURE() << "expected ApiError " << code;
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), status);
    EXPECT_EQ(e.type(), "invalid_request_error");
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(e.param(), param) << e.what();
    EXPECT_FALSE(std::string(e.what()).empty());
  }
}

void expect_chat_error(const json& body, const std::string& code,
                       const std::optional<std::string>& param) {
  SCOPED_TRACE(body.dump());
  expect_api_error([&] { parse_chat_request(body, defaults()); }, code, param);
}

void expect_completion_error(const json& body, const std::string& code,
                             const std::optional<std::string>& param) {
  SCOPED_TRACE(body.dump());
  expect_api_error([&] { parse_completion_request(body, defaults()); }, code, param);
}

TEST(ParseJsonBody, AcceptsObjectsOnly) {
  EXPECT_EQ(parse_json_body(R"({"a":1})")["a"], 1);
  expect_api_error([] { parse_json_body("{oops"); }, "invalid_json", std::nullopt);
  expect_api_error([] { parse_json_body(""); }, "invalid_json", std::nullopt);
  expect_api_error([] { parse_json_body(R"({"t": NaN})"); }, "invalid_json", std::nullopt);
  expect_api_error([] { parse_json_body(R"({"t": Infinity})"); }, "invalid_json", std::nullopt);
  expect_api_error([] { parse_json_body("{\"s\": \"\xc3\x28\"}"); }, "invalid_json", std::nullopt);
  expect_api_error([] { parse_json_body("[1]"); }, "invalid_request", std::nullopt);
  expect_api_error([] { parse_json_body("\"text\""); }, "invalid_request", std::nullopt);
  expect_api_error([] { parse_json_body("null"); }, "invalid_request", std::nullopt);
}

TEST(ParseJsonBody, RefusesAbsurdNestingButNotBracketsInStrings) {
  std::string deep = std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']');
  expect_api_error([&] { parse_json_body(R"({"a":)" + deep + "}"); }, "invalid_json", std::nullopt);
  std::string in_string = R"({"a":")" + std::string(1000, '[') + R"(\"[[["})";
  EXPECT_TRUE(parse_json_body(in_string).is_object());
}

TEST(ParseChat, DefaultsFromTheCommandLine) {
  RequestDefaults d = defaults();
  d.max_tokens = 77;
  d.sampling.temperature = 0.3f;
  d.sampling.top_k = 5;
  d.sampling.min_p = 0.1f;
  ChatRequest r = parse_chat_request(chat_body(), d);
  EXPECT_EQ(r.common.max_tokens, 77);
  EXPECT_FLOAT_EQ(r.common.sampling.temperature, 0.3f);
  EXPECT_EQ(r.common.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(r.common.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.common.sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(r.common.sampling.repetition_context_size, 20);
  EXPECT_FALSE(r.common.sampling.seed);
  EXPECT_FALSE(r.common.stream);
  EXPECT_FALSE(r.common.include_usage);
  EXPECT_TRUE(r.common.stop.empty());
  EXPECT_FALSE(r.common.model);
  EXPECT_FALSE(r.prompt.role_mapping);
  EXPECT_TRUE(r.prompt.tools.is_null());
}

TEST(ParseChat, NullMeansAbsent) {
  json body = chat_body({{"temperature", nullptr},
                         {"max_tokens", nullptr},
                         {"top_p", nullptr},
                         {"stop", nullptr},
                         {"seed", nullptr},
                         {"stream", nullptr},
                         {"model", nullptr},
                         {"stream_options", nullptr},
                         {"role_mapping", nullptr},
                         {"tools", nullptr},
                         {"logprobs", nullptr},
                         {"n", nullptr},
                         {"response_format", nullptr}});
  ChatRequest r = parse_chat_request(body, defaults());
  EXPECT_EQ(r.common.max_tokens, 100);
  EXPECT_FLOAT_EQ(r.common.sampling.temperature, 1.0f);
  EXPECT_FALSE(r.common.model);
}

TEST(ParseChat, AllSeedFields) {
  json body = chat_body({{"model", "gpt-4o"},
                         {"max_tokens", 12},
                         {"stream", true},
                         {"stream_options", {{"include_usage", true}}},
                         {"stop", {"\n\n", "", "END"}},
                         {"temperature", 0},
                         {"top_p", 0.9},
                         {"top_k", 40.0},
                         {"min_p", 0.05},
                         {"repetition_penalty", 1.1},
                         {"repetition_context_size", 64},
                         {"seed", -3},
                         {"role_mapping", {{"user", "U: "}, {"assistant", "A: "}}},
                         {"user", "ignored"},
                         {"metadata", {{"x", 1}}},
                         {"unknown_field", {1, 2, 3}}});
  ChatRequest r = parse_chat_request(body, defaults());
  EXPECT_EQ(r.common.model, "gpt-4o");
  EXPECT_EQ(r.common.max_tokens, 12);
  EXPECT_TRUE(r.common.stream);
  EXPECT_TRUE(r.common.include_usage);
  EXPECT_EQ(r.common.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_FLOAT_EQ(r.common.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.common.sampling.top_p, 0.9f);
  EXPECT_EQ(r.common.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.common.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.common.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(r.common.sampling.repetition_context_size, 64);
  EXPECT_EQ(r.common.sampling.seed, static_cast<std::uint64_t>(-3));
  ASSERT_TRUE(r.prompt.role_mapping);
  EXPECT_EQ(r.prompt.role_mapping->at("user"), "U: ");
}

TEST(ParseChat, MaxCompletionTokensWinsOverMaxTokens) {
  EXPECT_EQ(
      parse_chat_request(chat_body({{"max_tokens", 5}, {"max_completion_tokens", 9}}), defaults())
          .common.max_tokens,
      9);
  EXPECT_EQ(parse_chat_request(chat_body({{"max_tokens", 5}, {"max_completion_tokens", nullptr}}),
                               defaults())
                .common.max_tokens,
            5);
  EXPECT_EQ(parse_chat_request(chat_body({{"max_tokens", 1e12}}), defaults()).common.max_tokens,
            INT_MAX);
  expect_chat_error(chat_body({{"max_tokens", 5}, {"max_completion_tokens", 0}}), "invalid_value",
                    "max_completion_tokens");
}

TEST(ParseChat, RepeatPenaltyAlias) {
  EXPECT_FLOAT_EQ(parse_chat_request(chat_body({{"repeat_penalty", 1.5}}), defaults())
                      .common.sampling.repetition_penalty,
                  1.5f);
  EXPECT_FLOAT_EQ(parse_chat_request(
                      chat_body({{"repeat_penalty", 1.5}, {"repetition_penalty", 1.2}}), defaults())
                      .common.sampling.repetition_penalty,
                  1.2f);
  expect_chat_error(chat_body({{"repeat_penalty", -1}}), "invalid_value", "repeat_penalty");
}

TEST(ParseChat, IntegersAcceptWholeFloatsButNotBooleansOrFractions) {
  EXPECT_EQ(parse_chat_request(chat_body({{"max_tokens", 5.0}}), defaults()).common.max_tokens, 5);
  expect_chat_error(chat_body({{"max_tokens", true}}), "invalid_type", "max_tokens");
  expect_chat_error(chat_body({{"max_tokens", 5.5}}), "invalid_type", "max_tokens");
  expect_chat_error(chat_body({{"max_tokens", "5"}}), "invalid_type", "max_tokens");
  expect_chat_error(chat_body({{"top_k", false}}), "invalid_type", "top_k");
  expect_chat_error(chat_body({{"seed", 1.5}}), "invalid_type", "seed");
  expect_chat_error(chat_body({{"seed", 1e30}}), "invalid_value", "seed");
  expect_chat_error(chat_body({{"seed", 18446744073709551615ull}}), "invalid_value", "seed");
  expect_chat_error(chat_body({{"temperature", true}}), "invalid_type", "temperature");
  expect_chat_error(chat_body({{"temperature", "hot"}}), "invalid_type", "temperature");
}

TEST(ParseChat, NonFiniteNumbersAreRejected) {
  // JSON has no NaN or Infinity literal; an overflowing literal is refused by the parser.
  expect_api_error([] { parse_json_body(R"({"temperature":1e999})"); }, "invalid_json",
                   std::nullopt);
  expect_api_error([] { parse_json_body(R"({"temperature":-1e999})"); }, "invalid_json",
                   std::nullopt);
  expect_chat_error(chat_body({{"temperature", std::numeric_limits<double>::infinity()}}),
                    "invalid_value", "temperature");
  expect_chat_error(chat_body({{"max_tokens", std::numeric_limits<double>::infinity()}}),
                    "invalid_value", "max_tokens");
  expect_chat_error(chat_body({{"top_p", std::nan("")}}), "invalid_value", "top_p");
}

TEST(ParseChat, Ranges) {
  expect_chat_error(chat_body({{"max_tokens", 0}}), "invalid_value", "max_tokens");
  expect_chat_error(chat_body({{"max_tokens", -1}}), "invalid_value", "max_tokens");
  expect_chat_error(chat_body({{"temperature", -0.1}}), "invalid_value", "temperature");
  EXPECT_FLOAT_EQ(
      parse_chat_request(chat_body({{"temperature", 7}}), defaults()).common.sampling.temperature,
      7.0f);
  expect_chat_error(chat_body({{"top_p", 1.01}}), "invalid_value", "top_p");
  expect_chat_error(chat_body({{"top_p", -0.01}}), "invalid_value", "top_p");
  EXPECT_FLOAT_EQ(parse_chat_request(chat_body({{"top_p", 0}}), defaults()).common.sampling.top_p,
                  0.0f);
  expect_chat_error(chat_body({{"top_k", -1}}), "invalid_value", "top_k");
  EXPECT_EQ(parse_chat_request(chat_body({{"top_k", 1e15}}), defaults()).common.sampling.top_k, 0);
  expect_chat_error(chat_body({{"min_p", 2}}), "invalid_value", "min_p");
  expect_chat_error(chat_body({{"repetition_context_size", 0}}), "invalid_value",
                    "repetition_context_size");
  expect_chat_error(chat_body({{"xtc_threshold", 0.6}}), "invalid_value", "xtc_threshold");
  expect_chat_error(chat_body({{"num_draft_tokens", 65}}), "invalid_value", "num_draft_tokens");
}

TEST(ParseChat, StopValidation) {
  EXPECT_EQ(parse_chat_request(chat_body({{"stop", "x"}}), defaults()).common.stop,
            std::vector<std::string>{"x"});
  EXPECT_TRUE(parse_chat_request(chat_body({{"stop", ""}}), defaults()).common.stop.empty());
  expect_chat_error(chat_body({{"stop", 3}}), "invalid_type", "stop");
  expect_chat_error(chat_body({{"stop", {"a", 3}}}), "invalid_type", "stop[1]");
  expect_chat_error(chat_body({{"stop", json::array({"a", nullptr})}}), "invalid_type", "stop[1]");
  json seventeen = json::array();
  for (int i = 0; i < 17; ++i) seventeen.push_back(std::string(1, static_cast<char>('a' + i)));
  expect_chat_error(chat_body({{"stop", seventeen}}), "invalid_value", "stop");
  json sixteen = seventeen;
  sixteen.erase(sixteen.size() - 1);
  EXPECT_EQ(parse_chat_request(chat_body({{"stop", sixteen}}), defaults()).common.stop.size(), 16u);
  expect_chat_error(chat_body({{"stop", {std::string(257, 'a')}}}), "invalid_value", "stop[0]");
  // 256 characters, not bytes: "é" is 2 bytes.
  std::string accents(512, '\0');
  for (std::size_t i = 0; i < accents.size(); i += 2) {
    accents[i] = '\xc3';
    accents[i + 1] = '\xa9';
  }
  EXPECT_EQ(parse_chat_request(chat_body({{"stop", {accents}}}), defaults()).common.stop.size(),
            1u);
}

TEST(ParseChat, StreamOptions) {
  EXPECT_FALSE(parse_chat_request(chat_body({{"stream", true}, {"stream_options", json::object()}}),
                                  defaults())
                   .common.include_usage);
  expect_chat_error(chat_body({{"stream_options", "yes"}}), "invalid_type", "stream_options");
  expect_chat_error(chat_body({{"stream_options", {{"include_usage", 1}}}}), "invalid_type",
                    "stream_options.include_usage");
  expect_chat_error(chat_body({{"stream", 1}}), "invalid_type", "stream");
}

TEST(ParseChat, UnsupportedButKnownFields) {
  EXPECT_NO_THROW(parse_chat_request(chat_body({{"n", 1},
                                                {"logprobs", false},
                                                {"top_logprobs", 0},
                                                {"response_format", {{"type", "text"}}},
                                                {"presence_penalty", 0},
                                                {"frequency_penalty", 0.0},
                                                {"logit_bias", json::object()},
                                                {"xtc_probability", 0}}),
                                     defaults()));
  expect_chat_error(chat_body({{"n", 0}}), "invalid_value", "n");
  expect_chat_error(chat_body({{"logprobs", 3}}), "invalid_type", "logprobs");
  expect_chat_error(chat_body({{"top_logprobs", 3}}), "invalid_value", "top_logprobs");
  expect_chat_error(chat_body({{"top_logprobs", 21}}), "invalid_value", "top_logprobs");
  expect_chat_error(chat_body({{"response_format", {{"type", "json_schema"}}}}),
                    "missing_required_parameter", "response_format.json_schema");
  expect_chat_error(chat_body({{"response_format", {{"type", "yaml"}}}}), "invalid_value",
                    "response_format.type");
  expect_chat_error(chat_body({{"response_format", "text"}}), "invalid_type", "response_format");
  expect_chat_error(chat_body({{"adapters", "my-lora"}}), "unsupported_parameter", "adapters");
  expect_chat_error(chat_body({{"draft_model", "small"}}), "unsupported_parameter", "draft_model");
  expect_chat_error(chat_body({{"model", 4}}), "invalid_type", "model");
}

TEST(ParseChat, ChoicesN) {
  EXPECT_EQ(parse_chat_request(chat_body(), defaults()).common.n, 1);
  EXPECT_EQ(parse_chat_request(chat_body({{"n", 16}}), defaults()).common.n, 16);
  EXPECT_EQ(parse_completion_request(completion_body({{"n", 2.0}}), defaults()).common.n, 2);
  expect_chat_error(chat_body({{"n", 0}}), "invalid_value", "n");
  expect_chat_error(chat_body({{"n", 17}}), "invalid_value", "n");
  expect_chat_error(chat_body({{"n", 1.5}}), "invalid_type", "n");
  expect_completion_error(completion_body({{"n", "2"}}), "invalid_type", "n");
}

TEST(ChoiceSampling, SeedPlusTheChoiceIndex) {
  engine::SamplingParams seeded;
  seeded.seed = 42;
  seeded.temperature = 0.5f;
  EXPECT_EQ(choice_sampling(seeded, 0).seed, 42u);  // choice 0 is the request alone
  EXPECT_EQ(choice_sampling(seeded, 3).seed, 45u);
  EXPECT_EQ(choice_sampling(seeded, 3).temperature, 0.5f);
  seeded.seed = UINT64_MAX;
  EXPECT_EQ(choice_sampling(seeded, 2).seed, 1u);  // wraps
  EXPECT_EQ(choice_sampling(engine::SamplingParams{}, 5).seed, std::nullopt);
}

TEST(ParseChat, StructuredOutputCompilesToAGrammar) {
  EXPECT_EQ(parse_chat_request(chat_body(), defaults()).common.grammar, nullptr);
  EXPECT_EQ(parse_chat_request(chat_body({{"response_format", {{"type", "text"}}}}), defaults())
                .common.grammar,
            nullptr);
  EXPECT_NE(
      parse_chat_request(chat_body({{"response_format", {{"type", "json_object"}}}}), defaults())
          .common.grammar,
      nullptr);
  const json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}};
  EXPECT_NE(
      parse_chat_request(
          chat_body({{"response_format",
                      {{"type", "json_schema"},
                       {"json_schema", {{"name", "x"}, {"schema", schema}, {"strict", true}}}}}}),
          defaults())
          .common.grammar,
      nullptr);
  EXPECT_NE(parse_completion_request(
                json{{"prompt", "x"}, {"grammar", "root ::= \"yes\" | \"no\"\n"}}, defaults())
                .common.grammar,
            nullptr);
  EXPECT_NE(parse_chat_request(chat_body({{"json_schema", schema}}), defaults()).common.grammar,
            nullptr);
  // An unenforceable keyword is refused with its full path.
  const json bad = {{"type", "object"},
                    {"properties", {{"a", {{"type", "string"}, {"pattern", "(?=x)x"}}}}}};
  expect_chat_error(
      chat_body(
          {{"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", bad}}}}}}),
      "unsupported_parameter", "response_format.json_schema.schema.properties.a.pattern");
  expect_chat_error(chat_body({{"json_schema", bad}}), "unsupported_parameter",
                    "json_schema.properties.a.pattern");
  expect_chat_error(chat_body({{"grammar", "root ::= ("}}), "invalid_value", "grammar");
  expect_chat_error(chat_body({{"grammar", 3}}), "invalid_type", "grammar");
  expect_chat_error(chat_body({{"grammar", "root ::= \"a\""}, {"json_schema", schema}}),
                    "invalid_value", "grammar");
}

TEST(ParseChat, ForcedToolCalls) {
  const json tools =
      json::array({{{"type", "function"},
                    {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}}});
  EXPECT_TRUE(
      parse_chat_request(chat_body({{"tools", tools}, {"tool_choice", "required"}}), defaults())
          .force_tool_call);
  EXPECT_FALSE(
      parse_chat_request(chat_body({{"tools", tools}, {"tool_choice", "auto"}}), defaults())
          .force_tool_call);
  expect_chat_error(chat_body({{"tools", tools},
                               {"tool_choice", "required"},
                               {"response_format", {{"type", "json_object"}}}}),
                    "invalid_value", "tool_choice");
}

TEST(ParseCompletion, EchoSuffixBestOf) {
  EXPECT_NO_THROW(parse_completion_request(
      completion_body({{"echo", false}, {"suffix", ""}, {"best_of", 1}, {"logprobs", false}}),
      defaults()));
  EXPECT_NO_THROW(parse_completion_request(completion_body({{"suffix", nullptr}}), defaults()));
  expect_completion_error(completion_body({{"echo", true}}), "unsupported_parameter", "echo");
  expect_completion_error(completion_body({{"suffix", "end"}}), "unsupported_parameter", "suffix");
  expect_completion_error(completion_body({{"best_of", 3}}), "unsupported_parameter", "best_of");
  expect_completion_error(completion_body({{"best_of", 0}}), "invalid_value", "best_of");
  // best_of = n returns every generation: the same as n alone. Fewer than n is an error.
  EXPECT_EQ(
      parse_completion_request(completion_body({{"n", 3}, {"best_of", 3}}), defaults()).common.n,
      3);
  expect_completion_error(completion_body({{"n", 3}, {"best_of", 2}}), "invalid_value", "best_of");
  expect_completion_error(completion_body({{"n", 3}, {"best_of", 4}}), "unsupported_parameter",
                          "best_of");
  expect_completion_error(completion_body({{"logprobs", 25}}), "invalid_value", "logprobs");
  expect_completion_error(completion_body({{"logprobs", "5"}}), "invalid_type", "logprobs");
}

TEST(ParseSampling, PenaltiesBiasLogprobsAndStopControls) {
  auto chat = parse_chat_request(chat_body({{"presence_penalty", 0.5},
                                            {"presence_context_size", 64},
                                            {"frequency_penalty", -0.25},
                                            {"frequency_context_size", 32},
                                            {"logit_bias", {{"5", 10}, {"7", -100}}},
                                            {"logprobs", true},
                                            {"top_logprobs", 3},
                                            {"ignore_eos", true},
                                            {"min_tokens", 4},
                                            {"stop_token_ids", {9, 11}}}),
                                 defaults())
                  .common;
  EXPECT_EQ(chat.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(chat.sampling.presence_context_size, 64);
  EXPECT_EQ(chat.sampling.frequency_penalty, -0.25f);
  EXPECT_EQ(chat.sampling.frequency_context_size, 32);
  EXPECT_EQ(chat.sampling.logit_bias,
            (std::vector<std::pair<std::int32_t, float>>{{5, 10.0f}, {7, -100.0f}}));
  EXPECT_EQ(chat.logprobs, 3);
  EXPECT_TRUE(chat.ignore_eos);
  EXPECT_EQ(chat.min_tokens, 4);
  EXPECT_EQ(chat.stop_token_ids, (std::vector<std::int32_t>{9, 11}));
  EXPECT_EQ(parse_chat_request(chat_body({{"logprobs", true}}), defaults()).common.logprobs, 0);
  EXPECT_EQ(parse_chat_request(chat_body({{"logprobs", false}}), defaults()).common.logprobs, -1);
  // Completions: an integer is the number of alternatives; true takes top_logprobs.
  EXPECT_EQ(
      parse_completion_request(completion_body({{"logprobs", 5}}), defaults()).common.logprobs, 5);
  EXPECT_EQ(
      parse_completion_request(completion_body({{"logprobs", 0}}), defaults()).common.logprobs, 0);
  EXPECT_EQ(parse_completion_request(completion_body({{"logprobs", true}, {"top_logprobs", 2}}),
                                     defaults())
                .common.logprobs,
            2);
  expect_chat_error(chat_body({{"logit_bias", {{"x", 1}}}}), "invalid_value", "logit_bias");
  expect_chat_error(chat_body({{"logit_bias", {{"-3", 1}}}}), "invalid_value", "logit_bias");
  expect_chat_error(chat_body({{"logit_bias", {{"3", 101}}}}), "invalid_value", "logit_bias.3");
  expect_chat_error(chat_body({{"logit_bias", {{"3", "a"}}}}), "invalid_type", "logit_bias.3");
  expect_chat_error(chat_body({{"logit_bias", {1, 2}}}), "invalid_type", "logit_bias");
  expect_chat_error(chat_body({{"presence_context_size", 0}}), "invalid_value",
                    "presence_context_size");
  expect_chat_error(chat_body({{"min_tokens", -1}}), "invalid_value", "min_tokens");
  expect_chat_error(chat_body({{"ignore_eos", 1}}), "invalid_type", "ignore_eos");
  expect_chat_error(chat_body({{"stop_token_ids", 3}}), "invalid_type", "stop_token_ids");
  expect_chat_error(chat_body({{"stop_token_ids", {-1}}}), "invalid_value", "stop_token_ids[0]");
}

TEST(ParseCompletion, PromptForms) {
  auto text = parse_completion_request(completion_body(), defaults()).prompt;
  EXPECT_EQ(text.text, "Once");
  auto one = parse_completion_request(completion_body({{"prompt", {"Hi"}}}), defaults()).prompt;
  EXPECT_EQ(one.text, "Hi");
  auto empty = parse_completion_request(completion_body({{"prompt", ""}}), defaults()).prompt;
  EXPECT_EQ(empty.text, "");  // allowed here: BOS may make it non-empty (checked later)
  auto ids =
      parse_completion_request(completion_body({{"prompt", {1, 2.0, 3}}}), defaults()).prompt;
  EXPECT_FALSE(ids.text);
  EXPECT_EQ(ids.ids, (std::vector<std::int32_t>{1, 2, 3}));

  expect_completion_error(json::object(), "missing_required_parameter", "prompt");
  expect_completion_error({{"prompt", nullptr}}, "missing_required_parameter", "prompt");
  expect_completion_error({{"prompt", json::array()}}, "invalid_value", "prompt");
  expect_completion_error({{"prompt", {"a", "b"}}}, "unsupported_parameter", "prompt");
  expect_completion_error({{"prompt", {{1, 2}, {3}}}}, "unsupported_parameter", "prompt");
  expect_completion_error({{"prompt", {1, "a"}}}, "invalid_type", "prompt[1]");
  expect_completion_error({{"prompt", {"a", 1}}}, "invalid_type", "prompt[1]");
  expect_completion_error({{"prompt", {1, 2.5}}}, "invalid_type", "prompt[1]");
  expect_completion_error({{"prompt", {1, true}}}, "invalid_type", "prompt[1]");
  expect_completion_error({{"prompt", {-1}}}, "invalid_value", "prompt[0]");
  expect_completion_error({{"prompt", {1, 3000000000ll}}}, "invalid_value", "prompt[1]");
  expect_completion_error({{"prompt", 12}}, "invalid_type", "prompt");
  expect_completion_error({{"prompt", {{"text", "x"}}}}, "invalid_type", "prompt");
}

TEST(CompletionPrompt, BosIsNotAddedTwice) {
  EXPECT_TRUE(completion_adds_special_tokens("Once", "<s>", true));
  EXPECT_FALSE(completion_adds_special_tokens("<s>Once", "<s>", true));
  EXPECT_TRUE(completion_adds_special_tokens(" <s>Once", "<s>", true));
  EXPECT_TRUE(completion_adds_special_tokens("<|begin_of_text|>x", "", false));
  EXPECT_FALSE(completion_adds_special_tokens("<|begin_of_text|>x", "<|begin_of_text|>", true));
}

TEST(CompletionPrompt, TokenIdRange) {
  EXPECT_NO_THROW(check_token_ids({0, 511}, 512, "prompt"));
  expect_api_error([] { check_token_ids({0, 512}, 512, "prompt"); }, "invalid_value", "prompt[1]");
  expect_api_error([] { check_token_ids({-5}, 512, "prompt"); }, "invalid_value", "prompt[0]");
}

TEST(Messages, MissingAndWrongTypes) {
  expect_chat_error(json::object(), "missing_required_parameter", "messages");
  expect_chat_error({{"messages", nullptr}}, "missing_required_parameter", "messages");
  expect_chat_error({{"messages", "hello"}}, "invalid_type", "messages");
  expect_chat_error({{"messages", json::array()}}, "invalid_value", "messages");
  expect_chat_error({{"messages", {"hello"}}}, "invalid_type", "messages[0]");
  expect_chat_error({{"messages", {{{"role", "user"}, {"content", "a"}}, {{"content", "b"}}}}},
                    "missing_required_parameter", "messages[1].role");
  expect_chat_error({{"messages", {{{"role", 3}, {"content", "b"}}}}}, "invalid_type",
                    "messages[0].role");
  expect_chat_error({{"messages", {{{"role", "user"}, {"content", 5}}}}}, "invalid_type",
                    "messages[0].content");
  expect_chat_error({{"messages",
                      {{{"role", "user"}, {"content", "x"}},
                       {{"role", "user"}, {"content", "y"}},
                       {{"role", "user"}, {"content", {{{"type", "text"}, {"text", 1}}}}}}}},
                    "invalid_type", "messages[2].content[0].text");
  expect_chat_error({{"messages", {{{"role", "user"}, {"content", "x"}, {"name", 4}}}}},
                    "invalid_type", "messages[0].name");
}

TEST(Messages, TextPartsAreKeptAndOtherPartsRefused) {
  json messages = {
      {{"role", "user"},
       {"content",
        {{{"type", "text"}, {"text", "Hello, "}}, {{"type", "text"}, {"text", "world"}}}}},
      {{"role", "assistant"}, {"content", nullptr}},
      {{"role", "assistant"}},
      {{"role", "user"}, {"content", "plain"}, {"name", "bob"}, {"extra", nullptr}}};
  json out = normalize_messages(messages);
  EXPECT_EQ(out[0]["content"], messages[0]["content"]);
  EXPECT_EQ(out[1]["content"], "");
  EXPECT_EQ(out[2]["content"], "");
  EXPECT_EQ(out[3]["content"], "plain");
  EXPECT_EQ(out[3]["name"], "bob");
  EXPECT_FALSE(out[3].contains("extra"));  // null = absent
  expect_chat_error({{"messages",
                      {{{"role", "user"},
                        {"content",
                         {{{"type", "text"}, {"text", "x"}},
                          {{"type", "image_url"}, {"image_url", {{"url", "http://x"}}}}}}}}}},
                    "unsupported_parameter", "messages[0].content");
  expect_chat_error({{"messages", {{{"role", "user"}, {"content", {{{"text", "x"}}}}}}}},
                    "missing_required_parameter", "messages[0].content[0].type");
  expect_chat_error({{"messages", {{{"role", "user"}, {"content", {"x"}}}}}}, "invalid_type",
                    "messages[0].content[0]");
}

TEST(Messages, ToolCallArgumentsAreDecoded) {
  json messages = {
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_1"},
          {"type", "function"},
          {"function", {{"name", "get_weather"}, {"arguments", R"({"city": "Paris"})"}}}},
         {{"id", "call_2"},
          {"type", "function"},
          {"function", {{"name", "now"}, {"arguments", ""}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}};
  json out = normalize_messages(messages);
  EXPECT_EQ(out[0]["tool_calls"][0]["function"]["arguments"], json({{"city", "Paris"}}));
  EXPECT_EQ(out[0]["tool_calls"][1]["function"]["arguments"], json::object());
  EXPECT_EQ(out[1]["tool_call_id"], "call_1");
  json bad = messages;
  bad[0]["tool_calls"][0]["function"]["arguments"] = "{not json";
  expect_chat_error({{"messages", bad}}, "invalid_value",
                    "messages[0].tool_calls[0].function.arguments");
  bad[0]["tool_calls"] = "nope";
  expect_chat_error({{"messages", bad}}, "invalid_type", "messages[0].tool_calls");
}

// Found by fuzz_request: the body's nesting bound cannot see inside the arguments string, and
// a value decoded from it nested 200k deep overflowed the stack when the chat formatter
// copied it into the template context.
TEST(Messages, DeeplyNestedToolCallArgumentsAreRefused) {
  const auto call = [](const std::string& arguments) {
    return json::array({{{"role", "assistant"},
                         {"content", nullptr},
                         {"tool_calls",
                          {{{"id", "call_1"},
                            {"type", "function"},
                            {"function", {{"name", "f"}, {"arguments", arguments}}}}}}}});
  };
  const int deep = 200000;
  expect_chat_error({{"messages", call(std::string(deep, '[') + std::string(deep, ']'))}},
                    "invalid_value", "messages[0].tool_calls[0].function.arguments");
  // Nesting up to the body's own bound is still accepted.
  json out =
      normalize_messages(call(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
  const json copy = out;  // copies recurse: this is what the deep value broke
  EXPECT_EQ(copy[0]["tool_calls"][0]["function"]["arguments"].size(), 1u);
}

TEST(ParseChat, RoleMappingToolsAndTemplateKwargs) {
  expect_chat_error(chat_body({{"role_mapping", "x"}}), "invalid_type", "role_mapping");
  expect_chat_error(chat_body({{"role_mapping", {{"user", 1}}}}), "invalid_type",
                    "role_mapping.user");

  json tool = {{"type", "function"}, {"function", {{"name", "f"}, {"parameters", json::object()}}}};
  json other = {{"type", "function"}, {"function", {{"name", "g"}}}};
  ChatRequest r = parse_chat_request(chat_body({{"tools", {tool, other}}}), defaults());
  EXPECT_EQ(r.prompt.tools.size(), 2u);
  EXPECT_TRUE(
      parse_chat_request(chat_body({{"tools", json::array()}}), defaults()).prompt.tools.is_null());
  EXPECT_TRUE(
      parse_chat_request(chat_body({{"tools", {tool}}, {"tool_choice", "none"}}), defaults())
          .prompt.tools.is_null());
  json chosen =
      parse_chat_request(
          chat_body({{"tools", {tool, other}},
                     {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}}),
          defaults())
          .prompt.tools;
  ASSERT_EQ(chosen.size(), 1u);
  EXPECT_EQ(chosen[0]["function"]["name"], "g");
  expect_chat_error(
      chat_body({{"tools", {tool}},
                 {"tool_choice", {{"type", "function"}, {"function", {{"name", "zz"}}}}}}),
      "invalid_value", "tool_choice");
  expect_chat_error(chat_body({{"tool_choice", "required"}}), "invalid_value", "tool_choice");
  expect_chat_error(chat_body({{"tools", {{{"type", "retrieval"}}}}}), "invalid_value",
                    "tools[0].type");
  expect_chat_error(chat_body({{"tools", {{{"type", "function"}, {"function", json::object()}}}}}),
                    "missing_required_parameter", "tools[0].function.name");

  ChatRequest k =
      parse_chat_request(chat_body({{"chat_template_kwargs", {{"enable_thinking", false}}},
                                    {"reasoning_effort", "low"}}),
                         defaults());
  EXPECT_EQ(k.prompt.template_kwargs,
            json({{"enable_thinking", false}, {"reasoning_effort", "low"}}));
  ChatRequest k2 =
      parse_chat_request(chat_body({{"chat_template_kwargs", {{"reasoning_effort", "high"}}},
                                    {"reasoning_effort", "low"}}),
                         defaults());
  EXPECT_EQ(k2.prompt.template_kwargs["reasoning_effort"], "high");
  expect_chat_error(chat_body({{"chat_template_kwargs", "x"}}), "invalid_type",
                    "chat_template_kwargs");

  EXPECT_TRUE(parse_chat_request(chat_body(), defaults()).prompt.parallel_tool_calls);
  EXPECT_FALSE(parse_chat_request(chat_body({{"parallel_tool_calls", false}}), defaults())
                   .prompt.parallel_tool_calls);
  expect_chat_error(chat_body({{"parallel_tool_calls", "no"}}), "invalid_type",
                    "parallel_tool_calls");
  expect_chat_error(chat_body({{"documents", "x"}}), "invalid_type", "documents");
}

TEST(ParseApplyTemplate, PromptFieldsAndGenerationPrompt) {
  json body = chat_body({{"add_generation_prompt", false},
                         {"chat_template_kwargs", {{"bos_token", "[B]"}}},
                         {"temperature", -5}});  // generation fields are not read
  chat::ChatPromptInput prompt = parse_apply_template_request(body);
  EXPECT_FALSE(prompt.add_generation_prompt);
  EXPECT_EQ(prompt.template_kwargs["bos_token"], "[B]");
  EXPECT_TRUE(parse_apply_template_request(chat_body()).add_generation_prompt);
  EXPECT_FALSE(prompt.flatten_content_on_error);
  EXPECT_TRUE(parse_chat_request(chat_body(), defaults()).prompt.flatten_content_on_error);
  EXPECT_THROW(parse_apply_template_request(json::object()), ApiError);
  EXPECT_THROW(parse_apply_template_request(chat_body({{"add_generation_prompt", 1}})), ApiError);
}

}  // namespace
}  // namespace lmserve::server

namespace lmserve::server {
namespace {

// Templates print `tools|tojson` and iterate message keys: the request's key order must
// reach them unchanged, as Python dicts keep it.
TEST(ParseChat, KeyOrderOfTheRequestIsKept) {
  const std::string tools =
      R"([{"type":"function","function":{"name":"get_weather","description":"d",)"
      R"("parameters":{"type":"object","properties":{"zeta":{"type":"string"},)"
      R"("alpha":{"type":"number"}},"required":["zeta"]}}}])";
  const std::string body =
      R"({"tools":)" + tools + R"(,"messages":[{"role":"user","name":"bob","content":"hi"}]})";
  ChatRequest r = parse_chat_request(parse_json_body(body), defaults());
  EXPECT_EQ(r.prompt.tools.dump(), tools);
  EXPECT_EQ(r.prompt.messages[0].dump(), R"({"role":"user","name":"bob","content":"hi"})");
}

}  // namespace
}  // namespace lmserve::server
