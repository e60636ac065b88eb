// Download progress on stderr: a bar redrawn in place on a terminal, plain log lines
// (start, every few seconds, end) when stderr is a file or a pipe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lmserve::hub {

class DownloadProgress {
 public:
  // `already`: bytes kept from an earlier, interrupted transfer.
  DownloadProgress(std::string label, std::uint64_t total, std::uint64_t already);
  ~DownloadProgress();  // ends an unfinished bar's line, so what is logged next starts clean
  DownloadProgress(const DownloadProgress&) = delete;
  DownloadProgress& operator=(const DownloadProgress&) = delete;

  void update(std::uint64_t done);  // bytes of the file present so far
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void draw();

  std::string label_;
  std::uint64_t total_;
  std::uint64_t start_bytes_;
  std::uint64_t done_;
  bool terminal_;
  bool finished_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_shown_ = start_;
};

}  // namespace lmserve::hub
