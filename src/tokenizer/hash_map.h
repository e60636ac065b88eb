// Open-addressing hash tables for the encode hot path: vocabulary lookups by string, BPE
// merges by id pair, and the bounded per-thread word cache. Probe lengths are capped so that
// no input, however crafted, can make a lookup slow.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::tokenizer::detail {

inline std::uint64_t mix64(std::uint64_t h) {
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

// A fast, non-cryptographic hash of a short string, 8 bytes at a time.
inline std::uint64_t hash_bytes(std::string_view s, std::uint64_t seed = 0) {
  std::uint64_t h = seed ^ (0x9E3779B97F4A7C15ull * (s.size() + 1));
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0x94D049BB133111EBull;
  }
  return mix64(h);
}

// Immutable-after-build map from strings to ids. Keys live in one pool.
class StringIdMap {
 public:
  void reserve(std::size_t n);
  // Keeps the first id for a repeated key unless `overwrite`.
  void insert(std::string_view key, std::int32_t id, bool overwrite = true);
  std::optional<std::int32_t> find(std::string_view key) const {
    return find(key, hash_bytes(key));
  }
  std::optional<std::int32_t> find(std::string_view key, std::uint64_t hash) const {
    if (slots_.empty()) return std::nullopt;
    std::size_t i = hash & mask_;
    for (std::uint32_t probe = 0; probe <= max_probe_; ++probe, i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return std::nullopt;
      if (s.hash == hash && s.len == key.size() &&
          std::memcmp(pool_.data() + s.offset, key.data(), key.size()) == 0) {
        return s.id;
      }
    }
    return std::nullopt;
  }
  std::size_t size() const { return size_; }
  // Calls f(key, id) for every entry.
  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.id >= 0) f(std::string_view(pool_.data() + s.offset, s.len), s.id);
    }
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t offset = 0;
    std::uint32_t len = 0;
    std::int32_t id = -1;  // -1: empty
  };
  void grow();

  std::vector<Slot> slots_;
  std::string pool_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  std::uint32_t max_probe_ = 0;
};

// Map from a 64-bit key (two ids) to a small value, built once.
template <typename Value>
class U64Map {
 public:
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap > slots_.size()) rehash(cap);
  }
  void insert_or_assign(std::uint64_t key, const Value& value) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
    std::size_t i = mix64(key) & mask_;
    for (std::uint32_t probe = 0;; ++probe, i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (!s.used || s.key == key) {
        if (!s.used) ++size_;
        s = {key, value, true};
        if (probe > max_probe_) max_probe_ = probe;
        return;
      }
    }
  }
  const Value* find(std::uint64_t key) const {
    if (slots_.empty()) return nullptr;
    std::size_t i = mix64(key) & mask_;
    for (std::uint32_t probe = 0; probe <= max_probe_; ++probe, i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.key == key) return &s.value;
    }
    return nullptr;
  }

 private:
  struct Slot {
    std::uint64_t key = 0;
    Value value{};
    bool used = false;
  };
  void rehash(std::size_t cap) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    max_probe_ = 0;
    for (const Slot& s : old) {
      if (s.used) insert_or_assign(s.key, s.value);
    }
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  std::uint32_t max_probe_ = 0;
};

// Bounded cache from words to their ids. Not thread-safe: each thread owns one. Its memory is
// fixed: the slot table and the key and id arenas are allocated and zeroed on the first
// insert, and the cache starts over when any of them is full, so a thread's cache is resident
// in full from its first word on and no input makes it hold more. (Arenas that grew on demand
// made a server's RSS creep for as long as new words came: a tokenizer without a
// pre-tokenizer caches each whole prompt as one word.)
class WordCache {
 public:
  static constexpr std::size_t kSlots = 1 << 15;  // at most half used
  static constexpr std::size_t kKeyBytes = 256 << 10;
  static constexpr std::size_t kMaxIds = 64 << 10;
  static constexpr std::uint32_t kMaxProbe = 16;

  // Whose entries these are; a different owner empties the cache first.
  void claim(std::uint64_t owner) {
    if (owner_ != owner) {
      clear();
      owner_ = owner;
    }
  }
  bool find(std::string_view word, std::uint64_t hash, std::vector<std::int32_t>& out) const;
  // A word or id list larger than its arena is left uncached.
  void insert(std::string_view word, std::uint64_t hash, std::span<const std::int32_t> ids);
  void clear();
  // Bytes the cache holds: 0 before the first insert, then always the same.
  std::size_t memory_bytes() const {
    return slots_.capacity() * sizeof(Slot) + keys_.capacity() +
           ids_.capacity() * sizeof(std::int32_t);
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;  // 0: empty
    std::uint32_t key_offset = 0;
    std::uint32_t key_len = 0;
    std::uint32_t ids_offset = 0;
    std::uint32_t ids_len = 0;
  };
  std::uint64_t owner_ = 0;
  std::vector<Slot> slots_;
  std::vector<char> keys_;         // kKeyBytes, the first keys_used_ in use
  std::vector<std::int32_t> ids_;  // kMaxIds, the first ids_used_ in use
  std::size_t keys_used_ = 0;
  std::size_t ids_used_ = 0;
  std::size_t used_ = 0;
};

}  // namespace lmserve::tokenizer::detail
