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

// One API's wording of a generation. Stream events are appended to `out`.
class ResponseFormat {
 public:
  virtual ~ResponseFormat() = default;

  virtual void open(std::string& /*out*/) {}         // the stream starts
  virtual void prompt_done(std::string& /*out*/) {}  // the prompt is evaluated
  // Sent while the prompt is evaluated and whenever the stream was silent for a while.
  virtual std::string keepalive(int processed, int total) const;
  virtual void delta(const chat::MessageDelta& delta, std::string& out) = 0;
  // The end: outcome.ok (its tail was already given to delta()) or the failure.
  virtual void finish(const GenerationOutcome& outcome, std::string& out) = 0;
  // The whole response of a generation that ended ok: `message` folds every delta.
  virtual json body(const chat::ChatMessage& message, const GenerationOutcome& outcome) = 0;
  // Token logprobs sampled since the last call (kept only by formats that report them).
  virtual void add_logprobs(const std::vector<engine::TokenLogprob>& /*entries*/) {}
};

class ResponseWriter {
 public:
  using Clock = std::chrono::steady_clock;
  ResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format, Headers headers)
      : exchange_(exchange), format_(std::move(format)), headers_(std::move(headers)) {}
  virtual ~ResponseWriter() = default;

  // Starts the response; false when the client is already gone.
  virtual net::awaitable<bool> begin() = 0;
  // When flush() should be called even if the engine has nothing new (keepalives).
  virtual Clock::time_point deadline() const = 0;
  virtual void progress(int processed, int total) = 0;
  virtual void delta(const chat::MessageDelta& delta) = 0;
  virtual void finish(const GenerationOutcome& outcome) = 0;
  // Token logprobs sampled since the last call; they go out with the next delta or finish.
  void add_logprobs(const std::vector<engine::TokenLogprob>& entries) {
    format_->add_logprobs(entries);
  }
  // Writes what is pending; `done` after finish(). False when the client is gone. A whole
  // response throws the outcome's ApiError when the generation failed.
  virtual net::awaitable<bool> flush(bool done) = 0;

 protected:
  HttpExchange& exchange_;
  std::unique_ptr<ResponseFormat> format_;
  Headers headers_;  // extra response headers
};

// Folds the deltas into one message and answers once, at the end.
class WholeResponseWriter final : public ResponseWriter {
 public:
  using ResponseWriter::ResponseWriter;
  net::awaitable<bool> begin() override { co_return true; }
  Clock::time_point deadline() const override { return Clock::time_point::max(); }
  void progress(int, int) override {}
  void delta(const chat::MessageDelta& delta) override { message_.apply(delta); }
  void finish(const GenerationOutcome& outcome) override;
  net::awaitable<bool> flush(bool done) override;

 private:
  chat::ChatMessage message_;
  GenerationOutcome outcome_;
};

// Sends each delta as the format's events, with keepalives while silent.
class SseResponseWriter final : public ResponseWriter {
 public:
  SseResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format, Headers headers,
                    double ping_interval_s);
  net::awaitable<bool> begin() override;
  Clock::time_point deadline() const override { return deadline_; }
  void progress(int processed, int total) override;
  void delta(const chat::MessageDelta& delta) override { format_->delta(delta, out_); }
  void finish(const GenerationOutcome& outcome) override;
  net::awaitable<bool> flush(bool done) override;

 private:
  Clock::duration ping_;
  Clock::time_point deadline_;
  bool prompt_done_ = false;
  int processed_ = 0;
  int total_ = 0;
  std::string out_;  // pending events
};

}  // namespace lmserve::server
