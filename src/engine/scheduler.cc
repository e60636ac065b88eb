#include "engine/scheduler.h"

#include <algorithm>
#include <stdexcept>

namespace lmserve::engine {

namespace {

int blocks_for(int positions, int block_size) { return (positions + block_size - 1) / block_size; }

bool held(const std::vector<model::BlockId>& table, int i) {
  return i >= 0 && i < static_cast<int>(table.size()) &&
         table[static_cast<std::size_t>(i)] != model::kNoBlock;
}

// The most rows from position `start` (at most `limit`) whose blocks of `table` need at most
// `allowed` new ones.
int rows_within(const std::vector<model::BlockId>& table, int start, int allowed, int limit,
                int block_size) {
  int rows = 0;
  for (int block = start / block_size; rows < limit; ++block) {
    if (!held(table, block)) {
      if (allowed == 0) break;
      --allowed;
    }
    rows = (block + 1) * block_size - start;
  }
  return std::min(rows, limit);
}

// The blocks rows [start, start + rows) need that `table` does not hold yet.
int new_blocks(const std::vector<model::BlockId>& table, int start, int rows, int block_size) {
  int n = 0;
  for (int block = start / block_size; block <= (start + rows - 1) / block_size; ++block)
    n += held(table, block) ? 0 : 1;
  return n;
}

}  // namespace

Scheduler::Scheduler(model::KvPools& pools, PrefixCache& cache, SchedulerLimits limits)
    : pools_(pools),
      cache_(cache),
      limits_(limits),
      reserved_(static_cast<std::size_t>(pools.num_kinds()), 0) {
  for (const model::KvKind& kind : pools.layout().kinds)
    chunk_.push_back(chunk_blocks(kind, limits));
}

int Scheduler::sequence_blocks(const model::KvKind& kind, int positions) {
  if (kind.window == 0) return blocks_for(positions, kind.shape.block_size);
  return kind.span_blocks(kind.window, positions);
}

int Scheduler::chunk_blocks(const model::KvKind& kind, const SchedulerLimits& limits) {
  if (kind.window == 0) return 0;
  const int chunk = std::min({limits.prefill_step_size, limits.max_batch_tokens, limits.ctx_size});
  return kind.span_blocks(kind.window - 1 + chunk, limits.ctx_size) -
         kind.span_blocks(kind.window, limits.ctx_size);
}

bool Scheduler::windowed(int kind) const {
  return pools_.layout().kinds[static_cast<std::size_t>(kind)].window > 0;
}

int Scheduler::positions(const Sequence& seq) const {
  const int prompt = seq.prompt_size();
  // The last sampled token is never evaluated, so prompt + max_tokens - 1 positions suffice.
  const int positions =
      std::min(prompt + std::max(seq.request().max_tokens, 1) - 1, limits_.ctx_size);
  return std::max(positions, prompt);
}

int Scheduler::available(int kind) const {
  return pools_[kind].free_blocks() + (windowed(kind) ? cache_.evictable(kind) : 0);
}

bool Scheduler::reserve(int kind, int blocks, int freed_later) {
  const int want = reserved_[static_cast<std::size_t>(kind)] +
                   chunk_[static_cast<std::size_t>(kind)] + blocks - freed_later;
  if (windowed(kind)) return available(kind) >= want;
  model::KvPool& pool = pools_[kind];
  if (pool.free_blocks() < want) cache_.evict(kind, want - pool.free_blocks());
  return pool.free_blocks() >= want;
}

model::BlockId Scheduler::obtain(int kind) {
  model::KvPool& pool = pools_[kind];
  if (pool.free_blocks() == 0) cache_.evict(kind, 1);
  const auto block = pool.allocate();
  if (!block) throw std::logic_error("the scheduler reserved more KV blocks than there are");
  return *block;
}

bool Scheduler::shares_pending_prefill(const Sequence& seq,
                                       const std::vector<std::unique_ptr<Sequence>>& active) const {
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
    const int shared_blocks = common / block_size();
    if (shared_blocks > 0 && other->kv_len() < shared_blocks * block_size()) return true;
  }
  return false;
}

void Scheduler::settle_reserve(Sequence& seq, int kind) {
  const auto k = static_cast<std::size_t>(kind);
  const model::KvKind& spec = pools_.layout().kinds[k];
  const auto& table = seq.blocks()[k];
  const int holding = static_cast<int>(
      std::count_if(table.begin(), table.end(), [](auto b) { return b != model::kNoBlock; }));
  const int reserve = sequence_blocks(spec, positions(seq)) - holding;
  reserved_[k] += reserve - seq.reserved_blocks()[k];
  seq.reserved_blocks()[k] = reserve;
}

