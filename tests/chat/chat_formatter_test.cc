// ChatFormatter: template rendering with transformers' variables and error mapping, and
// mlx_lm's role_mapping fallback (api-contract §4.1).
#include "chat/chat_formatter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lmserve::chat {
namespace {

using nlohmann::json;

json conversation() {
  return json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Capital of France?"}
  ])");
}

TEST(ChatFormatterFallback, DefaultRoleMappingIsMlxVerbatim) {
  ChatFormatter formatter(std::nullopt, "<s>", "</s>");
  EXPECT_FALSE(formatter.has_template());
  ChatPromptInput input;
  input.messages = conversation();
  RenderedPrompt prompt = formatter.render(input);
  EXPECT_EQ(prompt.text,
            "ASSISTANT's RULE: Be brief.\nUSER: Hi\nASSISTANT: Hello!\nUSER: Capital of France?\n"
            "ASSISTANT:");
  EXPECT_TRUE(prompt.add_special_tokens);
  EXPECT_EQ(ChatFormatter::default_role_mapping().at("system_prompt"),
            "A chat between a curious user and an artificial intelligence assistant. The assistant "
            "follows the given rules no matter what.");
  EXPECT_EQ(ChatFormatter::default_role_mapping().size(), 5u);
}

TEST(ChatFormatterFallback, RequestMappingReplacesTheDefaultWholesale) {
  ChatFormatter formatter(std::nullopt, "", "");
  ChatPromptInput input;
  input.messages = conversation();
  input.role_mapping = std::map<std::string, std::string>{{"user", "<u>"}, {"stop", " |\n"}};
  // No "system"/"assistant" keys: those prefixes become "", and no assistant cue is appended;
  // trailing whitespace (" |\n") is stripped at the end.
  EXPECT_EQ(formatter.render(input).text,
            "Be brief. |\n<u>Hi |\nHello! |\n<u>Capital of France? |");

  input.role_mapping = std::map<std::string, std::string>{};
  EXPECT_EQ(formatter.render(input).text, "Be brief.HiHello!Capital of France?");
}

TEST(ChatFormatterFallback, ContentPartsAndNullContent) {
  ChatFormatter formatter(std::nullopt, "", "");
  ChatPromptInput input;
  input.messages = json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]},
    {"role": "assistant", "content": null},
    {"role": "tool", "content": "r"}
  ])");
  EXPECT_EQ(formatter.render(input).text, "USER: ab\nASSISTANT: \nr\nASSISTANT:");
}

TEST(ChatFormatterTemplate, PassesTransformersVariables) {
  ChatFormatter formatter(
      std::string("{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|"
                  "{{ add_generation_prompt }}|{{ messages|length }}|{{ extra|default('-') }}|"
                  "{% for t in tools or [] %}{{ t.function.name }}{% endfor %}"),
      "<s>", "</s>");
  ASSERT_TRUE(formatter.has_template());
  ChatPromptInput input;
  input.messages = conversation();
  RenderedPrompt prompt = formatter.render(input);
  EXPECT_EQ(prompt.text, "<s>|</s>|True|True|True|4|-|");
  EXPECT_FALSE(prompt.add_special_tokens);

  input.tools = json::parse(R"([{"type": "function", "function": {"name": "get_weather"}}])");
  input.add_generation_prompt = false;
  input.template_kwargs = json{{"extra", "x"}, {"bos_token", "<override>"}};
  EXPECT_EQ(formatter.render(input).text, "<override>|</s>|False|True|False|4|x|get_weather");
}

TEST(ChatFormatterTemplate, TokensTheTokenizerLacksAreUndefined) {
  ChatFormatter formatter(std::string("[{{ bos_token is defined }}{{ bos_token }}]"), "",
                          "<|im_end|>");
  EXPECT_EQ(formatter.render(ChatPromptInput{}).text, "[False]");
}

TEST(ChatFormatterTemplate, RaisedMessagesKeepEmbeddedNuls) {
  ChatFormatter raising(std::string("{{ raise_exception(messages[0].content) }}"), "", "");
  ChatPromptInput input;
  input.messages = json::array({{{"role", "user"}, {"content", std::string("a\0b", 3)}}});
  try {
    raising.render(input);
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.message(), std::string("a\0b", 3));
  }
}

