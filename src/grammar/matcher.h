// The incremental parser: the set of parse stacks a grammar can be in after some bytes
// (llama.cpp's design). A stack lists, innermost last, the next element of each open
// alternative; every non-empty stack has a byte set on top, and an empty stack means the
// input so far is a complete sentence.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace lmserve::grammar {

using Stack = std::vector<const Element*>;
using Stacks = std::vector<Stack>;

// Beyond this many live stacks the grammar is too ambiguous to run (an error, not a hang).
constexpr std::size_t kMaxStacks = 4096;

// The stacks after reading `byte` from `in`, sorted and without duplicates (into `out`).
void advance(const Grammar& grammar, const Stacks& in, std::uint8_t byte, Stacks& out);
// The stacks at the start of `rule`.
Stacks initial_stacks(const Grammar& grammar, std::uint32_t rule);

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> grammar);

  // Consumes bytes; false (and no change) when they cannot continue a sentence.
  bool accept(std::string_view bytes);
  bool accepting() const;     // the bytes so far form a complete sentence
  bool can_continue() const;  // some byte can still follow
  const Stacks& stacks() const { return stacks_; }
  const Grammar& grammar() const { return *grammar_; }

 private:
  std::shared_ptr<const Grammar> grammar_;
  Stacks stacks_;
};

}  // namespace lmserve::grammar
