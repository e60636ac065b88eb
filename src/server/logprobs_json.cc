#include "server/logprobs_json.h"

#include "util/utf8.h"

namespace lmserve::server {

LogprobsFormatter::LogprobsFormatter(bool chat, int top, TokenBytes token_bytes)
    : chat_(chat), top_(top), token_bytes_(std::move(token_bytes)) {}

json LogprobsFormatter::chat_entry(std::int32_t id, float logprob) const {
  const std::string bytes = token_bytes_(id);
  json raw = json::array();
  for (unsigned char c : bytes) raw.push_back(static_cast<int>(c));
  return {{"token", util::sanitize_utf8(bytes)}, {"logprob", logprob}, {"bytes", std::move(raw)}};
}

json LogprobsFormatter::format(const std::vector<engine::TokenLogprob>& entries) {
  if (chat_) {
    json content = json::array();
    for (const auto& e : entries) {
      json entry = chat_entry(e.id, e.logprob);
      json top = json::array();
      for (const auto& [id, logprob] : e.top) top.push_back(chat_entry(id, logprob));
      entry["top_logprobs"] = std::move(top);
      content.push_back(std::move(entry));
    }
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json tokens = json::array(), token_logprobs = json::array(), offsets = json::array();
  json top = top_ > 0 ? json::array() : json(nullptr);
  for (const auto& e : entries) {
    const std::string bytes = token_bytes_(e.id);
    tokens.push_back(util::sanitize_utf8(bytes));
    token_logprobs.push_back(e.logprob);
    offsets.push_back(text_offset_);
    text_offset_ += util::code_point_count(bytes);
    if (top_ > 0) {
      json alternatives = json::object();
      for (const auto& [id, logprob] : e.top) {
        alternatives[util::sanitize_utf8(token_bytes_(id))] = logprob;
      }
      top.push_back(std::move(alternatives));
    }
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top)},
          {"text_offset", std::move(offsets)}};
}

}  // namespace lmserve::server
