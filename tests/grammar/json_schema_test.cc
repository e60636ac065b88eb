#include "grammar/json_schema.h"

#include <gtest/gtest.h>

#include <regex>

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

TEST(JsonSchema, Patterns) {
  SchemaCase code(R"({"type":"string","pattern":"^[A-Z]{2}-\\d{3,4}(x|yz)?$"})");
  EXPECT_TRUE(code.accepts(R"("AB-123")"));
  EXPECT_TRUE(code.accepts(R"("QQ-0000yz")"));
  EXPECT_FALSE(code.accepts(R"("AB-12")"));
  EXPECT_FALSE(code.accepts(R"("ab-123")"));
  EXPECT_FALSE(code.accepts(R"("AB-123y")"));
  // Characters JSON must escape are written escaped; \S excludes every ECMAScript space.
  SchemaCase any(R"({"type":"string","pattern":"[^a]\\S+"})");
  EXPECT_TRUE(any.accepts(R"("\"\\\u0001!")"));
  EXPECT_TRUE(any.accepts(R"("\u0001é")"));
  EXPECT_FALSE(any.accepts(R"("ab")"));
  EXPECT_FALSE(any.accepts("\"b\xc2\xa0\""));  // U+00A0 is \s
  EXPECT_FALSE(any.accepts("\"b\n\""));        // a raw newline is never JSON
  SchemaCase words(R"j({"type":"string","pattern":"(?:\\w+\\.)+(com|org)"})j");
  EXPECT_TRUE(words.accepts(R"("a.b_2.org")"));
  EXPECT_FALSE(words.accepts(R"("a.net")"));
}

// Every string of up to 4 characters over a small alphabet: the grammar accepts exactly
// what ECMAScript (std::regex) matches whole.
TEST(JsonSchema, PatternsAgreeWithEcmaScript) {
  const std::string alphabet = "ab1 _\"\\";
  for (const char* pattern : {"a*b?", "(ab|b)+1", "[^a ]{2,3}", "\\d\\w?\\s*", "a{0,2}(?:b|_)",
                              "\\D\\S\\W", "[a-b\\d]+|\\\\", ".[\\\"]*", "(a|)b"}) {
    SchemaCase s(json{{"type", "string"}, {"pattern", pattern}}.dump().c_str());
    const std::regex reference(pattern, std::regex::ECMAScript);
    std::vector<std::string> texts{""};
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i];  // a copy: the list grows
      EXPECT_EQ(s.accepts(json(text).dump()), std::regex_match(text, reference))
          << "pattern " << pattern << " on '" << text << "'";
      if (text.size() < 4)
        for (char c : alphabet) texts.push_back(text + c);
    }
  }
}

TEST(JsonSchema, IntegerBoundsAreExactOverDigits) {
  const std::pair<long long, long long> ranges[] = {{-1000, 37}, {5, 1234}, {-99, -7}, {0, 0}};
  for (const auto& [lo, hi] : ranges) {
    SchemaCase s(("{\"type\":\"integer\",\"minimum\":" + std::to_string(lo) +
                  ",\"maximum\":" + std::to_string(hi) + "}")
                     .c_str());
    for (long long v = lo - 30; v <= hi + 30; ++v)
      EXPECT_EQ(s.accepts(std::to_string(v)), v >= lo && v <= hi)
          << v << " in " << lo << ".." << hi;
    EXPECT_FALSE(s.accepts("-0"));
    EXPECT_FALSE(s.accepts("007"));
  }
  SchemaCase open(R"({"type":"integer","exclusiveMinimum":-3.5,"exclusiveMaximum":1e12})");
  EXPECT_TRUE(open.accepts("-3"));
  EXPECT_FALSE(open.accepts("-4"));
  EXPECT_TRUE(open.accepts("999999999999"));
  EXPECT_FALSE(open.accepts("1000000000000"));
  SchemaCase big(R"({"type":"integer","minimum":123456789})");
  EXPECT_TRUE(big.accepts("123456789"));
  EXPECT_TRUE(big.accepts("9000000000"));
  EXPECT_FALSE(big.accepts("123456788"));
}

