// The OpenAI endpoints over real HTTP, with a scripted fake engine running on its own
// threads (as the real one does): shapes, SSE sequences, errors, cancellation.
#include "server/openai_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <regex>
#include <thread>

#include "prometheus_text.h"
#include "test_http_client.h"
#include "util/utf8.h"

namespace lmserve::server {
namespace {

using engine::FinishReason;
using engine::GenerationEvent;
using testing::TestConnection;
using testing::TestResponse;
using Kind = GenerationEvent::Kind;
using namespace std::chrono_literals;

struct Step {
  GenerationEvent event;
  std::chrono::milliseconds delay{0};  // simulated compute before the event
  bool wait_for_cancel = false;        // hold here until the request is cancelled
};

GenerationEvent progress(int done, int total) {
  GenerationEvent e{Kind::kProgress};
  e.prompt_processed = done;
  e.prompt_total = total;
  return e;
}
GenerationEvent text(std::string t) {
  GenerationEvent e{Kind::kText};
  e.text = std::move(t);
  return e;
}
GenerationEvent finished(FinishReason reason, int completion_tokens) {
  GenerationEvent e{Kind::kFinished};
  e.finish_reason = reason;
  e.usage.completion_tokens = completion_tokens;
  return e;
}
GenerationEvent failed(std::string message) {
  GenerationEvent e{Kind::kFailed};
  e.error = std::move(message);
  return e;
}

// Tokenizer: one id per byte (id = byte + 3), BOS = 1 as "<s>"; chat: "role: content\n".
class FakeBackend final : public Backend {
 public:
  ~FakeBackend() override { join(); }

  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  // A byte tokenizer: id 1 is BOS ("<s>"), byte b is id b + 3.
  std::vector<std::int32_t> encode(std::string_view s, bool add_special_tokens,
                                   bool parse_special = true) const override {
    std::lock_guard lock(mutex_);
    encode_calls.emplace_back(std::string(s), add_special_tokens);
    std::vector<std::int32_t> ids;
    if (add_special_tokens) ids.push_back(1);
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (parse_special && s.substr(i).starts_with("<s>")) {
        ids.push_back(1);
        i += 2;
      } else {
        ids.push_back(static_cast<unsigned char>(s[i]) + 3);
      }
    }
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string out;
    for (auto id : ids) out += token_bytes(id);
    return util::sanitize_utf8(out);
  }
  std::string token_bytes(std::int32_t id) const override {
    if (id == 1) return "<s>";
    return id >= 3 ? std::string(1, static_cast<char>(id - 3)) : std::string();
  }
  int vocab_size() const override { return 259; }
  std::size_t max_token_bytes() const override { return 3; }  // "<s>"
  const std::string& bos_token() const override { return bos_; }
  bool adds_bos() const override { return true; }

  chat::RenderedPrompt render_chat(const chat::ChatPromptInput& input) const override {
    std::lock_guard lock(mutex_);
    chat_inputs.push_back(input);
    std::string out;
    for (const auto& m : input.messages) {
      if (m["content"] == "RAISE") {
        throw ApiError::invalid_request("template_error", "messages",
                                        "Conversation roles must alternate");
      }
      out += m["role"].get<std::string>() + ": " + m["content"].get<std::string>() + "\n";
    }
    chat::RenderedPrompt rendered{.text = out, .add_special_tokens = true, .output = output};
    // Numbered ids per response, so that a stream and a whole response compare.
    auto next = std::make_shared<int>(0);
    rendered.output.new_call_id = [next](bool) { return "call_" + std::to_string((*next)++); };
    if (!input.tools.is_null()) rendered.output.tools = input.tools;
    rendered.output.parallel_tool_calls = input.parallel_tool_calls;
    rendered.think_token_ids = think_token_ids;
    return rendered;
  }

  std::shared_ptr<engine::RequestHandle> submit(engine::GenerationRequest request,
                                                engine::EventSink sink) override {
    auto handle = std::make_shared<engine::RequestHandle>();
    std::lock_guard lock(mutex_);
    if (requests.size() >= queue_capacity) throw engine::QueueFull("the queue is full");
    std::vector<Step> steps = scripts.empty() ? script : scripts[requests.size() % scripts.size()];
    requests.push_back(request);
    handles.push_back(handle);
    int prompt = static_cast<int>(request.prompt.size());
    threads_.emplace_back([handle, sink = std::move(sink), steps = std::move(steps), prompt] {
      for (Step step : steps) {
        if (step.delay.count() > 0) std::this_thread::sleep_for(step.delay);  // simulated work
        if (step.wait_for_cancel) {
          auto deadline = std::chrono::steady_clock::now() + 10s;
          while (!handle->cancelled() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::yield();
          }
        }
        if (handle->cancelled()) {
          sink(finished(FinishReason::kCancelled, 0));
          return;
        }
        if (step.event.kind == Kind::kFinished) step.event.usage.prompt_tokens = prompt;
        sink(step.event);
      }
    });
    return handle;
  }
  int context_length() const override { return context; }
  bool alive() const override { return is_alive; }
  std::chrono::steady_clock::duration step_running_for() const override {
    return step_running.load();
  }
  engine::EngineStats stats() const override {
    std::lock_guard lock(mutex_);
    return engine_stats;
  }

  std::size_t submitted() const {
    std::lock_guard lock(mutex_);
    return requests.size();
  }

  // Behaviour.
  std::vector<Step> script = {{progress(0, 8)},
                              {progress(8, 8)},
                              {text("Hello")},
                              {text(" world")},
                              {finished(FinishReason::kStop, 3)}};
  // When not empty: submission i runs scripts[i % size] instead of `script`.
  std::vector<std::vector<Step>> scripts;
  std::size_t queue_capacity = SIZE_MAX;  // submissions accepted before QueueFull
  int context = 4096;
  std::atomic<bool> is_alive{true};
  std::atomic<std::chrono::steady_clock::duration> step_running{};  // step_running_for()
  engine::EngineStats engine_stats;                                 // what stats() reports
  chat::OutputParserOptions output;  // how answers are read (no reasoning, no tools)
  std::optional<std::pair<std::int32_t, std::int32_t>> think_token_ids;

  // Observations.
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<std::string, bool>> encode_calls;
  mutable std::vector<chat::ChatPromptInput> chat_inputs;
  std::vector<engine::GenerationRequest> requests;
  std::vector<std::shared_ptr<engine::RequestHandle>> handles;

 private:
  std::string bos_ = "<s>";
  std::vector<std::thread> threads_;
};

struct SseEvents {
  std::vector<json> data;  // parsed JSON payloads, in order
  std::vector<std::string> comments;
  bool done = false;       // saw data: [DONE]
  bool done_last = false;  // ... as the very last event
};

SseEvents parse_sse(const std::string& body) {
  SseEvents out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event in: " << body;
    if (end == std::string::npos) break;
    std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    out.done_last = false;
    if (event.starts_with(": ")) {
      out.comments.push_back(event.substr(2));
    } else if (event == "data: [DONE]") {
      out.done = out.done_last = true;
    } else {
      EXPECT_TRUE(event.starts_with("data: ")) << event;
      EXPECT_EQ(event.find('\n'), std::string::npos) << "one line per event: " << event;
      out.data.push_back(json::parse(event.substr(6)));
    }
  }
  return out;
}

void expect_error(const TestResponse& r, int status, const std::string& code,
                  const std::optional<std::string>& param = std::nullopt) {
  EXPECT_EQ(r.status, status) << r.body;
  json body = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  const json& e = body["error"];
  for (const char* key : {"message", "type", "param", "code"}) EXPECT_TRUE(e.contains(key)) << key;
  EXPECT_EQ(e["code"], code) << r.body;
  if (param) {
    EXPECT_EQ(e["param"], *param) << r.body;
  }
  EXPECT_EQ(e["type"], status >= 500 ? "server_error" : "invalid_request_error");
}

const std::regex kUuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

