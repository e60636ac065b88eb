#include "chat/jinja/lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "chat/jinja/errors.h"
#include "chat/jinja/pystr.h"

namespace lmserve::chat::jinja {

namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Python's str.rstrip() with no argument (whitespace incl. \x1c-\x1f).
std::string_view rstrip_ws(std::string_view s) {
  std::size_t e = s.size();
  while (e > 0) {
    auto c = static_cast<unsigned char>(s[e - 1]);
    if (is_ws(static_cast<char>(c)) || (c >= 0x1c && c <= 0x1f)) {
      --e;
    } else {
      break;
    }
  }
  return s.substr(0, e);
}

// Jinja2 joins the source's lines with "\n" and drops one trailing newline.
std::string normalize_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out.push_back(src[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      std::size_t start = find_tag(pos_);
      if (start == std::string::npos) {
        emit_data(std::string_view(src_).substr(pos_));
        pos_ = src_.size();
        break;
      }
      char kind = src_[start + 1];
      std::size_t after = start + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      std::string_view text = std::string_view(src_).substr(pos_, start - pos_);

      std::size_t raw_body = 0;
      bool raw = kind == '%' && match_raw_begin(after, &raw_body);

      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop spaces/tabs between the line start and a block or comment tag.
        std::size_t nl = text.rfind('\n');
        std::size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool only_blank = true;
          for (std::size_t i = l_pos; i < text.size(); ++i) {
            if (text[i] != ' ' && text[i] != '\t') {
              only_blank = false;
              break;
            }
          }
          if (only_blank) text = text.substr(0, l_pos);
        }
      }
      emit_data(text);
      count_lines(pos_, start);
      pos_ = after;

