// The chat output parser: reasoning and each tool-call syntax, fed whole, byte by byte and
// split at every position; the folded deltas must always equal the whole-text result.
#include "chat/output_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/fixtures.h"

namespace lmserve::chat {
namespace {

using nlohmann::ordered_json;

std::string describe(const ChatMessage& m) {
  ordered_json calls = ordered_json::array();
  for (const auto& c : m.tool_calls) calls.push_back({c.id, c.name, c.arguments});
  return ordered_json({{"reasoning", m.reasoning}, {"content", m.content}, {"tool_calls", calls}})
      .dump();
}

struct Run {
  ChatMessage message;
  std::vector<MessageDelta> deltas;
};

// Ids are numbered per parser so that runs compare.
Run run(OutputParserOptions options, const std::vector<std::string>& pieces) {
  int next = 0;
  options.new_call_id = [&next](bool short_id) {
    return (short_id ? "id" : "call_") + std::to_string(next++);
  };
  OutputParser parser(std::move(options));
  Run result;
  auto take = [&result](MessageDelta delta) {
    result.message.apply(delta);
    result.deltas.push_back(std::move(delta));
  };
  for (const auto& piece : pieces) take(parser.push(piece));
  take(parser.finish());
  return result;
}

ChatMessage parse_whole(const OutputParserOptions& options, const std::string& text) {
  return run(options, {text}).message;
}

// The streaming invariant: any split of the text folds to the whole-text message, and every
// tool call's first piece carries its id and name before any argument text.
void expect_same_however_split(const OutputParserOptions& options, const std::string& text) {
  const ChatMessage whole = parse_whole(options, text);
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  Run by_byte = run(options, bytes);
  EXPECT_EQ(describe(by_byte.message), describe(whole)) << "byte by byte: " << text;
  for (std::size_t i = 1; i < text.size(); ++i) {
    Run split = run(options, {text.substr(0, i), text.substr(i)});
    ASSERT_EQ(describe(split.message), describe(whole)) << "split at " << i << ": " << text;
  }
  std::vector<bool> seen(whole.tool_calls.size());
  for (const auto& delta : by_byte.deltas) {
    for (const auto& piece : delta.tool_calls) {
      ASSERT_LT(piece.index, static_cast<int>(seen.size()));
      if (!seen[piece.index]) {
        EXPECT_FALSE(piece.id.empty());
        EXPECT_FALSE(piece.name.empty());
        EXPECT_TRUE(piece.arguments.empty());
        seen[piece.index] = true;
      } else {
        EXPECT_TRUE(piece.id.empty() && piece.name.empty());
      }
    }
  }
}

ChatMessage expect_parse(const OutputParserOptions& options, const std::string& text) {
  expect_same_however_split(options, text);
  return parse_whole(options, text);
}

OutputParserOptions with_syntax(const ToolCallSyntax& syntax, bool reasoning = false) {
  OutputParserOptions options;
  options.tool_syntax = &syntax;
  if (reasoning) options.reasoning = ReasoningMarkers{};
  return options;
}

OutputParserOptions thinking(bool starts_in_reasoning = false) {
  OutputParserOptions options;
  options.reasoning = ReasoningMarkers{};
  options.starts_in_reasoning = starts_in_reasoning;
  return options;
}

// ---- reasoning ----

TEST(OutputParserReasoning, ThinkBlockGoesToReasoning) {
  auto m = expect_parse(thinking(), "<think>\nLet me add.\n2+2=4\n</think>\n\nThe answer is 4.");
  EXPECT_EQ(m.reasoning, "Let me add.\n2+2=4");
  EXPECT_EQ(m.content, "The answer is 4.");
  EXPECT_TRUE(m.tool_calls.empty());
}

TEST(OutputParserReasoning, PromptOpenedThinkBlock) {
  auto m = expect_parse(thinking(true), "Hmm, 17*23.\n</think>\n\n391");
  EXPECT_EQ(m.reasoning, "Hmm, 17*23.");
  EXPECT_EQ(m.content, "391");
}

TEST(OutputParserReasoning, UnterminatedThinkingIsAllReasoning) {
  auto m = expect_parse(thinking(true), "still thinking about </thi");
  EXPECT_EQ(m.reasoning, "still thinking about </thi");
  EXPECT_EQ(m.content, "");
}

TEST(OutputParserReasoning, WithoutMarkersThinkingStaysInContent) {
  OutputParserOptions none;  // --reasoning-format none
  auto m = expect_parse(none, "<think>x</think>y");
  EXPECT_EQ(m.content, "<think>x</think>y");
  EXPECT_EQ(m.reasoning, "");
}

TEST(OutputParserReasoning, LookalikesAreContent) {
  auto m = expect_parse(thinking(), "a <thin> b <th");
  EXPECT_EQ(m.content, "a <thin> b <th");
  EXPECT_EQ(m.reasoning, "");
}

TEST(OutputParserReasoning, HoldsBackOnlyAPossibleMarker) {
  OutputParser parser(thinking());
  EXPECT_EQ(parser.push("Hello <").content, "Hello ");
  EXPECT_EQ(parser.push("b").content, "<b");
  EXPECT_EQ(parser.push(" <thi").content, " ");
  MessageDelta d = parser.push("nk>why");
  EXPECT_EQ(d.content, "");
  EXPECT_EQ(d.reasoning, "why");
  EXPECT_TRUE(parser.in_reasoning());
}

TEST(OutputParserReasoning, CountsTokensInsideThinkBlocks) {
  EXPECT_EQ(count_reasoning_tokens({5, 10, 11, 12, 6, 13}, 5, 6, false), 3);
  EXPECT_EQ(count_reasoning_tokens({10, 11, 6, 13}, 5, 6, true), 2);
  EXPECT_EQ(count_reasoning_tokens({10, 11}, 5, 6, false), 0);
}

TEST(OutputParserReasoning, PromptOpensReasoning) {
  ReasoningMarkers markers;
  EXPECT_TRUE(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n", markers));
  EXPECT_FALSE(prompt_opens_reasoning("<think>\n\n</think>\n\n", markers));
  EXPECT_FALSE(prompt_opens_reasoning("no markers", markers));
  EXPECT_TRUE(prompt_opens_reasoning("<think>a</think> <think>", markers));
}

// ---- json_tools (Hermes / Qwen) ----

TEST(OutputParserJsonTools, OneCall) {
  auto m = expect_parse(with_syntax(json_tools_syntax()),
                        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                        "\"Paris\", \"unit\": \"°C\"}}\n</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].id, "call_0");
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"city":"Paris","unit":"°C"})");
  EXPECT_EQ(m.content, "");
}

TEST(OutputParserJsonTools, TwoParallelCallsAfterContent) {
  auto m = expect_parse(with_syntax(json_tools_syntax()),
                        "Checking both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n"
                        "</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": "
                        "[1, {\"y\": null}]}}\n</tool_call>\n");
  EXPECT_EQ(m.content, "Checking both.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].name, "a");
  EXPECT_EQ(m.tool_calls[0].arguments, "{}");
  EXPECT_EQ(m.tool_calls[1].id, "call_1");
  EXPECT_EQ(m.tool_calls[1].arguments, R"({"x":[1,{"y":null}]})");
}

TEST(OutputParserJsonTools, ParallelCallsOffKeepsTheFirst) {
  auto options = with_syntax(json_tools_syntax());
  options.parallel_tool_calls = false;
  auto m = expect_parse(options,
                        "<tool_call>{\"name\": \"a\"}</tool_call><tool_call>{\"name\": "
                        "\"b\"}</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "a");
}

TEST(OutputParserJsonTools, MalformedCallComesBackAsContent) {
  const std::string text =
      "Sure. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call> "
      "done";
  auto m = expect_parse(with_syntax(json_tools_syntax()), text);
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content,
            "Sure. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n"
            "</tool_call> done");
}

TEST(OutputParserJsonTools, CallWithoutNameIsContent) {
  auto m =
      expect_parse(with_syntax(json_tools_syntax()), "<tool_call>{\"arguments\": {}}</tool_call>");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, "<tool_call>{\"arguments\": {}}</tool_call>");
}

TEST(OutputParserJsonTools, TextThatOnlyResemblesACall) {
  auto m = expect_parse(with_syntax(json_tools_syntax()),
                        "Use <tool> tags or <tool_cal> or </tool_call> freely <tool_");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, "Use <tool> tags or <tool_cal> or </tool_call> freely <tool_");
}

TEST(OutputParserJsonTools, TruncatedCallIsContent) {
  auto m = expect_parse(with_syntax(json_tools_syntax()), "<tool_call>\n{\"name\": \"f\", \"argu");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, "<tool_call>\n{\"name\": \"f\", \"argu");
}

