// A hand-written Jinja2 engine for chat templates: parses once, renders many times with the
// semantics of Python Jinja2 as transformers' apply_chat_template configures it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "chat/jinja/errors.h"

namespace lmserve::chat::jinja {

// Limits that keep hostile templates and inputs from exhausting the server.
struct RenderOptions {
  // The instant strftime_now() formats; unset = the current local time.
  std::optional<std::tm> fixed_time;
  std::size_t max_output_bytes = 32u << 20;
  // Loop iterations + calls + filter applications in one render.
  std::uint64_t max_steps = 5'000'000;
  int max_call_depth = 100;
};

class Template {
 public:
  // Throws TemplateSyntaxError (with line information) when the source does not parse.
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // `context` is an object whose keys become template variables (null -> None).
  // Throws TemplateRaised for raise_exception(), TemplateRenderError for runtime errors.
  // ordered_json keeps the caller's key order (tojson output follows it, like Python dicts);
  // nlohmann::json iterates keys sorted.
  std::string render(const nlohmann::json& context) const;
  std::string render(const nlohmann::json& context, const RenderOptions& options) const;
  std::string render(const nlohmann::ordered_json& context) const;
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmserve::chat::jinja
