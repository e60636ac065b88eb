#include "tokenizer/hash_map.h"

#include <algorithm>
#include <stdexcept>

namespace lmserve::tokenizer::detail {

void StringIdMap::reserve(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  max_probe_ = 0;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    std::size_t i = s.hash & mask_;
    std::uint32_t probe = 0;
    while (slots_[i].id >= 0) {
      i = (i + 1) & mask_;
      ++probe;
    }
    slots_[i] = s;
    if (probe > max_probe_) max_probe_ = probe;
  }
}

void StringIdMap::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

void StringIdMap::insert(std::string_view key, std::int32_t id, bool overwrite) {
  if (id < 0) throw std::invalid_argument("StringIdMap: negative id");
  if ((size_ + 1) * 2 > slots_.size()) grow();
  if (pool_.size() + key.size() > UINT32_MAX) throw std::length_error("StringIdMap: pool");
  const std::uint64_t hash = hash_bytes(key);
  std::size_t i = hash & mask_;
  for (std::uint32_t probe = 0;; ++probe, i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.id < 0) {
      s = {hash, static_cast<std::uint32_t>(pool_.size()), static_cast<std::uint32_t>(key.size()),
           id};
      pool_.append(key);
      ++size_;
      if (probe > max_probe_) max_probe_ = probe;
      return;
    }
    if (s.hash == hash && s.len == key.size() &&
        std::memcmp(pool_.data() + s.offset, key.data(), key.size()) == 0) {
      if (overwrite) s.id = id;
      return;
    }
  }
}

bool WordCache::find(std::string_view word, std::uint64_t hash,
                     std::vector<std::int32_t>& out) const {
  if (slots_.empty()) return false;
  hash |= 1;
  std::size_t i = hash & (kSlots - 1);
  for (std::uint32_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
    const Slot& s = slots_[i];
    if (s.hash == 0) return false;
    if (s.hash == hash && s.key_len == word.size() &&
        std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
      out.insert(out.end(), ids_.begin() + s.ids_offset, ids_.begin() + s.ids_offset + s.ids_len);
      return true;
    }
  }
  return false;
}

void WordCache::insert(std::string_view word, std::uint64_t hash,
                       std::span<const std::int32_t> ids) {
  if (word.size() > kKeyBytes || ids.size() > kMaxIds) return;
  if (slots_.empty()) {
    // Zeroed now, so every page is committed at once: the cache's memory is fixed from here.
    slots_.assign(kSlots, Slot{});
    keys_.assign(kKeyBytes, '\0');
    ids_.assign(kMaxIds, 0);
  }
  if (used_ * 2 >= kSlots || keys_used_ + word.size() > kKeyBytes ||
      ids_used_ + ids.size() > kMaxIds) {
    clear();
  }
  hash |= 1;
  std::size_t i = hash & (kSlots - 1);
  for (std::uint32_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
    Slot& s = slots_[i];
    if (s.hash != 0) continue;
    s = {hash, static_cast<std::uint32_t>(keys_used_), static_cast<std::uint32_t>(word.size()),
         static_cast<std::uint32_t>(ids_used_), static_cast<std::uint32_t>(ids.size())};
    std::copy(word.begin(), word.end(), keys_.begin() + static_cast<std::ptrdiff_t>(keys_used_));
    std::copy(ids.begin(), ids.end(), ids_.begin() + static_cast<std::ptrdiff_t>(ids_used_));
    keys_used_ += word.size();
    ids_used_ += ids.size();
    ++used_;
    return;
  }
  // A crowded neighbourhood: leave the word uncached rather than probe further.
}

void WordCache::clear() {
  if (used_ == 0) return;
  std::fill(slots_.begin(), slots_.end(), Slot{});
  keys_used_ = 0;
  ids_used_ = 0;
  used_ = 0;
}

}  // namespace lmserve::tokenizer::detail
