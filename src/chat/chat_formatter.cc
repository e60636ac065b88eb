#include "chat/chat_formatter.h"

#include <algorithm>

#include "chat/jinja/pystr.h"
#include "chat/jinja/template.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lmserve::chat {
namespace {

using nlohmann::ordered_json;

std::unique_ptr<jinja::Template> compile(const std::optional<std::string>& source) {
  if (!source) return nullptr;
  try {
    return std::make_unique<jinja::Template>(*source);
  } catch (const jinja::TemplateSyntaxError& e) {
    throw FileError(std::string("chat template does not parse: ") + e.what());
  }
}

ordered_json special_tokens_of(const tokenizer::Tokenizer& tokenizer) {
  ordered_json tokens = ordered_json::object();
  for (const auto& [key, text] : tokenizer.special_tokens_map()) tokens[key] = text;
  // A GGUF vocabulary names only BOS/EOS.
  if (!tokens.contains("bos_token") && !tokenizer.bos_token().empty()) {
    tokens["bos_token"] = tokenizer.bos_token();
  }
  if (!tokens.contains("eos_token") && !tokenizer.eos_token().empty()) {
    tokens["eos_token"] = tokenizer.eos_token();
  }
  return tokens;
}

ChatTemplates templates_of(const tokenizer::Tokenizer& tokenizer, const ChatOptions& options) {
  if (options.template_override) return {options.template_override, std::nullopt};
  return {tokenizer.chat_template(), tokenizer.tool_use_chat_template()};
}

// Message content as text: strings verbatim, text (and refusal) parts concatenated, null as
// "" (lmserve flattens parts in the role_mapping prompt where mlx would print the list).
std::string content_text(const ordered_json& message) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string out;
    for (const auto& part : *it) {
      if (part.is_string()) {
        out += part.get<std::string>();
      } else if (part.is_object()) {
        const std::string type = part.value("type", "");
        if ((type == "text" || type == "refusal") && part.contains(type) &&
            part[type].is_string()) {
          out += part[type].get<std::string>();
        }
      }
    }
    return out;
  }
  return it->dump();
}

bool has_content_parts(const ordered_json& messages) {
  return messages.is_array() &&
         std::any_of(messages.begin(), messages.end(), [](const ordered_json& m) {
           return m.is_object() && m.contains("content") && m["content"].is_array();
         });
}

std::string lookup(const std::map<std::string, std::string>& mapping, const std::string& key) {
  auto it = mapping.find(key);
  return it == mapping.end() ? std::string() : it->second;
}

}  // namespace

ChatFormatter::ChatFormatter(const tokenizer::Tokenizer& tokenizer, ChatOptions options)
    // `options` is copied, not moved: templates_of reads it in the same call.
    : ChatFormatter(templates_of(tokenizer, options), special_tokens_of(tokenizer), options) {
  if (!options_.tool_call_format && tokenizer.tool_parser_type()) {
    use_tool_call_format(*tokenizer.tool_parser_type());
  }
  // Reasoning markers are the model's only when both are single tokens (api-contract §4.6).
  auto start = tokenizer.token_to_id("<think>");
  auto end = tokenizer.token_to_id("</think>");
  if (start && end) {
    think_token_ids_ = std::pair{*start, *end};
    if (options_.extract_reasoning) reasoning_ = ReasoningMarkers{};
  } else {
    reasoning_.reset();
  }
}

ChatFormatter::ChatFormatter(ChatTemplates templates, ordered_json special_tokens,
                             ChatOptions options)
    : special_tokens_(std::move(special_tokens)), options_(std::move(options)) {
  default_template_ = compile(templates.default_source);
  tool_use_template_ = compile(templates.tool_use_source);
  template_text_ = templates.default_source.value_or("") + templates.tool_use_source.value_or("");
  if (options_.tool_call_format) {
    if (*options_.tool_call_format != "none" &&
        !find_tool_call_syntax(*options_.tool_call_format)) {
      throw FileError("unknown tool-call format '" + *options_.tool_call_format + "'");
    }
    use_tool_call_format(*options_.tool_call_format == "none" ? "" : *options_.tool_call_format);
  } else {
    use_tool_call_format(std::string(infer_tool_call_format(template_text_).value_or("")));
  }
  if (options_.extract_reasoning && template_text_.find("<think>") != std::string::npos) {
    reasoning_ = ReasoningMarkers{};
  }
}

ChatFormatter::ChatFormatter(std::optional<std::string> template_source, std::string bos_token,
                             std::string eos_token)
    : ChatFormatter(ChatTemplates{std::move(template_source), std::nullopt}, [&] {
        ordered_json tokens = ordered_json::object();
        if (!bos_token.empty()) tokens["bos_token"] = bos_token;
        if (!eos_token.empty()) tokens["eos_token"] = eos_token;
        return tokens;
      }()) {}

ChatFormatter::~ChatFormatter() = default;
ChatFormatter::ChatFormatter(ChatFormatter&&) noexcept = default;

void ChatFormatter::use_tool_call_format(std::string format) {
  tool_call_format_ = std::move(format);
  tool_syntax_ = find_tool_call_syntax(tool_call_format_);
}

