#include <algorithm>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/utf8.h"

namespace lmserve::tokenizer {

// Each push decodes only the window of ids since the last clean cut. A cut is taken once
// the window's text is fully emitted and ends on a complete character: the decoders then
// split there exactly (what follows decodes the same in "continuing" mode, with none of the
// start-of-text rules such as Strip's leading space or Metaspace's first token).

namespace {

// The longest prefix of `text` whose clean-up is final whatever text follows. Every
// clean-up rule replaces a space followed by ". ? ! , ' n't 'm 's 've 're" (or " ' "), and
// only ever deletes spaces; so a cut is safe unless the text after the last space before it
// could still grow into one of those (or is empty).
std::size_t clean_up_cut(std::string_view text) {
  std::size_t cut = text.size();
  for (;;) {
    const std::size_t space = cut == 0 ? std::string_view::npos : text.rfind(' ', cut - 1);
    if (space == std::string_view::npos) return cut;
    const std::string_view tail = text.substr(space + 1, cut - space - 1);
    if (tail.empty() || tail == "n" || tail == "n'" || tail == "'" || tail == "'v" ||
        tail == "'r") {
      cut = space;
      continue;
    }
    return cut;
  }
}

}  // namespace

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens,
                                           bool clean_up_spaces)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens), clean_up_(clean_up_spaces) {}

std::string StreamingDetokenizer::push(std::int32_t id) {
  std::string raw = push_raw(id);
  if (!clean_up_) return raw;
  pending_ += raw;
  const std::size_t cut = clean_up_cut(pending_);
  if (cut == 0) return {};
  std::string out = Tokenizer::clean_up_tokenization(std::string_view(pending_).substr(0, cut));
  pending_.erase(0, cut);
  return out;
}

std::string StreamingDetokenizer::finish() {
  std::string raw = finish_raw();
  if (!clean_up_) return raw;
  pending_ += raw;
  std::string out = Tokenizer::clean_up_tokenization(pending_);
  pending_.clear();
  return out;
}

std::string StreamingDetokenizer::push_raw(std::int32_t id) {
  const Tokenizer::Impl& im = tokenizer_->impl();
  if (!im.valid(id) || (skip_special_ && im.special[static_cast<std::size_t>(id)])) return {};
  ids_.push_back(id);
  // ByteFallback decodes a run of byte tokens as one unit (an invalid run becomes one
  // U+FFFD per byte), so nothing of a run is final until a non-byte token ends it. The text
  // before the run was already handled when its last token arrived.
  if (im.byte_value[static_cast<std::size_t>(id)] >= 0) return {};
  if (!im.decoder->streamable()) return {};

  const std::string text = im.decode_raw(ids_, false, at_start_);
  const std::size_t stable = util::complete_utf8_prefix(text);
  std::string out;
  if (stable > emitted_) {
    out = util::sanitize_utf8(std::string_view(text).substr(emitted_, stable - emitted_));
    emitted_ = stable;
  }
  // At the very start an empty text may still lose a leading space to a Strip later on,
  // so only cut there once something was produced.
  if (stable == text.size() && (!at_start_ || !text.empty())) {
    ids_.clear();
    emitted_ = 0;
    at_start_ = false;
  }
  return out;
}

std::string StreamingDetokenizer::finish_raw() {
  const Tokenizer::Impl& im = tokenizer_->impl();
  const std::string text = im.decode_raw(ids_, false, at_start_);
  std::string out =
      util::sanitize_utf8(std::string_view(text).substr(std::min(emitted_, text.size())));
  at_start_ = at_start_ && text.empty();
  ids_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace lmserve::tokenizer
