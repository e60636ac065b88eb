// The generation engine: one thread owns the model and advances every live sequence;
// callers submit requests and receive their text as a stream of events.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampling.h"

namespace lmserve::model {
class Model;
}
namespace lmserve::tokenizer {
class Tokenizer;
}

namespace lmserve::engine {

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* to_string(FinishReason reason);  // "stop", "length", "cancelled", "error"

struct GenerationRequest {
  std::vector<std::int32_t> prompt;  // non-empty, ids in range (callers validate)
  SamplingParams sampling;
  int max_tokens = 100;           // >= 1
  std::vector<std::string> stop;  // text-level stop strings (empty strings are ignored)
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;  // tokens sampled, including a terminating EOS / stop tokens
};

// What a request's sink receives, in order: zero or more kProgress (prefill), zero or more
// kText, then exactly one kFinished or kFailed. Delivered on the engine thread: sinks must
// be quick and must not call back into the engine except RequestHandle::cancel().
struct GenerationEvent {
  enum class Kind { kProgress, kText, kFinished, kFailed };
  Kind kind;
  std::string text;          // kText: visible text (stop strings already removed)
  int prompt_processed = 0;  // kProgress
  int prompt_total = 0;      // kProgress
  FinishReason finish_reason = FinishReason::kStop;  // kFinished
  Usage usage;                                       // kFinished
  std::vector<std::int32_t> completion_ids;          // kFinished: every sampled id, in order
  std::string error;                                 // kFailed: message for the client
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
  int max_sequences = 32;        // sequences decoded concurrently (--decode-concurrency)
  int prefill_step_size = 2048;  // prompt tokens evaluated per step (--prefill-step-size)
  std::vector<std::int32_t> extra_eos_ids;  // added to the model's and tokenizer's EOS set
};

class Engine {
 public:
  // Starts the engine thread. model and tokenizer must outlive the engine.
  Engine(model::Model& model, const tokenizer::Tokenizer& tokenizer, EngineOptions options);
  ~Engine();  // cancels every request (each gets kFinished/kCancelled) and joins the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; events go to `sink`. Never blocks on generation.
  std::shared_ptr<RequestHandle> submit(GenerationRequest request, EventSink sink);

  // The union of EOS ids (model config, generation config, tokenizer incl. GGUF end-of-turn
  // ids, options).
  const std::vector<std::int32_t>& eos_ids() const;
  int context_length() const;
  bool alive() const;  // false if the engine thread died

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace lmserve::engine
