// Hostile inputs for every fixture tokenizer: 1 MB of random text, 100k spaces, 100k of one
// letter, 50k copies of a special token's text, invalid UTF-8 and the empty string must
// encode correctly in bounded time. The time bounds are generous guards against quadratic
// paths (a 1 MB "word" done in O(n^2) takes minutes), not benchmarks.
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
// The bound catches superlinear blow-ups, not slowness: the ASan + UBSan build (build-asan,
// where GCC defines __SANITIZE_ADDRESS__) runs this code ~5x slower.
#ifdef __SANITIZE_ADDRESS__
constexpr double kBoundSeconds = 20.0;
#else
constexpr double kBoundSeconds = 5.0;
#endif

const Tokenizer& load(const std::string& relative) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(relative);
  if (it == cache.end())
    it = cache.emplace(relative, Tokenizer::load(testing::fixture(relative))).first;
  return it->second;
}

template <typename F>
double seconds_of(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Random text from pieces that every fixture tokenizer round-trips exactly: no '<' (no
// special-token text), and only NFC-stable characters (qwen3 normalizes to NFC).
std::string random_text(std::size_t bytes, unsigned seed) {
  static const std::vector<std::string> kPieces = {
      "a",    "b",      "e",      "t",      "Q",   "Z",  "0",
      "7",    " ",      " ",      " ",      "  ",  "\n", "\t",
      "\r\n", ".",      ",",      "'s",     "'LL", "!?", "(",
      "}",    "=",      "_",      "é",      "ß",   "日", "本",
      "語",   "한",     "ก",      "ж",      "λ",   "🐶",  "👨‍👩‍👧",
      "🇯🇵",   "\u00A0", "\u2028", "\u3000", "½",   "²",  "٣",
      "\x01", "\x7F"};
  std::mt19937 rng(seed);
  std::string out;
  out.reserve(bytes + 16);
  while (out.size() < bytes) {
    // Word-like runs of one piece make long pre-tokens as well as short ones.
    const std::string& piece = kPieces[rng() % kPieces.size()];
    const unsigned repeat = rng() % 8 == 0 ? 1 + rng() % 40 : 1;
    for (unsigned k = 0; k < repeat; ++k) out += piece;
  }
  return out;
}

// The first special added token with visible text (e.g. "<|im_start|>", "<s>").
std::pair<std::string, std::int32_t> a_special_token(const Tokenizer& tok) {
  for (std::int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (tok.is_special(id) && tok.piece(id).size() >= 3) return {tok.piece(id), id};
  }
  return {"", -1};
}

class TokenizerRobustness : public ::testing::TestWithParam<std::string> {
 protected:
  const Tokenizer& tok() const { return load(GetParam()); }

  // Encodes within the time bound and checks that decoding gives the text back.
  Ids encode_round_trip(const std::string& text, const std::string& what) {
    Ids ids;
    const double s = seconds_of([&] { ids = tok().encode(text, false); });
    EXPECT_LT(s, kBoundSeconds) << what << " (" << text.size() << " bytes) took " << s << " s";
    std::string decoded;
    const double d = seconds_of([&] { decoded = tok().decode(ids); });
    EXPECT_LT(d, kBoundSeconds) << "decoding " << what << " took " << d << " s";
    EXPECT_TRUE(decoded == text) << what << ": decode(encode(text)) differs, " << decoded.size()
                                 << " vs " << text.size() << " bytes";
    return ids;
  }
};

TEST_P(TokenizerRobustness, OneMegabyteOfRandomText) {
  const std::string text = random_text(1 << 20, 7);
  const Ids ids = encode_round_trip(text, "1 MB random text");
  EXPECT_GT(ids.size(), text.size() / 16);
}

TEST_P(TokenizerRobustness, HundredThousandSpaces) {
  const Ids ids = encode_round_trip(std::string(100000, ' '), "100k spaces");
  EXPECT_FALSE(ids.empty());
  // The same run followed by a word and preceded by one.
  encode_round_trip("x" + std::string(100000, ' ') + "word", "100k spaces between words");
}

TEST_P(TokenizerRobustness, HundredThousandOfOneLetter) {
  const Ids ids = encode_round_trip(std::string(100000, 'a'), "100k 'a'");
  // Merging must actually happen: far fewer tokens than letters (stories260K's 512-piece
  // vocabulary has no "aa").
  if (tok().vocab_size() > 1000) {
    EXPECT_LT(ids.size(), 100000u / 2);
  }
  encode_round_trip(std::string(30000, 'x') + " " + std::string(30000, '7'), "long x and digits");
  std::string emoji;
  for (int i = 0; i < 20000; ++i) emoji += "🐶";
  encode_round_trip(emoji, "20k emoji");
}

TEST_P(TokenizerRobustness, FiftyThousandSpecialTokens) {
  const auto [text, id] = a_special_token(tok());
  ASSERT_GE(id, 0) << "fixture without special tokens";
  std::string repeated;
  for (int i = 0; i < 50000; ++i) repeated += text;
  Ids ids;
  double s = seconds_of([&] { ids = tok().encode(repeated, false); });
  EXPECT_LT(s, kBoundSeconds) << "50k x " << text << " took " << s << " s";
  EXPECT_EQ(ids, Ids(50000, id));
  EXPECT_EQ(tok().decode(ids), repeated);

  // As plain text (parse_special off), the same string is one long stretch for the model.
  s = seconds_of([&] { ids = tok().encode(repeated, false, false); });
  EXPECT_LT(s, kBoundSeconds) << "50k x " << text << " as text took " << s << " s";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), id), 0);
  EXPECT_EQ(tok().decode(ids), repeated);

  // Almost-matches: every copy is cut one byte short, so the matcher starts over and over.
  std::string partial;
  const std::string cut = text.substr(0, text.size() - 1);
  for (int i = 0; i < 50000; ++i) partial += cut;
  s = seconds_of([&] { ids = tok().encode(partial, false); });
  EXPECT_LT(s, kBoundSeconds) << "50k x " << cut << " took " << s << " s";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), id), 0);
}

