// The OpenAI-compatible endpoints (routes, handlers, SSE streaming) on top of HttpExchange
// and a Backend. One instance serves every connection; handlers run on connection strands.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
// clang-format on

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "server/api_keys.h"
#include "server/backend.h"
#include "server/event_channel.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/response_store.h"
#include "server/response_writers.h"
#include "server/server_props.h"

namespace lmserve::server {

struct ServiceOptions {
  std::string model_id;
  RequestDefaults defaults;
  bool strict_model = false;
  std::vector<std::string> api_keys;  // when any, every route but /health needs one
  ServerProps props;                  // GET /props
  ModelCatalog cached_models;         // GET /v1/models lists these after the served model
  double sse_ping_interval_s = 10;
  double request_timeout_s = 0;  // a non-streaming generation's limit (0 = none)
  // /health answers 503 while an engine step has been running longer than this (0 = never).
  double watchdog_s = 0;
  // POST /tokenize: the most `content` bytes, and the most tokens, of one request.
  std::size_t tokenize_max_bytes = 256 * 1024;
  std::size_t tokenize_max_tokens = 256 * 1024;
  int work_threads = 2;  // parse, template and tokenize requests off the I/O threads
  ReasoningFormat reasoning_format = ReasoningFormat::kReasoningContent;
  ResponseStoreLimits responses_store;  // --responses-store, -ttl, -memory
};

class OpenAiService {
 public:
  OpenAiService(ServiceOptions options, Backend& backend);

  // The Handler for HttpServer.
  net::awaitable<void> handle(HttpExchange& exchange);

  ~OpenAiService();

  // Graceful stop: cancels every in-flight generation; each is still answered (503
  // `shutting_down`, or an error event in a stream). New requests get 503 too.
  void begin_shutdown();

  // Cancels every in-flight generation and detaches it from the event loop. Call after the
  // event loop stopped and before it is destroyed.
  void shutdown();

  // The `model` value a response reports for a request's `model` field (§2.5).
  std::string response_model(const std::optional<std::string>& requested) const;

 private:
  struct Job;
  struct Route;
  enum class ErrorShape { kOpenAi, kAnthropic };  // how a route's errors are written
  // Every endpoint, one line each: {method, paths, handler, open, errors}.
  static const std::vector<Route>& routes();
  // The route for this path and method, else one for the path (405), else nullptr.
  static const Route* find_route(std::string_view path, http::verb method);
  net::awaitable<void> respond_error(HttpExchange& exchange, const Route* route,
                                     const ApiError& error, const Headers& headers = {});

  net::awaitable<void> dispatch(HttpExchange& exchange, const Route* route);
  bool authorized(const HttpExchange& exchange) const;  // carries a configured API key

  net::awaitable<void> chat_completions(HttpExchange& exchange);
  net::awaitable<void> completions(HttpExchange& exchange);
  // OpenAI's Responses API (responses_request.h, responses_format.h, response_store.h).
  net::awaitable<void> create_response(HttpExchange& exchange);
  net::awaitable<void> get_response(HttpExchange& exchange);
  net::awaitable<void> delete_response(HttpExchange& exchange);
  // Anthropic's Messages API (messages_request.h, messages_format.h).
  net::awaitable<void> messages(HttpExchange& exchange);
  net::awaitable<void> count_tokens(HttpExchange& exchange);
  net::awaitable<void> apply_template(HttpExchange& exchange);
  net::awaitable<void> models(HttpExchange& exchange);
  net::awaitable<void> model(HttpExchange& exchange);
  net::awaitable<void> health(HttpExchange& exchange);
  net::awaitable<void> metrics(HttpExchange& exchange);
  net::awaitable<void> props(HttpExchange& exchange);
  net::awaitable<void> tokenize(HttpExchange& exchange);
  net::awaitable<void> detokenize(HttpExchange& exchange);
  // Runs fn() on the work pool; the caller resumes on its own executor (exceptions too).
  template <class Fn>
  net::awaitable<std::invoke_result_t<Fn&>> offload(Fn fn);
  std::string tokenize_response(std::string_view body) const;
  Job prepare_chat(std::string_view body) const;
  // The chat pipeline every chat-shaped API shares: template, tokens, engine request
  // (forced tool call, reasoning budget) and the output parser. The caller sets the format.
  Job prepare_chat_job(ChatRequest& request, const char* prompt_param) const;
  void use_openai_format(Job& job, bool chat, const CommonParams& common) const;
  Job prepare_completion(std::string_view body) const;
  Job prepare_response(std::string_view body) const;
  // 400 context_length_exceeded for a prompt text too long to fit however it tokenizes,
  // before the tokenizer spends time and memory on it.
  void check_prompt_bytes(std::size_t bytes, const char* param) const;
  // Submits the job's choices (n engine requests) and answers with their one response.
  net::awaitable<void> generate(HttpExchange& exchange, Job job);
  // Merges the choices' engine events, as deltas and one outcome each, into one response
  // through a whole-response or SSE writer.
  net::awaitable<void> write_generation(HttpExchange& exchange, Job& job, EventChannel& channel,
                                        ResponseWriter& writer);
  // The engine request every generation endpoint makes from its prompt and common fields.
  Job make_job(std::vector<std::int32_t> prompt, CommonParams& common,
               const char* prompt_param) const;
  ServerCancel server_cancel() const;  // who cancelled a generation, if not its client
  json model_object() const;           // the served model
  // The served model, then the catalog's others (read on the work pool).
  net::awaitable<std::vector<json>> model_objects();
  void check_model(const std::optional<std::string>& requested) const;
  int fit_context(int prompt_tokens, int max_tokens, const char* param) const;

  ServiceOptions options_;
  Backend& backend_;
  std::int64_t created_;
  ApiKeys api_keys_;
  net::thread_pool work_pool_;
  std::unique_ptr<ResponseStore> store_;  // thread-safe
  // Shared with the engine's event sinks, which may outlive the service.
  std::shared_ptr<ServerMetrics> metrics_ = std::make_shared<ServerMetrics>();

  struct Live {
    std::weak_ptr<EventChannel> channel;
    std::weak_ptr<engine::RequestHandle> handle;
  };
  std::atomic<bool> shutting_down_{false};
  std::mutex live_mutex_;
  std::list<Live> live_;
};

}  // namespace lmserve::server
