// JSON Schema -> GBNF. Every keyword either shapes the grammar or is an annotation; any
// other keyword is refused (SchemaError naming its path), never silently ignored, so what
// the grammar accepts always validates against the schema.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lmserve::grammar {

class SchemaError : public std::runtime_error {
 public:
  SchemaError(std::string path, const std::string& message)
      : std::runtime_error(message), path_(std::move(path)) {}
  // Where in the schema, "" for the root, else like "properties.age.minimum", "anyOf[1]".
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// GBNF whose rule `root_rule` matches exactly the JSON texts (with bounded whitespace) the
// schema accepts, narrowed where a bound cannot be expressed (e.g. dates use days 01-28).
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema,
                                std::string_view root_rule = "root");

// A GBNF literal matching exactly `text` (bytes).
std::string gbnf_literal(std::string_view text);

// The GBNF of any JSON object (response_format json_object).
std::string json_object_gbnf(std::string_view root_rule = "root");

}  // namespace lmserve::grammar
