#include "server/response_store.h"

namespace lmserve::server {

void ResponseStore::drop(List::iterator it) {
  bytes_ -= it->bytes;
  expiry_.erase(it->expiry);
  index_.erase(it->id);
  lru_.erase(it);
}

void ResponseStore::expire(Clock::time_point now) {
  const auto ttl =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits_.ttl_s));
  while (!expiry_.empty() && now - expiry_.begin()->first >= ttl) {
    drop(index_.at(expiry_.begin()->second));
  }
}

bool ResponseStore::put(const std::string& id, Entry entry, Clock::time_point now) {
  const std::size_t bytes = id.size() + entry.response.size() + entry.conversation.size();
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(id); it != index_.end()) drop(it->second);
  if (limits_.max_entries == 0 || bytes > limits_.max_bytes) return false;
  expire(now);
  while (!lru_.empty() &&
         (lru_.size() >= limits_.max_entries || bytes_ + bytes > limits_.max_bytes)) {
    drop(std::prev(lru_.end()));
  }
  lru_.push_front({id, std::move(entry), expiry_.emplace(now, id), bytes});
  index_.emplace(id, lru_.begin());
  bytes_ += bytes;
  return true;
}

std::optional<ResponseStore::Entry> ResponseStore::get(const std::string& id,
                                                       Clock::time_point now) {
  std::lock_guard lock(mutex_);
  expire(now);
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->entry;
}

bool ResponseStore::erase(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  drop(it->second);
  return true;
}

std::size_t ResponseStore::size() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

std::size_t ResponseStore::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

}  // namespace lmserve::server