bool Scheduler::take(Sequence& seq, PrefixCache::Match& match) {
  const int kinds = pools_.num_kinds();
  const int n = blocks_for(match.tokens, block_size());
  const bool partial = match.tokens % block_size() != 0;
  // A matched block is kept by reference unless it is only partly valid (copy-on-write) or,
  // for a windowed kind, another running sequence holds it too: running sequences never
  // share window blocks, so each one's reserve covers exactly what it will take. Decided
  // once, before evictions can change any count.
  std::vector<std::vector<bool>> kept(static_cast<std::size_t>(kinds));
  const auto& spec = pools_.layout().kinds;
  const int total = positions(seq);
  for (int k = 0; k < kinds; ++k) {
    const auto& blocks = match.blocks[static_cast<std::size_t>(k)];
    int keep = 0, freed_later = 0;
    for (int i = 0; i < n; ++i) {
      const model::BlockId b = blocks[static_cast<std::size_t>(i)];
      // Ours and the cache's, nobody else's.
      const bool only_cached = b != model::kNoBlock && pools_[k].refcount(b) == 2;
      const bool keep_it =
          b != model::kNoBlock && !(partial && i == n - 1) && (!windowed(k) || only_cached);
      kept[static_cast<std::size_t>(k)].push_back(keep_it);
      keep += keep_it ? 1 : 0;
      // A copied window block only the cache holds afterwards is evictable again.
      freed_later += !keep_it && windowed(k) && only_cached ? 1 : 0;
    }
    const int needed = sequence_blocks(spec[static_cast<std::size_t>(k)], total) - keep;
    if (!reserve(k, needed, freed_later)) return false;
  }
  auto& tables = seq.blocks();
  tables.assign(static_cast<std::size_t>(kinds), {});
  seq.reserved_blocks().assign(static_cast<std::size_t>(kinds), 0);
  for (int k = 0; k < kinds; ++k) {
    model::KvPool& pool = pools_[k];
    auto& table = tables[static_cast<std::size_t>(k)];
    for (int i = 0; i < n; ++i) {
      const model::BlockId b =
          match.blocks[static_cast<std::size_t>(k)][static_cast<std::size_t>(i)];
      if (b == model::kNoBlock || kept[static_cast<std::size_t>(k)][static_cast<std::size_t>(i)]) {
        table.push_back(b);
        continue;
      }
      // Copy-on-write: the shared block's first slots are ours, the rest will be overwritten.
      const model::BlockId copy = obtain(k);
      pool.copy(b, copy);
      pool.release(b);
      table.push_back(copy);
    }
    if (windowed(k)) {
      // Later blocks are taken as the rows reach them (the table only grows: reserved now,
      // so that a step allocates nothing).
      table.reserve(static_cast<std::size_t>(blocks_for(total, block_size())));
      settle_reserve(seq, k);
    } else {
      const int needed = sequence_blocks(spec[static_cast<std::size_t>(k)], total);
      while (static_cast<int>(table.size()) < needed) table.push_back(obtain(k));
    }
  }
  return true;
}

bool Scheduler::admit(Sequence& seq, const std::vector<std::unique_ptr<Sequence>>& active) {
  if (shares_pending_prefill(seq, active)) return false;
  // The prompt's last token is always evaluated: its logits choose the first new token.
  PrefixCache::Match match = cache_.match(seq.tokens(), seq.prompt_size() - 1);
  if (!take(seq, match)) {
    // The matched blocks may be the very ones that must be evicted to make room (a pool
    // sized for one context holding the previous answer): admit without reuse instead.
    for (int k = 0; k < pools_.num_kinds(); ++k) {
      for (auto b : match.blocks[static_cast<std::size_t>(k)])
        if (b != model::kNoBlock) pools_[k].release(b);
    }
    if (match.tokens == 0) return false;
    match = {.blocks = std::vector<std::vector<model::BlockId>>(
                 static_cast<std::size_t>(pools_.num_kinds())),
             .tokens = 0};
    if (!take(seq, match)) return false;
  }
  seq.offered_blocks() = match.tokens / block_size();
  if (match.tokens > 0) ++prefix_hits_;
  cached_prompt_tokens_ += static_cast<std::uint64_t>(match.tokens);
  seq.admit(match.tokens);
  return true;
}