TEST(ChatFormatterTemplate, TemplateErrorsBecomeInvalidRequest) {
  ChatFormatter raising(std::string("{{ raise_exception('System role not supported') }}"), "", "");
  try {
    raising.render(ChatPromptInput{});
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.type(), "invalid_request_error");
    EXPECT_EQ(e.code(), "template_error");
    EXPECT_EQ(e.param(), std::optional<std::string>("messages"));
    EXPECT_STREQ(e.what(), "System role not supported");
  }
  ChatFormatter broken(std::string("{{ messages[0].content + 1 }}"), "", "");
  ChatPromptInput input;
  input.messages = conversation();
  try {
    broken.render(input);
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.code(), "template_error");
    EXPECT_NE(std::string(e.what()).find("can only concatenate str (not \"int\") to str"),
              std::string::npos)
        << e.what();
  }
}

TEST(ChatFormatterTemplate, UnparsableTemplateIsAFileError) {
  EXPECT_THROW(ChatFormatter(std::string("{% if %}"), "", ""), FileError);
}

TEST(ChatFormatterTemplate, RealTemplateMatchesPythonRendering) {
  // Qwen3's template with the fixture's system_multi_turn and thinking-enabled conversations.
  std::string source =
      lmserve::testing::read_file(lmserve::testing::fixture("templates/Qwen-Qwen3-0.6B.jinja"));
  json conversations =
      lmserve::testing::read_json(lmserve::testing::fixture("templates/conversations.json"));
  ChatFormatter formatter(source, "", "<|im_end|>");
  for (int n : {1, 5, 6}) {
    SCOPED_TRACE(n);
    ChatPromptInput input;
    input.messages = conversations[n]["messages"];
    input.add_generation_prompt = conversations[n]["add_generation_prompt"].get<bool>();
    if (conversations[n].contains("kwargs")) input.template_kwargs = conversations[n]["kwargs"];
    std::string want = lmserve::testing::read_file(lmserve::testing::fixture(
        "templates/Qwen-Qwen3-0.6B.expected." + std::to_string(n) + ".txt"));
    EXPECT_EQ(formatter.render(input).text, want);
  }
}

TEST(ChatFormatterTokenizer, UsesTheTokenizersTemplateAndTokens) {
  auto tok = tokenizer::Tokenizer::load(lmserve::testing::fixture("tokenizers/qwen3"));
  ChatFormatter formatter(tok);
  ASSERT_TRUE(formatter.has_template());
  json conversations =
      lmserve::testing::read_json(lmserve::testing::fixture("templates/conversations.json"));
  ChatPromptInput input;
  input.messages = conversations[1]["messages"];
  EXPECT_EQ(formatter.render(input).text, lmserve::testing::read_file(lmserve::testing::fixture(
                                              "templates/Qwen-Qwen3-0.6B.expected.1.txt")));

  auto llama = tokenizer::Tokenizer::load(lmserve::testing::fixture("tokenizers/llama3"));
  ChatFormatter llama_formatter(llama);
  ChatPromptInput hi;
  hi.messages = json::parse(R"([{"role": "user", "content": "  Hi  "}])");
  EXPECT_EQ(llama_formatter.render(hi).text,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatFormatterTokenizer, OverrideAndFallback) {
  auto mistral = tokenizer::Tokenizer::load(lmserve::testing::fixture("tokenizers/mistral"));
  ChatFormatter fallback(mistral);
  EXPECT_FALSE(fallback.has_template());
  ChatPromptInput input;
  input.messages = json::parse(R"([{"role": "user", "content": "Hi"}])");
  RenderedPrompt prompt = fallback.render(input);
  EXPECT_EQ(prompt.text, "USER: Hi\nASSISTANT:");
  EXPECT_TRUE(prompt.add_special_tokens);

  ChatFormatter overridden(
      mistral, {.template_override =
                    std::string("{{ bos_token }}[INST] {{ messages[0].content }} [/INST]")});
  ASSERT_TRUE(overridden.has_template());
  EXPECT_EQ(overridden.render(input).text, "<s>[INST] Hi [/INST]");
}

ChatPromptInput user_says(const std::string& text) {
  ChatPromptInput input;
  input.messages = json::array({{{"role", "user"}, {"content", text}}});
  return input;
}

const json kTools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");

TEST(ChatFormatterPolicy, DeveloperRoleBecomesSystemUnlessThePromptFormatKnowsIt) {
  ChatPromptInput input;
  input.messages = json::parse(R"([{"role": "developer", "content": "be brief"}])");
  const std::string print_roles = "{% for m in messages %}{{ m.role }};{% endfor %}";
  EXPECT_EQ(ChatFormatter(print_roles, "", "").render(input).text, "system;");
  EXPECT_EQ(ChatFormatter(print_roles + "{# developer #}", "", "").render(input).text,
            "developer;");
  ChatFormatter fallback(std::nullopt, "", "");
  input.role_mapping = std::map<std::string, std::string>{{"developer", "D: "}};
  EXPECT_EQ(fallback.render(input).text, "D: be brief");
}

TEST(ChatFormatterPolicy, TextPartsReachTheTemplateAsAListElseConcatenated) {
  ChatPromptInput input;
  input.messages = json::parse(R"([{"role": "user", "content": [{"type": "text", "text": "a"},
      {"type": "text", "text": "b"}]}])");
  // A template that handles lists sees them (transformers) ...
  ChatFormatter lists("{% for p in messages[0].content %}[{{ p.text }}]{% endfor %}", "", "");
  EXPECT_EQ(lists.render(input).text, "[a][b]");
  // ... one that only takes strings gets them concatenated (mlx_lm) ...
  ChatFormatter strings("{{ 'U: ' + messages[0].content }}", "", "");
  EXPECT_EQ(strings.render(input).text, "U: ab");
  // ... unless the caller wants the template's own error (/apply-template).
  input.flatten_content_on_error = false;
  EXPECT_THROW(strings.render(input), ApiError);
}