class ServiceTest : public ::testing::Test {
 public:
  void start(ServiceOptions options = {}, int io_threads = 2) {
    if (options.model_id.empty()) options.model_id = "stories";
    service_ = std::make_unique<OpenAiService>(options, backend_);
    HttpServerOptions http;
    http.host = "127.0.0.1";
    http.port = 0;
    http.io_threads = io_threads;
    server_ = std::make_unique<HttpServer>(
        http, [this](HttpExchange& ex) { return service_->handle(ex); });
    port_ = server_->listen().port();
    thread_ = std::thread([this] { server_->run(); });
  }

  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    if (service_) service_->shutdown();
    backend_.join();
    server_.reset();
  }

  TestResponse post(const std::string& path, const json& body) {
    TestConnection c(port_);
    return c.request("POST", path, body.dump(), testing::json_headers());
  }

  FakeBackend backend_;
  std::unique_ptr<OpenAiService> service_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  unsigned short port_ = 0;
};

const json kChat = {{"messages", {{{"role", "user"}, {"content", "Say this is a test!"}}}},
                    {"temperature", 0.7}};

TEST_F(ServiceTest, ChatCompletionShape) {
  start();
  auto before = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  auto r = post("/v1/chat/completions", kChat);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  json b = json::parse(r.body);
  std::string id = b["id"];
  ASSERT_TRUE(id.starts_with("chatcmpl-")) << id;
  EXPECT_TRUE(std::regex_match(id.substr(9), kUuid)) << id;
  EXPECT_EQ(b["object"], "chat.completion");
  EXPECT_GE(b["created"].get<std::int64_t>(), before);
  EXPECT_EQ(b["model"], "stories");
  EXPECT_TRUE(b["system_fingerprint"].get<std::string>().starts_with("fp_lmserve-"));
  ASSERT_EQ(b["choices"].size(), 1u);
  const json& c = b["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["message"],
            json({{"role", "assistant"}, {"content", "Hello world"}, {"refusal", nullptr}}));
  EXPECT_TRUE(c["logprobs"].is_null());
  EXPECT_EQ(c["finish_reason"], "stop");
  std::string prompt = "user: Say this is a test!\n";
  int prompt_tokens = static_cast<int>(prompt.size()) + 1;  // + BOS
  EXPECT_EQ(b["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(b["usage"]["completion_tokens"], 3);
  EXPECT_EQ(b["usage"]["total_tokens"], prompt_tokens + 3);
  EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

  ASSERT_EQ(backend_.requests.size(), 1u);
  const auto& req = backend_.requests[0];
  EXPECT_EQ(req.prompt.size(), static_cast<std::size_t>(prompt_tokens));
  EXPECT_EQ(req.prompt[0], 1);
  EXPECT_FLOAT_EQ(req.sampling.temperature, 0.7f);
  EXPECT_EQ(req.max_tokens, 100);
}

TEST_F(ServiceTest, RequestFieldsReachTheEngine) {
  ServiceOptions options;
  options.defaults.max_tokens = 42;
  options.defaults.sampling.top_k = 7;
  start(options);
  json body = kChat;
  body["stop"] = {"END", ""};
  body["top_p"] = 0.5;
  body["seed"] = 11;
  body["repeat_penalty"] = 1.3;
  body["model"] = "gpt-4o";
  auto r = post("/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["model"], "gpt-4o");  // the request's model string (§2.5)
  const auto& req = backend_.requests.at(0);
  EXPECT_EQ(req.stop, std::vector<std::string>{"END"});
  EXPECT_FLOAT_EQ(req.sampling.top_p, 0.5f);
  EXPECT_EQ(req.sampling.top_k, 7);  // server default kept
  EXPECT_EQ(req.sampling.seed, 11u);
  EXPECT_FLOAT_EQ(req.sampling.repetition_penalty, 1.3f);
  EXPECT_EQ(req.max_tokens, 42);
}

TEST_F(ServiceTest, EmptyContentIsNullAndLengthFinish) {
  backend_.script = {{finished(FinishReason::kLength, 5)}};
  start();
  auto r = post("/v1/chat/completions", kChat);
  json b = json::parse(r.body);
  EXPECT_TRUE(b["choices"][0]["message"].contains("content"));
  EXPECT_TRUE(b["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(b["choices"][0]["finish_reason"], "length");
}

TEST_F(ServiceTest, TemplateErrorIs400) {
  start();
  json body = {{"messages", {{{"role", "user"}, {"content", "RAISE"}}}}};
  expect_error(post("/v1/chat/completions", body), 400, "template_error", "messages");
  EXPECT_EQ(backend_.submitted(), 0u);
}

TEST_F(ServiceTest, CompletionShapeAndPromptForms) {
  start();
  auto r = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 8}});
  ASSERT_EQ(r.status, 200) << r.body;
  json b = json::parse(r.body);
  EXPECT_TRUE(std::regex_match(b["id"].get<std::string>().substr(5), kUuid));
  EXPECT_TRUE(b["id"].get<std::string>().starts_with("cmpl-"));
  EXPECT_EQ(b["object"], "text_completion");
  EXPECT_EQ(b["choices"][0]["text"], "Hello world");
  EXPECT_TRUE(b["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(b["usage"]["prompt_tokens"], 5);  // BOS + 4 bytes
  EXPECT_FALSE(b["usage"].contains("completion_tokens_details"));
  EXPECT_EQ(backend_.requests.at(0).max_tokens, 8);

  // The prompt already starts with the BOS text: BOS is not added again (§2.4).
  ASSERT_EQ(post("/v1/completions", {{"prompt", {"<s>Once"}}}).status, 200);
  EXPECT_FALSE(backend_.encode_calls.back().second);
  EXPECT_EQ(backend_.encode_calls.back().first, "<s>Once");

  // Token ids are used verbatim.
  ASSERT_EQ(post("/completions", {{"prompt", {1, 2.0, 258}}}).status, 200);
  EXPECT_EQ(backend_.requests.back().prompt, (std::vector<std::int32_t>{1, 2, 258}));

  expect_error(post("/v1/completions", {{"prompt", {1, 259}}}), 400, "invalid_value", "prompt[1]");
  expect_error(post("/v1/completions", {{"prompt", json::array()}}), 400, "invalid_value",
               "prompt");
  expect_error(post("/v1/completions", {{"prompt", {"a", "b"}}}), 400, "unsupported_parameter",
               "prompt");
}

TEST_F(ServiceTest, ContextLimit) {
  backend_.context = 10;
  start();
  // 1 + 9 bytes = 10 tokens >= context
  expect_error(post("/v1/completions", {{"prompt", "123456789"}}), 400, "context_length_exceeded",
               "prompt");
  json chat = {{"messages", {{{"role", "user"}, {"content", "x"}}}}};  // "user: x\n" + BOS = 9
  expect_error(
      post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "xx"}}}}}), 400,
      "context_length_exceeded", "messages");
  ASSERT_EQ(post("/v1/chat/completions", chat).status, 200);
  EXPECT_EQ(backend_.requests.back().max_tokens, 1);  // clamped to the room left
}

