// The OpenAI-compatible HTTP server (mlx_lm.server's API): routes, validation, SSE.
// It only talks to the engine through Engine::submit and the request's event stream.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "engine/sampling.h"
#include "server/openai_response.h"
#include "server/response_store.h"
#include "server/server_props.h"

namespace lmserve::engine {
class Engine;
}
namespace lmserve::tokenizer {
class Tokenizer;
}
namespace lmserve::chat {
class ChatFormatter;
}

namespace lmserve::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0 = pick a free port (printed in the "listening" line)
  std::string model_id;          // served id: --alias, else --model exactly as given
  int default_max_tokens = 100;  // --max-tokens
  engine::SamplingParams default_sampling;  // --temp, --top-p, --top-k, --min-p
  std::size_t max_body_bytes = 16u << 20;   // --max-body
  // --cors-origins: "*", exact origins, or "scheme://host:*" (any port). Empty = loopback
  // origins only (http://localhost:*, http://127.0.0.1:*, http://[::1]:*).
  std::vector<std::string> cors_origins;
  // --allowed-host: Host names accepted besides the loopback ones when bound to loopback.
  std::vector<std::string> allowed_hosts;
  std::size_t max_connections = 1024;  // --max-connections
  bool strict_model = false;           // --strict-model: unknown request `model` -> 404
  // --api-key, --api-key-file, LMSERVE_API_KEY: when any, every route but /health needs one.
  std::vector<std::string> api_keys;
  ModelCatalog cached_models;       // GET /v1/models lists these after the served model
  int io_threads = 2;               // threads running the HTTP event loop (>= 1)
  double sse_ping_interval_s = 10;  // keepalive comment when a stream was silent this long
  double request_timeout_s = 0;     // --timeout: a non-streaming generation's limit (0 = none)
  double idle_timeout_s = 60;       // keep-alive connection idle / slow request read limit
  double write_timeout_s = 60;      // --write-timeout: a client taking no response bytes
  double watchdog_s = 0;  // --watchdog: /health 503 when an engine step runs longer (0 = off)
  // --reasoning-format: the message key of reasoning text (none: not extracted).
  ReasoningFormat reasoning_format = ReasoningFormat::kReasoningContent;
  // --responses-store, --responses-store-ttl, --responses-store-memory.
  ResponseStoreLimits responses_store;
};

// Everything a request handler needs; all references outlive the server.
struct ServerContext {
  engine::Engine& engine;
  const tokenizer::Tokenizer& tokenizer;
  const chat::ChatFormatter& chat;
};

// What the server serves once loaded, and what GET /props reports about it.
struct LoadedService {
  ServerContext context;
  ServerProps props;
};
// Loads the model, tokenizer, chat formatter and engine; what it returns must outlive serve().
using Loader = std::function<LoadedService()>;

// Binds, prints one line "lmserve: listening on http://HOST:PORT" to stdout (flushed), then
// runs `load` on its own thread while every request is answered 503 model_loading, and
// serves until SIGINT or SIGTERM (one that comes before the load is done ends the process at
// once, exit status 0). Returns the process exit code. Throws std::runtime_error if the
// address cannot be bound, and rethrows what `load` throws (after closing the port).
int serve(const ServerOptions& options, const Loader& load);

}  // namespace lmserve::server
