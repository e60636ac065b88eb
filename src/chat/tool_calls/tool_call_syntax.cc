#include "chat/tool_calls/tool_call_syntax.h"

#include <array>
#include <random>

#include "util/text_file.h"

namespace lmserve::chat {

namespace {

constexpr int kMaxArgumentsDepth = 128;

const std::array<const ToolCallSyntax*, 5>& all_syntaxes() {
  static const std::array<const ToolCallSyntax*, 5> kAll = {
      &json_tools_syntax(), &qwen3_coder_syntax(), &llama3_json_syntax(), &mistral_syntax(),
      &pythonic_syntax()};
  return kAll;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

const ToolCallSyntax* find_tool_call_syntax(std::string_view name) {
  for (const ToolCallSyntax* syntax : all_syntaxes()) {
    if (syntax->name == name) return syntax;
  }
  return nullptr;
}

std::vector<std::string_view> tool_call_syntax_names() {
  std::vector<std::string_view> names;
  for (const ToolCallSyntax* syntax : all_syntaxes()) names.push_back(syntax->name);
  return names;
}

std::optional<std::string_view> infer_tool_call_format(std::string_view source) {
  // api-contract §4.7's rules in their order (first match wins), then the forms it does not
  // list: LFM2.5's pythonic markers and Llama 3's JSON prompt.
  auto has = [source](std::string_view needle) { return contains(source, needle); };
  if (has("<minimax:tool_call>")) return "minimax_m2";
  if (has("<|tool_call>") && has("<tool_call|>")) return "gemma4";
  if (has("<start_function_call>")) return "function_gemma";
  if (has("<longcat_tool_call>")) return "longcat";
  if (has("<arg_key>")) return "glm47";
  if (has("<|tool_list_start|>")) return "pythonic";
  if (has("<tool_call>\n<function=") || has("<tool_call>\\n<function=")) return "qwen3_coder";
  if (has("<|tool_calls_section_begin|>")) return "kimi_k2";
  if (has("[TOOL_CALLS]")) return "mistral";
  if (has("<tool_call>") && has("tool_call.name")) return "json_tools";
  if (has("<|tool_call_start|>")) return "pythonic";
  if (has("<|python_tag|>") || has(R"({"name": function name, "parameters")")) {
    return "llama3_json";
  }
  return std::nullopt;
}

std::string new_tool_call_id(bool short_id) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng = [] {
    std::random_device device;
    std::seed_seq seq{device(), device(), device(), device()};
    return std::mt19937_64(seq);
  }();
  std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
  std::string id = short_id ? "" : "call_";
  for (int i = 0, n = short_id ? 9 : 24; i < n; ++i) id += kAlphabet[pick(rng)];
  return id;
}

namespace tool_call_text {

std::string dump(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false,
                    nlohmann::ordered_json::error_handler_t::replace);
}

std::optional<nlohmann::ordered_json> parse_json(std::string_view text) {
  // Model output is untrusted: deep nesting would recurse when the value is copied or dumped.
  if (!util::json_nesting_within(text, kMaxArgumentsDepth)) return std::nullopt;
  auto value = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

std::optional<ParsedCall> call_from_object(const nlohmann::ordered_json& object) {
  if (!object.is_object()) return std::nullopt;
  auto name = object.find("name");
  if (name == object.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return std::nullopt;
  }
  auto args = object.find("arguments");
  if (args == object.end()) args = object.find("parameters");
  ParsedCall call{name->get<std::string>(), "{}"};
  if (args == object.end() || args->is_null()) return call;
  if (args->is_object()) {
    call.arguments = dump(*args);
  } else if (args->is_string()) {
    // Some models write the arguments as a JSON string, as the OpenAI wire form does.
    auto parsed = parse_json(args->get_ref<const std::string&>());
    if (!parsed || !parsed->is_object()) return std::nullopt;
    call.arguments = dump(*parsed);
  } else {
    return std::nullopt;
  }
  return call;
}

std::optional<std::size_t> json_value_end(std::string_view text, std::size_t from) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = from; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
      if (depth < 0) return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  std::size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  std::size_t end = text.find_last_not_of(kSpace);
  return text.substr(begin, end - begin + 1);
}

}  // namespace tool_call_text

}  // namespace lmserve::chat
