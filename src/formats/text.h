// Helpers shared by the format readers for turning file contents into error messages.
// Internal to formats/: names and strings from a file are untrusted and may be huge.
#pragma once

#include <string>
#include <string_view>

namespace lmserve::formats::detail {

// `s` in double quotes, control characters replaced by '?', cut after 200 bytes.
inline std::string quote_name(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 200)) {
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > 200) out += "...";
  out += '"';
  return out;
}

}  // namespace lmserve::formats::detail
