#include "hub/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace lmserve::hub {
namespace {

constexpr auto kBarInterval = std::chrono::milliseconds(100);
constexpr auto kLineInterval = std::chrono::seconds(10);
constexpr int kBarWidth = 30;

// 512 B, 14.2 KiB, 1.0 MiB, 4.7 GiB: three significant digits at most before the point.
std::string size_text(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double value = bytes / 1024.0;
  for (const char* unit : {"KiB", "MiB"}) {
    if (value < 1000) return fmt::format("{:.1f} {}", value, unit);
    value /= 1024;
  }
  return fmt::format("{:.1f} GiB", value);
}

}  // namespace

DownloadProgress::DownloadProgress(std::string label, std::uint64_t total, std::uint64_t already)
    : label_(std::move(label)),
      total_(total),
      start_bytes_(already),
      done_(already),
      terminal_(::isatty(STDERR_FILENO) == 1) {
  if (terminal_) {
    draw();
  } else if (already > 0) {
    spdlog::info("downloading {} ({}), resuming at {}", label_, size_text(total_),
                 size_text(already));
  } else {
    spdlog::info("downloading {} ({})", label_, size_text(total_));
  }
}

DownloadProgress::~DownloadProgress() {
  if (terminal_ && !finished_) std::fputc('\n', stderr);
}

void DownloadProgress::update(std::uint64_t done) {
  done_ = done;
  const auto now = Clock::now();
  if (now - last_shown_ < (terminal_ ? kBarInterval : kLineInterval)) return;
  last_shown_ = now;
  if (terminal_) {
    draw();
  } else {
    spdlog::info("downloading {}: {}% ({} of {})", label_, total_ ? done_ * 100 / total_ : 100,
                 size_text(done_), size_text(total_));
  }
}

void DownloadProgress::finish() {
  finished_ = true;
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  if (terminal_) {
    draw();
    std::fputc('\n', stderr);
  } else {
    spdlog::info("downloaded {} ({} in {:.1f} s)", label_, size_text(total_), seconds);
  }
}

void DownloadProgress::draw() {
  const double fraction = total_ ? static_cast<double>(done_) / total_ : 1.0;
  const int filled = static_cast<int>(fraction * kBarWidth);
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = seconds > 0 ? (done_ - start_bytes_) / seconds / 1048576.0 : 0.0;
  std::fprintf(stderr, "\r%s [%s%s] %3d%% %s/%s %.1f MiB/s\x1b[K", label_.c_str(),
               std::string(filled, '#').c_str(), std::string(kBarWidth - filled, ' ').c_str(),
               static_cast<int>(fraction * 100), size_text(done_).c_str(),
               size_text(total_).c_str(), rate);
  std::fflush(stderr);
}

}  // namespace lmserve::hub
