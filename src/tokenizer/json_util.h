// Checked accessors for tokenizer.json fields: a malformed or unexpected file becomes a
// FileError naming the field, never a nlohmann exception or a crash.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tokenizer/regex.h"

namespace lmserve::tokenizer::detail {

// config["type"] as a string; `what` names the section for the error message.
std::string json_type(const nlohmann::json& config, std::string_view what);
bool json_bool(const nlohmann::json& config, std::string_view key, bool fallback);
std::string json_string(const nlohmann::json& config, std::string_view key, std::string_view what);
// Missing or null gives `fallback`.
std::string json_string_or(const nlohmann::json& config, std::string_view key,
                           std::string fallback);
long long json_int(const nlohmann::json& config, std::string_view key, long long fallback);
const nlohmann::json& json_array(const nlohmann::json& config, std::string_view key,
                                 std::string_view what);
// config["pattern"] = {"String": s} | {"Regex": r}.
Pattern json_pattern(const nlohmann::json& config, std::string_view what);

}  // namespace lmserve::tokenizer::detail
