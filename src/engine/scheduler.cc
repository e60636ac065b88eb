#include "engine/scheduler.h"

#include <algorithm>

namespace lmserve::engine {

Scheduler::Scheduler(model::KvPool& pool, PrefixCache& cache, SchedulerLimits limits)
    : pool_(pool), cache_(cache), limits_(limits) {}

int Scheduler::blocks_for(int positions) const {
  const int b = pool_.shape().block_size;
  return (positions + b - 1) / b;
}

bool Scheduler::reserve(int blocks) {
  if (pool_.free_blocks() < blocks) cache_.evict(blocks - pool_.free_blocks());
  return pool_.free_blocks() >= blocks;
}

bool Scheduler::shares_pending_prefill(const Sequence& seq,
                                       const std::vector<std::unique_ptr<Sequence>>& active) const {
  const int block_size = pool_.shape().block_size;
  const auto& prompt = seq.request().prompt;
  for (const auto& other : active) {
    if (other->state() != Sequence::State::kPrefilling) continue;
    const auto& theirs = other->request().prompt;
    const std::size_t limit = std::min(prompt.size() - 1, theirs.size());
    const auto common = static_cast<int>(
        std::mismatch(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(limit),
                      theirs.begin())
            .first -
        prompt.begin());
    const int shared_blocks = common / block_size;
    if (shared_blocks > 0 && other->kv_len() < shared_blocks * block_size) return true;
  }
  return false;
}

bool Scheduler::admit(Sequence& seq, const std::vector<std::unique_ptr<Sequence>>& active) {
  if (shares_pending_prefill(seq, active)) return false;
  const int prompt = seq.prompt_size();
  // The last sampled token is never evaluated, so prompt + max_tokens - 1 positions suffice.
  const int positions =
      std::min(prompt + std::max(seq.request().max_tokens, 1) - 1, limits_.ctx_size);
  const int needed = blocks_for(std::max(positions, prompt));
  // The prompt's last token is always evaluated: its logits choose the first new token.
  PrefixCache::Match match = cache_.match(seq.tokens(), prompt - 1);
  const int block_size = pool_.shape().block_size;
  const int matched_full = match.tokens / block_size;
  if (!reserve(needed - matched_full)) {
    // The matched blocks may be the very ones that must be evicted to make room (a pool
    // sized for one context holding the previous answer): admit without reuse instead.
    for (auto b : match.blocks) pool_.release(b);
    if (match.blocks.empty() || !reserve(needed)) return false;
    match = {};
  }
  const bool partial = match.tokens % block_size != 0;
  const int shared = static_cast<int>(match.blocks.size()) - (partial ? 1 : 0);
  auto& blocks = seq.blocks();
  blocks.assign(match.blocks.begin(), match.blocks.begin() + shared);
  if (partial) {
    // Copy-on-write: the shared block's first slots are ours, the rest will be overwritten.
    const model::BlockId copy = *pool_.allocate();
    pool_.copy(match.blocks.back(), copy);
    pool_.release(match.blocks.back());
    blocks.push_back(copy);
  }
  while (static_cast<int>(blocks.size()) < needed) blocks.push_back(*pool_.allocate());
  seq.offered_blocks() = shared;
  if (match.tokens > 0) ++prefix_hits_;
  cached_prompt_tokens_ += static_cast<std::uint64_t>(match.tokens);
  seq.admit(match.tokens);
  return true;
}

std::vector<PlannedRows> Scheduler::plan(
    const std::vector<std::unique_ptr<Sequence>>& active) const {
  std::vector<PlannedRows> rows;
  int budget = limits_.max_batch_tokens;
  for (const auto& seq : active) {
    if (seq->state() != Sequence::State::kDecoding) continue;
    rows.push_back({.sequence = seq.get(), .n_rows = 1, .want_logits = true});
    --budget;
  }
  for (const auto& seq : active) {
    if (budget <= 0) break;
    if (seq->state() != Sequence::State::kPrefilling) continue;
    const int rest = seq->pending_rows();
    const int n = std::min({rest, limits_.prefill_step_size, budget});
    rows.push_back({.sequence = seq.get(), .n_rows = n, .want_logits = n == rest});
    budget -= n;
  }
  return rows;
}

void Scheduler::offer_full_blocks(Sequence& seq) {
  const int full = seq.kv_len() / pool_.shape().block_size;
  if (full <= seq.offered_blocks()) return;
  cache_.insert(seq.tokens(), std::span(seq.blocks()).first(static_cast<std::size_t>(full)));
  seq.offered_blocks() = full;
}

void Scheduler::release(Sequence& seq) {
  const int block_size = pool_.shape().block_size;
  const int used = (seq.kv_len() + block_size - 1) / block_size;
  if (!seq.failed() && used > seq.offered_blocks()) {
    cache_.insert(std::span(seq.tokens()).first(static_cast<std::size_t>(seq.kv_len())),
                  std::span(seq.blocks()).first(static_cast<std::size_t>(used)));
  }
  for (auto b : seq.blocks()) pool_.release(b);
  seq.blocks().clear();
}

}  // namespace lmserve::engine
