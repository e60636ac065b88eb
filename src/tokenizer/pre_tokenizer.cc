#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <utility>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

using Range = std::pair<std::size_t, std::size_t>;

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const nlohmann::json& config, Behavior fallback) {
  const auto it = config.find("behavior");
  if (it == config.end() || it->is_null()) return fallback;
  const std::string name = it->is_string() ? it->get<std::string>() : std::string();
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  throw FileError("tokenizer.json: unknown split behavior \"" + name + "\"");
}

// Turns the matches inside a piece of length `len` into the ranges to keep (written to `out`),
// following HF's SplitDelimiterBehavior on the alternating (span, is_match) sequence.
void apply_behavior(const std::vector<Range>& matches, std::size_t len, Behavior behavior,
                    bool invert, std::vector<Range>& out) {
  thread_local std::vector<std::pair<Range, bool>> spans;
  spans.clear();
  std::size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev < b) spans.push_back({{prev, b}, invert});
    spans.push_back({{b, e}, !invert});
    prev = e;
  }
  if (prev < len) spans.push_back({{prev, len}, invert});

  out.clear();
  switch (behavior) {
    case Behavior::kRemoved:
      for (const auto& [r, m] : spans) {
        if (!m) out.push_back(r);
      }
      break;
    case Behavior::kIsolated:
      for (const auto& [r, m] : spans) out.push_back(r);
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& [r, m] : spans) {
        if (m && !previous_match && !out.empty()) {
          out.back().second = r.second;
        } else {
          out.push_back(r);
        }
        previous_match = m;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool next_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        const auto& [r, m] = *it;
        if (m && !next_match && !out.empty()) {
          out.back().first = r.first;
        } else {
          out.push_back(r);
        }
        next_match = m;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const auto& [r, m] : spans) {
        if (m == previous_match && !out.empty()) {
          out.back().second = r.second;
        } else {
          out.push_back(r);
        }
        previous_match = m;
      }
      break;
    }
  }
}

// Replaces every piece by its kept sub-ranges, which `splitter(view, ranges)` writes relative
// to the piece; only a sub-range at offset 0 keeps at_origin. No text is copied.
template <typename Splitter>
void split_pieces(PreTokenized& p, const Splitter& splitter) {
  p.scratch_pieces.clear();
  for (const auto& piece : p.pieces) {
    splitter(p.view(piece), p.ranges);
    for (const auto& [b, e] : p.ranges) {
      if (e <= b) continue;
      p.scratch_pieces.push_back({piece.begin + b, piece.begin + e, piece.at_origin && b == 0});
    }
  }
  p.pieces.swap(p.scratch_pieces);
}

// Every character satisfying `pred` is its own match, as HF's `Fn(char) -> bool` pattern.
template <typename Pred>
void char_matches(std::string_view text, const Pred& pred, std::vector<Range>& out) {
  out.clear();
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t start = i;
    if (pred(next_code_point(text, i))) out.emplace_back(start, i);
  }
}

