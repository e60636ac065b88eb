#include "server/openai_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <utility>

#include "server/openai_response.h"
#include "util/error.h"
#include "util/utf8.h"

namespace lmserve::server {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ApiError not_found(std::string_view path) {
  return ApiError(404, "invalid_request_error", "not_found", std::nullopt,
                  "Unknown path: " + std::string(path));
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

const char* finish_name(engine::FinishReason reason) {
  return reason == engine::FinishReason::kLength ? "length" : "stop";
}

json generation_failed_event(const std::string& message) {
  return error_body("server_error", "generation_failed", std::nullopt,
                    message.empty() ? "Generation failed" : message);
}

enum class Route {
  kChat,
  kCompletions,
  kModels,
  kModel,
  kHealth,
  kTokenize,
  kDetokenize,
  kUnknown
};

}  // namespace

struct OpenAiService::Job {
  bool chat = true;
  ResponseMeta meta;
  engine::GenerationRequest request;
  int prompt_tokens = 0;
  bool stream = false;
  bool include_usage = false;
};

OpenAiService::OpenAiService(ServiceOptions options, Backend& backend)
    : options_(std::move(options)),
      backend_(backend),
      created_(unix_now()),
      work_pool_(static_cast<std::size_t>(std::max(1, options_.work_threads))) {}

OpenAiService::~OpenAiService() { work_pool_.join(); }

template <class Fn>
net::awaitable<std::invoke_result_t<Fn&>> OpenAiService::offload(Fn fn) {
  using Result = std::invoke_result_t<Fn&>;
  co_return co_await net::co_spawn(
      work_pool_, [&fn]() -> net::awaitable<Result> { co_return fn(); }, net::use_awaitable);
}

std::string OpenAiService::response_model(const std::optional<std::string>& requested) const {
  if (!requested || requested->empty() || *requested == "default_model") return options_.model_id;
  return *requested;
}

void OpenAiService::check_model(const std::optional<std::string>& requested) const {
  if (!options_.strict_model || !requested || requested->empty()) return;
  if (*requested == options_.model_id || *requested == "default_model") return;
  throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                 "The model '" + *requested + "' does not exist; this server serves '" +
                     options_.model_id + "'");
}

int OpenAiService::fit_context(int prompt_tokens, int max_tokens, const char* param) const {
  int context = backend_.context_length();
  if (context <= 0) return max_tokens;
  if (prompt_tokens >= context) {
    throw ApiError::invalid_request("context_length_exceeded", param,
                                    "The prompt is " + std::to_string(prompt_tokens) +
                                        " tokens long, but the model's context is " +
                                        std::to_string(context) + " tokens");
  }
  return std::min(max_tokens, context - prompt_tokens);
}

