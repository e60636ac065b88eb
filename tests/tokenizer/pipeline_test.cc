// The general tokenizer.json pipeline on small hand-written files whose expected ids follow
// from HF's documented semantics: split behaviours, Metaspace, Digits, normalizers, ByteLevel,
// added-token flags, BPE options, decoders, and clear errors for what is unsupported.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lmserve::tokenizer {
namespace {

using nlohmann::json;
using Ids = std::vector<std::int32_t>;

// A BPE model whose ids are the positions in `tokens`.
json bpe(const std::vector<std::string>& tokens, const std::vector<std::string>& merges) {
  json vocab = json::object();
  for (std::size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = static_cast<int>(i);
  return {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"unk_token", nullptr}};
}

json tokenizer_json(json model) {
  return {{"version", "1.0"},         {"added_tokens", json::array()}, {"normalizer", nullptr},
          {"pre_tokenizer", nullptr}, {"post_processor", nullptr},     {"decoder", nullptr},
          {"model", std::move(model)}};
}

Tokenizer load(const json& root, const json& config = json(), const std::string& jinja = "") {
  static std::atomic<int> counter{0};
  const auto dir = std::filesystem::path(::testing::TempDir()) /
                   ("lmserve_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << root.dump();
  if (!config.is_null()) std::ofstream(dir / "tokenizer_config.json") << config.dump();
  if (!jinja.empty()) std::ofstream(dir / "chat_template.jinja") << jinja;
  return Tokenizer::load(dir);
}

json split(const std::string& pattern, const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", pattern}}},
          {"behavior", behavior},
          {"invert", invert}};
}

// Vocab a=0 -=1 b=2 a-=3 -b=4 --=5; merges "a -" < "- b" < "- -": the merges that survive
// show where the pre-tokenizer cut.
Ids split_ids(const json& pre_tokenizer, const std::string& text) {
  json root = tokenizer_json(bpe({"a", "-", "b", "a-", "-b", "--"}, {"a -", "- b", "- -"}));
  root["pre_tokenizer"] = pre_tokenizer;
  return load(root).encode(text, false);
}

TEST(TokenizerPreTokenizer, SplitBehaviours) {
  EXPECT_EQ(split_ids(nullptr, "a-b"), (Ids{3, 2}));
  EXPECT_EQ(split_ids(split("-", "Isolated"), "a-b"), (Ids{0, 1, 2}));
  EXPECT_EQ(split_ids(split("-", "Removed"), "a-b"), (Ids{0, 2}));
  EXPECT_EQ(split_ids(split("-", "MergedWithPrevious"), "a-b"), (Ids{3, 2}));
  EXPECT_EQ(split_ids(split("-", "MergedWithNext"), "a-b"), (Ids{0, 4}));
  EXPECT_EQ(split_ids(split("-", "Contiguous"), "a--b"), (Ids{0, 5, 2}));
  EXPECT_EQ(split_ids(split("-", "Isolated"), "a--b"), (Ids{0, 1, 1, 2}));
  // invert: the pieces between dashes are the delimiters, and Removed drops them.
  EXPECT_EQ(split_ids(split("-", "Removed", true), "a-b"), (Ids{1}));
  json regex = split("", "Isolated");
  regex["pattern"] = {{"Regex", "-+"}};
  EXPECT_EQ(split_ids(regex, "a--b"), (Ids{0, 5, 2}));
  json seq = {{"type", "Sequence"},
              {"pretokenizers", {split("b", "Removed"), split("-", "MergedWithNext")}}};
  // "b" removed leaves "a-" and "-a"; the dash then joins what follows it, which in "a-" is
  // nothing, so it stays alone.
  EXPECT_EQ(split_ids(seq, "a-b-a"), (Ids{0, 1, 1, 0}));
}

TEST(TokenizerPreTokenizer, Metaspace) {
  // ▁=0 a=1 b=2 ▁a=3 ▁b=4 ab=5 ▁ab=6 <x>=7 (an added token)
  const std::string m = "\xE2\x96\x81";
  json root = tokenizer_json(bpe({m, "a", "b", m + "a", m + "b", "ab", m + "ab", "<x>"},
                                 {m + " a", m + " b", "a b", m + "a b"}));
  auto with = [&](const std::string& scheme, bool split_words) {
    json r = root;
    r["pre_tokenizer"] = {{"type", "Metaspace"},
                          {"replacement", m},
                          {"prepend_scheme", scheme},
                          {"split", split_words}};
    r["decoder"] = {{"type", "Metaspace"},
                    {"replacement", m},
                    {"prepend_scheme", scheme},
                    {"split", split_words}};
    r["added_tokens"] = json::array({{{"id", 7},
                                      {"content", "<x>"},
                                      {"special", true},
                                      {"normalized", false},
                                      {"lstrip", false},
                                      {"rstrip", false},
                                      {"single_word", false}}});
    return load(r);
  };
  EXPECT_EQ(with("always", true).encode("ab a", false), (Ids{6, 3}));
  EXPECT_EQ(with("always", false).encode("ab a", false), (Ids{6, 3}));
  EXPECT_EQ(with("never", true).encode("ab a", false), (Ids{5, 3}));
  EXPECT_EQ(with("first", true).encode("ab a", false), (Ids{6, 3}));
  // After an added token the text no longer starts at offset 0: "first" adds nothing there,
  // "always" does.
  EXPECT_EQ(with("first", true).encode("<x>a", false), (Ids{7, 1}));
  EXPECT_EQ(with("always", true).encode("<x>a", false), (Ids{7, 3}));
  // The decoder drops the first token's ▁ and turns the others into spaces.
  EXPECT_EQ(with("always", true).decode(Ids{6, 3}), "ab a");
  EXPECT_EQ(with("never", true).decode(Ids{6, 3}), " ab a");
}

TEST(TokenizerPreTokenizer, DigitsPunctuationWhitespace) {
  // 1=0 2=1 3=2 12=3 123=4 a=5 !=6 !!=7 " "=8 b=9 ab=10 a!=11
  json root = tokenizer_json(bpe({"1", "2", "3", "12", "123", "a", "!", "!!", " ", "b", "ab", "a!"},
                                 {"1 2", "12 3", "! !", "a b", "a !"}));
  auto ids = [&](const json& pre, const std::string& text) {
    json r = root;
    r["pre_tokenizer"] = pre;
    return load(r).encode(text, false);
  };
  EXPECT_EQ(ids({{"type", "Digits"}, {"individual_digits", false}}, "a123"), (Ids{5, 4}));
  EXPECT_EQ(ids({{"type", "Digits"}, {"individual_digits", true}}, "a123"), (Ids{5, 0, 1, 2}));
  EXPECT_EQ(ids({{"type", "Punctuation"}}, "a!!"), (Ids{5, 6, 6}));
  EXPECT_EQ(ids({{"type", "Punctuation"}, {"behavior", "Contiguous"}}, "a!!"), (Ids{5, 7}));
  EXPECT_EQ(ids({{"type", "WhitespaceSplit"}}, "a  b"), (Ids{5, 9}));
  EXPECT_EQ(ids({{"type", "Whitespace"}}, "ab a!! b"), (Ids{10, 5, 7, 9}));
}

TEST(TokenizerPreTokenizer, ByteLevelWithRegexAndPrefixSpace) {
  // Byte-level pieces: "Ġ" stands for a space. Ġ=0 h=1 i=2 Ġh=3 Ġhi=4 '=5 s=6 's=7 hi=8
  json root =
      tokenizer_json(bpe({"\xC4\xA0", "h", "i", "\xC4\xA0h", "\xC4\xA0hi", "'", "s", "'s", "hi"},
                         {"\xC4\xA0 h", "\xC4\xA0h i", "' s", "h i"}));
  root["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  root["decoder"] = {{"type", "ByteLevel"}};
  const Tokenizer with_prefix = load(root);
  EXPECT_EQ(with_prefix.encode("hi's hi", false), (Ids{4, 7, 4}));
  EXPECT_EQ(with_prefix.decode(Ids{4, 7, 4}), " hi's hi");
  root["pre_tokenizer"]["add_prefix_space"] = false;
  EXPECT_EQ(load(root).encode("hi's hi", false), (Ids{8, 7, 4}));
}

TEST(TokenizerNormalizer, Variants) {
  // Single characters only, so the ids spell out the normalized text.
  const std::vector<std::string> chars = {"a", "b", "e", "\xCC\x81", "\xC3\xA9", " ",
                                          "x", "1", "i", "\xCC\x87", "f"};
  json root = tokenizer_json(bpe(chars, {}));
  auto ids = [&](const json& normalizer, const std::string& text) {
    json r = root;
    r["normalizer"] = normalizer;
    return load(r).encode(text, false);
  };
  const std::string nfd_e = "e\xCC\x81";
  const std::string nfc_e = "\xC3\xA9";
  EXPECT_EQ(ids({{"type", "NFC"}}, nfd_e), (Ids{4}));
  EXPECT_EQ(ids({{"type", "NFD"}}, nfc_e), (Ids{2, 3}));
  EXPECT_EQ(ids({{"type", "NFKC"}}, "\xEF\xAC\x81"), (Ids{10, 8}));  // the "ﬁ" ligature
  EXPECT_EQ(
      ids({{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}},
          nfc_e),
      (Ids{2}));
  EXPECT_EQ(ids({{"type", "Lowercase"}}, "AB"), (Ids{0, 1}));
  EXPECT_EQ(ids({{"type", "Lowercase"}}, "\xC4\xB0"), (Ids{8, 9}));  // İ -> i + combining dot
  EXPECT_EQ(ids({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \ta "),
            (Ids{0, 5}));
  EXPECT_EQ(ids({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, " a "),
            (Ids{5, 0}));
  EXPECT_EQ(ids({{"type", "Strip"}}, " a "), (Ids{0}));
  EXPECT_EQ(
      ids({{"type", "Replace"}, {"pattern", {{"Regex", "[0-9]+"}}}, {"content", "x"}}, "a12b3"),
      (Ids{0, 6, 1, 6}));
  EXPECT_EQ(ids({{"type", "Prepend"}, {"prepend", "x"}}, "a"), (Ids{6, 0}));
  EXPECT_EQ(ids({{"type", "Prepend"}, {"prepend", "x"}}, ""), Ids{});
}

json added(int id, const std::string& content, bool special, json flags = json::object()) {
  json t = {{"id", id},        {"content", content}, {"special", special},  {"normalized", false},
            {"lstrip", false}, {"rstrip", false},    {"single_word", false}};
  for (const auto& [k, v] : flags.items()) t[k] = v;
  return t;
}

TEST(TokenizerAddedTokens, Flags) {
  // a=0 " "=1 b=2 <m>=3 B=4
  json root = tokenizer_json(bpe({"a", " ", "b", "<m>", "B"}, {}));
  auto ids = [&](const json& token, const std::string& text, json normalizer = nullptr) {
    json r = root;
    r["added_tokens"] = json::array({token});
    r["normalizer"] = normalizer;
    return load(r).encode(text, false);
  };
  EXPECT_EQ(ids(added(3, "<m>", true), "a <m> b"), (Ids{0, 1, 3, 1, 2}));
  EXPECT_EQ(ids(added(3, "<m>", true, {{"lstrip", true}}), "a  <m> b"), (Ids{0, 3, 1, 2}));
  EXPECT_EQ(ids(added(3, "<m>", true, {{"rstrip", true}}), "a <m>  b"), (Ids{0, 1, 3, 2}));
  // single_word: in "a<m>" a word character touches the token, so that one stays text
  // (whose characters the vocab lacks, so they vanish); the free-standing one counts.
  EXPECT_EQ(ids(added(3, "<m>", true, {{"single_word", true}}), "a<m> <m>"), (Ids{0, 1, 3}));
  EXPECT_EQ(ids(added(3, "<m>", true), "a<m> <m>"), (Ids{0, 3, 1, 3}));
  // normalized tokens are searched in the normalized text.
  EXPECT_EQ(ids(added(4, "B", false, {{"normalized", true}}), "AbB", {{"type", "Lowercase"}}),
            (Ids{0, 4, 4}));
}

TEST(TokenizerBpe, Options) {
  // unk handling: <unk>=0 a=1 b=2 ab=3
  json model = bpe({"<unk>", "a", "b", "ab"}, {"a b"});
  model["unk_token"] = "<unk>";
  EXPECT_EQ(load(tokenizer_json(model)).encode("axyab", false), (Ids{1, 0, 0, 3}));
  model["fuse_unk"] = true;
  EXPECT_EQ(load(tokenizer_json(model)).encode("axyab", false), (Ids{1, 0, 3}));

  // Merges as ["a", "b"] pairs, with a continuing-subword prefix and an end-of-word suffix.
  json pairs = bpe({"a", "##b", "ab", "c</w>", "##c</w>", "abc</w>"}, {});
  pairs["merges"] = json::array({json::array({"a", "##b"}), json::array({"ab", "##c</w>"})});
  pairs["continuing_subword_prefix"] = "##";
  pairs["end_of_word_suffix"] = "</w>";
  EXPECT_EQ(load(tokenizer_json(pairs)).encode("abc", false), (Ids{5}));
  // The last character carries the suffix: "##b</w>" is not in the vocab, so b vanishes.
  EXPECT_EQ(load(tokenizer_json(pairs)).encode("ab", false), (Ids{0}));

  // ignore_merges: a whole word in the vocab wins over what the merges would build.
  json im = bpe({"a", "b", "c", "bc", "abc", "ab"}, {"b c"});
  EXPECT_EQ(load(tokenizer_json(im)).encode("abc", false), (Ids{0, 3}));
  im["ignore_merges"] = true;
  EXPECT_EQ(load(tokenizer_json(im)).encode("abc", false), (Ids{4}));

  // Byte fallback for characters missing from the vocab.
  json bf = bpe({"<unk>", "<0xC3>", "<0xA9>", "a"}, {});
  bf["unk_token"] = "<unk>";
  bf["byte_fallback"] = true;
  EXPECT_EQ(load(tokenizer_json(bf)).encode("a\xC3\xA9z", false), (Ids{3, 1, 2, 0}));
}

TEST(TokenizerBpe, RankOrderAndLongWords) {
  // Lower rank first, leftmost first among equals: "aaa" -> aa + a.
  json root = tokenizer_json(bpe({"a", "aa", "aaaa"}, {"a a", "aa aa"}));
  const Tokenizer tok = load(root);
  EXPECT_EQ(tok.encode("aaa", false), (Ids{1, 0}));
  EXPECT_EQ(tok.encode("aaaaa", false), (Ids{2, 0}));
  const Ids many = tok.encode(std::string(10001, 'a'), false);
  ASSERT_EQ(many.size(), 2501u);
  EXPECT_EQ(many.back(), 0);
}

TEST(TokenizerPostProcessor, TemplateAndBosEosFromConfig) {
  json root = tokenizer_json(bpe({"<s>", "</s>", "a"}, {}));
  root["added_tokens"] = {added(0, "<s>", true), added(1, "</s>", true)};
  root["post_processor"] = {{"type", "TemplateProcessing"},
                            {"single", "<s> $A </s>"},
                            {"special_tokens",
                             {{"<s>", {{"id", "<s>"}, {"ids", {0}}, {"tokens", {"<s>"}}}},
                              {"</s>", {{"id", "</s>"}, {"ids", {1}}, {"tokens", {"</s>"}}}}}}};
  const Tokenizer plain = load(root, {{"bos_token", {{"content", "<s>"}}}, {"eos_token", "</s>"}});
  EXPECT_EQ(plain.encode("a"), (Ids{0, 2, 1}));
  EXPECT_TRUE(plain.adds_bos());
  EXPECT_EQ(plain.encode("a", false), (Ids{2}));
  // Llama-family classes rebuild the template from add_bos_token / add_eos_token.
  const Tokenizer llama = load(root, {{"tokenizer_class", "LlamaTokenizer"},
                                      {"bos_token", "<s>"},
                                      {"eos_token", "</s>"},
                                      {"add_bos_token", false},
                                      {"add_eos_token", true}});
  EXPECT_EQ(llama.encode("a"), (Ids{2, 1}));
  EXPECT_FALSE(llama.adds_bos());
}

TEST(TokenizerConfig, ChatTemplateSources) {
  json root = tokenizer_json(bpe({"a"}, {}));
  EXPECT_EQ(load(root, {{"chat_template", "{{ x }}"}}).chat_template(), "{{ x }}");
  const json list = {
      {"chat_template",
       {{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "D"}}}}};
  EXPECT_EQ(load(root, list).chat_template(), "D");
  EXPECT_FALSE(load(root).chat_template().has_value());
  // A chat_template.jinja next to the config wins over the config's own template.
  EXPECT_EQ(load(root, {{"chat_template", "{{ x }}"}}, "{{ jinja }}").chat_template(),
            "{{ jinja }}");
}

TEST(TokenizerDecoder, StripPerTokenAndReplace) {
  json root = tokenizer_json(bpe({"_a", "_b", "c"}, {}));
  root["decoder"] = {{"type", "Sequence"},
                     {"decoders",
                      {{{"type", "Strip"}, {"content", "_"}, {"start", 1}, {"stop", 0}},
                       {{"type", "Replace"}, {"pattern", {{"String", "c"}}}, {"content", "C"}}}}};
  const Tokenizer tok = load(root);
  // Without Fuse, Strip applies to every token.
  EXPECT_EQ(tok.decode(Ids{0, 1, 2}), "abC");
  StreamingDetokenizer stream(tok);
  std::string out;
  for (int id : {0, 1, 2}) out += stream.push(id);
  EXPECT_EQ(out + stream.finish(), "abC");
  // No decoder at all: HF joins tokens with spaces.
  root["decoder"] = nullptr;
  EXPECT_EQ(load(root).decode(Ids{0, 1, 2}), "_a _b c");
}

TEST(TokenizerErrors, UnsupportedPartsAreNamed) {
  json unknown = tokenizer_json({{"type", "Hypothetical"}, {"vocab", json::array()}});
  try {
    load(unknown);
    FAIL() << "an unknown model type loaded";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("Hypothetical"), std::string::npos);
  }
  json precompiled = tokenizer_json(bpe({"a"}, {}));
  precompiled["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", ""}};
  EXPECT_THROW(load(precompiled), FileError);
  json bad_merge = tokenizer_json(bpe({"a"}, {"a zz"}));
  EXPECT_THROW(load(bad_merge), FileError);
  EXPECT_THROW(Tokenizer::load("/nonexistent/dir"), FileError);
  const auto dir = std::filesystem::path(::testing::TempDir()) / "lmserve_tok_badjson";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << "{ not json";
  EXPECT_THROW(Tokenizer::load(dir), FileError);
}

// Found by fuzz_tokenizer_json: a number too large for a double escaped as nlohmann's
// out_of_range instead of a FileError.
TEST(TokenizerErrors, NumberOverflowIsAFileError) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "lmserve_tok_overflow";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 1E99999}}})";
  EXPECT_THROW(Tokenizer::load(dir), FileError);
}

