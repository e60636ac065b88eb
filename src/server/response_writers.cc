#include "server/response_writers.h"

#include <algorithm>

namespace lmserve::server {

std::string ResponseFormat::keepalive(int processed, int total) const {
  return sse_comment("keepalive " + std::to_string(processed) + "/" + std::to_string(total));
}

ResponseWriter::ResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format,
                               Headers headers, int choices)
    : exchange_(exchange),
      format_(std::move(format)),
      headers_(std::move(headers)),
      choices_(choices),
      unfinished_(choices) {}

bool ResponseWriter::finish(int choice, const GenerationOutcome& outcome) {
  if (!outcome.ok) {
    finish_response(outcome);
    return true;
  }
  finish_choice(choice, outcome);
  if (unfinished_ == choices_) {
    total_ = outcome;
  } else {
    UsageCounts& usage = total_.usage;
    usage.completion_tokens += outcome.usage.completion_tokens;
    usage.reasoning_tokens += outcome.usage.reasoning_tokens;
    // The choices after the first reuse the prompt blocks it computed: not cached for the
    // client, who sent the prompt once.
    usage.cached_tokens = std::min(usage.cached_tokens, outcome.usage.cached_tokens);
  }
  if (--unfinished_ > 0) return false;
  finish_response(total_);
  return true;
}

WholeResponseWriter::WholeResponseWriter(HttpExchange& exchange,
                                         std::unique_ptr<ResponseFormat> format, Headers headers,
                                         int choices)
    : ResponseWriter(exchange, std::move(format), std::move(headers), choices),
      results_(static_cast<std::size_t>(choices)) {}

void WholeResponseWriter::finish_choice(int choice, const GenerationOutcome& outcome) {
  ChoiceResult& result = results_[static_cast<std::size_t>(choice)];
  result.outcome = outcome;
  result.message.apply(outcome.tail);
}

net::awaitable<bool> WholeResponseWriter::flush(bool done) {
  if (!done) co_return true;
  if (!outcome_.ok) {
    throw ApiError(outcome_.status, "server_error", outcome_.code, std::nullopt, outcome_.error);
  }
  co_await exchange_.respond(http::status::ok, dump_json(format_->body(results_, outcome_)),
                             "application/json", headers_);
  co_return true;
}

SseResponseWriter::SseResponseWriter(HttpExchange& exchange, std::unique_ptr<ResponseFormat> format,
                                     Headers headers, int choices, double ping_interval_s)
    : ResponseWriter(exchange, std::move(format), std::move(headers), choices),
      ping_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(std::max(0.05, ping_interval_s)))),
      prompt_done_(static_cast<std::size_t>(choices)) {}

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

void SseResponseWriter::progress(int choice, int processed, int total) {
  processed_ = processed;
  total_ = total;
  out_ += format_->keepalive(processed_, total_);
  const auto i = static_cast<std::size_t>(choice);
  if (processed >= total && !prompt_done_[i]) {
    prompt_done_[i] = true;
    format_->prompt_done(choice, out_);
  }
}

void SseResponseWriter::finish_choice(int choice, const GenerationOutcome& outcome) {
  format_->delta(choice, outcome.tail, out_);
  format_->finish_choice(choice, outcome, out_);
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