net::awaitable<void> OpenAiService::handle(HttpExchange& exchange) {
  std::string_view path = exchange.path();
  http::verb method = exchange.method();

  if (method == http::verb::options) {
    // CORS preflight, for any path.
    co_await exchange.respond(http::status::no_content, std::string(), std::string_view());
    co_return;
  }

  Route route = Route::kUnknown;
  std::string model_id;
  if (path == "/v1/chat/completions" || path == "/chat/completions") {
    route = Route::kChat;
  } else if (path == "/v1/completions" || path == "/completions") {
    route = Route::kCompletions;
  } else if (path == "/v1/models" || path == "/models") {
    route = Route::kModels;
  } else if (path.starts_with("/v1/models/") || path.starts_with("/models/")) {
    route = Route::kModel;
    model_id = percent_decode(path.substr(path.find("/models/") + 8));
  } else if (path == "/health" || path == "/v1/health") {
    route = Route::kHealth;
  } else if (path == "/tokenize") {
    route = Route::kTokenize;
  } else if (path == "/detokenize") {
    route = Route::kDetokenize;
  }
  if (route == Route::kUnknown) throw not_found(path);

  bool post_route = route == Route::kChat || route == Route::kCompletions ||
                    route == Route::kTokenize || route == Route::kDetokenize;
  http::verb wanted = post_route ? http::verb::post : http::verb::get;
  if (method != wanted) {
    std::string allow = post_route ? "POST, OPTIONS" : "GET, OPTIONS";
    ApiError error(405, "invalid_request_error", "method_not_allowed", std::nullopt,
                   "Method " + std::string(http::to_string(method)) + " is not allowed on " +
                       std::string(path) + "; allowed: " + allow);
    Headers headers{{std::string("Allow"), allow}};
    co_await exchange.respond_error(error, headers);
    co_return;
  }

  switch (route) {
    case Route::kChat:
      co_await chat_completions(exchange);
      break;
    case Route::kCompletions:
      co_await completions(exchange);
      break;
    case Route::kModels: {
      json body = {{"object", "list"},
                   {"data", json::array({{{"id", options_.model_id},
                                          {"object", "model"},
                                          {"created", created_},
                                          {"owned_by", "lmserve"}}})}};
      co_await exchange.respond(http::status::ok, dump_json(body));
      break;
    }
    case Route::kModel: {
      if (model_id != options_.model_id) {
        throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                       "The model '" + model_id + "' does not exist");
      }
      json body = {{"id", options_.model_id},
                   {"object", "model"},
                   {"created", created_},
                   {"owned_by", "lmserve"}};
      co_await exchange.respond(http::status::ok, dump_json(body));
      break;
    }
    case Route::kHealth:
      if (!backend_.alive()) {
        throw ApiError(503, "server_error", "worker_unavailable", std::nullopt,
                       "The generation worker is not running");
      }
      co_await exchange.respond(http::status::ok, std::string(R"({"status":"ok"})"));
      break;
    case Route::kTokenize:
      co_await tokenize(exchange);
      break;
    case Route::kDetokenize:
      co_await detokenize(exchange);
      break;
    case Route::kUnknown:
      break;
  }
}

net::awaitable<void> OpenAiService::tokenize(HttpExchange& exchange) {
  // Room for the content with every byte escaped (\u00XX), plus the other fields.
  std::string_view body = co_await exchange.read_body(6 * options_.tokenize_max_bytes + 4096);
  std::string response = co_await offload([&] { return tokenize_response(body); });
  co_await exchange.respond(http::status::ok, std::move(response));
}

std::string OpenAiService::tokenize_response(std::string_view body) const {
  TokenizeRequest request = parse_tokenize_request(parse_json_body(body));
  if (request.content.size() > options_.tokenize_max_bytes) {
    throw ApiError::invalid_request("invalid_value", "content",
                                    "'content' is " + std::to_string(request.content.size()) +
                                        " bytes long; the limit is " +
                                        std::to_string(options_.tokenize_max_bytes));
  }
  const std::vector<std::int32_t> ids =
      backend_.encode(request.content, request.add_special, request.parse_special);
  if (ids.size() > options_.tokenize_max_tokens) {
    throw ApiError::invalid_request("invalid_value", "content",
                                    "'content' is " + std::to_string(ids.size()) +
                                        " tokens long; the limit is " +
                                        std::to_string(options_.tokenize_max_tokens));
  }
  // Written directly rather than as a json tree, which costs ~100 bytes per token.
  std::string out = R"({"tokens":[)";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    if (!request.with_pieces) {
      out += std::to_string(ids[i]);
      continue;
    }
    // A piece that is not valid UTF-8 on its own (part of a character) is given as bytes.
    const std::string bytes = backend_.token_bytes(ids[i]);
    out += R"({"id":)" + std::to_string(ids[i]) + R"(,"piece":)";
    if (util::is_valid_utf8(bytes)) {
      out += dump_json(json(bytes));
    } else {
      out += '[';
      for (std::size_t b = 0; b < bytes.size(); ++b) {
        if (b > 0) out += ',';
        out += std::to_string(static_cast<unsigned char>(bytes[b]));
      }
      out += ']';
    }
    out += '}';
  }
  out += "]}";
  return out;
}