TEST(ChatFormatterPolicy, ToolUseTemplateIsChosenWhenToolsAreGiven) {
  ChatFormatter formatter(ChatTemplates{"default", "tool_use"}, json::object());
  ChatPromptInput input = user_says("hi");
  EXPECT_EQ(formatter.render(input).text, "default");
  input.tools = kTools;
  EXPECT_EQ(formatter.render(input).text, "tool_use");
}

TEST(ChatFormatterPolicy, KwargsOverrideServerDefaultsAndSpecialTokens) {
  ChatFormatter formatter(
      ChatTemplates{"{{ bos_token }}|{{ enable_thinking }}|{{ x }}|{{ pad_token }}"},
      json{{"bos_token", "<s>"}, {"pad_token", "<pad>"}},
      {.default_kwargs = json{{"enable_thinking", false}, {"x", 1}}});
  ChatPromptInput input = user_says("hi");
  EXPECT_EQ(formatter.render(input).text, "<s>|False|1|<pad>");
  input.template_kwargs = json{{"bos_token", "[B]"}, {"x", 2}};
  EXPECT_EQ(formatter.render(input).text, "[B]|False|2|<pad>");
}

TEST(ChatFormatterOutput, ToolSyntaxFromTheTemplateOnlyWhenTheRequestHasTools) {
  ChatFormatter qwen(ChatTemplates{"<tool_call> {# tool_call.name #}"}, json::object());
  ChatPromptInput input = user_says("hi");
  EXPECT_EQ(qwen.render(input).output.tool_syntax, nullptr);
  input.tools = kTools;
  input.parallel_tool_calls = false;
  RenderedPrompt rendered = qwen.render(input);
  EXPECT_EQ(rendered.output.tool_syntax, &json_tools_syntax());
  EXPECT_EQ(rendered.output.tools, kTools);
  EXPECT_FALSE(rendered.output.parallel_tool_calls);

  ChatFormatter forced(ChatTemplates{"x"}, json::object(), {.tool_call_format = "mistral"});
  EXPECT_EQ(forced.render(input).output.tool_syntax, &mistral_syntax());
  ChatFormatter off(ChatTemplates{"<tool_call> {# tool_call.name #}"}, json::object(),
                    {.tool_call_format = "none"});
  EXPECT_EQ(off.render(input).output.tool_syntax, nullptr);
  EXPECT_THROW(ChatFormatter(ChatTemplates{"x"}, json::object(), {.tool_call_format = "xml"}),
               FileError);

  ChatFormatter glm(ChatTemplates{"<tool_call>{{ name }}<arg_key>"}, json::object());
  EXPECT_EQ(glm.tool_call_format(), "glm47");
  EXPECT_FALSE(glm.parses_tool_calls());
  EXPECT_EQ(glm.render(input).output.tool_syntax, nullptr);
}

TEST(ChatFormatterOutput, ThinkBlockOpenedByThePrompt) {
  const std::string source =
      "{{ messages[0].content }}{% if enable_thinking %}<think>\n{% else %}<think>\n\n</think>"
      "\n\n{% endif %}";
  ChatFormatter formatter(ChatTemplates{source}, json::object());
  ChatPromptInput input = user_says("q");
  input.template_kwargs = json{{"enable_thinking", true}};
  RenderedPrompt open = formatter.render(input);
  ASSERT_TRUE(open.output.reasoning);
  EXPECT_TRUE(open.output.starts_in_reasoning);
  input.template_kwargs = json{{"enable_thinking", false}};
  EXPECT_FALSE(formatter.render(input).output.starts_in_reasoning);

  ChatFormatter none(ChatTemplates{source}, json::object(), {.extract_reasoning = false});
  EXPECT_FALSE(none.render(input).output.reasoning);
}

