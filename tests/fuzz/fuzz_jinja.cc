// Fuzzes the Jinja engine: the bytes are a template source, optionally followed by a NUL and
// a JSON object of variables (else a chat-shaped default context). Parsing and rendering
// under the server's limits may only throw the engine's TemplateError family.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string_view>

#include "chat/jinja/template.h"
#include "util/text_file.h"

namespace {

using nlohmann::ordered_json;
namespace jinja = lmserve::chat::jinja;

const ordered_json* default_context = nullptr;

constexpr const char* kDefaultContext = R"({
  "messages": [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "22 C"},
    {"role": "assistant", "content": "<think>ok</think>It is 22 C."},
    {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]}
  ],
  "tools": [{"type": "function", "function": {"name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}],
  "documents": null,
  "add_generation_prompt": true,
  "bos_token": "<s>",
  "eos_token": "</s>"
})";

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  default_context = new ordered_json(ordered_json::parse(kDefaultContext));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view source = input.substr(0, nul);

  ordered_json parsed;
  const ordered_json* context = default_context;
  if (nul != std::string_view::npos) {
    const std::string_view text = input.substr(nul + 1);
    // The server bounds nesting before parsing any JSON; do the same.
    if (lmserve::util::json_nesting_within(text, 128)) {
      parsed = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_object()) context = &parsed;
    }
  }

  jinja::RenderOptions options;  // the limits the chat formatter renders with
  std::tm fixed{};
  fixed.tm_year = 124;
  fixed.tm_mon = 6;
  fixed.tm_mday = 26;
  options.fixed_time = fixed;
  try {
    const jinja::Template tmpl(source);
    (void)tmpl.render(*context, options);
  } catch (const jinja::TemplateError&) {
  }
  return 0;
}
