#include "server/request_fields.h"

#include <cmath>
#include <limits>

#include "util/error.h"

namespace lmserve::server {

[[noreturn]] void fail(const char* code, std::optional<std::string> param,
                       const std::string& message) {
  throw ApiError::invalid_request(code, std::move(param), message);
}

// A present, non-null member, else nullptr (JSON null means "absent", §2.1).
const json* field(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

const char* kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    default:
      return "an unsupported value";
  }
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& got) {
  fail("invalid_type", param, "'" + param + "' must be " + expected + ", got " + kind_of(got));
}

std::int64_t require_int(const json& v, const std::string& param) {
  if (v.is_number_unsigned()) {
    auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail("invalid_value", param, "'" + param + "' is too large");
    }
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d)) fail("invalid_value", param, "'" + param + "' must be finite");
    if (std::trunc(d) != d) wrong_type(param, "an integer", v);
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
      fail("invalid_value", param, "'" + param + "' is out of range");
    }
    return static_cast<std::int64_t>(d);
  }
  wrong_type(param, "an integer", v);
}

double require_number(const json& v, const std::string& param) {
  if (!v.is_number()) wrong_type(param, "a number", v);
  double d = v.get<double>();
  if (!std::isfinite(d)) fail("invalid_value", param, "'" + param + "' must be a finite number");
  return d;
}

bool require_bool(const json& v, const std::string& param) {
  if (!v.is_boolean()) wrong_type(param, "a boolean", v);
  return v.get<bool>();
}

const std::string& require_string(const json& v, const std::string& param) {
  if (!v.is_string()) wrong_type(param, "a string", v);
  return v.get_ref<const std::string&>();
}

const json& require_object(const json& v, const std::string& param) {
  if (!v.is_object()) wrong_type(param, "an object", v);
  return v;
}

const json& require_array(const json& v, const std::string& param) {
  if (!v.is_array()) wrong_type(param, "an array", v);
  return v;
}

void missing(const std::string& param) {
  fail("missing_required_parameter", param, "'" + param + "' is required");
}

void unsupported(const std::string& param, const std::string& what) {
  fail("unsupported_parameter", param, what + " is not supported by this server");
}

std::string param_at(const std::string& param, std::size_t i) {
  return param + "[" + std::to_string(i) + "]";
}

}  // namespace lmserve::server
