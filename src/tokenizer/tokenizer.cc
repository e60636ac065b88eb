#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/json_util.h"
#include "tokenizer/model_json.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/vocabulary.h"
#include "util/error.h"
#include "util/strings.h"
#include "util/text_file.h"
#include "util/utf8.h"

namespace lmserve::tokenizer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const fs::path& path) {
  const std::string text = util::read_text_file(path);
  // nlohmann recurses over nesting: bound it before parsing a file we did not write.
  if (!util::json_nesting_within(text, 256)) {
    throw FileError(path.string() + " is not a tokenizer file: JSON nested too deeply");
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
    throw FileError(path.string() + " is not valid JSON: " + e.what());
  }
}

// "bos_token": "<s>" | {"content": "<s>", ...} | null.
std::string token_text(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    if (const auto c = it->find("content"); c != it->end() && c->is_string())
      return c->get<std::string>();
  }
  return {};
}

// tokenizer_config.json's chat_template: a string (the default), or a list of named
// templates of which transformers uses "default" for plain chat and "tool_use" when tools
// are given.
std::optional<std::string> template_from_config(const json& config, std::string_view name) {
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    return name == "default" ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
  }
  if (it->is_array()) {
    for (const auto& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == name && entry.contains("template") &&
          entry["template"].is_string()) {
        return entry["template"].get<std::string>();
      }
    }
    return std::nullopt;
  }
  throw FileError("tokenizer_config.json: chat_template is neither a string nor a list");
}

bool is_llama_family_class(const std::string& name) {
  static const char* const kNames[] = {"LlamaTokenizer",     "LlamaTokenizerFast",
                                       "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                                       "GemmaTokenizer",     "GemmaTokenizerFast"};
  return std::any_of(std::begin(kNames), std::end(kNames),
                     [&](const char* n) { return name == n; });
}

}  // namespace

Tokenizer Tokenizer::load(const formats::Checkpoint& checkpoint) {
  if (checkpoint.gguf() != nullptr)
    return Tokenizer(detail::load_gguf_tokenizer(*checkpoint.gguf()));
  return load(checkpoint.path());
}

