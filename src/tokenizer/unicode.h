// Code-point level helpers for the tokenizer pipeline: UTF-8 iteration, the Unicode
// properties HF's Rust code relies on (char::is_whitespace & co.) and the GPT-2 byte map.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/utf8.h"

namespace lmserve::tokenizer::detail {

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, std::size_t& i);

// Byte length of the UTF-8 sequence starting with lead byte b (1 for stray bytes).
std::size_t utf8_sequence_length(unsigned char b);

using util::append_utf8;

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_whitespace(char32_t cp);
// Rust's char::is_numeric: general categories Nd, Nl, No.
bool is_numeric(char32_t cp);
// Rust's char::is_alphanumeric, approximated by general categories L* and N*.
bool is_alphanumeric(char32_t cp);
// HF's is_punc: ASCII punctuation or any P* general category.
bool is_punctuation(char32_t cp);
// General category Mn (what StripAccents removes after NFD).
bool is_nonspacing_mark(char32_t cp);

// GPT-2's reversible byte <-> printable code point mapping used by ByteLevel.
const std::string& byte_to_unicode(unsigned char b);  // UTF-8 of the mapped code point
// The byte a code point stands for, or -1 when it is not part of the table.
int unicode_to_byte(char32_t cp);

}  // namespace lmserve::tokenizer::detail
