// Tokenizers read from GGUF vocabularies (tokenizer.ggml.*) against llama.cpp's test vectors
// (vocab/ggml-vocab-*.gguf + .inp/.out, produced by Hugging Face tokenizers), stories260K.gguf
// against its tokenizer.json, and hostile metadata that must be refused with a FileError.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "formats/checkpoint.h"
#include "support/fixtures.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lmserve::tokenizer {
namespace {

using Ids = std::vector<std::int32_t>;

const Tokenizer& vocab(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const auto path = testing::fixture("vocab/ggml-vocab-" + name + ".gguf");
    it = cache.emplace(name, Tokenizer::load(path)).first;
  }
  return it->second;
}

struct Case {
  std::string text;
  Ids ids;
};

// The .inp/.out pair as llama.cpp's test-tokenizer-0 reads it (see vocab/README.md).
std::vector<Case> cases(const std::string& name) {
  const std::string base = "vocab/ggml-vocab-" + name + ".gguf";
  const std::string inp = testing::read_file(testing::fixture(base + ".inp"));
  const std::string out = testing::read_file(testing::fixture(base + ".out"));
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<Case> result;
  for (std::size_t pos = 0; pos < inp.size();) {
    const std::size_t end = inp.find(separator, pos);
    if (end == std::string::npos) {
      ADD_FAILURE() << base << ".inp does not end with the separator";
      break;
    }
    result.push_back({inp.substr(pos, end - pos), {}});
    pos = end + separator.size();
  }
  std::istringstream lines(out);
  std::string line;
  std::size_t index = 0;
  while (std::getline(lines, line)) {
    if (index >= result.size()) {
      ADD_FAILURE() << base << ".out has more lines than .inp has cases";
      break;
    }
    std::istringstream numbers(line);
    for (std::int32_t id; numbers >> id;) result[index].ids.push_back(id);
    ++index;
  }
  EXPECT_EQ(index, result.size()) << base << ": .out lines vs .inp cases";
  return result;
}

class GgufVocabFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufVocabFixture, EncodesEveryCaseLikeLlamaCppAndHf) {
  const std::string name = GetParam();
  const Tokenizer& tok = vocab(name);
  const auto all = cases(name);
  ASSERT_EQ(all.size(), 46u);
  int passed = 0;
  for (const Case& c : all) {
    const Ids actual = tok.encode(c.text, /*add_special_tokens=*/false, /*parse_special=*/false);
    if (actual == c.ids) {
      ++passed;
    } else {
      ADD_FAILURE() << name << ": " << ::testing::PrintToString(c.text)
                    << "\n  actual:   " << ::testing::PrintToString(actual)
                    << "\n  expected: " << ::testing::PrintToString(c.ids);
    }
  }
  std::printf("[gguf %s] %d/%zu\n", name.c_str(), passed, all.size());
  EXPECT_EQ(passed, static_cast<int>(all.size()));
}

INSTANTIATE_TEST_SUITE_P(Families, GgufVocabFixture,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2",
                                           "deepseek-llm", "deepseek-coder", "falcon", "mpt",
                                           "starcoder", "refact", "bert-bge"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) c = (c == '-') ? '_' : c;
                           return s;
                         });

// Byte-level BPE and SentencePiece decodes give back the text exactly (no clean-up applied).
TEST(GgufVocab, DecodeRoundTripsTheTestStrings) {
  for (const std::string name : {"llama-spm", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm",
                                 "deepseek-coder", "falcon", "mpt", "starcoder", "refact"}) {
    const Tokenizer& tok = vocab(name);
    for (const Case& c : cases(name)) {
      EXPECT_EQ(tok.decode(c.ids), c.text) << name;
      std::string streamed;
      StreamingDetokenizer stream(tok);
      for (std::int32_t id : c.ids) streamed += stream.push(id);
      streamed += stream.finish();
      EXPECT_EQ(streamed, c.text) << name << " (streaming)";
    }
  }
}

