// Random walks through real vocabularies: every token the mask allows is taken with equal
// chance (as a random-weight model at temperature 1 would), and every finished output must
// parse as JSON and be accepted by the grammar token by token.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "support/fixtures.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::grammar {
namespace {

using json = nlohmann::ordered_json;

std::vector<std::string> vocabulary_bytes(const tokenizer::Tokenizer& tok) {
  std::vector<std::string> bytes(static_cast<std::size_t>(tok.vocab_size()));
  for (int id = 0; id < tok.vocab_size(); ++id)
    if (!tok.is_special(id)) bytes[static_cast<std::size_t>(id)] = tok.token_bytes(id);
  return bytes;
}

TEST(RandomSampling, Qwen3VocabularyOutputsParse) {
  const auto tok = tokenizer::Tokenizer::load(testing::fixture("tokenizers/qwen3"));
  TokenTrie trie(vocabulary_bytes(tok));
  const char* schemas[] = {
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":6},"age":{"type":"integer","minimum":0},"ok":{"type":"boolean"}},"required":["name","age"]})",
      R"({"type":"array","items":{"enum":["red","green",3]},"maxItems":4})",
      R"({"type":"string","format":"date-time"})",
      R"({"anyOf":[{"type":"null"},{"type":"number"}]})",
  };
  std::mt19937 rng(7);
  int finished = 0;
  for (const char* schema : schemas) {
    auto g = std::make_shared<Grammar>(parse_gbnf(json_schema_to_gbnf(json::parse(schema))));
    for (int run = 0; run < 5; ++run) {
      Constraint c(g, trie);
      std::string text;
      for (int step = 0; step < 300 && !c.complete(); ++step) {
        if (c.accepting() && rng() % 4 == 0) break;  // EOS
        const TokenMask& mask = c.allowed();
        std::vector<std::int32_t> allowed;
        for (std::int32_t id = 0; id < trie.vocab_size(); ++id)
          if (mask.test(id)) allowed.push_back(id);
        ASSERT_FALSE(allowed.empty()) << schema << " after '" << text << "'";
        const std::int32_t id = allowed[rng() % allowed.size()];
        c.accept(id);
        text += trie.bytes(id);
      }
      if (!c.accepting()) continue;
      ++finished;
      EXPECT_TRUE(json::accept(text)) << schema << ": " << text;
    }
  }
  EXPECT_GE(finished, 10);
}

TEST(RandomSampling, FirstMaskIsFast) {
  const auto tok = tokenizer::Tokenizer::load(testing::fixture("tokenizers/qwen3"));
  TokenTrie trie(vocabulary_bytes(tok));
  auto g = std::make_shared<Grammar>(parse_gbnf(json_schema_to_gbnf(json::parse(
      R"({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]})"))));
  Constraint c(g, trie);
  const auto t0 = std::chrono::steady_clock::now();
  (void)c.allowed();
  for (const char* piece : {"{\"", "city", "\":", " \""}) {
    const auto ids = tok.encode(piece, false, false);
    for (auto id : ids) c.accept(id);
  }
  (void)c.allowed();  // inside a string: nearly every token is allowed
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("two_masks_ms", std::to_string(ms));
  EXPECT_LT(ms, 500);
}

}  // namespace
}  // namespace lmserve::grammar
