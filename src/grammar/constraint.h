// One sequence's grammar state during generation: which tokens may come next (a mask over
// the vocabulary, cached per parser state) and the advance on each sampled token.
#pragma once

#include <bitset>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/matcher.h"
#include "grammar/token_trie.h"

namespace lmserve::grammar {

// Bit i set = token i allowed.
struct TokenMask {
  std::vector<std::uint64_t> words;
  bool test(std::int32_t id) const {
    const auto i = static_cast<std::size_t>(id);
    return i / 64 < words.size() && (words[i / 64] >> (i % 64) & 1);
  }
};

// The parser states (sets of stacks) met so far, numbered, with their transitions on each byte
// filled in as walks need them: a lazily built DFA, so a trie walk mostly follows array
// entries instead of re-parsing (inside a string every character leads back to few states).
class StateTable {
 public:
  static constexpr std::uint32_t kDead = 0xFFFFFFFF;     // no stack survives the byte
  static constexpr std::uint32_t kUnknown = 0xFFFFFFFE;  // not computed yet

  explicit StateTable(const Grammar& grammar) : grammar_(grammar) {}
  std::uint32_t intern(Stacks stacks);
  std::uint32_t next(std::uint32_t state, std::uint8_t byte);
  const std::bitset<256>& bytes(std::uint32_t state) const { return states_[state].bytes; }
  std::size_t size() const { return states_.size(); }

 private:
  struct State {
    Stacks stacks;
    std::bitset<256> bytes;           // bytes some stack can take
    std::vector<std::uint32_t> next;  // 256 entries, kUnknown until computed
  };
  const Grammar& grammar_;
  std::vector<State> states_;
  std::map<Stacks, std::uint32_t> ids_;
};

class Constraint {
 public:
  // `trie` is shared by every sequence of a tokenizer and must outlive the constraint.
  Constraint(std::shared_ptr<const Grammar> grammar, const TokenTrie& trie);

  // The tokens allowed now (EOS is the caller's: allowed exactly when accepting()).
  const TokenMask& allowed();
  bool accepting() const { return matcher_.accepting(); }
  // Nothing more can follow: the output is complete.
  bool complete() const { return !matcher_.can_continue(); }
  // Advances over a sampled token; throws GrammarError if it was not allowed.
  void accept(std::int32_t token);

 private:
  Matcher matcher_;
  const TokenTrie& trie_;
  std::unique_ptr<StateTable> states_;
  // Parser states repeat (every character inside a string, say): one walk per state.
  std::unordered_map<std::uint32_t, std::shared_ptr<const TokenMask>> cache_;
  std::shared_ptr<const TokenMask> current_;
};

}  // namespace lmserve::grammar
