#include "engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <fstream>
#include <mutex>
#include <thread>
#include <utility>

#include "engine/prefix_cache.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "grammar/token_trie.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::engine {

namespace {

constexpr int kDefaultContextCap = 4096;
// How often an idle engine takes the model's finished background weight copies.
constexpr auto kRepackPoll = std::chrono::milliseconds(5);
// The longest an idle engine waits for requests sent together (EngineOptions::admission_wait).
constexpr auto kMaxAdmissionWait = std::chrono::milliseconds(50);

// MemAvailable from /proc/meminfo in bytes, or 0 when unknown.
std::size_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::size_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

std::string mib(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

int resolve_ctx_size(const EngineOptions& o, const model::ModelConfig& c) {
  if (o.ctx_size < 0 || o.ctx_size > c.max_position_embeddings) {
    throw std::invalid_argument("--ctx-size " + std::to_string(o.ctx_size) + " is outside [1, " +
                                std::to_string(c.max_position_embeddings) +
                                "] (the model's context)");
  }
  return o.ctx_size > 0 ? o.ctx_size : std::min(c.max_position_embeddings, kDefaultContextCap);
}

SchedulerLimits scheduler_limits(const EngineOptions& o, int ctx_size) {
  return {.max_sequences = o.max_sequences,
          .max_batch_tokens = o.max_batch_tokens,
          .prefill_step_size = o.prefill_step_size,
          .ctx_size = ctx_size};
}

// Blocks per kind: each kind holds max_sequences sequences' share of it plus a prefill
// chunk's spare; --kv-memory is split between the kinds in proportion to one sequence's
// bytes of each (with one kind: every block it can pay for).
std::vector<int> resolve_kv_blocks(const EngineOptions& o, const model::KvLayout& layout,
                                   const SchedulerLimits& limits) {
  std::vector<int> per_sequence, chunk, blocks;
  std::size_t sequence_bytes = 0, chunk_bytes = 0;
  for (const model::KvKind& kind : layout.kinds) {
    per_sequence.push_back(Scheduler::sequence_blocks(kind, limits.ctx_size));
    chunk.push_back(Scheduler::chunk_blocks(kind, limits));
    sequence_bytes += static_cast<std::size_t>(per_sequence.back()) * kind.shape.bytes_per_block();
    chunk_bytes += static_cast<std::size_t>(chunk.back()) * kind.shape.bytes_per_block();
  }
  if (o.kv_memory != 0 && o.kv_memory < sequence_bytes + chunk_bytes) {
    throw std::invalid_argument("--kv-memory " + mib(o.kv_memory) + " cannot hold one context of " +
                                std::to_string(limits.ctx_size) + " positions (needs " +
                                mib(sequence_bytes + chunk_bytes) + ")");
  }
  for (std::size_t k = 0; k < layout.kinds.size(); ++k) {
    if (o.kv_memory == 0) {
      blocks.push_back(per_sequence[k] * o.max_sequences + chunk[k]);
      continue;
    }
    using Wide = unsigned __int128;  // bytes x blocks overflows 64 bits
    const auto share = static_cast<std::size_t>(static_cast<Wide>(o.kv_memory - chunk_bytes) *
                                                static_cast<Wide>(per_sequence[k]) /
                                                static_cast<Wide>(sequence_bytes));
    blocks.push_back(static_cast<int>(
        std::min<std::size_t>(share + static_cast<std::size_t>(chunk[k]), 1u << 30)));
  }
  return blocks;
}

model::KvPools make_pools(const EngineOptions& o, const model::Model& m, int ctx_size) {
  model::KvLayout layout = m.kv_layout(o.kv_type, o.block_size, ctx_size);
  const std::vector<int> blocks = resolve_kv_blocks(o, layout, scheduler_limits(o, ctx_size));
  return model::KvPools(std::move(layout), blocks);
}

}  // namespace

struct Engine::State {
  State(model::Model& m, const tokenizer::Tokenizer& t, EngineOptions o)
      : model(m),
        tokenizer(t),
        options(normalized(std::move(o))),
        ctx_size(resolve_ctx_size(options, m.config())),
        pools(make_pools(options, m, ctx_size)),
        cache(pools),
        scheduler(pools, cache, scheduler_limits(options, ctx_size)) {
    eos = model.config().eos_token_ids;
    // The tokenizer's EOS plus, for GGUF vocabularies, the end-of-turn ids llama.cpp stops
    // at: a GGUF has no generation_config.json to list them.
    for (auto id : tokenizer.end_of_generation_ids()) eos.push_back(id);
    eos.insert(eos.end(), options.extra_eos_ids.begin(), options.extra_eos_ids.end());
    std::sort(eos.begin(), eos.end());
    eos.erase(std::unique(eos.begin(), eos.end()), eos.end());
    model.reserve(options.max_batch_tokens, options.max_sequences);
    logits.resize(static_cast<std::size_t>(options.max_sequences) *
                  static_cast<std::size_t>(model.config().vocab_size));
    memory = {.kv_pool_bytes = pools.bytes(),
              .workspace_bytes = model.workspace_bytes() + logits.size() * sizeof(float),
              .kv_blocks = 0,
              .ctx_size = ctx_size,
              .kv_kinds = {}};
    const SchedulerLimits limits = scheduler_limits(options, ctx_size);
    for (int k = 0; k < pools.num_kinds(); ++k) {
      const model::KvKind& kind = pools.layout().kinds[static_cast<std::size_t>(k)];
      memory.kv_blocks += pools[k].num_blocks();
      memory.kv_kinds.push_back({.window = kind.window,
                                 .layers = kind.shape.num_layers,
                                 .blocks = pools[k].num_blocks(),
                                 .bytes = pools[k].bytes(),
                                 .sequence_blocks = Scheduler::sequence_blocks(kind, ctx_size),
                                 .chunk_blocks = Scheduler::chunk_blocks(kind, limits)});
    }
    const std::size_t needed = memory.kv_pool_bytes + memory.workspace_bytes;
    const std::size_t available = available_memory();
    if (available != 0 && needed > available) {
      throw std::invalid_argument(
          "the KV pool (" + mib(memory.kv_pool_bytes) + ": " +
          std::to_string(options.max_sequences) + " sequences x " + std::to_string(ctx_size) +
          " positions, " + model::to_string(options.kv_type) + ") and workspace (" +
          mib(memory.workspace_bytes) + ") need more than the " + mib(available) +
          " of memory available; lower --parallel, --ctx-size or --kv-memory");
    }
  }