// Tables are indexed by id: one huge id must be refused, not turned into a 64 GB allocation.
TEST(TokenizerErrors, HugeTokenIdsAreFileErrors) {
  json added = tokenizer_json(bpe({"a", "b"}, {}));
  added["added_tokens"] = {{{"id", 2000000000}, {"content", "<x>"}, {"special", true}}};
  EXPECT_THROW(load(added), FileError);
  added["added_tokens"][0]["id"] = INT32_MAX;  // id + 1 would overflow, too
  EXPECT_THROW(load(added), FileError);
  json vocab = tokenizer_json(bpe({"a", "b"}, {}));
  vocab["model"]["vocab"]["c"] = 2000000000;
  EXPECT_THROW(load(vocab), FileError);
  // Sparse but sane ids still load.
  added["added_tokens"][0]["id"] = 300000;
  const Tokenizer tok = load(added);
  EXPECT_EQ(tok.encode("a<x>b", false), (Ids{0, 300000, 1}));
}

TEST(TokenizerRegex, OnigurumaWhitespaceAndWordClasses) {
  using detail::Regex;
  auto count = [](const std::string& pattern, const std::string& text) {
    return Regex(pattern).find_all(text).size();
  };
  // White_Space: NEL, NBSP, ideographic space yes; U+180E, ZWSP, BOM no.
  EXPECT_EQ(count(R"(\s)", "\xC2\x85\xC2\xA0\xE3\x80\x80"), 3u);
  EXPECT_EQ(count(R"(\s)", "\xE1\xA0\x8E\xE2\x80\x8B\xEF\xBB\xBF"), 0u);
  EXPECT_EQ(count(R"([^\s])", "\xE1\xA0\x8E"), 1u);
  EXPECT_EQ(count(R"(\S+)", "a\xE1\xA0\x8E"), 1u);
  // \w includes combining marks, as Oniguruma's.
  EXPECT_EQ(count(R"(\w+)", "e\xCC\x81"), 1u);
  EXPECT_EQ(count(R"((?i:'s))", "'S 's"), 2u);
  EXPECT_EQ(count(R"(\p{N})", "\xC2\xB2\xC2\xBD\xE2\x85\xAB\xE2\x91\xA0"), 4u);
  // Empty matches advance by one character, never splitting a multibyte one.
  EXPECT_EQ(count("x*", "\xC3\xA9\xC3\xA9"), 3u);
  EXPECT_EQ(count(R"(\u00e9)", "\xC3\xA9"), 1u);  // Oniguruma's \uHHHH escape
  EXPECT_THROW(Regex("(unclosed"), FileError);
}

}  // namespace
}  // namespace lmserve::tokenizer