TEST(GgufVocab, SpecialIdsFlagsAndTemplates) {
  const Tokenizer& llama3 = vocab("llama-bpe");
  EXPECT_EQ(llama3.vocab_size(), 128256);
  EXPECT_EQ(llama3.bos_id(), 128000);
  EXPECT_EQ(llama3.eos_id(), 128001);
  EXPECT_EQ(llama3.bos_token(), "<|begin_of_text|>");
  EXPECT_TRUE(llama3.adds_bos());
  EXPECT_TRUE(llama3.clean_up_tokenization_spaces());
  ASSERT_TRUE(llama3.chat_template().has_value());
  EXPECT_NE(llama3.chat_template()->find("<|start_header_id|>"), std::string::npos);
  EXPECT_EQ(llama3.encode("Hello"), (Ids{128000, 9906}));
  EXPECT_EQ(llama3.encode("<|begin_of_text|>Hello<|eot_id|>", false, true),
            (Ids{128000, 9906, 128009}));
  EXPECT_TRUE(llama3.is_special(128009));
  EXPECT_FALSE(llama3.is_special(9906));
  EXPECT_EQ(llama3.decode(Ids{128000, 9906, 128009}, true), "Hello");
  EXPECT_EQ(llama3.decode(Ids{128000, 9906}), "<|begin_of_text|>Hello");

  const Tokenizer& qwen = vocab("qwen2");
  EXPECT_FALSE(qwen.adds_bos());
  EXPECT_EQ(qwen.eos_id(), 151645);
  EXPECT_EQ(qwen.eos_token(), "<|im_end|>");
  EXPECT_FALSE(qwen.clean_up_tokenization_spaces());
  EXPECT_EQ(qwen.encode("<|im_start|>user\nhi<|im_end|>"), (Ids{151644, 872, 198, 6023, 151645}));
  // Control tokens are plain text without parse_special; user-defined ones always match.
  const Ids plain = qwen.encode("<|im_start|>", true, false);
  EXPECT_TRUE(std::find(plain.begin(), plain.end(), 151644) == plain.end());
  EXPECT_EQ(qwen.encode("<think>\nok</think>", true, false), (Ids{151667, 198, 562, 151668}));
  EXPECT_EQ(qwen.token_to_id("<think>"), 151667);
  EXPECT_EQ(qwen.token_to_id("Hello"), 9707);
  EXPECT_TRUE(qwen.is_special(151700));  // [PAD151700]: unused

  const Tokenizer& spm = vocab("llama-spm");
  EXPECT_EQ(spm.bos_id(), 1);
  EXPECT_EQ(spm.eos_id(), 2);
  EXPECT_TRUE(spm.adds_bos());
  EXPECT_FALSE(spm.clean_up_tokenization_spaces());
  EXPECT_EQ(spm.encode(""), Ids{1});
  EXPECT_EQ(spm.encode("Hello"), (Ids{1, 15043}));
  // Text after a special token gets its own space prefix, as llama.cpp and HF (legacy) do.
  EXPECT_EQ(spm.encode("<s>Hello", true, true), (Ids{1, 1, 15043}));
  EXPECT_EQ(spm.piece(13), "<0x0A>");
  EXPECT_EQ(spm.token_bytes(13), "\n");
  EXPECT_EQ(spm.decode(Ids{1, 15043, 2}, true), "Hello");

  // End of generation: EOS plus llama.cpp's end-of-turn tokens.
  EXPECT_EQ(llama3.end_of_generation_ids(), (Ids{128001, 128009}));
  EXPECT_EQ(qwen.end_of_generation_ids(), (Ids{151643, 151645}));
  EXPECT_EQ(vocab("phi-3").end_of_generation_ids(), (Ids{2, 32000, 32007}));
  EXPECT_EQ(vocab("deepseek-llm").end_of_generation_ids(), Ids{100001});
  EXPECT_EQ(spm.end_of_generation_ids(), Ids{2});

  const Tokenizer& bert = vocab("bert-bge");
  EXPECT_EQ(bert.encode("Hello world"), (Ids{101, 7592, 2088, 102}));  // [CLS] ... [SEP]
  EXPECT_EQ(bert.encode("[CLS]hello", false, true), (Ids{101, 7592}));
  // BERT's spelling is restored: "##" continuations, WordPiece decoding with clean-up.
  EXPECT_EQ(bert.decode(Ids{101, 7592, 1010, 2088, 999, 102}, true), "hello, world!");
  EXPECT_EQ(bert.decode(Ids{101, 7592, 102}), "[CLS] hello [SEP]");
  EXPECT_EQ(bert.piece(7592), "hello");
  EXPECT_EQ(bert.token_to_id("hello"), 7592);
  EXPECT_EQ(bert.token_to_id("##s"), 2015);
  EXPECT_EQ(bert.token_to_id("s"), 1055);
  EXPECT_TRUE(bert.clean_up_tokenization_spaces());

  const Tokenizer& gpt2 = vocab("gpt-2");
  EXPECT_FALSE(gpt2.adds_bos());
  EXPECT_EQ(gpt2.eos_id(), 50256);
  EXPECT_FALSE(gpt2.chat_template().has_value());
}

