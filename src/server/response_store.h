// The Responses API's store: each stored response (the object GET returns) and its whole
// conversation as chat messages, so that previous_response_id continues it. Bounded by
// entries, bytes and age; the least recently used entry goes first. Entries are kept as
// JSON text, so the bytes counted are the bytes held. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace lmserve::server {

struct ResponseStoreLimits {
  std::size_t max_entries = 1024;     // 0: nothing is stored
  double ttl_s = 3600;                // an entry is gone this long after it was stored
  std::size_t max_bytes = 256 << 20;  // response + conversation text of every entry
};

class ResponseStore {
 public:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::string response;      // the response object, JSON text
    std::string conversation;  // chat messages (instructions excluded), JSON text
  };

  explicit ResponseStore(ResponseStoreLimits limits) : limits_(limits) {}

  // Stores (or replaces) `id`, evicting the least recently used entries over the limits.
  // False when one entry alone is over the byte limit (nothing is stored).
  bool put(const std::string& id, Entry entry, Clock::time_point now = Clock::now());
  // The entry, which becomes the most recently used; nullopt when unknown or expired.
  std::optional<Entry> get(const std::string& id, Clock::time_point now = Clock::now());
  bool erase(const std::string& id);

  std::size_t size() const;
  std::size_t bytes() const;
  const ResponseStoreLimits& limits() const { return limits_; }

 private:
  using Expiry = std::multimap<Clock::time_point, std::string>;  // by time stored
  struct Node {
    std::string id;
    Entry entry;
    Expiry::iterator expiry;
    std::size_t bytes;
  };
  using List = std::list<Node>;  // most recently used first

  void drop(List::iterator it);
  void expire(Clock::time_point now);  // the caller holds mutex_

  ResponseStoreLimits limits_;
  mutable std::mutex mutex_;
  List lru_;
  Expiry expiry_;
  std::unordered_map<std::string, List::iterator> index_;
  std::size_t bytes_ = 0;
};

}  // namespace lmserve::server
