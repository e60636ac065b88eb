#include "grammar/regex.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "util/utf8.h"

namespace lmserve::grammar {
namespace {

constexpr std::uint32_t kMaxCodePoint = 0x10FFFF;
constexpr int kMaxRepeat = 1000;          // as GBNF's own bound
constexpr double kMaxExpandedSize = 1e5;  // bounded repetition copies its item

using Range = std::pair<std::uint32_t, std::uint32_t>;  // inclusive

// A set of code points as sorted, disjoint ranges.
struct CharSet {
  std::vector<Range> ranges;

  void add(std::uint32_t lo, std::uint32_t hi) { ranges.emplace_back(lo, hi); }
  void add(const CharSet& other) {
    ranges.insert(ranges.end(), other.ranges.begin(), other.ranges.end());
  }
  void normalise() {
    std::sort(ranges.begin(), ranges.end());
    std::vector<Range> out;
    for (const Range& r : ranges) {
      if (!out.empty() && r.first <= out.back().second + 1) {
        out.back().second = std::max(out.back().second, r.second);
      } else {
        out.push_back(r);
      }
    }
    ranges = std::move(out);
  }
  CharSet complement() const {
    CharSet sorted = *this;
    sorted.normalise();
    CharSet out;
    std::uint32_t next = 0;
    for (const auto& [lo, hi] : sorted.ranges) {
      if (lo > next) out.add(next, lo - 1);
      next = hi + 1;
    }
    if (next <= kMaxCodePoint) out.add(next, kMaxCodePoint);
    return out;
  }
  // Surrogates are not characters (and have no UTF-8).
  void drop_surrogates() {
    normalise();
    std::vector<Range> out;
    for (const auto& [lo, hi] : ranges) {
      if (lo < 0xD800) out.emplace_back(lo, std::min<std::uint32_t>(hi, 0xD7FF));
      if (hi > 0xDFFF) out.emplace_back(std::max<std::uint32_t>(lo, 0xE000), hi);
    }
    ranges = std::move(out);
  }
  bool contains(std::uint32_t c) const {
    return std::any_of(ranges.begin(), ranges.end(),
                       [c](const Range& r) { return r.first <= c && c <= r.second; });
  }
};

CharSet digits() { return {{{'0', '9'}}}; }
CharSet word() { return {{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}}; }
// ECMAScript's WhiteSpace and LineTerminator: exactly, since \S must exclude all of them.
CharSet space() {
  return {{{0x09, 0x0D},
           {0x20, 0x20},
           {0xA0, 0xA0},
           {0x1680, 0x1680},
           {0x2000, 0x200A},
           {0x2028, 0x2029},
           {0x202F, 0x202F},
           {0x205F, 0x205F},
           {0x3000, 0x3000},
           {0xFEFF, 0xFEFF}}};
}
// `.`: anything but a line terminator.
CharSet dot() { return CharSet{{{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}}.complement(); }

std::string hex(std::uint32_t v, int digits) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (int i = digits - 1; i >= 0; --i) out += kHex[(v >> (4 * i)) & 15];
  return out;
}

// One code point inside a GBNF class.
std::string class_char(std::uint32_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
    return std::string(1, static_cast<char>(c));
  if (c <= 0xFF) return "\\x" + hex(c, 2);
  if (c <= 0xFFFF) return "\\u" + hex(c, 4);
  return "\\U" + hex(c, 8);
}

std::string gbnf_class(const std::vector<Range>& ranges) {
  std::string out = "[";
  for (const auto& [lo, hi] : ranges) {
    out += class_char(lo);
    if (hi != lo) out.append("-").append(class_char(hi));
  }
  return out + "]";
}

struct Node {
  std::string gbnf;  // an expression usable as one item
  bool nullable = false;
  double size = 1;  // elements once repetitions are expanded
};

class Parser {
 public:
  explicit Parser(std::string_view pattern) : text_(pattern) {}

  std::string parse() {
    if (!text_.empty() && text_[0] == '^') text_.remove_prefix(1);
    // A trailing $ (not an escaped one) ends the pattern.
    if (!text_.empty() && text_.back() == '$') {
      std::size_t backslashes = 0;
      while (backslashes + 1 < text_.size() && text_[text_.size() - 2 - backslashes] == '\\')
        ++backslashes;
      if (backslashes % 2 == 0) text_.remove_suffix(1);
    }
    Node n = alternation();
    if (pos_ < text_.size()) error("unbalanced ')'");
    return n.gbnf;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    throw RegexError("pattern: " + what + " at offset " + std::to_string(pos_));
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  Node alternation() {
    std::vector<Node> alternatives{sequence()};
    while (peek() == '|') {
      ++pos_;
      alternatives.push_back(sequence());
    }
    if (alternatives.size() == 1) return alternatives[0];
    Node out{"(", false, 0};
    for (std::size_t i = 0; i < alternatives.size(); ++i) {
      out.gbnf += (i ? " | " : "") + alternatives[i].gbnf;
      out.nullable = out.nullable || alternatives[i].nullable;
      out.size += alternatives[i].size;
    }
    out.gbnf += ")";
    return out;
  }

  Node sequence() {
    Node out{"", true, 0};
    while (!at_end() && peek() != '|' && peek() != ')') {
      Node item = quantified(atom());
      out.gbnf += (out.gbnf.empty() ? "" : " ") + item.gbnf;
      out.nullable = out.nullable && item.nullable;
      out.size += item.size;
    }
    if (out.gbnf.empty()) out.gbnf = "\"\"";
    out.gbnf = "(" + out.gbnf + ")";
    if (out.size > kMaxExpandedSize) error("the pattern expands too far");
    return out;
  }

  int count() {
    const std::size_t start = pos_;
    long v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > kMaxRepeat) error("a repetition count above " + std::to_string(kMaxRepeat));
      ++pos_;
    }
    if (pos_ == start) error("expected a number");
    return static_cast<int>(v);
  }

