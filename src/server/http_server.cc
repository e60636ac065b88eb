#include "server/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
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

// A request refused before any handler sees it; the connection is closed after the answer.
struct Refusal {
  int status;
  std::string code;
  std::string message;
};

namespace {

constexpr auto kUseAwaitable = net::use_awaitable;
constexpr std::size_t kHeaderLimit = kMaxBufferedBytes;
// Beast 1.74 throws std::length_error from inside a read operation, past every error
// handler, on a header or trailer field of 65534 bytes or more; the bounded read buffer
// cannot hold one.
static_assert(kMaxBufferedBytes < 65534 + 8);

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

std::string_view as_view(beast::string_view s) { return std::string_view(s.data(), s.size()); }

ApiError body_too_large(std::size_t limit) {
  return transport_error(413, "request_too_large",
                         "Request body too large (limit " + std::to_string(limit) + " bytes)");
}

// RFC 9112 §6.1: a request's transfer codings must end with one `chunked` (else its length
// is unknown: 400); chunked is the only coding understood (others: 501).
std::optional<Refusal> check_transfer_encoding(const HttpRequest& req) {
  if (req.find(http::field::transfer_encoding) == req.end()) return std::nullopt;
  std::vector<std::string> codings;
  auto [first, last] = req.equal_range(http::field::transfer_encoding);
  for (auto field = first; field != last; ++field) {
    std::string_view list = as_view(field->value());
    for (std::size_t start = 0; start <= list.size();) {
      std::size_t comma = std::min(list.find(',', start), list.size());
      std::string coding = lower(trim(list.substr(start, comma - start)));
      if (!coding.empty()) codings.push_back(std::move(coding));
      start = comma + 1;
    }
  }
  if (codings.empty() || codings.back() != "chunked" ||
      std::count(codings.begin(), codings.end(), "chunked") != 1) {
    return Refusal{400, "invalid_request",
                   "Transfer-Encoding must end with a single 'chunked' coding"};
  }
  if (codings.size() > 1) {
    return Refusal{501, "unsupported_transfer_encoding",
                   "Only the 'chunked' transfer coding is supported"};
  }
  return std::nullopt;
}

// How reading a request head ended.
enum class Head { kComplete, kClosed, kFolded, kTooLarge };

// Reads until `buffer` holds a whole request head (ended by an empty line). Beast 1.74
// accepts obs-folded field lines, which RFC 9112 §5.2 says a server must reject, so the raw
// bytes are looked at before the parser sees them.
net::awaitable<Head> read_head(beast::tcp_stream& stream, beast::flat_buffer& buffer) {
  std::size_t scanned = 0;
  for (;;) {
    std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
    std::size_t from = scanned > 3 ? scanned - 3 : 0;
    std::size_t end = std::min(data.find("\r\n\r\n", from), data.find("\n\n", from));
    if (end != std::string_view::npos) {
      std::string_view head = data.substr(0, end + 1);
      bool folded =
          head.find("\n ") != std::string_view::npos || head.find("\n\t") != std::string_view::npos;
      co_return folded ? Head::kFolded : Head::kComplete;
    }
    scanned = data.size();
    if (data.size() >= kHeaderLimit) co_return Head::kTooLarge;
    // Room grows with what arrived (1 KiB first): an idle connection holds next to nothing.
    const std::size_t room = std::clamp<std::size_t>(data.size(), 1024, 16384);
    beast::error_code ec;
    std::size_t n =
        co_await stream.async_read_some(buffer.prepare(std::min(kHeaderLimit - data.size(), room)),
                                        net::redirect_error(kUseAwaitable, ec));
    buffer.commit(n);
    if (ec) co_return Head::kClosed;
  }
}

// Any request header; Authorization (an API key) must be named: "*" does not cover it.
constexpr const char* kAllowHeaders = "*, Authorization";

// Answers a refused request (or connection) with an OpenAI error; the caller closes.
net::awaitable<void> write_refusal(beast::tcp_stream& stream, const Refusal& refusal) {
  http::response<http::string_body> res{static_cast<http::status>(refusal.status), 11};
  res.set(http::field::server, "lmserve");
  res.set(http::field::content_type, "application/json");
  res.set(http::field::access_control_allow_methods, "*");
  res.set(http::field::access_control_allow_headers, kAllowHeaders);
  res.body() =
      dump_json(error_body(refusal.status >= 500 ? "server_error" : "invalid_request_error",
                           refusal.code, std::nullopt, refusal.message));
  res.keep_alive(false);
  res.prepare_payload();
  beast::error_code ec;
  stream.expires_after(std::chrono::seconds(10));
  co_await http::async_write(stream, res, net::redirect_error(kUseAwaitable, ec));
}

// Closes after reading (and dropping) what the client may still be sending, e.g. the rest
// of a refused body, for a moment: closing with unread input would reset the connection and
// could destroy the response before the client read it. Bounded in time and bytes.
net::awaitable<void> linger_close(beast::tcp_stream& stream, std::size_t drain_limit,
                                  std::chrono::steady_clock::duration linger) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  char scratch[16384];
  std::size_t drained = 0;
  stream.expires_after(linger);
  while (!ec && drained < drain_limit) {
    drained += co_await stream.async_read_some(net::buffer(scratch),
                                               net::redirect_error(kUseAwaitable, ec));
  }
  stream.socket().close(ec);
}