TEST_P(TokenizerRobustness, InvalidUtf8IsReplaced) {
  std::mt19937 rng(11);
  std::string junk;
  for (int i = 0; i < 1 << 20; ++i) junk.push_back(static_cast<char>(rng() & 0xFF));
  junk += "\xE6\x97";  // a character cut short at the very end
  ASSERT_FALSE(util::is_valid_utf8(junk));
  Ids ids;
  const double s = seconds_of([&] { ids = tok().encode(junk, false); });
  EXPECT_LT(s, kBoundSeconds) << "1 MB of random bytes took " << s << " s";
  // Invalid sequences become U+FFFD before anything else runs.
  EXPECT_EQ(ids, tok().encode(util::sanitize_utf8(junk), false));
  const std::string decoded = tok().decode(ids);
  EXPECT_TRUE(util::is_valid_utf8(decoded));

  EXPECT_EQ(tok().encode("a\xFF"
                         "b",
                         false),
            tok().encode("a\xEF\xBF\xBD"
                         "b",
                         false));
  EXPECT_EQ(tok().encode("\xC0\xAF", false), tok().encode("\xEF\xBF\xBD\xEF\xBF\xBD", false));
}

TEST_P(TokenizerRobustness, EmptyString) {
  EXPECT_TRUE(tok().encode("", false).empty());
  const Ids with_special = tok().encode("", true);
  // Only the template's own ids (BOS for the SentencePiece-style files).
  if (tok().adds_bos()) {
    EXPECT_EQ(with_special, Ids{*tok().bos_id()});
  } else {
    EXPECT_TRUE(with_special.empty());
  }
  EXPECT_EQ(tok().decode(Ids{}), "");
}

TEST_P(TokenizerRobustness, WordCacheStaysCorrectUnderChurn) {
  // More distinct words than any sensible cache holds, then the first ones again: results
  // must not depend on what is cached.
  std::string first;
  for (int i = 0; i < 200; ++i) first += " w" + std::to_string(i * 7919) + "x";
  const Ids before = tok().encode(first, false);
  std::string churn;
  for (int i = 0; i < 300000; ++i) churn += " q" + std::to_string(i) + "z";
  EXPECT_LT(seconds_of([&] { tok().encode(churn, false); }), kBoundSeconds);
  EXPECT_EQ(tok().encode(first, false), before);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerRobustness,
                         ::testing::Values("models/stories260K", "tokenizers/mistral",
                                           "tokenizers/llama3", "tokenizers/qwen3"),
                         [](const auto& info) {
                           return info.param.substr(info.param.find('/') + 1);
                         });

}  // namespace
}  // namespace lmserve::tokenizer
