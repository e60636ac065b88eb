// Shared by the engine tests: an event collector and a fixture holding the real stories260K
// model with its llama2.c greedy references.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "model/model.h"
#include "support/fixtures.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace lmserve::engine {

using namespace std::chrono_literals;

// Collects one request's events and lets the test wait for its end.
class Collector {
 public:
  EventSink sink() {
    return [this](const GenerationEvent& ev) {
      std::lock_guard lock(mutex_);
      if (ev.kind == GenerationEvent::Kind::kText) text_ += ev.text;
      if (ev.kind == GenerationEvent::Kind::kText) ++text_events_;
      if (ev.kind == GenerationEvent::Kind::kFinished ||
          ev.kind == GenerationEvent::Kind::kFailed) {
        end_ = ev;
        cv_.notify_all();
      }
    };
  }
  GenerationEvent wait() {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, 60s, [&] { return end_.has_value(); })) {
      ADD_FAILURE() << "request did not finish";
      return {.kind = GenerationEvent::Kind::kFailed, .error = "timeout"};
    }
    return *end_;
  }
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }
  int text_events() {
    std::lock_guard lock(mutex_);
    return text_events_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string text_;
  int text_events_ = 0;
  std::optional<GenerationEvent> end_;
};

// Submits `request` and waits for its end, which must be a finish.
inline GenerationEvent run_to_end(Engine& engine, GenerationRequest request) {
  Collector col;
  engine.submit(std::move(request), col.sink());
  GenerationEvent end = col.wait();
  EXPECT_EQ(end.kind, GenerationEvent::Kind::kFinished) << end.error;
  return end;
}

// Every block is either free or held by the prefix cache once nothing runs: none leaked.
inline void expect_no_leaked_blocks(const Engine& engine) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  EngineStats s = engine.stats();
  while ((s.running != 0 || s.kv_blocks_free + s.kv_blocks_cached != s.kv_blocks_total) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
    s = engine.stats();
  }
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.kv_blocks_free + s.kv_blocks_cached, s.kv_blocks_total);
}

// Submits every request to one engine (after `stagger` of them, waits for the first to end, so
// the rest arrive while it decodes) and checks each one's ids against `alone` (the same
// request run by itself), then that no block leaked.
inline void expect_batched_as_alone(Engine& engine, const std::vector<GenerationRequest>& requests,
                                    const std::vector<std::vector<std::int32_t>>& alone,
                                    std::size_t stagger = 0) {
  std::vector<std::unique_ptr<Collector>> cols;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    cols.push_back(std::make_unique<Collector>());
    engine.submit(requests[i], cols.back()->sink());
    if (stagger > 0 && i + 1 == stagger) cols[0]->wait();
  }
  for (std::size_t i = 0; i < requests.size(); ++i) {
    GenerationEvent end = cols[i]->wait();
    ASSERT_EQ(end.kind, GenerationEvent::Kind::kFinished) << end.error;
    EXPECT_EQ(end.completion_ids, alone[i]) << "request " << i;
  }
  expect_no_leaked_blocks(engine);
}

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(testing::fixture("models/stories260K"));
    reference_ = new nlohmann::json(testing::read_json(*dir_ / "reference_greedy.json"));
    pool_ = new util::ThreadPool(2);
    tokenizer_ = new tokenizer::Tokenizer(tokenizer::Tokenizer::load(*dir_));
    model_ = model::Model::load(*dir_, *pool_).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
    delete pool_;
    delete reference_;
    delete dir_;
  }

  // Greedy ids expected under the HF stop rule (id 1 is an ordinary token).
  static std::vector<std::int32_t> expected_ids(const nlohmann::json& c) {
    const auto& ids = c.contains("output_ids_ignoring_bos_stop") ? c["output_ids_ignoring_bos_stop"]
                                                                 : c["output_ids"];
    return ids.get<std::vector<std::int32_t>>();
  }

  static GenerationRequest greedy(const nlohmann::json& c, int max_tokens) {
    return {.prompt = c["prompt_ids"].get<std::vector<std::int32_t>>(),
            .sampling = {.temperature = 0.0f},
            .max_tokens = max_tokens};
  }

  static inline std::filesystem::path* dir_ = nullptr;
  static inline nlohmann::json* reference_ = nullptr;
  static inline util::ThreadPool* pool_ = nullptr;
  static inline tokenizer::Tokenizer* tokenizer_ = nullptr;
  static inline model::Model* model_ = nullptr;
};

}  // namespace lmserve::engine
