#include "grammar/constraint.h"

#include <gtest/gtest.h>

#include "grammar/matcher.h"

namespace lmserve::grammar {
namespace {

std::vector<std::string> small_vocab() {
  return {"{", "}", "\"", "a",  "ab", "\"a\"", "{\"",  ":",
          " ", "",  "1",  "12", "}}", "é",     "\xc3", "\xa9"};
}

TEST(TokenTrie, HoldsEveryNonEmptyToken) {
  TokenTrie trie(small_vocab());
  EXPECT_EQ(trie.token_ids().size(), small_vocab().size() - 1);
  // Preorder: every subtree ends within its parent's, and a node's tokens spell its path.
  const auto& nodes = trie.nodes();
  std::vector<std::string> path{""};
  for (std::size_t i = 1; i + 1 < nodes.size(); ++i) {
    path.resize(nodes[i].depth);
    path.push_back(path.back() + static_cast<char>(nodes[i].byte));
    EXPECT_LE(nodes[i].end, nodes.size() - 1);
    EXPECT_GT(nodes[i].end, i);
    for (auto t = nodes[i].tokens_begin; t < nodes[i + 1].tokens_begin; ++t)
      EXPECT_EQ(trie.bytes(trie.token_ids()[t]), path.back());
  }
}

TEST(StateTable, UnboundedRepetitionLoopsThroughFixedStates) {
  StateTable t(std::make_shared<Grammar>(parse_gbnf("root ::= \"\\\"\" [a-z]* \"\\\"\"\n")));
  const std::uint32_t open = t.next(0, '"');
  const std::uint32_t one = t.next(open, 'a');
  EXPECT_EQ(t.next(one, 'b'), one);  // the same state however long the string grows
  EXPECT_EQ(t.next(t.next(one, 'z'), 'q'), one);
  EXPECT_EQ(t.next(one, '0'), StateTable::kDead);
  EXPECT_TRUE(t.accepting(t.next(one, '"')));
  EXPECT_FALSE(t.can_continue(t.next(one, '"')));
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
