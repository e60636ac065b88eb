#include "tokenizer/json_util.h"

#include "util/error.h"

namespace lmserve::tokenizer::detail {

std::string json_type(const nlohmann::json& config, std::string_view what) {
  if (!config.is_object())
    throw FileError("tokenizer.json: " + std::string(what) + " is not an object");
  const auto it = config.find("type");
  if (it == config.end() || !it->is_string()) {
    throw FileError("tokenizer.json: " + std::string(what) + " has no \"type\"");
  }
  return it->get<std::string>();
}

bool json_bool(const nlohmann::json& config, std::string_view key, bool fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    throw FileError("tokenizer.json: \"" + std::string(key) + "\" is not a boolean");
  return it->get<bool>();
}

std::string json_string(const nlohmann::json& config, std::string_view key, std::string_view what) {
  const auto it = config.find(key);
  if (it == config.end() || !it->is_string()) {
    throw FileError("tokenizer.json: " + std::string(what) + " needs a string \"" +
                    std::string(key) + "\"");
  }
  return it->get<std::string>();
}

std::string json_string_or(const nlohmann::json& config, std::string_view key,
                           std::string fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_string())
    throw FileError("tokenizer.json: \"" + std::string(key) + "\" is not a string");
  return it->get<std::string>();
}

long long json_int(const nlohmann::json& config, std::string_view key, long long fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    throw FileError("tokenizer.json: \"" + std::string(key) + "\" is not an integer");
  }
  return it->get<long long>();
}

const nlohmann::json& json_array(const nlohmann::json& config, std::string_view key,
                                 std::string_view what) {
  const auto it = config.find(key);
  if (it == config.end() || !it->is_array()) {
    throw FileError("tokenizer.json: " + std::string(what) + " needs an array \"" +
                    std::string(key) + "\"");
  }
  return *it;
}

Pattern json_pattern(const nlohmann::json& config, std::string_view what) {
  const auto it = config.find("pattern");
  if (it != config.end() && it->is_object()) {
    if (const auto s = it->find("String"); s != it->end() && s->is_string()) {
      return Pattern::literal(s->get<std::string>());
    }
    if (const auto r = it->find("Regex"); r != it->end() && r->is_string()) {
      return Pattern::regex(r->get<std::string>());
    }
  }
  throw FileError("tokenizer.json: " + std::string(what) +
                  " needs a \"pattern\" of the form {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace lmserve::tokenizer::detail
