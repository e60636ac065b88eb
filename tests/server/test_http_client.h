// A blocking HTTP/1.x test client on raw sockets with deadlines (no sleeps): sends bytes,
// parses responses with Beast's parser, and can watch a stream arrive piece by piece.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::server::testing {

struct TestResponse {
  int status = 0;
  unsigned version = 11;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  bool keep_alive = false;
  std::string header(const std::string& name) const;
  bool has_header(const std::string& name) const { return headers.count(name) != 0; }
};

class TestConnection {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kTimeout{10};

  // receive_buffer_bytes > 0: the socket's SO_RCVBUF (a client that reads nothing then
  // fills quickly).
  explicit TestConnection(unsigned short port, int receive_buffer_bytes = 0);
  ~TestConnection();
  TestConnection(const TestConnection&) = delete;
  TestConnection& operator=(const TestConnection&) = delete;

  void send(std::string_view bytes);
  // Sends a request with Content-Length (when body is non-empty or method is POST).
  void send_request(std::string_view method, std::string_view target, std::string_view body = {},
                    const std::vector<std::pair<std::string, std::string>>& headers = {},
                    std::string_view version = "HTTP/1.1");
  // Reads one complete response (throws on timeout or malformed input).
  TestResponse read_response(Clock::duration timeout = kTimeout);
  TestResponse request(std::string_view method, std::string_view target, std::string_view body = {},
                       const std::vector<std::pair<std::string, std::string>>& headers = {},
                       std::string_view version = "HTTP/1.1");
  // Raw bytes until `needle` was received (returns everything read so far, consumed).
  std::string read_until(std::string_view needle, Clock::duration timeout = kTimeout);
  // True when the server closes the connection within the timeout (pending data skipped).
  bool wait_closed(Clock::duration timeout = kTimeout);
  void close();

 private:
  bool receive(Clock::time_point deadline);  // false on EOF

  int fd_ = -1;
  std::string pending_;
  bool eof_ = false;
};

// POST JSON convenience.
inline std::vector<std::pair<std::string, std::string>> json_headers() {
  return {{"Content-Type", "application/json"}};
}

}  // namespace lmserve::server::testing
