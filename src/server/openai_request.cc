#include "server/openai_request.h"

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "server/output_constraint.h"
#include "server/request_fields.h"
#include "util/error.h"
#include "util/text_file.h"
#include "util/utf8.h"

namespace lmserve::server {
namespace {

std::optional<std::int64_t> opt_int(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  return require_int(*v, key);
}

std::optional<double> opt_number(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  return require_number(*v, key);
}

std::optional<bool> opt_bool(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  return require_bool(*v, key);
}

// An array of token ids (integers in int32 range; the vocabulary check comes later).
std::vector<std::int32_t> token_id_array(const json& array, const std::string& param) {
  std::vector<std::int32_t> ids;
  ids.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string p = param + "[" + std::to_string(i) + "]";
    std::int64_t id = require_int(array[i], p);
    if (id < 0 || id > INT32_MAX) {
      fail("invalid_value", p, "token id " + std::to_string(id) + " is out of range");
    }
    ids.push_back(static_cast<std::int32_t>(id));
  }
  return ids;
}

int clamp_int(std::int64_t v) {
  if (v > INT_MAX) return INT_MAX;
  if (v < INT_MIN) return INT_MIN;
  return static_cast<int>(v);
}

std::string fmt(double d) {
  std::string s = std::to_string(d);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

void check_range(double v, double lo, double hi, const char* param) {
  if (v < lo || v > hi) {
    fail("invalid_value", param,
         std::string("'") + param + "' must be between " + fmt(lo) + " and " + fmt(hi));
  }
}

void check_at_least(double v, double lo, const char* param) {
  if (v < lo)
    fail("invalid_value", param, std::string("'") + param + "' must be at least " + fmt(lo));
}

std::vector<std::string> parse_stop(const json& body) {
  const json* v = field(body, "stop");
  std::vector<std::string> out;
  if (!v) return out;
  auto add = [&out](const std::string& s, const std::string& param) {
    if (s.empty()) return;  // §2.2: empty strings ignored (mlx would stop after one token)
    if (util::code_point_count(s) > 256) {
      fail("invalid_value", param, "each stop sequence must be at most 256 characters");
    }
    out.push_back(s);
  };
  if (v->is_string()) {
    add(v->get<std::string>(), "stop");
  } else if (v->is_array()) {
    if (v->size() > 16) fail("invalid_value", "stop", "'stop' may hold at most 16 sequences");
    for (std::size_t i = 0; i < v->size(); ++i) {
      std::string param = "stop[" + std::to_string(i) + "]";
      add(require_string((*v)[i], param), param);
    }
  } else {
    wrong_type("stop", "a string or an array of strings", *v);
  }
  return out;
}

// logit_bias: {"<token id>": bias in [-100, 100]} (the vocabulary check comes later).
std::vector<std::pair<std::int32_t, float>> parse_logit_bias(const json& body) {
  std::vector<std::pair<std::int32_t, float>> out;
  const json* v = field(body, "logit_bias");
  if (!v) return out;
  require_object(*v, "logit_bias");
  if (v->size() > 1024)
    fail("invalid_value", "logit_bias", "'logit_bias' may hold at most 1024 entries");
  for (const auto& [key, value] : v->items()) {
    const std::string param = "logit_bias." + key;
    std::int64_t id = -1;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id > INT32_MAX) {
      fail("invalid_value", "logit_bias", "'logit_bias' keys must be token ids, got '" + key + "'");
    }
    const double bias = require_number(value, param);
    check_range(bias, -100, 100, param.c_str());
    out.emplace_back(static_cast<std::int32_t>(id), static_cast<float>(bias));
  }
  return out;
}

std::vector<std::int32_t> parse_token_id_list(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return {};
  if (!v->is_array()) wrong_type(key, "an array of token ids", *v);
  if (v->size() > 1024)
    fail("invalid_value", key, std::string("'") + key + "' may hold at most 1024 ids");
  return token_id_array(*v, key);
}

CommonParams parse_common(const json& body, const RequestDefaults& defaults, bool chat) {
  CommonParams p;
  p.sampling = defaults.sampling;
  p.max_tokens = defaults.max_tokens;

  if (const json* v = field(body, "model")) p.model = require_string(*v, "model");

  auto max_tokens = opt_int(body, "max_tokens");
  if (max_tokens) check_at_least(static_cast<double>(*max_tokens), 1, "max_tokens");
  auto max_completion = opt_int(body, "max_completion_tokens");
  if (max_completion) {
    check_at_least(static_cast<double>(*max_completion), 1, "max_completion_tokens");
  }
  if (max_completion) {
    p.max_tokens = clamp_int(*max_completion);
  } else if (max_tokens) {
    p.max_tokens = clamp_int(*max_tokens);
  }

  p.stream = opt_bool(body, "stream").value_or(false);
  if (const json* v = field(body, "stream_options")) {
    require_object(*v, "stream_options");
    if (const json* u = field(*v, "include_usage")) {
      p.include_usage = require_bool(*u, "stream_options.include_usage");
    }
  }

  p.stop = parse_stop(body);

  // Sampling (§2.2). Defaults come from the command line.
  if (auto t = opt_number(body, "temperature")) {
    check_at_least(*t, 0, "temperature");
    p.sampling.temperature = static_cast<float>(*t);
  }
  if (auto t = opt_number(body, "top_p")) {
    check_range(*t, 0, 1, "top_p");
    p.sampling.top_p = static_cast<float>(*t);
  }
  if (auto k = opt_int(body, "top_k")) {
    check_at_least(static_cast<double>(*k), 0, "top_k");
    // Beyond any vocabulary: the same as "disabled" (Q14).
    p.sampling.top_k = *k > INT_MAX ? 0 : static_cast<int>(*k);
  }
  if (auto m = opt_number(body, "min_p")) {
    check_range(*m, 0, 1, "min_p");
    p.sampling.min_p = static_cast<float>(*m);
  }
  // `repeat_penalty` is llama-server's name for the same thing; the OpenAI-style name wins.
  const char* penalty_key = field(body, "repetition_penalty") ? "repetition_penalty"
                            : field(body, "repeat_penalty")   ? "repeat_penalty"
                                                              : nullptr;
  if (penalty_key) {
    double r = require_number(*field(body, penalty_key), penalty_key);
    check_at_least(r, 0, penalty_key);
    p.sampling.repetition_penalty = static_cast<float>(r);
  }
  if (auto n = opt_int(body, "repetition_context_size")) {
    check_at_least(static_cast<double>(*n), 1, "repetition_context_size");
    p.sampling.repetition_context_size = clamp_int(*n);
  }
  if (auto s = opt_int(body, "seed")) p.sampling.seed = static_cast<std::uint64_t>(*s);

  if (auto v = opt_number(body, "presence_penalty"))
    p.sampling.presence_penalty = static_cast<float>(*v);
  if (auto v = opt_number(body, "frequency_penalty")) {
    p.sampling.frequency_penalty = static_cast<float>(*v);
  }
  if (auto v = opt_int(body, "presence_context_size")) {
    check_at_least(static_cast<double>(*v), 1, "presence_context_size");
    p.sampling.presence_context_size = clamp_int(*v);
  }
  if (auto v = opt_int(body, "frequency_context_size")) {
    check_at_least(static_cast<double>(*v), 1, "frequency_context_size");
    p.sampling.frequency_context_size = clamp_int(*v);
  }
  if (auto v = opt_bool(body, "ignore_eos")) p.ignore_eos = *v;
  if (auto v = opt_int(body, "min_tokens")) {
    check_at_least(static_cast<double>(*v), 0, "min_tokens");
    p.min_tokens = clamp_int(*v);
  }
  p.stop_token_ids = parse_token_id_list(body, "stop_token_ids");
  if (auto x = opt_number(body, "xtc_threshold")) check_range(*x, 0, 0.5, "xtc_threshold");
  if (auto x = opt_number(body, "xtc_probability")) {
    check_range(*x, 0, 1, "xtc_probability");
    if (*x > 0)
      fail("unsupported_parameter", "xtc_probability", "XTC sampling is not supported yet");
  }
  p.sampling.logit_bias = parse_logit_bias(body);
  if (auto n = opt_int(body, "num_draft_tokens"))
    check_range(static_cast<double>(*n), 0, 64, "num_draft_tokens");
  for (const char* key : {"adapters", "draft_model"}) {
    if (const json* v = field(body, key)) {
      require_string(*v, key);
      fail("unsupported_parameter", key,
           std::string("'") + key + "' must match the server's start-up configuration (none)");
    }
  }
  if (auto n = opt_int(body, "n")) {
    check_range(static_cast<double>(*n), 1, 16, "n");
    p.n = static_cast<int>(*n);
  }
  p.grammar = parse_output_constraint(body);

  bool logprobs_on = false;
  int top = 0;
  if (const json* v = field(body, "logprobs")) {
    if (chat) {
      logprobs_on = require_bool(*v, "logprobs");
    } else if (v->is_boolean()) {
      logprobs_on = v->get<bool>();
    } else if (v->is_number()) {
      top = static_cast<int>(require_int(*v, "logprobs"));
      check_range(static_cast<double>(top), 0, 20, "logprobs");
      logprobs_on = true;
    } else {
      wrong_type("logprobs", "a boolean or an integer", *v);
    }
  }
  if (auto k = opt_int(body, "top_logprobs")) {
    check_range(static_cast<double>(*k), 0, 20, "top_logprobs");
    if (*k > 0 && !logprobs_on) {
      fail("invalid_value", "top_logprobs", "'top_logprobs' requires 'logprobs': true");
    }
    // Chat's alternatives count; for completions `logprobs: true` takes it too (§3.4).
    if (logprobs_on && (chat || field(body, "logprobs")->is_boolean())) top = static_cast<int>(*k);
  }
  if (logprobs_on) p.logprobs = top;

  if (!chat) {
    if (opt_bool(body, "echo").value_or(false)) {
      fail("unsupported_parameter", "echo", "'echo': true is not supported");
    }
    if (const json* v = field(body, "suffix"); v && !require_string(*v, "suffix").empty()) {
      fail("unsupported_parameter", "suffix", "'suffix' is not supported");
    }
    // best_of generations of which the n most likely are returned: best_of = n returns them
    // all, which is what `n` does; choosing among more is not supported.
    if (auto b = opt_int(body, "best_of")) {
      check_at_least(static_cast<double>(*b), 1, "best_of");
      if (*b < p.n) fail("invalid_value", "best_of", "'best_of' must be at least 'n'");
      if (*b != p.n) {
        fail("unsupported_parameter", "best_of", "only best_of = n (the default) is supported");
      }
    }
  }
  return p;
}

void check_optional_string(const json& message, const char* key, const std::string& prefix) {
  if (const json* v = field(message, key)) require_string(*v, prefix + "." + key);
}

json normalize_tool_calls(const json& calls, const std::string& param) {
  if (!calls.is_array()) wrong_type(param, "an array", calls);
  json out = json::array();
  for (std::size_t j = 0; j < calls.size(); ++j) {
    std::string p = param + "[" + std::to_string(j) + "]";
    json call = require_object(calls[j], p);
    if (json* fn = call.contains("function") ? &call["function"] : nullptr; fn && !fn->is_null()) {
      require_object(*fn, p + ".function");
      if (fn->contains("arguments")) {
        json& args = (*fn)["arguments"];
        std::string ap = p + ".function.arguments";
        if (args.is_string()) {
          const std::string& text = args.get_ref<const std::string&>();
          bool blank = text.find_first_not_of(" \t\r\n") == std::string::npos;
          // The body's nesting bound does not see inside this string; copying or printing
          // a value nested deeper (templates do both) would recurse off the stack.
          if (!util::json_nesting_within(text, kMaxJsonDepth)) {
            fail("invalid_value", ap,
                 "'" + ap + "' is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
          }
          json parsed = blank ? json::object() : json::parse(text, nullptr, false);
          if (parsed.is_discarded()) fail("invalid_value", ap, "'" + ap + "' is not valid JSON");
          args = std::move(parsed);
        } else if (args.is_null()) {
          args = json::object();
        } else if (!args.is_object()) {
          wrong_type(ap, "a string containing JSON", args);
        }
      }
    }
    out.push_back(std::move(call));
  }
  return out;
}

json normalize_tools(const json& body) {
  const json* v = field(body, "tools");
  json tools;  // null
  if (v) {
    if (!v->is_array()) wrong_type("tools", "an array", *v);
    for (std::size_t i = 0; i < v->size(); ++i) {
      std::string p = "tools[" + std::to_string(i) + "]";
      const json& tool = require_object((*v)[i], p);
      const json* type = field(tool, "type");
      if (!type) fail("missing_required_parameter", p + ".type", "'" + p + ".type' is required");
      if (require_string(*type, p + ".type") != "function") {
        fail("invalid_value", p + ".type", "only tools of type 'function' are supported");
      }
      const json* fn = field(tool, "function");
      if (!fn)
        fail("missing_required_parameter", p + ".function", "'" + p + ".function' is required");
      require_object(*fn, p + ".function");
      const json* name = field(*fn, "name");
      if (!name) {
        fail("missing_required_parameter", p + ".function.name",
             "'" + p + ".function.name' is required");
      }
      require_string(*name, p + ".function.name");
    }
    if (!v->empty()) tools = *v;  // an empty list means "no tools" (mlx: tools or None)
  }

  const json* choice = field(body, "tool_choice");
  if (!choice) return tools;
  if (choice->is_string()) {
    const std::string& c = choice->get_ref<const std::string&>();
    if (c == "none") return json();
    if (c == "auto") return tools;
    if (c == "required") {
      if (tools.is_null())
        fail("invalid_value", "tool_choice", "'tool_choice': 'required' needs 'tools'");
      return tools;
    }
    fail("invalid_value", "tool_choice",
         "'tool_choice' must be 'none', 'auto', 'required' or an object");
  }
  require_object(*choice, "tool_choice");
  const json* fn = field(*choice, "function");
  const json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
  if (!name || !name->is_string()) {
    fail("invalid_value", "tool_choice",
         "'tool_choice' must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
  }
  json only = json::array();
  if (!tools.is_null()) {
    for (const auto& tool : tools) {
      if (tool["function"]["name"] == *name) only.push_back(tool);
    }
  }
  if (only.empty()) {
    fail("invalid_value", "tool_choice", "'tool_choice' names a function that is not in 'tools'");
  }
  return only;
}

}  // namespace

json parse_json_body(std::string_view body) {
  // nlohmann's parser is not recursive, but destroying and walking deep values is: refuse
  // absurd nesting before parsing.
  if (!util::json_nesting_within(body, kMaxJsonDepth)) {
    fail("invalid_json", std::nullopt,
         "Invalid JSON in request body: nesting deeper than " + std::to_string(kMaxJsonDepth) +
             " levels");
  }
  json value;
  try {
    value = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at ...": keep the readable part.
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw ApiError::invalid_request("invalid_json", std::nullopt,
                                    "Invalid JSON in request body: " + what);
  }
  if (!value.is_object()) {
    throw ApiError::invalid_request(
        "invalid_request", std::nullopt,
        std::string("Request body must be a JSON object, got ") + kind_of(value));
  }
  return value;
}

json normalize_messages(const json& messages) {
  if (!messages.is_array()) wrong_type("messages", "an array", messages);
  if (messages.empty())
    fail("invalid_value", "messages", "'messages' must contain at least one message");
  json out = json::array();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    std::string p = "messages[" + std::to_string(i) + "]";
    const json& m = require_object(messages[i], p);
    json msg = json::object();
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it.value().is_null()) msg[it.key()] = it.value();  // null = absent
    }
    const json* role = field(m, "role");
    if (!role) fail("missing_required_parameter", p + ".role", "'" + p + ".role' is required");
    require_string(*role, p + ".role");