  static EngineOptions normalized(EngineOptions o) {
    o.max_sequences = std::max(1, o.max_sequences);
    o.prefill_step_size = std::max(1, o.prefill_step_size);
    // Every decoding sequence needs a row in each step, and prefill at least one more.
    o.max_batch_tokens = std::max(o.max_batch_tokens, o.max_sequences + 1);
    o.max_queue = std::max(0, o.max_queue);
    o.block_size = std::clamp(o.block_size, 1, 256);
    o.admission_wait = std::clamp(o.admission_wait, 0.0, 1.0);
    return o;
  }

  // `repacking`: whether weight copies remain to be adopted.
  void run(bool repacking);
  // Swaps in the weight copies the model finished and publishes the progress; true while
  // copies remain.
  bool adopt_repacked();
  void step();
  // Copies the running count and KV pool occupancy into the counters stats() reads.
  void publish_occupancy();
  void admit_waiting();
  void drop_cancelled();
  void retire_done();
  bool has_work() const { return !active.empty() || !pending.empty(); }
  std::chrono::steady_clock::duration admission_wait() const {
    return std::min<std::chrono::steady_clock::duration>(
        kMaxAdmissionWait, std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               last_step * options.admission_wait));
  }

  model::Model& model;
  const tokenizer::Tokenizer& tokenizer;
  EngineOptions options;
  int ctx_size;
  model::KvPools pools;
  PrefixCache cache;
  Scheduler scheduler;
  std::vector<std::int32_t> eos;
  std::vector<float> logits;
  EngineMemory memory;
  // Reused each step, so that a step allocates nothing once warm.
  std::vector<std::int32_t> batch_tokens;
  std::vector<model::BatchSequence> batch_sequences;

  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Sequence>> pending;  // guarded by mutex; FIFO
  bool stopping = false;                          // guarded by mutex
  EngineStats counters;                           // guarded by mutex
  std::atomic<bool> alive{true};
  // steady_clock ticks when the current step began; 0 between steps (the clock counts from
  // boot, so a real start is never 0).
  std::atomic<std::chrono::steady_clock::rep> step_started{0};
  std::vector<std::unique_ptr<Sequence>> active;  // engine thread only
  std::chrono::steady_clock::duration last_step{};  // engine thread only
  std::thread thread;

  // Every token's bytes in a trie, for grammar-constrained requests: built once, on the
  // first such request (150k tokens take too long to index per request).
  const grammar::TokenTrie& token_trie() {
    std::call_once(trie_built, [this] {
      std::vector<std::string> bytes(static_cast<std::size_t>(tokenizer.vocab_size()));
      for (int id = 0; id < tokenizer.vocab_size(); ++id) {
        // Special tokens are markup, never part of constrained text (EOS is decided apart).
        if (!tokenizer.is_special(id))
          bytes[static_cast<std::size_t>(id)] = tokenizer.token_bytes(id);
      }
      trie = std::make_unique<grammar::TokenTrie>(bytes);
    });
    return *trie;
  }
  std::once_flag trie_built;
  std::unique_ptr<grammar::TokenTrie> trie;
};

