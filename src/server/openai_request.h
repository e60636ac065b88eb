// Parsing and validation of request bodies (/v1/chat/completions, /v1/completions, and
// llama-server's /tokenize, /detokenize, /apply-template) into engine-ready values, per
// api-contract §1-§2. Pure functions: every violation throws ApiError (400) naming the offending
// field, before anything is sent to the client.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_formatter.h"
#include "engine/sampling.h"
#include "grammar/grammar.h"

namespace lmserve::server {

using json = nlohmann::ordered_json;  // keeps the request's key order (templates print it)

// Command-line defaults a request falls back to.
struct RequestDefaults {
  int max_tokens = 100;
  engine::SamplingParams sampling;
};

// Fields shared by both generation endpoints.
struct CommonParams {
  std::optional<std::string> model;  // as sent (absent when missing or null)
  int max_tokens = 100;              // >= 1: max_completion_tokens, else max_tokens, else default
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage
  std::vector<std::string> stop;    // empty strings dropped
  engine::SamplingParams sampling;  // logit_bias ids are checked against the vocabulary later
  std::vector<std::int32_t> stop_token_ids;
  bool ignore_eos = false;
  int min_tokens = 0;
  int logprobs = -1;  // >= 0: report logprobs with this many alternatives per token
  // response_format / json_schema / grammar, compiled (server/output_constraint.h).
  std::shared_ptr<const grammar::Grammar> grammar;
  int n = 1;  // choices: generations of the one prompt (1..16)
};

// The sampling of choice `choice` of n. With a seed, choice 0 samples exactly as a request
// with that seed alone, and choice i as one with seed + i (mod 2^64): the choices differ,
// the whole response is reproducible. Without one, each choice draws its own.
engine::SamplingParams choice_sampling(engine::SamplingParams sampling, int choice);

struct ChatRequest {
  CommonParams common;
  // messages normalised (§2.3: string content, parsed tool arguments); tools null or a
  // non-empty array after tool_choice; template_kwargs = chat_template_kwargs (+
  // reasoning_effort); parallel_tool_calls; role_mapping.
  chat::ChatPromptInput prompt;
  // tool_choice "required" or a named function: the output must be one call of prompt.tools.
  bool force_tool_call = false;
  // Tokens a think block may take before its end marker is forced (Messages `thinking`).
  std::optional<int> reasoning_budget;
};

struct CompletionPrompt {
  std::optional<std::string> text;  // string prompt (or array of one string)
  std::vector<std::int32_t> ids;    // token-id prompt, used verbatim (when !text)
};

struct CompletionRequest {
  CommonParams common;
  CompletionPrompt prompt;
};

// Body bytes -> JSON object. Invalid JSON, invalid UTF-8 or nesting deeper than
// kMaxJsonDepth -> 400 invalid_json; valid JSON that is not an object -> 400 invalid_request.
inline constexpr int kMaxJsonDepth = 128;
json parse_json_body(std::string_view body);

ChatRequest parse_chat_request(const json& body, const RequestDefaults& defaults);
// llama-server's POST /apply-template (§1.8): the prompt fields of a chat request plus
// `add_generation_prompt` (default true); no generation fields are read.
chat::ChatPromptInput parse_apply_template_request(const json& body);
CompletionRequest parse_completion_request(const json& body, const RequestDefaults& defaults);

// §2.3 normalisation of `messages` (exposed for tests; parse_chat_request calls it).
json normalize_messages(const json& messages);

// §2.4: a text prompt gets the tokenizer's special tokens unless it already starts with the
// BOS token's text.
bool completion_adds_special_tokens(std::string_view text, std::string_view bos_token,
                                    bool tokenizer_adds_bos);

// llama-server's POST /tokenize (api-contract §1.6).
struct TokenizeRequest {
  std::string content;
  bool add_special = false;   // add BOS/EOS as the tokenizer's post-processor would
  bool parse_special = true;  // special-token text maps to its id
  bool with_pieces = false;   // answer {id, piece} objects instead of bare ids
};
TokenizeRequest parse_tokenize_request(const json& body);

// POST /detokenize (§1.7): `tokens`, each in [0, vocab_size).
std::vector<std::int32_t> parse_detokenize_request(const json& body, int vocab_size);

// Throws 400 invalid_value (param "prompt[i]") for an id outside [0, vocab_size).
void check_token_ids(const std::vector<std::int32_t>& ids, int vocab_size, const char* param);

}  // namespace lmserve::server
