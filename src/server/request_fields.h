// Reading fields of a request body with the precise 400s of api-contract §5 (every one names
// its param): shared by the parsers of each API (chat completions, Responses, Messages).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lmserve::server {

using json = nlohmann::ordered_json;

// Throws ApiError 400 invalid_request_error with this code, param and message.
[[noreturn]] void fail(const char* code, std::optional<std::string> param,
                       const std::string& message);
// A present, non-null member, else nullptr (JSON null means "absent", §2.1).
const json* field(const json& object, const char* key);
const char* kind_of(const json& v);  // "a string", "an array", ...
[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& got);
[[noreturn]] void missing(const std::string& param);  // missing_required_parameter
// 400 unsupported_parameter: "<what> is not supported by this server".
[[noreturn]] void unsupported(const std::string& param, const std::string& what);
// "param[i]": the path of an array element, for errors.
std::string param_at(const std::string& param, std::size_t i);

std::int64_t require_int(const json& v, const std::string& param);
double require_number(const json& v, const std::string& param);
bool require_bool(const json& v, const std::string& param);
const std::string& require_string(const json& v, const std::string& param);
const json& require_object(const json& v, const std::string& param);
const json& require_array(const json& v, const std::string& param);

}  // namespace lmserve::server