TEST(OutputParserJsonTools, CompleteCallMissingOnlyTheEndMarker) {
  auto m = expect_parse(with_syntax(json_tools_syntax()),
                        "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a":1})");
}

TEST(OutputParserJsonTools, ArgumentsGivenAsAJsonString) {
  auto m = expect_parse(with_syntax(json_tools_syntax()),
                        R"(<tool_call>{"name": "f", "arguments": "{\"a\": 1}"}</tool_call>)");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a":1})");
}

TEST(OutputParserJsonTools, ReasoningThenCall) {
  auto m = expect_parse(with_syntax(json_tools_syntax(), /*reasoning=*/true),
                        "<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{\"name\": "
                        "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
  EXPECT_EQ(m.reasoning, "The user wants weather.");
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
}

TEST(OutputParserJsonTools, DeeplyNestedArgumentsAreContent) {
  std::string deep = "<tool_call>{\"name\": \"f\", \"arguments\": " + std::string(300, '[') +
                     std::string(300, ']') + "}</tool_call>";
  auto m = parse_whole(with_syntax(json_tools_syntax()), deep);
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, deep);
}

// ---- qwen3_coder ----

ordered_json weather_tools() {
  return ordered_json::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
    "days": {"type": "integer"}, "metric": {"type": "boolean"}, "zip": {"type": "string"}}}}}])");
}