    // Text parts stay a list, as transformers hands them to the template (the chat
    // formatter concatenates them for templates that only take strings).
    json content = "";
    if (const json* c = field(m, "content")) {
      std::string cp = p + ".content";
      if (c->is_string()) {
        content = *c;
      } else if (c->is_array()) {
        content = *c;
        for (std::size_t j = 0; j < c->size(); ++j) {
          std::string pp = cp + "[" + std::to_string(j) + "]";
          const json& part = require_object((*c)[j], pp);
          const json* type = field(part, "type");
          if (!type)
            fail("missing_required_parameter", pp + ".type", "'" + pp + ".type' is required");
          const std::string& t = require_string(*type, pp + ".type");
          if (t == "text" || t == "refusal") {
            const json* text = field(part, t.c_str());
            if (!text)
              fail("missing_required_parameter", pp + "." + t,
                   "'" + pp + "." + t + "' is required");
            require_string(*text, pp + "." + t);
          } else {
            fail("unsupported_parameter", cp,
                 "content part type '" + t + "' is not supported; only 'text' parts are");
          }
        }
      } else {
        wrong_type(cp, "a string, an array of content parts or null", *c);
      }
    }
    msg["content"] = std::move(content);

    for (const char* key : {"name", "tool_call_id", "reasoning", "reasoning_content"}) {
      check_optional_string(m, key, p);
    }
    if (const json* calls = field(m, "tool_calls")) {
      msg["tool_calls"] = normalize_tool_calls(*calls, p + ".tool_calls");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

namespace {

// The fields that shape a chat prompt, shared by chat completions and /apply-template.
chat::ChatPromptInput parse_chat_prompt(const json& body) {
  chat::ChatPromptInput prompt;
  const json* messages = field(body, "messages");
  if (!messages) fail("missing_required_parameter", "messages", "'messages' is required");
  prompt.messages = normalize_messages(*messages);

  if (const json* v = field(body, "role_mapping")) {
    require_object(*v, "role_mapping");
    std::map<std::string, std::string> mapping;
    for (auto it = v->begin(); it != v->end(); ++it) {
      mapping[it.key()] = require_string(it.value(), "role_mapping." + it.key());
    }
    prompt.role_mapping = std::move(mapping);
  }
  prompt.tools = normalize_tools(body);
  if (const json* v = field(body, "documents")) {
    if (!v->is_array()) wrong_type("documents", "an array", *v);
    prompt.documents = *v;
  }
  prompt.parallel_tool_calls = opt_bool(body, "parallel_tool_calls").value_or(true);
  if (const json* v = field(body, "chat_template_kwargs")) {
    prompt.template_kwargs = require_object(*v, "chat_template_kwargs");
  }
  if (const json* v = field(body, "reasoning_effort")) {
    const std::string& effort = require_string(*v, "reasoning_effort");
    if (!prompt.template_kwargs.contains("reasoning_effort"))
      prompt.template_kwargs["reasoning_effort"] = effort;
  }
  return prompt;
}

}  // namespace

ChatRequest parse_chat_request(const json& body, const RequestDefaults& defaults) {
  ChatRequest r;
  r.prompt = parse_chat_prompt(body);
  r.common = parse_common(body, defaults, /*chat=*/true);
  const json* choice = field(body, "tool_choice");
  r.force_tool_call =
      !r.prompt.tools.is_null() && choice && (choice->is_object() || *choice == "required");
  if (r.force_tool_call && r.common.grammar) {
    fail("invalid_value", "tool_choice",
         "a forced tool call cannot be combined with response_format, json_schema or grammar");
  }
  return r;
}

chat::ChatPromptInput parse_apply_template_request(const json& body) {
  chat::ChatPromptInput prompt = parse_chat_prompt(body);
  prompt.add_generation_prompt = opt_bool(body, "add_generation_prompt").value_or(true);
  // The prompt as the template renders the request as given, errors included.
  prompt.flatten_content_on_error = false;
  return prompt;
}

CompletionRequest parse_completion_request(const json& body, const RequestDefaults& defaults) {
  CompletionRequest r;
  const json* prompt = field(body, "prompt");
  if (!prompt) fail("missing_required_parameter", "prompt", "'prompt' is required");
  if (prompt->is_string()) {
    r.prompt.text = prompt->get<std::string>();
  } else if (prompt->is_array()) {
    if (prompt->empty()) fail("invalid_value", "prompt", "'prompt' must not be empty");
    const json& first = prompt->front();
    if (first.is_string()) {
      for (std::size_t i = 0; i < prompt->size(); ++i) {
        require_string((*prompt)[i], "prompt[" + std::to_string(i) + "]");
      }
      if (prompt->size() != 1) {
        fail("unsupported_parameter", "prompt", "only one prompt per request is supported");
      }
      r.prompt.text = first.get<std::string>();
    } else if (first.is_array()) {
      fail("unsupported_parameter", "prompt", "batches of token-id prompts are not supported");
    } else {
      r.prompt.ids = token_id_array(*prompt, "prompt");
    }
  } else {
    wrong_type("prompt", "a string, an array of one string or an array of token ids", *prompt);
  }
  r.common = parse_common(body, defaults, /*chat=*/false);
  return r;
}

engine::SamplingParams choice_sampling(engine::SamplingParams sampling, int choice) {
  // Unsigned arithmetic wraps: a seed near 2^64 still gives distinct choices.
  if (sampling.seed) *sampling.seed += static_cast<std::uint64_t>(choice);
  return sampling;
}

bool completion_adds_special_tokens(std::string_view text, std::string_view bos_token,
                                    bool tokenizer_adds_bos) {
  if (tokenizer_adds_bos && !bos_token.empty() && text.starts_with(bos_token)) return false;
  return true;
}

void check_token_ids(const std::vector<std::int32_t>& ids, int vocab_size, const char* param) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      fail("invalid_value", std::string(param) + "[" + std::to_string(i) + "]",
           "token id " + std::to_string(ids[i]) + " is outside the vocabulary [0, " +
               std::to_string(vocab_size) + ")");
    }
  }
}

TokenizeRequest parse_tokenize_request(const json& body) {
  TokenizeRequest r;
  const json* content = field(body, "content");
  if (!content) fail("missing_required_parameter", "content", "'content' is required");
  r.content = require_string(*content, "content");
  r.add_special = opt_bool(body, "add_special").value_or(r.add_special);
  r.parse_special = opt_bool(body, "parse_special").value_or(r.parse_special);
  r.with_pieces = opt_bool(body, "with_pieces").value_or(r.with_pieces);
  return r;
}

std::vector<std::int32_t> parse_detokenize_request(const json& body, int vocab_size) {
  const json* tokens = field(body, "tokens");
  if (!tokens) fail("missing_required_parameter", "tokens", "'tokens' is required");
  if (!tokens->is_array()) wrong_type("tokens", "an array of token ids", *tokens);
  std::vector<std::int32_t> ids = token_id_array(*tokens, "tokens");
  check_token_ids(ids, vocab_size, "tokens");
  return ids;
}

}  // namespace lmserve::server