Tokenizer Tokenizer::load(const fs::path& path) {
  // A GGUF file (vocab-only or a whole model) carries its vocabulary as tokenizer.ggml.*.
  if (detail::is_gguf_file(path)) return Tokenizer(detail::load_gguf_tokenizer(path));
  fs::path dir = path;
  fs::path file = path / "tokenizer.json";
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    file = path;
    dir = path.parent_path();
  }
  if (!fs::exists(file, ec)) {
    throw FileError("no tokenizer.json at " + file.string() +
                    " (supported: Hugging Face tokenizer.json files and GGUF files)");
  }
  const json root = read_json_file(file);
  if (!root.is_object()) throw FileError(file.string() + ": not a tokenizer.json object");

  json config = json::object();
  if (fs::exists(dir / "tokenizer_config.json", ec)) {
    config = read_json_file(dir / "tokenizer_config.json");
    if (!config.is_object()) throw FileError("tokenizer_config.json is not an object");
  }
  json special_map = json::object();
  if (fs::exists(dir / "special_tokens_map.json", ec)) {
    special_map = read_json_file(dir / "special_tokens_map.json");
    if (!special_map.is_object()) special_map = json::object();
  }

  auto impl = std::make_shared<Impl>();
  try {
    static const json kNull;
    const auto model_it = root.find("model");
    impl->model = detail::make_model(model_it != root.end() ? *model_it : kNull, file.string());
    impl->normalizer = detail::make_normalizer(root.value("normalizer", json()));
    impl->pre_tokenizer = detail::make_pre_tokenizer(root.value("pre_tokenizer", json()));
    impl->post = detail::make_post_processor(root.value("post_processor", json()));
    impl->decoder = std::make_unique<detail::Decoder>(root.value("decoder", json()));

    std::vector<detail::AddedToken> added;
    std::vector<std::string> forms;
    if (const auto it = root.find("added_tokens"); it != root.end() && it->is_array()) {
      for (const auto& entry : *it) {
        detail::AddedToken token;
        token.content = detail::json_string(entry, "content", "added token");
        const long long id = detail::json_int(entry, "id", -1);
        if (id < 0 || id > detail::kMaxTokenId)
          throw FileError("tokenizer.json: added token without a valid id (0 to " +
                          std::to_string(detail::kMaxTokenId) + ")");
        token.id = static_cast<std::int32_t>(id);
        token.special = detail::json_bool(entry, "special", false);
        token.lstrip = detail::json_bool(entry, "lstrip", false);
        token.rstrip = detail::json_bool(entry, "rstrip", false);
        token.single_word = detail::json_bool(entry, "single_word", false);
        token.normalized = detail::json_bool(entry, "normalized", !token.special);
        forms.push_back(token.normalized && impl->normalizer
                            ? impl->normalizer->normalize(token.content)
                            : token.content);
        added.push_back(std::move(token));
      }
    }

    std::int32_t limit = impl->model->id_limit();
    for (const auto& token : added) limit = std::max(limit, token.id + 1);
    impl->pieces.resize(static_cast<std::size_t>(limit));
    impl->known.assign(static_cast<std::size_t>(limit), 0);
    impl->special.assign(static_cast<std::size_t>(limit), 0);
    impl->byte_value.assign(static_cast<std::size_t>(limit), -1);
    for (std::int32_t id = 0; id < impl->model->id_limit(); ++id) {
      if (const std::string* piece = impl->model->id_to_token(id)) {
        impl->pieces[static_cast<std::size_t>(id)] = *piece;
        impl->known[static_cast<std::size_t>(id)] = 1;
      }
    }
    for (const auto& token : added) {
      // HF decodes an added token as its content, even when the model vocab has the id.
      const auto i = static_cast<std::size_t>(token.id);
      impl->pieces[i] = token.content;
      impl->known[i] = 1;
      impl->special[i] = token.special ? 1 : 0;
      impl->added_by_content.emplace_back(token.content, token.id);
    }
    std::sort(impl->added_by_content.begin(), impl->added_by_content.end());
    if (impl->decoder->has_byte_fallback()) {
      for (std::size_t i = 0; i < impl->pieces.size(); ++i) {
        impl->byte_value[i] = static_cast<std::int16_t>(detail::byte_token_value(impl->pieces[i]));
      }
    }
    impl->added = detail::AddedVocabulary(std::move(added), forms);
  } catch (const nlohmann::json::exception& e) {
    throw FileError(file.string() + ": malformed tokenizer.json (" + e.what() + ")");
  }

  impl->bos_token = token_text(config, "bos_token");
  if (impl->bos_token.empty() && !config.contains("bos_token")) {
    impl->bos_token = token_text(special_map, "bos_token");
  }
  impl->eos_token = token_text(config, "eos_token");
  if (impl->eos_token.empty() && !config.contains("eos_token")) {
    impl->eos_token = token_text(special_map, "eos_token");
  }
  Tokenizer result(impl);
  // transformers hands a chat template its special_tokens_map ({**special_tokens_map,
  // **kwargs}): every special token the tokenizer defines, in its attribute order.
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    std::string text = token_text(config, key);
    if (text.empty() && !config.contains(key)) text = token_text(special_map, key);
    if (!text.empty()) impl->special_tokens_map.emplace_back(key, std::move(text));
  }
  if (!impl->bos_token.empty()) impl->bos_id = result.token_to_id(impl->bos_token);
  if (!impl->eos_token.empty()) impl->eos_id = result.token_to_id(impl->eos_token);

  // transformers' Llama/Gemma tokenizers rebuild the BOS/EOS template from these flags on
  // load, overriding tokenizer.json's post_processor.
  const std::string tokenizer_class = config.value("tokenizer_class", std::string());
  if (is_llama_family_class(tokenizer_class)) {
    const bool add_bos = config.value("add_bos_token", true);
    const bool add_eos = config.value("add_eos_token", false);
    impl->post.prefix.clear();
    impl->post.suffix.clear();
    if (add_bos && impl->bos_id) impl->post.prefix.push_back(*impl->bos_id);
    if (add_eos && impl->eos_id) impl->post.suffix.push_back(*impl->eos_id);
  }

  const auto clean = config.find("clean_up_tokenization_spaces");
  impl->clean_up_spaces = clean != config.end() && clean->is_boolean() && clean->get<bool>();

  // Where transformers looks, in its order: chat_template.jinja, chat_template.json (the
  // processor form, {"chat_template": "..."}), then tokenizer_config.json.
  if (fs::exists(dir / "chat_template.jinja", ec)) {
    impl->chat_template = util::read_text_file(dir / "chat_template.jinja");
  } else if (fs::exists(dir / "chat_template.json", ec)) {
    impl->chat_template =
        template_from_config(read_json_file(dir / "chat_template.json"), "default");
  } else {
    impl->chat_template = template_from_config(config, "default");
  }
  impl->tool_use_chat_template = template_from_config(config, "tool_use");
  if (auto it = config.find("tool_parser_type"); it != config.end() && it->is_string()) {
    impl->tool_parser_type = it->get<std::string>();
  }
  return result;
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                            bool parse_special) const {
  const Impl& im = *impl_;
  // Rust strings are always valid UTF-8; replacing bad bytes up front lets every later
  // stage (regex, normalizers) rely on it.
  std::string sanitized;
  if (!util::is_valid_utf8(text)) {
    sanitized = util::sanitize_utf8(text);
    text = sanitized;
  }
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids.insert(ids.end(), im.post.prefix.begin(), im.post.prefix.end());

  // One workspace per thread: after warm-up, encoding allocates nothing but its result.
  thread_local detail::PreTokenized pre;
  auto run_model = [&](std::string_view segment, bool at_origin) {
    pre.reset(segment, at_origin);
    if (im.pre_tokenizer) im.pre_tokenizer->pre_tokenize(pre);
    for (const auto& piece : pre.pieces) im.model->tokenize(pre.view(piece), ids);
  };

  for (const auto& seg : im.added.split(text, false, parse_special)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    const std::string_view raw = text.substr(seg.begin, seg.end - seg.begin);
    std::string normalized_text;
    std::string_view normalized = raw;
    if (im.normalizer) {
      normalized_text = im.normalizer->normalize(raw);
      normalized = normalized_text;
    }
    if (!im.added.has_normalized()) {
      run_model(normalized, seg.begin == 0);
      continue;
    }
    for (const auto& sub : im.added.split(normalized, true, parse_special)) {
      if (sub.id >= 0) {
        ids.push_back(sub.id);
      } else {
        run_model(normalized.substr(sub.begin, sub.end - sub.begin),
                  seg.begin == 0 && sub.begin == 0);
      }
    }
  }
  // Keep the workspace from holding on to the memory of one huge input.
  if (pre.text.capacity() > (1u << 20)) pre = detail::PreTokenized();
  if (add_special_tokens) ids.insert(ids.end(), im.post.suffix.begin(), im.post.suffix.end());
  return ids;
}

