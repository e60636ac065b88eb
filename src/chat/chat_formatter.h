// Chat policy between a request and the model: turns a conversation into the prompt text
// the model expects (the model's Jinja chat template, else mlx_lm's role_mapping fallback)
// and says how to read the model's answer to it (reasoning markers, tool-call syntax).
#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "chat/output_parser.h"

namespace lmserve::tokenizer {
class Tokenizer;
}

namespace lmserve::chat {

namespace jinja {
class Template;
}

struct ChatPromptInput {
  // Normalised messages: array of objects with "role" and "content" (a string, or a list of
  // text parts; null content as ""), plus any other keys passed through
  // ("name", "tool_calls" with arguments parsed into objects, "tool_call_id", ...).
  // Ordered JSON throughout: templates that print `tools|tojson` or iterate a message's
  // keys must see the request's key order, as Python dicts keep it.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // Request role_mapping (replaces the default wholesale, mlx semantics); only used when
  // the model has no chat template.
  std::optional<std::map<std::string, std::string>> role_mapping;
  nlohmann::ordered_json tools;      // null = none (tool_choice already applied)
  nlohmann::ordered_json documents;  // null = none
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();  // extra variables
  bool add_generation_prompt = true;
  bool parallel_tool_calls = true;
  // Content given as text parts reaches the template as a list (transformers); a template
  // that fails on lists gets the parts concatenated instead (mlx_lm), unless this is false.
  bool flatten_content_on_error = true;
};

struct RenderedPrompt {
  std::string text;
  // Template prompts carry their own BOS; the role_mapping fallback needs the tokenizer's.
  bool add_special_tokens = false;
  // How to read the model's answer to this prompt.
  OutputParserOptions output;
  // The think markers' token ids, when both are single tokens (reasoning_tokens counts).
  std::optional<std::pair<std::int32_t, std::int32_t>> think_token_ids;
};

struct ChatTemplates {
  std::optional<std::string> default_source;
  std::optional<std::string> tool_use_source;  // preferred when a request has tools
};

struct ChatOptions {
  std::optional<std::string> template_override;  // --chat-template: replaces the model's
  // --chat-template-args: template variables under the request's chat_template_kwargs.
  nlohmann::ordered_json default_kwargs = nlohmann::ordered_json::object();
  // --tool-call-format: a syntax name or "none"; unset = the tokenizer's tool_parser_type,
  // else inferred from the template.
  std::optional<std::string> tool_call_format;
  bool extract_reasoning = true;      // --reasoning-format none: thinking stays in content
  std::optional<std::tm> fixed_time;  // strftime_now's instant (tests); unset = now
};

class ChatFormatter {
 public:
  // Throws FileError if a template does not parse or --tool-call-format is unknown.
  explicit ChatFormatter(const tokenizer::Tokenizer& tokenizer, ChatOptions options = {});
  // From explicit parts: `special_tokens` as transformers' special_tokens_map
  // ({"bos_token": "<s>", ...}); think markers are assumed when the template writes <think>.
  ChatFormatter(ChatTemplates templates, nlohmann::ordered_json special_tokens,
                ChatOptions options = {});
  // The same with only BOS/EOS ("" = the tokenizer has none).
  ChatFormatter(std::optional<std::string> template_source, std::string bos_token,
                std::string eos_token);
  ~ChatFormatter();
  ChatFormatter(ChatFormatter&&) noexcept;

  bool has_template() const;
  // How the model writes tool calls: --tool-call-format, else tokenizer_config.json's
  // tool_parser_type, else inferred from the template; "" when none. parses_tool_calls() is
  // false for a format lmserve does not implement (the calls then stay in content).
  const std::string& tool_call_format() const { return tool_call_format_; }
  bool parses_tool_calls() const { return tool_syntax_ != nullptr; }

  // Throws ApiError (400, code "template_error", param "messages") when the template raises.
  RenderedPrompt render(const ChatPromptInput& input) const;

  static const std::map<std::string, std::string>& default_role_mapping();

 private:
  const jinja::Template* template_for(const ChatPromptInput& input) const;
  bool knows_developer_role(const ChatPromptInput& input) const;
  RenderedPrompt render_fallback(const ChatPromptInput& input,
                                 const nlohmann::ordered_json& messages) const;
  std::string render_template(const jinja::Template& tmpl, const ChatPromptInput& input,
                              nlohmann::ordered_json messages) const;
  OutputParserOptions output_options(const ChatPromptInput& input, const std::string& prompt) const;

  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
  ChatOptions options_;
  std::string template_text_;  // every template source, for the developer-role check
  std::unique_ptr<jinja::Template> default_template_;
  std::unique_ptr<jinja::Template> tool_use_template_;
  void use_tool_call_format(std::string format);

  std::string tool_call_format_;
  const ToolCallSyntax* tool_syntax_ = nullptr;
  std::optional<ReasoningMarkers> reasoning_;
  std::optional<std::pair<std::int32_t, std::int32_t>> think_token_ids_;
};

}  // namespace lmserve::chat
