// Fuzzes the OpenAI request validation: the bytes are an HTTP request body, run through
// parse_json_body and every endpoint's parser. Only ApiError (a 4xx answer) may come out.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/openai_request.h"
#include "util/error.h"

namespace {

namespace server = lmserve::server;

template <typename F>
void expect_api_error_only(F&& f) {
  try {
    f();
  } catch (const lmserve::ApiError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  server::json request;
  try {
    request = server::parse_json_body(body);
  } catch (const lmserve::ApiError&) {
    return 0;
  }
  const server::RequestDefaults defaults;
  expect_api_error_only([&] {
    // The route hands the validated values on: the chat formatter copies them into the
    // template context and templates serialize them (tojson), so both must be safe.
    const server::ChatRequest chat = server::parse_chat_request(request, defaults);
    const server::json context = {{"messages", chat.prompt.messages},
                                  {"tools", chat.prompt.tools},
                                  {"documents", chat.prompt.documents},
                                  {"kwargs", chat.prompt.template_kwargs}};
    (void)context.dump();
  });
  expect_api_error_only([&] { (void)server::parse_apply_template_request(request); });
  expect_api_error_only([&] {
    const server::CompletionRequest completion =
        server::parse_completion_request(request, defaults);
    if (completion.prompt.text) {
      (void)server::completion_adds_special_tokens(*completion.prompt.text, "<s>", true);
    } else {
      server::check_token_ids(completion.prompt.ids, 32000, "prompt");
    }
  });
  expect_api_error_only([&] { (void)server::parse_tokenize_request(request); });
  expect_api_error_only([&] { (void)server::parse_detokenize_request(request, 32000); });
  return 0;
}
