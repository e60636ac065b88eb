// Unigram and WordPiece models and the WordPiece, BPEDecoder and CTC decoders on hand-made
// tokenizer.json files. Expected ids follow from HF's algorithms worked by hand: Unigram is
// the best-scoring segmentation (Viterbi; ties keep the first path found; unknown characters
// cost min score - 10 and fuse), WordPiece is greedy longest-match-first with "##".
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lmserve::tokenizer {
namespace {

using nlohmann::json;
using Ids = std::vector<std::int32_t>;

json tokenizer_json(json model, json decoder = nullptr, json pre_tokenizer = nullptr) {
  return {{"version", "1.0"},          {"added_tokens", json::array()},
          {"normalizer", nullptr},     {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor", nullptr}, {"decoder", std::move(decoder)},
          {"model", std::move(model)}};
}

Tokenizer load(const json& root) {
  static std::atomic<int> counter{0};
  const auto dir =
      std::filesystem::path(::testing::TempDir()) /
      ("lmserve_models_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << root.dump();
  return Tokenizer::load(dir);
}

json unigram(const std::vector<std::pair<std::string, double>>& pieces, json unk_id,
             bool byte_fallback = false) {
  json vocab = json::array();
  for (const auto& [piece, score] : pieces) vocab.push_back({piece, score});
  return {
      {"type", "Unigram"}, {"unk_id", unk_id}, {"vocab", vocab}, {"byte_fallback", byte_fallback}};
}

TEST(TokenizerUnigram, ViterbiPicksTheBestSegmentation) {
  // ids:                 0          1          2          3           4          5
  const Tokenizer tok = load(tokenizer_json(unigram({{"<unk>", 0.0},
                                                     {"a", -1.0},
                                                     {"b", -2.0},
                                                     {"ab", -2.5},
                                                     {"c", -3.0},
                                                     {"abc", -6.0},
                                                     {"bc", -2.0}},
                                                    0)));
  EXPECT_EQ(tok.encode("ab", false), (Ids{3}));      // ab -2.5 beats a+b -3
  EXPECT_EQ(tok.encode("abc", false), (Ids{1, 6}));  // a+bc -3 beats ab+c -5.5, abc -6
  EXPECT_EQ(tok.encode("cab", false), (Ids{4, 3}));
  EXPECT_EQ(tok.encode("xab", false), (Ids{0, 3}));    // unknown x costs -6 - 10
  EXPECT_EQ(tok.encode("xé🐶ab", false), (Ids{0, 3}));  // a run of unknowns fuses into one
  EXPECT_EQ(tok.encode("axb", false), (Ids{1, 0, 2}));
  EXPECT_EQ(tok.encode("<unk>x", false), (Ids{0}));  // literal unk text fuses with x
  EXPECT_EQ(tok.encode("", false), Ids{});
  EXPECT_EQ(tok.decode(Ids{1, 6}), "a bc");  // no decoder: pieces joined with spaces
  EXPECT_EQ(tok.token_to_id("bc"), 6);
}

TEST(TokenizerUnigram, TiesKeepTheFirstPathFound) {
  // a+b and ab both score -2: "ab" reaches the end first (from position 0), so it stays.
  const Tokenizer tok =
      load(tokenizer_json(unigram({{"<unk>", 0.0}, {"a", -1.0}, {"b", -1.0}, {"ab", -2.0}}, 0)));
  EXPECT_EQ(tok.encode("ab", false), (Ids{3}));
  EXPECT_EQ(tok.encode("abab", false), (Ids{3, 3}));
}

TEST(TokenizerUnigram, ByteFallbackSpellsUnknownRuns) {
  std::vector<std::pair<std::string, double>> pieces = {{"<unk>", 0.0}, {"a", -1.0}};
  for (const char* b : {"<0x78>", "<0x79>", "<0xC3>", "<0xA9>"}) pieces.emplace_back(b, -50.0);
  const Tokenizer tok = load(tokenizer_json(unigram(pieces, 0, true)));
  // Byte pieces are never matched as text, so x and y are unknown and fuse; the fused run
  // is spelled in bytes when every byte has a token.
  EXPECT_EQ(tok.encode("axy", false), (Ids{1, 2, 3}));
  EXPECT_EQ(tok.encode("éa", false), (Ids{4, 5, 1}));
  // z has no byte token: the whole fused run becomes unk.
  EXPECT_EQ(tok.encode("axza", false), (Ids{1, 0, 1}));
}

TEST(TokenizerUnigram, LongInputIsLinear) {
  const Tokenizer tok = load(tokenizer_json(
      unigram({{"<unk>", 0.0}, {"a", -1.0}, {"aa", -1.5}, {"aaa", -2.5}, {"b", -1.0}}, 0)));
  const Ids ids = tok.encode(std::string(300000, 'a'), false);
  // "aa" costs 0.75 a letter, "aaa" 0.83 and "a" 1: an even run is pairs throughout.
  EXPECT_EQ(ids, Ids(150000, 2));
  EXPECT_EQ(tok.encode(std::string(100000, 'z'), false), Ids{0});
}

TEST(TokenizerUnigram, MalformedModelsAreFileErrors) {
  EXPECT_THROW(load(tokenizer_json({{"type", "Unigram"}, {"vocab", json::object()}})), FileError);
  EXPECT_THROW(load(tokenizer_json(unigram({{"a", -1.0}}, 5))), FileError);
  json bad = unigram({{"a", -1.0}}, nullptr);
  bad["vocab"].push_back({"b"});
  EXPECT_THROW(load(tokenizer_json(bad)), FileError);
}

json wordpiece(int max_chars = 10) {
  return {{"type", "WordPiece"},
          {"unk_token", "[UNK]"},
          {"continuing_subword_prefix", "##"},
          {"max_input_chars_per_word", max_chars},
          {"vocab",
           {{"[UNK]", 0},
            {"un", 1},
            {"##aff", 2},
            {"##able", 3},
            {"a", 4},
            {"##ff", 5},
            {"##a", 6},
            {"aff", 7},
            {",", 8},
            {".", 9},
            {"##é", 10}}}};
}

TEST(TokenizerWordPiece, GreedyLongestMatchFirst) {
  const json bert_pre = {{"type", "BertPreTokenizer"}};
  const Tokenizer tok = load(tokenizer_json(wordpiece(), nullptr, bert_pre));
  EXPECT_EQ(tok.encode("unaffable", false), (Ids{1, 2, 3}));
  EXPECT_EQ(tok.encode("aff", false), (Ids{7}));  // the whole word beats a + ##ff
  EXPECT_EQ(tok.encode("affa", false), (Ids{7, 6}));
  EXPECT_EQ(tok.encode("affé", false), (Ids{7, 10}));  // multibyte continuation
  EXPECT_EQ(tok.encode("unx", false), (Ids{0}));       // any uncovered part: the word is unk
  EXPECT_EQ(tok.encode("unaffable, aff.", false), (Ids{1, 2, 3, 8, 7, 9}));
  EXPECT_EQ(tok.encode("unaffablea", false), (Ids{1, 2, 3, 6}));  // 10 characters: fine
  EXPECT_EQ(tok.encode("unaffableaa", false), (Ids{0}));          // 11 > max_input_chars
  const Tokenizer wide = load(tokenizer_json(wordpiece(1000000), nullptr, bert_pre));
  std::string long_word = "un";
  for (int i = 0; i < 100000; ++i) long_word += "a";
  EXPECT_EQ(wide.encode(long_word, false).size(), 100001u);  // un + ##a x 100000
}

TEST(TokenizerWordPiece, DecoderJoinsAndCleansUp) {
  const json decoder = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  const Tokenizer tok = load(tokenizer_json(wordpiece(), decoder, {{"type", "BertPreTokenizer"}}));
  const Ids ids = {1, 2, 3, 8, 7, 9};
  EXPECT_EQ(tok.decode(ids), "unaffable, aff.");
  StreamingDetokenizer stream(tok);
  std::string out;
  for (const auto id : ids) out += stream.push(id);
  EXPECT_EQ(out + stream.finish(), "unaffable, aff.");
  json no_cleanup = decoder;
  no_cleanup["cleanup"] = false;
  EXPECT_EQ(load(tokenizer_json(wordpiece(), no_cleanup)).decode(ids), "unaffable , aff .");
}

TEST(TokenizerDecoders, BpeDecoderAndCtc) {
  json bpe = {{"type", "BPE"},
              {"vocab", {{"hel", 0}, {"lo</w>", 1}, {"world</w>", 2}}},
              {"merges", json::array()}};
  const Tokenizer words = load(tokenizer_json(bpe, {{"type", "BPEDecoder"}, {"suffix", "</w>"}}));
  EXPECT_EQ(words.decode(Ids{0, 1, 2}), "hello world");
  EXPECT_EQ(words.decode(Ids{0, 1}), "hello");
  StreamingDetokenizer stream(words);
  std::string out;
  for (const auto id : {0, 1, 2}) out += stream.push(id);
  EXPECT_EQ(out + stream.finish(), "hello world");

  json chars = {{"type", "BPE"},
                {"vocab", {{"<pad>", 0}, {"h", 1}, {"e", 2}, {"l", 3}, {"o", 4}, {"|", 5}}},
                {"merges", json::array()}};
  const Tokenizer ctc = load(tokenizer_json(
      chars,
      {{"type", "CTC"}, {"pad_token", "<pad>"}, {"word_delimiter_token", "|"}, {"cleanup", true}}));
  // Repeats collapse (h h), a pad separates real double letters (l <pad> l).
  EXPECT_EQ(ctc.decode(Ids{1, 1, 2, 0, 3, 3, 0, 3, 4, 5, 1}), "hello h");
}

}  // namespace
}  // namespace lmserve::tokenizer