TEST(JsonSchema, NumberBoundsDecideAtTheBound) {
  SchemaCase unit(R"({"type":"number","minimum":0,"maximum":1})");
  for (const char* ok : {"0", "0.25", "1", "1.000", "0.999"}) EXPECT_TRUE(unit.accepts(ok)) << ok;
  for (const char* bad : {"-0.5", "1.001", "2", "1e0"}) EXPECT_FALSE(unit.accepts(bad)) << bad;
  SchemaCase open(R"({"type":"number","exclusiveMinimum":-2,"exclusiveMaximum":3})");
  for (const char* ok : {"-1.999", "-0.5", "0", "2.99", "-1"}) EXPECT_TRUE(open.accepts(ok)) << ok;
  for (const char* bad : {"-2", "-2.0", "3", "3.0", "-2.5"}) EXPECT_FALSE(open.accepts(bad)) << bad;
  SchemaCase low(R"({"type":"number","minimum":-5})");
  EXPECT_TRUE(low.accepts("-5.0"));
  EXPECT_TRUE(low.accepts("123.5"));
  EXPECT_FALSE(low.accepts("-5.01"));
}

TEST(JsonSchema, MoreFormats) {
  SchemaCase email(R"({"type":"string","format":"email"})");
  EXPECT_TRUE(email.accepts(R"("first.last+tag@mail.example.com")"));
  EXPECT_FALSE(email.accepts(R"("no-at-sign.com")"));
  EXPECT_FALSE(email.accepts(R"("a@localhost")"));
  SchemaCase ip(R"({"type":"string","format":"ipv4"})");
  EXPECT_TRUE(ip.accepts(R"("192.168.0.255")"));
  EXPECT_FALSE(ip.accepts(R"("256.1.1.1")"));
  EXPECT_FALSE(ip.accepts(R"("01.1.1.1")"));
}

TEST(JsonSchema, OneOfNeedsExclusiveBranches) {
  SchemaCase tagged(R"({"oneOf":[
      {"type":"object","properties":{"kind":{"const":"a"},"x":{"type":"integer"}},"required":["kind"]},
      {"type":"object","properties":{"kind":{"enum":["b","c"]}},"required":["kind"]},
      {"type":"string"}, {"type":"null"}]})");
  EXPECT_TRUE(tagged.accepts(R"({"kind":"a","x":1})"));
  EXPECT_TRUE(tagged.accepts(R"({"kind":"c"})"));
  EXPECT_TRUE(tagged.accepts("null"));
  // Closed objects whose required keys the other does not allow are exclusive too.
  SchemaCase closed(R"({"oneOf":[
      {"type":"object","properties":{"a":{}},"required":["a"],"additionalProperties":false},
      {"type":"object","properties":{"b":{}},"required":["b"],"additionalProperties":false}]})");
  EXPECT_TRUE(closed.accepts(R"({"b":1})"));
  for (
      const char* overlapping :
      {R"({"oneOf":[{"type":"integer"},{"type":"number"}]})",
       R"({"oneOf":[{"type":"object","properties":{"a":{}}},{"type":"object","properties":{"b":{}}}]})",
       R"({"oneOf":[{"enum":[1,2]},{"enum":[2,3]}]})"}) {
    try {
      json_schema_to_gbnf(json::parse(overlapping));
      ADD_FAILURE() << "accepted " << overlapping;
    } catch (const SchemaError& e) {
      EXPECT_EQ(e.path(), "oneOf") << overlapping;
    }
  }
}

TEST(JsonSchema, UnsupportedKeywordsNameTheirPath) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type":"string","pattern":"(?=a)b"})", "pattern"},
      {R"({"type":"string","pattern":"(a)\\1"})", "pattern"},
      {R"({"type":"string","pattern":"a\\bc"})", "pattern"},
      {R"({"type":"string","pattern":"a|^b"})", "pattern"},
      {R"({"type":"string","pattern":"(a*)*"})", "pattern"},
      {R"({"type":"string","pattern":"a{2000}"})", "pattern"},
      {R"({"type":"string","pattern":"a","maxLength":3})", "maxLength"},
      {R"({"type":"object","properties":{"x":{"type":"number","multipleOf":2}}})",
       "properties.x.multipleOf"},
      {R"({"anyOf":[{"type":"string"},{"not":{}}]})", "anyOf[1].not"},
      {R"({"type":"string","format":"hostname"})", "format"},
      {R"({"type":"array","items":{"type":"number","maximum":0.5}})", "items.maximum"},
      {R"({"type":"integer","minimum":5,"maximum":4})", "minimum"},
      {R"({"type":"number","exclusiveMinimum":1,"maximum":1})", "exclusiveMinimum"},
      {R"({"type":"integer","minimum":1e17})", "minimum"},
      {R"({"$ref":"#/$defs/missing"})", "$ref"},
      {R"({"type":"object","properties":{"a":{}},"required":["b"]})", "required[0]"},
      {R"({"type":"wat"})", "type"},
      // fuzz_grammar: oneOf's exclusivity test read a non-boolean nullable as a boolean.
      {R"({"oneOf":[{"type":"string","nullable":["k"]},{"type":"null"}]})", "oneOf[0].nullable"},
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