Engine::Engine(model::Model& model, const tokenizer::Tokenizer& tokenizer, EngineOptions options)
    : state_(std::make_unique<State>(model, tokenizer, std::move(options))) {
  state_->publish_occupancy();  // stats() shows the empty pool before the first request
  // And the repacking state: nothing computes yet, so the copies done so far may be swapped in
  // from here.
  const bool repacking = state_->adopt_repacked();
  state_->thread = std::thread([s = state_.get(), repacking] { s->run(repacking); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

std::shared_ptr<RequestHandle> Engine::submit(GenerationRequest request, EventSink sink) {
  const grammar::TokenTrie* trie = request.grammar ? &state_->token_trie() : nullptr;
  auto seq =
      std::make_unique<Sequence>(std::move(request), std::move(sink), state_->tokenizer, trie);
  auto handle = seq->handle();
  const int vocab = state_->model.config().vocab_size;
  const auto& prompt = seq->request().prompt;
  if (prompt.empty() || std::any_of(prompt.begin(), prompt.end(),
                                    [vocab](std::int32_t id) { return id < 0 || id >= vocab; })) {
    seq->fail("the prompt is empty or holds a token id outside the vocabulary");
    return handle;
  }
  if (static_cast<int>(prompt.size()) >= state_->ctx_size) {
    seq->fail("the prompt (" + std::to_string(prompt.size()) +
              " tokens) does not fit the context of " + std::to_string(state_->ctx_size));
    return handle;
  }
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping || !state_->alive) {
      seq->fail("the engine is shutting down");
      return handle;
    }
    if (static_cast<int>(state_->pending.size()) >= state_->options.max_queue) {
      throw QueueFull(std::to_string(state_->pending.size()) +
                      " requests are already waiting for a slot");
    }
    state_->pending.push_back(std::move(seq));
  }
  state_->wake.notify_one();
  return handle;
}

const std::vector<std::int32_t>& Engine::eos_ids() const { return state_->eos; }
int Engine::context_length() const { return state_->ctx_size; }
bool Engine::alive() const { return state_->alive; }

std::chrono::steady_clock::duration Engine::step_running_for() const {
  using Clock = std::chrono::steady_clock;
  const Clock::rep started = state_->step_started.load(std::memory_order_relaxed);
  if (started == 0) return Clock::duration::zero();
  return Clock::now() - Clock::time_point(Clock::duration(started));
}
const EngineMemory& Engine::memory() const { return state_->memory; }

EngineStats Engine::stats() const {
  std::lock_guard lock(state_->mutex);
  EngineStats s = state_->counters;
  s.queued = static_cast<int>(state_->pending.size());
  return s;
}

bool Engine::State::adopt_repacked() {
  const bool repacking = model.adopt_repacked();
  std::lock_guard lock(mutex);
  counters.weights_repacking = repacking;
  counters.weights_repacked_bytes = model.repacked_bytes();
  return repacking;
}

void Engine::State::run(bool repacking) {
  try {
    // While the model copies weights into its faster layout in the background, an idle engine
    // looks in now and then to swap the finished copies in.
    while (true) {
      bool idle = false;
      {
        std::unique_lock lock(mutex);
        const auto ready = [&] { return stopping || has_work(); };
        if (repacking) {
          wake.wait_for(lock, kRepackPoll, ready);
        } else {
          wake.wait(lock, ready);
        }
        if (stopping) break;
        idle = !has_work();
        // Nothing running: the coming step starts the engine up, and requests sent together
        // with this one get a moment to arrive (EngineOptions::admission_wait).
        if (!idle && active.empty()) {
          wake.wait_for(lock, admission_wait(), [&] { return stopping; });
          if (stopping) break;
        }
      }
      if (repacking) repacking = adopt_repacked();
      if (idle) continue;
      const auto step_begin = std::chrono::steady_clock::now();
      step_started.store(step_begin.time_since_epoch().count(), std::memory_order_relaxed);
      drop_cancelled();
      admit_waiting();
      if (options.test_stall_step_ms > 0) {
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::exchange(options.test_stall_step_ms, 0)));
      }
      if (options.test_fail_step) throw std::runtime_error("test hook: the engine step failed");
      step();
      last_step = std::chrono::steady_clock::now() - step_begin;
      retire_done();
      step_started.store(0, std::memory_order_relaxed);
    }
  } catch (...) {
    alive = false;
  }
  // Shutting down (or dead): every request still known gets its terminal event.
  std::lock_guard lock(mutex);
  for (auto& seq : active) seq->finish(FinishReason::kCancelled);
  for (auto& seq : pending) seq->finish(FinishReason::kCancelled);
  for (auto& seq : active) scheduler.release(*seq);
  active.clear();
  pending.clear();
}

