// Splits Jinja2 source into data and tag tokens with Jinja2's whitespace rules as
// transformers configures them (trim_blocks, lstrip_blocks, `-`/`+` markers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::chat::jinja {

enum class TokenType {
  kData,
  kBlockBegin,
  kBlockEnd,
  kVariableBegin,
  kVariableEnd,
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string value;  // data text, name, decoded string literal, operator spelling
  std::int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

// Throws TemplateSyntaxError on malformed input (unterminated tags, strings, bad characters).
std::vector<Token> tokenize(std::string_view source);

}  // namespace lmserve::chat::jinja
