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

// Turns the matches inside a piece of length `len` into the ranges to keep, following
// HF's SplitDelimiterBehavior on the alternating (span, is_match) sequence.
std::vector<Range> apply_behavior(const std::vector<Range>& matches, std::size_t len,
                                  Behavior behavior, bool invert) {
  std::vector<std::pair<Range, bool>> spans;
  spans.reserve(matches.size() * 2 + 1);
  std::size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev < b) spans.push_back({{prev, b}, invert});
    spans.push_back({{b, e}, !invert});
    prev = e;
  }
  if (prev < len) spans.push_back({{prev, len}, invert});

  std::vector<Range> out;
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
  return out;
}

// Replaces every piece by its kept sub-ranges; only a sub-range at offset 0 keeps at_origin.
void split_pieces(std::vector<PreToken>& pieces,
                  const std::function<std::vector<Range>(const std::string&)>& splitter) {
  std::vector<PreToken> out;
  out.reserve(pieces.size());
  for (auto& piece : pieces) {
    for (const auto& [b, e] : splitter(piece.text)) {
      if (e <= b) continue;
      out.push_back({piece.text.substr(b, e - b), piece.at_origin && b == 0});
    }
  }
  pieces = std::move(out);
}

// Every character satisfying `pred` is its own match, as HF's `Fn(char) -> bool` pattern.
std::vector<Range> char_matches(const std::string& text,
                                const std::function<bool(char32_t)>& pred) {
  std::vector<Range> matches;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t start = i;
    if (pred(next_code_point(text, i))) matches.emplace_back(start, i);
  }
  return matches;
}

class CharSplit final : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> pred, Behavior behavior)
      : pred_(std::move(pred)), behavior_(behavior) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_pieces(pieces, [&](const std::string& text) {
      return apply_behavior(char_matches(text, pred_), text.size(), behavior_, false);
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
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_pieces(pieces, [&](const std::string& text) {
      return apply_behavior(pattern_.find_all(text), text.size(), behavior_, invert_);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& piece : pieces) {
        if (piece.text.empty() || piece.text[0] != ' ') piece.text.insert(0, 1, ' ');
      }
    }
    if (regex_) {
      split_pieces(pieces, [&](const std::string& text) {
        return apply_behavior(regex_->find_all(text), text.size(), Behavior::kIsolated, false);
      });
    }
    for (auto& piece : pieces) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (char c : piece.text) mapped.append(byte_to_unicode(static_cast<unsigned char>(c)));
      piece.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (auto& piece : pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ') {
          replaced.append(replacement_);
        } else {
          replaced.push_back(c);
        }
      }
      const bool starts = replaced.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && piece.at_origin))) {
        replaced.insert(0, replacement_);
      }
      piece.text = std::move(replaced);
    }
    if (split_) {
      const Pattern pattern = Pattern::literal(replacement_);
      split_pieces(pieces, [&](const std::string& text) {
        return apply_behavior(pattern.find_all(text), text.size(), Behavior::kMergedWithNext,
                              false);
      });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class BertPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    whitespace_.pre_tokenize(pieces);
    punctuation_.pre_tokenize(pieces);
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
