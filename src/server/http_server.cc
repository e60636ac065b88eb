#include "server/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <exception>
#include <stdexcept>

#include "server/openai_response.h"

namespace lmserve::server {
namespace {

constexpr auto kUseAwaitable = net::use_awaitable;
constexpr std::size_t kHeaderLimit = 64 * 1024;

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// application/json, any +json type, with or without parameters (charset=utf-8).
bool is_json_media_type(std::string_view content_type) {
  std::string type = lower(trim(content_type.substr(0, content_type.find(';'))));
  return type == "application/json" || (type.size() > 5 && type.ends_with("+json"));
}

bool is_disconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == beast::error::timeout || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::connection_aborted ||
         ec == net::error::broken_pipe || ec == net::error::operation_aborted ||
         ec == net::error::not_connected || ec == net::error::bad_descriptor;
}

ApiError transport_error(int status, const char* code, const std::string& message) {
  return ApiError(status, "invalid_request_error", code, std::nullopt, message);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// CORS and routing helpers

CorsPolicy::CorsPolicy(std::vector<std::string> origins) : origins_(std::move(origins)) {
  if (origins_.empty()) {
    origins_ = {"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"};
  }
  wildcard_ = std::find(origins_.begin(), origins_.end(), "*") != origins_.end();
}

std::optional<std::string> CorsPolicy::allow_origin(std::string_view origin) const {
  if (wildcard_) return std::string("*");
  if (origin.empty()) return std::nullopt;
  for (const std::string& entry : origins_) {
    if (entry == origin) return std::string(origin);
    if (entry.size() > 2 && entry.ends_with(":*")) {
      std::string_view base = std::string_view(entry).substr(0, entry.size() - 2);
      if (origin == base) return std::string(origin);
      if (origin.size() > base.size() + 1 && origin.starts_with(base) &&
          origin[base.size()] == ':') {
        std::string_view port = origin.substr(base.size() + 1);
        if (std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          return std::string(origin);
        }
      }
    }
  }
  return std::nullopt;
}

std::string_view routing_path(std::string_view target) {
  target = target.substr(0, target.find_first_of("?#"));
  if (target.size() > 1 && target.back() == '/') target.remove_suffix(1);
  return target;
}

// ---------------------------------------------------------------------------------------
// HttpExchange

// Shared with the pending async_wait so that a late completion can tell it is stale.
class PeerWatch {
 public:
  bool active = false;
  std::uint64_t generation = 0;
};

HttpExchange::HttpExchange(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                           http::request_parser<http::string_body>& parser, const CorsPolicy& cors,
                           std::size_t max_body_bytes)
    : stream_(stream),
      buffer_(buffer),
      parser_(parser),
      max_body_bytes_(max_body_bytes),
      path_(routing_path(
          std::string_view(parser.get().target().data(), parser.get().target().size()))),
      keep_alive_(parser.get().keep_alive()) {
  auto origin = parser.get()[http::field::origin];
  allow_origin_ = cors.allow_origin(std::string_view(origin.data(), origin.size()));
  wildcard_origin_ = cors.wildcard();
}

HttpExchange::~HttpExchange() { unwatch_peer(); }

void HttpExchange::add_common_headers(http::fields& fields) const {
  fields.set(http::field::server, "lmserve");
  if (allow_origin_) {
    fields.set(http::field::access_control_allow_origin, *allow_origin_);
    if (!wildcard_origin_) fields.set(http::field::vary, "Origin");
  }
  fields.set(http::field::access_control_allow_methods, "*");
  fields.set(http::field::access_control_allow_headers, "*");
}

net::awaitable<std::string_view> HttpExchange::read_body() {
  HttpRequest& req = parser_.get();
  // Beast frames a request with neither header as having no body at all.
  if (req.method() == http::verb::post && !parser_.content_length() && !parser_.chunked()) {
    throw transport_error(
        411, "length_required",
        "A request body is required: send Content-Length or Transfer-Encoding: chunked");
  }

  auto content_type = req[http::field::content_type];
  if (!content_type.empty() &&
      !is_json_media_type(std::string_view(content_type.data(), content_type.size()))) {
    throw ApiError(415, "invalid_request_error", "unsupported_media_type", std::nullopt,
                   "Content-Type must be application/json, got '" +
                       std::string(content_type.data(), content_type.size()) + "'");
  }

  if (!parser_.is_done()) {
    if (auto length = parser_.content_length(); length && *length > max_body_bytes_) {
      keep_alive_ = false;
      throw transport_error(
          413, "request_too_large",
          "Request body too large (limit " + std::to_string(max_body_bytes_) + " bytes)");
    }
    auto expect = req[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      stream_.expires_after(std::chrono::seconds(30));
      co_await net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                                net::redirect_error(kUseAwaitable, ec));
      if (ec) {
        keep_alive_ = false;
        stream_ok_ = false;
        throw transport_error(400, "invalid_request", "Connection lost while reading the request");
      }
    }
    beast::error_code ec;
    co_await http::async_read(stream_, buffer_, parser_, net::redirect_error(kUseAwaitable, ec));
    if (ec) {
      keep_alive_ = false;
      if (ec == http::error::body_limit) {
        throw transport_error(
            413, "request_too_large",
            "Request body too large (limit " + std::to_string(max_body_bytes_) + " bytes)");
      }
      if (is_disconnect(ec)) stream_ok_ = false;
      throw transport_error(400, "invalid_request", "Malformed request body: " + ec.message());
    }
  }
  const std::string& body = parser_.get().body();
  co_return std::string_view(body);
}

net::awaitable<void> HttpExchange::skip_unread_body() {
  // A body the handler did not want (unknown route, refused Content-Type) is read and
  // dropped so that the connection stays usable; one that is too large, or that the client
  // will only send after "100 Continue", ends the connection instead.
  if (parser_.is_done() || !keep_alive_) co_return;
  auto length = parser_.content_length();
  auto expect = parser_.get()[http::field::expect];
  if ((length && *length > max_body_bytes_) || beast::iequals(expect, "100-continue")) {
    keep_alive_ = false;
    co_return;
  }
  beast::error_code ec;
  stream_.expires_after(std::chrono::seconds(30));
  co_await http::async_read(stream_, buffer_, parser_, net::redirect_error(kUseAwaitable, ec));
  if (ec) {
    keep_alive_ = false;
    if (is_disconnect(ec)) stream_ok_ = false;
  }
}

net::awaitable<void> HttpExchange::respond(http::status status, std::string body,
                                           std::string_view content_type, const Headers& headers) {
  status_ = static_cast<int>(status);
  if (!stream_ok_) co_return;  // nobody to answer
  co_await skip_unread_body();
  http::response<http::string_body> res{status, request().version()};
  add_common_headers(res);
  if (!content_type.empty())
    res.set(http::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
  for (const auto& [name, value] : headers) res.set(name, value);
  res.body() = std::move(body);
  if (!parser_.is_done()) keep_alive_ = false;  // unread body: cannot find the next request
  res.keep_alive(keep_alive_);
  if (status == http::status::no_content) {
    res.set(http::field::content_length, "0");
  } else {
    res.prepare_payload();
  }
  beast::error_code ec;
  stream_.expires_after(std::chrono::seconds(60));
  co_await http::async_write(stream_, res, net::redirect_error(kUseAwaitable, ec));
  if (ec) {
    keep_alive_ = false;
    stream_ok_ = false;
  }
}

net::awaitable<void> HttpExchange::respond_error(const ApiError& error, const Headers& headers) {
  co_await respond(static_cast<http::status>(error.http_status()), dump_json(error_body(error)),
                   "application/json", headers);
}

net::awaitable<bool> HttpExchange::begin_stream(std::string_view content_type,
                                                const Headers& headers) {
  status_ = 200;
  if (!stream_ok_) co_return false;
  co_await skip_unread_body();
  http::response<http::empty_body> res{http::status::ok, request().version()};
  add_common_headers(res);
  res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  for (const auto& [name, value] : headers) res.set(name, value);
  if (!parser_.is_done()) keep_alive_ = false;
  if (request().version() >= 11) {
    chunked_ = true;
    res.chunked(true);
    res.keep_alive(keep_alive_);
  } else {
    keep_alive_ = false;  // HTTP/1.0: the end of the stream is the end of the connection
    res.set(http::field::connection, "close");
  }
  http::response_serializer<http::empty_body> serializer{res};
  beast::error_code ec;
  stream_.expires_after(std::chrono::seconds(60));
  co_await http::async_write_header(stream_, serializer, net::redirect_error(kUseAwaitable, ec));
  if (ec) {
    keep_alive_ = false;
    stream_ok_ = false;
  }
  co_return stream_ok_;
}

net::awaitable<bool> HttpExchange::write_buffers(std::string_view data, bool chunk) {
  if (!stream_ok_) co_return false;
  beast::error_code ec;
  stream_.expires_after(std::chrono::seconds(60));
  if (chunk) {
    co_await net::async_write(stream_,
                              http::make_chunk(net::const_buffer(data.data(), data.size())),
                              net::redirect_error(kUseAwaitable, ec));
  } else {
    co_await net::async_write(stream_, net::const_buffer(data.data(), data.size()),
                              net::redirect_error(kUseAwaitable, ec));
  }
  if (ec) {
    keep_alive_ = false;
    stream_ok_ = false;
  }
  co_return stream_ok_;
}

net::awaitable<bool> HttpExchange::write_stream(std::string_view data) {
  if (data.empty()) co_return stream_ok_;  // an empty chunk would end the body
  co_return co_await write_buffers(data, chunked_);
}

net::awaitable<bool> HttpExchange::end_stream() {
  if (!stream_ok_) co_return false;
  if (!chunked_) co_return true;  // HTTP/1.0: closing the connection ends the body
  beast::error_code ec;
  stream_.expires_after(std::chrono::seconds(60));
  co_await net::async_write(stream_, http::make_chunk_last(),
                            net::redirect_error(kUseAwaitable, ec));
  if (ec) {
    keep_alive_ = false;
    stream_ok_ = false;
  }
  co_return stream_ok_;
}

void HttpExchange::watch_peer(std::function<void()> on_closed) {
  unwatch_peer();
  if (!watch_) watch_ = std::make_shared<PeerWatch>();
  watch_->active = true;
  std::uint64_t generation = ++watch_->generation;
  auto& socket = stream_.socket();
  int fd = socket.native_handle();
  socket.async_wait(tcp::socket::wait_read,
                    [watch = watch_, generation, fd,
                     on_closed = std::move(on_closed)](const boost::system::error_code& ec) {
                      // Runs on the connection's strand, like the handler, so these checks do not
                      // race.
                      if (!watch->active || watch->generation != generation) return;
                      watch->active = false;
                      if (ec == net::error::operation_aborted) return;
                      if (!ec) {
                        char byte;
                        ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
                        if (n > 0) return;  // the client sent more (pipelining): it is still there
                        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                          return;
                      }
                      on_closed();
                    });
}

void HttpExchange::unwatch_peer() {
  if (!watch_ || !watch_->active) return;
  watch_->active = false;
  ++watch_->generation;
  boost::system::error_code ec;
  stream_.socket().cancel(ec);
}

// ---------------------------------------------------------------------------------------
// HttpServer

// What shutdown() needs to reach a connection: touched only on the connection's strand,
// except `executor`, which is immutable.
struct HttpServer::Connection {
  net::any_io_executor executor;
  beast::tcp_stream* stream = nullptr;  // null once the session ended
  bool idle = true;                     // waiting for (the start of) the next request
};

HttpServer::HttpServer(HttpServerOptions options, Handler handler)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      cors_(options_.cors_origins),
      ioc_(std::max(1, options_.io_threads)),
      accept_strand_(net::make_strand(ioc_)),
      acceptor_(accept_strand_) {}

HttpServer::~HttpServer() = default;

tcp::endpoint HttpServer::listen() {
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  auto address = net::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, static_cast<unsigned short>(options_.port));
  } else {
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      throw std::runtime_error("cannot resolve host '" + options_.host + "': " + ec.message());
    }
    endpoint = results.begin()->endpoint();
  }
  if (options_.port < 0 || options_.port > 65535) {
    throw std::runtime_error("invalid port " + std::to_string(options_.port));
  }
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + options_.host + ":" +
                             std::to_string(options_.port) + ": " + ec.message());
  }
  return acceptor_.local_endpoint();
}