// phi-3's special tokens swallow the whitespace after them, as llama.cpp sets by model name.
TEST(GgufVocab, Phi3SpecialTokensStripTheFollowingSpace) {
  const Tokenizer& phi3 = vocab("phi-3");
  EXPECT_EQ(phi3.encode("<|user|>\nHello<|end|>", false, true),
            phi3.encode("<|user|>Hello<|end|>", false, true));
  EXPECT_EQ(phi3.eos_id(), 32000);
}

nlohmann::json stories_cases() {
  return testing::read_json(testing::fixture("models/stories260K/reference_greedy.json"))["cases"];
}

TEST(GgufVocab, Stories260kEncodesPromptsLikeLlama2c) {
  const Tokenizer tok = Tokenizer::load(testing::fixture("models/stories260K/stories260K.gguf"));
  int checked = 0;
  for (const auto& c : stories_cases()) {
    const std::string prompt = c["prompt"];
    EXPECT_EQ(tok.encode(prompt), c["prompt_ids"].get<Ids>()) << "prompt: " << prompt;
    ++checked;
  }
  EXPECT_EQ(checked, 18);
}

// The server opens its checkpoint once and hands it to the tokenizer and the model: both forms
// (the mapped GGUF, the HF directory) give the tokenizer loaded from the path.
TEST(GgufVocab, Stories260kFromAnOpenCheckpoint) {
  for (const char* name : {"models/stories260K/stories260K.gguf", "models/stories260K"}) {
    SCOPED_TRACE(name);
    const auto checkpoint = formats::Checkpoint::open(testing::fixture(name));
    EXPECT_EQ(checkpoint.gguf() != nullptr, std::string_view(name).ends_with(".gguf"));
    const Tokenizer tok = Tokenizer::load(checkpoint);
    for (const auto& c : stories_cases()) {
      EXPECT_EQ(tok.encode(c["prompt"].get<std::string>()), c["prompt_ids"].get<Ids>());
    }
  }
}

TEST(GgufVocab, Stories260kMatchesItsTokenizerJson) {
  const Tokenizer gguf = Tokenizer::load(testing::fixture("models/stories260K/stories260K.gguf"));
  const Tokenizer json = Tokenizer::load(testing::fixture("models/stories260K"));
  ASSERT_EQ(gguf.vocab_size(), json.vocab_size());
  EXPECT_EQ(gguf.bos_id(), json.bos_id());
  EXPECT_EQ(gguf.eos_id(), json.eos_id());
  EXPECT_EQ(gguf.bos_token(), json.bos_token());
  EXPECT_EQ(gguf.eos_token(), json.eos_token());
  EXPECT_EQ(gguf.adds_bos(), json.adds_bos());
  for (std::int32_t id = 0; id < gguf.vocab_size(); ++id) {
    EXPECT_EQ(gguf.piece(id), json.piece(id)) << id;
    EXPECT_EQ(gguf.token_bytes(id), json.token_bytes(id)) << id;
    EXPECT_EQ(gguf.is_special(id), json.is_special(id)) << id;
  }
  for (const auto& c : stories_cases()) {
    std::vector<Ids> sequences = {c["output_ids"].get<Ids>()};
    Ids whole = c["prompt_ids"];
    whole.insert(whole.end(), sequences[0].begin(), sequences[0].end());
    sequences.push_back(whole);
    if (c.contains("output_ids_ignoring_bos_stop")) {
      sequences.push_back(c["output_ids_ignoring_bos_stop"].get<Ids>());
    }
    for (const Ids& ids : sequences) {
      for (bool skip : {false, true}) {
        EXPECT_EQ(gguf.decode(ids, skip), json.decode(ids, skip)) << "prompt: " << c["prompt"];
      }
    }
    EXPECT_EQ(gguf.decode(c["output_ids"].get<Ids>(), true),
              c["output_text_hf"].get<std::string>());
    const std::string text = c["prompt"];
    EXPECT_EQ(gguf.encode(text, false, false), json.encode(text, false, false));
  }
}

