#include "chat/chat_formatter.h"

#include "chat/jinja/pystr.h"
#include "chat/jinja/template.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lmserve::chat {

ChatFormatter::ChatFormatter(const tokenizer::Tokenizer& tokenizer,
                             std::optional<std::string> template_override)
    : ChatFormatter(template_override ? std::move(template_override) : tokenizer.chat_template(),
                    tokenizer.bos_token(), tokenizer.eos_token()) {
  tokenizer_ = &tokenizer;
}

ChatFormatter::ChatFormatter(std::optional<std::string> template_source, std::string bos_token,
                             std::string eos_token)
    : bos_token_(std::move(bos_token)),
      eos_token_(std::move(eos_token)),
      source_(std::move(template_source)) {
  if (!source_) return;
  try {
    template_ = std::make_unique<jinja::Template>(*source_);
  } catch (const jinja::TemplateSyntaxError& e) {
    throw FileError(std::string("chat template does not parse: ") + e.what());
  }
}

ChatFormatter::~ChatFormatter() = default;
ChatFormatter::ChatFormatter(ChatFormatter&&) noexcept = default;

bool ChatFormatter::has_template() const { return template_ != nullptr; }

const std::optional<std::string>& ChatFormatter::template_source() const { return source_; }

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

namespace {

// Message content as text: strings verbatim, text parts concatenated (lmserve flattens
// parts here where mlx would print the Python list), null as "".
std::string content_text(const nlohmann::ordered_json& message) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string out;
    for (const auto& part : *it) {
      if (part.is_string()) {
        out += part.get<std::string>();
      } else if (part.is_object() && part.value("type", "") == "text" && part.contains("text") &&
                 part["text"].is_string()) {
        out += part["text"].get<std::string>();
      }
    }
    return out;
  }
  return it->dump();
}

std::string lookup(const std::map<std::string, std::string>& mapping, const std::string& key) {
  auto it = mapping.find(key);
  return it == mapping.end() ? std::string() : it->second;
}

}  // namespace

RenderedPrompt ChatFormatter::render(const ChatPromptInput& input) const {
  if (!template_) {
    const auto& mapping = input.role_mapping ? *input.role_mapping : default_role_mapping();
    std::string prompt;
    const std::string stop = lookup(mapping, "stop");
    if (input.messages.is_array()) {
      for (const auto& message : input.messages) {
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
    return RenderedPrompt{jinja::pystr::strip(prompt, std::nullopt, false, true), true};
  }

  // Variables as transformers' apply_chat_template passes them: tools/documents are bound
  // (to None when absent), special tokens only when the tokenizer defines them, and the
  // template kwargs override everything.
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = input.messages;
  context["tools"] = input.tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = input.add_generation_prompt;
  if (!bos_token_.empty()) context["bos_token"] = bos_token_;
  if (!eos_token_.empty()) context["eos_token"] = eos_token_;
  if (input.template_kwargs.is_object()) {
    for (auto it = input.template_kwargs.begin(); it != input.template_kwargs.end(); ++it) {
      context[it.key()] = it.value();
    }
  }
  try {
    return RenderedPrompt{template_->render(context), false};
  } catch (const jinja::TemplateRaised& e) {
    throw ApiError::invalid_request("template_error", "messages", e.full_what());
  } catch (const jinja::TemplateRenderError& e) {
    throw ApiError::invalid_request(
        "template_error", "messages",
        std::string("chat template failed: ") + e.kind_name() + ": " + e.full_what());
  }
}

}  // namespace lmserve::chat
