// UTF-8 helpers shared by the tokenizer, the stop-string matcher and the HTTP layer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lmserve::util {

// True when s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Length of the longest prefix of s that ends on a complete UTF-8 sequence boundary,
// treating a trailing *incomplete but so far valid* sequence as not yet complete.
// Used to hold back bytes that may still be completed by the next token.
std::size_t complete_utf8_prefix(std::string_view s);

// Code points in s, counting every byte that does not continue a sequence (so an incomplete or
// ill-formed sequence counts as its lead byte).
std::size_t code_point_count(std::string_view s);

// Decodes the sequence starting at s[pos] into cp and returns its length (1-4), or 0 when the
// lead byte is not one, the sequence is cut off or a continuation byte is wrong. Overlongs,
// surrogates and values past U+10FFFF are decoded as written: callers that care check cp.
int decode_utf8(std::string_view s, std::size_t pos, char32_t& cp);

// Appends the UTF-8 encoding of code point cp (cp <= U+10FFFF).
void append_utf8(std::string& out, char32_t cp);

// Replaces every ill-formed sequence with U+FFFD (maximal-subpart rule, as Python and HF do).
std::string sanitize_utf8(std::string_view s);

}  // namespace lmserve::util
