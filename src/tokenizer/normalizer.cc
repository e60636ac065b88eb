#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

std::string utf8proc_transform(std::string_view text, int options) {
  if (text.empty()) return {};
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE));
  if (n < 0) {
    // Only reachable with invalid UTF-8, which the entry point already replaced.
    throw std::runtime_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return result;
}

// utf8proc's normalization into a per-thread buffer, appended to `out`.
void append_normalized(std::string& out, std::string_view text, int options) {
  thread_local std::vector<utf8proc_int32_t> buffer;
  const auto opts = static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE);
  const auto* str = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto len = static_cast<utf8proc_ssize_t>(text.size());
  if (buffer.size() < text.size() + 8) buffer.resize(text.size() + 8);
  utf8proc_ssize_t n = utf8proc_decompose(str, len, buffer.data(),
                                          static_cast<utf8proc_ssize_t>(buffer.size()), opts);
  if (n > static_cast<utf8proc_ssize_t>(buffer.size())) {
    buffer.resize(static_cast<std::size_t>(n));
    n = utf8proc_decompose(str, len, buffer.data(), n, opts);
  }
  if (n >= 0) n = utf8proc_reencode(buffer.data(), n, opts);
  if (n < 0) {
    // Only reachable with invalid UTF-8, which the entry point already replaced.
    throw std::runtime_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
  }
  out.append(reinterpret_cast<const char*>(buffer.data()), static_cast<std::size_t>(n));
}

// NFC/NFD/NFKC/NFKD. ASCII is unchanged by all four, no character composes with a following
// ASCII character, and ASCII characters are starters that canonical reordering never moves
// across; so the text is normalized in chunks: each run of non-ASCII characters together with
// the ASCII character before it (which may compose with marks in the run), with the rest
// copied as it is. Mostly-ASCII text then skips utf8proc almost entirely.
class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t j = pos;
      while (j < text.size() && static_cast<unsigned char>(text[j]) < 0x80) ++j;
      if (j == text.size()) {
        out.append(text.substr(pos));
        break;
      }
      const std::size_t start = j > pos ? j - 1 : j;
      out.append(text.substr(pos, start - pos));
      std::size_t k = j;
      while (k < text.size() && static_cast<unsigned char>(text[k]) >= 0x80) ++k;
      append_normalized(out, text.substr(start, k - start), options_);
      pos = k;
    }
    return out;
  }

 private:
  int options_;
};

// Rust's per-character to_lowercase: the simple mapping plus U+0130's two-character one.
void append_lowercase(std::string& out, char32_t cp) {
  if (cp == 0x130) {
    out.append("i\xCC\x87");
    return;
  }
  append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
}

class Lowercase final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) append_lowercase(out, next_code_point(text, i));
    return out;
  }
};

std::string_view strip_whitespace(std::string_view text, bool left, bool right) {
  if (left) {
    std::size_t i = 0;
    while (i < text.size()) {
      std::size_t j = i;
      if (!is_whitespace(next_code_point(text, j))) break;
      i = j;
    }
    text.remove_prefix(i);
  }
  if (right) {
    while (!text.empty()) {
      std::size_t start = text.size() - 1;
      while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      std::size_t j = start;
      if (!is_whitespace(next_code_point(text, j))) break;
      text.remove_suffix(text.size() - start);
    }
  }
  return text;
}

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text) const override {
    return std::string(strip_whitespace(text, left_, right_));
  }

 private:
  bool left_, right_;
};

std::string remove_nonspacing_marks(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t start = i;
    const char32_t cp = next_code_point(text, i);
    if (!is_nonspacing_mark(cp)) out.append(text.substr(start, i - start));
  }
  return out;
}

// Applied, as in HF, to the text as it is: run NFD first to strip the accents of
// precomposed characters.
class StripAccents final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    return remove_nonspacing_marks(text);
  }
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    std::size_t last = 0;
    for (const auto& [b, e] : pattern_.find_all(text)) {
      out.append(text.substr(last, b - last));
      out.append(content_);
      last = e;
    }
    out.append(text.substr(last));
    return out;
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string_view text) const override {
    // HF leaves an empty string empty: "" never gains the prefix.
    if (text.empty()) return {};
    std::string out = prefix_;
    out.append(text);
    return out;
  }

 private:
  std::string prefix_;
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size() * 2);
    for (char c : text) out.append(byte_to_unicode(static_cast<unsigned char>(c)));
    return out;
  }
};

bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CN ||
         c == UTF8PROC_CATEGORY_CO;
}

bool is_chinese_char(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_(chinese),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}
  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t start = i;
      const char32_t cp = next_code_point(text, i);
      if (clean_text_) {
        if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
        if (is_whitespace(cp)) {
          out.push_back(' ');
          continue;
        }
      }
      if (chinese_ && is_chinese_char(cp)) {
        out.push_back(' ');
        out.append(text.substr(start, i - start));
        out.push_back(' ');
        continue;
      }
      out.append(text.substr(start, i - start));
    }
    if (strip_accents_) out = remove_nonspacing_marks(utf8proc_transform(out, UTF8PROC_DECOMPOSE));
    if (lowercase_) out = Lowercase().normalize(out);
    return out;
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = json_type(config, "normalizer");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC")
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip") {
    return std::make_unique<Strip>(json_bool(config, "strip_left", true),
                                   json_bool(config, "strip_right", true));
  }
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Replace") {
    return std::make_unique<Replace>(json_pattern(config, "Replace normalizer"),
                                     json_string(config, "content", "Replace normalizer"));
  }
  if (type == "Prepend") {
    return std::make_unique<Prepend>(json_string(config, "prepend", "Prepend normalizer"));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "BertNormalizer") {
    const bool lowercase = json_bool(config, "lowercase", true);
    const auto accents = config.find("strip_accents");
    const bool strip =
        (accents == config.end() || accents->is_null()) ? lowercase : accents->get<bool>();
    return std::make_unique<BertNormalizer>(json_bool(config, "clean_text", true),
                                            json_bool(config, "handle_chinese_chars", true), strip,
                                            lowercase);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : json_array(config, "normalizers", "Sequence normalizer")) {
      if (auto n = make_normalizer(step)) steps.push_back(std::move(n));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  throw FileError("unsupported tokenizer.json normalizer type \"" + type +
                  "\" (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, "
                  "Prepend, ByteLevel, BertNormalizer, Sequence)");
}

}  // namespace lmserve::tokenizer::detail
