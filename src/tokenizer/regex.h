// Oniguruma-compatible regular expressions on PCRE2 (UTF, UCP, JIT), as tokenizer.json
// patterns (GPT-2, Llama 3, Qwen splits; Replace normalizers) are written for Oniguruma.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmserve::tokenizer::detail {

class Regex {
 public:
  // Throws FileError when the pattern does not compile.
  explicit Regex(std::string_view pattern);

  // Byte ranges [begin, end) of the successive non-overlapping matches, leftmost first.
  // `subject` must be valid UTF-8 (callers sanitize input once at the entry point).
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view subject) const;
  // The same, written to `out` (cleared first) to reuse its storage.
  void find_all(std::string_view subject,
                std::vector<std::pair<std::size_t, std::size_t>>& out) const;

  // Rewrites Oniguruma syntax whose meaning differs in PCRE2 (\s, \w, \h ...).
  static std::string translate(std::string_view pattern);

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

// tokenizer.json's {"String": ...} or {"Regex": ...} pattern (Split, Replace).
class Pattern {
 public:
  static Pattern literal(std::string text);
  static Pattern regex(std::string_view pattern);

  // Same contract as Regex::find_all. An empty literal never matches.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view subject) const;
  void find_all(std::string_view subject,
                std::vector<std::pair<std::size_t, std::size_t>>& out) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

}  // namespace lmserve::tokenizer::detail