TEST(OutputParserQwen3Coder, TypedParameters) {
  auto options = with_syntax(qwen3_coder_syntax());
  options.tools = weather_tools();
  auto m = expect_parse(options,
                        "<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n"
                        "</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=metric>\n"
                        "true\n</parameter>\n<parameter=zip>\n10001\n</parameter>\n"
                        "<parameter=note>\n{\"a\": [1]}\n</parameter>\n</function>\n</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments,
            R"({"city":"New York","days":3,"metric":true,"zip":"10001","note":{"a":[1]}})");
}

TEST(OutputParserQwen3Coder, MissingParameterEndAndTwoCalls) {
  auto m = expect_parse(with_syntax(qwen3_coder_syntax()),
                        "Let me look.\n<tool_call>\n<function=a>\n<parameter=x>\nhello world\n"
                        "<parameter=y>\n2\n</function>\n</tool_call>\n<tool_call>\n<function=b>\n"
                        "</function>\n</tool_call>");
  EXPECT_EQ(m.content, "Let me look.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"x":"hello world","y":2})");
  EXPECT_EQ(m.tool_calls[1].name, "b");
  EXPECT_EQ(m.tool_calls[1].arguments, "{}");
}

TEST(OutputParserQwen3Coder, MalformedIsContent) {
  const std::string text = "<tool_call>\n<function get_weather>\n</function>\n</tool_call>";
  auto m = expect_parse(with_syntax(qwen3_coder_syntax()), text);
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, text);
}

// ---- llama3_json ----

TEST(OutputParserLlama3, BareJsonCall) {
  auto m = expect_parse(with_syntax(llama3_json_syntax()),
                        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(m.content, "");
}

TEST(OutputParserLlama3, PythonTagAndParallelCalls) {
  auto m = expect_parse(with_syntax(llama3_json_syntax()),
                        "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"q\": \"x;y\"}}; "
                        "{\"name\": \"b\", \"parameters\": {}}");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"q":"x;y"})");
  EXPECT_EQ(m.tool_calls[1].name, "b");
}

TEST(OutputParserLlama3, JsonThatIsNotACallIsContent) {
  auto m = expect_parse(with_syntax(llama3_json_syntax()), "  {\"answer\": 42}");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, "  {\"answer\": 42}");
}