  // {m}, {m,}, {m,n} at pos_ (just after '{'), or nullopt when it is not a quantifier.
  bool braces(int& min, int& max) {
    const std::size_t save = pos_;
    if (!(peek() >= '0' && peek() <= '9')) return false;
    min = max = count();
    if (peek() == ',') {
      ++pos_;
      max = peek() == '}' ? -1 : (peek() >= '0' && peek() <= '9' ? count() : -2);
    }
    if (max == -2 || peek() != '}') {
      pos_ = save;
      return false;
    }
    ++pos_;
    return true;
  }

  Node quantified(Node item) {
    int min = 1, max = 1;
    const char c = peek();
    if (c == '*' || c == '+' || c == '?') {
      ++pos_;
      min = c == '+' ? 1 : 0;
      max = c == '?' ? 1 : -1;
    } else if (c == '{') {
      ++pos_;
      if (!braces(min, max)) {
        --pos_;
        return item;  // a literal '{' (taken by the next atom)
      }
      if (max >= 0 && max < min) error("repetition maximum below minimum");
    } else {
      return item;
    }
    if (peek() == '?') ++pos_;  // lazy: the same strings
    if (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')
      if (peek() != '{' ||
          (pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' && text_[pos_ + 1] <= '9'))
        error("nothing to repeat");
    if (max < 0 && item.nullable) error("an unbounded repetition of something that can be empty");
    Node out;
    out.nullable = item.nullable || min == 0;
    out.size = item.size * std::max(1, max < 0 ? min + 1 : max);
    std::string suffix;
    if (min == 0 && max == -1) {
      suffix = "*";
    } else if (min == 1 && max == -1) {
      suffix = "+";
    } else if (min == 0 && max == 1) {
      suffix = "?";
    } else {
      suffix.append("{").append(std::to_string(min));
      if (max != min) suffix.append(",").append(max < 0 ? "" : std::to_string(max));
      suffix.append("}");
    }
    out.gbnf.append("(").append(item.gbnf).append(suffix).append(")");
    return out;
  }

  Node atom() {
    const char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      if (peek() == '?') {
        ++pos_;
        if (peek() == ':') {
          ++pos_;
        } else if (peek() == '<' && pos_ + 1 < text_.size() && text_[pos_ + 1] != '=' &&
                   text_[pos_ + 1] != '!') {
          const std::size_t close = text_.find('>', pos_);
          if (close == std::string_view::npos) error("unterminated group name");
          pos_ = close + 1;
        } else {
          error("lookaround assertions are not supported");
        }
      }
      Node inner = alternation();
      if (peek() != ')') error("missing ')'");
      ++pos_;
      return inner;
    }
    if (c == '*' || c == '+' || c == '?') error("nothing to repeat");
    if (c == '^' || c == '$') error("'^' and '$' are supported only at the ends of the pattern");
    if (c == '[') {
      ++pos_;
      return chars(char_class());
    }
    if (c == '.') {
      ++pos_;
      return chars(dot());
    }
    if (c == '\\') {
      ++pos_;
      CharSet set;
      escape(set, false);
      return chars(set);
    }
    CharSet set;
    const std::uint32_t cp = code_point();
    set.add(cp, cp);
    return chars(set);
  }

  // One UTF-8 code point of the pattern itself.
  std::uint32_t code_point() {
    char32_t decoded = 0;
    const int n = util::decode_utf8(text_, pos_, decoded);
    if (n == 0) error("invalid UTF-8");
    const std::uint32_t cp = decoded;
    pos_ += static_cast<std::size_t>(n);
    return cp;
  }

  std::uint32_t hex_digits(int n) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      const char h = peek();
      const int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
      if (d < 0) error("bad hex escape");
      v = v * 16 + static_cast<std::uint32_t>(d);
      ++pos_;
    }
    return v;
  }

