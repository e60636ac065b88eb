// Token strings <-> ids for the tokenizer.json models, on the open-addressing map so that
// the per-character and per-word lookups of encoding stay cheap.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hash_map.h"

namespace lmserve::tokenizer::detail {

// Largest token id a tokenizer.json may use. Tables are indexed by id, so one stray id of
// 2^31 - 1 would cost tens of GB; real vocabularies stay under a million ids.
inline constexpr std::int32_t kMaxTokenId = (1 << 22) - 1;

class Vocabulary {
 public:
  // Throws FileError when an id is negative, above kMaxTokenId or repeated.
  void add(std::string_view token, std::int32_t id);
  std::optional<std::int32_t> find(std::string_view token) const { return by_token_.find(token); }
  // `hash` is hash_bytes(token), for callers that look the same string up more than once.
  std::optional<std::int32_t> find_hashed(std::string_view token, std::uint64_t hash) const {
    return by_token_.find(token, hash);
  }
  const std::string* token(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= by_id_.size() ||
        !has_id_[static_cast<std::size_t>(id)]) {
      return nullptr;
    }
    return &by_id_[static_cast<std::size_t>(id)];
  }
  std::int32_t id_limit() const { return static_cast<std::int32_t>(by_id_.size()); }
  void reserve(std::size_t n) { by_token_.reserve(n); }

 private:
  StringIdMap by_token_;
  std::vector<std::string> by_id_;
  std::vector<bool> has_id_;
};

}  // namespace lmserve::tokenizer::detail
