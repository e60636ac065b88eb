#include "server/openai_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <sstream>
#include <utility>

#include "server/messages_format.h"
#include "server/messages_request.h"
#include "server/openai_format.h"
#include "server/openai_response.h"
#include "server/output_constraint.h"
#include "server/response_writers.h"
#include "server/responses_format.h"
#include "server/responses_request.h"
#include "util/error.h"
#include "util/utf8.h"

namespace lmserve::server {
namespace {

// Stop strings apply to the answer (OpenAI's stop ends the content returned), not to the
// thinking or the tool calls the output parser takes out of the generated text.
engine::StopExemptions stop_exemptions(const chat::OutputParserOptions& output) {
  engine::StopExemptions exemptions;
  if (output.reasoning) {
    exemptions.spans.push_back({output.reasoning->start, output.reasoning->end});
    if (output.starts_in_reasoning) exemptions.inside = 0;
  }
  if (output.tool_syntax) {
    exemptions.spans.push_back(
        {std::string(output.tool_syntax->start), std::string(output.tool_syntax->end)});
  }
  return exemptions;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ApiError not_found(std::string_view path) {
  return ApiError(404, "invalid_request_error", "not_found", std::nullopt,
                  "Unknown path: " + std::string(path));
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string format_seconds(double seconds) {
  std::ostringstream out;
  out << seconds;
  return out.str();
}

ApiError invalid_api_key() {
  return ApiError(401, "authentication_error", "invalid_api_key", std::nullopt,
                  "Missing or invalid API key: send Authorization: Bearer KEY or X-Api-Key: KEY");
}

ApiError worker_unavailable() {
  return ApiError(503, "server_error", "worker_unavailable", std::nullopt,
                  "The generation worker is not running");
}

// Counts a generation's end and logs it: one line per generation request.
void record_generation_end(ServerMetrics& metrics, const std::string& request_id,
                           const engine::GenerationEvent& end) {
  metrics.record_generation(end);
  if (end.kind == engine::GenerationEvent::Kind::kFailed) {
    spdlog::info("generation {} failed: {}", request_id, end.error);
    return;
  }
  const engine::Usage& u = end.usage;
  const engine::Timings& t = end.timings;
  spdlog::info(
      "generation {} finish={} prompt_tokens={} cached_tokens={} completion_tokens={} "
      "queue_ms={:.1f} ttft_ms={:.1f} total_ms={:.1f}",
      request_id, engine::to_string(end.finish_reason), u.prompt_tokens, u.cached_tokens,
      u.completion_tokens, t.queue_ms, t.first_token_ms, t.total_ms);
}

}  // namespace

struct OpenAiService::Job {
  GenerationOutput output;  // each choice reads its text with a copy
  engine::GenerationRequest request;
  int choices = 1;  // n: generations of the request, each sampled as choice_sampling() says
  int prompt_tokens = 0;
  bool stream = false;
  std::string id;                          // the response's id, also in the logs
  std::unique_ptr<ResponseFormat> format;  // how the endpoint words the generation
  Headers headers;                         // extra response headers
};

OpenAiService::OpenAiService(ServiceOptions options, Backend& backend)
    : options_(std::move(options)),
      backend_(backend),
      created_(unix_now()),
      api_keys_(options_.api_keys),
      work_pool_(static_cast<std::size_t>(std::max(1, options_.work_threads))),
      store_(std::make_unique<ResponseStore>(options_.responses_store)) {}

OpenAiService::~OpenAiService() { work_pool_.join(); }

template <class Fn>
net::awaitable<std::invoke_result_t<Fn&>> OpenAiService::offload(Fn fn) {
  using Result = std::invoke_result_t<Fn&>;
  co_return co_await net::co_spawn(
      work_pool_, [&fn]() -> net::awaitable<Result> { co_return fn(); }, net::use_awaitable);
}

std::string OpenAiService::response_model(const std::optional<std::string>& requested) const {
  if (!requested || requested->empty() || *requested == "default_model") return options_.model_id;
  return *requested;
}

void OpenAiService::check_model(const std::optional<std::string>& requested) const {
  if (!options_.strict_model || !requested || requested->empty()) return;
  if (*requested == options_.model_id || *requested == "default_model") return;
  throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                 "The model '" + *requested + "' does not exist; this server serves '" +
                     options_.model_id + "'");
}

int OpenAiService::fit_context(int prompt_tokens, int max_tokens, const char* param) const {
  int context = backend_.context_length();
  if (context <= 0) return max_tokens;
  if (prompt_tokens >= context) {
    throw ApiError::invalid_request("context_length_exceeded", param,
                                    "The prompt is " + std::to_string(prompt_tokens) +
                                        " tokens long, but the model's context is " +
                                        std::to_string(context) + " tokens");
  }
  return std::min(max_tokens, context - prompt_tokens);
}

struct OpenAiService::Route {
  http::verb method;
  std::vector<std::string_view> paths;  // a path ending in '/' takes a parameter after it
  net::awaitable<void> (OpenAiService::*handler)(HttpExchange&);
  bool open = false;  // served without an API key
  ErrorShape errors = ErrorShape::kOpenAi;