bool is_loopback_name(std::string_view host) {
  return host == "localhost" || host == "127.0.0.1" || host == "[::1]";
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

HostPolicy::HostPolicy(std::vector<std::string> allowed) {
  for (std::string& name : allowed) {
    if (name == "*") any_ = true;
    allowed_.push_back(lower(name));
  }
}

bool HostPolicy::allows(std::string_view host_header) const {
  if (any_) return true;
  std::string host = lower(trim(host_header));
  // Drop the port: what follows the last ':' after an IPv6 literal's ']' (or anywhere).
  std::size_t colon = host.rfind(':');
  if (colon != std::string::npos && (host.front() != '[' || host.rfind(']') < colon)) {
    std::string_view port = std::string_view(host).substr(colon + 1);
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    host.resize(colon);
  }
  if (is_loopback_name(host)) return true;
  return std::find(allowed_.begin(), allowed_.end(), host) != allowed_.end();
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
  std::function<void()> on_closed;
  std::optional<net::steady_timer> poll_timer;  // while the read buffer is full
};

HttpExchange::HttpExchange(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                           http::request_parser<http::string_body>& parser, const CorsPolicy& cors,
                           std::size_t max_body_bytes,
                           std::chrono::steady_clock::duration write_timeout)
    : stream_(stream),
      buffer_(buffer),
      parser_(parser),
      max_body_bytes_(max_body_bytes),
      write_timeout_(write_timeout),
      path_(routing_path(
          std::string_view(parser.get().target().data(), parser.get().target().size()))),
      keep_alive_(parser.get().keep_alive()) {
  auto origin = parser.get()[http::field::origin];
  allow_origin_ = cors.allow_origin(std::string_view(origin.data(), origin.size()));
  foreign_origin_ = !origin.empty() && !allow_origin_;
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
  fields.set(http::field::access_control_allow_headers, kAllowHeaders);
}

net::awaitable<std::string_view> HttpExchange::read_body(std::size_t limit) {
  limit = std::min(limit, max_body_bytes_);
  HttpRequest& req = parser_.get();
  // Beast frames a request with neither header as having no body at all.
  if (req.method() == http::verb::post && !parser_.content_length() && !parser_.chunked()) {
    throw transport_error(
        411, "length_required",
        "A request body is required: send Content-Length or Transfer-Encoding: chunked");
  }

  auto content_type = req[http::field::content_type];
  // A page on another origin can send a body without a preflight only with no type or a
  // form type; a JSON type needs the preflight, which such an origin does not pass.
  if (content_type.empty() && foreign_origin_) {
    throw ApiError(415, "invalid_request_error", "unsupported_media_type", std::nullopt,
                   "A request from the origin '" + std::string(as_view(req[http::field::origin])) +
                       "' must send Content-Type: application/json");
  }
  if (!content_type.empty() &&
      !is_json_media_type(std::string_view(content_type.data(), content_type.size()))) {
    throw ApiError(415, "invalid_request_error", "unsupported_media_type", std::nullopt,
                   "Content-Type must be application/json, got '" +
                       std::string(content_type.data(), content_type.size()) + "'");
  }

  if (!parser_.is_done()) {
    if (auto length = parser_.content_length(); length && *length > limit) {
      keep_alive_ = false;
      throw body_too_large(limit);
    }
    parser_.body_limit(limit);
    auto expect = req[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      stream_.expires_after(write_timeout_);
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
      if (ec == http::error::body_limit) throw body_too_large(limit);
      if (ec == http::error::buffer_overflow) {
        throw transport_error(431, "request_header_fields_too_large",
                              "A chunk-size line or the trailer is over " +
                                  std::to_string(kMaxBufferedBytes) + " bytes");
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
  stream_.expires_after(write_timeout_);
  co_await http::async_write(stream_, res, net::redirect_error(kUseAwaitable, ec));
  if (ec) write_failed(ec);
}

void HttpExchange::write_failed(const beast::error_code& ec) {
  keep_alive_ = false;
  stream_ok_ = false;
  if (ec == beast::error::timeout || ec == net::error::timed_out) log_write_timeout();
}

void HttpExchange::log_write_timeout() const {
  spdlog::warn(
      "http: {} {}: the client took no response bytes for {:.1f} s (--write-timeout); "
      "closing",
      as_view(request().method_string()), as_view(request().target()),
      std::chrono::duration<double>(write_timeout_).count());
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
  stream_.expires_after(write_timeout_);
  co_await http::async_write_header(stream_, serializer, net::redirect_error(kUseAwaitable, ec));
  if (ec) write_failed(ec);
  co_return stream_ok_;
}

net::awaitable<bool> HttpExchange::write_buffers(std::string_view data, bool chunk) {
  if (!stream_ok_) co_return false;
  beast::error_code ec;
  stream_.expires_after(write_timeout_);
  if (chunk) {
    co_await net::async_write(stream_,
                              http::make_chunk(net::const_buffer(data.data(), data.size())),
                              net::redirect_error(kUseAwaitable, ec));
  } else {
    co_await net::async_write(stream_, net::const_buffer(data.data(), data.size()),
                              net::redirect_error(kUseAwaitable, ec));
  }
  if (ec) write_failed(ec);
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
  stream_.expires_after(write_timeout_);
  co_await net::async_write(stream_, http::make_chunk_last(),
                            net::redirect_error(kUseAwaitable, ec));
  if (ec) write_failed(ec);
  co_return stream_ok_;
}

void HttpExchange::watch_peer(std::function<void()> on_closed) {
  unwatch_peer();
  if (!watch_) watch_ = std::make_shared<PeerWatch>();
  watch_->active = true;
  watch_->on_closed = std::move(on_closed);
  arm_watch(++watch_->generation);
}

namespace {

// kTimedOut: the kernel dropped the connection after the write timeout (TCP_USER_TIMEOUT).
enum class Peer { kThere, kGone, kTimedOut, kBufferFull };

// Moves what the client has sent into `buffer` (bytes it pipelines belong to its next
// request), so that readability again means "more bytes or closed". A half-close counts as
// gone, as it always did. With the buffer full only poll() can still tell.
Peer take_pipelined(int fd, beast::flat_buffer& buffer) {
  for (;;) {
    std::size_t room = buffer.max_size() - buffer.size();
    if (room == 0) {
      pollfd p{fd, POLLRDHUP, 0};
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        return Peer::kGone;
      }
      return Peer::kBufferFull;
    }
    auto space = buffer.prepare(std::min<std::size_t>(room, 16384));
    ssize_t n = ::recv(fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n > 0) {
      buffer.commit(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return Peer::kThere;
    return n < 0 && errno == ETIMEDOUT ? Peer::kTimedOut : Peer::kGone;
  }
}

}  // namespace

void HttpExchange::arm_watch(std::uint64_t generation) {
  // Runs on the connection's strand, like the handler, so the checks below do not race; a
  // stale completion (unwatched, or the exchange gone) returns before touching `this`.
  auto on_event = [this, watch = watch_, generation](const boost::system::error_code& ec) {
    if (!watch->active || watch->generation != generation) return;
    if (ec == net::error::operation_aborted) {
      watch->active = false;
      return;
    }
    Peer peer = ec ? Peer::kGone : take_pipelined(stream_.socket().native_handle(), buffer_);
    if (peer == Peer::kThere) return arm_watch(generation);
    if (peer == Peer::kBufferFull) {
      if (!watch->poll_timer) watch->poll_timer.emplace(stream_.get_executor());
      watch->poll_timer->expires_after(std::chrono::milliseconds(100));
      watch->poll_timer->async_wait([this, watch, generation](const boost::system::error_code& e) {
        if (!watch->active || watch->generation != generation || e) return;
        Peer again = take_pipelined(stream_.socket().native_handle(), buffer_);
        if (again == Peer::kGone) {
          watch->active = false;
          watch->on_closed();
        } else {
          arm_watch(generation);
        }
      });
      return;
    }
    if (peer == Peer::kTimedOut) log_write_timeout();
    watch->active = false;
    watch->on_closed();
  };
  stream_.socket().async_wait(tcp::socket::wait_read, std::move(on_event));
}

void HttpExchange::unwatch_peer() {
  if (!watch_ || !watch_->active) return;
  watch_->active = false;
  ++watch_->generation;
  if (watch_->poll_timer) watch_->poll_timer->cancel();
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
      hosts_(options_.allowed_hosts),
      max_connections_(std::max<std::size_t>(1, options_.max_connections)),
      ioc_(std::max(1, options_.io_threads)),
      accept_strand_(net::make_strand(ioc_)),
      acceptor_(accept_strand_) {}

HttpServer::~HttpServer() { destroying_.store(true); }

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
  loopback_ = endpoint.address().is_loopback();
  // Half the descriptors stay free for refusing connections, the model and the engine. The
  // soft limit is raised towards the hard one as far as the cap needs (often 1024 of 500k+).
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    const rlim_t wanted = 2 * static_cast<rlim_t>(max_connections_);
    if (files.rlim_cur < wanted) {
      rlimit raised = files;
      raised.rlim_cur =
          raised.rlim_max == RLIM_INFINITY ? wanted : std::min(raised.rlim_max, wanted);
      if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) files = raised;
    }
    const std::size_t cap = std::max<std::size_t>(1, files.rlim_cur / 2);
    if (cap < max_connections_) {
      spdlog::warn("http: --max-connections {} lowered to {}: half the open-file limit ({})",
                   max_connections_, cap, files.rlim_cur);
      max_connections_ = cap;
    }
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
  if (last && stopping_.load() && !destroying_.load()) ioc_.stop();
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
    // The kernel drops a peer that keeps its receive window shut (a client that stopped
    // reading) or acknowledges nothing for the write timeout: the send buffer, autotuned up
    // to megabytes, would otherwise take a slow stream many minutes to fill before a write
    // blocks long enough for the stream's own timer. The next write then fails.
    const unsigned user_timeout_ms =
        static_cast<unsigned>(std::max(1.0, options_.write_timeout_s * 1000));
    ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
                 sizeof user_timeout_ms);
    auto executor = socket.get_executor();
    if (open_connections_.load() >= max_connections_) {
      net::co_spawn(executor, refuse_connection(std::move(socket)), net::detached);
      continue;
    }
    ++open_connections_;  // counted here, so that a burst of accepts sees it at once
    net::co_spawn(executor, session(std::move(socket)), net::detached);
  }
}

net::awaitable<void> HttpServer::refuse_connection(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  // A named local: GCC 12 miscompiles temporaries inside a co_await expression.
  const Refusal refusal{
      503, "too_many_connections",
      "Too many open connections (limit " + std::to_string(max_connections_) + "); retry later"};
  co_await write_refusal(stream, refusal);
  co_await linger_close(stream, kMaxBufferedBytes, std::chrono::seconds(1));
}

std::optional<Refusal> HttpServer::check_head(const HttpRequest& req) const {
  auto hosts = req.equal_range(http::field::host);
  std::size_t host_count = static_cast<std::size_t>(std::distance(hosts.first, hosts.second));
  if (host_count > 1 || (req.version() >= 11 && host_count == 0)) {
    return Refusal{400, "invalid_request", "An HTTP/1.1 request needs exactly one Host header"};
  }
  if (host_count == 1 && loopback_ && !hosts_.allows(as_view(hosts.first->value()))) {
    return Refusal{403, "host_not_allowed",
                   "Host '" + std::string(as_view(hosts.first->value())) +
                       "' is not allowed (a loopback server accepts localhost, 127.0.0.1 and "
                       "[::1]; see --allowed-host)"};
  }
  return check_transfer_encoding(req);
}

net::awaitable<void> HttpServer::session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(kMaxBufferedBytes);
  const auto idle = seconds(options_.idle_timeout_s);
  // However the session ends, even destroyed mid-await, the connection leaves the registry
  // and the count (after `stream` is gone from it).
  struct Registration {
    HttpServer& server;
    std::shared_ptr<Connection> connection;
    std::list<std::shared_ptr<Connection>>::iterator entry;
    ~Registration() {
      connection->stream = nullptr;
      {
        std::lock_guard lock(server.connections_mutex_);
        server.connections_.erase(entry);
      }
      --server.open_connections_;
      server.connection_ended();
    }
  };
  auto connection = std::make_shared<Connection>();
  connection->executor = stream.get_executor();
  connection->stream = &stream;
  std::unique_lock registry_lock(connections_mutex_);
  Registration registration{*this, connection, connections_.insert(connections_.end(), connection)};
  registry_lock.unlock();
  try {
    for (;;) {
      connection->idle = true;
      if (stopping_.load()) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(options_.max_body_bytes);
      stream.expires_after(idle);
      Head head = co_await read_head(stream, buffer);
      if (head == Head::kClosed) break;
      beast::error_code ec;
      if (head == Head::kComplete) {
        co_await http::async_read_header(stream, buffer, parser,
                                         net::redirect_error(kUseAwaitable, ec));
        if (ec && is_disconnect(ec)) break;
      }
      std::optional<Refusal> refusal;
      if (head == Head::kFolded) {
        refusal = Refusal{400, "invalid_request", "Obsolete line folding in a header field"};
      } else if (head == Head::kTooLarge || ec == http::error::header_limit ||
                 ec == http::error::buffer_overflow) {
        refusal = Refusal{431, "request_header_fields_too_large", "Request headers too large"};
      } else if (ec == http::error::body_limit) {
        refusal = Refusal{
            413, "request_too_large",
            "Request body too large (limit " + std::to_string(options_.max_body_bytes) + " bytes)"};
      } else if (ec) {
        refusal = Refusal{400, "invalid_request", "Malformed HTTP request: " + ec.message()};
      } else {
        refusal = check_head(parser.get());
      }
      if (refusal) {
        // The request could not be framed or is not accepted: answer once, then close.
        co_await write_refusal(stream, *refusal);
        break;
      }

      connection->idle = false;
      auto started = std::chrono::steady_clock::now();
      HttpExchange exchange(stream, buffer, parser, cors_, options_.max_body_bytes,
                            seconds(options_.write_timeout_s));
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
      spdlog::info("{} {} {} {:.1f}ms", as_view(req.method_string()), as_view(req.target()),
                   exchange.status(), ms);
      if (!exchange.keep_alive() || stopping_.load()) break;
    }
  } catch (const std::exception& e) {
    spdlog::error("http: connection failed: {}", e.what());
  }
  // A body one limit long, plus slack, may still be on its way: at most two seconds.
  co_await linger_close(stream, options_.max_body_bytes + (1u << 20), std::chrono::seconds(2));
}

}  // namespace lmserve::server
