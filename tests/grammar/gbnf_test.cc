#include <gtest/gtest.h>

#include "grammar/grammar.h"
#include "grammar/matcher.h"

namespace lmserve::grammar {
namespace {

// Whether `text` is a complete sentence of `gbnf`.
bool matches(const std::string& gbnf, const std::string& text) {
  Matcher m(std::make_shared<Grammar>(parse_gbnf(gbnf)));
  return m.accept(text) && m.accepting();
}

TEST(Gbnf, LiteralsClassesAndAlternatives) {
  const std::string g = R"(root ::= "a" [b-d]+ ("x" | "yz") # comment
)";
  EXPECT_TRUE(matches(g, "abx"));
  EXPECT_TRUE(matches(g, "abcdyz"));
  EXPECT_FALSE(matches(g, "ax"));
  EXPECT_FALSE(matches(g, "abx "));
  EXPECT_FALSE(matches(g, "aby"));
}

TEST(Gbnf, RepetitionBounds) {
  const std::string g = "root ::= [0-9]{2,3} \"-\"? [a]{1,}\n";
  EXPECT_FALSE(matches(g, "1a"));
  EXPECT_TRUE(matches(g, "12a"));
  EXPECT_TRUE(matches(g, "123-aaa"));
  EXPECT_FALSE(matches(g, "1234a"));
}

TEST(Gbnf, MultiLineRulesAndReferences) {
  const std::string g =
      "root ::= item (\n  \",\" item\n)*\nitem ::= \"x\" | nested\nnested ::= \"[\" root \"]\"\n";
  EXPECT_TRUE(matches(g, "x,[x,x],[[x]]"));
  EXPECT_FALSE(matches(g, "x,[x"));
}

TEST(Gbnf, UnicodeClassesMatchUtf8Bytes) {
  const std::string g = R"(root ::= [^"a]* "é" [\u4e00-\u9fff]
)";
  EXPECT_TRUE(matches(g, "b😀é中"));
  EXPECT_FALSE(matches(g, "aé中"));
  EXPECT_FALSE(matches(g, "é\xed\xa0\x80"));  // a surrogate is not a character
  // A multi-byte character may arrive split across tokens.
  Matcher m(std::make_shared<Grammar>(parse_gbnf(g)));
  EXPECT_TRUE(m.accept("\xc3"));
  EXPECT_FALSE(m.accepting());
  EXPECT_TRUE(m.accept("\xa9\xe4"));
  EXPECT_TRUE(m.accept("\xb8\xad"));
  EXPECT_TRUE(m.accepting());
  EXPECT_FALSE(m.accept("\""));  // neither the class nor "é" takes a quote
}

TEST(Gbnf, RefusesBrokenGrammars) {
  for (const char* bad :
       {"", "root ::= missing\n", "root ::= \"a\nx", "root ::= [a\n", "root ::= root \"a\"\n",
        "root ::= (\"a\"?)*\n", "root ::= x{3,2}\n", "root ::= \"a\" )\n", "root ::= \"a\"{1001}\n",
        "x ::= \"a\"\n", "root ::= \"a\"\nroot ::= \"b\"\n", "root ::= [z-a]\n"}) {
    EXPECT_THROW(parse_gbnf(bad), GrammarError) << bad;
  }
}

}  // namespace
}  // namespace lmserve::grammar
