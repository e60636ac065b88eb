#include "server/response_writers.h"

#include <algorithm>

namespace lmserve::server {

WholeResponseWriter::WholeResponseWriter(HttpExchange& exchange, ResponseShape shape)
    : exchange_(exchange), shape_(std::move(shape)) {}

net::awaitable<bool> WholeResponseWriter::begin() { co_return true; }

void WholeResponseWriter::finish(const GenerationOutcome& outcome) {
  outcome_ = outcome;
  message_.apply(outcome.tail);
}

net::awaitable<bool> WholeResponseWriter::flush(bool done) {
  if (!done) co_return true;
  if (!outcome_.ok) {
    throw ApiError(outcome_.status, "server_error", outcome_.code, std::nullopt, outcome_.error);
  }
  json body = shape_.chat ? chat_completion_body(shape_.meta, message_, outcome_.finish_reason,
                                                 outcome_.usage, shape_.reasoning_format)
                          : text_completion_body(shape_.meta, message_.content,
                                                 outcome_.finish_reason, outcome_.usage);
  if (shape_.logprobs) body["choices"][0]["logprobs"] = shape_.logprobs->format(pending_logprobs_);
  co_await exchange_.respond(http::status::ok, dump_json(body), "application/json", shape_.headers);
  co_return true;
}

SseResponseWriter::SseResponseWriter(HttpExchange& exchange, ResponseShape shape,
                                     double ping_interval_s)
    : exchange_(exchange),
      shape_(std::move(shape)),
      ping_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(std::max(0.05, ping_interval_s)))),
      role_sent_(!shape_.chat) {}  // completions streams have no role event

net::awaitable<bool> SseResponseWriter::begin() {
  Headers headers = {{std::string("Cache-Control"), std::string("no-cache")},
                     {std::string("X-Accel-Buffering"), std::string("no")}};
  headers.insert(headers.end(), shape_.headers.begin(), shape_.headers.end());
  const std::string content_type = "text/event-stream";
  bool started = co_await exchange_.begin_stream(content_type, headers);
  deadline_ = Clock::now() + ping_;
  co_return started;
}

std::string SseResponseWriter::keepalive() const {
  return sse_comment("keepalive " + std::to_string(processed_) + "/" + std::to_string(total_));
}

void SseResponseWriter::send_role() {
  if (role_sent_) return;
  role_sent_ = true;
  out_ += sse_data(chat_chunk(shape_.meta, {{"role", "assistant"}, {"content", ""}}, std::nullopt,
                              shape_.include_usage));
}

void SseResponseWriter::progress(int processed, int total) {
  processed_ = processed;
  total_ = total;
  out_ += keepalive();
  if (processed >= total) send_role();
}

void SseResponseWriter::attach_logprobs(json& chunk) {
  if (!shape_.logprobs || pending_logprobs_.empty()) return;
  chunk["choices"][0]["logprobs"] = shape_.logprobs->format(pending_logprobs_);
  pending_logprobs_.clear();
}

void SseResponseWriter::delta(const chat::MessageDelta& delta) {
  send_role();
  if (!shape_.chat) {
    if (!delta.content.empty()) {
      json chunk = text_chunk(shape_.meta, delta.content, std::nullopt, shape_.include_usage);
      attach_logprobs(chunk);
      out_ += sse_data(chunk);
    }
    return;
  }
  for (json& chunk :
       chat_delta_chunks(shape_.meta, delta, shape_.reasoning_format, shape_.include_usage)) {
    attach_logprobs(chunk);
    out_ += sse_data(chunk);
  }
}

void SseResponseWriter::finish(const GenerationOutcome& outcome) {
  if (!outcome.ok) {
    out_ += sse_data(error_body("server_error", "generation_failed", std::nullopt, outcome.error));
    return;
  }
  delta(outcome.tail);
  json last =
      shape_.chat
          ? chat_chunk(shape_.meta, json::object(), outcome.finish_reason, shape_.include_usage)
          : text_chunk(shape_.meta, "", outcome.finish_reason, shape_.include_usage);
  attach_logprobs(last);
  out_ += sse_data(last);
  if (shape_.include_usage) out_ += sse_data(usage_chunk(shape_.meta, shape_.chat, outcome.usage));
  out_ += sse_done();
}

net::awaitable<bool> SseResponseWriter::flush(bool done) {
  if (out_.empty() && Clock::now() >= deadline_) out_ = keepalive();
  if (!out_.empty()) {
    bool written = co_await exchange_.write_stream(out_);
    out_.clear();
    if (!written) co_return false;
    deadline_ = Clock::now() + ping_;
  }
  if (done) co_await exchange_.end_stream();
  co_return true;
}

}  // namespace lmserve::server