// --- hostile metadata -------------------------------------------------------------------

// A minimal GGUF v3 writer for metadata-only files.
class GgufWriter {
 public:
  using Value =
      std::variant<std::string, std::uint32_t, std::int32_t, bool, std::vector<std::string>,
                   std::vector<std::int32_t>, std::vector<float>>;
  void set(const std::string& key, Value value) {
    for (auto& [k, v] : kvs_) {
      if (k == key) {
        v = std::move(value);
        return;
      }
    }
    kvs_.emplace_back(key, std::move(value));
  }
  void erase(const std::string& key) {
    std::erase_if(kvs_, [&](const auto& kv) { return kv.first == key; });
  }
  std::filesystem::path write(const std::string& name) const {
    const auto path = std::filesystem::path(::testing::TempDir()) / (name + ".gguf");
    std::string out = "GGUF";
    put<std::uint32_t>(out, 3);
    put<std::uint64_t>(out, 0);
    put<std::uint64_t>(out, kvs_.size());
    for (const auto& [key, value] : kvs_) {
      put_string(out, key);
      std::visit([&](const auto& v) { put_value(out, v); }, value);
    }
    std::ofstream(path, std::ios::binary) << out;
    return path;
  }

 private:
  template <typename T>
  static void put(std::string& out, T v) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &v, sizeof(T));
    out.append(bytes, sizeof(T));
  }
  static void put_string(std::string& out, const std::string& s) {
    put<std::uint64_t>(out, s.size());
    out += s;
  }
  static void put_value(std::string& out, const std::string& v) {
    put<std::uint32_t>(out, 8);
    put_string(out, v);
  }
  static void put_value(std::string& out, std::uint32_t v) {
    put<std::uint32_t>(out, 4);
    put(out, v);
  }
  static void put_value(std::string& out, std::int32_t v) {
    put<std::uint32_t>(out, 5);
    put(out, v);
  }
  static void put_value(std::string& out, bool v) {
    put<std::uint32_t>(out, 7);
    put<std::uint8_t>(out, v ? 1 : 0);
  }
  static void put_value(std::string& out, const std::vector<std::string>& v) {
    put<std::uint32_t>(out, 9);
    put<std::uint32_t>(out, 8);
    put<std::uint64_t>(out, v.size());
    for (const auto& s : v) put_string(out, s);
  }
  static void put_value(std::string& out, const std::vector<std::int32_t>& v) {
    put<std::uint32_t>(out, 9);
    put<std::uint32_t>(out, 5);
    put<std::uint64_t>(out, v.size());
    for (auto x : v) put(out, x);
  }
  static void put_value(std::string& out, const std::vector<float>& v) {
    put<std::uint32_t>(out, 9);
    put<std::uint32_t>(out, 6);
    put<std::uint64_t>(out, v.size());
    for (auto x : v) put(out, x);
  }
  std::vector<std::pair<std::string, Value>> kvs_;
};

// A tiny byte-level BPE vocabulary: the bytes "a", "b", "Ġ" and merges to "ab", "Ġab".
GgufWriter tiny_bpe() {
  GgufWriter w;
  w.set("general.architecture", std::string("gpt2"));
  w.set("tokenizer.ggml.model", std::string("gpt2"));
  w.set("tokenizer.ggml.pre", std::string("gpt-2"));
  w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b", "\xC4\xA0", "ab",
                                                          "\xC4\xA0"
                                                          "ab",
                                                          "<|end|>"});
  w.set("tokenizer.ggml.token_type", std::vector<std::int32_t>{1, 1, 1, 1, 1, 3});
  w.set("tokenizer.ggml.merges", std::vector<std::string>{"a b", "\xC4\xA0 ab"});
  w.set("tokenizer.ggml.eos_token_id", std::uint32_t{5});
  return w;
}

