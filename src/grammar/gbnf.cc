// GBNF text -> byte-level Grammar. Repetitions become helper rules (right-recursive, so the
// stack-based matcher never loops), code-point classes become UTF-8 byte sequences.
#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <unordered_map>

#include "grammar/grammar.h"
#include "util/utf8.h"

namespace lmserve::grammar {
namespace {

constexpr std::uint32_t kMaxCodePoint = 0x10FFFF;
constexpr int kMaxRepetition = 1000;  // bounds the grammar a request can make us build
constexpr std::size_t kMaxRules = 100000;

using Range = std::pair<std::uint32_t, std::uint32_t>;  // inclusive code-point range
using ByteRanges = std::vector<std::pair<std::uint8_t, std::uint8_t>>;  // one per byte

int utf8_length(std::uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

std::array<std::uint8_t, 4> utf8_encode(std::uint32_t cp) {
  switch (utf8_length(cp)) {
    case 1:
      return {static_cast<std::uint8_t>(cp)};
    case 2:
      return {static_cast<std::uint8_t>(0xC0 | (cp >> 6)),
              static_cast<std::uint8_t>(0x80 | (cp & 0x3F))};
    case 3:
      return {static_cast<std::uint8_t>(0xE0 | (cp >> 12)),
              static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)),
              static_cast<std::uint8_t>(0x80 | (cp & 0x3F))};
    default:
      return {static_cast<std::uint8_t>(0xF0 | (cp >> 18)),
              static_cast<std::uint8_t>(0x80 | ((cp >> 12) & 0x3F)),
              static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)),
              static_cast<std::uint8_t>(0x80 | (cp & 0x3F))};
  }
}