TEST_F(ServiceTest, ChatStreamWithUsage) {
  start();
  json body = kChat;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto r = post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("cache-control"), "no-cache");
  EXPECT_EQ(r.header("x-accel-buffering"), "no");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  SseEvents ev = parse_sse(r.body);
  EXPECT_EQ(ev.comments, (std::vector<std::string>{"keepalive 0/8", "keepalive 8/8"}));
  ASSERT_EQ(ev.data.size(), 5u) << r.body;
  std::string id = ev.data[0]["id"];
  EXPECT_TRUE(id.starts_with("chatcmpl-"));
  for (const json& chunk : ev.data) {
    EXPECT_EQ(chunk["id"], id);
    EXPECT_EQ(chunk["created"], ev.data[0]["created"]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_EQ(chunk["model"], "stories");
    EXPECT_TRUE(chunk["system_fingerprint"].is_string());
  }
  EXPECT_EQ(ev.data[0]["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_EQ(ev.data[1]["choices"][0]["delta"], json({{"content", "Hello"}}));
  EXPECT_EQ(ev.data[2]["choices"][0]["delta"], json({{"content", " world"}}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(ev.data[i]["choices"][0]["finish_reason"].is_null());
    EXPECT_TRUE(ev.data[i]["choices"][0]["logprobs"].is_null());
  }
  EXPECT_EQ(ev.data[3]["choices"][0]["delta"], json::object());
  EXPECT_EQ(ev.data[3]["choices"][0]["finish_reason"], "stop");
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(ev.data[i].contains("usage") && ev.data[i]["usage"].is_null()) << ev.data[i];
  }
  EXPECT_EQ(ev.data[4]["choices"], json::array());
  EXPECT_EQ(ev.data[4]["usage"]["completion_tokens"], 3);
  EXPECT_EQ(ev.data[4]["usage"]["total_tokens"],
            ev.data[4]["usage"]["prompt_tokens"].get<int>() + 3);
  EXPECT_TRUE(ev.done_last);
}

GenerationEvent finished_with_cache(int completion_tokens, int cached_tokens) {
  GenerationEvent e = finished(FinishReason::kStop, completion_tokens);
  e.usage.cached_tokens = cached_tokens;
  return e;
}

TEST_F(ServiceTest, ChoicesAreSeparateEngineRequestsInOneResponse) {
  // Each choice's engine request gets its own script: different texts, lengths and caching.
  backend_.scripts = {{{text("a")}, {finished_with_cache(2, 0)}},
                      {{text("bb")}, {finished_with_cache(3, 16)}},
                      {{text("ccc")}, {finished(FinishReason::kLength, 4)}}};
  start();
  json body = kChat;
  body["n"] = 3;
  body["seed"] = 7;
  auto r = post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json b = json::parse(r.body);
  ASSERT_EQ(b["choices"].size(), 3u);
  const char* texts[] = {"a", "bb", "ccc"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(b["choices"][i]["index"], i);
    EXPECT_EQ(b["choices"][i]["message"]["content"], texts[i]);
  }
  EXPECT_EQ(b["choices"][2]["finish_reason"], "length");
  // The prompt counts once; completions add up; cached: the fewest of any choice.
  const int prompt = b["usage"]["prompt_tokens"];
  EXPECT_EQ(prompt, static_cast<int>(backend_.requests.at(0).prompt.size()));
  EXPECT_EQ(b["usage"]["completion_tokens"], 9);
  EXPECT_EQ(b["usage"]["total_tokens"], prompt + 9);
  EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  // Seeds: the request's for choice 0, then seed + i.
  ASSERT_EQ(backend_.requests.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(backend_.requests[i].prompt, backend_.requests[0].prompt);
    EXPECT_EQ(backend_.requests[i].sampling.seed, std::optional<std::uint64_t>(7 + i));
  }
}

TEST_F(ServiceTest, ChoicesWithoutASeedEachDrawTheirOwn) {
  start();
  auto r = post("/v1/completions", {{"prompt", "Once"}, {"n", 2}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["choices"].size(), 2u);
  ASSERT_EQ(backend_.requests.size(), 2u);
  for (const auto& request : backend_.requests) EXPECT_EQ(request.sampling.seed, std::nullopt);
}

TEST_F(ServiceTest, ChoicesStreamInterleavedWithOneUsageChunkAndOneDone) {
  backend_.scripts = {{{progress(5, 5)}, {text("x"), 30ms}, {finished(FinishReason::kStop, 2)}},
                      {{progress(5, 5)}, {text("y")}, {finished(FinishReason::kStop, 1)}}};
  start();
  json body = kChat;
  body["n"] = 2;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto r = post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200);
  SseEvents ev = parse_sse(r.body);
  ASSERT_FALSE(ev.data.empty());
  std::vector<std::string> content(2);
  std::vector<int> roles(2), finishes(2);
  for (std::size_t k = 0; k + 1 < ev.data.size(); ++k) {
    const json& chunk = ev.data[k];
    ASSERT_EQ(chunk["choices"].size(), 1u) << chunk;
    const int i = chunk["choices"][0]["index"];
    ASSERT_TRUE(i == 0 || i == 1) << chunk;
    EXPECT_EQ(finishes[i], 0) << "a chunk after its choice's finish: " << chunk;
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("role")) ++roles[i];
    if (delta.contains("content")) content[i] += delta["content"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) ++finishes[i];
    EXPECT_TRUE(chunk["usage"].is_null());
  }
  EXPECT_EQ(content, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(roles, (std::vector<int>{1, 1}));
  EXPECT_EQ(finishes, (std::vector<int>{1, 1}));
  // Choice 1 ended while choice 0 was still generating: the stream does not wait in order.
  EXPECT_LT(r.body.find(R"("index":1,"delta":{},"logprobs":null,"finish_reason":"stop")"),
            r.body.find(R"("content":"x")"));
  const json& usage = ev.data.back();
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 3);
  EXPECT_EQ(usage["usage"]["prompt_tokens"], backend_.requests.at(0).prompt.size());
  EXPECT_TRUE(ev.done_last);
  EXPECT_EQ(r.body.find("[DONE]"), r.body.rfind("[DONE]"));
}

TEST_F(ServiceTest, AFullQueueRefusesEveryChoiceAndCancelsTheQueuedOnes) {
  backend_.script = {{text(""), 0ms, true}};  // runs until cancelled
  backend_.queue_capacity = 2;
  start();
  auto r = post("/v1/completions", {{"prompt", "Once"}, {"n", 3}});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "queue_full");
  EXPECT_EQ(r.header("retry-after"), "1");
  backend_.join();
  ASSERT_EQ(backend_.handles.size(), 2u);
  for (const auto& handle : backend_.handles) EXPECT_TRUE(handle->cancelled());
}

TEST_F(ServiceTest, AFailedChoiceFailsTheResponseAndCancelsTheOthers) {
  backend_.scripts = {{{text(""), 0ms, true}}, {{failed("out of memory")}}};
  start();
  auto r = post("/v1/completions", {{"prompt", "Once"}, {"n", 2}});
  expect_error(r, 500, "internal_error");
  backend_.join();  // choice 0 ends only once cancelled (or after 10 s)
  EXPECT_TRUE(backend_.handles.at(0)->cancelled());
}

TEST_F(ServiceTest, StreamingClientDisconnectCancelsEveryChoice) {
  backend_.script = {{text("first")}, {text(""), 0ms, true}};
  start();
  {
    TestConnection c(port_);
    json body = kChat;
    body["stream"] = true;
    body["n"] = 3;
    c.send_request("POST", "/v1/chat/completions", body.dump(), testing::json_headers());
    c.read_until("first");
  }
  backend_.join();
  ASSERT_EQ(backend_.handles.size(), 3u);
  for (const auto& handle : backend_.handles) EXPECT_TRUE(handle->cancelled());
}

TEST_F(ServiceTest, ChatStreamWithoutUsageHasNoUsageKey) {
  start();
  json body = kChat;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", nullptr}};
  SseEvents ev = parse_sse(post("/v1/chat/completions", body).body);
  ASSERT_EQ(ev.data.size(), 4u);
  for (const json& chunk : ev.data) EXPECT_FALSE(chunk.contains("usage"));
  EXPECT_TRUE(ev.done_last);
}

