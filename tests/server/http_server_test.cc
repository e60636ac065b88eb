// The HTTP transport on its own: framing, keep-alive, limits, CORS, streaming, peer close.
#include "server/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_http_client.h"

namespace lmserve::server {
namespace {

using testing::TestConnection;
using testing::TestResponse;
using json = nlohmann::json;

void expect_error(const TestResponse& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  json body = json::parse(r.body);
  ASSERT_TRUE(body.contains("error")) << r.body;
  for (const char* key : {"message", "type", "param", "code"}) {
    EXPECT_TRUE(body["error"].contains(key)) << key << " missing in " << r.body;
  }
  EXPECT_EQ(body["error"]["code"], code) << r.body;
}

// (GCC 12 miscompiles string literals passed straight into co_await expressions.)
constexpr std::string_view kTextPlain = "text/plain";
constexpr std::string_view kEventStream = "text/event-stream";
constexpr std::string_view kOne = "one\n", kTwo = "two\n", kThree = "three\n";
constexpr std::string_view kStarted = "started\n", kDone = "done\n";

// A server with a few test routes, running on its own threads.
class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    if (options.max_body_bytes == (16u << 20)) options.max_body_bytes = 1024;
    server_ =
        std::make_unique<HttpServer>(options, [this](HttpExchange& ex) { return handle(ex); });
    port_ = server_->listen().port();
    thread_ = std::thread([this] {
      server_->run();
      run_returned_.set_value();
    });
  }

  // Graceful shutdown; true when run() returned within `within` (no connection left over).
  bool shuts_down_within(std::chrono::milliseconds within) {
    server_->shutdown(std::chrono::seconds(20));
    return run_returned_.get_future().wait_for(within) == std::future_status::ready;
  }