TEST(ChatFormatterTokenizer, ThinkMarkersComeFromTheVocabulary) {
  auto qwen = tokenizer::Tokenizer::load(lmserve::testing::fixture("tokenizers/qwen3"));
  RenderedPrompt rendered = ChatFormatter(qwen).render(user_says("hi"));
  ASSERT_TRUE(rendered.output.reasoning);
  ASSERT_TRUE(rendered.think_token_ids);
  EXPECT_EQ(rendered.think_token_ids->first, *qwen.token_to_id("<think>"));
  auto llama = tokenizer::Tokenizer::load(lmserve::testing::fixture("tokenizers/llama3"));
  EXPECT_FALSE(ChatFormatter(llama).render(user_says("hi")).output.reasoning);
}

// enable_thinking is not injected (mlx_lm sets it for thinking models): each template's
// own default applies, as under transformers, so /apply-template matches Python.
TEST(ChatFormatterTokenizer, TemplatesKeepTheirOwnThinkingDefault) {
  auto qwen = tokenizer::Tokenizer::load(lmserve::testing::fixture("tokenizers/qwen3"));
  const std::string print = "{{ enable_thinking | default('unset') }}";
  ChatPromptInput input = user_says("hi");
  EXPECT_EQ(ChatFormatter(qwen, {.template_override = print}).render(input).text, "unset");
  EXPECT_EQ(ChatFormatter(qwen, {.template_override = print,
                                 .default_kwargs = json{{"enable_thinking", false}}})
                .render(input)
                .text,
            "False");
  input.template_kwargs = json{{"enable_thinking", true}};
  EXPECT_EQ(ChatFormatter(qwen, {.template_override = print,
                                 .default_kwargs = json{{"enable_thinking", false}}})
                .render(input)
                .text,
            "True");
}

TEST(ChatFormatterTokenizer, SpecialTokensMapReachesTheTemplate) {
  auto qwen = tokenizer::Tokenizer::load(lmserve::testing::fixture("tokenizers/qwen3"));
  const std::string print =
      "{{ bos_token | default('-') }}|{{ eos_token }}|{{ pad_token }}|{{ unk_token | default('-') "
      "}}";
  // Qwen3's tokenizer_config.json: no BOS, eos <|im_end|>, pad <|endoftext|>, unk null.
  EXPECT_EQ(ChatFormatter(qwen, {.template_override = print}).render(user_says("hi")).text,
            "-|<|im_end|>|<|endoftext|>|-");
}

TEST(ChatFormatterTokenizer, NamedTemplatesInTokenizerConfig) {
  lmserve::testing::TempDir dir;
  std::filesystem::copy_file(lmserve::testing::fixture("tokenizers/qwen3/tokenizer.json"),
                             dir.path() / "tokenizer.json");
  lmserve::testing::write_file(dir.path() / "tokenizer_config.json", R"({"chat_template": [
      {"name": "default", "template": "plain"},
      {"name": "tool_use", "template": "with {{ tools | length }} tools"}],
      "tool_parser_type": "mistral"})");
  auto tok = tokenizer::Tokenizer::load(dir.path());
  ChatFormatter formatter(tok);
  EXPECT_EQ(formatter.tool_call_format(), "mistral");  // tokenizer_config.json's key wins
  EXPECT_EQ(ChatFormatter(tok, {.tool_call_format = "json_tools"}).tool_call_format(),
            "json_tools");
  ChatPromptInput input = user_says("hi");
  EXPECT_EQ(formatter.render(input).text, "plain");
  input.tools = kTools;
  EXPECT_EQ(formatter.render(input).text, "with 1 tools");

  // chat_template.json (the processor form) comes before tokenizer_config.json, and
  // chat_template.jinja before both.
  lmserve::testing::write_file(dir.path() / "chat_template.json",
                               R"({"chat_template": "from json"})");
  EXPECT_EQ(ChatFormatter(tokenizer::Tokenizer::load(dir.path())).render(user_says("hi")).text,
            "from json");
  lmserve::testing::write_file(dir.path() / "chat_template.jinja", "from jinja");
  EXPECT_EQ(ChatFormatter(tokenizer::Tokenizer::load(dir.path())).render(user_says("hi")).text,
            "from jinja");
}

}  // namespace
}  // namespace lmserve::chat
