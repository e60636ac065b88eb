// Text-level stop strings over a stream of decoded text: holds back any suffix that could
// still become a stop string, so a stop string never reaches the client, not even in part.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::engine {

class StopMatcher {
 public:
  // Empty strings are ignored.
  explicit StopMatcher(const std::vector<std::string>& stops);

  struct Result {
    std::string text;      // safe to emit now
    bool stopped = false;  // a stop string matched; text is everything before it
    std::string matched;   // the stop string that matched (when stopped)
  };

  // Appends decoded text (complete UTF-8). After a stop, further pushes are not allowed.
  Result push(std::string_view text);

  // The held-back text at end of generation (it is not a stop match).
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

}  // namespace lmserve::engine