  void TearDown() override {
    release_slow_.store(true);
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  net::awaitable<void> handle(HttpExchange& ex) {
    std::string path(ex.path());
    if (path == "/echo") {
      std::string body(co_await ex.read_body());
      Headers headers{{std::string("X-Path"), path}};
      co_await ex.respond(http::status::ok, body, kTextPlain, headers);
    } else if (path == "/stream") {
      co_await ex.begin_stream(kEventStream);
      for (std::string_view piece : {kOne, kTwo, kThree}) co_await ex.write_stream(piece);
      co_await ex.end_stream();
    } else if (path == "/api-error") {
      throw ApiError::invalid_request("invalid_value", "field", "bad field");
    } else if (path == "/crash") {
      throw std::runtime_error("boom");
    } else if (path == "/watch") {
      // Waits until the peer goes away (or 10 s), and reports whether it noticed.
      net::steady_timer timer(ex.executor(), std::chrono::seconds(10));
      bool fired = false;
      ex.watch_peer([&] {
        fired = true;
        timer.cancel();
      });
      watching_.set_value();
      boost::system::error_code ec;
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      peer_closed_.set_value(fired);
      ex.abandon();
    } else if (path == "/hold") {
      // Watches the peer until the test releases it, then answers.
      ex.watch_peer([] {});
      holding_.set_value();
      net::steady_timer timer(ex.executor());
      while (!release_slow_.load()) {
        timer.expires_after(std::chrono::milliseconds(5));
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      co_await ex.respond(http::status::ok, "held", kTextPlain);
    } else if (path == "/flood") {
      // Streams until a write fails, and reports how long that took.
      const auto started = std::chrono::steady_clock::now();
      const std::string piece(16384, 'x');
      bool written = co_await ex.begin_stream(kTextPlain);
      while (written) written = co_await ex.write_stream(piece);
      flood_failed_after_.set_value(std::chrono::steady_clock::now() - started);
    } else if (path == "/slow") {
      // Streams a first piece, then holds the connection until the test releases it.
      co_await ex.begin_stream(kTextPlain);
      co_await ex.write_stream(kStarted);
      net::steady_timer timer(ex.executor());
      while (!release_slow_.load()) {
        timer.expires_after(std::chrono::milliseconds(5));
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      co_await ex.write_stream(kDone);
      co_await ex.end_stream();
    } else {
      co_await ex.respond(http::status::ok, "path=" + path, kTextPlain);
    }
  }

  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  unsigned short port_ = 0;
  std::promise<bool> peer_closed_;
  std::promise<void> run_returned_;
  std::promise<void> holding_;
  std::promise<void> watching_;
  std::promise<std::chrono::steady_clock::duration> flood_failed_after_;
  std::atomic<bool> release_slow_{false};
};

TEST(RoutingPath, DropsQueryFragmentAndOneTrailingSlash) {
  EXPECT_EQ(routing_path("/v1/models?limit=5"), "/v1/models");
  EXPECT_EQ(routing_path("/v1/models/"), "/v1/models");
  EXPECT_EQ(routing_path("/v1/models//"), "/v1/models/");
  EXPECT_EQ(routing_path("/health#x"), "/health");
  EXPECT_EQ(routing_path("/"), "/");
}

TEST(CorsPolicy, DefaultAllowsOnlyLoopbackOrigins) {
  CorsPolicy cors({});
  EXPECT_FALSE(cors.wildcard());
  EXPECT_EQ(cors.allow_origin("http://localhost:3000"), "http://localhost:3000");
  EXPECT_EQ(cors.allow_origin("http://localhost"), "http://localhost");
  EXPECT_EQ(cors.allow_origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
  EXPECT_EQ(cors.allow_origin("http://[::1]:5173"), "http://[::1]:5173");
  EXPECT_FALSE(cors.allow_origin("https://evil.example"));
  EXPECT_FALSE(cors.allow_origin("http://localhost.evil.example"));
  EXPECT_FALSE(cors.allow_origin("http://localhost:80x"));
  EXPECT_FALSE(cors.allow_origin(""));
}

TEST(CorsPolicy, WildcardAndExactEntries) {
  EXPECT_EQ(CorsPolicy({"*"}).allow_origin("https://a.example"), "*");
  CorsPolicy exact({"https://app.example"});
  EXPECT_EQ(exact.allow_origin("https://app.example"), "https://app.example");
  EXPECT_FALSE(exact.allow_origin("http://localhost:3000"));
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  TestConnection c(port_);
  for (int i = 0; i < 3; ++i) {
    auto r = c.request("POST", "/echo?x=1", R"({"i":)" + std::to_string(i) + "}",
                       testing::json_headers());
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"i":)" + std::to_string(i) + "}");
    EXPECT_EQ(r.header("x-path"), "/echo");
    EXPECT_TRUE(r.keep_alive);
    EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));
  }
}

TEST_F(HttpServerTest, Http10ClientGetsAnAnswerAndAClose) {
  start();
  TestConnection c(port_);
  auto r = c.request("GET", "/hello", "", {}, "HTTP/1.0");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.version, 10u);
  EXPECT_EQ(r.body, "path=/hello");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, Http10KeepAliveIsHonoured) {
  start();
  TestConnection c(port_);
  auto r = c.request("GET", "/a", "", {{"Connection", "keep-alive"}}, "HTTP/1.0");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(c.request("GET", "/b", "", {{"Connection", "keep-alive"}}, "HTTP/1.0").body, "path=/b");
}

TEST_F(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  start();
  TestConnection c(port_);
  c.send(
      "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n4\r\n:12}\r\n0\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"a":12})");
  EXPECT_EQ(c.request("GET", "/next").status, 200);  // still in sync
}

TEST_F(HttpServerTest, PostWithoutLengthIs411AndTheConnectionSurvives) {
  start();
  TestConnection c(port_);
  c.send("POST /echo HTTP/1.1\r\nHost: localhost\r\n\r\n");
  expect_error(c.read_response(), 411, "length_required");
  EXPECT_EQ(c.request("GET", "/next").status, 200);
}