net::awaitable<void> OpenAiService::detokenize(HttpExchange& exchange) {
  // Room for tokenize_max_tokens ids of up to 10 digits, with a separator each.
  std::string_view body = co_await exchange.read_body(12 * options_.tokenize_max_tokens + 4096);
  std::string response = co_await offload([&] {
    const std::vector<std::int32_t> ids =
        parse_detokenize_request(parse_json_body(body), backend_.vocab_size());
    if (ids.size() > options_.tokenize_max_tokens) {
      throw ApiError::invalid_request(
          "invalid_value", "tokens",
          "At most " + std::to_string(options_.tokenize_max_tokens) + " tokens");
    }
    return dump_json(json{{"content", util::sanitize_utf8(backend_.decode(ids))}});
  });
  co_await exchange.respond(http::status::ok, std::move(response));
}

OpenAiService::Job OpenAiService::make_job(bool chat, std::vector<std::int32_t> prompt,
                                           CommonParams& common) const {
  Job job;
  job.chat = chat;
  job.meta = {(chat ? "chatcmpl-" : "cmpl-") + new_uuid4(), unix_now(),
              response_model(common.model)};
  job.prompt_tokens = static_cast<int>(prompt.size());
  job.request.max_tokens =
      fit_context(job.prompt_tokens, common.max_tokens, chat ? "messages" : "prompt");
  job.request.prompt = std::move(prompt);
  job.request.sampling = common.sampling;
  job.request.stop = std::move(common.stop);
  job.stream = common.stream;
  job.include_usage = common.include_usage;
  return job;
}

void OpenAiService::check_prompt_bytes(std::size_t bytes, const char* param) const {
  const int context = backend_.context_length();
  if (context <= 0) return;
  const std::size_t limit = static_cast<std::size_t>(context) * backend_.max_token_bytes();
  if (bytes > limit) {
    throw ApiError::invalid_request("context_length_exceeded", param,
                                    "The prompt is " + std::to_string(bytes) +
                                        " bytes long, more than the model's context of " +
                                        std::to_string(context) + " tokens can hold (at most " +
                                        std::to_string(limit) + " bytes)");
  }
}

net::awaitable<void> OpenAiService::chat_completions(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  Job job = co_await offload([&] { return prepare_chat(body); });
  co_await generate(exchange, std::move(job));
}

OpenAiService::Job OpenAiService::prepare_chat(std::string_view body) const {
  ChatRequest request = parse_chat_request(parse_json_body(body), options_.defaults);
  check_model(request.common.model);

  // `developer` is OpenAI's newer name for `system`; keep it only where the prompt format
  // knows it.
  const std::string* source = backend_.template_source();
  bool keep_developer = source
                            ? source->find("developer") != std::string::npos
                            : (request.role_mapping && request.role_mapping->contains("developer"));
  if (!keep_developer) {
    for (auto& message : request.messages) {
      if (message["role"] == "developer") message["role"] = "system";
    }
  }

  chat::ChatPromptInput input;
  input.messages = std::move(request.messages);
  input.role_mapping = std::move(request.role_mapping);
  input.tools = std::move(request.tools);
  input.template_kwargs = std::move(request.template_kwargs);
  input.add_generation_prompt = true;
  chat::RenderedPrompt rendered = backend_.render_chat(input);
  check_prompt_bytes(rendered.text.size(), "messages");
  std::vector<std::int32_t> ids = backend_.encode(rendered.text, rendered.add_special_tokens);
  if (ids.empty()) {
    throw ApiError::invalid_request("invalid_value", "messages", "The rendered prompt is empty");
  }
  return make_job(/*chat=*/true, std::move(ids), request.common);
}

net::awaitable<void> OpenAiService::completions(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  Job job = co_await offload([&] { return prepare_completion(body); });
  co_await generate(exchange, std::move(job));
}

OpenAiService::Job OpenAiService::prepare_completion(std::string_view body) const {
  CompletionRequest request = parse_completion_request(parse_json_body(body), options_.defaults);
  check_model(request.common.model);

  std::vector<std::int32_t> ids;
  if (request.prompt.text) {
    const std::string& text = *request.prompt.text;
    check_prompt_bytes(text.size(), "prompt");
    ids = backend_.encode(
        text, completion_adds_special_tokens(text, backend_.bos_token(), backend_.adds_bos()));
  } else {
    ids = std::move(request.prompt.ids);
    check_token_ids(ids, backend_.vocab_size(), "prompt");
  }
  if (ids.empty())
    throw ApiError::invalid_request("invalid_value", "prompt", "'prompt' must not be empty");
  return make_job(/*chat=*/false, std::move(ids), request.common);
}

