#include "server/api_keys.h"

#include <algorithm>

#include "util/text_file.h"

namespace lmserve::server {
namespace {

std::string_view trim(std::string_view s) {
  const char* space = " \t\r\n";
  const std::size_t begin = s.find_first_not_of(space);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

// KEY of "Bearer KEY", or "" when the header is not a bearer credential.
std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != kScheme[i]) return {};
  }
  return trim(authorization.substr(kScheme.size()));
}

}  // namespace

std::vector<std::string> read_api_key_file(const std::string& path) {
  const std::string text = util::read_text_file(path);
  std::vector<std::string> keys;
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t end = std::min(rest.find('\n'), rest.size());
    const std::string_view key = trim(rest.substr(0, end));
    rest.remove_prefix(std::min(end + 1, rest.size()));
    if (!key.empty() && !key.starts_with('#')) keys.emplace_back(key);
  }
  return keys;
}

ApiKeys::ApiKeys(std::vector<std::string> keys) {
  for (auto& key : keys) {
    if (!key.empty()) keys_.push_back(std::move(key));
  }
}

bool ApiKeys::accepts(std::string_view authorization, std::string_view x_api_key) const {
  std::string_view candidate = bearer_token(authorization);
  if (candidate.empty()) candidate = trim(x_api_key);
  if (candidate.empty()) return false;
  bool accepted = false;
  for (const std::string& key : keys_) {
    accepted |= constant_time_equal(std::string_view(key), candidate);
  }
  return accepted;
}

}  // namespace lmserve::server