void Engine::State::drop_cancelled() {
  std::vector<std::unique_ptr<Sequence>> cancelled;
  {
    std::lock_guard lock(mutex);
    for (auto it = pending.begin(); it != pending.end();) {
      if ((*it)->handle()->cancelled()) {
        cancelled.push_back(std::move(*it));
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& seq : cancelled) seq->finish(FinishReason::kCancelled);
  for (auto& seq : active) {
    if (seq->handle()->cancelled()) seq->finish(FinishReason::kCancelled);
  }
  retire_done();
}

void Engine::State::admit_waiting() {
  // Arrival order: the head of the queue waits for blocks rather than being overtaken.
  while (static_cast<int>(active.size()) < options.max_sequences) {
    Sequence* head = nullptr;
    {
      std::lock_guard lock(mutex);
      if (pending.empty()) return;
      head = pending.front().get();  // only this thread removes elements
    }
    if (!scheduler.admit(*head, active)) return;
    std::lock_guard lock(mutex);
    active.push_back(std::move(pending.front()));
    pending.pop_front();
    counters.prompt_tokens += static_cast<std::uint64_t>(head->prompt_size());
    counters.cached_prompt_tokens = scheduler.cached_prompt_tokens();
    counters.prefix_cache_hits = scheduler.prefix_hits();
  }
}

void Engine::State::step() {
  const std::vector<PlannedRows> plan = scheduler.plan(active);
  if (plan.empty()) return;
  int logit_rows = 0;
  for (const PlannedRows& p : plan) logit_rows += p.want_logits ? 1 : 0;
  const std::size_t vocab = static_cast<std::size_t>(model.config().vocab_size);
  const std::span<float> out(logits.data(), static_cast<std::size_t>(logit_rows) * vocab);
  try {
    scheduler.prepare(plan);
    batch_tokens.clear();
    batch_sequences.clear();
    for (const PlannedRows& p : plan) {
      Sequence& seq = *p.sequence;
      const auto& tokens = seq.tokens();
      batch_tokens.insert(batch_tokens.end(), tokens.begin() + seq.kv_len(),
                          tokens.begin() + seq.kv_len() + p.n_rows);
      batch_sequences.push_back({.n_rows = p.n_rows,
                                 .start_pos = seq.kv_len(),
                                 .blocks = seq.blocks(),
                                 .want_logits = p.want_logits});
    }
    model.forward({.tokens = batch_tokens, .sequences = batch_sequences}, pools, out);
    // Counted before its tokens are delivered, as they are (below).
    std::lock_guard lock(mutex);
    ++counters.steps;
  } catch (const std::exception& e) {
    // A step that cannot run fails the requests in it; the engine itself keeps serving.
    for (const PlannedRows& p : plan) p.sequence->fail(e.what());
    return;
  }
  std::size_t row = 0;
  for (const PlannedRows& p : plan) {
    Sequence& seq = *p.sequence;
    seq.advance_kv(p.n_rows);
    scheduler.advance(seq);
    if (!p.want_logits) {
      seq.report_progress();
      continue;
    }
    if (seq.state() == Sequence::State::kPrefilling) seq.report_progress();
    std::span<float> row_logits(logits.data() + row * vocab, vocab);
    ++row;
    try {
      const std::int32_t token = seq.sample(row_logits, eos);
      {
        // Counted before accept_token delivers it: a client that reads /metrics right after
        // its answer sees every token of it.
        std::lock_guard lock(mutex);
        ++counters.generated_tokens;
      }
      seq.accept_token(token, eos, ctx_size);
    } catch (const std::exception& e) {
      seq.fail(e.what());
    }
  }
}

void Engine::State::retire_done() {
  for (auto& seq : active) {
    if (seq->done()) scheduler.release(*seq);
  }
  std::erase_if(active, [](const auto& seq) { return seq->done(); });
  publish_occupancy();
}

void Engine::State::publish_occupancy() {
  std::lock_guard lock(mutex);
  counters.running = static_cast<int>(active.size());
  counters.kv_blocks_total = 0;
  counters.kv_blocks_free = 0;
  for (int k = 0; k < pools.num_kinds(); ++k) {
    counters.kv_blocks_total += pools[k].num_blocks();
    counters.kv_blocks_free += pools[k].free_blocks();
  }
  counters.kv_blocks_cached = cache.cached_blocks();
}

}  // namespace lmserve::engine
