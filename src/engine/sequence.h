// One request inside the engine: its tokens and KV blocks, its sampler, and the text pipeline
// ids -> streaming detokenizer -> stop matcher that turns sampled ids into events.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/sampling.h"
#include "engine/stop_matcher.h"
#include "grammar/constraint.h"
#include "model/kv_pool.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::engine {

using Clock = std::chrono::steady_clock;

class Sequence {
 public:
  enum class State { kWaiting, kPrefilling, kDecoding, kDone };

  // `trie` indexes the tokenizer's vocabulary; needed only when the request has a grammar.
  Sequence(GenerationRequest request, EventSink sink, const tokenizer::Tokenizer& tokenizer,
           const grammar::TokenTrie* trie = nullptr);

  const GenerationRequest& request() const { return request_; }
  const std::shared_ptr<RequestHandle>& handle() const { return handle_; }
  State state() const { return state_; }
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return failed_; }  // ended by fail(): its KV may be incomplete

  // Tokens so far: the prompt, then every sampled id (the last one not yet in the KV cache
  // while decoding).
  const std::vector<std::int32_t>& tokens() const { return tokens_; }
  int prompt_size() const { return static_cast<int>(request_.prompt.size()); }
  // Positions whose keys and values are in this sequence's blocks.
  int kv_len() const { return kv_len_; }
  // Its block tables, one per KV cache kind (model::BatchSequence::blocks); kNoBlock where a
  // windowed kind holds nothing (yet, or any more).
  std::vector<std::vector<model::BlockId>>& blocks() { return blocks_; }
  // Per kind: blocks it may still take from the pool beyond those it holds (its share of the
  // admission reserve; windowed kinds take blocks as their rows need them).
  std::vector<int>& reserved_blocks() { return reserved_blocks_; }
  // Blocks already offered to the prefix cache (they are full and never written again).
  int& offered_blocks() { return offered_blocks_; }

  // Admission: the prompt's first `cached` tokens are already in `blocks`.
  void admit(int cached_tokens);
  // `n` more positions were evaluated (a prefill chunk or the last sampled token).
  void advance_kv(int n) { kv_len_ += n; }
  // The rows to evaluate next: the rest of the prompt while prefilling, else the last token.
  int pending_rows() const;

  // Chooses the next token from this step's logits (modified in place): EOS and stop token
  // ids are masked until min_tokens, tokens the grammar forbids always (before any other
  // processing), and the logprobs are recorded when requested.
  std::int32_t sample(std::span<float> logits, const std::vector<std::int32_t>& eos);
  // Takes the sampled token through EOS, stop strings and length limits; emits text and,
  // when the sequence ends, its kFinished event. `context` is the per-sequence limit.
  void accept_token(std::int32_t token, const std::vector<std::int32_t>& eos, int context);

  void report_progress();
  void finish(FinishReason reason);
  void fail(const std::string& message);

 private:
  void emit_text(const std::string& text);
  void apply_grammar(std::span<float> logits, const std::vector<std::int32_t>& eos);
  bool ends_sequence(std::int32_t token, const std::vector<std::int32_t>& eos) const;
  // Forces the end of a think block that spent its budget (request().think_budget).
  void apply_think_budget(std::span<float> logits) const;
  void track_think_block(std::int32_t token);

  GenerationRequest request_;
  EventSink sink_;
  std::shared_ptr<RequestHandle> handle_;
  Sampler sampler_;
  tokenizer::StreamingDetokenizer detokenizer_;
  StopMatcher stops_;
  std::unique_ptr<grammar::Constraint> constraint_;  // set when the request has a grammar
  std::vector<std::int32_t> tokens_;
  std::vector<std::vector<model::BlockId>> blocks_;
  std::vector<int> reserved_blocks_;
  std::vector<TokenLogprob> pending_logprobs_;  // sampled, not yet attached to an event
  int offered_blocks_ = 0;
  int kv_len_ = 0;
  int cached_tokens_ = 0;
  int generated_ = 0;
  bool in_think_ = false;
  int think_tokens_ = 0;       // sampled inside the current think block
  std::string stop_sequence_;  // the stop string that ended the sequence
  State state_ = State::kWaiting;
  bool failed_ = false;
  Clock::time_point submitted_ = Clock::now();
  Clock::time_point admitted_{};
  Clock::time_point first_token_{};
  Clock::time_point last_token_{};
  double max_gap_ms_ = 0;
};

}  // namespace lmserve::engine