TEST_F(HttpServerTest, OversizedBodyIs413ByLengthOrByChunks) {
  start();
  {
    TestConnection c(port_);
    c.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n");
    auto r = c.read_response();
    expect_error(r, 413, "request_too_large");
    EXPECT_TRUE(c.wait_closed());
  }
  {
    TestConnection c(port_);
    std::string chunk(1000, 'x');
    c.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send("3e8\r\n" + chunk + "\r\n3e8\r\n" + chunk + "\r\n0\r\n\r\n");
    expect_error(c.read_response(), 413, "request_too_large");
  }
  {
    TestConnection c(port_);  // exactly at the limit is fine
    std::string body(1024, 'y');
    EXPECT_EQ(c.request("POST", "/echo", body).body, body);
  }
}

TEST_F(HttpServerTest, ContentTypeMustBeJsonOrAbsent) {
  start();
  TestConnection c(port_);
  for (const char* type : {"application/json", "application/json; charset=utf-8",
                           "Application/JSON", "application/vnd.api+json"}) {
    EXPECT_EQ(c.request("POST", "/echo", "{}", {{"Content-Type", type}}).status, 200) << type;
  }
  EXPECT_EQ(c.request("POST", "/echo", "{}").status, 200);  // absent
  for (const char* type :
       {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"}) {
    TestConnection d(port_);
    expect_error(d.request("POST", "/echo", "{}", {{"Content-Type", type}}), 415,
                 "unsupported_media_type");
  }
}

TEST_F(HttpServerTest, ExpectContinueIsAnswered) {
  start();
  TestConnection c(port_);
  c.send(
      "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nExpect: "
      "100-continue\r\n\r\n");
  std::string interim = c.read_until("\r\n\r\n");
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("{}");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{}");
}

TEST_F(HttpServerTest, MalformedRequestGetsJson400ThenClose) {
  start();
  TestConnection c(port_);
  c.send("THIS IS NOT HTTP\r\n\r\n");
  expect_error(c.read_response(), 400, "invalid_request");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, HugeHeadersAre431) {
  start();
  TestConnection c(port_);
  c.send("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n");
  expect_error(c.read_response(), 431, "request_header_fields_too_large");
}

TEST_F(HttpServerTest, CorsHeadersOnEveryResponse) {
  start();
  TestConnection c(port_);
  auto ok = c.request("GET", "/x", "", {{"Origin", "http://localhost:5173"}});
  EXPECT_EQ(ok.header("access-control-allow-origin"), "http://localhost:5173");
  EXPECT_EQ(ok.header("vary"), "Origin");
  EXPECT_EQ(ok.header("access-control-allow-methods"), "*");
  EXPECT_EQ(ok.header("access-control-allow-headers"), "*, Authorization");
  auto foreign = c.request("GET", "/x", "", {{"Origin", "https://evil.example"}});
  EXPECT_FALSE(foreign.has_header("access-control-allow-origin"));
  EXPECT_EQ(foreign.header("access-control-allow-methods"), "*");
  auto err = c.request("GET", "/api-error", "", {{"Origin", "http://127.0.0.1:9"}});
  EXPECT_EQ(err.header("access-control-allow-origin"), "http://127.0.0.1:9");
}

TEST_F(HttpServerTest, WildcardCors) {
  HttpServerOptions options;
  options.cors_origins = {"*"};
  start(options);
  TestConnection c(port_);
  auto r = c.request("GET", "/x", "", {{"Origin", "https://anything.example"}});
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  EXPECT_FALSE(r.has_header("vary"));
}

TEST_F(HttpServerTest, HandlerErrorsBecomeOpenAiErrorBodies) {
  start();
  TestConnection c(port_);
  auto r = c.request("GET", "/api-error");
  expect_error(r, 400, "invalid_value");
  EXPECT_EQ(json::parse(r.body)["error"]["param"], "field");
  auto crash = c.request("GET", "/crash");
  expect_error(crash, 500, "internal_error");
  EXPECT_EQ(json::parse(crash.body)["error"]["type"], "server_error");
  EXPECT_EQ(c.request("GET", "/after").status, 200);  // the connection survived both
}

TEST_F(HttpServerTest, StreamIsChunkedOnHttp11AndConnectionReusable) {
  start();
  TestConnection c(port_);
  auto r = c.request("GET", "/stream");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  EXPECT_EQ(r.body, "one\ntwo\nthree\n");
  EXPECT_EQ(c.request("GET", "/after").status, 200);
}

TEST_F(HttpServerTest, StreamIsCloseDelimitedOnHttp10) {
  start();
  TestConnection c(port_);
  auto r = c.request("GET", "/stream", "", {}, "HTTP/1.0");
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.has_header("transfer-encoding"));
  EXPECT_EQ(r.body, "one\ntwo\nthree\n");
}

