#include "engine/sequence.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace lmserve::engine {
namespace {
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

Sequence::Sequence(GenerationRequest request, EventSink sink, const tokenizer::Tokenizer& tokenizer,
                   const grammar::TokenTrie* trie)
    : request_(std::move(request)),
      sink_(std::move(sink)),
      handle_(std::make_shared<RequestHandle>()),
      sampler_(request_.sampling),
      // Text equals transformers' decode of the completion (§4.4): special tokens shown,
      // clean-up of tokenization spaces as the tokenizer's config says.
      detokenizer_(tokenizer, /*skip_special_tokens=*/false,
                   tokenizer.clean_up_tokenization_spaces()),
      stops_(request_.stop),
      tokens_(request_.prompt) {
  if (request_.grammar)
    constraint_ = std::make_unique<grammar::Constraint>(request_.grammar, *trie);
  in_think_ = request_.think_budget && request_.think_budget->open;
}

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

bool Sequence::ends_sequence(std::int32_t token, const std::vector<std::int32_t>& eos) const {
  const auto& stop_ids = request_.stop_token_ids;
  return (!request_.ignore_eos && std::binary_search(eos.begin(), eos.end(), token)) ||
         std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
}

void Sequence::apply_grammar(std::span<float> logits, const std::vector<std::int32_t>& eos) {
  const grammar::TokenMask& mask = constraint_->allowed();
  constexpr float kBanned = -std::numeric_limits<float>::infinity();
  // EOS is special, so never in the mask: it is allowed exactly where the text is complete.
  std::vector<std::pair<std::size_t, float>> kept_eos;
  if (constraint_->accepting() && !request_.ignore_eos) {
    for (std::int32_t id : eos)
      if (id >= 0 && static_cast<std::size_t>(id) < logits.size())
        kept_eos.emplace_back(static_cast<std::size_t>(id), logits[static_cast<std::size_t>(id)]);
  }
  // A word at a time: inside a string nearly every word is all allowed, one compare.
  for (std::size_t begin = 0; begin < logits.size(); begin += 64) {
    const std::size_t w = begin / 64;
    const std::uint64_t bits = w < mask.words.size() ? mask.words[w] : 0;
    if (bits == ~std::uint64_t{0}) continue;
    const std::size_t end = std::min(logits.size(), begin + 64);
    for (std::size_t i = begin; i < end; ++i)
      if (!(bits >> (i - begin) & 1)) logits[i] = kBanned;
  }
  // An EOS id the vocabulary treats as ordinary text may pass the mask: it still ends the
  // sequence, so it too waits until the grammar accepts.
  for (std::int32_t id : eos)
    if (id >= 0 && static_cast<std::size_t>(id) < logits.size())
      logits[static_cast<std::size_t>(id)] = kBanned;
  for (const auto& [id, logit] : kept_eos) logits[id] = logit;
  if (std::all_of(logits.begin(), logits.end(), [](float x) { return x == kBanned; }))
    throw std::runtime_error("the grammar allows no token of this vocabulary here");
}

void Sequence::apply_think_budget(std::span<float> logits) const {
  const ThinkBudget& b = *request_.think_budget;
  if (!in_think_ || think_tokens_ < b.budget) return;
  if (b.end_id < 0 || static_cast<std::size_t>(b.end_id) >= logits.size()) return;
  const float end_logit = logits[static_cast<std::size_t>(b.end_id)];
  std::fill(logits.begin(), logits.end(), -std::numeric_limits<float>::infinity());
  // Finite, so that every sampler filter keeps it.
  logits[static_cast<std::size_t>(b.end_id)] = std::isfinite(end_logit) ? end_logit : 0.0f;
}

void Sequence::track_think_block(std::int32_t token) {
  const ThinkBudget& b = *request_.think_budget;
  if (token == b.start_id) {
    in_think_ = true;
    think_tokens_ = 0;
  } else if (token == b.end_id) {
    in_think_ = false;
  } else if (in_think_) {
    ++think_tokens_;
  }
}

std::int32_t Sequence::sample(std::span<float> logits, const std::vector<std::int32_t>& eos) {
  if (constraint_) apply_grammar(logits, eos);
  if (generated_ < request_.min_tokens) {
    auto ban = [&](std::int32_t id) {
      if (id >= 0 && static_cast<std::size_t>(id) < logits.size())
        logits[static_cast<std::size_t>(id)] = -std::numeric_limits<float>::infinity();
    };
    if (!request_.ignore_eos) std::for_each(eos.begin(), eos.end(), ban);
    std::for_each(request_.stop_token_ids.begin(), request_.stop_token_ids.end(), ban);
  }
  if (request_.think_budget) apply_think_budget(logits);
  if (request_.logprobs < 0) return sampler_.sample(logits, tokens_);
  TokenLogprob entry;
  const std::int32_t token = sampler_.sample(logits, tokens_, &entry, request_.logprobs);
  pending_logprobs_.push_back(std::move(entry));
  return token;
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
  if (request_.think_budget) track_think_block(token);
  if (ends_sequence(token, eos)) {
    // EOS text is never shown (nor its logprob); what the detokenizer and stop matcher hold is.
    if (!pending_logprobs_.empty()) pending_logprobs_.pop_back();
    emit_text(stops_.push(detokenizer_.finish()).text + stops_.flush());
    finish(FinishReason::kStop);
    return;
  }
  if (constraint_) constraint_->accept(token);
  StopMatcher::Result r = stops_.push(detokenizer_.push(token));
  stop_sequence_ = r.matched;
  emit_text(r.text);
  const bool grammar_done = constraint_ && constraint_->complete();
  if (r.stopped || grammar_done) {
    if (!r.stopped) emit_text(stops_.push(detokenizer_.finish()).text + stops_.flush());
    finish(FinishReason::kStop);
    return;
  }
  const bool budget_spent = generated_ >= request_.max_tokens;
  const bool context_full = static_cast<int>(tokens_.size()) >= context;
  if (budget_spent || context_full) {
    StopMatcher::Result tail = stops_.push(detokenizer_.finish());
    stop_sequence_ = tail.matched;
    emit_text(tail.stopped ? tail.text : tail.text + stops_.flush());
    finish(tail.stopped ? FinishReason::kStop : FinishReason::kLength);
  }
}

void Sequence::emit_text(const std::string& text) {
  if (text.empty()) return;
  sink_({.kind = GenerationEvent::Kind::kText,
         .text = text,
         .logprobs = std::exchange(pending_logprobs_, {})});
}

void Sequence::finish(FinishReason reason) {
  if (done()) return;
  state_ = State::kDone;
  const auto now = Clock::now();
  const Clock::time_point admitted = admitted_ == Clock::time_point{} ? now : admitted_;
  sink_({.kind = GenerationEvent::Kind::kFinished,
         .logprobs = std::exchange(pending_logprobs_, {}),
         .finish_reason = reason,
         .usage = {.prompt_tokens = prompt_size(),
                   .completion_tokens = generated_,
                   .cached_tokens = cached_tokens_},
         .timings = {.queue_ms = ms_between(submitted_, admitted),
                     .first_token_ms = generated_ > 0 ? ms_between(submitted_, first_token_) : 0,
                     .total_ms = ms_between(submitted_, now),
                     .max_gap_ms = max_gap_ms_},
         .completion_ids = {tokens_.begin() + prompt_size(), tokens_.end()},
         .stop_sequence = stop_sequence_});
}

void Sequence::fail(const std::string& message) {
  if (done()) return;
  state_ = State::kDone;
  failed_ = true;
  sink_({.kind = GenerationEvent::Kind::kFailed, .error = message});
}

}  // namespace lmserve::engine
