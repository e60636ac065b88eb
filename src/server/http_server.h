// HTTP/1.1 transport on Boost.Beast with C++20 coroutines: connections, keep-alive,
// request bodies (Content-Length or chunked, size limit), CORS, complete and streamed
// responses, peer-close detection. Knows nothing of OpenAI routes; a Handler does that.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
// clang-format on

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "util/error.h"

namespace lmserve::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

using HttpRequest = http::request<http::string_body>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Which browser origins may read responses (api-contract §1.3).
class CorsPolicy {
 public:
  // Entries: "*", an exact origin ("https://app.example"), or "scheme://host:*" (any port or
  // none). Empty = loopback only.
  explicit CorsPolicy(std::vector<std::string> origins);
  // Access-Control-Allow-Origin value for a request's Origin header, if it is allowed.
  std::optional<std::string> allow_origin(std::string_view origin) const;
  bool wildcard() const { return wildcard_; }

 private:
  std::vector<std::string> origins_;
  bool wildcard_ = false;
};

// Which Host header values a server bound to a loopback address accepts (DNS rebinding:
// a foreign page's requests carry its own host name, e.g. Host: evil.example).
class HostPolicy {
 public:
  // Entries: host names (any port) accepted besides localhost, 127.0.0.1 and [::1]; "*"
  // accepts any. Names compare case-insensitively.
  explicit HostPolicy(std::vector<std::string> allowed);
  bool allows(std::string_view host_header) const;

 private:
  std::vector<std::string> allowed_;
  bool any_ = false;
};

// The routing key of a request target: no query or fragment, one trailing '/' dropped.
std::string_view routing_path(std::string_view target);

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::size_t max_body_bytes = 16u << 20;
  std::vector<std::string> cors_origins;
  // Host names accepted besides the loopback ones, when bound to a loopback address.
  std::vector<std::string> allowed_hosts;
  int io_threads = 2;
  double idle_timeout_s = 60;
  // How long one write of a response may wait for a client that reads nothing (its socket
  // buffers full); then the connection is closed and the write reports the client gone.
  double write_timeout_s = 60;
  // Open connections; beyond it a new one gets 503 and is closed. Capped at half the
  // process's open-file limit, so that refusing stays possible.
  std::size_t max_connections = 1024;
};

// Bytes one connection may hold besides a body: the request line and headers, a chunk-size
// line with its extensions, the trailer, and pipelined bytes read while a request runs.
inline constexpr std::size_t kMaxBufferedBytes = 64 * 1024;

class PeerWatch;
struct Refusal;

// One request on one connection, handed to the Handler. Lives on the connection's strand;
// use it only from the handler coroutine.
class HttpExchange {
 public:
  HttpExchange(beast::tcp_stream& stream, beast::flat_buffer& buffer,
               http::request_parser<http::string_body>& parser, const CorsPolicy& cors,
               std::size_t max_body_bytes, std::chrono::steady_clock::duration write_timeout);
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  const HttpRequest& request() const { return parser_.get(); }
  http::verb method() const { return request().method(); }
  std::string_view path() const { return path_; }
  net::any_io_executor executor() const { return stream_.get_executor(); }

  // Reads the request body. Throws ApiError: 411 (POST with neither Content-Length nor
  // chunked encoding), 413 (over the limit: max_body_bytes, or `limit` when smaller), 415
  // (Content-Type other than JSON, or none from a foreign Origin), 431 (a chunk-size line or
  // the trailer over kMaxBufferedBytes), 400 (malformed chunked framing). Answers
  // "Expect: 100-continue".
  net::awaitable<std::string_view> read_body(std::size_t limit = SIZE_MAX);

  // A complete response: CORS headers, exact Content-Length, keep-alive as negotiated.
  net::awaitable<void> respond(http::status status, std::string body,
                               std::string_view content_type = "application/json",
                               const Headers& headers = {});
  net::awaitable<void> respond_error(const ApiError& error, const Headers& headers = {});