GgufWriter tiny_spm() {
  GgufWriter w;
  w.set("tokenizer.ggml.model", std::string("llama"));
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    tokens.emplace_back(name);
  }
  for (const char* piece : {"\xE2\x96\x81", "a", "b", "ab",
                            "\xE2\x96\x81"
                            "a",
                            "ba"}) {
    tokens.emplace_back(piece);
  }
  std::vector<std::int32_t> types(tokens.size(), 1);
  types[0] = 2;
  types[1] = types[2] = 3;
  for (int b = 0; b < 256; ++b) types[static_cast<std::size_t>(3 + b)] = 6;
  std::vector<float> scores(tokens.size(), 0.0f);
  // "▁a" outranks "ab" and "ba" outranks "ab": "▁aba" -> "▁a" "ba".
  scores[259 + 3] = -3.0f;  // ab
  scores[259 + 4] = -1.0f;  // ▁a
  scores[259 + 5] = -2.0f;  // ba
  w.set("tokenizer.ggml.tokens", tokens);
  w.set("tokenizer.ggml.token_type", types);
  w.set("tokenizer.ggml.scores", scores);
  return w;
}

TEST(GgufVocab, TinySyntheticVocabularies) {
  const Tokenizer bpe = Tokenizer::load(tiny_bpe().write("tiny_bpe"));
  EXPECT_EQ(bpe.encode("ab ab"), (Ids{3, 4}));
  EXPECT_EQ(bpe.encode("ab<|end|>", true, true), (Ids{3, 5}));
  EXPECT_EQ(bpe.decode(Ids{3, 4}), "ab ab");
  EXPECT_FALSE(bpe.adds_bos());
  EXPECT_EQ(bpe.eos_id(), 5);

  const Tokenizer spm = Tokenizer::load(tiny_spm().write("tiny_spm"));
  const std::int32_t first = 259;
  EXPECT_EQ(spm.encode("aba", false), (Ids{first + 4, first + 5}));
  // "c" has no piece: its byte token.
  EXPECT_EQ(spm.encode("c", false), (Ids{first, 3 + 'c'}));
  EXPECT_EQ(spm.decode(Ids{first + 4, first + 5, 3 + 'c'}), "abac");
}

