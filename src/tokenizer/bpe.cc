#include "tokenizer/bpe.h"

#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

// Longer words are rare and would crowd out the common ones.
constexpr std::size_t kMaxCachedWordBytes = 4096;
// Below this many symbols a linear scan for the best merge beats a heap.
constexpr std::size_t kLinearScanSymbols = 32;
constexpr char32_t kCharTableSize = 0x400;

std::uint64_t next_cache_owner() {
  static std::atomic<std::uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

// One cache per thread: no lock on the hot path, and the model stays immutable.
WordCache& thread_cache() {
  thread_local WordCache cache;
  return cache;
}

}  // namespace

namespace {

BpeSpec spec_from_json(const nlohmann::json& model) {
  BpeSpec spec{.merges_name = "tokenizer.json: merges"};
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    throw FileError("tokenizer.json: BPE model has no \"vocab\" object");
  }
  spec.vocab.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->get_ref<const nlohmann::json::object_t&>()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > INT32_MAX) {
      throw FileError("tokenizer.json: vocab entry \"" + token + "\" has an invalid id");
    }
    spec.vocab.emplace_back(token, id.get<std::int32_t>());
  }
  const auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) {
    throw FileError("tokenizer.json: BPE model has no \"merges\" array");
  }
  spec.merges.reserve(merges_it->size());
  for (const auto& merge : *merges_it) {
    if (merge.is_string()) {
      const std::string_view s = merge.get_ref<const std::string&>();
      const auto space = s.find(' ');
      if (space == std::string::npos) {
        throw FileError("tokenizer.json: bad merge \"" + std::string(s) + "\"");
      }
      spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      spec.merges.emplace_back(merge[0].get_ref<const std::string&>(),
                               merge[1].get_ref<const std::string&>());
    } else {
      throw FileError("tokenizer.json: merge #" + std::to_string(spec.merges.size()) +
                      " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  auto string_field = [&](const char* key) -> std::string_view {
    const auto it = model.find(key);
    return it != model.end() && it->is_string()
               ? std::string_view(it->get_ref<const std::string&>())
               : std::string_view();
  };
  spec.unk_token = string_field("unk_token");
  spec.continuing_subword_prefix = string_field("continuing_subword_prefix");
  spec.end_of_word_suffix = string_field("end_of_word_suffix");
  spec.fuse_unk = json_bool(model, "fuse_unk", false);
  spec.byte_fallback = json_bool(model, "byte_fallback", false);
  spec.ignore_merges = json_bool(model, "ignore_merges", false);
  return spec;
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model) : BpeModel(spec_from_json(model)) {}

BpeModel::BpeModel(const BpeSpec& spec) : cache_owner_(next_cache_owner()) {
  vocab_.reserve(spec.vocab.size());
  for (const auto& [token, id] : spec.vocab) vocab_.add(token, id);

  if (!spec.unk_token.empty()) {
    // HF accepts an unk_token missing from the vocab and fails only when it is needed;
    // treating it as absent drops unknown characters instead, which cannot crash.
    if (auto id = token_to_id(spec.unk_token)) unk_id_ = *id;
  }
  continuing_subword_prefix_ = spec.continuing_subword_prefix;
  end_of_word_suffix_ = spec.end_of_word_suffix;
  fuse_unk_ = spec.fuse_unk;
  byte_fallback_ = spec.byte_fallback;
  ignore_merges_ = spec.ignore_merges;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[static_cast<std::size_t>(b)] = token_to_id(name).value_or(-1);
  }
  if (continuing_subword_prefix_.empty() && end_of_word_suffix_.empty()) {
    char_ids_.assign(kCharTableSize, -1);
    std::string ch;
    for (char32_t cp = 0; cp < kCharTableSize; ++cp) {
      ch.clear();
      append_utf8(ch, cp);
      char_ids_[cp] = token_to_id(ch).value_or(-1);
    }
  }

  merges_.reserve(spec.merges.size());
  std::uint32_t rank = 0;
  std::string merged;
  for (const auto& [a, b] : spec.merges) {
    const auto a_id = token_to_id(a);
    const auto b_id = token_to_id(b);
    merged.assign(a);
    if (!continuing_subword_prefix_.empty() && b.starts_with(continuing_subword_prefix_)) {
      merged.append(b.substr(continuing_subword_prefix_.size()));
    } else {
      merged.append(b);
    }
    const auto new_id = token_to_id(merged);
    if (!a_id || !b_id || !new_id) {
      throw FileError(spec.merges_name + "[" + std::to_string(rank) + "] \"" +
                      std::string(a.substr(0, 100)) + " " + std::string(b.substr(0, 100)) +
                      "\" uses a token missing from the vocab");
    }
    // Like HF's map construction, a repeated pair keeps its last rank.
    merges_.insert_or_assign(pair_key(*a_id, *b_id), Merge{rank, *new_id});
    ++rank;
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  const std::uint64_t hash = hash_bytes(word);
  if (ignore_merges_) {
    if (auto id = vocab_.find_hashed(word, hash)) {
      out.push_back(*id);
      return;
    }
  }
  // A single character needs no merging and no cache.
  if (word.size() <= 4 &&
      utf8_sequence_length(static_cast<unsigned char>(word[0])) == word.size()) {
    merge_word(word, out);
    return;
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  WordCache& cache = thread_cache();
  if (cacheable) {
    cache.claim(cache_owner_);
    if (cache.find(word, hash, out)) return;
  }
  const std::size_t mark = out.size();
  merge_word(word, out);
  if (cacheable) {
    cache.insert(word, hash, std::span<const std::int32_t>(out).subspan(mark));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<std::int32_t>& out) const {
  struct Symbol {
    std::int32_t id;
    int prev;
    int next;
  };
  // Scratch space reused across calls on this thread.
  thread_local std::vector<Symbol> symbols;
  thread_local std::string piece;
  symbols.clear();
  auto push = [&](std::int32_t id) {
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  };

  bool pending_unk = false;  // an unk not yet pushed, so that following unks can fuse into it
  auto flush_unk = [&] {
    if (pending_unk) push(*unk_id_);
    pending_unk = false;
  };
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t start = i;
    const char32_t cp = next_code_point(word, i);
    std::optional<std::int32_t> id;
    if (!char_ids_.empty() && cp < kCharTableSize) {
      if (char_ids_[cp] >= 0) id = char_ids_[cp];
    } else {
      piece.clear();
      if (start > 0) piece.append(continuing_subword_prefix_);
      piece.append(word.substr(start, i - start));
      if (i == word.size()) piece.append(end_of_word_suffix_);
      id = token_to_id(piece);
    }
    if (id) {
      flush_unk();
      push(*id);
      continue;
    }
    const std::string_view ch = word.substr(start, i - start);
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
  const int n = static_cast<int>(symbols.size());
  if (n == 0) return;
  symbols.back().next = -1;

  if (static_cast<std::size_t>(n) <= kLinearScanSymbols) {
    // Short words: find the lowest-ranked pair (leftmost on ties) by scanning, as the heap
    // below would pop it. ranks[k] is the rank of the pair starting at symbol k.
    std::uint32_t ranks[kLinearScanSymbols];
    std::int32_t results[kLinearScanSymbols];
    constexpr std::uint32_t kNone = UINT32_MAX;
    auto rank_at = [&](int k) -> std::uint32_t {
      const int next = symbols[static_cast<std::size_t>(k)].next;
      if (next < 0) return kNone;
      const Merge* m = find_merge(symbols[static_cast<std::size_t>(k)].id,
                                  symbols[static_cast<std::size_t>(next)].id);
      if (m == nullptr) return kNone;
      results[k] = m->new_id;
      return m->rank;
    };
    for (int k = 0; k < n; ++k) ranks[k] = rank_at(k);
    for (;;) {
      int best = -1;
      std::uint32_t best_rank = kNone;
      for (int k = 0; k >= 0; k = symbols[static_cast<std::size_t>(k)].next) {
        if (ranks[k] < best_rank) {
          best_rank = ranks[k];
          best = k;
        }
      }
      if (best < 0) break;
      Symbol& left = symbols[static_cast<std::size_t>(best)];
      const int right = left.next;
      left.id = results[best];
      left.next = symbols[static_cast<std::size_t>(right)].next;
      if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = best;
      ranks[best] = rank_at(best);
      if (left.prev >= 0) ranks[left.prev] = rank_at(left.prev);
    }
  } else {
    struct Candidate {
      std::uint32_t rank;
      int pos;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::vector<bool> alive(static_cast<std::size_t>(n), true);
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    auto consider = [&](int left) {
      if (left < 0) return;
      const int right = symbols[static_cast<std::size_t>(left)].next;
      if (right < 0) return;
      if (const Merge* m = find_merge(symbols[static_cast<std::size_t>(left)].id,
                                      symbols[static_cast<std::size_t>(right)].id)) {
        queue.push({m->rank, left});
      }
    };
    for (int k = 0; k + 1 < n; ++k) consider(k);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
      if (!alive[static_cast<std::size_t>(top.pos)] || left.next < 0) continue;
      Symbol& right = symbols[static_cast<std::size_t>(left.next)];
      const Merge* m = find_merge(left.id, right.id);
      // Entries go stale when a neighbour merged first; skip anything no longer current.
      if (m == nullptr || m->rank != top.rank) continue;
      left.id = m->new_id;
      alive[static_cast<std::size_t>(left.next)] = false;
      left.next = right.next;
      if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = top.pos;
      consider(left.prev);
      consider(top.pos);
    }
  }
  for (int k = 0; k >= 0; k = symbols[static_cast<std::size_t>(k)].next) {
    out.push_back(symbols[static_cast<std::size_t>(k)].id);
  }
}

}  // namespace lmserve::tokenizer::detail
