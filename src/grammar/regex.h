// JSON Schema `pattern` (an ECMAScript regular expression) -> GBNF, for the regular subset:
// literals, classes ([a-z], [^...]), `.`, escapes \d \w \s (and negations), \n \t \xHH
// \uHHHH, groups (capturing, (?:...), named), alternation and quantifiers * + ? {m} {m,}
// {m,n} (lazy or not). The whole string must match: a leading ^ and trailing $ are implied
// (a string that matches whole also matches where the pattern may float, so the output
// validates). Anything else (lookaround, backreferences, \b, \p{...}, ^ or $ elsewhere) is a
// RegexError naming what is unsupported.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace lmserve::grammar {

class RegexError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A GBNF expression for the strings that match `pattern` whole, as written inside a JSON
// string ('"', '\' and control characters escaped).
std::string regex_to_gbnf(std::string_view pattern);

}  // namespace lmserve::grammar
