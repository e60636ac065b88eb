#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/gguf.h"
#include "formats/gguf_split.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer_presets.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/wordpiece.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

using nlohmann::json;

// tokenizer.ggml.token_type values.
enum TokenType : std::int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// The vocabulary as the file states it, checked for consistency.
struct GgufVocab {
  std::string model;  // tokenizer.ggml.model
  std::string pre;    // tokenizer.ggml.pre, "" when absent
  std::vector<std::string> tokens;
  std::vector<std::int32_t> types;
  std::vector<float> scores;
  std::unordered_map<std::string_view, std::int32_t> ids;  // views into `tokens`
};

class Reader {
 public:
  explicit Reader(const formats::GgufFile& file) : file_(file) {}

  [[noreturn]] void fail(const std::string& message) const {
    throw FileError(file_.path().string() + ": " + message);
  }

  std::optional<bool> flag(std::string_view key) const {
    if (!file_.has(key)) return std::nullopt;
    return file_.get_bool(key);
  }

  // A token id key; it must name one of the `n` tokens.
  std::optional<std::int32_t> id(std::string_view key, std::size_t n) const {
    if (!file_.has(key)) return std::nullopt;
    const std::uint64_t value = file_.get_uint(key);
    if (value >= n) {
      fail(std::string(key) + " = " + std::to_string(value) + " is outside the vocabulary of " +
           std::to_string(n) + " tokens");
    }
    return static_cast<std::int32_t>(value);
  }

  GgufVocab vocab() const {
    GgufVocab v;
    if (!file_.has("tokenizer.ggml.model")) {
      fail("no tokenizer.ggml.model: the file carries no vocabulary");
    }
    v.model = std::string(file_.get_string("tokenizer.ggml.model"));
    if (file_.has("tokenizer.ggml.pre"))
      v.pre = std::string(file_.get_string("tokenizer.ggml.pre"));
    if (!file_.has("tokenizer.ggml.tokens")) fail("no tokenizer.ggml.tokens");
    const auto views = file_.get_array<std::string_view>("tokenizer.ggml.tokens");
    if (views.empty()) fail("tokenizer.ggml.tokens is empty");
    if (views.size() > static_cast<std::size_t>(INT32_MAX)) fail("too many tokens");
    const std::size_t n = views.size();
    v.tokens.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      // llama.cpp keeps such ids usable under a name no text can produce by accident.
      v.tokens.emplace_back(views[i].empty() ? "[EMPTY_" + std::to_string(i) + "]"
                                             : std::string(views[i]));
    }
    index(v, "");

    if (file_.has("tokenizer.ggml.token_type")) {
      v.types = file_.get_array<std::int32_t>("tokenizer.ggml.token_type");
      if (v.types.size() != n) {
        fail("tokenizer.ggml.token_type has " + std::to_string(v.types.size()) + " entries for " +
             std::to_string(n) + " tokens");
      }
      for (std::size_t i = 0; i < n; ++i) {
        if (v.types[i] < kUndefined || v.types[i] > kByte) {
          fail("tokenizer.ggml.token_type[" + std::to_string(i) +
               "] = " + std::to_string(v.types[i]) + " is not a token type (0..6)");
        }
      }
    } else {
      v.types.assign(n, kNormal);
    }