std::vector<PlannedRows> Scheduler::plan(
    const std::vector<std::unique_ptr<Sequence>>& active) const {
  const int kinds = pools_.num_kinds();
  // What prefill chunks may take beyond their reserves (at least chunk_blocks).
  std::vector<int> spare(static_cast<std::size_t>(kinds), 0);
  for (int k = 0; k < kinds; ++k) {
    if (windowed(k))
      spare[static_cast<std::size_t>(k)] = available(k) - reserved_[static_cast<std::size_t>(k)];
  }
  std::vector<PlannedRows> rows;
  int budget = limits_.max_batch_tokens;
  // A decode row takes at most one window block per kind, from its own reserve.
  for (const auto& seq : active) {
    if (seq->state() != Sequence::State::kDecoding) continue;
    rows.push_back({.sequence = seq.get(), .n_rows = 1, .want_logits = true});
    --budget;
  }
  for (const auto& seq : active) {
    if (budget <= 0) break;
    if (seq->state() != Sequence::State::kPrefilling) continue;
    const int rest = seq->pending_rows();
    int n = std::min({rest, limits_.prefill_step_size, budget});
    for (int k = 0; k < kinds; ++k) {
      const auto kk = static_cast<std::size_t>(k);
      if (windowed(k)) {
        n = rows_within(seq->blocks()[kk], seq->kv_len(), seq->reserved_blocks()[kk] + spare[kk], n,
                        block_size());
      }
    }
    if (n <= 0) continue;
    for (int k = 0; k < kinds; ++k) {
      const auto kk = static_cast<std::size_t>(k);
      if (!windowed(k)) continue;
      const int extra = new_blocks(seq->blocks()[kk], seq->kv_len(), n, block_size()) -
                        seq->reserved_blocks()[kk];
      spare[kk] -= std::max(0, extra);
    }
    rows.push_back({.sequence = seq.get(), .n_rows = n, .want_logits = n == rest});
    budget -= n;
  }
  return rows;
}

void Scheduler::prepare(const std::vector<PlannedRows>& plan) {
  for (const PlannedRows& p : plan) {
    Sequence& seq = *p.sequence;
    const int first = seq.kv_len() / block_size();
    const int last = (seq.kv_len() + p.n_rows - 1) / block_size();
    for (int k = 0; k < pools_.num_kinds(); ++k) {
      if (!windowed(k)) continue;  // held whole since admission
      const auto kk = static_cast<std::size_t>(k);
      auto& table = seq.blocks()[kk];
      if (static_cast<int>(table.size()) <= last)
        table.resize(static_cast<std::size_t>(last) + 1, model::kNoBlock);
      for (int i = first; i <= last; ++i) {
        model::BlockId& entry = table[static_cast<std::size_t>(i)];
        if (entry != model::kNoBlock) continue;
        entry = obtain(k);
        if (seq.reserved_blocks()[kk] > 0) {
          --seq.reserved_blocks()[kk];
          --reserved_[kk];
        }
      }
    }
  }
}

void Scheduler::advance(Sequence& seq) {
  const int full = seq.kv_len() / block_size();
  if (full > seq.offered_blocks()) {
    cache_.insert(std::span(seq.tokens()).first(static_cast<std::size_t>(full * block_size())),
                  seq.blocks());
    seq.offered_blocks() = full;
  }
  for (int k = 0; k < pools_.num_kinds(); ++k) {
    if (!windowed(k)) continue;
    const auto kk = static_cast<std::size_t>(k);
    auto& table = seq.blocks()[kk];
    // The blocks still held below the window are the run just under its first block.
    const int first = pools_.layout().kinds[kk].first_visible_block(seq.kv_len());
    for (int i = std::min(first, static_cast<int>(table.size())) - 1; held(table, i); --i) {
      pools_[k].release(table[static_cast<std::size_t>(i)]);
      table[static_cast<std::size_t>(i)] = model::kNoBlock;
    }
    settle_reserve(seq, k);
  }
}

void Scheduler::release(Sequence& seq) {
  const int used = blocks_for(seq.kv_len(), block_size());
  if (!seq.failed() && used > seq.offered_blocks()) {
    cache_.insert(std::span(seq.tokens()).first(static_cast<std::size_t>(seq.kv_len())),
                  seq.blocks());
  }
  for (int k = 0; k < static_cast<int>(seq.blocks().size()); ++k) {
    const auto kk = static_cast<std::size_t>(k);
    for (auto b : seq.blocks()[kk])
      if (b != model::kNoBlock) pools_[k].release(b);
    reserved_[kk] -= seq.reserved_blocks()[kk];
  }
  seq.blocks().clear();
  seq.reserved_blocks().clear();
}

}  // namespace lmserve::engine
