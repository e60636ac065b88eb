// Text-level stop strings over a stream of decoded text: holds back any suffix that could
// still become a stop string, so a stop string never reaches the client, not even in part.
// Stop strings apply to the answer only: spans of the output that are not (a think block, a
// tool call, delimited by their markers) pass through unmatched.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::engine {

// Where stop strings do not apply: from `open` to `close` (both markers included; an empty
// `close` runs to the end of the output). `inside` is the span the output starts in (a think
// block the prompt opened), -1 for none.
struct StopExemptions {
  struct Span {
    std::string open;
    std::string close;
  };
  std::vector<Span> spans;
  int inside = -1;
};

class StopMatcher {
 public:
  // Empty strings are ignored, as are spans with an empty `open`.
  explicit StopMatcher(const std::vector<std::string>& stops, StopExemptions exemptions = {});

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
  // Moves what can be decided of held_ into `result`; false when it must wait for more text.
  bool scan_answer(Result& result);
  bool scan_span(Result& result);

  std::vector<std::string> stops_;
  StopExemptions exemptions_;
  int inside_ = -1;
  std::string held_;
};

}  // namespace lmserve::engine
