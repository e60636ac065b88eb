// POST /apply-template over real HTTP with the real chat formatter: every template and
// conversation of shared/fixtures/templates gives exactly Python's bytes, or the template's
// error where Jinja2 raised one. Assistant tool calls make the round trip from the wire form.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

#include "chat/chat_formatter.h"
#include "server/openai_service.h"
#include "support/fixtures.h"
#include "test_http_client.h"

namespace lmserve::server {
namespace {

using testing::TestConnection;

// Renders with whichever formatter the test selects; nothing else is reachable through
// /apply-template.
class TemplateOnlyBackend final : public Backend {
 public:
  const chat::ChatFormatter* formatter = nullptr;

  chat::RenderedPrompt render_chat(const chat::ChatPromptInput& input) const override {
    return formatter->render(input);
  }
  std::vector<std::int32_t> encode(std::string_view, bool, bool) const override { unused(); }
  std::string decode(const std::vector<std::int32_t>&) const override { unused(); }
  std::string token_bytes(std::int32_t) const override { unused(); }
  int vocab_size() const override { return 0; }
  std::size_t max_token_bytes() const override { return 0; }
  const std::string& bos_token() const override { unused(); }
  bool adds_bos() const override { return false; }
  std::shared_ptr<engine::RequestHandle> submit(engine::GenerationRequest,
                                                engine::EventSink) override {
    unused();
  }
  int context_length() const override { return 0; }
  bool alive() const override { return true; }
  std::chrono::steady_clock::duration step_running_for() const override { return {}; }
  engine::EngineStats stats() const override { return {}; }

 private:
  [[noreturn]] static void unused() { throw std::logic_error("not used by /apply-template"); }
};

// The conversation as an OpenAI client sends it: tool-call arguments as JSON strings (the
// server parses them back for the template), kwargs as chat_template_kwargs.
json request_body(const json& conversation) {
  json messages = conversation.at("messages");
  for (json& message : messages) {
    if (!message.contains("tool_calls")) continue;
    for (json& call : message["tool_calls"]) {
      json& arguments = call["function"]["arguments"];
      arguments = arguments.dump();
    }
  }
  json body = {{"messages", messages},
               {"add_generation_prompt", conversation.at("add_generation_prompt")}};
  for (const char* key : {"tools", "documents"}) {
    if (conversation.contains(key)) body[key] = conversation[key];
  }
  if (conversation.contains("kwargs")) body["chat_template_kwargs"] = conversation["kwargs"];
  return body;
}

TEST(ApplyTemplateFixtures, EveryTemplateAndConversation) {
  const json manifest = json::parse(
      lmserve::testing::read_file(lmserve::testing::fixture("templates/manifest.json")));
  const json conversations = json::parse(
      lmserve::testing::read_file(lmserve::testing::fixture("templates/conversations.json")));

  TemplateOnlyBackend backend;
  ServiceOptions options;
  options.model_id = "templates";
  OpenAiService service(options, backend);
  HttpServerOptions http;
  http.port = 0;
  HttpServer server(http, [&service](HttpExchange& exchange) { return service.handle(exchange); });
  unsigned short port = server.listen().port();
  std::thread loop([&server] { server.run(); });

  int renders = 0, renders_ok = 0, errors = 0, errors_ok = 0;
  for (auto it = manifest.at("templates").begin(); it != manifest.at("templates").end(); ++it) {
    const std::string name = it.key();
    chat::ChatFormatter formatter(chat::ChatTemplates{lmserve::testing::read_file(
                                      lmserve::testing::fixture("templates/" + name + ".jinja"))},
                                  it.value().at("special_tokens"),
                                  {.fixed_time = lmserve::testing::template_fixture_clock()});
    backend.formatter = &formatter;
    const json& results = it.value().at("results");
    for (std::size_t n = 0; n < results.size(); ++n) {
      const std::string label = name + " × " + conversations[n].at("name").get<std::string>();
      TestConnection connection(port);
      auto response =
          connection.request("POST", "/apply-template", request_body(conversations[n]).dump(),
                             testing::json_headers());
      json body = json::parse(response.body, nullptr, false);
      if (results[n].is_string()) {
        ++renders;
        std::string want = lmserve::testing::read_file(lmserve::testing::fixture(
            "templates/" + name + ".expected." + std::to_string(n) + ".txt"));
        if (response.status == 200 && body["prompt"] == want) {
          ++renders_ok;
        } else {
          ADD_FAILURE() << label << ": " << response.status << " " << response.body.substr(0, 300);
        }
        continue;
      }
      ++errors;
      const json& error = body["error"];
      bool same = response.status == 400 && error["code"] == "template_error";
      // Messages the template wrote itself must come back exactly.
      if (results[n]["error_type"] == "TemplateError")
        same = same && error["message"] == results[n]["error"];
      if (same) {
        ++errors_ok;
      } else {
        ADD_FAILURE() << label << ": want " << results[n].dump() << ", got " << response.status
                      << " " << response.body;
      }
    }
  }
  server.stop();
  loop.join();
  service.shutdown();
  std::printf("/apply-template: %d/%d renders byte-exact, %d/%d errors as the template's\n",
              renders_ok, renders, errors_ok, errors);
  EXPECT_EQ(renders, manifest.at("counts").at("renders").get<int>());
  EXPECT_EQ(errors, manifest.at("counts").at("errors").get<int>());
  EXPECT_EQ(renders_ok, renders);
  EXPECT_EQ(errors_ok, errors);
}

}  // namespace
}  // namespace lmserve::server