// Splits [lo, hi] (one encoded length) until each piece is a product of byte ranges (the
// algorithm of Rust's utf8-ranges).
void utf8_sequences(std::uint32_t lo, std::uint32_t hi, std::vector<ByteRanges>& out) {
  const int n = utf8_length(lo);
  for (std::uint32_t boundary : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= boundary && hi > boundary) {
      utf8_sequences(lo, boundary, out);
      utf8_sequences(boundary + 1, hi, out);
      return;
    }
  }
  for (int i = 1; i < n; ++i) {
    const std::uint32_t mask = (1u << (6 * i)) - 1;
    if ((lo & ~mask) != (hi & ~mask)) {
      if ((lo & mask) != 0) {
        utf8_sequences(lo, lo | mask, out);
        utf8_sequences((lo | mask) + 1, hi, out);
        return;
      }
      if ((hi & mask) != mask) {
        utf8_sequences(lo, (hi & ~mask) - 1, out);
        utf8_sequences(hi & ~mask, hi, out);
        return;
      }
    }
  }
  const auto a = utf8_encode(lo);
  const auto b = utf8_encode(hi);
  ByteRanges seq;
  for (int i = 0; i < n; ++i) seq.emplace_back(a[i], b[i]);
  out.push_back(std::move(seq));
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Grammar parse() {
    skip_space(true);
    while (pos_ < text_.size()) {
      const std::string name = parse_name();
      skip_space(false);
      if (text_.substr(pos_, 3) != "::=") error("expected '::=' after '" + name + "'");
      pos_ += 3;
      const std::uint32_t id = rule_id(name);
      if (defined_[id]) error("rule '" + name + "' is defined twice");
      defined_[id] = true;
      g_.rules[id] = parse_alternatives(false);
      skip_space(true);
    }
    auto root = ids_.find("root");
    if (root == ids_.end()) throw GrammarError("grammar has no 'root' rule");
    for (const auto& [name, id] : ids_) {
      if (!defined_[id]) throw GrammarError("rule '" + name + "' is used but not defined");
    }
    g_.root = root->second;
    check_left_recursion();
    return std::move(g_);
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    throw GrammarError("grammar: " + what + " at offset " + std::to_string(pos_));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  // Newlines end a rule except inside parentheses.
  void skip_space(bool newlines) {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c == '#') {
        while (!at_end() && text_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++pos_;
      } else {
        break;
      }
    }
  }

  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  }

  std::string parse_name() {
    const std::size_t start = pos_;
    while (!at_end() && is_name_char(text_[pos_])) ++pos_;
    if (pos_ == start) error("expected a rule name");
    return std::string(text_.substr(start, pos_ - start));
  }

  std::uint32_t rule_id(const std::string& name) {
    auto [it, inserted] = ids_.try_emplace(name, static_cast<std::uint32_t>(g_.rules.size()));
    if (inserted) new_rule(false);
    return it->second;
  }

  // A named rule is defined when its `::=` is seen; helper rules are defined at birth.
  std::uint32_t new_rule(bool defined) {
    if (g_.rules.size() >= kMaxRules) error("grammar too large");
    g_.rules.emplace_back();
    defined_.push_back(defined);
    return static_cast<std::uint32_t>(g_.rules.size() - 1);
  }

  std::uint32_t helper_rule(std::vector<Element> elements) {
    const std::uint32_t id = new_rule(true);
    g_.rules[id] = std::move(elements);
    return id;
  }

  std::uint32_t byte_set(const std::bitset<256>& set) {
    auto [it, inserted] = byte_set_ids_.try_emplace(set, g_.byte_sets.size());
    if (inserted) g_.byte_sets.push_back(set);
    return static_cast<std::uint32_t>(it->second);
  }

  Element byte_element(std::uint8_t lo, std::uint8_t hi) {
    std::bitset<256> set;
    for (int b = lo; b <= hi; ++b) set.set(static_cast<std::size_t>(b));
    return {Element::Kind::kByteSet, byte_set(set)};
  }

  // Alternatives up to the end of the rule (or the closing parenthesis when nested).
  std::vector<Element> parse_alternatives(bool nested) {
    std::vector<Element> out;
    while (true) {
      parse_sequence(out, nested);
      if (peek() != '|') break;
      ++pos_;
      out.push_back({Element::Kind::kAlt});
    }
    out.push_back({Element::Kind::kEnd});
    return out;
  }

  // True when the next thing is `name ::=`: the next rule begins.
  bool at_rule_start() {
    std::size_t p = pos_;
    while (p < text_.size() && is_name_char(text_[p])) ++p;
    if (p == pos_) return false;
    while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t')) ++p;
    return text_.substr(p, 3) == "::=";
  }

  void parse_sequence(std::vector<Element>& out, bool nested) {
    std::size_t item_start = out.size();
    bool has_item = false;
    while (true) {
      skip_space(nested);
      if (!nested && !at_end() && text_[pos_] == '\n') {
        // A newline ends the rule unless the next line continues it.
        skip_space(true);
        if (at_end() || at_rule_start()) return;
      }
      if (at_end()) {
        if (nested) error("missing ')'");
        return;
      }
      const char c = text_[pos_];
      if (c == '|' || c == ')') {
        if (c == ')' && !nested) error("unexpected ')'");
        return;
      }
      if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (!has_item) error("repetition without an item");
        apply_repetition(out, item_start);
        has_item = false;
        continue;
      }
      item_start = out.size();
      has_item = true;
      if (c == '"') {
        ++pos_;
        while (peek() != '"') {
          if (at_end()) error("unterminated literal");
          for (std::uint8_t b : encoded(parse_char())) out.push_back(byte_element(b, b));
        }
        ++pos_;
      } else if (c == '[') {
        ++pos_;
        out.push_back(class_element(parse_class()));
      } else if (c == '.') {
        ++pos_;
        out.push_back(class_element({{0, kMaxCodePoint}}));
      } else if (c == '(') {
        ++pos_;
        std::vector<Element> group = parse_alternatives(true);
        if (peek() != ')') error("missing ')'");
        ++pos_;
        out.push_back({Element::Kind::kRuleRef, helper_rule(std::move(group))});
      } else if (is_name_char(c)) {
        out.push_back({Element::Kind::kRuleRef, rule_id(parse_name())});
      } else {
        error(std::string("unexpected character '") + c + "'");
      }
    }
  }

  static std::vector<std::uint8_t> encoded(std::uint32_t cp) {
    const auto bytes = utf8_encode(cp);
    return {bytes.begin(), bytes.begin() + utf8_length(cp)};
  }

  std::uint32_t parse_hex(int digits) {
    std::uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = peek();
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) error("bad hex escape");
      v = v * 16 + static_cast<std::uint32_t>(d);
      ++pos_;
    }
    if (v > kMaxCodePoint || (v >= 0xD800 && v <= 0xDFFF)) error("escape is not a code point");
    return v;
  }

  // One code point of a literal or class, escapes decoded.
  std::uint32_t parse_char() {
    if (at_end()) error("unexpected end");
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '\\') {
      ++pos_;
      const char e = peek();
      ++pos_;
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
          return static_cast<unsigned char>(e);
        case 'x':
          return parse_hex(2);
        case 'u':
          return parse_hex(4);
        case 'U':
          return parse_hex(8);
        default:
          error(std::string("unknown escape '\\") + e + "'");
      }
    }
    // Decode UTF-8 written literally in the grammar.
    char32_t decoded = 0;
    const int n = util::decode_utf8(text_, pos_, decoded);
    if (n == 0) error("invalid UTF-8");
    const std::uint32_t cp = decoded;
    if (utf8_length(cp) != n || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF))
      error("invalid UTF-8");
    pos_ += static_cast<std::size_t>(n);
    return cp;
  }

  std::vector<Range> parse_class() {
    bool negated = false;
    if (peek() == '^') {
      negated = true;
      ++pos_;
    }
    std::vector<Range> ranges;
    while (peek() != ']') {
      if (at_end()) error("unterminated character class");
      const std::uint32_t lo = parse_char();
      std::uint32_t hi = lo;
      if (peek() == '-' && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']') {
        ++pos_;
        hi = parse_char();
        if (hi < lo) error("character range out of order");
      }
      ranges.emplace_back(lo, hi);
    }
    ++pos_;
    std::sort(ranges.begin(), ranges.end());
    if (!negated) return ranges;
    std::vector<Range> complement;
    std::uint32_t next = 0;
    for (const auto& [lo, hi] : ranges) {
      if (lo > next) complement.emplace_back(next, lo - 1);
      next = std::max(next, hi + 1);
    }
    if (next <= kMaxCodePoint) complement.emplace_back(next, kMaxCodePoint);
    if (complement.empty()) error("character class matches nothing");
    return complement;
  }

  // A class as one byte set when it is ASCII, else a helper rule of UTF-8 sequences.
  Element class_element(const std::vector<Range>& ranges) {
    std::vector<ByteRanges> sequences;
    for (auto [lo, hi] : ranges) {
      // Surrogates are not characters: leave them out of every range.
      if (lo <= 0xDFFF && hi >= 0xD800) {
        if (lo < 0xD800) utf8_sequences(lo, 0xD7FF, sequences);
        if (hi > 0xDFFF) utf8_sequences(0xE000, hi, sequences);
      } else {
        utf8_sequences(lo, hi, sequences);
      }
    }
    std::bitset<256> single;
    std::vector<Element> alternatives;
    for (const ByteRanges& seq : sequences) {
      if (seq.size() == 1) {
        for (int b = seq[0].first; b <= seq[0].second; ++b) single.set(static_cast<std::size_t>(b));
        continue;
      }
      if (!alternatives.empty()) alternatives.push_back({Element::Kind::kAlt});
      for (auto [lo, hi] : seq) alternatives.push_back(byte_element(lo, hi));
    }
    if (alternatives.empty()) return {Element::Kind::kByteSet, byte_set(single)};
    if (single.any()) {
      alternatives.push_back({Element::Kind::kAlt});
      alternatives.push_back({Element::Kind::kByteSet, byte_set(single)});
    }
    alternatives.push_back({Element::Kind::kEnd});
    return {Element::Kind::kRuleRef, helper_rule(std::move(alternatives))};
  }

  int parse_count() {
    const std::size_t start = pos_;
    long v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > kMaxRepetition) error("repetition count above " + std::to_string(kMaxRepetition));
      ++pos_;
    }
    if (pos_ == start) error("expected a number");
    return static_cast<int>(v);
  }

  // Replaces the item at out[item_start..] by its repetition.
  void apply_repetition(std::vector<Element>& out, std::size_t item_start) {
    const char c = text_[pos_++];
    int min = 0;
    int max = -1;  // unbounded
    if (c == '+') min = 1;
    if (c == '?') max = 1;
    if (c == '{') {
      skip_space(true);
      min = max = parse_count();
      skip_space(true);
      if (peek() == ',') {
        ++pos_;
        skip_space(true);
        max = peek() == '}' ? -1 : parse_count();
        skip_space(true);
      }
      if (peek() != '}') error("expected '}'");
      ++pos_;
      if (max >= 0 && max < min) error("repetition maximum below minimum");
    }
    std::vector<Element> item(out.begin() + static_cast<std::ptrdiff_t>(item_start), out.end());
    out.resize(item_start);
    for (int i = 0; i < min; ++i) out.insert(out.end(), item.begin(), item.end());
    if (max == min) return;
    // Optional tail: rest ::= item rest | ε (unbounded) or a chain of nested optionals.
    if (max < 0) {
      const std::uint32_t rest = helper_rule({});
      std::vector<Element> body = item;
      body.push_back({Element::Kind::kRuleRef, rest});
      body.push_back({Element::Kind::kAlt});
      body.push_back({Element::Kind::kEnd});
      g_.rules[rest] = std::move(body);
      out.push_back({Element::Kind::kRuleRef, rest});
      return;
    }
    std::uint32_t tail = 0;
    for (int i = 0; i < max - min; ++i) {
      std::vector<Element> body = item;
      if (i > 0) body.push_back({Element::Kind::kRuleRef, tail});
      body.push_back({Element::Kind::kAlt});
      body.push_back({Element::Kind::kEnd});
      tail = helper_rule(std::move(body));
    }
    out.push_back({Element::Kind::kRuleRef, tail});
  }

  // The stack matcher expands rules depth-first: a rule that reaches itself without
  // consuming a byte would expand forever.
  void check_left_recursion() const {
    const std::size_t n = g_.rules.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        bool alt_nullable = true, rule_nullable = false;
        for (const Element& e : g_.rules[r]) {
          if (e.ends_alternative()) {
            rule_nullable = rule_nullable || alt_nullable;
            alt_nullable = true;
          } else if (e.kind == Element::Kind::kByteSet ||
                     (e.kind == Element::Kind::kRuleRef && !nullable[e.value])) {
            alt_nullable = false;
          }
        }
        if (rule_nullable) nullable[r] = changed = true;
      }
    }
    std::vector<std::vector<std::uint32_t>> left(n);
    for (std::size_t r = 0; r < n; ++r) {
      bool open = true;  // still at the left edge of the alternative
      for (const Element& e : g_.rules[r]) {
        if (e.ends_alternative()) {
          open = true;
        } else if (open && e.kind == Element::Kind::kRuleRef) {
          left[r].push_back(e.value);
          open = nullable[e.value];
        } else {
          open = false;
        }
      }
    }
    // Iterative DFS colouring (helper chains can be deep).
    std::vector<std::uint8_t> colour(n, 0);  // 0 new, 1 on the path, 2 done
    for (std::size_t start = 0; start < n; ++start) {
      if (colour[start]) continue;
      std::vector<std::pair<std::uint32_t, std::size_t>> path{
          {static_cast<std::uint32_t>(start), 0}};
      colour[start] = 1;
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next == left[r].size()) {
          colour[r] = 2;
          path.pop_back();
          continue;
        }
        const std::uint32_t s = left[r][next++];
        if (colour[s] == 1)
          throw GrammarError("grammar is left-recursive (or repeats an item that can be empty)");
        if (colour[s] == 0) {
          colour[s] = 1;
          path.emplace_back(s, 0);
        }
      }
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  Grammar g_;
  std::map<std::string, std::uint32_t> ids_;
  std::vector<bool> defined_;
  std::unordered_map<std::bitset<256>, std::size_t> byte_set_ids_;
};

}  // namespace

Grammar parse_gbnf(std::string_view text) { return Parser(text).parse(); }

}  // namespace lmserve::grammar
