#include "util/utf8.h"

#include <cstdint>

namespace lmserve::util {
namespace {

enum class Status { kComplete, kIllFormed, kTruncated };

struct Scan {
  Status status;
  std::size_t length;  // bytes of the sequence, or of its maximal valid subpart
};

// Scans the UTF-8 sequence starting at s[i] following Unicode's well-formedness table.
Scan scan_sequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<std::uint8_t>(s[i]);
  if (b0 < 0x80) return {Status::kComplete, 1};
  std::size_t need;
  std::uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {Status::kIllFormed, 1};
  }
  for (std::size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return {Status::kTruncated, k};
    const auto b = static_cast<std::uint8_t>(s[i + k]);
    if (b < lo || b > hi) return {Status::kIllFormed, k};
    lo = 0x80;
    hi = 0xBF;
  }
  return {Status::kComplete, need + 1};
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    Scan sc = scan_sequence(s, i);
    if (sc.status != Status::kComplete) return false;
    i += sc.length;
  }
  return true;
}

std::size_t complete_utf8_prefix(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    Scan sc = scan_sequence(s, i);
    if (sc.status == Status::kTruncated) return i;
    i += sc.length;
  }
  return s.size();
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    Scan sc = scan_sequence(s, i);
    if (sc.status == Status::kComplete) {
      out.append(s.substr(i, sc.length));
    } else {
      out.append("\xEF\xBF\xBD");
    }
    i += sc.length;
  }
  return out;
}

std::size_t code_point_count(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

int decode_utf8(std::string_view s, std::size_t pos, char32_t& cp) {
  const auto c = static_cast<unsigned char>(s[pos]);
  const int n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || pos + static_cast<std::size_t>(n) > s.size()) return 0;
  char32_t v = n == 1 ? c : c & (0x7F >> n);
  for (int i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + static_cast<std::size_t>(i)]);
    if ((b & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b & 0x3F);
  }
  cp = v;
  return n;
}

}  // namespace lmserve::util
