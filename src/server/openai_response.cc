#include "server/openai_response.h"

#include <cstdio>
#include <random>

#ifndef LMSERVE_VERSION
#error "LMSERVE_VERSION must be defined by the build"
#endif
#ifndef LMSERVE_GIT_SHA
#error "LMSERVE_GIT_SHA must be defined by the build"
#endif

namespace lmserve::server {

std::string new_uuid4() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device device;
    std::seed_seq seq{device(), device(), device(), device(), device(), device()};
    return std::mt19937_64(seq);
  }();
  std::uint64_t hi = rng();
  std::uint64_t lo = rng();
  hi = (hi & ~std::uint64_t{0xF000}) | 0x4000;                           // version 4
  lo = (lo & ~(std::uint64_t{0xC} << 60)) | (std::uint64_t{0x8} << 60);  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

const std::string& build_info() {
  static const std::string info = std::string(LMSERVE_VERSION) + "-" + LMSERVE_GIT_SHA;
  return info;
}

const std::string& system_fingerprint() {
  static const std::string fingerprint = "fp_lmserve-" + build_info();
  return fingerprint;
}

std::string dump_json(const json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

json error_body(std::string_view type, std::optional<std::string_view> code,
                std::optional<std::string_view> param, std::string_view message) {
  json error = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (param) error["param"] = *param;
  if (code) error["code"] = *code;
  return {{"error", std::move(error)}};
}

json error_body(const ApiError& error) {
  std::optional<std::string_view> param;
  if (error.param()) param = *error.param();
  std::optional<std::string_view> code;
  if (!error.code().empty()) code = error.code();
  return error_body(error.type(), code, param, error.message());
}

json usage_json(const UsageCounts& usage, bool chat) {
  json u = {{"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens},
            {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}}};
  if (chat) u["completion_tokens_details"] = {{"reasoning_tokens", usage.reasoning_tokens}};
  return u;
}

namespace {

json envelope(const ResponseMeta& meta, const char* object) {
  return {{"id", meta.id},
          {"object", object},
          {"created", meta.created},
          {"model", meta.model},
          {"system_fingerprint", system_fingerprint()}};
}

json finish_value(std::optional<std::string_view> finish_reason) {
  if (finish_reason) return std::string(*finish_reason);
  return nullptr;
}

}  // namespace

std::optional<ReasoningFormat> parse_reasoning_format(std::string_view name) {
  if (name == "reasoning_content") return ReasoningFormat::kReasoningContent;
  if (name == "reasoning") return ReasoningFormat::kReasoning;
  if (name == "both") return ReasoningFormat::kBoth;
  if (name == "none") return ReasoningFormat::kNone;
  return std::nullopt;
}

namespace {

void put_reasoning(json& message, const std::string& reasoning, ReasoningFormat format) {
  if (reasoning.empty()) return;
  if (format == ReasoningFormat::kReasoningContent || format == ReasoningFormat::kBoth) {
    message["reasoning_content"] = reasoning;
  }
  if (format == ReasoningFormat::kReasoning || format == ReasoningFormat::kBoth) {
    message["reasoning"] = reasoning;
  }
}

}  // namespace

json chat_message_json(const chat::ChatMessage& message, ReasoningFormat format) {
  json out = {{"role", "assistant"}, {"content", nullptr}, {"refusal", nullptr}};
  if (!message.content.empty()) out["content"] = message.content;
  put_reasoning(out, message.reasoning, format);
  if (!message.tool_calls.empty()) {
    json calls = json::array();
    for (const chat::ToolCall& call : message.tool_calls) {
      calls.push_back({{"id", call.id},
                       {"type", "function"},
                       {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    out["tool_calls"] = std::move(calls);
  }
  return out;
}

json chat_choice(int index, const chat::ChatMessage& message, std::string_view finish_reason,
                 ReasoningFormat format) {
  return {{"index", index},
          {"message", chat_message_json(message, format)},
          {"logprobs", nullptr},
          {"finish_reason", finish_reason}};
}

json text_choice(int index, const std::string& text, std::string_view finish_reason) {
  return {
      {"index", index}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_reason}};
}

json chat_completion_body(const ResponseMeta& meta, json choices, const UsageCounts& usage) {
  json body = envelope(meta, "chat.completion");
  body["choices"] = std::move(choices);
  body["usage"] = usage_json(usage, /*chat=*/true);
  return body;
}

json text_completion_body(const ResponseMeta& meta, json choices, const UsageCounts& usage) {
  json body = envelope(meta, "text_completion");
  body["choices"] = std::move(choices);
  body["usage"] = usage_json(usage, /*chat=*/false);
  return body;
}

json chat_chunk(const ResponseMeta& meta, int index, json delta,
                std::optional<std::string_view> finish_reason, bool include_usage) {
  json chunk = envelope(meta, "chat.completion.chunk");
  chunk["choices"] = json::array({{{"index", index},
                                   {"delta", std::move(delta)},
                                   {"logprobs", nullptr},
                                   {"finish_reason", finish_value(finish_reason)}}});
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json text_chunk(const ResponseMeta& meta, int index, const std::string& text,
                std::optional<std::string_view> finish_reason, bool include_usage) {
  json chunk = envelope(meta, "text_completion");
  chunk["choices"] = json::array({{{"index", index},
                                   {"text", text},
                                   {"logprobs", nullptr},
                                   {"finish_reason", finish_value(finish_reason)}}});
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

std::vector<json> chat_delta_chunks(const ResponseMeta& meta, int index,
                                    const chat::MessageDelta& delta, ReasoningFormat format,
                                    bool include_usage) {
  std::vector<json> chunks;
  auto add = [&](json fields) {
    chunks.push_back(chat_chunk(meta, index, std::move(fields), std::nullopt, include_usage));
  };
  if (!delta.reasoning.empty()) {
    json fields = json::object();
    put_reasoning(fields, delta.reasoning, format);
    add(std::move(fields));
  }
  if (!delta.content.empty()) add({{"content", delta.content}});
  for (const chat::ToolCallDelta& piece : delta.tool_calls) {
    json call = {{"index", piece.index}};
    if (!piece.id.empty()) {
      call["id"] = piece.id;
      call["type"] = "function";
      call["function"] = {{"name", piece.name}, {"arguments", piece.arguments}};
    } else {
      call["function"] = {{"arguments", piece.arguments}};
    }
    add({{"tool_calls", json::array({std::move(call)})}});
  }
  return chunks;
}

json usage_chunk(const ResponseMeta& meta, bool chat, const UsageCounts& usage) {
  json chunk = envelope(meta, chat ? "chat.completion.chunk" : "text_completion");
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(usage, chat);
  return chunk;
}

std::string sse_data(const json& value) { return "data: " + dump_json(value) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

std::string sse_event(std::string_view type, const json& value) {
  return "event: " + std::string(type) + "\n" + sse_data(value);
}

std::string sse_comment(std::string_view text) {
  std::string out = ": ";
  // A newline inside a comment would end it and start a (bogus) field line.
  for (char c : text) out += (c == '\n' || c == '\r') ? ' ' : c;
  out += "\n\n";
  return out;
}

}  // namespace lmserve::server
