#include "tokenizer/regex.h"

#include <algorithm>
#include <cctype>
#include <new>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

// Oniguruma's \s is the Unicode White_Space property. PCRE2's (with UCP) also takes
// U+180E and misses nothing else, so spell the set out to stay exact.
constexpr std::string_view kSpaceSet =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma's Unicode \w: Letter, Mark, Decimal_Number, Connector_Punctuation. PCRE2 10.42
// (with UCP) leaves out marks and connector punctuation other than '_'.
constexpr std::string_view kWordSet = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
// Oniguruma's \h is a hexadecimal digit, PCRE2's is horizontal space.
constexpr std::string_view kHexSet = "0-9a-fA-F";

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

std::string Regex::translate(std::string_view p) {
  std::string out;
  out.reserve(p.size() * 2);
  bool in_class = false;
  bool class_start = false;  // right after '[' or '[^': a ']' here is a literal
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      std::string_view set;
      bool negated = false;
      switch (e) {
        case 's':
          set = kSpaceSet;
          break;
        case 'S':
          set = kSpaceSet;
          negated = true;
          break;
        case 'w':
          set = kWordSet;
          break;
        case 'W':
          set = kWordSet;
          negated = true;
          break;
        case 'h':
          set = kHexSet;
          break;
        case 'H':
          set = kHexSet;
          negated = true;
          break;
        default:
          break;
      }
      if (e == 'u' && i + 6 <= p.size() &&
          std::all_of(p.begin() + static_cast<long>(i) + 2, p.begin() + static_cast<long>(i) + 6,
                      [](char h) { return std::isxdigit(static_cast<unsigned char>(h)); })) {
        // Oniguruma's \uHHHH is PCRE2's \x{HHHH}.
        out.append("\\x{").append(p.substr(i + 2, 4)).append("}");
        i += 5;
        class_start = false;
        continue;
      }
      if (!set.empty() && !(in_class && negated)) {
        if (in_class) {
          out.append(set);
        } else {
          out.append(negated ? "[^" : "[").append(set).append("]");
        }
      } else {
        // Everything else (\p{..}, \x{..}, \r, escaped metacharacters, a negated set inside
        // a class, which PCRE2 cannot express by expansion) is kept as written.
        out.push_back(c);
        out.push_back(e);
      }
      ++i;
      class_start = false;
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
        const auto close = p.find(":]", i + 2);
        if (close != std::string_view::npos) {
          out.append(p.substr(i, close + 2 - i));
          i = close + 1;
          class_start = false;
          continue;
        }
      }
      if (c == ']' && !class_start) in_class = false;
      if (!(c == '^' && class_start && out.back() == '[')) class_start = false;
      out.push_back(c);
      continue;
    }
    if (c == '[') {
      in_class = true;
      class_start = true;
    }
    out.push_back(c);
  }
  return out;
}

Regex::Regex(std::string_view pattern) {
  const std::string translated = translate(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  // MULTILINE: Oniguruma's Ruby syntax (what HF uses) treats ^ and $ as line anchors.
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw FileError("tokenizer regex does not compile at offset " + std::to_string(offset) + ": " +
                    reinterpret_cast<const char*>(message) + " (pattern: " + std::string(pattern) +
                    ")");
  }
  // JIT is an optimisation only: when it is unavailable pcre2_match interprets.
  const bool jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  auto owned = std::make_shared<Code>();
  owned->code = code;
  owned->jit = jit;
  code_ = std::move(owned);
}

std::vector<std::pair<std::size_t, std::size_t>> Regex::find_all(std::string_view subject) const {
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  find_all(subject, matches);
  return matches;
}

void Regex::find_all(std::string_view subject,
                     std::vector<std::pair<std::size_t, std::size_t>>& matches) const {
  matches.clear();
  // Only the whole match is needed, so one ovector pair serves every pattern; one block per
  // thread avoids an allocation per call.
  struct MatchData {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~MatchData() { pcre2_match_data_free(data); }
  };
  thread_local MatchData match_data;
  if (match_data.data == nullptr) throw std::bad_alloc();
  pcre2_match_data* data = match_data.data;
  const auto* bytes = reinterpret_cast<PCRE2_SPTR>(subject.data());
  std::size_t start = 0;
  while (start <= subject.size()) {
    // NO_UTF_CHECK: the subject is validated once upstream; checking on every call from a
    // new offset would make long inputs quadratic.
    const int rc = code_->jit ? pcre2_jit_match(code_->code, bytes, subject.size(), start,
                                                PCRE2_NO_UTF_CHECK, data, nullptr)
                              : pcre2_match(code_->code, bytes, subject.size(), start,
                                            PCRE2_NO_UTF_CHECK, data, nullptr);
    // rc == 0: matched, with more capture groups than the one ovector pair holds.
    if (rc < 0) {
      if (rc == PCRE2_ERROR_NOMATCH) break;
      throw std::runtime_error("tokenizer regex match failed with PCRE2 error " +
                               std::to_string(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    const std::size_t b = ov[0];
    const std::size_t e = ov[1];
    matches.emplace_back(b, e);
    if (e > b) {
      start = e;
    } else {
      // An empty match: step over one whole character so the next search makes progress.
      if (e >= subject.size()) break;
      std::size_t n = 1;
      while (e + n < subject.size() && (static_cast<unsigned char>(subject[e + n]) & 0xC0) == 0x80)
        ++n;
      start = e + n;
    }
  }
}

Pattern Pattern::literal(std::string text) {
  Pattern p;
  p.literal_ = std::move(text);
  return p;
}

Pattern Pattern::regex(std::string_view pattern) {
  Pattern p;
  p.regex_ = std::make_shared<const Regex>(pattern);
  return p;
}

std::vector<std::pair<std::size_t, std::size_t>> Pattern::find_all(std::string_view subject) const {
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  find_all(subject, matches);
  return matches;
}

void Pattern::find_all(std::string_view subject,
                       std::vector<std::pair<std::size_t, std::size_t>>& matches) const {
  if (regex_) return regex_->find_all(subject, matches);
  matches.clear();
  if (literal_.empty()) return;
  for (std::size_t pos = subject.find(literal_); pos != std::string_view::npos;
       pos = subject.find(literal_, pos + literal_.size())) {
    matches.emplace_back(pos, pos + literal_.size());
  }
}

}  // namespace lmserve::tokenizer::detail
