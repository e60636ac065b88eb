// The two ways one generation is written back: a whole JSON response, or an SSE stream.
// The generation loop (OpenAiService) feeds either the same progress, deltas and outcome.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "chat/message_delta.h"
#include "server/generation_output.h"
#include "server/http_server.h"
#include "server/logprobs_json.h"
#include "server/openai_response.h"

namespace lmserve::server {

// What every writer needs to know about the response it writes.
struct ResponseShape {
  ResponseMeta meta;
  bool chat = true;
  bool include_usage = false;  // stream_options.include_usage
  ReasoningFormat reasoning_format = ReasoningFormat::kReasoningContent;
  Headers headers;                            // extra response headers
  std::optional<LogprobsFormatter> logprobs;  // when the request asked for them
};

class ResponseWriter {
 public:
  using Clock = std::chrono::steady_clock;
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
    pending_logprobs_.insert(pending_logprobs_.end(), entries.begin(), entries.end());
  }
  // Writes what is pending; `done` after finish(). False when the client is gone. A whole
  // response throws the outcome's ApiError when the generation failed.
  virtual net::awaitable<bool> flush(bool done) = 0;

 protected:
  std::vector<engine::TokenLogprob> pending_logprobs_;
};

// Folds the deltas into one message and answers once, at the end.
class WholeResponseWriter final : public ResponseWriter {
 public:
  WholeResponseWriter(HttpExchange& exchange, ResponseShape shape);
  net::awaitable<bool> begin() override;
  Clock::time_point deadline() const override { return Clock::time_point::max(); }
  void progress(int, int) override {}
  void delta(const chat::MessageDelta& delta) override { message_.apply(delta); }
  void finish(const GenerationOutcome& outcome) override;
  net::awaitable<bool> flush(bool done) override;

 private:
  HttpExchange& exchange_;
  ResponseShape shape_;
  chat::ChatMessage message_;
  GenerationOutcome outcome_;
};

// Sends each delta as chunks (api-contract §3.5), with keepalive comments while silent.
class SseResponseWriter final : public ResponseWriter {
 public:
  SseResponseWriter(HttpExchange& exchange, ResponseShape shape, double ping_interval_s);
  net::awaitable<bool> begin() override;
  Clock::time_point deadline() const override { return deadline_; }
  void progress(int processed, int total) override;
  void delta(const chat::MessageDelta& delta) override;
  void finish(const GenerationOutcome& outcome) override;
  net::awaitable<bool> flush(bool done) override;

 private:
  void send_role();
  std::string keepalive() const;
  // Puts the pending logprobs on this chunk (the first one sent after they were sampled).
  void attach_logprobs(json& chunk);

  HttpExchange& exchange_;
  ResponseShape shape_;
  Clock::duration ping_;
  Clock::time_point deadline_;
  bool role_sent_;
  int processed_ = 0;
  int total_ = 0;
  std::string out_;  // pending events
};

}  // namespace lmserve::server
