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
  Scheduler(model::KvPools& pools, PrefixCache& cache, SchedulerLimits limits);

  // The most blocks of `kind` a sequence of `positions` positions holds between steps: all of
  // them for full attention, at most ceil(window / block_size) + 1 for a windowed kind.
  static int sequence_blocks(const model::KvKind& kind, int positions);
  // The blocks of `kind` kept free beyond every sequence's reserve, so that a prefill chunk of
  // the largest size (whose rows together see window - 1 + chunk positions) runs in one step:
  // 0 for full attention.
  static int chunk_blocks(const model::KvKind& kind, const SchedulerLimits& limits);

  // Reserves, per kind, every block `seq` can need (prompt + max_tokens, within the context;
  // for a windowed kind only its window's worth), reusing the longest usable cached prefix;
  // false (nothing held) when the pools cannot provide them even after evicting unreferenced
  // cached blocks. Admission never over-commits, so a running sequence never waits for
  // memory and a full pool can only delay admissions.
  // A request that shares at least one full block of prompt with a running sequence whose
  // prefill has not computed it yet waits for it (false), then reuses it instead of
  // computing the same blocks twice (n identical prompts, clients with one system prompt).
  bool admit(Sequence& seq, const std::vector<std::unique_ptr<Sequence>>& active);

  // Rows for the next step, in `active` order: every decoding sequence's next token, then
  // prefill chunks (at most prefill_step_size per sequence) while the budget lasts and the
  // windowed kinds' spare blocks hold their rows.
  std::vector<PlannedRows> plan(const std::vector<std::unique_ptr<Sequence>>& active) const;
  // Gives the planned rows the window blocks they write: from each sequence's reserve, or
  // (prefill chunks) from the spare blocks plan() counted on, evicting cached window blocks
  // when no block is free.
  void prepare(const std::vector<PlannedRows>& plan);
  // After a step: offers the blocks `seq` has filled to the prefix cache, then releases its
  // window blocks that no later row can see.
  void advance(Sequence& seq);
  // Returns an ended sequence's blocks. Unless it failed, what it computed (its last,
  // partly filled block too) stays in the prefix cache for the next request to reuse.
  void release(Sequence& seq);

  std::uint64_t prefix_hits() const { return prefix_hits_; }
  std::uint64_t cached_prompt_tokens() const { return cached_prompt_tokens_; }

 private:
  int block_size() const { return pools_.layout().block_size(); }
  bool windowed(int kind) const;
  // Positions `seq` may ever hold (prompt + max_tokens - 1, within the context).
  int positions(const Sequence& seq) const;
  bool shares_pending_prefill(const Sequence& seq,
                              const std::vector<std::unique_ptr<Sequence>>& active) const;
  // Blocks of `kind` to be had now: the free ones and, for a windowed kind, the cached ones
  // no sequence uses (the cache keeps them until a sequence needs the room).
  int available(int kind) const;
  // Whether `blocks` more blocks of `kind` (plus `freed_later` that the caller is about to
  // hand back) fit beside the reserves and the chunk spare. For full attention, makes them
  // free by evicting unreferenced cached blocks.
  bool reserve(int kind, int blocks, int freed_later = 0);
  // A free block of `kind`, evicting a cached one if none is free.
  model::BlockId obtain(int kind);
  // Takes `match` (or nothing, when it is empty) as seq's first blocks and reserves the rest;
  // false, changing nothing but evictions, when the pools cannot provide them.
  bool take(Sequence& seq, PrefixCache::Match& match);
  // Sets seq's reserve of `kind` to what its share allows beyond the blocks it holds.
  void settle_reserve(Sequence& seq, int kind);

  model::KvPools& pools_;
  PrefixCache& cache_;
  SchedulerLimits limits_;
  std::vector<int> reserved_;  // per kind: the running sequences' reserves, summed
  std::vector<int> chunk_;     // per kind: chunk_blocks
  std::uint64_t prefix_hits_ = 0;
  std::uint64_t cached_prompt_tokens_ = 0;
};

}  // namespace lmserve::engine
