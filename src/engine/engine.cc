#include "engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "engine/stop_matcher.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::engine {

const char* to_string(FinishReason reason) {
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

namespace {

// One live request: its cache, sampler and the text pipeline ids -> detokenizer -> stops.
struct Sequence {
  Sequence(GenerationRequest req, EventSink s, const tokenizer::Tokenizer& tokenizer)
      : request(std::move(req)),
        sink(std::move(s)),
        handle(std::make_shared<RequestHandle>()),
        sampler(request.sampling),
        // Text equals transformers' decode of the completion (§4.4): special tokens shown,
        // clean-up of tokenization spaces as the tokenizer's config says.
        detokenizer(tokenizer, /*skip_special_tokens=*/false,
                    tokenizer.clean_up_tokenization_spaces()),
        stops(request.stop),
        tokens(request.prompt) {}

  GenerationRequest request;
  EventSink sink;
  std::shared_ptr<RequestHandle> handle;
  Sampler sampler;
  tokenizer::StreamingDetokenizer detokenizer;
  StopMatcher stops;
  std::unique_ptr<model::KvCache> cache;
  std::vector<std::int32_t> tokens;  // prompt + sampled so far
  std::size_t prefilled = 0;         // prompt tokens already evaluated
  int generated = 0;
  bool done = false;
};

}  // namespace

struct Engine::State {
  State(model::Model& m, const tokenizer::Tokenizer& t, EngineOptions o)
      : model(m), tokenizer(t), options(std::move(o)) {
    eos = model.config().eos_token_ids;
    // The tokenizer's EOS plus, for GGUF vocabularies, the end-of-turn ids llama.cpp stops
    // at: a GGUF has no generation_config.json to list them.
    for (auto id : tokenizer.end_of_generation_ids()) eos.push_back(id);
    eos.insert(eos.end(), options.extra_eos_ids.begin(), options.extra_eos_ids.end());
    std::sort(eos.begin(), eos.end());
    eos.erase(std::unique(eos.begin(), eos.end()), eos.end());
    options.max_sequences = std::max(1, options.max_sequences);
    options.prefill_step_size = std::max(1, options.prefill_step_size);
    logits.resize(static_cast<std::size_t>(model.config().vocab_size));
  }

  void run();
  void advance(Sequence& seq);
  void accept_token(Sequence& seq, std::int32_t token);
  void emit_text(Sequence& seq, const std::string& text);
  void finish(Sequence& seq, FinishReason reason);
  void fail(Sequence& seq, const std::string& message);
  bool is_eos(std::int32_t id) const { return std::binary_search(eos.begin(), eos.end(), id); }

  model::Model& model;
  const tokenizer::Tokenizer& tokenizer;
  EngineOptions options;
  std::vector<std::int32_t> eos;
  std::vector<float> logits;

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Sequence>> pending;  // guarded by mutex
  bool stopping = false;                          // guarded by mutex
  std::atomic<bool> alive{true};
  std::vector<std::unique_ptr<Sequence>> active;  // engine thread only
  std::thread thread;
};

Engine::Engine(model::Model& model, const tokenizer::Tokenizer& tokenizer, EngineOptions options)
    : state_(std::make_unique<State>(model, tokenizer, std::move(options))) {
  state_->thread = std::thread([s = state_.get()] { s->run(); });
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
  auto seq = std::make_unique<Sequence>(std::move(request), std::move(sink), state_->tokenizer);
  auto handle = seq->handle;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping || !state_->alive) {
      seq->sink({.kind = GenerationEvent::Kind::kFailed, .error = "the engine is shutting down"});
      return handle;
    }
    state_->pending.push_back(std::move(seq));
  }
  state_->wake.notify_one();
  return handle;
}

const std::vector<std::int32_t>& Engine::eos_ids() const { return state_->eos; }
int Engine::context_length() const { return state_->model.config().max_position_embeddings; }
bool Engine::alive() const { return state_->alive; }

