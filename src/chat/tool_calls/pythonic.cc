// Pythonic calls (LFM2): <|tool_call_start|>[get_weather(city="Paris"), f(n=1)]<|tool_call_end|>
// A list of Python calls with keyword arguments whose values are Python literals (strings,
// numbers, True/False/None, lists, tuples, dicts), converted to JSON.
#include <cctype>

#include "chat/tool_calls/tool_call_syntax.h"
#include "util/utf8.h"

namespace lmserve::chat {
namespace {

using nlohmann::ordered_json;

constexpr int kMaxDepth = 64;

class PythonReader {
 public:
  explicit PythonReader(std::string_view text) : text_(text) {}

  bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }
  bool take(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  // A dotted identifier (module.function).
  std::optional<std::string> name() {
    skip_space();
    std::size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_' ||
            text_[pos_] == '.' || text_[pos_] == '-')) {
      ++pos_;
    }
    if (pos_ == start) return std::nullopt;
    return std::string(text_.substr(start, pos_ - start));
  }
  std::optional<ordered_json> value(int depth = 0) {
    if (depth > kMaxDepth) return std::nullopt;
    skip_space();
    if (pos_ >= text_.size()) return std::nullopt;
    char c = text_[pos_];
    if (c == '"' || c == '\'') return string();
    if (c == '[' || c == '(') return sequence(c == '[' ? ']' : ')', depth);
    if (c == '{') return dict(depth);
    auto word = name();
    if (!word) return std::nullopt;
    if (*word == "True") return true;
    if (*word == "False") return false;
    if (*word == "None") return nullptr;
    auto number = tool_call_text::parse_json(*word);
    if (number && number->is_number()) return number;
    return std::nullopt;
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  std::optional<ordered_json> string() {
    const char quote = text_[pos_++];
    std::string out;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) return std::nullopt;
      char e = text_[pos_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '0':
          out += '\0';
          break;
        case 'u': {
          if (pos_ + 4 > text_.size()) return std::nullopt;
          unsigned code = 0;
          for (int i = 0; i < 4; ++i) {
            char h = text_[pos_++];
            if (!std::isxdigit(static_cast<unsigned char>(h))) return std::nullopt;
            code = code * 16 + (std::isdigit(static_cast<unsigned char>(h))
                                    ? h - '0'
                                    : std::tolower(static_cast<unsigned char>(h)) - 'a' + 10);
          }
          util::append_utf8(out, code);
          break;
        }
        default:
          out += e;  // \\, \', \" and anything else verbatim
      }
    }
    return std::nullopt;
  }
  std::optional<ordered_json> sequence(char close, int depth) {
    ++pos_;
    ordered_json list = ordered_json::array();
    while (!take(close)) {
      auto item = value(depth + 1);
      if (!item) return std::nullopt;
      list.push_back(std::move(*item));
      if (!take(',') && !(peek(close))) return std::nullopt;
    }
    return list;
  }
  std::optional<ordered_json> dict(int depth) {
    ++pos_;
    ordered_json object = ordered_json::object();
    while (!take('}')) {
      auto key = value(depth + 1);
      if (!key || !(key->is_string() || key->is_number())) return std::nullopt;
      if (!take(':')) return std::nullopt;
      auto item = value(depth + 1);
      if (!item) return std::nullopt;
      object[key->is_string() ? key->get<std::string>() : key->dump()] = std::move(*item);
      if (!take(',') && !peek('}')) return std::nullopt;
    }
    return object;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// NAME(key=value, ...)
std::optional<ParsedCall> read_call(PythonReader& reader) {
  auto name = reader.name();
  if (!name || !reader.take('(')) return std::nullopt;
  ordered_json args = ordered_json::object();
  while (!reader.take(')')) {
    auto key = reader.name();
    if (!key || !reader.take('=')) return std::nullopt;  // positional arguments have no name
    auto value = reader.value();
    if (!value) return std::nullopt;
    args[*key] = std::move(*value);
    if (reader.take(')')) break;
    if (!reader.take(',')) return std::nullopt;
  }
  return ParsedCall{std::move(*name), tool_call_text::dump(args)};
}

ParsedCalls parse(std::string_view body, const ordered_json&) {
  PythonReader reader(body);
  std::vector<ParsedCall> calls;
  const bool list = reader.take('[');
  do {
    auto call = read_call(reader);
    if (!call) return std::nullopt;
    calls.push_back(std::move(*call));
  } while (list && reader.take(','));
  if (list && !reader.take(']')) return std::nullopt;
  if (!reader.at_end()) return std::nullopt;
  return calls;
}

}  // namespace

const ToolCallSyntax& pythonic_syntax() {
  static const ToolCallSyntax kSyntax{.name = "pythonic",
                                      .start = "<|tool_call_start|>",
                                      .end = "<|tool_call_end|>",
                                      .parse = parse};
  return kSyntax;
}

}  // namespace lmserve::chat
