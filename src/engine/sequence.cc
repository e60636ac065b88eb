#include "engine/sequence.h"

#include <algorithm>

namespace lmserve::engine {
namespace {
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

Sequence::Sequence(GenerationRequest request, EventSink sink, const tokenizer::Tokenizer& tokenizer)
    : request_(std::move(request)),
      sink_(std::move(sink)),
      handle_(std::make_shared<RequestHandle>()),
      sampler_(request_.sampling),
      // Text equals transformers' decode of the completion (§4.4): special tokens shown,
      // clean-up of tokenization spaces as the tokenizer's config says.
      detokenizer_(tokenizer, /*skip_special_tokens=*/false,
                   tokenizer.clean_up_tokenization_spaces()),
      stops_(request_.stop),
      tokens_(request_.prompt) {}

void Sequence::admit(int cached_tokens) {
  state_ = State::kPrefilling;
  admitted_ = Clock::now();
  cached_tokens_ = cached_tokens;
  kv_len_ = cached_tokens;
  report_progress();
}

int Sequence::pending_rows() const {
  return state_ == State::kPrefilling ? prompt_size() - kv_len_ : 1;
}

void Sequence::report_progress() {
  sink_({.kind = GenerationEvent::Kind::kProgress,
         .prompt_processed = std::min(kv_len_, prompt_size()),
         .prompt_total = prompt_size()});
}

void Sequence::accept_token(std::int32_t token, const std::vector<std::int32_t>& eos, int context) {
  const auto now = Clock::now();
  if (generated_ == 0) {
    first_token_ = now;
  } else {
    max_gap_ms_ = std::max(max_gap_ms_, ms_between(last_token_, now));
  }
  last_token_ = now;
  state_ = State::kDecoding;
  tokens_.push_back(token);
  ++generated_;
  if (std::binary_search(eos.begin(), eos.end(), token)) {
    // EOS text is never shown; what the detokenizer and stop matcher hold is.
    emit_text(stops_.push(detokenizer_.finish()).text + stops_.flush());
    finish(FinishReason::kStop);
    return;
  }
  StopMatcher::Result r = stops_.push(detokenizer_.push(token));
  emit_text(r.text);
  if (r.stopped) {
    finish(FinishReason::kStop);
    return;
  }
  const bool budget_spent = generated_ >= request_.max_tokens;
  const bool context_full = static_cast<int>(tokens_.size()) >= context;
  if (budget_spent || context_full) {
    StopMatcher::Result tail = stops_.push(detokenizer_.finish());
    emit_text(tail.stopped ? tail.text : tail.text + stops_.flush());
    finish(tail.stopped ? FinishReason::kStop : FinishReason::kLength);
  }
}

void Sequence::emit_text(const std::string& text) {
  if (!text.empty()) sink_({.kind = GenerationEvent::Kind::kText, .text = text});
}

void Sequence::finish(FinishReason reason) {
  if (done()) return;
  state_ = State::kDone;
  const auto now = Clock::now();
  const Clock::time_point admitted = admitted_ == Clock::time_point{} ? now : admitted_;
  sink_({.kind = GenerationEvent::Kind::kFinished,
         .finish_reason = reason,
         .usage = {.prompt_tokens = prompt_size(),
                   .completion_tokens = generated_,
                   .cached_tokens = cached_tokens_},
         .timings = {.queue_ms = ms_between(submitted_, admitted),
                     .first_token_ms = generated_ > 0 ? ms_between(submitted_, first_token_) : 0,
                     .total_ms = ms_between(submitted_, now),
                     .max_gap_ms = max_gap_ms_},
         .completion_ids = {tokens_.begin() + prompt_size(), tokens_.end()}});
}

void Sequence::fail(const std::string& message) {
  if (done()) return;
  state_ = State::kDone;
  failed_ = true;
  sink_({.kind = GenerationEvent::Kind::kFailed, .error = message});
}

}  // namespace lmserve::engine
