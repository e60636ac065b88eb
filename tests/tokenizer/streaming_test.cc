// StreamingDetokenizer: for random id sequences (byte-fallback runs that split multibyte
// characters, specials, real text), the stream is always a prefix of decode(ids so far),
// never carries broken UTF-8, and ends exactly at decode(ids).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "support/fixtures.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace lmserve::tokenizer {
namespace {

using Ids = std::vector<std::int32_t>;

const Tokenizer& load(const std::string& relative) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(relative);
  if (it == cache.end())
    it = cache.emplace(relative, Tokenizer::load(testing::fixture(relative))).first;
  return it->second;
}

// Streams ids, checking the invariants after every token.
void check_stream(const Tokenizer& tok, const Ids& ids, bool skip_special) {
  StreamingDetokenizer stream(tok, skip_special);
  std::string so_far;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const std::string piece = stream.push(ids[k]);
    ASSERT_TRUE(util::is_valid_utf8(piece)) << "broken UTF-8 after " << k + 1 << " ids";
    so_far += piece;
    const std::string full = tok.decode(std::span(ids).first(k + 1), skip_special);
    ASSERT_EQ(full.compare(0, so_far.size(), so_far), 0)
        << "stream is not a prefix of decode after " << k + 1 << " ids: "
        << ::testing::PrintToString(Ids(ids.begin(), ids.begin() + static_cast<long>(k) + 1))
        << "\n stream: " << ::testing::PrintToString(so_far)
        << "\n decode: " << ::testing::PrintToString(full);
  }
  const std::string rest = stream.finish();
  ASSERT_TRUE(util::is_valid_utf8(rest));
  so_far += rest;
  ASSERT_EQ(so_far, tok.decode(ids, skip_special)) << ::testing::PrintToString(ids);
}

struct Source {
  std::string path;
  std::vector<std::string> texts;  // encoded and mixed into the random sequences
};

