// stories260K's tokenizer against llama2.c's prompt ids and HF's decodes (reference_greedy.json),
// plus the README's hand-checked cases (legacy special-token split, lone spaces, empty text).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/fixtures.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::tokenizer {
namespace {

using Ids = std::vector<std::int32_t>;

const Tokenizer& stories() {
  static const Tokenizer tok = Tokenizer::load(testing::fixture("models/stories260K"));
  return tok;
}

nlohmann::json cases() {
  return testing::read_json(testing::fixture("models/stories260K/reference_greedy.json"))["cases"];
}

TEST(TokenizerStories260K, Metadata) {
  const Tokenizer& tok = stories();
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.bos_token(), "<s>");
  EXPECT_EQ(tok.eos_token(), "</s>");
  EXPECT_TRUE(tok.adds_bos());
  EXPECT_FALSE(tok.chat_template().has_value());
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_TRUE(tok.is_special(2));
  EXPECT_FALSE(tok.is_special(410));
  EXPECT_EQ(tok.piece(13), "<0x0A>");
  EXPECT_EQ(tok.piece(410), "\xE2\x96\x81");
  EXPECT_EQ(tok.token_to_id("<0x0A>"), 13);
  EXPECT_EQ(tok.token_bytes(13), "\n");
  EXPECT_EQ(tok.token_bytes(243), std::string(1, '\xF0'));  // first byte of a 4-byte emoji
  EXPECT_EQ(tok.token_bytes(410), " ");                     // no leading-space strip mid-text
  EXPECT_FALSE(tok.clean_up_tokenization_spaces());
  EXPECT_EQ(tok.piece(-1), "");
  EXPECT_EQ(tok.piece(512), "");
  EXPECT_FALSE(tok.is_special(100000));
}

TEST(TokenizerStories260K, EncodeMatchesLlama2cPromptIds) {
  int checked = 0;
  for (const auto& c : cases()) {
    const std::string prompt = c["prompt"];
    EXPECT_EQ(stories().encode(prompt), c["prompt_ids"].get<Ids>()) << "prompt: " << prompt;
    ++checked;
  }
  EXPECT_EQ(checked, 18);
}

TEST(TokenizerStories260K, DecodeOutputMatchesHf) {
  for (const auto& c : cases()) {
    const Ids output = c["output_ids"];
    EXPECT_EQ(stories().decode(output, true), c["output_text_hf"].get<std::string>())
        << "prompt: " << c["prompt"];
    if (c.contains("output_ids_ignoring_bos_stop")) {
      // Generated BOS ids disappear with skip_special_tokens and show up as text without.
      const Ids longer = c["output_ids_ignoring_bos_stop"];
      const std::string skipped = stories().decode(longer, true);
      const std::string kept = stories().decode(longer, false);
      EXPECT_EQ(skipped.find("<s>"), std::string::npos);
      EXPECT_NE(kept.find("<s>"), std::string::npos);
    }
  }
}

TEST(TokenizerStories260K, DecodePromptPlusOutputMatchesLlama2c) {
  for (const auto& c : cases()) {
    Ids ids = c["prompt_ids"];
    const Ids output = c["output_ids"];
    ids.insert(ids.end(), output.begin(), output.end());
    const std::string expected =
        c["prompt"].get<std::string>() + c["output_text"].get<std::string>();
    EXPECT_EQ(stories().decode(ids, true), expected) << "prompt: " << c["prompt"];
  }
}

TEST(TokenizerStories260K, ReadmeCases) {
  const Tokenizer& tok = stories();
  EXPECT_EQ(tok.encode("x</s>y"), (Ids{1, 410, 444, 2, 348}));
  EXPECT_EQ(tok.encode(" "), (Ids{1, 410, 410}));
  EXPECT_EQ(tok.encode(""), (Ids{1}));
  EXPECT_EQ(tok.encode("", false), Ids{});
  const Ids hello = tok.encode("Hello  world");
  // The doubled space keeps its own "▁" piece.
  const Ids single = tok.encode("Hello world");
  EXPECT_EQ(hello.size(), single.size() + 1);
  EXPECT_EQ(std::count(hello.begin(), hello.end(), 410), 1);
  EXPECT_EQ(tok.decode(hello, true), "Hello  world");
  EXPECT_EQ(tok.decode(tok.encode("x</s>y"), false), "<s> x</s> y");
  EXPECT_EQ(tok.decode(tok.encode("x</s>y"), true), "x y");
}

TEST(TokenizerStories260K, SpecialTextWithoutParsing) {
  const Tokenizer& tok = stories();
  const Ids ids = tok.encode("x</s>y", true, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 0);
  EXPECT_EQ(tok.decode(ids, true), "x</s>y");
}

TEST(TokenizerStories260K, RoundTripsAwkwardText) {
  const Tokenizer& tok = stories();
  for (const std::string text : {"naïve 日本 🐶 é", "a\tb\nc", "   ", "tab\t", "\n\n", "Ünïcödé"}) {
    EXPECT_EQ(tok.decode(tok.encode(text), true), text);
  }
}

TEST(TokenizerStories260K, BadInputNeverCrashes) {
  const Tokenizer& tok = stories();
  // Invalid UTF-8 is replaced by U+FFFD first, which then goes through byte fallback.
  EXPECT_EQ(tok.decode(tok.encode("a\xFF"
                                  "b"),
                       true),
            "a\xEF\xBF\xBD"
            "b");
  // Ids outside the vocabulary are dropped, as HF does.
  EXPECT_EQ(tok.decode(Ids{444, 99999, 410, -5, 444}, false), "x x");
  StreamingDetokenizer stream(tok);
  EXPECT_EQ(stream.push(99999), "");
  EXPECT_EQ(stream.finish(), "");
}

TEST(TokenizerStories260K, ConcurrentEncodeAgrees) {
  const Tokenizer& tok = stories();
  std::vector<std::pair<std::string, Ids>> expected;
  for (const auto& c : cases()) expected.emplace_back(c["prompt"], c["prompt_ids"].get<Ids>());
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        for (const auto& [prompt, ids] : expected) {
          if (tok.encode(prompt) != ids) ++mismatches;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerStories260K, LoadsFromTokenizerJsonPath) {
  const Tokenizer tok = Tokenizer::load(testing::fixture("models/stories260K/tokenizer.json"));
  EXPECT_EQ(tok.encode("Once upon a time"), (Ids{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok.bos_id(), 1);
}

}  // namespace
}  // namespace lmserve::tokenizer
