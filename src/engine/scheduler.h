// The scheduler: which sequences get KV blocks (admission) and which rows go into the next
// forward step (decode rows first, then prefill chunks under the token budget).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/prefix_cache.h"
#include "engine/sequence.h"
#include "model/kv_pool.h"

namespace lmserve::engine {

struct SchedulerLimits {
  int max_sequences = 8;
  int max_batch_tokens = 2048;
  int prefill_step_size = 512;
  int ctx_size = 0;
};

// One sequence's rows in a step.
struct PlannedRows {
  Sequence* sequence = nullptr;
  int n_rows = 0;
  bool want_logits = false;  // a decode row, or the chunk that completes the prompt
};

// Engine-thread only.
class Scheduler {
 public:
  Scheduler(model::KvPool& pool, PrefixCache& cache, SchedulerLimits limits);

  // Reserves every block `seq` can need (prompt + max_tokens, within the context), reusing
  // the longest cached prefix; false (nothing held) when the pool cannot provide them even
  // after evicting unreferenced cached blocks. Admission never over-commits, so a running
  // sequence never waits for memory and a full pool can only delay admissions.
  // A request that shares at least one full block of prompt with a running sequence whose
  // prefill has not computed it yet waits for it (false), then reuses it instead of
  // computing the same blocks twice (n identical prompts, clients with one system prompt).
  bool admit(Sequence& seq, const std::vector<std::unique_ptr<Sequence>>& active);

  // Rows for the next step, in `active` order: every decoding sequence's next token, then
  // prefill chunks (at most prefill_step_size per sequence) while the budget lasts.
  std::vector<PlannedRows> plan(const std::vector<std::unique_ptr<Sequence>>& active) const;

  // Offers the blocks `seq` has filled since the last call to the prefix cache.
  void offer_full_blocks(Sequence& seq);
  // Returns an ended sequence's blocks. Unless it failed, what it computed (its last,
  // partly filled block too) stays in the prefix cache for the next request to reuse.
  void release(Sequence& seq);

  std::uint64_t prefix_hits() const { return prefix_hits_; }
  std::uint64_t cached_prompt_tokens() const { return cached_prompt_tokens_; }

 private:
  int blocks_for(int positions) const;
  bool shares_pending_prefill(const Sequence& seq,
                              const std::vector<std::unique_ptr<Sequence>>& active) const;
  // Makes `blocks` blocks free, evicting unreferenced cached ones if needed.
  bool reserve(int blocks);

  model::KvPool& pool_;
  PrefixCache& cache_;
  SchedulerLimits limits_;
  std::uint64_t prefix_hits_ = 0;
  std::uint64_t cached_prompt_tokens_ = 0;
};

}  // namespace lmserve::engine
