#include "util/strings.h"

namespace lmserve::util {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::size_t pos = from.empty() ? std::string_view::npos : text.find(from);
  if (pos == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::size_t last = 0;
  for (; pos != std::string_view::npos; pos = text.find(from, last)) {
    out.append(text, last, pos - last);
    out.append(to);
    last = pos + from.size();
  }
  out.append(text, last);
  return out;
}

}  // namespace lmserve::util
