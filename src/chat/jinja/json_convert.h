// Converts nlohmann JSON (sorted or insertion-ordered) into engine values, the way
// transformers hands JSON-decoded Python objects to the template.
#pragma once

#include <memory>
#include <string>

#include "chat/jinja/value.h"

namespace lmserve::chat::jinja {

template <class Json>
Value from_json(const Json& j, int depth = 0) {
  if (depth > kMaxNesting) {
    throw TemplateRenderError(ErrorKind::kLimit, "template input nested deeper than " +
                                                     std::to_string(kMaxNesting) + " levels");
  }
  if (j.is_null() || j.is_discarded()) return Value::none();
  if (j.is_boolean()) return Value::boolean(j.template get<bool>());
  if (j.is_number_unsigned()) {
    auto u = j.template get<unsigned long long>();
    if (u > static_cast<unsigned long long>(INT64_MAX))
      return Value::number(static_cast<double>(u));
    return Value::integer(static_cast<std::int64_t>(u));
  }
  if (j.is_number_integer()) return Value::integer(j.template get<std::int64_t>());
  if (j.is_number_float()) return Value::number(j.template get<double>());
  if (j.is_string()) return Value::string(j.template get<std::string>());
  if (j.is_array()) {
    std::vector<Value> items;
    items.reserve(j.size());
    for (const auto& e : j) items.push_back(from_json(e, depth + 1));
    return Value::list(std::move(items));
  }
  if (j.is_object()) {
    auto d = std::make_shared<DictObj>();
    for (auto it = j.begin(); it != j.end(); ++it) {
      d->set(Value::string(it.key()), from_json(it.value(), depth + 1));
    }
    return Value::dict(std::move(d));
  }
  return Value::none();  // binary: not produced by JSON parsing
}

}  // namespace lmserve::chat::jinja