void HttpServer::run() {
  net::co_spawn(accept_strand_, accept_loop(), net::detached);
  auto run_loop = [this] {
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: unexpected exception in the event loop: {}", e.what());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < options_.io_threads; ++i) threads.emplace_back(run_loop);
  run_loop();
  ioc_.stop();
  for (auto& t : threads) t.join();
}

void HttpServer::stop() { ioc_.stop(); }

void HttpServer::shutdown(std::chrono::steady_clock::duration grace) {
  net::post(accept_strand_, [this, grace] {
    if (stopping_.exchange(true)) return;
    boost::system::error_code ec;
    acceptor_.close(ec);
    grace_timer_.emplace(accept_strand_, grace);
    grace_timer_->async_wait([this](const boost::system::error_code& e) {
      if (!e) ioc_.stop();
    });
    std::vector<std::shared_ptr<Connection>> connections;
    {
      std::lock_guard lock(connections_mutex_);
      connections.assign(connections_.begin(), connections_.end());
    }
    if (connections.empty()) ioc_.stop();
    for (auto& connection : connections) {
      // Only an idle connection is closed now; a busy one finishes its response first.
      net::post(connection->executor, [connection] {
        if (connection->stream && connection->idle) {
          boost::system::error_code ignored;
          connection->stream->socket().cancel(ignored);
        }
      });
    }
  });
}

void HttpServer::connection_ended() {
  bool last = false;
  {
    std::lock_guard lock(connections_mutex_);
    last = connections_.empty();
  }
  if (last && stopping_.load()) ioc_.stop();
}

net::awaitable<void> HttpServer::accept_loop() {
  for (;;) {
    tcp::socket socket(net::make_strand(ioc_));
    beast::error_code ec;
    co_await acceptor_.async_accept(socket, net::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (!acceptor_.is_open() || ec == net::error::operation_aborted) co_return;
      // E.g. out of file descriptors: back off instead of spinning.
      spdlog::warn("http: accept failed: {}", ec.message());
      net::steady_timer timer(ioc_, std::chrono::milliseconds(50));
      co_await timer.async_wait(net::redirect_error(kUseAwaitable, ec));
      continue;
    }
    if (stopping_.load()) co_return;
    socket.set_option(tcp::no_delay(true), ec);
    auto executor = socket.get_executor();
    net::co_spawn(executor, session(std::move(socket)), net::detached);
  }
}

net::awaitable<void> HttpServer::session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  const auto idle = seconds(options_.idle_timeout_s);
  auto connection = std::make_shared<Connection>();
  connection->executor = stream.get_executor();
  connection->stream = &stream;
  std::list<std::shared_ptr<Connection>>::iterator registration;
  {
    std::lock_guard lock(connections_mutex_);
    registration = connections_.insert(connections_.end(), connection);
  }
  try {
    for (;;) {
      connection->idle = true;
      if (stopping_.load()) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(options_.max_body_bytes);
      stream.expires_after(idle);
      beast::error_code ec;
      co_await http::async_read_header(stream, buffer, parser,
                                       net::redirect_error(kUseAwaitable, ec));
      if (ec) {
        if (is_disconnect(ec)) break;
        // The request could not be framed: answer once, then close.
        int status = 400;
        const char* code = "invalid_request";
        std::string message = "Malformed HTTP request: " + ec.message();
        if (ec == http::error::header_limit) {
          status = 431;
          code = "request_header_fields_too_large";
          message = "Request headers too large";
        } else if (ec == http::error::body_limit) {
          status = 413;
          code = "request_too_large";
          message = "Request body too large (limit " + std::to_string(options_.max_body_bytes) +
                    " bytes)";
        }
        http::response<http::string_body> res{static_cast<http::status>(status), 11};
        res.set(http::field::server, "lmserve");
        res.set(http::field::content_type, "application/json");
        res.set(http::field::access_control_allow_methods, "*");
        res.set(http::field::access_control_allow_headers, "*");
        res.body() = dump_json(error_body("invalid_request_error", code, std::nullopt, message));
        res.keep_alive(false);
        res.prepare_payload();
        stream.expires_after(std::chrono::seconds(10));
        co_await http::async_write(stream, res, net::redirect_error(kUseAwaitable, ec));
        break;
      }

      connection->idle = false;
      auto started = std::chrono::steady_clock::now();
      HttpExchange exchange(stream, buffer, parser, cors_, options_.max_body_bytes);
      std::optional<ApiError> failure;
      try {
        co_await handler_(exchange);
      } catch (const ApiError& e) {
        failure = e;
      } catch (const std::exception& e) {
        spdlog::error("http: handler failed: {}", e.what());
        failure =
            ApiError(500, "server_error", "internal_error", std::nullopt, "Internal server error");
      }
      exchange.unwatch_peer();
      if (failure) {
        if (!exchange.started()) {
          co_await exchange.respond_error(*failure);
        } else {
          exchange.close_after_response();  // a half-sent response cannot be repaired
        }
      } else if (!exchange.started()) {
        co_await exchange.respond_error(ApiError(500, "server_error", "internal_error",
                                                 std::nullopt, "No response was produced"));
      }
      auto ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count();
      const auto& req = exchange.request();
      spdlog::info("{} {} {} {:.1f}ms",
                   std::string_view(req.method_string().data(), req.method_string().size()),
                   std::string_view(req.target().data(), req.target().size()), exchange.status(),
                   ms);
      if (!exchange.keep_alive() || stopping_.load()) break;
    }
  } catch (const std::exception& e) {
    spdlog::error("http: connection failed: {}", e.what());
  }
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  // Read (and drop) what the client may still be sending, e.g. the rest of a refused body,
  // for a moment: closing with unread input would reset the connection and could destroy
  // the response before the client read it. Bounded in time and bytes (a body one limit
  // long, plus slack), so a client that never stops sending costs at most two seconds.
  char scratch[16384];
  std::size_t drained = 0;
  const std::size_t drain_limit = options_.max_body_bytes + (1u << 20);
  stream.expires_after(std::chrono::seconds(2));
  while (!ec && drained < drain_limit) {
    drained += co_await stream.async_read_some(net::buffer(scratch),
                                               net::redirect_error(kUseAwaitable, ec));
  }
  stream.socket().close(ec);
  connection->stream = nullptr;
  {
    std::lock_guard lock(connections_mutex_);
    connections_.erase(registration);
  }
  connection_ended();
}

}  // namespace lmserve::server
