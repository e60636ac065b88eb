// Shared by the engine tests: an event collector and a fixture holding the real stories260K
// model with its llama2.c greedy references.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

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
