// Mistral, Llama 3 and Qwen3 tokenizer.json files against ids and decodes from Hugging Face
// tokenizers (tokenizers/<name>/expected.jsonl and decode_cases.jsonl): every case must match.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "support/fixtures.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::tokenizer {
namespace {

using Ids = std::vector<std::int32_t>;

const Tokenizer& load(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    it = cache.emplace(name, Tokenizer::load(testing::fixture("tokenizers/" + name))).first;
  }
  return it->second;
}

std::vector<nlohmann::json> read_jsonl(const std::string& relative) {
  std::ifstream in(testing::fixture(relative), std::ios::binary);
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// Counts matches per field and reports up to a few mismatches in full.
struct Tally {
  std::map<std::string, std::pair<int, int>> fields;  // field -> (passed, total)
  int reported = 0;

  template <typename T>
  void check(const std::string& field, const T& actual, const T& expected,
             const std::string& what) {
    auto& [passed, total] = fields[field];
    ++total;
    if (actual == expected) {
      ++passed;
    } else if (reported++ < 8) {
      ADD_FAILURE() << field << " mismatch for " << what
                    << "\n  actual:   " << ::testing::PrintToString(actual)
                    << "\n  expected: " << ::testing::PrintToString(expected);
    }
  }
  void summarize(const std::string& name) {
    for (const auto& [field, counts] : fields) {
      std::printf("[%s] %-22s %d/%d\n", name.c_str(), field.c_str(), counts.first, counts.second);
      EXPECT_EQ(counts.first, counts.second) << name << " " << field;
    }
  }
};

// The fixtures' "decoded" fields come from transformers, which applies its clean-up step
// after the tokenizer's decoder when tokenizer_config.json asks for it (llama3).
std::string cleanup(const Tokenizer& tok, const std::string& text) {
  return tok.clean_up_tokenization_spaces() ? Tokenizer::clean_up_tokenization(text) : text;
}

class TokenizerHf : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerHf, ExpectedIdsAndDecodes) {
  const std::string name = GetParam();
  const Tokenizer& tok = load(name);
  const auto rows = read_jsonl("tokenizers/" + name + "/expected.jsonl");
  ASSERT_EQ(rows.size(), 523u);
  Tally tally;
  for (const auto& row : rows) {
    const std::string text = row["text"];
    const std::string what = row["case"].get<std::string>();
    const Ids ids = tok.encode(text);
    const Ids ids_no_special = tok.encode(text, false);
    tally.check("ids", ids, row["ids"].get<Ids>(), what);
    tally.check("ids_no_special", ids_no_special, row["ids_no_special"].get<Ids>(), what);
    const Ids expected_no_special = row["ids_no_special"];
    const Ids expected_ids = row["ids"];
    const std::string raw = tok.decode(expected_no_special, false);
    tally.check("decoded_raw", raw, row["decoded_raw"].get<std::string>(), what);
    tally.check("decoded", cleanup(tok, raw), row["decoded"].get<std::string>(), what);
    tally.check("decoded_skip_special", cleanup(tok, tok.decode(expected_ids, true)),
                row["decoded_skip_special"].get<std::string>(), what);
  }
  tally.summarize(name);
}