// GPT-2's byte -> printable code point table, as UTF-8.
std::vector<std::string> byte_level_alphabet() {
  std::vector<std::string> out(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const int cp = printable ? b : next++;
    std::string utf8;
    if (cp < 0x80) {
      utf8 += static_cast<char>(cp);
    } else {
      utf8 += static_cast<char>(0xC0 | (cp >> 6));
      utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out[static_cast<std::size_t>(b)] = utf8;
  }
  return out;
}

// Every pre-tokenizer name loads (its regexes compile) and keeps every byte of the text.
TEST(GgufVocab, EveryPreTokenizerNameLoadsAndRoundTrips) {
  const std::string text =
      "Hello, y'all! How're U 3333 33.3 ... \xE6\x88\x91\xE6\x83\xB3"
      "apple\xE5\xB7\xA5 "
      "\xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE  \n\n\t \xF0\x9F\xA6\x99 r\xC3\xA9sum\xC3\xA9 "
      "I've 'RE x   \n";
  GgufWriter w = tiny_bpe();
  w.set("tokenizer.ggml.tokens", byte_level_alphabet());
  w.set("tokenizer.ggml.token_type", std::vector<std::int32_t>(256, 1));
  w.set("tokenizer.ggml.merges", std::vector<std::string>{});
  w.erase("tokenizer.ggml.eos_token_id");
  const char* names[] = {"default",     "llama-bpe", "dbrx",       "deepseek-llm", "deepseek-coder",
                         "deepseek-v3", "falcon",    "starcoder",  "command-r",    "gpt-2",
                         "qwen2",       "qwen35",    "seed-coder", "bailingmoe",   "gpt-4o",
                         "tekken",      "poro-chat", "bloom",      "viking",       "mpt",
                         "refact"};
  for (const char* name : names) {
    w.set("tokenizer.ggml.pre", std::string(name));
    const Tokenizer tok = Tokenizer::load(w.write(std::string("pre_") + name));
    const Ids ids = tok.encode(text, false, false);
    EXPECT_EQ(ids.size(), text.size()) << name;  // one byte token per byte: no merges
    EXPECT_EQ(tok.decode(ids), text) << name;
  }
  w.erase("tokenizer.ggml.pre");  // absent: llama.cpp's "default"
  EXPECT_EQ(Tokenizer::load(w.write("pre_absent"))
                .decode(Tokenizer::load(w.write("pre_absent")).encode(text, false, false)),
            text);
}

void expect_refused(GgufWriter w, const std::string& name, const std::string& needle) {
  const auto path = w.write(name);
  try {
    Tokenizer::load(path);
    ADD_FAILURE() << name << ": loaded";
  } catch (const FileError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << name << ": " << what;
    EXPECT_NE(what.find(path.string()), std::string::npos) << name << ": " << what;
  }
}

TEST(GgufVocab, HostileMetadataIsAFileError) {
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.token_type", std::vector<std::int32_t>{1, 1, 1});
    expect_refused(w, "types_short", "token_type has 3 entries for 6 tokens");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.token_type", std::vector<std::int32_t>{1, 1, 1, 1, 9, 1});
    expect_refused(w, "type_value", "token_type[4] = 9");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.eos_token_id", std::uint32_t{6});
    expect_refused(w, "eos_range", "eos_token_id = 6 is outside the vocabulary of 6 tokens");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.bos_token_id", std::int32_t{-1});
    expect_refused(w, "bos_negative", "bos_token_id");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.merges", std::vector<std::string>{"ab"});
    expect_refused(w, "merge_no_space", "merges[0] \"ab\" is not \"left right\"");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.merges", std::vector<std::string>{"a b", "b a"});
    expect_refused(w, "merge_unknown", "merges[1] \"b a\" uses a token missing");
  }
  {
    auto w = tiny_bpe();
    w.erase("tokenizer.ggml.merges");
    expect_refused(w, "merges_missing", "needs tokenizer.ggml.merges");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b", "a", "ab", "x", "y"});
    expect_refused(w, "duplicate", "duplicate token \"a\" (ids 0 and 2)");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.tokens", std::vector<std::string>{});
    expect_refused(w, "empty_tokens", "tokenizer.ggml.tokens is empty");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.pre", std::string("no-such-pre"));
    expect_refused(w, "unknown_pre", "unsupported tokenizer.ggml.pre \"no-such-pre\"");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.model", std::string("rwkv"));
    expect_refused(w, "unknown_model", "unsupported tokenizer.ggml.model \"rwkv\"");
  }
  {
    auto w = tiny_bpe();
    w.erase("tokenizer.ggml.model");
    expect_refused(w, "no_vocab", "carries no vocabulary");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.add_bos_token", true);
    expect_refused(w, "add_bos_without_bos", "add_bos_token is true but no BOS id");
  }
  {
    auto w = tiny_bpe();
    w.set("tokenizer.ggml.tokens", std::string("a"));
    expect_refused(w, "tokens_not_array", "tokenizer.ggml.tokens");
  }
  {
    // "\u2581[PAD]" becomes "[PAD]" once the word-start mark is dropped.
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("bert"));
    w.set("tokenizer.ggml.tokens", std::vector<std::string>{"[PAD]", "\xE2\x96\x81[PAD]"});
    expect_refused(w, "bert_duplicate", "duplicate token \"[PAD]\" in BERT spelling (ids 0 and 1)");
  }
  {
    auto w = tiny_spm();
    w.set("tokenizer.ggml.scores", std::vector<float>{0.0f, 1.0f});
    expect_refused(w, "scores_short", "scores has 2 entries for 265 tokens");
  }
}

}  // namespace
}  // namespace lmserve::tokenizer