static ApiError shutting_down_error() {
  return ApiError(503, "server_error", "shutting_down", std::nullopt,
                  "The server is shutting down");
}

net::awaitable<void> OpenAiService::generate(HttpExchange& exchange, Job job) {
  if (shutting_down_.load()) throw shutting_down_error();
  if (!backend_.alive()) {
    throw ApiError(503, "server_error", "worker_unavailable", std::nullopt,
                   "The generation worker is not running");
  }
  auto channel = std::make_shared<EventChannel>(exchange.executor());
  std::shared_ptr<engine::RequestHandle> handle;
  std::optional<std::string> queue_full;
  try {
    handle =
        backend_.submit(std::move(job.request),
                        [channel](const engine::GenerationEvent& event) { channel->push(event); });
  } catch (const engine::QueueFull& e) {
    queue_full = e.what();
  }
  if (queue_full) {
    // Back-pressure: every slot is busy and the queue is full. A client may retry shortly.
    const Headers retry_after = {{"Retry-After", "1"}};
    const ApiError busy(429, "rate_limit_error", "queue_full", std::nullopt,
                        "The server is at capacity: " + *queue_full + "; retry later");
    co_await exchange.respond_error(busy, retry_after);
    co_return;
  }
  if (!handle) throw std::runtime_error("the engine refused the request");

  {
    std::lock_guard lock(live_mutex_);
    std::erase_if(live_, [](const Live& live) { return live.channel.expired(); });
    live_.push_back({channel, handle});
  }
  // A shutdown that began while this request was being submitted did not see it above.
  if (shutting_down_.load()) handle->cancel();
  // However this request ends (finished, client gone, exception, server shutdown), the
  // engine stops working for it and can no longer reach this connection's strand.
  struct Release {
    std::shared_ptr<EventChannel> channel;
    std::shared_ptr<engine::RequestHandle> handle;
    bool finished = false;
    ~Release() {
      if (!finished) handle->cancel();
      channel->close();
    }
  } release{channel, handle};

  exchange.watch_peer([channel, handle] {
    handle->cancel();
    channel->peer_closed();
  });

  if (job.stream) {
    co_await generate_stream(exchange, job, *channel, *handle);
  } else {
    co_await generate_full(exchange, job, *channel);
  }
  release.finished = !channel->closed_by_peer();
}

net::awaitable<void> OpenAiService::generate_full(HttpExchange& exchange, Job& job,
                                                  EventChannel& channel) {
  std::string text;
  for (;;) {
    auto events = co_await channel.wait(Clock::time_point::max());
    if (channel.closed_by_peer()) {
      exchange.abandon();
      co_return;
    }
    for (const auto& event : events) {
      using Kind = engine::GenerationEvent::Kind;
      if (event.kind == Kind::kText) {
        text += event.text;
      } else if (event.kind == Kind::kFinished || event.kind == Kind::kFailed) {
        exchange.unwatch_peer();
        bool ok =
            event.kind == Kind::kFinished && (event.finish_reason == engine::FinishReason::kStop ||
                                              event.finish_reason == engine::FinishReason::kLength);
        if (!ok && event.finish_reason == engine::FinishReason::kCancelled &&
            shutting_down_.load()) {
          throw shutting_down_error();
        }
        if (!ok) {
          std::string message = event.kind == Kind::kFailed ? event.error
                                : event.finish_reason == engine::FinishReason::kCancelled
                                    ? "Generation was cancelled"
                                    : "Generation failed";
          spdlog::error("generation failed: {}", message);
          throw ApiError(500, "server_error", "internal_error", std::nullopt,
                         message.empty() ? "Generation failed" : message);
        }
        UsageCounts usage{job.prompt_tokens, event.usage.completion_tokens,
                          event.usage.cached_tokens};
        const char* finish = finish_name(event.finish_reason);
        json body = job.chat ? chat_completion_body(job.meta, text, finish, usage)
                             : text_completion_body(job.meta, text, finish, usage);
        co_await exchange.respond(http::status::ok, dump_json(body));
        co_return;
      }
    }
  }
}