void Engine::State::run() {
  try {
    while (true) {
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stopping || !pending.empty() || !active.empty(); });
        if (stopping) break;
        while (!pending.empty() &&
               active.size() < static_cast<std::size_t>(options.max_sequences)) {
          active.push_back(std::move(pending.front()));
          pending.pop_front();
        }
      }
      // Round-robin: every live sequence advances by one step (a prefill chunk or a token).
      for (auto& seq : active) {
        if (seq->handle->cancelled()) {
          finish(*seq, FinishReason::kCancelled);
          continue;
        }
        try {
          advance(*seq);
        } catch (const std::exception& e) {
          fail(*seq, e.what());
        }
      }
      std::erase_if(active, [](const auto& seq) { return seq->done; });
    }
  } catch (...) {
    alive = false;
  }
  // Shutting down (or dead): every request still known gets its terminal event.
  std::lock_guard lock(mutex);
  for (auto& seq : active) finish(*seq, FinishReason::kCancelled);
  for (auto& seq : pending) finish(*seq, FinishReason::kCancelled);
  active.clear();
  pending.clear();
}

void Engine::State::advance(Sequence& seq) {
  const auto& prompt = seq.request.prompt;
  const int n_ctx = model.config().max_position_embeddings;
  if (seq.cache == nullptr) {
    if (prompt.empty()) throw std::runtime_error("empty prompt");
    if (static_cast<int>(prompt.size()) >= n_ctx) {
      throw std::runtime_error("the prompt does not fit the context length");
    }
    const int capacity = static_cast<int>(
        std::min<std::size_t>(prompt.size() + static_cast<std::size_t>(seq.request.max_tokens),
                              static_cast<std::size_t>(n_ctx)));
    seq.cache = model.new_cache(capacity);
    seq.sink({.kind = GenerationEvent::Kind::kProgress,
              .prompt_processed = 0,
              .prompt_total = static_cast<int>(prompt.size())});
  }
  if (seq.prefilled < prompt.size()) {
    const std::size_t n = std::min(prompt.size() - seq.prefilled,
                                   static_cast<std::size_t>(options.prefill_step_size));
    model.forward(std::span(prompt).subspan(seq.prefilled, n), *seq.cache, logits);
    seq.prefilled += n;
    seq.sink({.kind = GenerationEvent::Kind::kProgress,
              .prompt_processed = static_cast<int>(seq.prefilled),
              .prompt_total = static_cast<int>(prompt.size())});
    if (seq.prefilled < prompt.size()) return;
  } else {
    // The last sampled token has not been fed to the model yet.
    model.forward(std::span(seq.tokens).last(1), *seq.cache, logits);
  }
  accept_token(seq, seq.sampler.sample(logits, seq.tokens));
}

void Engine::State::accept_token(Sequence& seq, std::int32_t token) {
  seq.tokens.push_back(token);
  ++seq.generated;
  if (is_eos(token)) {
    // EOS text is never shown; what the detokenizer and stop matcher hold is.
    emit_text(seq, seq.stops.push(seq.detokenizer.finish()).text + seq.stops.flush());
    finish(seq, FinishReason::kStop);
    return;
  }
  StopMatcher::Result r = seq.stops.push(seq.detokenizer.push(token));
  emit_text(seq, r.text);
  if (r.stopped) {
    finish(seq, FinishReason::kStop);
    return;
  }
  const bool budget_spent = seq.generated >= seq.request.max_tokens;
  const bool context_full =
      static_cast<int>(seq.tokens.size()) >= model.config().max_position_embeddings;
  if (budget_spent || context_full) {
    StopMatcher::Result tail = seq.stops.push(seq.detokenizer.finish());
    emit_text(seq, tail.stopped ? tail.text : tail.text + seq.stops.flush());
    finish(seq, tail.stopped ? FinishReason::kStop : FinishReason::kLength);
  }
}

void Engine::State::emit_text(Sequence& seq, const std::string& text) {
  if (!text.empty()) seq.sink({.kind = GenerationEvent::Kind::kText, .text = text});
}

void Engine::State::finish(Sequence& seq, FinishReason reason) {
  if (seq.done) return;
  seq.done = true;
  seq.cache.reset();
  seq.sink({.kind = GenerationEvent::Kind::kFinished,
            .finish_reason = reason,
            .usage = {.prompt_tokens = static_cast<int>(seq.request.prompt.size()),
                      .completion_tokens = seq.generated},
            .completion_ids = {
                seq.tokens.begin() + static_cast<std::ptrdiff_t>(seq.request.prompt.size()),
                seq.tokens.end()}});
}

void Engine::State::fail(Sequence& seq, const std::string& message) {
  if (seq.done) return;
  seq.done = true;
  seq.cache.reset();
  seq.sink({.kind = GenerationEvent::Kind::kFailed, .error = message});
}

}  // namespace lmserve::engine