      if (raw) {
        line_starting = lex_raw(raw_body);
      } else if (kind == '#') {
        line_starting = lex_comment();
      } else {
        line_starting = lex_tag(kind == '%');
      }
    }
    Token eof;
    eof.type = TokenType::kEof;
    eof.line = line_;
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw TemplateSyntaxError(line_, msg); }

  std::size_t find_tag(std::size_t from) const {
    while (true) {
      std::size_t p = src_.find('{', from);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      from = p + 1;
    }
  }

  void count_lines(std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to && i < src_.size(); ++i) line_ += src_[i] == '\n';
  }

  void emit_data(std::string_view text) {
    if (text.empty()) return;
    Token t;
    t.type = TokenType::kData;
    t.value = std::string(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  void emit(TokenType type, std::string value = {}) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  std::size_t skip_ws(std::size_t p) const {
    while (p < src_.size() && is_ws(src_[p])) ++p;
    return p;
  }

  bool starts_with(std::size_t p, std::string_view s) const {
    return src_.compare(p, s.size(), s) == 0;
  }

  bool is_word_at(std::size_t p, std::string_view word) const {
    return starts_with(p, word) &&
           (p + word.size() >= src_.size() || !is_name_char(src_[p + word.size()]));
  }

  // `{% raw %}` (the opener and sign already consumed up to `after`). The raw opener's end
  // has no trim_blocks newline rule in Jinja2, only `-%}` stripping.
  bool match_raw_begin(std::size_t after, std::size_t* body) const {
    std::size_t p = skip_ws(after);
    if (!is_word_at(p, "raw")) return false;
    p = skip_ws(p + 3);
    if (starts_with(p, "-%}")) {
      *body = skip_ws(p + 3);
      return true;
    }
    if (starts_with(p, "%}")) {
      *body = p + 2;
      return true;
    }
    return false;
  }

  bool lex_raw(std::size_t body) {
    std::size_t search = body;
    while (true) {
      std::size_t p = src_.find("{%", search);
      if (p == std::string::npos) fail("Missing end of raw directive");
      std::size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_ws(q);
      if (!is_word_at(q, "endraw")) {
        search = p + 2;
        continue;
      }
      q = skip_ws(q + 6);
      std::size_t end;
      if (starts_with(q, "+%}")) {
        end = q + 3;
      } else if (starts_with(q, "-%}")) {
        end = skip_ws(q + 3);
      } else if (starts_with(q, "%}")) {
        end = q + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        search = p + 2;
        continue;
      }
      std::string_view text = std::string_view(src_).substr(body, p - body);
      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+') {
        std::size_t nl = text.rfind('\n');
        std::size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if (l_pos > 0) {
          bool only_blank = true;
          for (std::size_t i = l_pos; i < text.size(); ++i) {
            if (text[i] != ' ' && text[i] != '\t') only_blank = false;
          }
          if (only_blank) text = text.substr(0, l_pos);
        }
      }
      count_lines(pos_, body);
      emit_data(text);
      count_lines(body, end);
      pos_ = end;
      return src_[end - 1] == '\n';
    }
  }

  bool lex_comment() {
    std::size_t p = src_.find("#}", pos_);
    if (p == std::string::npos) fail("Missing end of comment tag");
    std::size_t end;
    if (p > pos_ && src_[p - 1] == '-') {
      end = skip_ws(p + 2);
    } else if (p > pos_ && src_[p - 1] == '+') {
      end = p + 2;
    } else {
      end = p + 2;
      if (end < src_.size() && src_[end] == '\n') ++end;
    }
    count_lines(pos_, end);
    pos_ = end;
    return src_[end - 1] == '\n';
  }

  // Lexes the inside of {% ... %} or {{ ... }}; returns whether the tag end consumed a newline.
  bool lex_tag(bool block) {
    emit(block ? TokenType::kBlockBegin : TokenType::kVariableBegin);
    int balance = 0;
    while (true) {
      if (pos_ >= src_.size())
        fail(block ? "unexpected end of template, expected '%}'"
                   : "unexpected end of template, expected '}}'");
      if (balance == 0) {
        if (block) {
          if (starts_with(pos_, "-%}")) {
            std::size_t end = skip_ws(pos_ + 3);
            return close_tag(TokenType::kBlockEnd, end);
          }
          if (starts_with(pos_, "+%}")) return close_tag(TokenType::kBlockEnd, pos_ + 3);
          if (starts_with(pos_, "%}")) {
            std::size_t end = pos_ + 2;
            if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
            return close_tag(TokenType::kBlockEnd, end);
          }
        } else {
          if (starts_with(pos_, "-}}"))
            return close_tag(TokenType::kVariableEnd, skip_ws(pos_ + 3));
          if (starts_with(pos_, "}}")) return close_tag(TokenType::kVariableEnd, pos_ + 2);
        }
      }
      char c = src_[pos_];
      if (is_ws(c)) {
        line_ += c == '\n';
        ++pos_;
        continue;
      }
      bool after_dot = !tokens_.empty() && tokens_.back().type == TokenType::kOperator &&
                       tokens_.back().value == ".";
      if (is_digit(c)) {
        lex_number(after_dot);
        continue;
      }
      if (is_name_start(c)) {
        std::size_t e = pos_;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        emit(TokenType::kName, src_.substr(pos_, e - pos_));
        pos_ = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        lex_string(c);
        continue;
      }
      static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
      bool matched = false;
      for (auto op : kTwo) {
        if (starts_with(pos_, op)) {
          emit(TokenType::kOperator, std::string(op));
          pos_ += 2;
          matched = true;
          break;
        }
      }
      if (matched) continue;
      static constexpr std::string_view kOne = "+-/*%~[](){}><=.:|,;";
      if (kOne.find(c) == std::string_view::npos) {
        fail(std::string("unexpected char '") + c + "'");
      }
      if (c == '(' || c == '[' || c == '{') {
        ++balance;
      } else if (c == ')' || c == ']' || c == '}') {
        if (balance == 0) fail(std::string("unexpected '") + c + "'");
        --balance;
      }
      emit(TokenType::kOperator, std::string(1, c));
      ++pos_;
    }
  }

  bool close_tag(TokenType type, std::size_t end) {
    emit(type);
    count_lines(pos_, end);
    pos_ = end;
    return src_[end - 1] == '\n';
  }

  void lex_number(bool after_dot) {
    std::size_t p = pos_;
    auto digits = [&](std::size_t q) {
      // (\d+_)*\d+
      std::size_t s = q;
      while (q < src_.size() && (is_digit(src_[q]) || (src_[q] == '_' && q + 1 < src_.size() &&
                                                       is_digit(src_[q + 1]) && q > s))) {
        ++q;
      }
      return q;
    };
    std::string text;
    auto clean = [](std::string_view s) {
      std::string out;
      for (char ch : s) {
        if (ch != '_') out.push_back(ch);
      }
      return out;
    };
    // Prefixed integers.
    if (src_[p] == '0' && p + 1 < src_.size() &&
        (src_[p + 1] == 'x' || src_[p + 1] == 'X' || src_[p + 1] == 'o' || src_[p + 1] == 'O' ||
         src_[p + 1] == 'b' || src_[p + 1] == 'B')) {
      int base = (src_[p + 1] == 'x' || src_[p + 1] == 'X')   ? 16
                 : (src_[p + 1] == 'o' || src_[p + 1] == 'O') ? 8
                                                              : 2;
      std::size_t q = p + 2;
      while (q < src_.size() &&
             (std::isxdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_'))
        ++q;
      std::string body = clean(std::string_view(src_).substr(p + 2, q - p - 2));
      errno = 0;
      char* endp = nullptr;
      long long v = std::strtoll(body.c_str(), &endp, base);
      if (body.empty() || *endp != '\0' || errno == ERANGE) fail("invalid integer literal");
      Token t;
      t.type = TokenType::kInteger;
      t.int_value = v;
      t.value = src_.substr(p, q - p);
      t.line = line_;
      tokens_.push_back(std::move(t));
      pos_ = q;
      return;
    }
    std::size_t q = digits(p);
    bool is_float = false;
    if (!after_dot) {
      std::size_t r = q;
      if (r + 1 < src_.size() && src_[r] == '.' && is_digit(src_[r + 1])) {
        r = digits(r + 1);
        is_float = true;
      }
      if (r < src_.size() && (src_[r] == 'e' || src_[r] == 'E')) {
        std::size_t s = r + 1;
        if (s < src_.size() && (src_[s] == '+' || src_[s] == '-')) ++s;
        if (s < src_.size() && is_digit(src_[s])) {
          r = digits(s);
          is_float = true;
        }
      }
      if (is_float) q = r;
    }
    std::string body = clean(std::string_view(src_).substr(p, q - p));
    Token t;
    t.line = line_;
    t.value = src_.substr(p, q - p);
    if (is_float) {
      t.type = TokenType::kFloat;
      t.float_value = std::strtod(body.c_str(), nullptr);
    } else {
      errno = 0;
      long long v = std::strtoll(body.c_str(), nullptr, 10);
      if (errno == ERANGE) fail("integer literal too large");
      t.type = TokenType::kInteger;
      t.int_value = v;
    }
    tokens_.push_back(std::move(t));
    pos_ = q;
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Python string literal escapes (Jinja2 decodes with "unicode-escape").
  void lex_string(char quote) {
    int start_line = line_;
    std::size_t p = pos_ + 1;
    std::string out;
    while (true) {
      if (p >= src_.size()) {
        line_ = start_line;
        fail("unexpected end of string");
      }
      char c = src_[p];
      if (c == quote) {
        ++p;
        break;
      }
      if (c == '\n') ++line_;
      if (c != '\\') {
        out.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) fail("unexpected end of string");
      char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          ++line_;
          break;  // line continuation
        case '\\':
          out.push_back('\\');
          break;
        case '\'':
          out.push_back('\'');
          break;
        case '"':
          out.push_back('"');
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          int n = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          char32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            int h = p < src_.size() ? hex_value(src_[p]) : -1;
            if (h < 0) fail("truncated \\" + std::string(1, e) + " escape in string literal");
            cp = cp * 16 + static_cast<char32_t>(h);
            ++p;
          }
          if (cp > 0x10FFFF) fail("illegal Unicode character in string literal");
          pystr::append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k) {
              cp = cp * 8 + static_cast<char32_t>(src_[p++] - '0');
            }
            pystr::append_utf8(out, cp);
          } else {
            out.push_back('\\');
            out.push_back(e);
            if (e == '\n') ++line_;
          }
      }
    }
    Token t;
    t.type = TokenType::kString;
    t.value = std::move(out);
    t.line = start_line;
    tokens_.push_back(std::move(t));
    pos_ = p;
  }

  std::string src_;
  std::size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace lmserve::chat::jinja