TEST(OutputParserLlama3, ProseIsContentAndBracesLaterAreText) {
  auto m = expect_parse(with_syntax(llama3_json_syntax()),
                        "The JSON is {\"name\": \"a\", \"parameters\": {}}.");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, "The JSON is {\"name\": \"a\", \"parameters\": {}}.");
}

TEST(OutputParserLlama3, BuiltinPythonCallIsContent) {
  auto m = expect_parse(with_syntax(llama3_json_syntax()),
                        "<|python_tag|>brave_search.call(query=\"x\")");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, "<|python_tag|>brave_search.call(query=\"x\")");
}

// ---- mistral ----

TEST(OutputParserMistral, JsonArrayForm) {
  auto m = expect_parse(with_syntax(mistral_syntax()),
                        "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"name\": "
                        "\"b\", \"arguments\": {}}]");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].id, "id0");  // Mistral's 9-character ids
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"x":1})");
  EXPECT_EQ(m.tool_calls[1].name, "b");
}

TEST(OutputParserMistral, NamedArgsFormRepeated) {
  auto m = expect_parse(with_syntax(mistral_syntax()),
                        "I will call.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}"
                        "[TOOL_CALLS]get_time[CALL_ID]abc123def[ARGS]{}");
  EXPECT_EQ(m.content, "I will call.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(m.tool_calls[1].name, "get_time");
}

TEST(OutputParserMistral, MalformedIsContent) {
  auto m = expect_parse(with_syntax(mistral_syntax()), "[TOOL_CALLS]get weather[ARGS]{oops");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_EQ(m.content, "[TOOL_CALLS]get weather[ARGS]{oops");
}

TEST(OutputParserMistral, NewIdsAreNineAlphanumerics) {
  std::string id = new_tool_call_id(/*short_id=*/true);
  EXPECT_EQ(id.size(), 9u);
  std::string long_id = new_tool_call_id(false);
  EXPECT_EQ(long_id.size(), 29u);
  EXPECT_TRUE(long_id.starts_with("call_"));
  EXPECT_NE(long_id, new_tool_call_id(false));
}

// ---- pythonic (LFM2) ----

TEST(OutputParserPythonic, CallListWithPythonLiterals) {
  auto m = expect_parse(with_syntax(pythonic_syntax()),
                        "Checking.<|tool_call_start|>[get_weather(city=\"Paris\", days=3, "
                        "metric=True), search(q='it\\'s', tags=['a', \"b\"], opts={'x': None, "
                        "'y': (1, 2.5)},)]<|tool_call_end|>");
  EXPECT_EQ(m.content, "Checking.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"city":"Paris","days":3,"metric":true})");
  EXPECT_EQ(m.tool_calls[1].arguments,
            R"({"q":"it's","tags":["a","b"],"opts":{"x":null,"y":[1,2.5]}})");
}

TEST(OutputParserPythonic, SingleCallWithoutBracketsAndNoArguments) {
  auto m = expect_parse(with_syntax(pythonic_syntax()),
                        "<|tool_call_start|>get_time()<|tool_call_end|>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_time");
  EXPECT_EQ(m.tool_calls[0].arguments, "{}");
}

TEST(OutputParserPythonic, PositionalArgumentsAndGarbageAreContent) {
  for (const std::string text : {"<|tool_call_start|>[f(\"x\")]<|tool_call_end|>",
                                 "<|tool_call_start|>[f(a=1]<|tool_call_end|>",
                                 "<|tool_call_start|>[f(a=os.system)]<|tool_call_end|>"}) {
    auto m = expect_parse(with_syntax(pythonic_syntax()), text);
    EXPECT_TRUE(m.tool_calls.empty()) << text;
    EXPECT_EQ(m.content, text);
  }
}

// ---- the same cases for every syntax ----

struct SyntaxCases {
  const ToolCallSyntax* syntax;
  std::string two_calls_after_content;  // "Let me check." then calls a({"x":1}) and b({})
  std::string malformed;                // comes back verbatim as content
  std::string lookalike;                // resembles a call's start; all content
};

std::vector<SyntaxCases> every_syntax() {
  return {
      {&json_tools_syntax(),
       "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
       "<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>",
       "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}\n</tool_call>",
       "a <tool_ca b <tool_callx> c"},
      {&qwen3_coder_syntax(),
       "Let me check.\n<tool_call>\n<function=a>\n<parameter=x>\n1\n</parameter>\n</function>\n"
       "</tool_call>\n<tool_call>\n<function=b>\n</function>\n</tool_call>",
       "<tool_call>\n<function=a>\n<parameter=x>\n1\n</parameter>\n</tool_call>",
       "a <tool_ca b <function=x> c"},
      {&llama3_json_syntax(),
       "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": 1}}; {\"name\": \"b\", "
       "\"parameters\": {}}",
       "{\"name\": \"a\", \"parameters\": {\"x\": 1}", "a <|python_ta b {\"name\": 1} c"},
      {&mistral_syntax(), "Let me check.[TOOL_CALLS]a[ARGS]{\"x\": 1}[TOOL_CALLS]b[ARGS]{}",
       "[TOOL_CALLS]a[ARGS]{\"x\": 1", "a [TOOL_CALL b [TOOL] c"},
      {&pythonic_syntax(), "Let me check.<|tool_call_start|>[a(x=1), b()]<|tool_call_end|>",
       "<|tool_call_start|>[a(x=1]<|tool_call_end|>", "a <|tool_call_sta b <|tool_call_end|> c"},
  };
}

TEST(OutputParserEverySyntax, TwoCallsAfterContentMalformedAndLookalikes) {
  for (const SyntaxCases& cases : every_syntax()) {
    SCOPED_TRACE(std::string(cases.syntax->name));
    for (bool reasoning : {false, true}) {
      const auto options = with_syntax(*cases.syntax, reasoning);
      auto calls = expect_parse(options, cases.two_calls_after_content);
      // Llama 3's call is the whole answer; the others follow some content.
      EXPECT_EQ(calls.content, cases.syntax == &llama3_json_syntax() ? "" : "Let me check.");
      ASSERT_EQ(calls.tool_calls.size(), 2u);
      EXPECT_EQ(calls.tool_calls[0].name, "a");
      EXPECT_EQ(calls.tool_calls[0].arguments, R"({"x":1})");
      EXPECT_EQ(calls.tool_calls[1].name, "b");
      EXPECT_EQ(calls.tool_calls[1].arguments, "{}");
      EXPECT_NE(calls.tool_calls[0].id, calls.tool_calls[1].id);

      auto malformed = expect_parse(options, cases.malformed);
      EXPECT_TRUE(malformed.tool_calls.empty());
      EXPECT_EQ(malformed.content, cases.malformed);

      auto lookalike = expect_parse(options, cases.lookalike);
      EXPECT_TRUE(lookalike.tool_calls.empty());
      EXPECT_EQ(lookalike.content, cases.lookalike);

      // Reasoning first, then the calls: the same calls, and the thinking kept apart.
      if (reasoning) {
        auto thought = expect_parse(options, "<think>plan</think>" + cases.two_calls_after_content);
        EXPECT_EQ(thought.reasoning, "plan");
        EXPECT_EQ(thought.tool_calls.size(), 2u);
      }
    }
  }
}

// ---- selection ----

TEST(ToolCallSyntaxSelection, InferredFromTheTemplate) {
  auto infer = [](std::string_view source) {
    return infer_tool_call_format(source).value_or("none");
  };
  EXPECT_EQ(infer("{{ '<tool_call>\\n<function=' }}"), "qwen3_coder");
  EXPECT_EQ(infer("[TOOL_CALLS]"), "mistral");
  EXPECT_EQ(infer("<tool_call> {{ tool_call.name }}"), "json_tools");
  EXPECT_EQ(infer("<|python_tag|>"), "llama3_json");
  EXPECT_EQ(infer("<|tool_call_start|>["), "pythonic");
  EXPECT_EQ(infer("<tool_call>{{ tool_call.name }}<arg_key>"), "glm47");  // rule order
  EXPECT_EQ(infer("{{ messages }}"), "none");
  EXPECT_EQ(find_tool_call_syntax("mistral"), &mistral_syntax());
  EXPECT_EQ(find_tool_call_syntax("glm47"), nullptr);  // known, not parsed
  EXPECT_EQ(find_tool_call_syntax("nope"), nullptr);
}

// Each real template of the fixtures: the format it teaches.
TEST(ToolCallSyntaxSelection, FixtureTemplates) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"Qwen-Qwen3-0.6B", "json_tools"},
      {"Qwen-Qwen2.5-7B-Instruct", "json_tools"},
      {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "json_tools"},
      {"Qwen3-Coder", "qwen3_coder"},
      {"Qwen3.5-4B", "qwen3_coder"},
      {"meta-llama-Llama-3.3-70B-Instruct", "llama3_json"},
      {"meta-llama-Llama-3.2-3B-Instruct", "llama3_json"},
      {"mistralai-Mistral-Nemo-Instruct-2407", "mistral"},
      {"unsloth-mistral-Devstral-Small-2507", "mistral"},
      {"LFM2.5-8B-A1B", "pythonic"},
      {"GLM-4.6", "glm47"},
      {"google-gemma-3-it", "none"},
  };
  for (const auto& [name, format] : expected) {
    std::string source =
        lmserve::testing::read_file(lmserve::testing::fixture("templates/" + name + ".jinja"));
    EXPECT_EQ(infer_tool_call_format(source).value_or("none"), format) << name;
  }
}