TEST_F(HttpServerTest, PeerCloseIsNoticedWhileTheHandlerWaits) {
  start();
  auto noticed = peer_closed_.get_future();
  {
    TestConnection c(port_);
    c.send_request("GET", "/watch");
  }  // hang up: buffered request bytes are still read, then the watch sees the FIN
  ASSERT_EQ(noticed.wait_for(std::chrono::seconds(8)), std::future_status::ready);
  EXPECT_TRUE(noticed.get());
}

TEST_F(HttpServerTest, AStreamingClientDoesNotBlockOthersEvenWithOneThread) {
  HttpServerOptions options;
  options.io_threads = 1;
  start(options);
  TestConnection slow(port_);
  slow.send_request("GET", "/slow");
  EXPECT_NE(slow.read_until("started\n").find("started"), std::string::npos);
  TestConnection other(port_);
  EXPECT_EQ(other.request("GET", "/quick").body, "path=/quick");
  release_slow_.store(true);
  EXPECT_NE(slow.read_until("0\r\n\r\n").find("done"), std::string::npos);
}

TEST_F(HttpServerTest, AClientThatStopsReadingIsCutOffAfterTheWriteTimeout) {
  HttpServerOptions options;
  options.io_threads = 1;
  options.write_timeout_s = 1;
  start(options);
  auto failed_after = flood_failed_after_.get_future();
  TestConnection stalled(port_, /*receive_buffer_bytes=*/4096);
  stalled.send_request("GET", "/flood");  // and never read
  // The others are served while the stalled stream's write waits.
  for (int i = 0; i < 3; ++i) {
    TestConnection other(port_);
    EXPECT_EQ(other.request("GET", "/quick").body, "path=/quick");
  }
  ASSERT_EQ(failed_after.wait_for(std::chrono::seconds(6)), std::future_status::ready);
  const double seconds = std::chrono::duration<double>(failed_after.get()).count();
  EXPECT_GE(seconds, 1.0);  // the write waited for the timeout,
  EXPECT_LT(seconds, 4.0);  // and no longer than it and the buffers' filling
  EXPECT_TRUE(stalled.wait_closed());
}

TEST(HostPolicy, LoopbackNamesAnyPortAndListedNames) {
  HostPolicy loopback({});
  for (const char* host :
       {"localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8080"}) {
    EXPECT_TRUE(loopback.allows(host)) << host;
  }
  for (const char* host : {"evil.example", "evil.example:8080", "localhost.evil.example",
                           "127.0.0.1.nip.io", "localhost:80x", "[::1]x", ""}) {
    EXPECT_FALSE(loopback.allows(host)) << host;
  }
  HostPolicy listed({"MyBox.lan"});
  EXPECT_TRUE(listed.allows("mybox.lan:8080"));
  EXPECT_TRUE(listed.allows("localhost"));
  EXPECT_FALSE(listed.allows("other.lan"));
  EXPECT_TRUE(HostPolicy({"*"}).allows("anything.example"));
}