    if (const formats::GgufValue* s = file_.find("tokenizer.ggml.scores")) {
      if (s->type == formats::GgufType::kArray && s->array_type == formats::GgufType::kInt32) {
        for (std::int32_t x : file_.get_array<std::int32_t>("tokenizer.ggml.scores")) {
          v.scores.push_back(static_cast<float>(x));
        }
      } else {
        v.scores = file_.get_array<float>("tokenizer.ggml.scores");
      }
      if (v.scores.size() != n) {
        fail("tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries for " +
             std::to_string(n) + " tokens");
      }
    } else {
      v.scores.assign(n, 0.0f);
    }
    return v;
  }

  // Rebuilds v.ids from v.tokens; `spelling` says which form a duplicate is in.
  void index(GgufVocab& v, std::string_view spelling) const {
    v.ids.clear();
    v.ids.reserve(v.tokens.size());
    for (std::size_t i = 0; i < v.tokens.size(); ++i) {
      const auto [it, inserted] = v.ids.emplace(v.tokens[i], static_cast<std::int32_t>(i));
      if (!inserted) {
        fail("duplicate token \"" + v.tokens[i].substr(0, 100) + "\"" + std::string(spelling) +
             " (ids " + std::to_string(it->second) + " and " + std::to_string(i) + ")");
      }
    }
  }

  // tokenizer.ggml.merges as (left, right) views into the file; the BPE model checks that each
  // is a known token whose concatenation is one too.
  std::vector<std::pair<std::string_view, std::string_view>> merges() const {
    if (!file_.has("tokenizer.ggml.merges")) fail("a gpt2 vocabulary needs tokenizer.ggml.merges");
    const auto merges = file_.get_array<std::string_view>("tokenizer.ggml.merges");
    std::vector<std::pair<std::string_view, std::string_view>> out;
    out.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const std::string_view m = merges[i];
      // The separator is the first space after the first character (a left part that is
      // itself " " stays possible, as in llama.cpp).
      const std::size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      auto bad = [&](const std::string& why) {
        fail("tokenizer.ggml.merges[" + std::to_string(i) + "] \"" + std::string(m.substr(0, 100)) +
             "\" " + why);
      };
      if (space == std::string_view::npos) bad("is not \"left right\"");
      out.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    return out;
  }

 private:
  const formats::GgufFile& file_;
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool contains_any(const std::string& s, std::initializer_list<std::string_view> parts) {
  return std::any_of(parts.begin(), parts.end(),
                     [&](std::string_view p) { return s.find(p) != std::string::npos; });
}

// Added tokens are the ids llama.cpp splits out of the text before the model runs: control
// and unknown tokens (only when special text is parsed) and user-defined ones (always).
// GGUF carries no lstrip/rstrip flags; llama.cpp sets them for a few models by name.
std::vector<AddedToken> added_tokens(const GgufVocab& v, const formats::GgufFile& file) {
  const std::string name =
      file.has("general.name") ? lower(file.get_string("general.name")) : std::string();
  const std::string arch =
      file.has("general.architecture") ? std::string(file.get_string("general.architecture")) : "";
  const bool phi3 = contains_any(name, {"phi-3", "phi3"});
  const bool mask_lstrip = contains_any(v.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
                           contains_any(arch, {"nomic-bert-moe", "jina-bert-v3"});
  const bool modern_bert = contains_any(name, {"modern-bert"});

  std::vector<AddedToken> out;
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    const std::int32_t type = v.types[i];
    if (type != kControl && type != kUnknown && type != kUserDefined) continue;
    AddedToken token;
    token.content = v.tokens[i];
    token.id = static_cast<std::int32_t>(i);
    token.special = type != kUserDefined;
    token.normalized = false;  // matched in the raw text
    if (phi3) {
      token.rstrip =
          token.content != "<unk>" && token.content != "<s>" && token.content != "<|endoftext|>";
    }
    if ((mask_lstrip && token.content == "<mask>") || (modern_bert && token.content == "[MASK]")) {
      token.lstrip = true;
    }
    out.push_back(std::move(token));
  }
  return out;
}

// Ids besides EOS that end a generation: the eot/eom ids and the end-of-turn tokens llama.cpp
// recognises by their text (when not a normal piece), with its two exceptions (harmony-style
// "<|end|>" that only ends a message, and "</s>" next to "<|tool_response>").
std::vector<std::int32_t> end_of_turn_ids(const GgufVocab& v, std::optional<std::int32_t> eot,
                                          std::optional<std::int32_t> eom) {
  static constexpr std::string_view kTexts[] = {
      "<|eot_id|>",
      "<|im_end|>",
      "<|end|>",
      "<|return|>",
      "<|call|>",
      "<|flush|>",
      "<|calls|>",
      "<end_of_turn>",
      "<|endoftext|>",
      "</s>",
      "<|eom_id|>",
      "<EOT>",
      "_<EOT>",
      "[EOT]",
      "[EOS]",
      "<|end_of_text|>",
      "<end_of_utterance>",
      "<eos>",
      "<turn|>",
      "<|tool_response>",
      "<\xEF\xBD\x9C"
      "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
      "[e~["};
  auto find = [&](std::string_view text) -> std::optional<std::int32_t> {
    const auto it = v.ids.find(text);
    if (it == v.ids.end()) return std::nullopt;
    return it->second;
  };
  std::vector<std::int32_t> ids;
  if (eot) ids.push_back(*eot);
  if (eom) ids.push_back(*eom);
  for (std::string_view text : kTexts) {
    // A normal piece is text the model writes (Qwen's vocabulary has a plain "</s>"), so only
    // control, user-defined and unknown tokens count; llama.cpp takes any type.
    const auto id = find(text);
    if (id && v.types[static_cast<std::size_t>(*id)] != kNormal) ids.push_back(*id);
  }
  auto drop = [&](std::string_view text) {
    if (auto id = find(text)) std::erase(ids, *id);
  };
  if (find("<|end|>") && find("<|call|>") && find("<|return|>")) drop("<|end|>");
  if (find("<|end|>") && find("<|calls|>") && find("<|flush|>")) drop("<|end|>");
  if (find("<|tool_response>")) drop("</s>");
  return ids;
}

