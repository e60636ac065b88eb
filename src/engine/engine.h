// The generation engine: one thread owns the model, the KV pool and the prefix cache and
// advances every live sequence with one batched forward pass per step; callers submit
// requests and receive their text as a stream of events.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/sampling.h"
#include "engine/stop_matcher.h"
#include "model/kv_pool.h"

namespace lmserve::model {
class Model;
}
namespace lmserve::tokenizer {
class Tokenizer;
}
namespace lmserve::grammar {
struct Grammar;
}

namespace lmserve::engine {

enum class FinishReason { kStop, kLength, kCancelled, kError };
// "stop", "length", "cancelled", "error". Inline: the HTTP layer names reasons without
// linking the engine.
inline const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

// Bounds a think block: once `budget` tokens were sampled inside one (after `start_id`, or
// from the first token when the prompt left one `open`), `end_id` is the only token allowed.
struct ThinkBudget {
  std::int32_t start_id = -1;
  std::int32_t end_id = -1;
  int budget = 0;
  bool open = false;
};

struct GenerationRequest {
  std::vector<std::int32_t> prompt;  // non-empty, ids in range (callers validate)
  SamplingParams sampling;
  int max_tokens = 100;                      // >= 1
  std::vector<std::string> stop;             // text-level stop strings (empty strings are ignored)
  StopExemptions stop_exemptions;            // output spans they do not apply to (chat: thinking)
  std::vector<std::int32_t> stop_token_ids;  // end the sequence like EOS (and are not shown)
  bool ignore_eos = false;  // EOS ids are ordinary tokens (stop_token_ids still stop)
  int min_tokens = 0;       // EOS and stop_token_ids cannot be sampled before this many tokens
  int logprobs = -1;        // >= 0: report each token's logprob and this many alternatives
  // When set, only tokens that continue a sentence of this grammar are sampled, EOS only
  // where the text so far is a complete sentence, and the sequence stops once nothing more
  // can follow.
  std::shared_ptr<const grammar::Grammar> grammar;
  std::optional<ThinkBudget> think_budget;
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;  // tokens sampled, including a terminating EOS / stop tokens
  int cached_tokens = 0;      // prompt tokens whose KV came from the prefix cache
};

// Where a request's time went, in milliseconds (kFinished).
struct Timings {
  double queue_ms = 0;        // submitted -> admitted (blocks reserved, prefill may start)
  double first_token_ms = 0;  // submitted -> first sampled token (0 if none)
  double total_ms = 0;        // submitted -> finished
  double max_gap_ms = 0;      // longest wait between two consecutive sampled tokens
};

// What a request's sink receives, in order: zero or more kProgress (prefill), zero or more
// kText, then exactly one kFinished or kFailed. Delivered on the engine thread: sinks must
// be quick and must not call back into the engine except RequestHandle::cancel().
struct GenerationEvent {
  enum class Kind { kProgress, kText, kFinished, kFailed };
  Kind kind;
  std::string text;  // kText: visible text (stop strings already removed)
  // kText and kFinished, when requested: one entry per sampled token (a terminating EOS or
  // stop token excluded), attached to the first event after the token was sampled.
  std::vector<TokenLogprob> logprobs;
  int prompt_processed = 0;                          // kProgress
  int prompt_total = 0;                              // kProgress
  FinishReason finish_reason = FinishReason::kStop;  // kFinished
  Usage usage;                                       // kFinished
  Timings timings;                                   // kFinished
  std::vector<std::int32_t> completion_ids;          // kFinished: every sampled id, in order
  std::string stop_sequence;  // kFinished: the stop string that ended it ("" if none did)
  std::string error;          // kFailed: message for the client
};

using EventSink = std::function<void(const GenerationEvent&)>;

// A submitted request. cancel() is thread-safe; the engine frees the sequence within one
// step and then delivers kFinished with FinishReason::kCancelled.
class RequestHandle {
 public:
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct EngineOptions {
  int max_sequences = 8;        // sequences in flight at once (--parallel)
  int prefill_step_size = 512;  // prompt tokens of one sequence per step (--prefill-step-size)
  int max_batch_tokens = 2048;  // rows of one forward step (--max-batch-tokens)
  int max_queue = 256;          // requests waiting for a slot; beyond it submit() refuses
  int ctx_size = 0;             // positions per sequence; 0 = the model's, capped at 4096
  model::KvType kv_type = model::KvType::kF16;
  // Pool bytes, every kind's; 0 = enough for max_sequences full contexts (a windowed kind
  // needs only its window per sequence).
  std::size_t kv_memory = 0;
  int block_size = 16;                      // positions per KV block
  std::vector<std::int32_t> extra_eos_ids;  // added to the model's and tokenizer's EOS set
  // An idle engine that receives a request waits this fraction of its last step (at most
  // kMaxAdmissionWait) for more before it starts (--admission-wait; 0 = start at once), so
  // requests sent together are prefilled in one step: otherwise the ones that arrive a few
  // milliseconds late are prefilled in a second step, which stalls the first one's decode.
  double admission_wait = 0.25;
  // Test hook (LMSERVE_TEST_STALL_STEP_MS): the first step with work sleeps this long, so a
  // test can watch the watchdog see a stuck step. 0 = off.
  int test_stall_step_ms = 0;
  // Test hook (LMSERVE_TEST_FAIL_STEP): the first step with work throws, as an internal fault
  // would, so a test can watch the server lose its engine thread.
  bool test_fail_step = false;
};

// Thrown by submit() when max_queue requests are already waiting (the server answers 429).
class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A snapshot of the engine for /metrics and logs. Counters only grow.
struct EngineStats {
  int running = 0;           // admitted sequences (prefilling or decoding)
  int queued = 0;            // waiting for admission
  int kv_blocks_total = 0;   // every KV cache kind's
  int kv_blocks_free = 0;    // every kind's
  int kv_blocks_cached = 0;  // held by the prefix cache, every kind's
  std::uint64_t prompt_tokens = 0;
  std::uint64_t cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
  std::uint64_t generated_tokens = 0;
  std::uint64_t prefix_cache_hits = 0;  // admissions that reused at least one token
  std::uint64_t steps = 0;              // forward passes
  // Weights copied into the CPU target's faster layout so far, and whether copies remain
  // (the server repacks in the background: until then steps read the file's layout).
  std::size_t weights_repacked_bytes = 0;
  bool weights_repacking = false;
};

// One KV cache kind's pool (model::KvKind): the full-attention layers, or the sliding-window
// layers of one window.
struct KvKindMemory {
  int window = 0;  // 0: full attention
  int layers = 0;
  int blocks = 0;
  std::size_t bytes = 0;
  int sequence_blocks = 0;  // the most one sequence of ctx_size positions holds between steps
  int chunk_blocks = 0;     // kept free for a prefill chunk's window (Scheduler::chunk_blocks)
};

// The memory the engine set aside at start-up.
struct EngineMemory {
  std::size_t kv_pool_bytes = 0;  // every kind's
  std::size_t workspace_bytes = 0;
  int kv_blocks = 0;  // every kind's
  int ctx_size = 0;
  std::vector<KvKindMemory> kv_kinds;  // full attention first, then windows ascending
};

class Engine {
 public:
  // Starts the engine thread. model and tokenizer must outlive the engine.
  Engine(model::Model& model, const tokenizer::Tokenizer& tokenizer, EngineOptions options);
  ~Engine();  // cancels every request (each gets kFinished/kCancelled) and joins the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; events go to `sink`. Never blocks on generation. Throws QueueFull
  // when max_queue requests are already waiting (nothing is queued, the sink is not called).
  std::shared_ptr<RequestHandle> submit(GenerationRequest request, EventSink sink);

  // The union of EOS ids (model config, generation config, tokenizer incl. GGUF end-of-turn
  // ids, options).
  const std::vector<std::int32_t>& eos_ids() const;
  int context_length() const;  // positions per sequence (ctx_size)
  bool alive() const;          // false if the engine thread died
  // How long the engine thread has been in its current step (admission, forward pass,
  // sampling, retirement); zero between steps. Lock-free, so that a watchdog gets an answer
  // even from a stuck engine thread.
  std::chrono::steady_clock::duration step_running_for() const;
  EngineStats stats() const;  // thread-safe
  const EngineMemory& memory() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace lmserve::engine