std::string Tokenizer::Impl::decode_raw(std::span<const std::int32_t> ids, bool skip_special,
                                        bool at_start) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const std::int32_t id : ids) {
    // Unknown ids are dropped, as HF does, rather than failing a whole response.
    if (!valid(id) || (skip_special && special[static_cast<std::size_t>(id)])) continue;
    tokens.push_back(pieces[static_cast<std::size_t>(id)]);
  }
  return decoder->decode(std::move(tokens), at_start);
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  return util::sanitize_utf8(impl_->decode_raw(ids, skip_special_tokens, true));
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens,
                              bool clean_up_spaces) const {
  std::string text = decode(ids, skip_special_tokens);
  return clean_up_spaces ? clean_up_tokenization(text) : text;
}

std::string Tokenizer::token_bytes(std::int32_t id) const {
  const Impl& im = *impl_;
  if (!im.valid(id)) return {};
  const auto b = im.byte_value[static_cast<std::size_t>(id)];
  if (b >= 0) return std::string(1, static_cast<char>(b));
  const std::int32_t one[] = {id};
  return im.decode_raw(one, false, false);
}

const std::string& Tokenizer::piece(std::int32_t id) const {
  static const std::string kEmpty;
  return impl_->valid(id) ? impl_->pieces[static_cast<std::size_t>(id)] : kEmpty;
}

int Tokenizer::vocab_size() const { return static_cast<int>(impl_->pieces.size()); }

bool Tokenizer::is_special(std::int32_t id) const {
  return impl_->valid(id) && impl_->special[static_cast<std::size_t>(id)];
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const auto& added = impl_->added_by_content;
  const auto it =
      std::lower_bound(added.begin(), added.end(), token,
                       [](const auto& entry, std::string_view t) { return entry.first < t; });
  if (it != added.end() && it->first == token) return it->second;
  return impl_->model->token_to_id(token);
}

std::optional<std::int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<std::int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }

std::vector<std::int32_t> Tokenizer::end_of_generation_ids() const {
  std::vector<std::int32_t> ids = impl_->end_of_turn_ids;
  if (impl_->eos_id) ids.push_back(*impl_->eos_id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

bool Tokenizer::adds_bos() const {
  return impl_->bos_id && !impl_->post.prefix.empty() &&
         impl_->post.prefix.front() == *impl_->bos_id;
}

const std::optional<std::string>& Tokenizer::chat_template() const { return impl_->chat_template; }

const std::optional<std::string>& Tokenizer::tool_use_chat_template() const {
  return impl_->tool_use_chat_template;
}

const std::vector<std::pair<std::string, std::string>>& Tokenizer::special_tokens_map() const {
  return impl_->special_tokens_map;
}

const std::optional<std::string>& Tokenizer::tool_parser_type() const {
  return impl_->tool_parser_type;
}

bool Tokenizer::clean_up_tokenization_spaces() const { return impl_->clean_up_spaces; }

std::string Tokenizer::clean_up_tokenization(std::string_view text) {
  // Same replacements, in the same order, as transformers' clean_up_tokenization.
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string out(text);
  for (const auto& [from, to] : kRules) out = util::replace_all(out, from, to);
  return out;
}

}  // namespace lmserve::tokenizer
