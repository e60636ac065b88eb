// Turns a chat conversation into the prompt text the model expects: the model's Jinja chat
// template when it has one, else mlx_lm's role_mapping fallback.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lmserve::tokenizer {
class Tokenizer;
}

namespace lmserve::chat {

namespace jinja {
class Template;
}

struct ChatPromptInput {
  // Normalised messages: array of objects with "role" and string "content" (text parts
  // already concatenated, null content as ""), plus any other keys passed through
  // ("name", "tool_calls" with arguments parsed into objects, "tool_call_id", ...).
  // Ordered JSON throughout: templates that print `tools|tojson` or iterate a message's
  // keys must see the request's key order, as Python dicts keep it.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // Request role_mapping (replaces the default wholesale, mlx semantics); only used when
  // the model has no chat template.
  std::optional<std::map<std::string, std::string>> role_mapping;
  nlohmann::ordered_json tools;                                               // null = none
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();  // extra variables
  bool add_generation_prompt = true;
};

struct RenderedPrompt {
  std::string text;
  // Template prompts carry their own BOS; the role_mapping fallback needs the tokenizer's.
  bool add_special_tokens = false;
};

class ChatFormatter {
 public:
  // template_override: a Jinja source that replaces the tokenizer's (--chat-template).
  // Throws FileError if the template does not parse.
  ChatFormatter(const tokenizer::Tokenizer& tokenizer,
                std::optional<std::string> template_override = std::nullopt);
  // Same behaviour from an explicit template source and special-token strings ("" = the
  // tokenizer has none), for callers and tests that have no Tokenizer at hand.
  ChatFormatter(std::optional<std::string> template_source, std::string bos_token,
                std::string eos_token);
  ~ChatFormatter();
  ChatFormatter(ChatFormatter&&) noexcept;

  bool has_template() const;
  const std::optional<std::string>& template_source() const;

  // Throws ApiError (400, code "template_error", param "messages") when the template raises.
  RenderedPrompt render(const ChatPromptInput& input) const;

  static const std::map<std::string, std::string>& default_role_mapping();

 private:
  const tokenizer::Tokenizer* tokenizer_ = nullptr;
  std::string bos_token_;
  std::string eos_token_;
  std::optional<std::string> source_;
  std::unique_ptr<jinja::Template> template_;
};

}  // namespace lmserve::chat
