// The BPE model of tokenizer.json: vocab + ranked merges applied to one pre-token at a
// time, with byte fallback, unk fusing, ignore_merges and subword prefix/suffix.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/hash_map.h"
#include "tokenizer/model.h"
#include "tokenizer/vocabulary.h"

namespace lmserve::tokenizer::detail {

// What a BPE model is made of, whichever file states it (tokenizer.json, a GGUF vocabulary).
// The views must outlive the BpeModel constructor only.
struct BpeSpec {
  std::string merges_name;  // for messages: "tokenizer.json: merges", "tokenizer.ggml.merges"
  std::vector<std::pair<std::string_view, std::int32_t>> vocab;
  std::vector<std::pair<std::string_view, std::string_view>> merges;  // by rank
  std::string_view unk_token;
  std::string_view continuing_subword_prefix;
  std::string_view end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel final : public Model {
 public:
  // Throws FileError for bad ids, repeated tokens or merges of tokens that
  // are not in the vocab.
  explicit BpeModel(const BpeSpec& spec);
  // `model` is tokenizer.json's "model" object with "type": "BPE". Throws FileError.
  explicit BpeModel(const nlohmann::json& model);

  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const override;
  std::optional<std::int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(std::int32_t id) const override { return vocab_.token(id); }
  std::int32_t id_limit() const override { return vocab_.id_limit(); }

 private:
  struct Merge {
    std::uint32_t rank = 0;
    std::int32_t new_id = -1;
  };
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }
  const Merge* find_merge(std::int32_t a, std::int32_t b) const {
    return merges_.find(pair_key(a, b));
  }
  void merge_word(std::string_view word, std::vector<std::int32_t>& out) const;

  Vocabulary vocab_;
  U64Map<Merge> merges_;
  std::optional<std::int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::array<std::int32_t, 256> byte_ids_{};  // id of "<0xXX>", -1 when absent
  // Ids of single characters below U+0400 (ASCII and GPT-2's byte-level alphabet), when no
  // subword prefix/suffix changes how they are spelled; -1 when not in the vocab, -2 unused.
  std::vector<std::int32_t> char_ids_;
  // Distinguishes this model's entries in the per-thread word caches.
  std::uint64_t cache_owner_;
};

}  // namespace lmserve::tokenizer::detail
