#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/strings.h"
#include "util/utf8.h"

namespace lmserve::tokenizer::detail {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

class ByteLevel final : public DecoderStep {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool, bool& fused) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      const std::size_t mark = bytes.size();
      bool mapped = true;
      for (std::size_t i = 0; i < token.size();) {
        const int b = unicode_to_byte(next_code_point(token, i));
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      // A token with characters outside the byte table (an added token such as "▁▁")
      // contributes its own UTF-8, as HF does.
      if (!mapped) bytes.replace(mark, std::string::npos, token);
    }
    tokens.assign(1, std::move(bytes));
    fused = true;
  }
};

class Metaspace final : public DecoderStep {
 public:
  Metaspace(std::string replacement, bool drop_first)
      : replacement_(std::move(replacement)), drop_first_(drop_first) {}
  void decode_chain(std::vector<std::string>& tokens, bool at_start, bool&) const override {
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      // HF drops every replacement character of the very first token when a prefix space
      // was added at encoding time, and turns all others into spaces.
      const bool drop = drop_first_ && at_start && t == 0;
      std::string out;
      const std::string& token = tokens[t];
      for (std::size_t i = 0; i < token.size();) {
        if (!replacement_.empty() && token.compare(i, replacement_.size(), replacement_) == 0) {
          if (!drop) out.push_back(' ');
          i += replacement_.size();
        } else {
          out.push_back(token[i++]);
        }
      }
      tokens[t] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool drop_first_;
};

class Replace final : public DecoderStep {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens, bool, bool&) const override {
    for (auto& token : tokens) {
      const auto matches = pattern_.find_all(token);
      if (matches.empty()) continue;
      std::string out;
      std::size_t last = 0;
      for (const auto& [b, e] : matches) {
        out.append(token, last, b - last);
        out.append(content_);
        last = e;
      }
      out.append(token, last);
      token = std::move(out);
    }
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class ByteFallback final : public DecoderStep {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool, bool&) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    std::size_t run_tokens = 0;
    auto flush = [&] {
      if (run_tokens == 0) return;
      // A run that is not valid UTF-8 as a whole becomes one U+FFFD per byte token.
      if (util::is_valid_utf8(run)) {
        out.push_back(std::move(run));
      } else {
        for (std::size_t k = 0; k < run_tokens; ++k) out.emplace_back(kReplacementChar);
      }
      run.clear();
      run_tokens = 0;
    };
    for (auto& token : tokens) {
      const int b = byte_token_value(token);
      if (b >= 0) {
        run.push_back(static_cast<char>(b));
        ++run_tokens;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class Fuse final : public DecoderStep {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool, bool& fused) const override {
    std::string joined;
    for (const auto& token : tokens) joined.append(token);
    tokens.assign(1, std::move(joined));
    fused = true;
  }
};

// Removes up to `n` leading (trailing) copies of one character from each token.
class Strip final : public DecoderStep {
 public:
  Strip(std::string content, std::size_t start, std::size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens, bool at_start, bool& fused) const override {
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      std::string& token = tokens[t];
      std::size_t begin = 0;
      // After a Fuse the single token is the whole text, whose start only exists at_start.
      if (at_start || !fused) {
        for (std::size_t k = 0; k < start_ && token.compare(begin, content_.size(), content_) == 0;
             ++k) {
          begin += content_.size();
        }
      }
      std::size_t end = token.size();
      for (std::size_t k = 0; k < stop_ && end >= begin + content_.size() &&
                              token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++k) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  std::size_t start_, stop_;
};

// The replacements of HF's wordpiece::cleanup, in its order (used by WordPiece and CTC).
std::string wordpiece_cleanup(std::string text) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) text = util::replace_all(text, from, to);
  return text;
}

// Continuation pieces lose their prefix; every other piece but the very first gets a space.
class WordPiece final : public DecoderStep {
 public:
  WordPiece(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens, bool at_start, bool&) const override {
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      std::string& token = tokens[t];
      if (!(at_start && t == 0)) {
        if (token.starts_with(prefix_)) {
          token.erase(0, prefix_.size());
        } else {
          token.insert(0, 1, ' ');
        }
      }
      if (cleanup_) token = wordpiece_cleanup(std::move(token));
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

// The end-of-word suffix becomes a space, except in the last token of the text.
class BpeDecoder final : public DecoderStep {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens, bool, bool&) const override {
    if (suffix_.empty()) return;
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const std::string_view replacement = t + 1 == tokens.size() ? "" : " ";
      std::string& token = tokens[t];
      std::string out;
      std::size_t last = 0;
      for (std::size_t pos = token.find(suffix_); pos != std::string::npos;
           pos = token.find(suffix_, last)) {
        out.append(token, last, pos - last);
        out.append(replacement);
        last = pos + suffix_.size();
      }
      out.append(token, last);
      token = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

// Connectionist temporal classification output: repeats collapse, pads vanish, the word
// delimiter becomes a space.
class Ctc final : public DecoderStep {
 public:
  Ctc(std::string pad, std::string delimiter, bool cleanup)
      : pad_(std::move(pad)), delimiter_(std::move(delimiter)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens, bool, bool&) const override {
    std::vector<std::string> out;
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      if (t > 0 && tokens[t] == tokens[t - 1]) continue;
      std::string text = util::replace_all(tokens[t], pad_, "");
      if (cleanup_) text = util::replace_all(wordpiece_cleanup(std::move(text)), delimiter_, " ");
      if (!text.empty()) out.push_back(std::move(text));
    }
    tokens = std::move(out);
  }

 private:
  std::string pad_, delimiter_;
  bool cleanup_;
};

class Sequence final : public DecoderStep {
 public:
  explicit Sequence(std::vector<std::unique_ptr<DecoderStep>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens, bool at_start, bool& fused) const override {
    for (const auto& step : steps_) step->decode_chain(tokens, at_start, fused);
  }

 private:
  std::vector<std::unique_ptr<DecoderStep>> steps_;
};

struct BuildState {
  bool fused = false;
  bool has_byte_fallback = false;
  bool streamable = true;
};

std::unique_ptr<DecoderStep> make_step(const nlohmann::json& config, BuildState& state) {
  const std::string type = json_type(config, "decoder");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<DecoderStep>> steps;
    for (const auto& step : json_array(config, "decoders", "Sequence decoder")) {
      steps.push_back(make_step(step, state));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  if (type == "ByteLevel") {
    state.fused = true;
    return std::make_unique<ByteLevel>();
  }
  if (type == "Metaspace") {
    bool drop_first;
    if (const auto it = config.find("prepend_scheme"); it != config.end() && it->is_string()) {
      drop_first = it->get<std::string>() != "never";
    } else {
      drop_first = json_bool(config, "add_prefix_space", true);
    }
    return std::make_unique<Metaspace>(json_string_or(config, "replacement", "\xE2\x96\x81"),
                                       drop_first);
  }
  if (type == "Replace") {
    return std::make_unique<Replace>(json_pattern(config, "Replace decoder"),
                                     json_string(config, "content", "Replace decoder"));
  }
  if (type == "ByteFallback") {
    state.has_byte_fallback = true;
    return std::make_unique<ByteFallback>();
  }
  if (type == "Fuse") {
    state.fused = true;
    return std::make_unique<Fuse>();
  }
  if (type == "Strip") {
    const long long start = json_int(config, "start", 0);
    const long long stop = json_int(config, "stop", 0);
    if (start < 0 || stop < 0)
      throw FileError("tokenizer.json: Strip decoder with a negative count");
    if (stop > 0 && state.fused) state.streamable = false;
    return std::make_unique<Strip>(json_string(config, "content", "Strip decoder"),
                                   static_cast<std::size_t>(start), static_cast<std::size_t>(stop));
  }
  if (type == "WordPiece") {
    return std::make_unique<WordPiece>(json_string_or(config, "prefix", "##"),
                                       json_bool(config, "cleanup", true));
  }
  if (type == "BPEDecoder") {
    // The last token of the text decodes differently, so nothing is final before the end.
    state.streamable = false;
    return std::make_unique<BpeDecoder>(json_string_or(config, "suffix", "</w>"));
  }
  if (type == "CTC") {
    // Collapsing repeats looks across the whole sequence: decode it as a whole.
    state.streamable = false;
    return std::make_unique<Ctc>(json_string_or(config, "pad_token", "<pad>"),
                                 json_string_or(config, "word_delimiter_token", "|"),
                                 json_bool(config, "cleanup", true));
  }
  throw FileError("unsupported tokenizer.json decoder type \"" + type +
                  "\" (supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, "
                  "WordPiece, BPEDecoder, CTC, Sequence)");
}

}  // namespace

int byte_token_value(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token[5] != '>') return -1;
  int value = 0;
  for (std::size_t i = 3; i < 5; ++i) {
    const char c = token[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

Decoder::Decoder(const nlohmann::json& config) {
  if (config.is_null()) return;
  BuildState state;
  root_ = make_step(config, state);
  has_byte_fallback_ = state.has_byte_fallback;
  streamable_ = state.streamable;
}

Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;

std::string Decoder::decode(std::vector<std::string> tokens, bool at_start) const {
  if (!root_) {
    // No decoder: HF joins the tokens with spaces.
    std::string out;
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      if (t > 0 || !at_start) out.push_back(' ');
      out.append(tokens[t]);
    }
    return out;
  }
  bool fused = false;
  root_->decode_chain(tokens, at_start, fused);
  std::string out;
  for (const auto& token : tokens) out.append(token);
  return out;
}

}  // namespace lmserve::tokenizer::detail
