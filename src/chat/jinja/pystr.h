// Python `str` semantics over UTF-8 std::string: the operations chat templates call
// (strip, split, title, repr, float repr, ...) must match CPython byte for byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/utf8.h"

namespace lmserve::chat::jinja::pystr {

// Code points of s; ill-formed bytes decode to U+FFFD (Python strings cannot hold them).
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
using util::append_utf8;

// len(s) in code points.
std::size_t length(std::string_view s);
bool is_ascii(std::string_view s);

// str.isspace() for one code point (Unicode White_Space as CPython defines it).
bool is_space(char32_t cp);

// str.strip/lstrip/rstrip; chars = nullopt strips whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right);

// str.split(sep=None, maxsplit=-1) / str.rsplit.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               long long maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                long long maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()

// str.replace(old, new, count); count < 0 means all.
std::string replace(std::string_view s, std::string_view old, std::string_view repl,
                    long long count);

// repr(s): quotes and escapes exactly as CPython.
std::string repr(std::string_view s);

// repr(float) / str(float): shortest round-trip digits, CPython's exponent rules.
std::string float_repr(double d);

// markupsafe.escape for plain text.
std::string html_escape(std::string_view s);

// Python's `\w` (str pattern): alphanumeric or underscore.
bool is_word_char(char32_t cp);

}  // namespace lmserve::chat::jinja::pystr
