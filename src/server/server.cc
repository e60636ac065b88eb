#include "server/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <optional>
#include <thread>

#include "chat/chat_formatter.h"
#include "engine/engine.h"
#include "server/backend.h"
#include "server/http_server.h"
#include "server/openai_service.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::server {
namespace {

// The real pipeline behind the Backend interface.
class EngineBackend final : public Backend {
 public:
  explicit EngineBackend(ServerContext context) : context_(context) {
    for (int id = 0; id < vocab_size(); ++id) {
      max_token_bytes_ = std::max(max_token_bytes_, token_bytes(id).size());
    }
  }

  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens,
                                   bool parse_special) const override {
    return context_.tokenizer.encode(text, add_special_tokens, parse_special);
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    const auto& tok = context_.tokenizer;
    return tok.decode(ids, /*skip_special_tokens=*/false, tok.clean_up_tokenization_spaces());
  }
  std::string token_bytes(std::int32_t id) const override {
    return context_.tokenizer.token_bytes(id);
  }
  int vocab_size() const override { return context_.tokenizer.vocab_size(); }
  std::size_t max_token_bytes() const override { return max_token_bytes_; }
  const std::string& bos_token() const override { return context_.tokenizer.bos_token(); }
  bool adds_bos() const override { return context_.tokenizer.adds_bos(); }

  chat::RenderedPrompt render_chat(const chat::ChatPromptInput& input) const override {
    return context_.chat.render(input);
  }

  std::shared_ptr<engine::RequestHandle> submit(engine::GenerationRequest request,
                                                engine::EventSink sink) override {
    return context_.engine.submit(std::move(request), std::move(sink));
  }
  int context_length() const override { return context_.engine.context_length(); }
  bool alive() const override { return context_.engine.alive(); }
  std::chrono::steady_clock::duration step_running_for() const override {
    return context_.engine.step_running_for();
  }
  engine::EngineStats stats() const override { return context_.engine.stats(); }

 private:
  ServerContext context_;
  std::size_t max_token_bytes_ = 1;
};

std::string url_host(const tcp::endpoint& endpoint) {
  std::string host = endpoint.address().to_string();
  return endpoint.address().is_v6() ? "[" + host + "]" : host;
}

ServiceOptions service_options(const ServerOptions& options, ServerProps props) {
  ServiceOptions service_options;
  service_options.model_id = options.model_id;
  service_options.defaults.max_tokens = options.default_max_tokens;
  service_options.defaults.sampling = options.default_sampling;
  service_options.strict_model = options.strict_model;
  service_options.api_keys = options.api_keys;
  service_options.props = std::move(props);
  service_options.cached_models = options.cached_models;
  service_options.sse_ping_interval_s = options.sse_ping_interval_s;
  service_options.request_timeout_s = options.request_timeout_s;
  service_options.watchdog_s = options.watchdog_s;
  service_options.reasoning_format = options.reasoning_format;
  service_options.responses_store = options.responses_store;
  return service_options;
}

net::awaitable<void> answer_loading(HttpExchange& exchange) {
  co_await exchange.respond_error(
      ApiError(503, "server_error", "model_loading", std::nullopt, "Loading model"));
}

}  // namespace

int serve(const ServerOptions& options, const Loader& load) {
  // Set by the loader thread once the model is loaded; until then every request is answered
  // 503 model_loading. Declared before the server, so that they outlive its connections.
  std::optional<EngineBackend> backend;
  std::optional<OpenAiService> service;
  std::atomic<OpenAiService*> ready{nullptr};

  HttpServerOptions http_options;
  http_options.host = options.host;
  http_options.port = options.port;
  http_options.max_body_bytes = options.max_body_bytes;
  http_options.cors_origins = options.cors_origins;
  http_options.allowed_hosts = options.allowed_hosts;
  http_options.max_connections = options.max_connections;
  http_options.io_threads = std::max(1, options.io_threads);
  http_options.idle_timeout_s = options.idle_timeout_s;
  http_options.write_timeout_s = options.write_timeout_s;
  HttpServer server(http_options, [&ready](HttpExchange& exchange) {
    OpenAiService* serving = ready.load(std::memory_order_acquire);
    return serving ? serving->handle(exchange) : answer_loading(exchange);
  });

  tcp::endpoint endpoint = server.listen();
  if (!endpoint.address().is_loopback() && options.api_keys.empty()) {
    spdlog::warn(
        "listening on {} without an API key: anyone who can reach it may use it "
        "(--api-key)",
        endpoint.address().to_string());
  }

  // First signal: drain (every request in progress still gets a well-formed answer);
  // a second one, or a drain that takes too long, stops at once.
  boost::asio::signal_set signals(server.context(), SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal;
  int signals_seen = 0;
  on_signal = [&](const boost::system::error_code& ec, int) {
    if (ec) return;
    if (++signals_seen == 1) {
      OpenAiService* serving = ready.load(std::memory_order_acquire);
      if (!serving) {
        // Nothing is in flight before the model is loaded, and the load (a Hub download may
        // take minutes; it resumes on the next start) cannot be interrupted: stop at once.
        spdlog::info("stopped while loading the model");
        spdlog::default_logger()->flush();
        std::_Exit(0);
      }
      serving->begin_shutdown();
      server.shutdown(std::chrono::seconds(5));
      signals.async_wait(on_signal);
    } else {
      server.stop();
    }
  };
  signals.async_wait(on_signal);

  std::cout << "lmserve: listening on http://" << url_host(endpoint) << ":" << endpoint.port()
            << std::endl;  // endl flushes: scripts and tests wait for this line

  std::exception_ptr load_failure;
  std::thread loader([&] {
    try {
      LoadedService loaded = load();
      backend.emplace(loaded.context);
      service.emplace(service_options(options, std::move(loaded.props)), *backend);
      ready.store(&*service, std::memory_order_release);
      spdlog::info("model loaded: serving");
    } catch (...) {
      load_failure = std::current_exception();
      server.stop();
    }
  });
  server.run();
  signals.cancel();
  loader.join();
  if (load_failure) std::rethrow_exception(load_failure);
  // The engine outlives this function: detach every in-flight request from the event loop
  // before the loop (and its strands) are destroyed.
  service->shutdown();
  return 0;
}

}  // namespace lmserve::server