class TokenizerStreamingProperty : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerStreamingProperty, RandomSequences) {
  const Tokenizer& tok = load(GetParam());
  std::mt19937 rng(20240611);
  const int vocab = tok.vocab_size();
  // Byte-fallback pieces and specials, the ids most likely to break a naive streamer.
  Ids bytes, specials;
  for (int id = 0; id < vocab; ++id) {
    const std::string& p = tok.piece(id);
    if (p.size() == 6 && p.starts_with("<0x")) bytes.push_back(id);
    if (tok.is_special(id) && specials.size() < 64) specials.push_back(id);
  }
  const std::vector<std::string> texts = {
      "naïve 日本 🐶 é", " leading", "  two", "Hello world", "👨‍👩‍👧 🇯🇵 ก",
      "\n\ttab",        "x"};
  for (int round = 0; round < 150; ++round) {
    Ids ids;
    const int length = 1 + static_cast<int>(rng() % 40);
    while (static_cast<int>(ids.size()) < length) {
      switch (rng() % 6) {
        case 0:
        case 1:
          ids.push_back(static_cast<std::int32_t>(rng() % static_cast<unsigned>(vocab)));
          break;
        case 2:
          if (!bytes.empty()) {
            // A run of raw bytes: often a valid multibyte character cut anywhere, sometimes junk.
            const std::string ch = (rng() % 3 == 0) ? "\xE6\x97" : "🐶é日";
            for (unsigned char c : ch) {
              ids.push_back(*tok.token_to_id([&] {
                char name[8];
                std::snprintf(name, sizeof(name), "<0x%02X>", c);
                return std::string(name);
              }()));
            }
          }
          break;
        case 3:
          if (!specials.empty()) ids.push_back(specials[rng() % specials.size()]);
          break;
        default: {
          const Ids t = tok.encode(texts[rng() % texts.size()], false);
          ids.insert(ids.end(), t.begin(), t.end());
        }
      }
    }
    check_stream(tok, ids, false);
    check_stream(tok, ids, true);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST_P(TokenizerStreamingProperty, LongTextIsLinear) {
  const Tokenizer& tok = load(GetParam());
  std::string text;
  for (int i = 0; i < 400; ++i) text += "Once upon a time, naïve Lily saw 日本 and a 🐶.\n";
  const Ids ids = tok.encode(text, false);
  ASSERT_GT(ids.size(), 5000u);
  const auto start = std::chrono::steady_clock::now();
  StreamingDetokenizer stream(tok);
  std::string out;
  for (const auto id : ids) out += stream.push(id);
  out += stream.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(out, tok.decode(ids));
  EXPECT_EQ(out, text.substr(0, out.size()));
  // Re-decoding everything per token would take far longer than this on any machine.
  EXPECT_LT(seconds, 2.0);
}

// With clean-up on, the stream must equal transformers' decode(ids, skip_special_tokens,
// clean_up_tokenization_spaces=True) and never emit what clean-up could still rewrite.
TEST(TokenizerStreamingCleanUp, Llama3RandomSequences) {
  const Tokenizer& tok = load("tokenizers/llama3");
  ASSERT_TRUE(tok.clean_up_tokenization_spaces());
  // Fragments that build (or nearly build) every clean-up pattern across token boundaries.
  const std::vector<std::string> fragments = {
      " .", " ,", " !", " ?",   " '",  "'",  " ' ",  " n't",    "n't",  " n",
      "n",  "'t", "'s", " 's",  " 'm", "m",  " 've", "ve",      "'v",   " 're",
      "re", "'r", " ",  "  ",   "   ", "do", " not", " do not", "word", " word",
      "x",  ".",  "\n", "日本", " 🐶",  "t",  "e",    "v",       "r",    "s"};
  std::vector<Ids> pieces;
  for (const auto& f : fragments) pieces.push_back(tok.encode(f, false));
  Ids specials;
  for (int id = 128000; id < 128010; ++id) specials.push_back(id);
  std::mt19937 rng(977);
  for (int round = 0; round < 400; ++round) {
    Ids ids;
    const int count = 1 + static_cast<int>(rng() % 25);
    for (int k = 0; k < count; ++k) {
      if (rng() % 10 == 0) {
        ids.push_back(specials[rng() % specials.size()]);
      } else {
        const Ids& p = pieces[rng() % pieces.size()];
        ids.insert(ids.end(), p.begin(), p.end());
      }
    }
    for (const bool skip : {false, true}) {
      const std::string expected = tok.decode(ids, skip, true);
      ASSERT_EQ(expected, Tokenizer::clean_up_tokenization(tok.decode(ids, skip)));
      StreamingDetokenizer stream(tok, skip, true);
      std::string so_far;
      for (std::size_t k = 0; k < ids.size(); ++k) {
        const std::string piece = stream.push(ids[k]);
        ASSERT_TRUE(util::is_valid_utf8(piece));
        so_far += piece;
        ASSERT_EQ(expected.compare(0, so_far.size(), so_far), 0)
            << "emitted text that clean-up later rewrote, after " << k + 1
            << " ids: " << ::testing::PrintToString(ids)
            << "\n stream: " << ::testing::PrintToString(so_far)
            << "\n final:  " << ::testing::PrintToString(expected);
      }
      so_far += stream.finish();
      ASSERT_EQ(so_far, expected) << ::testing::PrintToString(ids);
    }
  }
}

// Every sequence of three fragments from a set that spells each clean-up pattern piecewise.
TEST(TokenizerStreamingCleanUp, Llama3AllTriples) {
  const Tokenizer& tok = load("tokenizers/llama3");
  const std::vector<std::string> fragments = {" ", " n", "n",  "'", " '", "t", "s",   "m",   "ve",
                                              "v", "e",  "re", "r", ".",  "x", " ' ", " do", "not"};
  std::vector<Ids> pieces;
  for (const auto& f : fragments) pieces.push_back(tok.encode(f, false));
  for (const auto& a : pieces) {
    for (const auto& b : pieces) {
      for (const auto& c : pieces) {
        Ids ids = a;
        ids.insert(ids.end(), b.begin(), b.end());
        ids.insert(ids.end(), c.begin(), c.end());
        const std::string expected = tok.decode(ids, false, true);
        StreamingDetokenizer stream(tok, false, true);
        std::string so_far;
        for (const auto id : ids) {
          so_far += stream.push(id);
          ASSERT_EQ(expected.compare(0, so_far.size(), so_far), 0)
              << ::testing::PrintToString(tok.decode(ids)) << " streamed "
              << ::testing::PrintToString(so_far) << ", final "
              << ::testing::PrintToString(expected);
        }
        ASSERT_EQ(so_far + stream.finish(), expected) << ::testing::PrintToString(ids);
      }
    }
  }
}

TEST(TokenizerStreamingCleanUp, HoldsBackOnlyWhatCleanUpCouldChange) {
  const Tokenizer& tok = load("tokenizers/llama3");
  StreamingDetokenizer stream(tok, false, true);
  std::string out;
  for (const auto id : tok.encode("Hello world", false)) out += stream.push(id);
  EXPECT_EQ(out, "Hello world");  // nothing after the last space could start a rule
  for (const auto id : tok.encode(" it", false)) out += stream.push(id);
  EXPECT_EQ(out, "Hello world it");
  for (const auto id : tok.encode(" ", false)) out += stream.push(id);
  EXPECT_EQ(out, "Hello world it");  // the space may yet precede "."
  for (const auto id : tok.encode("'s done .", false)) out += stream.push(id);
  EXPECT_EQ(out + stream.finish(), "Hello world it's done.");
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, TokenizerStreamingProperty,
                         ::testing::Values("models/stories260K", "tokenizers/mistral",
                                           "tokenizers/llama3", "tokenizers/qwen3"),
                         [](const auto& info) {
                           return info.param.substr(info.param.find('/') + 1);
                         });

TEST(TokenizerStreaming, StoriesLeadingSpaceAndBytes) {
  const Tokenizer& tok = load("models/stories260K");
  // "▁" first: the decoder strips it, and the following "▁..." keeps its space.
  check_stream(tok, {410, 410, 444}, false);
  check_stream(tok, {1, 410, 243, 162, 147, 185, 322}, false);  // BOS, ▁, 🐶 bytes, text
  check_stream(tok, {243, 162}, false);                         // ends inside a character
  check_stream(tok, {45, 243, 162, 410}, false);                // invalid byte run mid-text
  StreamingDetokenizer stream(tok);
  EXPECT_EQ(stream.push(243), "");
  EXPECT_EQ(stream.push(162), "");
  EXPECT_EQ(stream.push(147), "");
  EXPECT_EQ(stream.push(185), "");
  EXPECT_EQ(stream.push(322), "🐶" + tok.token_bytes(322));
}

}  // namespace
}  // namespace lmserve::tokenizer