// A request head sent raw, with `fields` (CRLF-terminated lines) after the request line.
std::string raw_post(const std::string& fields, const std::string& body = "") {
  return "POST /echo HTTP/1.1\r\n" + fields + "\r\n" + body;
}

TEST_F(HttpServerTest, ForeignHostIsRefusedOnALoopbackServer) {
  start();
  for (const char* host : {"evil.example", "evil.example:8080", "127.0.0.1.nip.io"}) {
    TestConnection c(port_);
    c.send(std::string("GET /x HTTP/1.1\r\nHost: ") + host + "\r\n\r\n");
    expect_error(c.read_response(), 403, "host_not_allowed");
    EXPECT_TRUE(c.wait_closed());
  }
  TestConnection c(port_);
  for (const char* host : {"localhost:8080", "127.0.0.1", "[::1]:1234"}) {
    c.send(std::string("GET /x HTTP/1.1\r\nHost: ") + host + "\r\n\r\n");
    EXPECT_EQ(c.read_response().status, 200) << host;
  }
}

TEST_F(HttpServerTest, AllowedHostsWidenTheHostCheck) {
  HttpServerOptions options;
  options.allowed_hosts = {"mybox.lan"};
  start(options);
  TestConnection c(port_);
  c.send("GET /x HTTP/1.1\r\nHost: MyBox.lan:8080\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 200);
  c.send("GET /x HTTP/1.1\r\nHost: other.lan\r\n\r\n");
  expect_error(c.read_response(), 403, "host_not_allowed");
}

TEST_F(HttpServerTest, Http11NeedsExactlyOneHost) {
  start();
  {
    TestConnection c(port_);
    c.send("GET /x HTTP/1.1\r\n\r\n");
    expect_error(c.read_response(), 400, "invalid_request");
  }
  {
    TestConnection c(port_);
    c.send("GET /x HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n");
    expect_error(c.read_response(), 400, "invalid_request");
  }
  TestConnection c(port_);
  c.send("GET /x HTTP/1.0\r\n\r\n");  // HTTP/1.0 has no Host requirement
  EXPECT_EQ(c.read_response().status, 200);
}

TEST_F(HttpServerTest, ForeignOriginPostWithoutContentTypeIs415) {
  start();
  // What fetch(url, {method: 'POST', mode: 'no-cors', body}) with a typeless body sends.
  for (const char* origin : {"https://evil.example", "null"}) {
    TestConnection c(port_);
    auto r = c.request("POST", "/echo", "{}", {{"Origin", origin}});
    expect_error(r, 415, "unsupported_media_type");
  }
  TestConnection c(port_);
  EXPECT_EQ(c.request("POST", "/echo", "{}", {{"Origin", "http://localhost:3000"}}).status, 200);
  EXPECT_EQ(c.request("POST", "/echo", "{}",
                      {{"Origin", "https://evil.example"}, {"Content-Type", "application/json"}})
                .status,
            200);
}

TEST_F(HttpServerTest, TransferCodingsOtherThanAFinalChunkedAreRefused) {
  start();
  const std::string chunked_body = "2\r\n{}\r\n0\r\n\r\n";
  for (const char* coding : {"xchunked", "chunked, gzip", "chunked, chunked", "gzip"}) {
    TestConnection c(port_);
    c.send(raw_post(std::string("Host: localhost\r\nTransfer-Encoding: ") + coding + "\r\n",
                    chunked_body));
    expect_error(c.read_response(), 400, "invalid_request");
  }
  {
    TestConnection c(port_);
    c.send(raw_post("Host: localhost\r\nTransfer-Encoding: gzip, chunked\r\n", chunked_body));
    expect_error(c.read_response(), 501, "unsupported_transfer_encoding");
  }
  TestConnection c(port_);
  c.send(raw_post("Host: localhost\r\nTransfer-Encoding: Chunked\r\n", chunked_body));
  EXPECT_EQ(c.read_response().body, "{}");
}

TEST_F(HttpServerTest, ObsFoldedHeadersAre400) {
  start();
  for (const char* fold : {"\r\n folded", "\r\n\tfolded"}) {
    TestConnection c(port_);
    c.send(std::string("GET /x HTTP/1.1\r\nHost: localhost\r\nX-A: a") + fold + "\r\n\r\n");
    expect_error(c.read_response(), 400, "invalid_request");
  }
}

TEST_F(HttpServerTest, ChunkExtensionsAndTrailersAreBounded) {
  start();
  const std::string head = "Host: localhost\r\nTransfer-Encoding: chunked\r\n";
  {
    TestConnection c(port_);  // one chunk-size line with 200 KB of extension
    c.send(raw_post(head, "2;x=" + std::string(200000, 'a') + "\r\n{}\r\n0\r\n\r\n"));
    expect_error(c.read_response(), 431, "request_header_fields_too_large");
    EXPECT_TRUE(c.wait_closed());
  }
  {
    TestConnection c(port_);  // a trailer of 200 KB in small fields
    std::string trailer;
    while (trailer.size() < 200000) trailer += "X-T: y\r\n";
    c.send(raw_post(head, "2\r\n{}\r\n0\r\n" + trailer + "\r\n"));
    expect_error(c.read_response(), 431, "request_header_fields_too_large");
  }
  {
    TestConnection c(port_);  // small extensions and trailers are fine
    c.send(raw_post(head, "2;a=b\r\n{}\r\n0\r\nX-T: y\r\n\r\n"));
    EXPECT_EQ(c.read_response().body, "{}");
  }
}

TEST_F(HttpServerTest, AHugeTrailerFieldIsAnsweredAndTheConnectionReleased) {
  start();
  {
    TestConnection c(port_);
    c.send(raw_post("Host: localhost\r\nTransfer-Encoding: chunked\r\n",
                    "2\r\n{}\r\n0\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n"));
    expect_error(c.read_response(), 431, "request_header_fields_too_large");
    EXPECT_TRUE(c.wait_closed());
  }
  EXPECT_TRUE(shuts_down_within(std::chrono::seconds(5)));  // no registration left behind
}

TEST_F(HttpServerTest, PeerCloseIsNoticedAfterPipelinedBytes) {
  start();
  auto noticed = peer_closed_.get_future();
  {
    TestConnection c(port_);
    c.send_request("GET", "/watch");
    // One pipelined byte, once the handler watches (before, it would be read with the head).
    ASSERT_EQ(watching_.get_future().wait_for(std::chrono::seconds(8)), std::future_status::ready);
    c.send("G");
  }
  ASSERT_EQ(noticed.wait_for(std::chrono::seconds(8)), std::future_status::ready);
  EXPECT_TRUE(noticed.get());
}

TEST_F(HttpServerTest, RequestsPipelinedWhileAHandlerWatchesAreServed) {
  start();
  TestConnection c(port_);
  c.send_request("GET", "/hold");
  ASSERT_EQ(holding_.get_future().wait_for(std::chrono::seconds(8)), std::future_status::ready);
  c.send_request("GET", "/next");
  release_slow_.store(true);
  EXPECT_EQ(c.read_response().body, "held");
  EXPECT_EQ(c.read_response().body, "path=/next");
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitGet503) {
  HttpServerOptions options;
  options.max_connections = 2;
  start(options);
  auto first = std::make_unique<TestConnection>(port_);
  TestConnection second(port_);
  EXPECT_EQ(first->request("GET", "/a").status, 200);
  EXPECT_EQ(second.request("GET", "/b").status, 200);
  {
    TestConnection third(port_);
    expect_error(third.read_response(), 503, "too_many_connections");
    EXPECT_TRUE(third.wait_closed());
  }
  first.reset();  // frees a slot, once the server has noticed
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  int status = 0;
  while (status != 200 && std::chrono::steady_clock::now() < deadline) {
    TestConnection next(port_);
    next.send_request("GET", "/c");
    status = next.read_response().status;
  }
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace lmserve::server