net::awaitable<void> OpenAiService::generate_stream(HttpExchange& exchange, Job& job,
                                                    EventChannel& channel,
                                                    engine::RequestHandle& handle) {
  Headers headers = {{std::string("Cache-Control"), std::string("no-cache")},
                     {std::string("X-Accel-Buffering"), std::string("no")}};
  const std::string content_type = "text/event-stream";
  if (!co_await exchange.begin_stream(content_type, headers)) {
    handle.cancel();
    exchange.abandon();
    co_return;
  }
  const auto ping = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.05, options_.sse_ping_interval_s)));
  auto deadline = Clock::now() + ping;
  bool role_sent = !job.chat;  // completions streams have no role event
  int processed = 0;
  int total = 0;
  std::string out;
  auto keepalive = [&] {
    return sse_comment("keepalive " + std::to_string(processed) + "/" + std::to_string(total));
  };
  auto send_role = [&] {
    if (role_sent) return;
    role_sent = true;
    out += sse_data(chat_chunk(job.meta, {{"role", "assistant"}, {"content", ""}}, std::nullopt,
                               job.include_usage));
  };

  for (;;) {
    auto events = co_await channel.wait(deadline);
    if (channel.closed_by_peer()) {
      exchange.abandon();
      co_return;
    }
    out.clear();
    bool done = false;
    for (const auto& event : events) {
      using Kind = engine::GenerationEvent::Kind;
      if (done) break;
      switch (event.kind) {
        case Kind::kProgress:
          processed = event.prompt_processed;
          total = event.prompt_total;
          out += keepalive();
          if (processed >= total) send_role();
          break;
        case Kind::kText:
          send_role();
          if (!event.text.empty()) {
            out += sse_data(
                job.chat ? chat_chunk(job.meta, {{"content", event.text}}, std::nullopt,
                                      job.include_usage)
                         : text_chunk(job.meta, event.text, std::nullopt, job.include_usage));
          }
          break;
        case Kind::kFinished:
          done = true;
          if (event.finish_reason == engine::FinishReason::kStop ||
              event.finish_reason == engine::FinishReason::kLength) {
            send_role();
            const char* finish = finish_name(event.finish_reason);
            out +=
                sse_data(job.chat ? chat_chunk(job.meta, json::object(), finish, job.include_usage)
                                  : text_chunk(job.meta, "", finish, job.include_usage));
            if (job.include_usage) {
              out += sse_data(usage_chunk(
                  job.meta, job.chat,
                  {job.prompt_tokens, event.usage.completion_tokens, event.usage.cached_tokens}));
            }
            out += sse_done();
          } else {
            const char* why = event.finish_reason != engine::FinishReason::kCancelled
                                  ? "Generation failed"
                              : shutting_down_.load() ? "The server is shutting down"
                                                      : "Generation was cancelled";
            out += sse_data(generation_failed_event(why));
          }
          break;
        case Kind::kFailed:
          done = true;
          spdlog::error("generation failed: {}", event.error);
          out += sse_data(generation_failed_event(event.error));
          break;
      }
    }
    if (out.empty() && Clock::now() >= deadline) out = keepalive();
    if (!out.empty()) {
      if (!co_await exchange.write_stream(out)) {
        handle.cancel();
        exchange.abandon();
        co_return;
      }
      deadline = Clock::now() + ping;
    }
    if (done) {
      exchange.unwatch_peer();
      co_await exchange.end_stream();
      co_return;
    }
  }
}

void OpenAiService::begin_shutdown() {
  shutting_down_.store(true);
  std::lock_guard lock(live_mutex_);
  for (Live& live : live_) {
    if (auto handle = live.handle.lock()) handle->cancel();
  }
}

void OpenAiService::shutdown() {
  std::lock_guard lock(live_mutex_);
  for (Live& live : live_) {
    if (auto handle = live.handle.lock()) handle->cancel();
    if (auto channel = live.channel.lock()) channel->close();
  }
  live_.clear();
}

}  // namespace lmserve::server
