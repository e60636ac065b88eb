#include "grammar/json_schema.h"

#include <gtest/gtest.h>

#include "grammar/matcher.h"

namespace lmserve::grammar {
namespace {

using json = nlohmann::ordered_json;

class SchemaCase {
 public:
  explicit SchemaCase(const char* schema)
      : grammar_(std::make_shared<Grammar>(parse_gbnf(json_schema_to_gbnf(json::parse(schema))))) {}
  bool accepts(const std::string& text) const {
    Matcher m(grammar_);
    return m.accept(text) && m.accepting();
  }

 private:
  std::shared_ptr<const Grammar> grammar_;
};

TEST(JsonSchema, ObjectsWithRequiredAndOptionalProperties) {
  SchemaCase s(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
                   "c":{"type":"boolean"}},"required":["b"],"additionalProperties":false})");
  EXPECT_TRUE(s.accepts(R"({"b":"x"})"));
  EXPECT_TRUE(s.accepts(R"({"a":-3,"b":"x","c":true})"));
  EXPECT_TRUE(s.accepts("{\n  \"a\": 0,\n  \"b\": \"\\u00e9\"\n}"));
  EXPECT_FALSE(s.accepts(R"({"a":1})"));
  EXPECT_FALSE(s.accepts(R"({"b":"x","a":1})"));  // declared order
  EXPECT_FALSE(s.accepts(R"({"a":01,"b":"x"})"));
  EXPECT_FALSE(s.accepts(R"({"b":"x",})"));
}

TEST(JsonSchema, AllOptionalProperties) {
  SchemaCase s(R"({"type":"object","properties":{"a":{"type":"null"},"b":{"const":"k"}}})");
  EXPECT_TRUE(s.accepts("{}"));
  EXPECT_TRUE(s.accepts(R"({"b":"k"})"));
  EXPECT_TRUE(s.accepts(R"({"a":null, "b":"k"})"));
  EXPECT_FALSE(s.accepts(R"({"b":"j"})"));
  EXPECT_FALSE(s.accepts(R"({,"b":"k"})"));
}

TEST(JsonSchema, ArraysEnumsAndUnions) {
  SchemaCase s(R"({"type":"array","items":{"enum":["x",1,null]},"minItems":1,"maxItems":3})");
  EXPECT_TRUE(s.accepts(R"(["x"])"));
  EXPECT_TRUE(s.accepts(R"([1, null, "x"])"));
  EXPECT_FALSE(s.accepts("[]"));
  EXPECT_FALSE(s.accepts(R"(["x",1,1,1])"));
  SchemaCase u(R"({"anyOf":[{"type":"string","maxLength":2},{"type":["integer","null"]}]})");
  EXPECT_TRUE(u.accepts(R"("ab")"));
  EXPECT_FALSE(u.accepts(R"("abc")"));
  EXPECT_TRUE(u.accepts("null"));
  EXPECT_TRUE(u.accepts("-12"));
  EXPECT_FALSE(u.accepts("1.5"));
  SchemaCase t(
      R"({"type":"array","prefixItems":[{"type":"boolean"},{"type":"number"}],"items":false})");
  EXPECT_TRUE(t.accepts("[true, 1.5e3]"));
  EXPECT_FALSE(t.accepts("[true]"));
}

TEST(JsonSchema, RecursiveReferencesAndAllOf) {
  SchemaCase s(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
                   "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},
                   "$ref":"#/$defs/node"})");
  EXPECT_TRUE(s.accepts(R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[]}]})"));
  EXPECT_FALSE(s.accepts(R"({"v":1,"kids":[{}]})"));
  SchemaCase a(R"({"allOf":[{"properties":{"a":{"type":"integer"}},"required":["a"]},
                   {"type":"object","properties":{"b":{"type":"integer"}},"required":["b"]}]})");
  EXPECT_TRUE(a.accepts(R"({"a":1,"b":2})"));
  EXPECT_FALSE(a.accepts(R"({"a":1})"));
}

TEST(JsonSchema, FormatsBoundsAndNumbers) {
  SchemaCase d(R"({"type":"string","format":"date-time"})");
  EXPECT_TRUE(d.accepts(R"("2024-02-28T13:45:00Z")"));
  EXPECT_TRUE(d.accepts(R"("2024-12-01T00:00:00.123+05:30")"));
  EXPECT_FALSE(d.accepts(R"("2024-13-01T00:00:00Z")"));
  SchemaCase u(R"({"type":"string","format":"uuid"})");
  EXPECT_TRUE(u.accepts(R"("123e4567-e89b-12d3-a456-426614174000")"));
  SchemaCase i(R"({"type":"integer","minimum":-2,"maximum":3})");
  EXPECT_TRUE(i.accepts("-2"));
  EXPECT_TRUE(i.accepts("3"));
  EXPECT_FALSE(i.accepts("4"));
  SchemaCase p(R"({"type":"integer","minimum":0})");
  EXPECT_TRUE(p.accepts("0"));
  EXPECT_FALSE(p.accepts("-1"));
  SchemaCase sn(R"({"type":["string","null"],"maxLength":2})");
  EXPECT_TRUE(sn.accepts("null"));
  EXPECT_FALSE(sn.accepts(R"("abc")"));
  SchemaCase n(R"({"type":"number","nullable":true})");
  EXPECT_TRUE(n.accepts("-0.5E-3"));
  EXPECT_TRUE(n.accepts("null"));
  EXPECT_FALSE(n.accepts("1."));
  SchemaCase len(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_TRUE(len.accepts(R"("ab")"));
  EXPECT_TRUE(len.accepts(R"("a\"c")"));
  EXPECT_FALSE(len.accepts(R"("a")"));
  EXPECT_FALSE(len.accepts(R"("abcd")"));
}

TEST(JsonSchema, WhitespaceIsBounded) {
  SchemaCase s(R"({"type":"object"})");
  EXPECT_TRUE(s.accepts("{" + std::string(40, ' ') + "}"));
  EXPECT_FALSE(s.accepts("{" + std::string(41, ' ') + "}"));
}

TEST(JsonSchema, UnsupportedKeywordsNameTheirPath) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type":"string","pattern":"^a+$"})", "pattern"},
      {R"({"type":"object","properties":{"x":{"type":"number","multipleOf":2}}})",
       "properties.x.multipleOf"},
      {R"({"anyOf":[{"type":"string"},{"not":{}}]})", "anyOf[1].not"},
      {R"({"type":"string","format":"email"})", "format"},
      {R"({"type":"array","items":{"type":"integer","maximum":1e9}})", "items.maximum"},
      {R"({"$ref":"#/$defs/missing"})", "$ref"},
      {R"({"type":"object","properties":{"a":{}},"required":["b"]})", "required[0]"},
      {R"({"type":"wat"})", "type"},
      {R"(false)", ""},
  };
  for (const auto& [schema, path] : cases) {
    try {
      json_schema_to_gbnf(json::parse(schema));
      ADD_FAILURE() << "accepted " << schema;
    } catch (const SchemaError& e) {
      EXPECT_EQ(e.path(), path) << schema;
    }
  }
}

}  // namespace
}  // namespace lmserve::grammar
