#include "test_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <cerrno>
#include <stdexcept>

namespace lmserve::server::testing {

namespace http = boost::beast::http;

std::string TestResponse::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

TestConnection::TestConnection(unsigned short port, int receive_buffer_bytes) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) throw std::runtime_error("socket() failed");
  if (receive_buffer_bytes > 0) {  // before connect(): it bounds the window offered
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    throw std::runtime_error("connect() failed");
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

TestConnection::~TestConnection() { close(); }

void TestConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TestConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("send() failed");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void TestConnection::send_request(std::string_view method, std::string_view target,
                                  std::string_view body,
                                  const std::vector<std::pair<std::string, std::string>>& headers,
                                  std::string_view version) {
  std::string out;
  out.append(method).append(" ").append(target).append(" ").append(version).append("\r\n");
  out += "Host: 127.0.0.1\r\n";
  bool has_length = false;
  for (const auto& [name, value] : headers) {
    out += name + ": " + value + "\r\n";
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (lower == "content-length" || lower == "transfer-encoding") has_length = true;
  }
  if (!has_length && (!body.empty() || method == "POST")) {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  out.append(body);
  send(out);
}

bool TestConnection::receive(Clock::time_point deadline) {
  if (eof_) return false;
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw std::runtime_error("timed out waiting for the server");
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      eof_ = true;  // reset counts as closed
      return false;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
}

TestResponse TestConnection::read_response(Clock::duration timeout) {
  auto deadline = Clock::now() + timeout;
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(64u << 20);
  for (;;) {
    if (!pending_.empty()) {
      boost::beast::error_code ec;
      std::size_t used = parser.put(boost::asio::buffer(pending_), ec);
      pending_.erase(0, used);
      if (ec && ec != http::error::need_more)
        throw std::runtime_error("bad response: " + ec.message());
      if (parser.is_done()) break;
      if (used > 0 && !pending_.empty()) continue;
    }
    if (!receive(deadline)) {
      boost::beast::error_code ec;
      parser.put_eof(ec);
      if (!ec && parser.is_done()) break;
      throw std::runtime_error("connection closed before the response was complete");
    }
  }
  auto& res = parser.get();
  TestResponse out;
  out.status = static_cast<int>(res.result_int());
  out.version = res.version();
  for (const auto& field : res) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string value(field.value());
    if (out.headers.count(name)) {
      out.headers[name] += ", " + value;
    } else {
      out.headers[name] = value;
    }
  }
  out.body = res.body();
  out.keep_alive = res.keep_alive();
  return out;
}

TestResponse TestConnection::request(
    std::string_view method, std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view version) {
  send_request(method, target, body, headers, version);
  return read_response();
}

std::string TestConnection::read_until(std::string_view needle, Clock::duration timeout) {
  auto deadline = Clock::now() + timeout;
  while (pending_.find(needle) == std::string::npos) {
    if (!receive(deadline))
      throw std::runtime_error("connection closed before '" + std::string(needle) + "'");
  }
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

bool TestConnection::wait_closed(Clock::duration timeout) {
  auto deadline = Clock::now() + timeout;
  try {
    while (receive(deadline)) pending_.clear();
  } catch (const std::runtime_error&) {
    return false;  // still open at the deadline
  }
  return true;
}

}  // namespace lmserve::server::testing