  // A streamed 200 response: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
  // Each call returns false once the client is gone (nothing more can be written), or has
  // not taken a write within the write timeout (the connection is then closed).
  net::awaitable<bool> begin_stream(std::string_view content_type, const Headers& headers = {});
  net::awaitable<bool> write_stream(std::string_view data);
  net::awaitable<bool> end_stream();

  // Calls on_closed (on the connection's strand) if the peer closes or resets the connection
  // while the handler waits for something else. Disarmed by unwatch_peer() (also called by
  // the destructor). Bytes the client pipelines meanwhile are kept for the next request.
  void watch_peer(std::function<void()> on_closed);
  void unwatch_peer();

  bool started() const { return status_ != 0; }  // status line written (or being written)
  int status() const { return status_; }
  bool keep_alive() const { return keep_alive_; }
  void close_after_response() { keep_alive_ = false; }
  // The client is gone: no response will be written and the connection is closed.
  void abandon() {
    if (status_ == 0) status_ = 499;
    keep_alive_ = false;
    stream_ok_ = false;
  }

 private:
  void add_common_headers(http::fields& fields) const;
  void arm_watch(std::uint64_t generation);
  net::awaitable<void> skip_unread_body();
  net::awaitable<bool> write_buffers(std::string_view data, bool chunk);
  // Records a failed response write: the connection cannot be reused.
  void write_failed(const beast::error_code& ec);
  void log_write_timeout() const;

  beast::tcp_stream& stream_;
  beast::flat_buffer& buffer_;
  http::request_parser<http::string_body>& parser_;
  std::size_t max_body_bytes_;
  std::chrono::steady_clock::duration write_timeout_;
  std::string path_;
  std::optional<std::string> allow_origin_;
  bool foreign_origin_ = false;  // an Origin header the CORS policy does not allow
  bool wildcard_origin_ = false;
  bool keep_alive_;
  bool chunked_ = false;
  bool stream_ok_ = true;
  int status_ = 0;
  std::shared_ptr<PeerWatch> watch_;
};

using Handler = std::function<net::awaitable<void>(HttpExchange&)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens. Throws std::runtime_error when the address cannot be bound.
  tcp::endpoint listen();
  // Serves on options.io_threads threads (the caller is one of them) until stop().
  void run();
  // Thread-safe; run() returns soon after. In-flight requests are abandoned.
  void stop();
  // Thread-safe graceful stop: no new connections, idle keep-alive connections closed,
  // requests in progress answered (then their connections closed); run() returns when the
  // last connection is gone or after `grace`, whichever comes first.
  void shutdown(std::chrono::steady_clock::duration grace);

  net::io_context& context() { return ioc_; }

 private:
  struct Connection;

  net::awaitable<void> accept_loop();
  net::awaitable<void> session(tcp::socket socket);
  net::awaitable<void> refuse_connection(tcp::socket socket);
  // Why a parsed request head is not served (Host, Transfer-Encoding), if it is not.
  std::optional<Refusal> check_head(const HttpRequest& req) const;
  void connection_ended();

  HttpServerOptions options_;
  Handler handler_;
  CorsPolicy cors_;
  HostPolicy hosts_;
  bool loopback_ = false;  // bound to a loopback address: hosts_ applies
  std::size_t max_connections_;
  // Declared before ioc_: destroying ioc_ destroys unfinished sessions, which unregister.
  std::atomic<bool> stopping_{false};
  std::atomic<bool> destroying_{false};
  std::mutex connections_mutex_;
  std::list<std::shared_ptr<Connection>> connections_;
  std::atomic<std::size_t> open_connections_{0};
  net::io_context ioc_;
  net::strand<net::io_context::executor_type> accept_strand_;
  tcp::acceptor acceptor_;
  std::optional<net::steady_timer> grace_timer_;  // on accept_strand_
};

}  // namespace lmserve::server