  // After a backslash: adds what the escape stands for to `set`.
  void escape(CharSet& set, bool in_class) {
    if (at_end()) error("a trailing backslash");
    const char e = text_[pos_++];
    auto one = [&](std::uint32_t c) { set.add(c, c); };
    switch (e) {
      case 'd':
        return set.add(digits());
      case 'D':
        return set.add(digits().complement());
      case 'w':
        return set.add(word());
      case 'W':
        return set.add(word().complement());
      case 's':
        return set.add(space());
      case 'S':
        return set.add(space().complement());
      case 'n':
        return one('\n');
      case 'r':
        return one('\r');
      case 't':
        return one('\t');
      case 'f':
        return one('\f');
      case 'v':
        return one('\v');
      case '0':
        if (peek() >= '0' && peek() <= '9') error("octal escapes are not supported");
        return one(0);
      case 'x':
        return one(hex_digits(2));
      case 'u':
        if (peek() == '{') {
          ++pos_;
          std::uint32_t v = 0;
          int n = 0;
          while (peek() != '}') {
            v = v * 16 + hex_digits(1);
            if (++n > 6 || v > kMaxCodePoint) error("bad \\u{...} escape");
          }
          ++pos_;
          return one(v);
        }
        return one(hex_digits(4));
      case 'b':
        if (in_class) return one('\b');
        error("word boundaries (\\b) are not supported");
      default:
        break;
    }
    if ((e >= '1' && e <= '9') || e == 'k') error("backreferences are not supported");
    if (e == 'p' || e == 'P') error("Unicode property escapes are not supported");
    if (e == 'B' || e == 'c') error(std::string("'\\") + e + "' is not supported");
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))
      error(std::string("unknown escape '\\") + e + "'");
    --pos_;
    const std::uint32_t cp = code_point();  // an escaped punctuation character is itself
    one(cp);
  }

  // After '[': the class up to its ']'.
  CharSet char_class() {
    bool negated = false;
    if (peek() == '^') {
      negated = true;
      ++pos_;
    }
    CharSet set;
    while (peek() != ']') {
      if (at_end()) error("unterminated character class");
      CharSet item;
      if (peek() == '\\') {
        ++pos_;
        escape(item, true);
      } else {
        const std::uint32_t cp = code_point();
        item.add(cp, cp);
      }
      // A range needs single characters at both ends.
      if (peek() == '-' && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']') {
        ++pos_;
        CharSet end;
        if (peek() == '\\') {
          ++pos_;
          escape(end, true);
        } else {
          const std::uint32_t cp = code_point();
          end.add(cp, cp);
        }
        if (item.ranges.size() != 1 || end.ranges.size() != 1 ||
            item.ranges[0].first != item.ranges[0].second ||
            end.ranges[0].first != end.ranges[0].second)
          error("a class range needs single characters at both ends");
        if (end.ranges[0].first < item.ranges[0].first) error("class range out of order");
        set.add(item.ranges[0].first, end.ranges[0].first);
        continue;
      }
      set.add(item);
    }
    ++pos_;
    return negated ? set.complement() : set;
  }

  // The text of one character of `set` inside a JSON string.
  Node chars(CharSet set) {
    set.drop_surrogates();
    if (set.ranges.empty()) error("a character class that matches nothing");
    // In a JSON string: '"', '\' and control characters are escaped, the rest is literal.
    std::vector<std::string> alternatives;
    CharSet literal;
    for (const auto& [lo, hi] : set.ranges) {
      for (const Range& part : {Range{lo, std::min(hi, 0x1Fu)}, Range{std::max(lo, 0x20u), hi}}) {
        if (part.first > part.second) continue;
        if (part.first >= 0x20) {
          literal.add(part.first, part.second);
          continue;
        }
        for (std::uint32_t c = part.first; c <= part.second; ++c) {
          static const std::pair<std::uint32_t, const char*> kShort[] = {
              {'\b', "b"}, {'\f', "f"}, {'\n', "n"}, {'\r', "r"}, {'\t', "t"}};
          std::string escaped = "u00" + hex(c, 2);
          for (const auto& [code, name] : kShort)
            if (code == c) escaped = name;
          alternatives.push_back("\"\\\\" + escaped + "\"");
        }
      }
    }
    CharSet plain;
    for (const auto& [lo, hi] : literal.ranges) {
      // '"' (0x22) and '\' (0x5C) are written escaped.
      std::uint32_t from = lo;
      for (std::uint32_t special : {0x22u, 0x5Cu}) {
        if (special < from || special > hi) continue;
        if (special > from) plain.add(from, special - 1);
        alternatives.push_back(special == 0x22 ? "\"\\\\\\\"\"" : "\"\\\\\\\\\"");
        from = special + 1;
      }
      if (from <= hi) plain.add(from, hi);
    }
    if (!plain.ranges.empty()) alternatives.insert(alternatives.begin(), gbnf_class(plain.ranges));
    if (alternatives.size() == 1) return {alternatives[0], false, 1};
    std::string out = "(";
    for (std::size_t i = 0; i < alternatives.size(); ++i) out += (i ? " | " : "") + alternatives[i];
    return {out + ")", false, static_cast<double>(alternatives.size())};
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string regex_to_gbnf(std::string_view pattern) { return Parser(pattern).parse(); }

}  // namespace lmserve::grammar
