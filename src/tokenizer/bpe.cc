#include "tokenizer/bpe.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

constexpr std::size_t kCacheCapacity = 65536;
constexpr std::size_t kMaxCachedWordBytes = 256;

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model) {
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    throw FileError("tokenizer.json: BPE model has no \"vocab\" object");
  }
  vocab_.reserve(vocab_it->size());
  std::int32_t max_id = -1;
  for (const auto& [token, id] : vocab_it->items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > INT32_MAX) {
      throw FileError("tokenizer.json: vocab entry \"" + token + "\" has an invalid id");
    }
    const auto value = id.get<std::int32_t>();
    vocab_.emplace(token, value);
    max_id = std::max(max_id, value);
  }
  id_to_token_.resize(static_cast<std::size_t>(max_id + 1));
  has_id_.assign(id_to_token_.size(), false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[static_cast<std::size_t>(id)] = token;
    has_id_[static_cast<std::size_t>(id)] = true;
  }

  const std::string unk = json_string_or(model, "unk_token", "");
  if (!unk.empty()) {
    // HF accepts an unk_token missing from the vocab and fails only when it is needed;
    // treating it as absent drops unknown characters instead, which cannot crash.
    if (auto id = token_to_id(unk)) unk_id_ = *id;
  }
  continuing_subword_prefix_ = json_string_or(model, "continuing_subword_prefix", "");
  end_of_word_suffix_ = json_string_or(model, "end_of_word_suffix", "");
  fuse_unk_ = json_bool(model, "fuse_unk", false);
  byte_fallback_ = json_bool(model, "byte_fallback", false);
  ignore_merges_ = json_bool(model, "ignore_merges", false);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[static_cast<std::size_t>(b)] = token_to_id(name).value_or(-1);
  }

  const auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) {
    throw FileError("tokenizer.json: BPE model has no \"merges\" array");
  }
  merges_.reserve(merges_it->size());
  std::uint32_t rank = 0;
  for (const auto& merge : *merges_it) {
    std::string a, b;
    if (merge.is_string()) {
      const auto& s = merge.get_ref<const std::string&>();
      const auto space = s.find(' ');
      if (space == std::string::npos) throw FileError("tokenizer.json: bad merge \"" + s + "\"");
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      a = merge[0].get<std::string>();
      b = merge[1].get<std::string>();
    } else {
      throw FileError("tokenizer.json: merge #" + std::to_string(rank) +
                      " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const auto a_id = token_to_id(a);
    const auto b_id = token_to_id(b);
    std::string merged = a;
    if (!continuing_subword_prefix_.empty() && b.starts_with(continuing_subword_prefix_)) {
      merged.append(b, continuing_subword_prefix_.size());
    } else {
      merged.append(b);
    }
    const auto new_id = token_to_id(merged);
    if (!a_id || !b_id || !new_id) {
      throw FileError("tokenizer.json: merge \"" + a + " " + b +
                      "\" uses a token missing from the vocab");
    }
    // Like HF's map construction, a repeated pair keeps its last rank.
    merges_[pair_key(*a_id, *b_id)] = Merge{rank, *new_id};
    ++rank;
  }
}

std::optional<std::int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() ||
      !has_id_[static_cast<std::size_t>(id)]) {
    return nullptr;
  }
  return &id_to_token_[static_cast<std::size_t>(id)];
}

void BpeModel::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<std::int32_t>& out) const {
  struct Symbol {
    std::int32_t id;
    int prev;
    int next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto push = [&](std::int32_t id) {
    const int index = static_cast<int>(symbols.size());
    if (!symbols.empty()) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, true});
  };

  bool pending_unk = false;  // an unk not yet pushed, so that following unks can fuse into it
  auto flush_unk = [&] {
    if (pending_unk) push(*unk_id_);
    pending_unk = false;
  };
  std::string piece;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t start = i;
    next_code_point(word, i);
    const std::string_view ch = word.substr(start, i - start);
    piece.clear();
    if (start > 0) piece.append(continuing_subword_prefix_);
    piece.append(ch);
    if (i == word.size()) piece.append(end_of_word_suffix_);
    if (auto id = token_to_id(piece)) {
      flush_unk();
      push(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        flush_unk();
        for (char c : ch) push(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (!unk_id_) continue;  // no unk token: HF silently drops the character
    if (fuse_unk_) {
      pending_unk = true;
    } else {
      push(*unk_id_);
    }
  }
  flush_unk();

  struct Candidate {
    std::uint32_t rank;
    int pos;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int left) {
    if (left < 0) return;
    const int right = symbols[static_cast<std::size_t>(left)].next;
    if (right < 0) return;
    const auto it = merges_.find(pair_key(symbols[static_cast<std::size_t>(left)].id,
                                          symbols[static_cast<std::size_t>(right)].id));
    if (it != merges_.end()) queue.push({it->second.rank, left});
  };
  for (int k = 0; k + 1 < static_cast<int>(symbols.size()); ++k) consider(k);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[static_cast<std::size_t>(left.next)];
    const auto it = merges_.find(pair_key(left.id, right.id));
    // Entries go stale when a neighbour merged first; skip anything no longer current.
    if (it == merges_.end() || it->second.rank != top.rank) continue;
    left.id = it->second.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int k = symbols.empty() ? -1 : 0; k >= 0; k = symbols[static_cast<std::size_t>(k)].next) {
    out.push_back(symbols[static_cast<std::size_t>(k)].id);
  }
}

}  // namespace lmserve::tokenizer::detail
