#include "engine/stop_matcher.h"

#include <algorithm>

namespace lmserve::engine {

namespace {

// The length of the longest suffix of `text` that is a proper prefix of `marker`.
std::size_t partial_length(std::string_view text, std::string_view marker) {
  const std::size_t most = std::min(marker.size() - 1, text.size());
  for (std::size_t len = most; len > 0; --len) {
    if (text.substr(text.size() - len) == marker.substr(0, len)) return len;
  }
  return 0;
}

}  // namespace

StopMatcher::StopMatcher(const std::vector<std::string>& stops, StopExemptions exemptions)
    : inside_(exemptions.inside) {
  for (const auto& s : stops) {
    if (!s.empty()) stops_.push_back(s);
  }
  // Without stop strings there is nothing to exempt: text passes through unheld.
  for (auto& span : exemptions.spans) {
    if (!span.open.empty() && !stops_.empty()) exemptions_.spans.push_back(std::move(span));
  }
  if (inside_ >= static_cast<int>(exemptions_.spans.size())) inside_ = -1;
}

StopMatcher::Result StopMatcher::push(std::string_view text) {
  held_.append(text);
  Result result;
  while (inside_ >= 0 ? scan_span(result) : scan_answer(result)) {
    if (result.stopped) break;
  }
  return result;
}

bool StopMatcher::scan_answer(Result& result) {
  // Earliest occurrence wins; on a tie the longest stop string wins, and a stop string wins
  // over a span marker (the client asked for it).
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
  int span = -1;
  std::size_t span_pos = std::string::npos;
  for (std::size_t i = 0; i < exemptions_.spans.size(); ++i) {
    std::size_t pos = held_.find(exemptions_.spans[i].open);
    if (pos < span_pos) {
      span_pos = pos;
      span = static_cast<int>(i);
    }
  }
  if (best_pos != std::string::npos && best_pos <= span_pos) {
    result.text += held_.substr(0, best_pos);
    result.stopped = true;
    result.matched = *best;
    held_.clear();
    return false;
  }
  if (span >= 0) {
    // A stop string that starts before the marker and runs past the held text may still
    // match: wait for it.
    for (std::size_t q = 0; q < span_pos; ++q) {
      const std::string_view tail = std::string_view(held_).substr(q);
      for (const auto& stop : stops_) {
        if (stop.size() > tail.size() && stop.starts_with(tail)) {
          result.text += held_.substr(0, q);
          held_.erase(0, q);
          return false;
        }
      }
    }
    const std::size_t end =
        span_pos + exemptions_.spans[static_cast<std::size_t>(span)].open.size();
    result.text += held_.substr(0, end);
    held_.erase(0, end);
    inside_ = span;
    return true;
  }
  // Hold the longest suffix that could still begin a stop string or a span.
  std::size_t hold = 0;
  for (const auto& stop : stops_) hold = std::max(hold, partial_length(held_, stop));
  for (const auto& s : exemptions_.spans) hold = std::max(hold, partial_length(held_, s.open));
  result.text += held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return false;
}

bool StopMatcher::scan_span(Result& result) {
  const std::string& close = exemptions_.spans[static_cast<std::size_t>(inside_)].close;
  const std::size_t pos = close.empty() ? std::string::npos : held_.find(close);
  if (pos == std::string::npos) {
    const std::size_t hold = close.empty() ? 0 : partial_length(held_, close);
    result.text += held_.substr(0, held_.size() - hold);
    held_.erase(0, held_.size() - hold);
    return false;
  }
  result.text += held_.substr(0, pos + close.size());
  held_.erase(0, pos + close.size());
  inside_ = -1;
  return true;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace lmserve::engine
