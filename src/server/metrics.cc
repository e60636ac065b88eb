#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace lmserve::server {
namespace {

// Seconds, from a few milliseconds (a decode step on a small model) to minutes.
const std::vector<double> kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                            2.5,   5,    10,    30,   60,  120,  300};

// Shortest text that reads back as the same double.
std::string format_value(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

// Label values: backslash, double quote and line feed are escaped (format 0.0.4).
std::string escape_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += format_value(value);
  out += '\n';
}

void scalar(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            double value) {
  header(out, name, type, help);
  sample(out, name, "", value);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  auto bucket = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  ++counts_[static_cast<std::size_t>(bucket - upper_bounds_.begin())];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string_view name, std::string& out) const {
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    const double bound = i < upper_bounds_.size() ? upper_bounds_[i] : INFINITY;
    sample(out, bucket, "le=\"" + format_value(bound) + "\"", static_cast<double>(cumulative));
  }
  sample(out, std::string(name) + "_sum", "", sum_);
  sample(out, std::string(name) + "_count", "", static_cast<double>(count_));
}

ServerMetrics::ServerMetrics()
    : queue_seconds_(kLatencyBounds),
      first_token_seconds_(kLatencyBounds),
      max_token_gap_seconds_(kLatencyBounds),
      request_seconds_(kLatencyBounds) {}

void ServerMetrics::count_request(std::string_view endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{std::string(endpoint), status}];
}

void ServerMetrics::record_generation(const engine::GenerationEvent& end) {
  const bool failed = end.kind == engine::GenerationEvent::Kind::kFailed;
  const char* reason = failed ? "error" : engine::to_string(end.finish_reason);
  std::lock_guard lock(mutex_);
  ++finished_[reason];
  if (failed) return;  // a failure carries no timings
  const engine::Timings& t = end.timings;
  queue_seconds_.observe(t.queue_ms / 1000);
  request_seconds_.observe(t.total_ms / 1000);
  if (end.usage.completion_tokens >= 1) first_token_seconds_.observe(t.first_token_ms / 1000);
  if (end.usage.completion_tokens >= 2) max_token_gap_seconds_.observe(t.max_gap_ms / 1000);
}

std::string ServerMetrics::render(const engine::EngineStats& engine) const {
  std::string out;
  std::lock_guard lock(mutex_);

  header(out, "lmserve_requests_total", "counter",
         "HTTP requests answered, by endpoint and status.");
  for (const auto& [key, count] : requests_) {
    sample(out, "lmserve_requests_total",
           "endpoint=\"" + escape_label(key.first) + "\",status=\"" + std::to_string(key.second) +
               "\"",
           static_cast<double>(count));
  }
  header(out, "lmserve_requests_finished_total", "counter",
         "Generations ended, by finish reason (stop, length, cancelled, error).");
  for (const auto& [reason, count] : finished_) {
    sample(out, "lmserve_requests_finished_total", "finish_reason=\"" + escape_label(reason) + "\"",
           static_cast<double>(count));
  }

  auto count = [](std::uint64_t n) { return static_cast<double>(n); };
  scalar(out, "lmserve_prompt_tokens_total", "counter", "Prompt tokens admitted.",
         count(engine.prompt_tokens));
  scalar(out, "lmserve_cached_prompt_tokens_total", "counter",
         "Prompt tokens whose KV came from the prefix cache.", count(engine.cached_prompt_tokens));
  scalar(out, "lmserve_generated_tokens_total", "counter", "Tokens sampled.",
         count(engine.generated_tokens));
  scalar(out, "lmserve_prefix_cache_hits_total", "counter",
         "Admissions that reused at least one cached prompt token.",
         count(engine.prefix_cache_hits));
  scalar(out, "lmserve_sequences_running", "gauge", "Sequences admitted (prefilling or decoding).",
         engine.running);
  scalar(out, "lmserve_sequences_queued", "gauge", "Requests waiting for admission.",
         engine.queued);
  scalar(out, "lmserve_kv_blocks_total", "gauge", "KV cache blocks in the pool.",
         engine.kv_blocks_total);
  scalar(out, "lmserve_kv_blocks_free", "gauge", "KV cache blocks free.", engine.kv_blocks_free);
  scalar(out, "lmserve_kv_blocks_cached", "gauge", "KV cache blocks held by the prefix cache.",
         engine.kv_blocks_cached);
  scalar(out, "lmserve_weights_repacked_bytes", "gauge",
         "Weight bytes copied into the CPU target's faster layout so far.",
         count(engine.weights_repacked_bytes));
  scalar(out, "lmserve_weights_repacking", "gauge",
         "1 while weights are still being copied into the CPU target's layout, then 0.",
         engine.weights_repacking ? 1 : 0);

  struct Named {
    const char* name;
    const char* help;
    const Histogram& histogram;
  };
  const Named histograms[] = {
      {"lmserve_queue_time_seconds", "Seconds from submission to admission.", queue_seconds_},
      {"lmserve_time_to_first_token_seconds", "Seconds from submission to the first sampled token.",
       first_token_seconds_},
      {"lmserve_max_inter_token_latency_seconds",
       "Longest wait between two consecutive sampled tokens of a request, in seconds.",
       max_token_gap_seconds_},
      {"lmserve_e2e_request_latency_seconds",
       "Seconds from submission to the end of the generation.", request_seconds_},
  };
  for (const Named& h : histograms) {
    header(out, h.name, "histogram", h.help);
    h.histogram.render(h.name, out);
  }
  return out;
}

}  // namespace lmserve::server