TEST_F(ServiceTest, RoleChunkComesEvenWithoutProgressOrText) {
  backend_.script = {{finished(FinishReason::kLength, 1)}};
  start();
  json body = kChat;
  body["stream"] = true;
  SseEvents ev = parse_sse(post("/v1/chat/completions", body).body);
  ASSERT_EQ(ev.data.size(), 2u);
  EXPECT_EQ(ev.data[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(ev.data[1]["choices"][0]["finish_reason"], "length");
}

TEST_F(ServiceTest, CompletionStream) {
  start();
  auto r =
      post("/v1/completions",
           {{"prompt", "Once"}, {"stream", true}, {"stream_options", {{"include_usage", true}}}});
  SseEvents ev = parse_sse(r.body);
  ASSERT_EQ(ev.data.size(), 4u) << r.body;
  for (const json& chunk : ev.data) {
    EXPECT_EQ(chunk["object"], "text_completion");
    EXPECT_EQ(chunk["id"], ev.data[0]["id"]);
  }
  EXPECT_EQ(ev.data[0]["choices"][0]["text"], "Hello");
  EXPECT_EQ(ev.data[1]["choices"][0]["text"], " world");
  EXPECT_EQ(ev.data[2]["choices"][0]["text"], "");
  EXPECT_EQ(ev.data[2]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(ev.data[3]["choices"], json::array());
  EXPECT_EQ(ev.data[3]["usage"]["prompt_tokens"], 5);
  EXPECT_TRUE(ev.done_last);
}

TEST_F(ServiceTest, StreamAndNonStreamAgree) {
  start();
  json body = kChat;
  auto full = json::parse(post("/v1/chat/completions", body).body);
  body["stream"] = true;
  SseEvents ev = parse_sse(post("/v1/chat/completions", body).body);
  std::string streamed;
  std::string finish;
  for (const json& chunk : ev.data) {
    const json& c = chunk["choices"][0];
    if (c["delta"].contains("content")) streamed += c["delta"]["content"].get<std::string>();
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(streamed, full["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, full["choices"][0]["finish_reason"]);
}

// The message a stream adds up to, in the non-streaming shape.
json reassemble(const SseEvents& events, std::string* finish) {
  json message = {{"role", "assistant"}, {"content", ""}};
  for (const json& chunk : events.data) {
    if (chunk["choices"].empty()) continue;
    const json& choice = chunk["choices"][0];
    const json& delta = choice["delta"];
    for (const char* key : {"content", "reasoning_content"}) {
      if (!delta.contains(key)) continue;
      if (!message.contains(key)) message[key] = "";
      message[key] = message[key].get<std::string>() + delta[key].get<std::string>();
    }
    if (delta.contains("tool_calls")) {
      for (const json& piece : delta["tool_calls"]) {
        std::size_t index = piece["index"];
        if (!message.contains("tool_calls")) message["tool_calls"] = json::array();
        json& calls = message["tool_calls"];
        if (index == calls.size()) {
          // The first piece of a call names it.
          EXPECT_TRUE(piece.contains("id") && piece.contains("type")) << piece;
          calls.push_back({{"id", piece["id"]},
                           {"type", piece["type"]},
                           {"function", {{"name", piece["function"]["name"]}, {"arguments", ""}}}});
        }
        if (index >= calls.size()) {
          ADD_FAILURE() << "tool call pieces out of order: " << piece;
          return message;
        }
        json& args = calls[index]["function"]["arguments"];
        args = args.get<std::string>() + piece["function"]["arguments"].get<std::string>();
      }
    }
    if (!choice["finish_reason"].is_null()) *finish = choice["finish_reason"];
  }
  if (message["content"] == "") message["content"] = nullptr;
  message["refusal"] = nullptr;
  return message;
}

// Streams and whole responses of one scripted generation: same message, finish, usage.
void expect_stream_equals_whole(ServiceTest& test, const json& request, json* whole_message,
                                std::string* whole_finish) {
  json body = request;
  TestResponse full = test.post("/v1/chat/completions", body);
  ASSERT_EQ(full.status, 200) << full.body;
  json whole = json::parse(full.body);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  SseEvents ev = parse_sse(test.post("/v1/chat/completions", body).body);
  std::string finish;
  json streamed = reassemble(ev, &finish);
  json expected = whole["choices"][0]["message"];
  // Compared regardless of key order.
  EXPECT_EQ(nlohmann::json::parse(streamed.dump()), nlohmann::json::parse(expected.dump()));
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"]);
  EXPECT_EQ(ev.data.back()["usage"], whole["usage"]);
  *whole_message = expected;
  *whole_finish = whole["choices"][0]["finish_reason"];
}

const json kWeatherTools = json::parse(R"([{"type": "function", "function": {"name":
    "get_weather", "parameters": {"type": "object", "properties": {"city": {"type":
    "string"}}}}}])");

TEST_F(ServiceTest, ToolCallsParsedTheSameStreamedOrNot) {
  backend_.output.tool_syntax = &chat::json_tools_syntax();
  backend_.script = {{progress(4, 4)},
                     {text("Let me check.\n<tool_")},
                     {text("call>\n{\"name\": \"get_weather\", ")},
                     {text("\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>")},
                     {text("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}")},
                     {text("</tool_call>")},
                     {finished(FinishReason::kStop, 30)}};
  start();
  json request = kChat;
  request["tools"] = kWeatherTools;
  json message;
  std::string finish;
  expect_stream_equals_whole(*this, request, &message, &finish);
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(message["content"], "Let me check.");
  ASSERT_EQ(message["tool_calls"].size(), 2u);
  EXPECT_EQ(message["tool_calls"][0],
            json::parse(R"({"id": "call_0", "type": "function", "function": {"name":
                "get_weather", "arguments": "{\"city\":\"Paris\"}"}})"));
  EXPECT_EQ(message["tool_calls"][1]["id"], "call_1");

  // parallel_tool_calls: false keeps the first call.
  request["parallel_tool_calls"] = false;
  json one = json::parse(post("/v1/chat/completions", request).body);
  EXPECT_EQ(one["choices"][0]["message"]["tool_calls"].size(), 1u);
}

TEST_F(ServiceTest, ToolCallsAreOnlyParsedWhenTheRequestHasTools) {
  backend_.output.tool_syntax = &chat::json_tools_syntax();
  backend_.script = {{text("<tool_call>{\"name\": \"f\"}</tool_call>")},
                     {finished(FinishReason::kStop, 3)}};
  start();
  json body = json::parse(post("/v1/chat/completions", kChat).body);
  // The fake reads with the syntax it was given; the real formatter gives none without
  // tools (chat_formatter_test). Here: tools absent, tool_choice none, both render no tools.
  EXPECT_EQ(backend_.chat_inputs.at(0).tools, nullptr);
  json request = kChat;
  request["tools"] = kWeatherTools;
  request["tool_choice"] = "none";
  ASSERT_EQ(post("/v1/chat/completions", request).status, 200);
  EXPECT_EQ(backend_.chat_inputs.at(1).tools, nullptr);
  (void)body;
}

TEST_F(ServiceTest, ToolsTheModelCannotCallAreFlaggedInAHeader) {
  start();  // the fake reads answers with no tool syntax
  json request = kChat;
  TestResponse plain = post("/v1/chat/completions", request);
  EXPECT_FALSE(plain.has_header("x-lmserve-warning"));
  request["tools"] = kWeatherTools;
  TestResponse whole = post("/v1/chat/completions", request);
  EXPECT_EQ(whole.header("x-lmserve-warning"), "tools-unparsed");
  request["stream"] = true;
  TestResponse streamed = post("/v1/chat/completions", request);
  EXPECT_EQ(streamed.header("x-lmserve-warning"), "tools-unparsed");
  EXPECT_TRUE(parse_sse(streamed.body).done_last);
}

TEST_F(ServiceTest, MalformedCallIsContentAndFinishStaysStop) {
  backend_.output.tool_syntax = &chat::json_tools_syntax();
  backend_.script = {{text("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"ci")},
                     {finished(FinishReason::kLength, 8)}};
  start();
  json request = kChat;
  request["tools"] = kWeatherTools;
  json message;
  std::string finish;
  expect_stream_equals_whole(*this, request, &message, &finish);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(message["content"], "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"ci");
  EXPECT_FALSE(message.contains("tool_calls"));
}

TEST_F(ServiceTest, ReasoningIsSplitTheSameStreamedOrNot) {
  backend_.output.reasoning = chat::ReasoningMarkers{};
  backend_.think_token_ids = std::pair{100, 101};
  GenerationEvent done = finished(FinishReason::kStop, 6);
  done.completion_ids = {100, 7, 8, 9, 101, 10};
  backend_.script = {{text("<think>\nWeigh")},
                     {text("ing it.\n</thi")},
                     {text("nk>\n\nThe answer")},
                     {text(" is 4.")},
                     {done}};
  start();
  json message;
  std::string finish;
  expect_stream_equals_whole(*this, kChat, &message, &finish);
  EXPECT_EQ(message["reasoning_content"], "Weighing it.");
  EXPECT_EQ(message["content"], "The answer is 4.");
  EXPECT_EQ(finish, "stop");
  json whole = json::parse(post("/v1/chat/completions", kChat).body);
  EXPECT_EQ(whole["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);
}

TEST_F(ServiceTest, ReasoningFormatNamesTheKey) {
  backend_.output.reasoning = chat::ReasoningMarkers{};
  backend_.script = {{text("<think>r</think>c")}, {finished(FinishReason::kStop, 3)}};
  ServiceOptions options;
  options.reasoning_format = ReasoningFormat::kReasoning;
  start(options);
  json whole = json::parse(post("/v1/chat/completions", kChat).body);
  EXPECT_EQ(whole["choices"][0]["message"]["reasoning"], "r");
  EXPECT_FALSE(whole["choices"][0]["message"].contains("reasoning_content"));
  json body = kChat;
  body["stream"] = true;
  SseEvents ev = parse_sse(post("/v1/chat/completions", body).body);
  EXPECT_EQ(ev.data.at(1)["choices"][0]["delta"], json({{"reasoning", "r"}}));
}

TEST_F(ServiceTest, ApplyTemplateReturnsThePromptText) {
  start();
  json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
               {"add_generation_prompt", false},
               {"chat_template_kwargs", {{"enable_thinking", false}}},
               {"tools", kWeatherTools}};
  TestResponse r = post("/apply-template", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json({{"prompt", "user: hi\n"}}));
  const chat::ChatPromptInput& input = backend_.chat_inputs.at(0);
  EXPECT_FALSE(input.add_generation_prompt);
  EXPECT_EQ(input.template_kwargs["enable_thinking"], false);
  EXPECT_EQ(input.tools, kWeatherTools);
  EXPECT_EQ(backend_.submitted(), 0u);  // nothing is generated

  expect_error(post("/apply-template", {{"messages", {{{"role", "user"}, {"content", "RAISE"}}}}}),
               400, "template_error", "messages");
  expect_error(post("/apply-template", json::object()), 400, "missing_required_parameter",
               "messages");
  TestConnection c(port_);
  auto wrong = c.request("GET", "/apply-template");
  expect_error(wrong, 405, "method_not_allowed");
  EXPECT_EQ(wrong.header("allow"), "POST, OPTIONS");
}

TEST_F(ServiceTest, FailureAfterTheStreamStartedIsAnErrorEventWithoutDone) {
  backend_.script = {{text("partial")}, {failed("the sampler exploded")}};
  start();
  TestConnection c(port_);
  json body = kChat;
  body["stream"] = true;
  auto r = c.request("POST", "/v1/chat/completions", body.dump(), testing::json_headers());
  EXPECT_EQ(r.status, 200);
  SseEvents ev = parse_sse(r.body);
  EXPECT_FALSE(ev.done);
  ASSERT_FALSE(ev.data.empty());
  const json& last = ev.data.back();
  EXPECT_EQ(last["error"]["type"], "server_error");
  EXPECT_EQ(last["error"]["code"], "generation_failed");
  EXPECT_EQ(last["error"]["message"], "the sampler exploded");
  EXPECT_TRUE(last["error"].contains("param"));
  // The failure affects only that request.
  backend_.script = {{text("ok")}, {finished(FinishReason::kStop, 1)}};
  EXPECT_EQ(c.request("POST", "/v1/chat/completions", kChat.dump()).status, 200);
}

TEST_F(ServiceTest, FailureBeforeTheResponseIs500) {
  backend_.script = {{text("partial")}, {failed("out of memory")}};
  start();
  TestConnection c(port_);
  auto r = c.request("POST", "/v1/completions", R"({"prompt":"x"})", testing::json_headers());
  expect_error(r, 500, "internal_error");
  EXPECT_EQ(json::parse(r.body)["error"]["message"], "out of memory");
  backend_.script = {{finished(FinishReason::kStop, 1)}};
  EXPECT_EQ(c.request("POST", "/v1/completions", R"({"prompt":"x"})").status, 200);
}

TEST_F(ServiceTest, StreamingClientDisconnectCancelsTheRequest) {
  backend_.script = {
      {progress(0, 8)}, {text("first")}, {text(""), std::chrono::milliseconds(0), true}};
  start();
  {
    TestConnection c(port_);
    json body = kChat;
    body["stream"] = true;
    c.send_request("POST", "/v1/chat/completions", body.dump(), testing::json_headers());
    c.read_until("first");
  }
  backend_.join();  // the fake engine thread ends only once the handle is cancelled (or 10 s)
  ASSERT_EQ(backend_.handles.size(), 1u);
  EXPECT_TRUE(backend_.handles[0]->cancelled());
}

TEST_F(ServiceTest, NonStreamingClientDisconnectCancelsTheRequest) {
  backend_.script = {{progress(0, 8)}, {text(""), std::chrono::milliseconds(0), true}};
  start();
  {
    TestConnection c(port_);
    c.send_request("POST", "/v1/chat/completions", kChat.dump(), testing::json_headers());
    // Wait until the request reached the engine before hanging up.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (backend_.submitted() == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    ASSERT_EQ(backend_.submitted(), 1u);
  }
  backend_.join();
  EXPECT_TRUE(backend_.handles.at(0)->cancelled());
}

TEST_F(ServiceTest, SilentStreamsGetKeepaliveComments) {
  backend_.script = {{progress(0, 4)},
                     {progress(4, 4)},
                     {text("late"), std::chrono::milliseconds(300)},
                     {finished(FinishReason::kStop, 1)}};
  ServiceOptions options;
  options.sse_ping_interval_s = 0.05;
  start(options);
  json body = kChat;
  body["stream"] = true;
  SseEvents ev = parse_sse(post("/v1/chat/completions", body).body);
  EXPECT_GE(ev.comments.size(), 3u);  // 0/4, 4/4, then at least one idle ping
  EXPECT_EQ(ev.comments.back(), "keepalive 4/4");
  EXPECT_TRUE(ev.done_last);
}

TEST_F(ServiceTest, Http10StreamEndsWithTheConnection) {
  start();
  TestConnection c(port_);
  json body = kChat;
  body["stream"] = true;
  auto r =
      c.request("POST", "/v1/chat/completions", body.dump(), testing::json_headers(), "HTTP/1.0");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(parse_sse(r.body).done_last);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(ServiceTest, ModelsAndHealth) {
  start();
  TestConnection c(port_);
  for (const char* path : {"/v1/models", "/models", "/v1/models/?limit=5"}) {
    auto r = c.request("GET", path);
    ASSERT_EQ(r.status, 200) << path;
    json b = json::parse(r.body);
    EXPECT_EQ(b["object"], "list");
    ASSERT_EQ(b["data"].size(), 1u);
    EXPECT_EQ(b["data"][0]["id"], "stories");
    EXPECT_EQ(b["data"][0]["object"], "model");
    EXPECT_EQ(b["data"][0]["owned_by"], "lmserve");
    EXPECT_TRUE(b["data"][0]["created"].is_number_integer());
    EXPECT_EQ(b["data"][0]["context_length"], backend_.context_length());
  }
  auto one = c.request("GET", "/v1/models/stories");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(json::parse(one.body)["id"], "stories");
  expect_error(c.request("GET", "/v1/models/gpt-4o"), 404, "model_not_found", "model");
  for (const char* path : {"/health", "/v1/health", "/health/"}) {
    auto r = c.request("GET", path);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body), json({{"status", "ok"}}));
  }
  backend_.is_alive = false;
  auto dead = c.request("GET", "/health");
  expect_error(dead, 503, "worker_unavailable");
  expect_error(post("/v1/chat/completions", kChat), 503, "worker_unavailable");
}

TEST_F(ServiceTest, WatchdogReportsAStepRunningTooLong) {
  ServiceOptions options;
  options.watchdog_s = 2;
  start(options);
  TestConnection c(port_);
  backend_.step_running = std::chrono::seconds(1);  // a step inside the interval
  EXPECT_EQ(c.request("GET", "/health").status, 200);
  backend_.step_running = std::chrono::milliseconds(2500);
  auto stuck = c.request("GET", "/health");
  expect_error(stuck, 503, "worker_unavailable");
  EXPECT_EQ(json::parse(stuck.body)["error"]["message"],
            "The engine step has been running for 2.5 s (over --watchdog 2 s)");
  backend_.step_running = std::chrono::steady_clock::duration::zero();  // the step completed
  EXPECT_EQ(c.request("GET", "/health").status, 200);
}

TEST_F(ServiceTest, ModelsListTheCatalogAfterTheServedModel) {
  ServiceOptions options;
  int scans = 0;
  options.cached_models = [&scans] {
    ++scans;
    return std::vector<ListedModel>{{"org/cached", 1700000000, "org"},
                                    {"stories", 1, "someone"}};  // the served id: listed once
  };
  start(options);
  TestConnection c(port_);
  auto r = c.request("GET", "/v1/models");
  ASSERT_EQ(r.status, 200);
  const json data = json::parse(r.body)["data"];
  ASSERT_EQ(data.size(), 2u) << r.body;
  EXPECT_EQ(data[0]["id"], "stories");
  EXPECT_EQ(data[0]["owned_by"], "lmserve");
  EXPECT_EQ(data[1], json({{"id", "org/cached"},
                           {"object", "model"},
                           {"created", 1700000000},
                           {"owned_by", "org"}}));
  auto one = c.request("GET", "/v1/models/org/cached");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(json::parse(one.body), data[1]);
  EXPECT_EQ(json::parse(c.request("GET", "/v1/models/stories").body)["owned_by"], "lmserve");
  expect_error(c.request("GET", "/v1/models/org/other"), 404, "model_not_found", "model");
  EXPECT_EQ(scans, 4);  // read on every call: a model downloaded meanwhile shows up
}

// GET /metrics, read back by a strict parser after every request, until `ready` holds of
// it: a request is counted just after its response was written.
testing::PromFamilies wait_for_metrics(
    unsigned short port, const std::function<bool(const testing::PromFamilies&)>& ready) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    TestConnection c(port);
    auto r = c.request("GET", "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    testing::PromFamilies families = testing::parse_prometheus(r.body);
    if (ready(families) || std::chrono::steady_clock::now() > deadline) return families;
  }
}

TEST_F(ServiceTest, MetricsCountRequestsGenerationsAndEngineFigures) {
  backend_.script.back().event.timings = {
      .queue_ms = 3, .first_token_ms = 30, .total_ms = 120, .max_gap_ms = 40};
  backend_.engine_stats.running = 1;
  backend_.engine_stats.kv_blocks_total = 32;
  backend_.engine_stats.generated_tokens = 6;
  start();
  using testing::prom_value;
  const auto requests = [](const testing::PromFamilies& f, const char* endpoint, int status) {
    try {
      return prom_value(f, "lmserve_requests_total",
                        {{"endpoint", endpoint}, {"status", std::to_string(status)}});
    } catch (const std::runtime_error&) {
      return 0.0;  // not counted yet
    }
  };
  auto before = wait_for_metrics(port_, [](const auto&) { return true; });
  EXPECT_EQ(before.at("lmserve_requests_finished_total").samples.size(), 0u);

  ASSERT_EQ(post("/v1/chat/completions", kChat).status, 200);
  json stream = kChat;
  stream["stream"] = true;
  ASSERT_EQ(post("/chat/completions", stream).status, 200);  // an alias: the same endpoint
  ASSERT_EQ(post("/v1/completions", {{"prompt", "Hi"}}).status, 200);
  ASSERT_EQ(post("/v1/chat/completions", {{"messages", 1}}).status, 400);
  ASSERT_EQ(TestConnection(port_).request("GET", "/nowhere").status, 404);

  auto f = wait_for_metrics(port_, [&](const testing::PromFamilies& m) {
    return requests(m, "other", 404) == 1 && requests(m, "/v1/chat/completions", 400) == 1;
  });
  EXPECT_EQ(requests(f, "/v1/chat/completions", 200), 2);
  EXPECT_EQ(requests(f, "/v1/chat/completions", 400), 1);
  EXPECT_EQ(requests(f, "/v1/completions", 200), 1);
  EXPECT_EQ(requests(f, "other", 404), 1);
  EXPECT_GE(requests(f, "/metrics", 200), 1);
  EXPECT_EQ(prom_value(f, "lmserve_requests_finished_total", {{"finish_reason", "stop"}}), 3);
  const std::string e2e = "lmserve_e2e_request_latency_seconds";
  EXPECT_EQ(prom_value(f, e2e + "_count"), 3);
  EXPECT_DOUBLE_EQ(prom_value(f, e2e + "_sum"), 0.36);
  EXPECT_EQ(prom_value(f, e2e + "_bucket", {{"le", "0.1"}}), 0);
  EXPECT_EQ(prom_value(f, e2e + "_bucket", {{"le", "0.25"}}), 3);
  EXPECT_EQ(prom_value(f, "lmserve_max_inter_token_latency_seconds_count"), 3);
  EXPECT_EQ(prom_value(f, "lmserve_sequences_running"), 1);
  EXPECT_EQ(prom_value(f, "lmserve_kv_blocks_total"), 32);
  EXPECT_EQ(prom_value(f, "lmserve_generated_tokens_total"), 6);
}

TEST_F(ServiceTest, ApiKeysGuardEveryRouteButHealthAndPreflight) {
  ServiceOptions options;
  options.api_keys = {"key-one", "key-two"};
  start(options);
  TestConnection c(port_);
  auto expect_refused = [](const TestResponse& r) {
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.header("www-authenticate"), "Bearer");
    const json error = json::parse(r.body)["error"];
    EXPECT_EQ(error["type"], "authentication_error");
    EXPECT_EQ(error["code"], "invalid_api_key");
    EXPECT_TRUE(error["param"].is_null());
  };
  const json chat_body = kChat;
  for (const char* path : {"/v1/models", "/metrics", "/nowhere"}) {
    expect_refused(c.request("GET", path));
    expect_refused(c.request("GET", path, {}, {{"Authorization", "Bearer key-three"}}));
    expect_refused(c.request("GET", path, {}, {{"Authorization", "key-one"}}));
    expect_refused(c.request("GET", path, {}, {{"X-Api-Key", "key-on"}}));
  }
  auto refused_chat = c.request("POST", "/v1/chat/completions", chat_body.dump(),
                                {{"Content-Type", "application/json"}});
  expect_refused(refused_chat);
  EXPECT_EQ(backend_.submitted(), 0u);

  EXPECT_EQ(c.request("GET", "/v1/models", {}, {{"Authorization", "Bearer key-one"}}).status, 200);
  EXPECT_EQ(c.request("GET", "/v1/models", {}, {{"authorization", "bearer key-two"}}).status, 200);
  EXPECT_EQ(c.request("GET", "/v1/models", {}, {{"X-Api-Key", "key-two"}}).status, 200);
  EXPECT_EQ(c.request("GET", "/nowhere", {}, {{"X-Api-Key", "key-one"}}).status, 404);
  auto chat =
      c.request("POST", "/v1/chat/completions", chat_body.dump(),
                {{"Content-Type", "application/json"}, {"Authorization", "Bearer key-two"}});
  EXPECT_EQ(chat.status, 200) << chat.body;

  EXPECT_EQ(c.request("GET", "/health").status, 200);
  EXPECT_EQ(c.request("GET", "/v1/health").status, 200);
  EXPECT_EQ(c.request("OPTIONS", "/v1/chat/completions").status, 204);
}

TEST_F(ServiceTest, PropsDescribeHowTheServerWasStarted) {
  ServiceOptions options;
  options.model_id = "tiny";
  options.defaults.max_tokens = 64;
  options.defaults.sampling.temperature = 0.5f;
  options.defaults.sampling.top_k = 40;
  options.props = {.model_path = "/models/tiny",
                   .parallel = 4,
                   .kv_type = "f32",
                   .chat_template = "{{ messages }}",
                   .chat_template_source = "--chat-template",
                   .cpu = "avx2 (cpu: avx2 fma)"};
  backend_.context = 2048;
  start(options);
  auto r = TestConnection(port_).request("GET", "/props");
  ASSERT_EQ(r.status, 200) << r.body;
  json b = json::parse(r.body);
  EXPECT_EQ(b["model_alias"], "tiny");
  EXPECT_EQ(b["model_path"], "/models/tiny");
  EXPECT_EQ(b["total_slots"], 4);
  EXPECT_EQ(b["kv_cache_type"], "f32");
  EXPECT_EQ(b["chat_template"], "{{ messages }}");
  EXPECT_EQ(b["chat_template_source"], "--chat-template");
  EXPECT_EQ(b["cpu"], "avx2 (cpu: avx2 fma)");
  EXPECT_EQ(b["default_generation_settings"]["n_ctx"], 2048);
  const json& params = b["default_generation_settings"]["params"];
  EXPECT_EQ(params["n_predict"], 64);
  EXPECT_FLOAT_EQ(params["temperature"].get<float>(), 0.5f);
  EXPECT_EQ(params["top_k"], 40);
  EXPECT_EQ("fp_lmserve-" + b["build_info"].get<std::string>(), system_fingerprint());
}

TEST_F(ServiceTest, TimeoutCancelsAWholeResponseAndAnswers504) {
  backend_.script = {{text("Hello")},
                     {text(" world"), 0ms, /*wait_for_cancel=*/true},
                     {finished(FinishReason::kStop, 2)}};
  ServiceOptions options;
  options.request_timeout_s = 0.2;
  start(options);
  const auto started = std::chrono::steady_clock::now();
  expect_error(post("/v1/chat/completions", kChat), 504, "timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  ASSERT_EQ(backend_.submitted(), 1u);
  EXPECT_TRUE(backend_.handles[0]->cancelled());

  // A stream shows its progress as it goes: it is not limited.
  backend_.script = {{text("Hello"), 400ms}, {finished(FinishReason::kStop, 1)}};
  json stream = kChat;
  stream["stream"] = true;
  auto r = post("/v1/chat/completions", stream);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(parse_sse(r.body).done);
}

TEST_F(ServiceTest, RequestsHeldByADeadEngineAre503WorkerUnavailable) {
  backend_.script = {{progress(0, 8)},
                     {text("Hello"), 0ms, /*wait_for_cancel=*/true},
                     {finished(FinishReason::kStop, 1)}};
  start();
  // The engine thread dies with the request queued: it is no longer alive and cancels it.
  std::thread engine_dies([this] {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (backend_.submitted() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    backend_.is_alive = false;
    std::lock_guard lock(backend_.mutex_);
    for (auto& handle : backend_.handles) handle->cancel();
  });
  auto r = post("/v1/chat/completions", kChat);
  engine_dies.join();
  expect_error(r, 503, "worker_unavailable");
}

TEST_F(ServiceTest, ModelIdsWithSlashesAndEscapes) {
  ServiceOptions options;
  options.model_id = "mlx-community/Qwen3-0.6B";
  start(options);
  TestConnection c(port_);
  EXPECT_EQ(c.request("GET", "/v1/models/mlx-community/Qwen3-0.6B").status, 200);
  EXPECT_EQ(c.request("GET", "/v1/models/mlx-community%2FQwen3-0.6B").status, 200);
}

TEST_F(ServiceTest, StrictModel) {
  ServiceOptions options;
  options.strict_model = true;
  start(options);
  json body = kChat;
  body["model"] = "gpt-4o";
  expect_error(post("/v1/chat/completions", body), 404, "model_not_found", "model");
  body["model"] = "stories";
  EXPECT_EQ(post("/v1/chat/completions", body).status, 200);
  body["model"] = "default_model";
  auto r = post("/v1/chat/completions", body);
  EXPECT_EQ(json::parse(r.body)["model"], "stories");  // never the sentinel
}

TEST_F(ServiceTest, TokenizeAndDetokenize) {
  start();
  auto ids = post("/tokenize", json{{"content", "a<s>b"}});
  ASSERT_EQ(ids.status, 200) << ids.body;
  EXPECT_EQ(json::parse(ids.body), json({{"tokens", {100, 1, 101}}}));
  auto special = post("/tokenize", json{{"content", "ab"}, {"add_special", true}});
  EXPECT_EQ(json::parse(special.body)["tokens"], json({1, 100, 101}));
  auto literal = post("/tokenize", json{{"content", "<s>"}, {"parse_special", false}});
  EXPECT_EQ(json::parse(literal.body)["tokens"], json({63, 118, 65}));
  // A piece that is not UTF-8 on its own comes back as its bytes.
  auto pieces = post("/tokenize", json{{"content", "a\u00e9"}, {"with_pieces", true}});
  EXPECT_EQ(json::parse(pieces.body)["tokens"],
            json::parse(R"([{"id":100,"piece":"a"},{"id":198,"piece":[195]},)"
                        R"({"id":172,"piece":[169]}])"));

  auto text = post("/detokenize", json{{"tokens", {1, 100, 198, 172}}});
  ASSERT_EQ(text.status, 200) << text.body;
  EXPECT_EQ(json::parse(text.body), json({{"content", "<s>a\u00e9"}}));
  // Invalid UTF-8 is replaced, never sent raw.
  auto broken = post("/detokenize", json{{"tokens", {100, 198}}});
  EXPECT_EQ(json::parse(broken.body)["content"], "a\ufffd");

  expect_error(post("/tokenize", json::object()), 400, "missing_required_parameter", "content");
  expect_error(post("/tokenize", json{{"content", 5}}), 400, "invalid_type", "content");
  expect_error(post("/tokenize", json{{"content", "x"}, {"with_pieces", "yes"}}), 400,
               "invalid_type", "with_pieces");
  expect_error(post("/detokenize", json::object()), 400, "missing_required_parameter", "tokens");
  expect_error(post("/detokenize", json{{"tokens", "1 2"}}), 400, "invalid_type", "tokens");
  expect_error(post("/detokenize", json{{"tokens", {1, 259}}}), 400, "invalid_value", "tokens[1]");
  expect_error(post("/detokenize", json{{"tokens", {-1}}}), 400, "invalid_value", "tokens[0]");
  TestConnection c(port_);
  expect_error(c.request("GET", "/tokenize"), 405, "method_not_allowed");
}

TEST_F(ServiceTest, TokenizeIsBoundedInBytesAndTokens) {
  ServiceOptions options;
  options.tokenize_max_bytes = 100;
  options.tokenize_max_tokens = 50;
  start(options);
  EXPECT_EQ(post("/tokenize", json{{"content", std::string(50, 'a')}}).status, 200);
  auto message = [](const TestResponse& r) { return json::parse(r.body)["error"]["message"]; };
  auto too_long = post("/tokenize", json{{"content", std::string(101, 'a')}});
  expect_error(too_long, 400, "invalid_value", "content");
  EXPECT_EQ(message(too_long), "'content' is 101 bytes long; the limit is 100");
  // Within the bytes but over the tokens (one token per byte here).
  auto too_many = post("/tokenize", json{{"content", std::string(51, 'a')}});
  expect_error(too_many, 400, "invalid_value", "content");
  EXPECT_EQ(message(too_many), "'content' is 51 tokens long; the limit is 50");
  // A body far beyond what the content limit needs is refused before it is read.
  TestConnection c(port_);
  c.send(
      "POST /tokenize HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Content-Length: 100000\r\n\r\n");
  expect_error(c.read_response(), 413, "request_too_large");
  expect_error(post("/detokenize", json{{"tokens", std::vector<int>(51, 5)}}), 400, "invalid_value",
               "tokens");
}

TEST_F(ServiceTest, APromptTooLongInBytesIsRefusedBeforeTokenizing) {
  backend_.context = 10;  // at most 3 bytes per token: 30 bytes
  start();
  backend_.encode_calls.clear();
  expect_error(post("/v1/completions", {{"prompt", std::string(31, 'x')}}), 400,
               "context_length_exceeded", "prompt");
  expect_error(post("/v1/chat/completions",
                    {{"messages", {{{"role", "user"}, {"content", std::string(31, 'x')}}}}}),
               400, "context_length_exceeded", "messages");
  EXPECT_TRUE(backend_.encode_calls.empty());
}

TEST_F(ServiceTest, ErrorMessagesKeepEmbeddedNuls) {
  start();
  TestConnection c(port_);
  auto r = c.request("GET", "/v1/models/a%00b");
  expect_error(r, 404, "model_not_found");
  EXPECT_EQ(json::parse(r.body)["error"]["message"],
            std::string("The model 'a\0b' does not exist", 30));
}

TEST_F(ServiceTest, RoutingErrorsAndPreflight) {
  start();
  TestConnection c(port_);
  expect_error(c.request("GET", "/v2/nothing"), 404, "not_found");
  expect_error(c.request("POST", "/nothing", "{}"), 404, "not_found");
  auto wrong = c.request("GET", "/v1/chat/completions");
  expect_error(wrong, 405, "method_not_allowed");
  EXPECT_EQ(wrong.header("allow"), "POST, OPTIONS");
  auto wrong_get = c.request("DELETE", "/v1/models");
  expect_error(wrong_get, 405, "method_not_allowed");
  EXPECT_EQ(wrong_get.header("allow"), "GET, OPTIONS");
  auto options =
      c.request("OPTIONS", "/v1/chat/completions", "", {{"Origin", "http://localhost:3000"}});
  EXPECT_EQ(options.status, 204);
  EXPECT_EQ(options.header("content-length"), "0");
  EXPECT_EQ(options.body, "");
  EXPECT_EQ(options.header("access-control-allow-origin"), "http://localhost:3000");
  EXPECT_EQ(options.header("access-control-allow-methods"), "*");
  EXPECT_EQ(options.header("access-control-allow-headers"), "*, Authorization");
  EXPECT_EQ(c.request("OPTIONS", "/anything").status, 204);
  // Query strings and a trailing slash are tolerated on POST routes too.
  EXPECT_EQ(c.request("POST", "/v1/chat/completions/?x=1", kChat.dump()).status, 200);
}

TEST_F(ServiceTest, BadInputIsAnsweredAndTheNextRequestWorks) {
  start();
  TestConnection c(port_);
  struct Case {
    std::string path;
    std::string body;
    std::string code;
    std::optional<std::string> param;
  };
  const std::vector<Case> cases = {
      {"/v1/chat/completions", "{not json", "invalid_json", std::nullopt},
      {"/v1/chat/completions", "\xff\xfe", "invalid_json", std::nullopt},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"\ud800"}]})",
       "invalid_json", std::nullopt},
      {"/v1/chat/completions", "[1,2]", "invalid_request", std::nullopt},
      {"/v1/chat/completions", "{}", "missing_required_parameter", "messages"},
      {"/v1/completions", R"({"prompt":null})", "missing_required_parameter", "prompt"},
      {"/v1/chat/completions", R"({"messages":"hi"})", "invalid_type", "messages"},
      {"/v1/chat/completions", R"({"messages":[]})", "invalid_value", "messages"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
       "unsupported_parameter", "messages[0].content"},
      {"/v1/chat/completions", R"({"messages":[{"content":"x"}]})", "missing_required_parameter",
       "messages[0].role"},
      {"/v1/completions", R"({"prompt":"x","max_tokens":true})", "invalid_type", "max_tokens"},
      {"/v1/completions", R"({"prompt":"x","max_tokens":0})", "invalid_value", "max_tokens"},
      {"/v1/completions", R"({"prompt":"x","temperature":-1})", "invalid_value", "temperature"},
      {"/v1/completions", R"({"prompt":"x","top_p":1.5})", "invalid_value", "top_p"},
      {"/v1/completions", R"({"prompt":"x","temperature":NaN})", "invalid_json", std::nullopt},
      {"/v1/completions", R"({"prompt":"x","stream":"yes"})", "invalid_type", "stream"},
      {"/v1/completions", R"({"prompt":"x","n":17})", "invalid_value", "n"},
      {"/v1/completions", R"({"prompt":"x","stop":[1]})", "invalid_type", "stop[0]"},
      {"/v1/completions", R"({"prompt":5})", "invalid_type", "prompt"},
      {"/v1/completions", std::string(200, '[') + std::string(200, ']'), "invalid_json",
       std::nullopt},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.body);
    expect_error(c.request("POST", tc.path, tc.body, testing::json_headers()), 400, tc.code,
                 tc.param);
    auto good = c.request("POST", "/v1/chat/completions", kChat.dump(), testing::json_headers());
    EXPECT_EQ(good.status, 200);
  }
  EXPECT_EQ(backend_.submitted(), cases.size());  // only the good ones reached the engine
}

}  // namespace
}  // namespace lmserve::server