  bool matches(std::string_view path) const {
    return std::any_of(paths.begin(), paths.end(), [path](std::string_view p) {
      return p.ends_with('/') ? path.starts_with(p) && path.size() > p.size() : path == p;
    });
  }
};

const std::vector<OpenAiService::Route>& OpenAiService::routes() {
  using S = OpenAiService;
  using http::verb;
  constexpr ErrorShape kAnthropic = ErrorShape::kAnthropic;
  static const std::vector<Route> kRoutes = {
      {verb::post, {"/v1/chat/completions", "/chat/completions"}, &S::chat_completions},
      {verb::post, {"/v1/completions", "/completions"}, &S::completions},
      {verb::post, {"/v1/responses", "/responses"}, &S::create_response},
      {verb::get, {"/v1/responses/", "/responses/"}, &S::get_response},
      {verb::delete_, {"/v1/responses/", "/responses/"}, &S::delete_response},
      {verb::post, {"/v1/messages", "/messages"}, &S::messages, /*open=*/false, kAnthropic},
      {verb::post, {"/v1/messages/count_tokens"}, &S::count_tokens, /*open=*/false, kAnthropic},
      {verb::post, {"/apply-template"}, &S::apply_template},
      {verb::get, {"/v1/models", "/models"}, &S::models},
      {verb::get, {"/v1/models/", "/models/"}, &S::model},
      {verb::get, {"/health", "/v1/health"}, &S::health, /*open=*/true},
      {verb::get, {"/metrics"}, &S::metrics},
      {verb::get, {"/props"}, &S::props},
      {verb::post, {"/tokenize"}, &S::tokenize},
      {verb::post, {"/detokenize"}, &S::detokenize},
  };
  return kRoutes;
}

const OpenAiService::Route* OpenAiService::find_route(std::string_view path, http::verb method) {
  const Route* first = nullptr;  // a path served with other methods: 405
  for (const Route& route : routes()) {
    if (!route.matches(path)) continue;
    if (route.method == method) return &route;
    if (!first) first = &route;
  }
  return first;
}

net::awaitable<void> OpenAiService::handle(HttpExchange& exchange) {
  const Route* route = find_route(exchange.path(), exchange.method());
  // A route's first path names it in /metrics; unknown paths share one label value.
  const std::string_view endpoint = route ? route->paths.front() : "other";
  auto answered = [&exchange](int unanswered_status) {
    return exchange.started() ? exchange.status() : unanswered_status;
  };
  std::optional<ApiError> anthropic_error;
  try {
    co_await dispatch(exchange, route);
  } catch (const ApiError& e) {
    // Anthropic's clients read their own error shape; HttpServer writes OpenAI's.
    if (!route || route->errors != ErrorShape::kAnthropic || exchange.started()) {
      metrics_->count_request(endpoint, answered(e.http_status()));
      throw;
    }
    anthropic_error = e;
  } catch (...) {
    metrics_->count_request(endpoint, answered(500));  // HttpServer answers 500
    throw;
  }
  if (anthropic_error) co_await respond_error(exchange, route, *anthropic_error);
  metrics_->count_request(endpoint, answered(500));
}

net::awaitable<void> OpenAiService::respond_error(HttpExchange& exchange, const Route* route,
                                                  const ApiError& error, const Headers& headers) {
  if (route && route->errors == ErrorShape::kAnthropic) {
    co_await exchange.respond(static_cast<http::status>(error.http_status()),
                              dump_json(anthropic_error_body(error)), "application/json", headers);
  } else {
    co_await exchange.respond_error(error, headers);
  }
}

bool OpenAiService::authorized(const HttpExchange& exchange) const {
  const HttpRequest& request = exchange.request();
  auto view = [](beast::string_view v) { return std::string_view(v.data(), v.size()); };
  return api_keys_.accepts(view(request[http::field::authorization]), view(request["X-Api-Key"]));
}

net::awaitable<void> OpenAiService::dispatch(HttpExchange& exchange, const Route* route) {
  std::string_view path = exchange.path();
  http::verb method = exchange.method();

  if (method == http::verb::options) {
    // CORS preflight, for any path.
    co_await exchange.respond(http::status::no_content, std::string(), std::string_view());
    co_return;
  }
  if (api_keys_.required() && !(route && route->open) && !authorized(exchange)) {
    const Headers challenge = {{"WWW-Authenticate", "Bearer"}};
    co_await respond_error(exchange, route, invalid_api_key(), challenge);
    co_return;
  }
  if (!route) throw not_found(path);
  if (method != route->method) {
    std::string allow;
    for (const Route& r : routes()) {
      if (r.matches(path)) allow += std::string(http::to_string(r.method)) + ", ";
    }
    allow += "OPTIONS";
    ApiError error(405, "invalid_request_error", "method_not_allowed", std::nullopt,
                   "Method " + std::string(http::to_string(method)) + " is not allowed on " +
                       std::string(path) + "; allowed: " + allow);
    Headers headers{{std::string("Allow"), allow}};
    co_await respond_error(exchange, route, error, headers);
    co_return;
  }
  co_await (this->*(route->handler))(exchange);
}

json OpenAiService::model_object() const {
  return {{"id", options_.model_id},
          {"object", "model"},
          {"created", created_},
          {"owned_by", "lmserve"},
          {"context_length", backend_.context_length()}};
}

net::awaitable<std::vector<json>> OpenAiService::model_objects() {
  std::vector<json> objects;
  objects.push_back(model_object());
  if (!options_.cached_models) co_return objects;
  const std::vector<ListedModel> cached =
      co_await offload([this] { return options_.cached_models(); });
  for (const ListedModel& m : cached) {
    if (m.id == options_.model_id) continue;
    objects.push_back(
        {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", m.owned_by}});
  }
  co_return objects;
}

net::awaitable<void> OpenAiService::models(HttpExchange& exchange) {
  std::vector<json> data = co_await model_objects();
  json body = {{"object", "list"}, {"data", std::move(data)}};
  co_await exchange.respond(http::status::ok, dump_json(body));
}

net::awaitable<void> OpenAiService::model(HttpExchange& exchange) {
  std::string_view path = exchange.path();
  std::string id = percent_decode(path.substr(path.find("/models/") + 8));
  const std::vector<json> objects = co_await model_objects();
  for (const json& object : objects) {
    if (object["id"] == id) {
      co_await exchange.respond(http::status::ok, dump_json(object));
      co_return;
    }
  }
  throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                 "The model '" + id + "' does not exist");
}

net::awaitable<void> OpenAiService::health(HttpExchange& exchange) {
  if (!backend_.alive()) throw worker_unavailable();
  if (options_.watchdog_s > 0) {
    const double running = std::chrono::duration<double>(backend_.step_running_for()).count();
    if (running > options_.watchdog_s) {
      // A stuck step (a deadlock, a runaway kernel) leaves the thread alive but useless.
      throw ApiError(503, "server_error", "worker_unavailable", std::nullopt,
                     "The engine step has been running for " + fmt::format("{:.1f}", running) +
                         " s (over --watchdog " + format_seconds(options_.watchdog_s) + " s)");
    }
  }
  co_await exchange.respond(http::status::ok, std::string(R"({"status":"ok"})"));
}

net::awaitable<void> OpenAiService::metrics(HttpExchange& exchange) {
  co_await exchange.respond(http::status::ok, metrics_->render(backend_.stats()),
                            kMetricsContentType);
}

// llama-server's /props keys where they mean the same; lmserve's own after them.
net::awaitable<void> OpenAiService::props(HttpExchange& exchange) {
  const ServerProps& p = options_.props;
  const engine::SamplingParams& s = options_.defaults.sampling;
  json params = {{"n_predict", options_.defaults.max_tokens},
                 {"temperature", s.temperature},
                 {"top_p", s.top_p},
                 {"top_k", s.top_k},
                 {"min_p", s.min_p}};
  json body = {{"default_generation_settings",
                {{"n_ctx", backend_.context_length()}, {"params", std::move(params)}}},
               {"total_slots", p.parallel},
               {"model_alias", options_.model_id},
               {"model_path", p.model_path},
               {"chat_template", p.chat_template},
               {"chat_template_source", p.chat_template_source},
               {"build_info", build_info()},
               {"cpu", p.cpu},
               {"kv_cache_type", p.kv_type}};
  co_await exchange.respond(http::status::ok, dump_json(body));
}

net::awaitable<void> OpenAiService::tokenize(HttpExchange& exchange) {
  // Room for the content with every byte escaped (\u00XX), plus the other fields.
  std::string_view body = co_await exchange.read_body(6 * options_.tokenize_max_bytes + 4096);
  std::string response = co_await offload([&] { return tokenize_response(body); });
  co_await exchange.respond(http::status::ok, std::move(response));
}

std::string OpenAiService::tokenize_response(std::string_view body) const {
  TokenizeRequest request = parse_tokenize_request(parse_json_body(body));
  if (request.content.size() > options_.tokenize_max_bytes) {
    throw ApiError::invalid_request("invalid_value", "content",
                                    "'content' is " + std::to_string(request.content.size()) +
                                        " bytes long; the limit is " +
                                        std::to_string(options_.tokenize_max_bytes));
  }
  const std::vector<std::int32_t> ids =
      backend_.encode(request.content, request.add_special, request.parse_special);
  if (ids.size() > options_.tokenize_max_tokens) {
    throw ApiError::invalid_request("invalid_value", "content",
                                    "'content' is " + std::to_string(ids.size()) +
                                        " tokens long; the limit is " +
                                        std::to_string(options_.tokenize_max_tokens));
  }
  // Written directly rather than as a json tree, which costs ~100 bytes per token.
  std::string out = R"({"tokens":[)";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    if (!request.with_pieces) {
      out += std::to_string(ids[i]);
      continue;
    }
    // A piece that is not valid UTF-8 on its own (part of a character) is given as bytes.
    const std::string bytes = backend_.token_bytes(ids[i]);
    out += R"({"id":)" + std::to_string(ids[i]) + R"(,"piece":)";
    if (util::is_valid_utf8(bytes)) {
      out += dump_json(json(bytes));
    } else {
      out += '[';
      for (std::size_t b = 0; b < bytes.size(); ++b) {
        if (b > 0) out += ',';
        out += std::to_string(static_cast<unsigned char>(bytes[b]));
      }
      out += ']';
    }
    out += '}';
  }
  out += "]}";
  return out;
}

net::awaitable<void> OpenAiService::detokenize(HttpExchange& exchange) {
  // Room for tokenize_max_tokens ids of up to 10 digits, with a separator each.
  std::string_view body = co_await exchange.read_body(12 * options_.tokenize_max_tokens + 4096);
  std::string response = co_await offload([&] {
    const std::vector<std::int32_t> ids =
        parse_detokenize_request(parse_json_body(body), backend_.vocab_size());
    if (ids.size() > options_.tokenize_max_tokens) {
      throw ApiError::invalid_request(
          "invalid_value", "tokens",
          "At most " + std::to_string(options_.tokenize_max_tokens) + " tokens");
    }
    return dump_json(json{{"content", util::sanitize_utf8(backend_.decode(ids))}});
  });
  co_await exchange.respond(http::status::ok, std::move(response));
}

OpenAiService::Job OpenAiService::make_job(std::vector<std::int32_t> prompt, CommonParams& common,
                                           const char* prompt_param) const {
  Job job;
  job.prompt_tokens = static_cast<int>(prompt.size());
  job.request.max_tokens = fit_context(job.prompt_tokens, common.max_tokens, prompt_param);
  job.request.prompt = std::move(prompt);
  const int vocab = backend_.vocab_size();
  for (const auto& [id, bias] : common.sampling.logit_bias) {
    if (id >= vocab) {
      throw ApiError::invalid_request("invalid_value", "logit_bias",
                                      "'logit_bias' names token " + std::to_string(id) +
                                          ", outside the vocabulary of " + std::to_string(vocab));
    }
  }
  check_token_ids(common.stop_token_ids, vocab, "stop_token_ids");
  job.request.sampling = common.sampling;
  job.request.stop = std::move(common.stop);
  job.request.stop_token_ids = std::move(common.stop_token_ids);
  job.request.ignore_eos = common.ignore_eos;
  job.request.min_tokens = common.min_tokens;
  job.request.logprobs = common.logprobs;
  job.request.grammar = std::move(common.grammar);
  job.choices = common.n;
  job.stream = common.stream;
  return job;
}

void OpenAiService::use_openai_format(Job& job, bool chat, const CommonParams& common) const {
  job.id = (chat ? "chatcmpl-" : "cmpl-") + new_uuid4();
  OpenAiShape shape{{job.id, unix_now(), response_model(common.model)},
                    chat,
                    common.include_usage,
                    options_.reasoning_format,
                    std::nullopt,
                    common.n};
  if (common.logprobs >= 0) {
    shape.logprobs.emplace(chat, common.logprobs,
                           [this](std::int32_t id) { return backend_.token_bytes(id); });
  }
  job.format = std::make_unique<OpenAiFormat>(std::move(shape));
}

void OpenAiService::check_prompt_bytes(std::size_t bytes, const char* param) const {
  const int context = backend_.context_length();
  if (context <= 0) return;
  const std::size_t limit = static_cast<std::size_t>(context) * backend_.max_token_bytes();
  if (bytes > limit) {
    throw ApiError::invalid_request("context_length_exceeded", param,
                                    "The prompt is " + std::to_string(bytes) +
                                        " bytes long, more than the model's context of " +
                                        std::to_string(context) + " tokens can hold (at most " +
                                        std::to_string(limit) + " bytes)");
  }
}

net::awaitable<void> OpenAiService::chat_completions(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  Job job = co_await offload([&] { return prepare_chat(body); });
  co_await generate(exchange, std::move(job));
}

OpenAiService::Job OpenAiService::prepare_chat(std::string_view body) const {
  ChatRequest request = parse_chat_request(parse_json_body(body), options_.defaults);
  Job job = prepare_chat_job(request, "messages");
  use_openai_format(job, /*chat=*/true, request.common);
  return job;
}

OpenAiService::Job OpenAiService::prepare_chat_job(ChatRequest& request,
                                                   const char* prompt_param) const {
  check_model(request.common.model);
  chat::RenderedPrompt rendered = backend_.render_chat(request.prompt);
  check_prompt_bytes(rendered.text.size(), prompt_param);
  std::vector<std::int32_t> ids = backend_.encode(rendered.text, rendered.add_special_tokens);
  if (ids.empty()) {
    throw ApiError::invalid_request("invalid_value", prompt_param, "The rendered prompt is empty");
  }
  Job job = make_job(std::move(ids), request.common, prompt_param);
  if (request.force_tool_call) {
    job.request.grammar = tool_call_grammar(request.prompt.tools, rendered.output.tool_syntax);
  }
  // A budget needs the think markers as single tokens; without them nothing is reasoning.
  if (request.reasoning_budget && rendered.output.reasoning && rendered.think_token_ids) {
    job.request.think_budget = engine::ThinkBudget{.start_id = rendered.think_token_ids->first,
                                                   .end_id = rendered.think_token_ids->second,
                                                   .budget = *request.reasoning_budget,
                                                   .open = rendered.output.starts_in_reasoning};
  }
  job.request.stop_exemptions = stop_exemptions(rendered.output);
  job.output = GenerationOutput(rendered);
  // The model got tools, but lmserve does not know how it writes calls (§2.6).
  if (!request.prompt.tools.is_null() && !rendered.output.tool_syntax) {
    job.headers.emplace_back("X-Lmserve-Warning", "tools-unparsed");
  }
  return job;
}

net::awaitable<void> OpenAiService::apply_template(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  chat::ChatPromptInput input = parse_apply_template_request(parse_json_body(body));
  std::string response = dump_json(json{{"prompt", backend_.render_chat(input).text}});
  co_await exchange.respond(http::status::ok, std::move(response));
}

net::awaitable<void> OpenAiService::completions(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  Job job = co_await offload([&] { return prepare_completion(body); });
  co_await generate(exchange, std::move(job));
}

OpenAiService::Job OpenAiService::prepare_completion(std::string_view body) const {
  CompletionRequest request = parse_completion_request(parse_json_body(body), options_.defaults);
  check_model(request.common.model);

  std::vector<std::int32_t> ids;
  if (request.prompt.text) {
    const std::string& text = *request.prompt.text;
    check_prompt_bytes(text.size(), "prompt");
    ids = backend_.encode(
        text, completion_adds_special_tokens(text, backend_.bos_token(), backend_.adds_bos()));
  } else {
    ids = std::move(request.prompt.ids);
    check_token_ids(ids, backend_.vocab_size(), "prompt");
  }
  if (ids.empty())
    throw ApiError::invalid_request("invalid_value", "prompt", "'prompt' must not be empty");
  Job job = make_job(std::move(ids), request.common, "prompt");
  use_openai_format(job, /*chat=*/false, request.common);
  return job;
}

net::awaitable<void> OpenAiService::create_response(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  Job job = co_await offload([&] { return prepare_response(body); });
  co_await generate(exchange, std::move(job));
}

static ApiError response_not_found(const std::string& id, std::optional<std::string> param) {
  return ApiError(404, "invalid_request_error", "response_not_found", std::move(param),
                  "No response with id '" + id +
                      "' is stored: it was never stored (store: false), was deleted, or was "
                      "evicted from the store (--responses-store, --responses-store-ttl)");
}

OpenAiService::Job OpenAiService::prepare_response(std::string_view body) const {
  ResponsesRequest request = parse_responses_request(parse_json_body(body), options_.defaults);
  // The previous turns, then this input; instructions are the request's own, never carried
  // over (OpenAI's rule), and go first so that the rendered history stays a prefix.
  json conversation = json::array();
  if (request.previous_response_id) {
    auto entry = store_->get(*request.previous_response_id);
    if (!entry) throw response_not_found(*request.previous_response_id, "previous_response_id");
    conversation = json::parse(entry->conversation);
  }
  json& input = request.chat.prompt.messages;
  conversation.insert(conversation.end(), input.begin(), input.end());
  input = json::array();
  if (request.instructions)
    input.push_back({{"role", "system"}, {"content", *request.instructions}});
  input.insert(input.end(), conversation.begin(), conversation.end());

  Job job = prepare_chat_job(request.chat, "input");
  job.id = new_response_id();
  ResponseCompleted on_completed;
  if (request.store) {
    on_completed = [store = store_.get(), id = job.id, conversation = std::move(conversation)](
                       const json& response, const chat::ChatMessage& message) mutable {
      conversation.push_back(assistant_chat_message(message));
      if (!store->put(id, {dump_json(response), dump_json(conversation)})) {
        spdlog::warn("response {} is larger than --responses-store-memory: not stored", id);
      }
    };
  }
  job.format = std::make_unique<ResponsesFormat>(
      ResponseMeta{job.id, unix_now(), response_model(request.chat.common.model)},
      std::move(request.echo), std::move(on_completed));
  return job;
}

static std::string path_parameter(std::string_view path) {
  return percent_decode(path.substr(path.rfind('/') + 1));
}

net::awaitable<void> OpenAiService::get_response(HttpExchange& exchange) {
  const std::string id = path_parameter(exchange.path());
  auto entry = store_->get(id);
  if (!entry) throw response_not_found(id, std::nullopt);
  co_await exchange.respond(http::status::ok, std::move(entry->response));
}

net::awaitable<void> OpenAiService::delete_response(HttpExchange& exchange) {
  const std::string id = path_parameter(exchange.path());
  if (!store_->erase(id)) throw response_not_found(id, std::nullopt);
  std::string body = dump_json({{"id", id}, {"object", "response"}, {"deleted", true}});
  co_await exchange.respond(http::status::ok, std::move(body));
}

net::awaitable<void> OpenAiService::messages(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  Job job = co_await offload([&] {
    ChatRequest request = parse_messages_request(parse_json_body(body), options_.defaults);
    Job job = prepare_chat_job(request, "messages");
    job.id = new_response_id("msg_");
    job.format = std::make_unique<MessagesFormat>(
        ResponseMeta{job.id, unix_now(), response_model(request.common.model)}, job.prompt_tokens);
    return job;
  });
  co_await generate(exchange, std::move(job));
}

net::awaitable<void> OpenAiService::count_tokens(HttpExchange& exchange) {
  std::string_view body = co_await exchange.read_body();
  std::string response = co_await offload([&] {
    chat::ChatPromptInput prompt = parse_count_tokens_request(parse_json_body(body));
    chat::RenderedPrompt rendered = backend_.render_chat(prompt);
    check_prompt_bytes(rendered.text.size(), "messages");
    const auto ids = backend_.encode(rendered.text, rendered.add_special_tokens);
    return dump_json(json{{"input_tokens", ids.size()}});
  });
  co_await exchange.respond(http::status::ok, std::move(response));
}

static ApiError shutting_down_error() {
  return ApiError(503, "server_error", "shutting_down", std::nullopt,
                  "The server is shutting down");
}

net::awaitable<void> OpenAiService::generate(HttpExchange& exchange, Job job) {
  if (shutting_down_.load()) throw shutting_down_error();
  if (!backend_.alive()) throw worker_unavailable();
  auto channel = std::make_shared<EventChannel>(exchange.executor());
  // However this request ends (finished, client gone, refused, exception, server shutdown),
  // the engine stops working for every choice and can no longer reach this connection's
  // strand. Cancelling a generation that already finished does nothing.
  struct Release {
    std::shared_ptr<EventChannel> channel;
    std::vector<std::shared_ptr<engine::RequestHandle>> handles;
    ~Release() {
      for (auto& handle : handles) handle->cancel();
      channel->close();
    }
  } release{channel, {}};
  std::vector<std::shared_ptr<engine::RequestHandle>>& handles = release.handles;
  std::optional<std::string> queue_full;
  try {
    // The choices go through the engine as separate requests: identical prompts share
    // their KV blocks there (Scheduler::admit), so the prompt is evaluated once.
    for (int choice = 0; choice < job.choices; ++choice) {
      engine::GenerationRequest request = job.request;
      request.sampling = choice_sampling(job.request.sampling, choice);
      auto handle = backend_.submit(
          std::move(request),
          [channel, choice, metrics = metrics_, id = job.id](const engine::GenerationEvent& event) {
            using Kind = engine::GenerationEvent::Kind;
            if (event.kind == Kind::kFinished || event.kind == Kind::kFailed) {
              record_generation_end(*metrics, id, event);
            }
            channel->push(choice, event);
          });
      if (!handle) throw std::runtime_error("the engine refused the request");
      handles.push_back(std::move(handle));
    }
  } catch (const engine::QueueFull& e) {
    queue_full = e.what();
  }
  if (queue_full) {
    // Back-pressure: every slot is busy and the queue is full (the choices already queued
    // are cancelled on the way out). A client may retry shortly.
    const Headers retry_after = {{"Retry-After", "1"}};
    const ApiError busy(429, "rate_limit_error", "queue_full", std::nullopt,
                        "The server is at capacity: " + *queue_full + "; retry later");
    co_await exchange.respond_error(busy, retry_after);
    co_return;
  }

  {
    std::lock_guard lock(live_mutex_);
    std::erase_if(live_, [](const Live& live) { return live.channel.expired(); });
    for (const auto& handle : handles) live_.push_back({channel, handle});
  }
  auto cancel_all = [handles] {
    for (const auto& handle : handles) handle->cancel();
  };
  // A shutdown that began while this request was being submitted did not see it above.
  if (shutting_down_.load()) cancel_all();

  exchange.watch_peer([channel, cancel_all] {
    cancel_all();
    channel->peer_closed();
  });

  if (job.stream) {
    SseResponseWriter writer(exchange, std::move(job.format), std::move(job.headers), job.choices,
                             options_.sse_ping_interval_s);
    co_await write_generation(exchange, job, *channel, writer);
  } else {
    WholeResponseWriter writer(exchange, std::move(job.format), std::move(job.headers),
                               job.choices);
    co_await write_generation(exchange, job, *channel, writer);
  }
}

net::awaitable<void> OpenAiService::write_generation(HttpExchange& exchange, Job& job,
                                                     EventChannel& channel,
                                                     ResponseWriter& writer) {
  // Every way out before the end leaves the choices to generate()'s release, which cancels them.
  if (!co_await writer.begin()) {
    exchange.abandon();
    co_return;
  }
  // Each choice reads its own text (its own tool calls and reasoning).
  std::vector<GenerationOutput> outputs(static_cast<std::size_t>(job.choices), job.output);
  // A whole response has nothing to show for a generation that runs too long: it is given up.
  const auto give_up_at = !job.stream && options_.request_timeout_s > 0
                              ? EventChannel::Clock::now() +
                                    std::chrono::duration_cast<EventChannel::Clock::duration>(
                                        std::chrono::duration<double>(options_.request_timeout_s))
                              : EventChannel::Clock::time_point::max();
  for (;;) {
    auto events = co_await channel.wait(std::min(writer.deadline(), give_up_at));
    if (channel.closed_by_peer()) {
      exchange.abandon();
      co_return;
    }
    if (EventChannel::Clock::now() >= give_up_at) {
      throw ApiError(504, "server_error", "timeout", std::nullopt,
                     "The generation did not finish within " +
                         format_seconds(options_.request_timeout_s) + " s (--timeout)");
    }
    bool done = false;
    for (const auto& [choice, event] : events) {
      using Kind = engine::GenerationEvent::Kind;
      if (done) break;
      GenerationOutput& output = outputs[static_cast<std::size_t>(choice)];
      switch (event.kind) {
        case Kind::kProgress:
          writer.progress(choice, event.prompt_processed, event.prompt_total);
          break;
        case Kind::kText:
          writer.add_logprobs(choice, event.logprobs);
          writer.delta(choice, output.push(event.text));
          break;
        case Kind::kFinished:
        case Kind::kFailed:
          writer.add_logprobs(choice, event.logprobs);
          done = writer.finish(choice, output.finish(event, job.prompt_tokens, server_cancel()));
          break;
      }
    }
    if (done) exchange.unwatch_peer();
    if (!co_await writer.flush(done)) {
      exchange.abandon();
      co_return;
    }
    if (done) co_return;
  }
}

ServerCancel OpenAiService::server_cancel() const {
  if (shutting_down_.load()) return ServerCancel::kShutdown;
  // A dead engine thread cancels every request it still held.
  return backend_.alive() ? ServerCancel::kNone : ServerCancel::kWorkerLost;
}

void OpenAiService::begin_shutdown() {
  shutting_down_.store(true);
  std::lock_guard lock(live_mutex_);
  for (Live& live : live_) {
    if (auto handle = live.handle.lock()) handle->cancel();
  }
}

void OpenAiService::shutdown() {
  std::lock_guard lock(live_mutex_);
  for (Live& live : live_) {
    if (auto handle = live.handle.lock()) handle->cancel();
    if (auto channel = live.channel.lock()) channel->close();
  }
  live_.clear();
}

}  // namespace lmserve::server