// Every syntax, with and without reasoning, on texts mixing all the cases: the split
// invariant holds everywhere (marker split at every byte position included).
TEST(OutputParserInvariant, EverySyntaxEveryText) {
  const std::vector<std::string> texts = {
      "",
      "plain answer\n",
      "<think>r</think>c",
      "<think>\n\n</think>\n\n",
      "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>",
      "x <tool_call>{\"name\": \"a\"}</tool_call> y <tool_call>bad</tool_call> z",
      "<tool_call>\n<function=f>\n<parameter=p>\nv\n</parameter>\n</function>\n</tool_call>",
      "{\"name\": \"a\", \"parameters\": {}}",
      "<|python_tag|>{\"name\": \"a\"}",
      "[TOOL_CALLS]a[ARGS]{}",
      "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}]",
      "<think>a<tool_call>{\"name\": \"a\"}</tool_call>b</think>c",
      "  \n <tool_ <think <|python [TOOL",
      "<|tool_call_start|>[f(a=1), g(b='x')]<|tool_call_end|> after",
  };
  for (const ToolCallSyntax* syntax :
       {&json_tools_syntax(), &qwen3_coder_syntax(), &llama3_json_syntax(), &mistral_syntax()}) {
    for (bool reasoning : {false, true}) {
      for (const auto& text : texts) {
        SCOPED_TRACE(std::string(syntax->name) + (reasoning ? " +think" : ""));
        expect_same_however_split(with_syntax(*syntax, reasoning), text);
      }
    }
  }
}