json replace(std::string_view from, std::string_view to) {
  return {{"type", "Replace"},
          {"pattern", {{"String", std::string(from)}}},
          {"content", std::string(to)}};
}

}  // namespace

bool is_gguf_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
}

std::shared_ptr<Tokenizer::Impl> load_gguf_tokenizer(const std::filesystem::path& path) {
  const formats::GgufFile file(path);
  return load_gguf_tokenizer(file);
}

std::shared_ptr<Tokenizer::Impl> load_gguf_tokenizer(const formats::GgufFile& file) {
  formats::check_first_gguf_part(file);  // a later part has no vocabulary: name the first
  const Reader reader(file);
  GgufVocab v = reader.vocab();
  const std::size_t n = v.tokens.size();
  auto impl = std::make_shared<Tokenizer::Impl>();

  std::optional<std::int32_t> bos = reader.id("tokenizer.ggml.bos_token_id", n);
  std::optional<std::int32_t> eos = reader.id("tokenizer.ggml.eos_token_id", n);
  std::optional<std::int32_t> unk = reader.id("tokenizer.ggml.unknown_token_id", n);
  reader.id("tokenizer.ggml.padding_token_id", n);
  const std::optional<std::int32_t> eot = reader.id("tokenizer.ggml.eot_token_id", n);
  const std::optional<std::int32_t> eom = reader.id("tokenizer.ggml.eom_token_id", n);
  std::optional<std::int32_t> sep = reader.id("tokenizer.ggml.seperator_token_id", n);
  bool add_bos = false;
  bool add_eos = false;
  bool add_sep = false;
  auto default_id = [&](std::optional<std::int32_t>& id, std::int32_t fallback) {
    if (!id && static_cast<std::size_t>(fallback) < n) id = fallback;
  };

  try {
    if (v.model == "llama") {
      // SentencePiece: spaces become U+2581 and, with add_space_prefix, every text segment
      // (the first one, or one that follows an added token) starts with one.
      default_id(bos, 1);
      default_id(eos, 2);
      default_id(unk, 0);
      add_bos = true;
      const bool space_prefix = reader.flag("tokenizer.ggml.add_space_prefix").value_or(true);
      json normalizers = json::array();
      if (space_prefix) {
        normalizers.push_back({{"type", "Prepend"}, {"prepend", std::string(kEscapedSpace)}});
      }
      normalizers.push_back(replace(" ", kEscapedSpace));
      impl->normalizer = make_normalizer({{"type", "Sequence"}, {"normalizers", normalizers}});
      json decoders = json::array(
          {replace(kEscapedSpace, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
      if (space_prefix) {
        decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
      }
      impl->decoder = std::make_unique<Decoder>(json{{"type", "Sequence"}, {"decoders", decoders}});
      impl->model = std::make_unique<SpmModel>(v.tokens, v.scores, unk);
    } else if (v.model == "gpt2") {
      const BpePreset preset = bpe_preset(v.pre);
      add_bos = preset.add_bos;
      impl->clean_up_spaces = preset.clean_spaces;
      BpeSpec spec{.merges_name = "tokenizer.ggml.merges", .merges = reader.merges()};
      spec.vocab.reserve(n);
      for (std::size_t i = 0; i < n; ++i)
        spec.vocab.emplace_back(v.tokens[i], static_cast<std::int32_t>(i));
      spec.ignore_merges = preset.ignore_merges;
      impl->model = std::make_unique<BpeModel>(spec);
      impl->pre_tokenizer = make_pre_tokenizer(preset.pre_tokenizer);
      impl->decoder = std::make_unique<Decoder>(json{{"type", "ByteLevel"}});
    } else if (v.model == "bert") {
      // WordPiece. llama.cpp's converter marks word starts with U+2581 where BERT marks
      // continuations with "##", and keeps "[...]" tokens as they are; the HF spelling is
      // restored so that the tokenizer.json WordPiece model and decoder apply unchanged.
      for (std::string& token : v.tokens) {
        if (token.starts_with('[') && token.ends_with(']')) continue;
        if (token.starts_with(kEscapedSpace)) {
          token.erase(0, kEscapedSpace.size());
        } else {
          token.insert(0, "##");
        }
      }
      reader.index(v, " in BERT spelling");
      if (!bos) bos = reader.id("tokenizer.ggml.cls_token_id", n);
      default_id(bos, 101);
      default_id(unk, 100);
      default_id(sep, 102);
      add_bos = true;
      add_sep = reader.flag("tokenizer.ggml.add_sep_token").value_or(true);
      impl->clean_up_spaces = true;
      const bool lowercase = reader.flag("tokenizer.ggml.normalizer.lowercase").value_or(true);
      const bool strip_accents =
          reader.flag("tokenizer.ggml.normalizer.strip_accents").value_or(lowercase);
      impl->normalizer = make_normalizer({{"type", "BertNormalizer"},
                                          {"clean_text", true},
                                          {"handle_chinese_chars", true},
                                          {"strip_accents", strip_accents},
                                          {"lowercase", lowercase}});
      impl->pre_tokenizer = make_pre_tokenizer({{"type", "BertPreTokenizer"}});
      json vocab = json::object();
      for (std::size_t i = 0; i < n; ++i) vocab[v.tokens[i]] = static_cast<std::int32_t>(i);
      json model = {{"type", "WordPiece"},
                    {"vocab", std::move(vocab)},
                    {"continuing_subword_prefix", "##"},
                    {"max_input_chars_per_word", 100}};
      if (unk) model["unk_token"] = v.tokens[static_cast<std::size_t>(*unk)];
      impl->model = std::make_unique<WordPieceModel>(model);
      impl->decoder = std::make_unique<Decoder>(
          json{{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}});
    } else {
      reader.fail("unsupported tokenizer.ggml.model \"" + v.model +
                  "\" (supported: llama, gpt2, bert)");
    }
  } catch (const FileError& e) {
    const std::string what = e.what();
    const std::string prefix = file.path().string() + ":";
    if (what.starts_with(prefix)) throw;
    reader.fail(what);
  }
  // A default without the id to add means nothing is added; the file asking for it is an error.
  const std::optional<bool> file_add_bos = reader.flag("tokenizer.ggml.add_bos_token");
  const std::optional<bool> file_add_eos = reader.flag("tokenizer.ggml.add_eos_token");
  if (file_add_bos.value_or(false) && !bos) {
    reader.fail("tokenizer.ggml.add_bos_token is true but no BOS id is set");
  }
  if (file_add_eos.value_or(false) && !eos) {
    reader.fail("tokenizer.ggml.add_eos_token is true but no EOS id is set");
  }
  add_bos = file_add_bos.value_or(add_bos) && bos;
  add_eos = file_add_eos.value_or(add_eos) && eos;

  impl->pieces = v.tokens;
  impl->known.assign(n, 1);
  impl->special.assign(n, 0);
  impl->byte_value.assign(n, -1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t type = v.types[i];
    impl->special[i] = (type == kControl || type == kUnknown || type == kUnused) ? 1 : 0;
  }
  if (impl->decoder->has_byte_fallback()) {
    for (std::size_t i = 0; i < n; ++i) {
      impl->byte_value[i] = static_cast<std::int16_t>(byte_token_value(impl->pieces[i]));
    }
  }

  std::vector<AddedToken> added = added_tokens(v, file);
  std::vector<std::string> forms;
  forms.reserve(added.size());
  for (const AddedToken& token : added) {
    forms.push_back(token.content);
    impl->added_by_content.emplace_back(token.content, token.id);
  }
  std::sort(impl->added_by_content.begin(), impl->added_by_content.end());
  impl->added = AddedVocabulary(std::move(added), forms);

  impl->bos_id = bos;
  impl->eos_id = eos;
  impl->end_of_turn_ids = end_of_turn_ids(v, eot, eom);
  if (bos) impl->bos_token = v.tokens[static_cast<std::size_t>(*bos)];
  if (eos) impl->eos_token = v.tokens[static_cast<std::size_t>(*eos)];
  if (add_bos) impl->post.prefix.push_back(*bos);
  if (add_eos) impl->post.suffix.push_back(*eos);
  if (add_sep && sep) impl->post.suffix.push_back(*sep);
  if (file.has("tokenizer.chat_template")) {
    impl->chat_template = std::string(file.get_string("tokenizer.chat_template"));
  }
  return impl;
}

}  // namespace lmserve::tokenizer::detail