bool ChatFormatter::has_template() const { return default_template_ || tool_use_template_; }

const std::map<std::string, std::string>& ChatFormatter::default_role_mapping() {
  // mlx_lm's convert_chat defaults, verbatim (system_prompt is never used by the algorithm).
  static const std::map<std::string, std::string> kDefault = {
      {"system_prompt",
       "A chat between a curious user and an artificial intelligence assistant. The assistant "
       "follows the given rules no matter what."},
      {"system", "ASSISTANT's RULE: "},
      {"user", "USER: "},
      {"assistant", "ASSISTANT: "},
      {"stop", "\n"},
  };
  return kDefault;
}

const jinja::Template* ChatFormatter::template_for(const ChatPromptInput& input) const {
  // transformers picks the "tool_use" template when tools are given and it exists.
  if (!input.tools.is_null() && tool_use_template_) return tool_use_template_.get();
  return default_template_ ? default_template_.get() : tool_use_template_.get();
}

bool ChatFormatter::knows_developer_role(const ChatPromptInput& input) const {
  if (has_template()) return template_text_.find("developer") != std::string::npos;
  return input.role_mapping && input.role_mapping->contains("developer");
}

OutputParserOptions ChatFormatter::output_options(const ChatPromptInput& input,
                                                  const std::string& prompt) const {
  OutputParserOptions output;
  output.reasoning = reasoning_;
  output.starts_in_reasoning = reasoning_ && prompt_opens_reasoning(prompt, *reasoning_);
  // No tools in the request (or tool_choice "none"): nothing is read as a call.
  if (!input.tools.is_null()) {
    output.tool_syntax = tool_syntax_;
    output.tools = input.tools;
  }
  output.parallel_tool_calls = input.parallel_tool_calls;
  return output;
}

RenderedPrompt ChatFormatter::render_fallback(const ChatPromptInput& input,
                                              const ordered_json& messages) const {
  const auto& mapping = input.role_mapping ? *input.role_mapping : default_role_mapping();
  std::string prompt;
  const std::string stop = lookup(mapping, "stop");
  if (messages.is_array()) {
    for (const auto& message : messages) {
      std::string role =
          message.is_object() && message.contains("role") && message["role"].is_string()
              ? message["role"].get<std::string>()
              : std::string();
      prompt += lookup(mapping, role);
      prompt += message.is_object() ? content_text(message) : std::string();
      prompt += stop;
    }
  }
  prompt += lookup(mapping, "assistant");
  return RenderedPrompt{.text = jinja::pystr::strip(prompt, std::nullopt, false, true),
                        .add_special_tokens = true};
}

std::string ChatFormatter::render_template(const jinja::Template& tmpl,
                                           const ChatPromptInput& input,
                                           ordered_json messages) const {
  // Variables as transformers' apply_chat_template passes them: tools/documents are bound
  // (to None when absent), then the special tokens, then the keyword arguments (the
  // server's --chat-template-args under the request's chat_template_kwargs) override all.
  ordered_json context = ordered_json::object();
  context["messages"] = std::move(messages);
  context["tools"] = input.tools;
  context["documents"] = input.documents;
  context["add_generation_prompt"] = input.add_generation_prompt;
  for (const ordered_json* kwargs :
       {&special_tokens_, &options_.default_kwargs, &input.template_kwargs}) {
    if (!kwargs->is_object()) continue;
    for (auto it = kwargs->begin(); it != kwargs->end(); ++it) context[it.key()] = it.value();
  }
  jinja::RenderOptions render_options;
  render_options.fixed_time = options_.fixed_time;
  try {
    return tmpl.render(context, render_options);
  } catch (const jinja::TemplateRaised& e) {
    throw ApiError::invalid_request("template_error", "messages", e.full_what());
  } catch (const jinja::TemplateRenderError& e) {
    throw ApiError::invalid_request(
        "template_error", "messages",
        std::string("chat template failed: ") + e.kind_name() + ": " + e.full_what());
  }
}

RenderedPrompt ChatFormatter::render(const ChatPromptInput& input) const {
  // `developer` is OpenAI's newer name for `system`; keep it only where the prompt format
  // knows it.
  ordered_json messages = input.messages;
  if (!knows_developer_role(input) && messages.is_array()) {
    for (auto& message : messages) {
      if (message.is_object() && message.value("role", "") == "developer") {
        message["role"] = "system";
      }
    }
  }

  RenderedPrompt rendered;
  if (const jinja::Template* tmpl = template_for(input)) {
    try {
      rendered.text = render_template(*tmpl, input, messages);
    } catch (const ApiError&) {
      if (!input.flatten_content_on_error || !has_content_parts(messages)) throw;
      for (auto& message : messages) {
        if (message.is_object() && message.contains("content") && message["content"].is_array()) {
          message["content"] = content_text(message);
        }
      }
      rendered.text = render_template(*tmpl, input, std::move(messages));
    }
  } else {
    rendered = render_fallback(input, messages);
  }
  rendered.output = output_options(input, rendered.text);
  rendered.think_token_ids = think_token_ids_;
  return rendered;
}

}  // namespace lmserve::chat
