#include "server/response_writers.h"

#include <algorithm>

namespace lmserve::server {

std::string ResponseFormat::keepalive(int processed, int total) const {
  return sse_comment("keepalive " + std::to_string(processed) + "/" + std::to_string(total));
}

void WholeResponseWriter::finish(const GenerationOutcome& outcome) {
  outcome_ = outcome;
  message_.apply(outcome.tail);
}

net::awaitable<bool> WholeResponseWriter::flush(bool done) {
  if (!done) co_return true;
  if (!outcome_.ok) {
    throw ApiError(outcome_.status, "server_error", outcome_.code, std::nullopt, outcome_.error);
  }
  co_await exchange_.respond(http::status::ok, dump_json(format_->body(message_, outcome_)),
                             "application/json", headers_);
  co_return true;
}

SseResponseWriter::SseResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format,
                                     Headers headers, double ping_interval_s)
    : ResponseWriter(exchange, std::move(format), std::move(headers)),
      ping_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(std::max(0.05, ping_interval_s)))) {}

net::awaitable<bool> SseResponseWriter::begin() {
  Headers headers = {{std::string("Cache-Control"), std::string("no-cache")},
                     {std::string("X-Accel-Buffering"), std::string("no")}};
  headers.insert(headers.end(), headers_.begin(), headers_.end());
  const std::string content_type = "text/event-stream";
  bool started = co_await exchange_.begin_stream(content_type, headers);
  format_->open(out_);
  deadline_ = Clock::now() + ping_;
  co_return started;
}

void SseResponseWriter::progress(int processed, int total) {
  processed_ = processed;
  total_ = total;
  out_ += format_->keepalive(processed_, total_);
  if (processed >= total && !prompt_done_) {
    prompt_done_ = true;
    format_->prompt_done(out_);
  }
}

void SseResponseWriter::finish(const GenerationOutcome& outcome) {
  if (outcome.ok) format_->delta(outcome.tail, out_);
  format_->finish(outcome, out_);
}

net::awaitable<bool> SseResponseWriter::flush(bool done) {
  if (out_.empty() && Clock::now() >= deadline_) out_ = format_->keepalive(processed_, total_);
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