// Random texts built from marker pieces, JSON and whitespace: the invariant holds for all.
TEST(OutputParserInvariant, RandomMarkerSoup) {
  const std::vector<std::string> pieces = {"<think>",
                                           "</think>",
                                           "<tool_call>",
                                           "</tool_call>",
                                           "<|python_tag|>",
                                           "[TOOL_CALLS]",
                                           "[ARGS]",
                                           "{\"name\": \"f\", \"arguments\": {\"a\": 1}}",
                                           "{",
                                           "}",
                                           "\n",
                                           " ",
                                           "<function=f>",
                                           "<parameter=a>",
                                           "</parameter>",
                                           "</function>",
                                           "text",
                                           "<",
                                           "é"};
  std::mt19937 rng(1234);
  for (int round = 0; round < 300; ++round) {
    std::string text;
    for (int n = std::uniform_int_distribution<int>(1, 8)(rng); n > 0; --n) {
      text += pieces[std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(rng)];
    }
    for (const ToolCallSyntax* syntax :
         {&json_tools_syntax(), &qwen3_coder_syntax(), &llama3_json_syntax(), &mistral_syntax()}) {
      SCOPED_TRACE(std::string(syntax->name) + ": " + text);
      expect_same_however_split(with_syntax(*syntax, round % 2 == 0), text);
    }
  }
}

}  // namespace
}  // namespace lmserve::chat
