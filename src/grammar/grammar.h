// A context-free grammar over bytes, the form the constrained sampler runs. Character
// classes of code points are lowered to UTF-8 byte sequences when the grammar is built, so
// matching never has to reassemble code points that tokens split.
#pragma once

#include <bitset>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::grammar {

// A grammar that does not parse or cannot be run (left recursion, missing rules).
class GrammarError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One position of an alternative. A rule's elements are its alternatives, each ended by
// kAlt, the last by kEnd, so a pointer to an element is a position inside one alternative.
struct Element {
  enum class Kind : std::uint8_t { kEnd, kAlt, kRuleRef, kByteSet };
  Kind kind;
  std::uint32_t value = 0;  // kRuleRef: rule index; kByteSet: index into byte_sets
  bool ends_alternative() const { return kind == Kind::kEnd || kind == Kind::kAlt; }
};

struct Grammar {
  std::vector<std::vector<Element>> rules;
  std::vector<std::bitset<256>> byte_sets;
  std::uint32_t root = 0;
};

// Parses GBNF (llama.cpp's grammar format: `name ::= alternatives`, "literals", [classes],
// [^negated], `.`, groups, `*` `+` `?` `{m}` `{m,}` `{m,n}`, # comments) with start rule
// `root`. Throws GrammarError naming what is wrong, including left recursion.
Grammar parse_gbnf(std::string_view text);

}  // namespace lmserve::grammar
