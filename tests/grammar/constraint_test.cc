#include "grammar/constraint.h"

#include <gtest/gtest.h>

namespace lmserve::grammar {
namespace {

std::vector<std::string> small_vocab() {
  return {"{", "}", "\"", "a",  "ab", "\"a\"", "{\"",  ":",
          " ", "",  "1",  "12", "}}", "é",     "\xc3", "\xa9"};
}

TEST(TokenTrie, HoldsEveryNonEmptyToken) {
  TokenTrie trie(small_vocab());
  std::size_t tokens = 0;
  for (const auto& n : trie.nodes()) tokens += n.tokens_end - n.tokens_begin;
  EXPECT_EQ(tokens, small_vocab().size() - 1);
}

TEST(Constraint, MasksEqualTheBruteForceAnswer) {
  auto g = std::make_shared<Grammar>(
      parse_gbnf("root ::= \"{\" (\"\\\"\" [aé]* \"\\\"\" \":\" [0-9]+)? \"}\"\n"));
  const auto vocab = small_vocab();
  TokenTrie trie(vocab);
  Constraint c(g, trie);
  Matcher reference(g);
  for (const std::string& step :
       {std::string("{\""), std::string("a"), std::string("\xc3"), std::string("\xa9"),
        std::string("\""), std::string(":"), std::string("12")}) {
    const TokenMask& mask = c.allowed();
    for (std::size_t id = 0; id < vocab.size(); ++id) {
      Matcher probe = reference;
      const bool expected = !vocab[id].empty() && probe.accept(vocab[id]);
      EXPECT_EQ(mask.test(static_cast<std::int32_t>(id)), expected)
          << "token '" << vocab[id] << "' after step '" << step << "'";
    }
    const auto id = std::find(vocab.begin(), vocab.end(), step) - vocab.begin();
    c.accept(static_cast<std::int32_t>(id));
    ASSERT_TRUE(reference.accept(step));
  }
  EXPECT_FALSE(c.accepting());
  EXPECT_THROW(c.accept(0), GrammarError);  // "{" cannot follow
  c.accept(1);
  EXPECT_TRUE(c.accepting());
  EXPECT_TRUE(c.complete());
}

}  // namespace
}  // namespace lmserve::grammar
