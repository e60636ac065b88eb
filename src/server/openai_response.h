// Building OpenAI response bodies, stream chunks and error objects (api-contract §3, §5.1),
// and their SSE framing. Pure functions over plain values, so they are unit-tested directly.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/message_delta.h"
#include "util/error.h"

namespace lmserve::server {

using json = nlohmann::ordered_json;

// "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx" from a per-thread CSPRNG-seeded generator.
std::string new_uuid4();

// "<version>-<short git sha>" of this build.
const std::string& build_info();
// "fp_lmserve-" + build_info().
const std::string& system_fingerprint();

// Compact JSON, non-ASCII emitted raw, invalid UTF-8 replaced by U+FFFD (never throws).
std::string dump_json(const json& value);

// {"error": {"message", "type", "param", "code"}}: all four keys always present.
json error_body(const ApiError& error);
json error_body(std::string_view type, std::optional<std::string_view> code,
                std::optional<std::string_view> param, std::string_view message);

// What every response or chunk of one request repeats.
struct ResponseMeta {
  std::string id;  // chatcmpl-<uuid4> / cmpl-<uuid4>
  std::int64_t created = 0;
  std::string model;  // §2.5
};

struct UsageCounts {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;     // prompt tokens reused from the prefix cache
  int reasoning_tokens = 0;  // chat: tokens sampled inside think blocks
};

json usage_json(const UsageCounts& usage, bool chat);

// --reasoning-format: the message key(s) that carry reasoning text (`none` also turns its
// extraction off, chat::ChatOptions::extract_reasoning).
enum class ReasoningFormat { kReasoningContent, kReasoning, kBoth, kNone };
std::optional<ReasoningFormat> parse_reasoning_format(std::string_view name);

// The assistant message: content (null when empty), refusal null, reasoning under the
// --reasoning-format key(s) and tool_calls when non-empty.
json chat_message_json(const chat::ChatMessage& message, ReasoningFormat format);

// One entry of a whole response's "choices" (`index`: the choice's place among n).
json chat_choice(int index, const chat::ChatMessage& message, std::string_view finish_reason,
                 ReasoningFormat format);
json text_choice(int index, const std::string& text, std::string_view finish_reason);

// Non-streaming bodies: the choices in index order and the usage of them all.
json chat_completion_body(const ResponseMeta& meta, json choices, const UsageCounts& usage);
json text_completion_body(const ResponseMeta& meta, json choices, const UsageCounts& usage);

// Stream chunks, each carrying one choice (`index`). `include_usage` adds "usage": null
// (stream_options.include_usage).
json chat_chunk(const ResponseMeta& meta, int index, json delta,
                std::optional<std::string_view> finish_reason, bool include_usage);
json text_chunk(const ResponseMeta& meta, int index, const std::string& text,
                std::optional<std::string_view> finish_reason, bool include_usage);
// The chunks of one parsed delta, in OpenAI's streamed form: reasoning, content, then one
// chunk per tool-call piece ({"index", "id", "type", "function": {"name", "arguments": ""}}
// first, then {"index", "function": {"arguments"}}).
std::vector<json> chat_delta_chunks(const ResponseMeta& meta, int index,
                                    const chat::MessageDelta& delta, ReasoningFormat format,
                                    bool include_usage);
// The final usage chunk: "choices": [] plus usage.
json usage_chunk(const ResponseMeta& meta, bool chat, const UsageCounts& usage);

// SSE framing: "data: <json>\n\n", "data: [DONE]\n\n", ": <comment>\n\n".
std::string sse_data(const json& value);
std::string sse_done();
// A named event: "event: <type>\ndata: <json>\n\n" (the Responses and Messages streams).
std::string sse_event(std::string_view type, const json& value);
std::string sse_comment(std::string_view text);

}  // namespace lmserve::server
