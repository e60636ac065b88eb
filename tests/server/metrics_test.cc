// The /metrics exposition: its format (read back by a strict parser) and what it counts.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include "prometheus_text.h"

namespace lmserve::server {
namespace {

using testing::parse_prometheus;
using testing::prom_value;

engine::GenerationEvent finished(engine::FinishReason reason, int tokens, engine::Timings t) {
  engine::GenerationEvent e{engine::GenerationEvent::Kind::kFinished};
  e.finish_reason = reason;
  e.usage.completion_tokens = tokens;
  e.timings = t;
  return e;
}

TEST(PrometheusParser, AcceptsAWellFormedExposition) {
  auto f = parse_prometheus(
      "# HELP a_total A counter.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1.5e3\n"
      "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n");
  EXPECT_EQ(prom_value(f, "a_total", {{"x", "q\"\\\n"}}), 1500);
  EXPECT_EQ(f.at("h").samples.size(), 4u);
}

TEST(PrometheusParser, RejectsEachKindOfBrokenLine) {
  const char* broken[] = {
      "# TYPE a counter\na 1",                                           // no final line feed
      "# TYPE a counter\n\na 1\n",                                       // empty line
      "a 1\n",                                                           // undeclared
      "# TYPE a counter\na -1\n",                                        // negative counter
      "# TYPE a gauge\na one\n",                                         // bad value
      "# TYPE a gauge\na 1 2 3\n",                                       // trailing junk
      "# TYPE a gauge\na{1x=\"v\"} 1\n",                                 // bad label name
      "# TYPE a gauge\na{x=v} 1\n",                                      // unquoted label value
      "# TYPE a gauge\na{x=\"\\t\"} 1\n",                                // bad escape
      "# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n",                          // repeated label
      "# TYPE a gauge\na 1\na 2\n",                                      // duplicate sample
      "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n",                 // not contiguous
      "# TYPE a summary\na 1\n",                                         // type not used here
      "# a comment\n",                                                   // neither HELP nor TYPE
      "# TYPE 1a gauge\n1a 1\n",                                         // bad metric name
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  // no +Inf
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",  // count mismatch
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",           // no sum
      "# TYPE h histogram\nh_bucket{le=\"2\"} 0\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} "
      "0\nh_sum 0\nh_count 0\n",  // bounds out of order
  };
  for (const char* text : broken) {
    EXPECT_THROW(parse_prometheus(text), std::runtime_error) << text;
  }
}

TEST(ServerMetrics, AnEmptyRegistryIsValidAndNamesEveryFamily) {
  ServerMetrics metrics;
  engine::EngineStats stats;
  stats.running = 2;
  stats.queued = 3;
  stats.kv_blocks_total = 64;
  stats.kv_blocks_free = 40;
  stats.kv_blocks_cached = 7;
  stats.prompt_tokens = 100;
  stats.cached_prompt_tokens = 30;
  stats.generated_tokens = 55;
  stats.prefix_cache_hits = 4;
  stats.weights_repacked_bytes = 1 << 20;
  stats.weights_repacking = true;
  auto f = parse_prometheus(metrics.render(stats));
  EXPECT_EQ(f.at("lmserve_requests_total").type, "counter");
  EXPECT_EQ(f.at("lmserve_requests_finished_total").type, "counter");
  EXPECT_EQ(prom_value(f, "lmserve_sequences_running"), 2);
  EXPECT_EQ(prom_value(f, "lmserve_sequences_queued"), 3);
  EXPECT_EQ(prom_value(f, "lmserve_kv_blocks_total"), 64);
  EXPECT_EQ(prom_value(f, "lmserve_kv_blocks_free"), 40);
  EXPECT_EQ(prom_value(f, "lmserve_kv_blocks_cached"), 7);
  EXPECT_EQ(prom_value(f, "lmserve_weights_repacked_bytes"), 1 << 20);
  EXPECT_EQ(prom_value(f, "lmserve_weights_repacking"), 1);
  EXPECT_EQ(prom_value(f, "lmserve_prompt_tokens_total"), 100);
  EXPECT_EQ(prom_value(f, "lmserve_cached_prompt_tokens_total"), 30);
  EXPECT_EQ(prom_value(f, "lmserve_generated_tokens_total"), 55);
  EXPECT_EQ(prom_value(f, "lmserve_prefix_cache_hits_total"), 4);
  for (const char* h :
       {"lmserve_queue_time_seconds", "lmserve_time_to_first_token_seconds",
        "lmserve_max_inter_token_latency_seconds", "lmserve_e2e_request_latency_seconds"}) {
    EXPECT_EQ(f.at(h).type, "histogram") << h;
    EXPECT_EQ(prom_value(f, std::string(h) + "_count"), 0) << h;
  }
}

TEST(ServerMetrics, RequestsAndGenerationsAreCountedAndBucketed) {
  ServerMetrics metrics;
  metrics.count_request("/v1/chat/completions", 200);
  metrics.count_request("/v1/chat/completions", 200);
  metrics.count_request("/v1/chat/completions", 400);
  metrics.count_request("other", 404);
  metrics.record_generation(
      finished(engine::FinishReason::kStop, 5,
               {.queue_ms = 2, .first_token_ms = 40, .total_ms = 300, .max_gap_ms = 20}));
  metrics.record_generation(finished(engine::FinishReason::kLength, 1,
                                     {.queue_ms = 700, .first_token_ms = 900, .total_ms = 900}));
  metrics.record_generation(finished(engine::FinishReason::kCancelled, 0, {.total_ms = 1}));
  engine::GenerationEvent failure{engine::GenerationEvent::Kind::kFailed};
  failure.error = "boom";
  metrics.record_generation(failure);

  auto f = parse_prometheus(metrics.render({}));
  const std::string req = "lmserve_requests_total";
  EXPECT_EQ(prom_value(f, req, {{"endpoint", "/v1/chat/completions"}, {"status", "200"}}), 2);
  EXPECT_EQ(prom_value(f, req, {{"endpoint", "/v1/chat/completions"}, {"status", "400"}}), 1);
  EXPECT_EQ(prom_value(f, req, {{"endpoint", "other"}, {"status", "404"}}), 1);
  const std::string fin = "lmserve_requests_finished_total";
  for (const char* reason : {"stop", "length", "cancelled", "error"}) {
    EXPECT_EQ(prom_value(f, fin, {{"finish_reason", reason}}), 1) << reason;
  }
  // Every generation with timings; a failure has none.
  const std::string e2e = "lmserve_e2e_request_latency_seconds";
  EXPECT_EQ(prom_value(f, e2e + "_count"), 3);
  EXPECT_DOUBLE_EQ(prom_value(f, e2e + "_sum"), 1.201);
  EXPECT_EQ(prom_value(f, e2e + "_bucket", {{"le", "0.005"}}), 1);  // 1 ms
  EXPECT_EQ(prom_value(f, e2e + "_bucket", {{"le", "0.25"}}), 1);
  EXPECT_EQ(prom_value(f, e2e + "_bucket", {{"le", "0.5"}}), 2);  // 300 ms
  EXPECT_EQ(prom_value(f, e2e + "_bucket", {{"le", "1"}}), 3);    // 900 ms
  EXPECT_EQ(prom_value(f, e2e + "_bucket", {{"le", "+Inf"}}), 3);
  EXPECT_EQ(prom_value(f, "lmserve_queue_time_seconds_bucket", {{"le", "0.5"}}), 2);
  // First token: only generations that sampled one; the longest gap needs two tokens.
  EXPECT_EQ(prom_value(f, "lmserve_time_to_first_token_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(prom_value(f, "lmserve_time_to_first_token_seconds_sum"), 0.94);
  EXPECT_EQ(prom_value(f, "lmserve_max_inter_token_latency_seconds_count"), 1);
  EXPECT_EQ(prom_value(f, "lmserve_max_inter_token_latency_seconds_bucket", {{"le", "0.025"}}), 1);
  EXPECT_EQ(prom_value(f, "lmserve_max_inter_token_latency_seconds_bucket", {{"le", "0.01"}}), 0);
}

TEST(ServerMetrics, ABoundaryValueFallsInItsOwnBucket) {
  Histogram h({0.1, 1});
  h.observe(0.1);
  h.observe(1);
  h.observe(1.5);
  std::string out = "# TYPE h histogram\n";
  h.render("h", out);
  EXPECT_EQ(out,
            "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 2\n"
            "h_bucket{le=\"+Inf\"} 3\nh_sum 2.6\nh_count 3\n");
}

}  // namespace
}  // namespace lmserve::server