class CharSplit final : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> pred, Behavior behavior)
      : pred_(std::move(pred)), behavior_(behavior) {}
  void pre_tokenize(PreTokenized& p) const override {
    split_pieces(p, [&](std::string_view text, std::vector<Range>& out) {
      char_matches(text, pred_, p.matches);
      apply_behavior(p.matches, text.size(), behavior_, false, out);
    });
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

class Split final : public PreTokenizer {
 public:
  Split(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(PreTokenized& p) const override {
    split_pieces(p, [&](std::string_view text, std::vector<Range>& out) {
      pattern_.find_all(text, p.matches);
      apply_behavior(p.matches, text.size(), behavior_, invert_, out);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's byte -> UTF-8 of its printable stand-in, as (length, bytes) for a branch-free copy.
struct ByteMap {
  std::uint8_t len[256];
  char bytes[256][2];
  ByteMap() {
    for (int b = 0; b < 256; ++b) {
      const std::string& s = byte_to_unicode(static_cast<unsigned char>(b));
      len[b] = static_cast<std::uint8_t>(s.size());
      bytes[b][0] = s[0];
      bytes[b][1] = s.size() > 1 ? s[1] : 0;
    }
  }
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void pre_tokenize(PreTokenized& p) const override {
    if (add_prefix_space_) {
      p.scratch_text.clear();
      for (auto& piece : p.pieces) {
        const std::string_view text = p.view(piece);
        const std::size_t begin = p.scratch_text.size();
        if (text.empty() || text[0] != ' ') p.scratch_text.push_back(' ');
        p.scratch_text.append(text);
        piece = {begin, p.scratch_text.size(), piece.at_origin};
      }
      p.text.swap(p.scratch_text);
    }
    if (regex_) {
      split_pieces(p, [&](std::string_view text, std::vector<Range>& out) {
        regex_->find_all(text, p.matches);
        apply_behavior(p.matches, text.size(), Behavior::kIsolated, false, out);
      });
    }
    static const ByteMap map;
    p.scratch_text.resize(p.text.size() * 2);
    char* dst = p.scratch_text.data();
    const char* base = dst;
    for (auto& piece : p.pieces) {
      const std::size_t begin = static_cast<std::size_t>(dst - base);
      for (std::size_t i = piece.begin; i < piece.end; ++i) {
        const auto b = static_cast<unsigned char>(p.text[i]);
        dst[0] = map.bytes[b][0];
        dst[1] = map.bytes[b][1];
        dst += map.len[b];
      }
      piece.begin = begin;
      piece.end = static_cast<std::size_t>(dst - base);
    }
    p.scratch_text.resize(static_cast<std::size_t>(dst - base));
    p.text.swap(p.scratch_text);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)),
        pattern_(Pattern::literal(replacement_)),
        scheme_(scheme),
        split_(split) {}
  void pre_tokenize(PreTokenized& p) const override {
    p.scratch_text.clear();
    for (auto& piece : p.pieces) {
      const std::string_view text = p.view(piece);
      const std::size_t begin = p.scratch_text.size();
      const bool starts = text.starts_with(' ') || text.starts_with(replacement_);
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && piece.at_origin))) {
        p.scratch_text.append(replacement_);
      }
      for (char c : text) {
        if (c == ' ') {
          p.scratch_text.append(replacement_);
        } else {
          p.scratch_text.push_back(c);
        }
      }
      piece = {begin, p.scratch_text.size(), piece.at_origin};
    }
    p.text.swap(p.scratch_text);
    if (split_) {
      split_pieces(p, [&](std::string_view text, std::vector<Range>& out) {
        pattern_.find_all(text, p.matches);
        apply_behavior(p.matches, text.size(), Behavior::kMergedWithNext, false, out);
      });
    }
  }

 private:
  std::string replacement_;
  Pattern pattern_;
  PrependScheme scheme_;
  bool split_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(PreTokenized& p) const override {
    for (const auto& step : steps_) step->pre_tokenize(p);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class BertPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(PreTokenized& p) const override {
    whitespace_.pre_tokenize(p);
    punctuation_.pre_tokenize(p);
  }

 private:
  CharSplit whitespace_{is_whitespace, Behavior::kRemoved};
  CharSplit punctuation_{is_punctuation, Behavior::kIsolated};
};

PrependScheme parse_prepend_scheme(const nlohmann::json& config) {
  const auto it = config.find("prepend_scheme");
  if (it != config.end() && it->is_string()) {
    const std::string name = it->get<std::string>();
    if (name == "always") return PrependScheme::kAlways;
    if (name == "first") return PrependScheme::kFirst;
    if (name == "never") return PrependScheme::kNever;
    throw FileError("tokenizer.json: unknown Metaspace prepend_scheme \"" + name + "\"");
  }
  // Files written before prepend_scheme existed carry add_prefix_space instead.
  return json_bool(config, "add_prefix_space", true) ? PrependScheme::kAlways
                                                     : PrependScheme::kNever;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = json_type(config, "pre_tokenizer");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : json_array(config, "pretokenizers", "Sequence pre_tokenizer")) {
      if (auto p = make_pre_tokenizer(step)) steps.push_back(std::move(p));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  if (type == "Split") {
    return std::make_unique<Split>(json_pattern(config, "Split pre_tokenizer"),
                                   parse_behavior(config, Behavior::kIsolated),
                                   json_bool(config, "invert", false));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(json_bool(config, "add_prefix_space", true),
                                       json_bool(config, "use_regex", true));
  }
  if (type == "Metaspace") {
    std::string replacement = json_string_or(config, "replacement", "\xE2\x96\x81");
    return std::make_unique<Metaspace>(std::move(replacement), parse_prepend_scheme(config),
                                       json_bool(config, "split", true));
  }
  if (type == "Digits") {
    return std::make_unique<CharSplit>(is_numeric, json_bool(config, "individual_digits", false)
                                                       ? Behavior::kIsolated
                                                       : Behavior::kContiguous);
  }
  if (type == "Punctuation") {
    return std::make_unique<CharSplit>(is_punctuation, parse_behavior(config, Behavior::kIsolated));
  }
  if (type == "WhitespaceSplit")
    return std::make_unique<CharSplit>(is_whitespace, Behavior::kRemoved);
  if (type == "Whitespace") {
    return std::make_unique<Split>(Pattern::regex(R"(\w+|[^\w\s]+)"), Behavior::kRemoved, true);
  }
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "CharDelimiterSplit") {
    const std::string delimiter = json_string(config, "delimiter", "CharDelimiterSplit");
    std::size_t i = 0;
    const char32_t cp = delimiter.empty() ? 0 : next_code_point(delimiter, i);
    return std::make_unique<CharSplit>([cp](char32_t c) { return c == cp; }, Behavior::kRemoved);
  }
  throw FileError("unsupported tokenizer.json pre_tokenizer type \"" + type +
                  "\" (supported: Split, ByteLevel, Metaspace, Digits, Punctuation, Whitespace, "
                  "WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit, Sequence)");
}

}  // namespace lmserve::tokenizer::detail
