// One sequence's grammar state during generation: which tokens may come next (a mask over
// the vocabulary, cached per parser state) and the advance on each sampled token.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "grammar/state_table.h"
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

class Constraint {
 public:
  // `trie` is shared by every sequence of a tokenizer and must outlive the constraint.
  Constraint(std::shared_ptr<const Grammar> grammar, const TokenTrie& trie);

  // The tokens allowed now (EOS is the caller's: allowed exactly when accepting()).
  const TokenMask& allowed();
  bool accepting() const { return states_->accepting(state_); }
  // Nothing more can follow: the output is complete.
  bool complete() const { return !states_->can_continue(state_); }
  // Advances over a sampled token; throws GrammarError if it was not allowed.
  void accept(std::int32_t token);

 private:
  std::shared_ptr<const Grammar> grammar_;
  const TokenTrie& trie_;
  std::unique_ptr<StateTable> states_;
  std::uint32_t state_ = 0;
  // Parser states repeat (every character inside a string, say): one walk per state.
  std::unordered_map<std::uint32_t, std::shared_ptr<const TokenMask>> cache_;
  std::shared_ptr<const TokenMask> current_;
  std::vector<std::uint32_t> walk_states_;  // the state at each trie depth during a walk
};

}  // namespace lmserve::grammar