TEST_P(TokenizerHf, DecodeCases) {
  const std::string name = GetParam();
  const Tokenizer& tok = load(name);
  const auto rows = read_jsonl("tokenizers/" + name + "/decode_cases.jsonl");
  ASSERT_GT(rows.size(), 500u);
  Tally tally;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const Ids ids = row["ids"];
    const std::string what = row["kind"].get<std::string>() + " #" + std::to_string(i) + " " +
                             ::testing::PrintToString(ids);
    const std::string raw = tok.decode(ids, false);
    tally.check("decoded_raw", raw, row["decoded_raw"].get<std::string>(), what);
    tally.check("decoded", cleanup(tok, raw), row["decoded"].get<std::string>(), what);
    const std::string skipped = tok.decode(ids, true);
    tally.check("decoded_skip_special", cleanup(tok, skipped),
                row["decoded_skip_special"].get<std::string>(), what);

    StreamingDetokenizer stream(tok);
    std::string streamed;
    for (const auto id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    tally.check("streamed", streamed, row["decoded_raw"].get<std::string>(), what);

    // transformers' default decode (clean-up as the tokenizer's config says), streamed.
    tally.check("decode_with_cleanup", tok.decode(ids, false, tok.clean_up_tokenization_spaces()),
                row["decoded"].get<std::string>(), what);
    StreamingDetokenizer cleaning(tok, false, tok.clean_up_tokenization_spaces());
    std::string streamed_clean;
    for (const auto id : ids) streamed_clean += cleaning.push(id);
    streamed_clean += cleaning.finish();
    tally.check("streamed_cleanup", streamed_clean, row["decoded"].get<std::string>(), what);

    StreamingDetokenizer skipping(tok, true);
    std::string streamed_skip;
    for (const auto id : ids) streamed_skip += skipping.push(id);
    streamed_skip += skipping.finish();
    tally.check("streamed_skip_special", streamed_skip, skipped, what);
  }
  tally.summarize(name);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerHf, ::testing::Values("mistral", "llama3", "qwen3"));

TEST(TokenizerHfConfig, Metadata) {
  const Tokenizer& mistral = load("mistral");
  EXPECT_TRUE(mistral.adds_bos());
  EXPECT_EQ(mistral.bos_id(), 1);
  EXPECT_EQ(mistral.eos_id(), 2);
  EXPECT_FALSE(mistral.chat_template().has_value());
  EXPECT_EQ(mistral.vocab_size(), 32000);

  const Tokenizer& llama3 = load("llama3");
  EXPECT_FALSE(llama3.adds_bos());  // this file's post_processor is ByteLevel only
  EXPECT_EQ(llama3.bos_id(), 128000);
  EXPECT_EQ(llama3.eos_id(), 128001);
  EXPECT_EQ(llama3.token_to_id("<|eot_id|>"), 128009);
  EXPECT_TRUE(llama3.clean_up_tokenization_spaces());
  ASSERT_TRUE(llama3.chat_template().has_value());
  EXPECT_NE(llama3.chat_template()->find("start_header_id"), std::string::npos);
  EXPECT_EQ(llama3.vocab_size(), 128256);

  const Tokenizer& qwen3 = load("qwen3");
  EXPECT_FALSE(qwen3.adds_bos());
  EXPECT_FALSE(qwen3.bos_id().has_value());
  EXPECT_EQ(qwen3.bos_token(), "");
  EXPECT_EQ(qwen3.eos_token(), "<|im_end|>");
  EXPECT_EQ(qwen3.eos_id(), 151645);
  EXPECT_TRUE(qwen3.is_special(151644));
  EXPECT_FALSE(qwen3.is_special(*qwen3.token_to_id("<think>")));
  ASSERT_TRUE(qwen3.chat_template().has_value());
  EXPECT_NE(qwen3.chat_template()->find("<think>"), std::string::npos);
  EXPECT_EQ(qwen3.vocab_size(), 151669);
}

TEST(TokenizerHfConfig, ParseSpecialOff) {
  const Tokenizer& qwen3 = load("qwen3");
  const Ids parsed = qwen3.encode("<|im_start|>user", false, true);
  EXPECT_EQ(parsed.front(), 151644);
  const Ids literal = qwen3.encode("<|im_start|>user", false, false);
  EXPECT_EQ(std::count(literal.begin(), literal.end(), 151644), 0);
  EXPECT_EQ(qwen3.decode(literal), "<|im_start|>user");
  // Non-special added tokens are still recognised, as with HF's split_special_tokens.
  const Ids think = qwen3.encode("<think>", false, false);
  EXPECT_EQ(think, (Ids{*qwen3.token_to_id("<think>")}));
}

}  // namespace
}  // namespace lmserve::tokenizer
