#include "engine/stop_matcher.h"

#include <algorithm>

namespace lmserve::engine {

StopMatcher::StopMatcher(const std::vector<std::string>& stops) {
  for (const auto& s : stops) {
    if (!s.empty()) stops_.push_back(s);
  }
}

StopMatcher::Result StopMatcher::push(std::string_view text) {
  held_.append(text);
  Result result;
  // Earliest occurrence wins; on a tie the longest stop string wins.
  std::size_t best_pos = std::string::npos;
  std::size_t best_len = 0;
  const std::string* best = nullptr;
  for (const auto& stop : stops_) {
    std::size_t pos = held_.find(stop);
    if (pos == std::string::npos) continue;
    if (pos < best_pos || (pos == best_pos && stop.size() > best_len)) {
      best_pos = pos;
      best_len = stop.size();
      best = &stop;
    }
  }
  if (best_pos != std::string::npos) {
    result.text = held_.substr(0, best_pos);
    result.stopped = true;
    result.matched = *best;
    held_.clear();
    return result;
  }
  // Hold the longest suffix that is a proper prefix of some stop string.
  std::size_t hold = 0;
  for (const auto& stop : stops_) {
    std::size_t max_len = std::min(stop.size() - 1, held_.size());
    for (std::size_t len = max_len; len > hold; --len) {
      if (std::string_view(held_).substr(held_.size() - len) ==
          std::string_view(stop).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  result.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return result;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace lmserve::engine