namespace lmserve::server {
namespace {

TEST_F(ServiceTest, GracefulShutdownAnswersEveryRequestInProgress) {
  backend_.script = {
      {progress(0, 8)}, {text("partial")}, {text(""), std::chrono::milliseconds(0), true}};
  start();
  TestConnection idle(port_);
  EXPECT_EQ(idle.request("GET", "/health").status, 200);  // now idle, kept alive

  TestConnection streaming(port_);
  json body = kChat;
  body["stream"] = true;
  streaming.send_request("POST", "/v1/chat/completions", body.dump(), testing::json_headers());
  streaming.read_until("partial");

  TestConnection waiting(port_);
  waiting.send_request("POST", "/v1/completions", R"({"prompt":"x"})", testing::json_headers());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (backend_.submitted() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  ASSERT_EQ(backend_.submitted(), 2u);

  service_->begin_shutdown();
  server_->shutdown(10s);

  auto r = waiting.read_response();
  expect_error(r, 503, "shutting_down");
  std::string rest = streaming.read_until("0\r\n\r\n");
  EXPECT_NE(rest.find("The server is shutting down"), std::string::npos) << rest;
  EXPECT_NE(rest.find("\"generation_failed\""), std::string::npos) << rest;
  EXPECT_EQ(rest.find("[DONE]"), std::string::npos);
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_TRUE(waiting.wait_closed());
  EXPECT_TRUE(streaming.wait_closed());
  thread_.join();  // run() returned by itself, well before the 10 s grace
  // No new connections are accepted.
  EXPECT_THROW(TestConnection late(port_), std::runtime_error);
}

}  // namespace
}  // namespace lmserve::server

namespace lmserve::server {
namespace {

// A path served with several methods lists them all; Anthropic's routes answer every error,
// transport and generation failures included, in Anthropic's shape.
TEST_F(ServiceTest, AgentRoutesMethodsAndAnthropicErrors) {
  backend_.script = {{text("partial")}, {failed("the sampler exploded")}};
  start();
  TestConnection c(port_);
  auto wrong = c.request("POST", "/v1/responses/resp_x", "{}", testing::json_headers());
  expect_error(wrong, 405, "method_not_allowed");
  EXPECT_EQ(wrong.header("allow"), "GET, DELETE, OPTIONS");
  expect_error(c.request("GET", "/v1/responses/resp_x"), 404, "response_not_found");

  auto anthropic = [](const TestResponse& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body;
    const json body = json::parse(r.body, nullptr, false);
    EXPECT_EQ(body["type"], "error") << r.body;
    EXPECT_EQ(body["error"]["type"], type) << r.body;
    EXPECT_TRUE(body["error"]["message"].is_string()) << r.body;
  };
  anthropic(c.request("GET", "/v1/messages"), 405, "invalid_request_error");
  anthropic(post("/v1/messages/count_tokens", json::object()), 400, "invalid_request_error");
  const json ask = {{"max_tokens", 8}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  anthropic(post("/v1/messages", ask), 500, "api_error");

  json stream = ask;
  stream["stream"] = true;
  auto r = post("/v1/messages", stream);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("event: message_start\n"), std::string::npos) << r.body;
  EXPECT_NE(
      r.body.find("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""),
      std::string::npos)
      << r.body;
  EXPECT_EQ(r.body.find("message_stop"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace lmserve::server
