// GET /metrics: the server's counters and latency histograms, with the engine's gauges and
// token counters, in the Prometheus text exposition format 0.0.4.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace lmserve::server {

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Cumulative-bucket histogram with fixed upper bounds (the +Inf bucket is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count samples of metric `name`.
  void render(std::string_view name, std::string& out) const;

 private:
  std::vector<double> upper_bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last = above every bound
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// Thread-safe: requests are counted on the I/O threads, generations on the engine thread.
class ServerMetrics {
 public:
  ServerMetrics();

  // One answered HTTP request. `endpoint` is a route's canonical path (a fixed set).
  void count_request(std::string_view endpoint, int status);
  // A generation's kFinished or kFailed event: its finish reason and timings.
  void record_generation(const engine::GenerationEvent& end);

  // The whole exposition, engine figures taken from `engine`.
  std::string render(const engine::EngineStats& engine) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;  // (endpoint, status)
  std::map<std::string, std::uint64_t> finished_;                  // finish reason
  Histogram queue_seconds_;
  Histogram first_token_seconds_;
  Histogram max_token_gap_seconds_;
  Histogram request_seconds_;
};

}  // namespace lmserve::server
