#include "server/output_constraint.h"

#include "chat/tool_calls/tool_call_syntax.h"
#include "grammar/json_schema.h"
#include "util/error.h"

namespace lmserve::server {
namespace {

using json = nlohmann::ordered_json;

[[noreturn]] void fail(const char* code, const std::string& param, const std::string& message) {
  throw ApiError::invalid_request(code, param, message);
}

const json* field(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// Schema -> GBNF; a SchemaError becomes a 400 whose param is the keyword's full path.
std::string schema_gbnf(const json& schema, const std::string& param,
                        std::string_view rule = "root") {
  try {
    return grammar::json_schema_to_gbnf(schema, rule);
  } catch (const grammar::SchemaError& e) {
    fail("unsupported_parameter", e.path().empty() ? param : param + "." + e.path(), e.what());
  }
}

std::shared_ptr<const grammar::Grammar> compile(const std::string& gbnf, const std::string& param) {
  try {
    return std::make_shared<const grammar::Grammar>(grammar::parse_gbnf(gbnf));
  } catch (const grammar::GrammarError& e) {
    fail("invalid_value", param, e.what());
  }
}

std::string response_format_gbnf(const json& format) {
  if (!format.is_object())
    fail("invalid_type", "response_format", "'response_format' must be an object");
  const json* type = field(format, "type");
  if (!type)
    fail("missing_required_parameter", "response_format.type",
         "'response_format.type' is required");
  if (!type->is_string())
    fail("invalid_type", "response_format.type", "'response_format.type' must be a string");
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "text") return "";
  if (t == "json_object") return grammar::json_object_gbnf();
  if (t != "json_schema")
    fail("invalid_value", "response_format.type",
         "'response_format.type' must be one of 'text', 'json_object', 'json_schema'");
  const json* spec = field(format, "json_schema");
  if (!spec)
    fail("missing_required_parameter", "response_format.json_schema",
         "'response_format.json_schema' is required");
  if (!spec->is_object())
    fail("invalid_type", "response_format.json_schema",
         "'response_format.json_schema' must be an object");
  const json* name = field(*spec, "name");
  if (name && !name->is_string())
    fail("invalid_type", "response_format.json_schema.name",
         "'response_format.json_schema.name' must be a string");
  const json* strict = field(*spec, "strict");
  if (strict && !strict->is_boolean())
    fail("invalid_type", "response_format.json_schema.strict",
         "'response_format.json_schema.strict' must be a boolean");
  const json* schema = field(*spec, "schema");
  // OpenAI treats a missing schema as any JSON value... object; keep to objects.
  if (!schema) return grammar::json_object_gbnf();
  return schema_gbnf(*schema, "response_format.json_schema.schema");
}

}  // namespace

std::shared_ptr<const grammar::Grammar> parse_output_constraint(const json& body) {
  std::string gbnf;
  std::string source;
  auto set = [&](std::string text, const char* param) {
    if (text.empty()) return;
    if (!source.empty())
      fail("invalid_value", param,
           std::string("'").append(param).append("' and '").append(source).append(
               "' cannot be combined"));
    gbnf = std::move(text);
    source = param;
  };
  if (const json* v = field(body, "response_format"))
    set(response_format_gbnf(*v), "response_format");
  if (const json* v = field(body, "json_schema"))
    set(schema_gbnf(*v, "json_schema"), "json_schema");
  if (const json* v = field(body, "grammar")) {
    if (!v->is_string()) fail("invalid_type", "grammar", "'grammar' must be a string (GBNF)");
    set(v->get<std::string>(), "grammar");
  }
  if (source.empty()) return nullptr;
  return compile(gbnf, source);
}

std::shared_ptr<const grammar::Grammar> tool_call_grammar(const json& tools,
                                                          const chat::ToolCallSyntax* syntax) {
  // The syntaxes that write a call as a JSON object, and how the output wraps it.
  const char* arguments = "arguments";
  std::string root;
  if (syntax == &chat::json_tools_syntax()) {
    root = grammar::gbnf_literal(syntax->start) + " \"\\n\"? call \"\\n\"? " +
           grammar::gbnf_literal(syntax->end);
  } else if (syntax == &chat::llama3_json_syntax()) {
    arguments = "parameters";
    root = "call";  // a JSON object opening the answer is the call
  } else if (syntax == &chat::mistral_syntax()) {
    root = grammar::gbnf_literal(syntax->start) + " \"[\" call \"]\"";
  } else {
    fail("unsupported_parameter", "tool_choice",
         "forcing a tool call is supported for the json_tools, llama3_json and mistral "
         "tool-call formats (this model uses " +
             std::string(syntax ? syntax->name : "none") + ")");
  }
  // One call: {"name": <one tool's name>, <arguments>: <its parameters>}.
  json calls = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const json& fn = tools[i]["function"];
    const std::string param = "tools[" + std::to_string(i) + "].function.parameters";
    json parameters = fn.contains("parameters") && !fn["parameters"].is_null()
                          ? fn["parameters"]
                          : json{{"type", "object"}};
    schema_gbnf(parameters, param);  // refuse what cannot be enforced, naming the tool
    calls.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", fn["name"]}}}, {arguments, parameters}}},
                     {"required", {"name", arguments}}});
  }
  const std::string call = schema_gbnf(json{{"anyOf", calls}}, "tools", "call");
  return compile("root ::= " + root + "\n" + call, "tools");
}

}  // namespace lmserve::server
