// The two ways one generation is written back: a whole JSON response, or an SSE stream.
// The generation loop (OpenAiService) feeds either the same progress, deltas and outcome;
// a ResponseFormat says how one API (chat completions, completions, Responses, Messages)
// words them, so every API streams and answers whole from the same events.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "chat/message_delta.h"
#include "engine/sampling.h"
#include "server/generation_output.h"
#include "server/http_server.h"
#include "server/openai_response.h"

namespace lmserve::server {

// What one choice of a whole response produced: its deltas folded, and how it ended.
struct ChoiceResult {
  chat::ChatMessage message;
  GenerationOutcome outcome;
};

// One API's wording of a generation of one or more choices (OpenAI's `n`; the APIs without
// `n` only ever see choice 0). Stream events are appended to `out`.
class ResponseFormat {
 public:
  virtual ~ResponseFormat() = default;

  virtual void open(std::string& /*out*/) {}                         // the stream starts
  virtual void prompt_done(int /*choice*/, std::string& /*out*/) {}  // its prompt is evaluated
  // Sent while the prompt is evaluated and whenever the stream was silent for a while.
  virtual std::string keepalive(int processed, int total) const;
  virtual void delta(int choice, const chat::MessageDelta& delta, std::string& out) = 0;
  // A choice ended ok (its tail was already given to delta()).
  virtual void finish_choice(int /*choice*/, const GenerationOutcome& /*outcome*/,
                             std::string& /*out*/) {}
  // The end: every choice ended ok (outcome: the first to end, with the usage of all; see
  // ResponseWriter::finish), or the first failure.
  virtual void finish(const GenerationOutcome& outcome, std::string& out) = 0;
  // The whole response of a generation whose choices all ended ok (outcome as for finish()).
  virtual json body(const std::vector<ChoiceResult>& choices, const GenerationOutcome& outcome) = 0;
  // Token logprobs a choice sampled since the last call (kept only by formats that report them).
  virtual void add_logprobs(int /*choice*/, const std::vector<engine::TokenLogprob>& /*entries*/) {}
};

// Writes one response of `choices` generations, whose events may interleave.
class ResponseWriter {
 public:
  using Clock = std::chrono::steady_clock;
  ResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format, Headers headers,
                 int choices);
  virtual ~ResponseWriter() = default;

  // Starts the response; false when the client is already gone.
  virtual net::awaitable<bool> begin() = 0;
  // When flush() should be called even if the engine has nothing new (keepalives).
  virtual Clock::time_point deadline() const = 0;
  virtual void progress(int choice, int processed, int total) = 0;
  virtual void delta(int choice, const chat::MessageDelta& delta) = 0;
  // A choice's generation ended. True when the response has ended with it: every choice
  // ended ok, or this one failed (which fails the whole response). The usage of the
  // response counts the prompt once, sums the choices' completion and reasoning tokens,
  // and takes the fewest cached tokens of any choice: what was cached before this request.
  bool finish(int choice, const GenerationOutcome& outcome);
  // Token logprobs sampled since the last call; they go out with the next delta or finish.
  void add_logprobs(int choice, const std::vector<engine::TokenLogprob>& entries) {
    format_->add_logprobs(choice, entries);
  }
  // Writes what is pending; `done` after finish() returned true. False when the client is
  // gone. A whole response throws the outcome's ApiError when the generation failed.
  virtual net::awaitable<bool> flush(bool done) = 0;

 protected:
  virtual void finish_choice(int choice, const GenerationOutcome& outcome) = 0;  // ok
  virtual void finish_response(const GenerationOutcome& outcome) = 0;

  HttpExchange& exchange_;
  std::unique_ptr<ResponseFormat> format_;
  Headers headers_;  // extra response headers
  int choices_;

 private:
  int unfinished_;
  GenerationOutcome total_;  // the choices that ended so far
};

// Folds each choice's deltas into one message and answers once, at the end.
class WholeResponseWriter final : public ResponseWriter {
 public:
  WholeResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format,
                      Headers headers, int choices);
  net::awaitable<bool> begin() override { co_return true; }
  Clock::time_point deadline() const override { return Clock::time_point::max(); }
  void progress(int, int, int) override {}
  void delta(int choice, const chat::MessageDelta& delta) override {
    results_[static_cast<std::size_t>(choice)].message.apply(delta);
  }
  net::awaitable<bool> flush(bool done) override;

 private:
  void finish_choice(int choice, const GenerationOutcome& outcome) override;
  void finish_response(const GenerationOutcome& outcome) override { outcome_ = outcome; }

  std::vector<ChoiceResult> results_;
  GenerationOutcome outcome_;
};

// Sends each delta as the format's events, with keepalives while silent.
class SseResponseWriter final : public ResponseWriter {
 public:
  SseResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format, Headers headers,
                    int choices, double ping_interval_s);
  net::awaitable<bool> begin() override;
  Clock::time_point deadline() const override { return deadline_; }
  void progress(int choice, int processed, int total) override;
  void delta(int choice, const chat::MessageDelta& delta) override {
    format_->delta(choice, delta, out_);
  }
  net::awaitable<bool> flush(bool done) override;

 private:
  void finish_choice(int choice, const GenerationOutcome& outcome) override;
  void finish_response(const GenerationOutcome& outcome) override {
    format_->finish(outcome, out_);
  }

  Clock::duration ping_;
  Clock::time_point deadline_;
  std::vector<bool> prompt_done_;  // per choice
  int processed_ = 0;
  int total_ = 0;
  std::string out_;  // pending events
};

}  // namespace lmserve::server
