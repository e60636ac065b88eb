// The incremental parser as a lazily built DFA over bytes. A parser state is a set of parse
// stacks (as in matcher.h); stacks are hash-consed into a tree of (parent, element) nodes
// so a stack is one id, and a state a sorted list of ids. Transitions are filled in the
// first time a walk or an advance needs them, then are one array read.
//
// Unlike the reference Matcher, a frame whose alternative is finished is dropped as soon as
// it is pushed (a tail call), so `rest ::= item rest | ""` loops through a fixed set of
// states instead of growing the stack: inside an unbounded string every character leads
// back to the same state, and its mask is computed once.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grammar/grammar.h"

namespace lmserve::grammar {

class StateTable {
 public:
  static constexpr std::uint32_t kDead = 0xFFFFFFFF;     // no stack survives the byte
  static constexpr std::uint32_t kUnknown = 0xFFFFFFFE;  // not computed yet

  // State 0 is the start of the grammar's root rule.
  explicit StateTable(std::shared_ptr<const Grammar> grammar);

  std::uint32_t next(std::uint32_t state, std::uint8_t byte) {
    const std::uint32_t id = transitions_[std::size_t{state} * 256 + byte];
    return id != kUnknown ? id : compute(state, byte);
  }
  bool accepting(std::uint32_t state) const { return states_[state].accepting; }
  bool can_continue(std::uint32_t state) const { return states_[state].bytes.any(); }
  std::size_t size() const { return states_.size(); }

  // `state` of `other` (a table of the same grammar) as a state of this table: a full table
  // starts afresh from where a sequence is.
  std::uint32_t import(const StateTable& other, std::uint32_t state);

 private:
  struct Node {
    std::uint32_t parent;  // 0: the empty stack
    const Element* top;
  };
  struct State {
    std::vector<std::uint32_t> stacks;  // sorted node ids; 0 = the empty stack
    std::bitset<256> bytes;             // bytes some stack can take
    bool accepting = false;
  };
  using NodeKey = std::pair<std::uint32_t, const Element*>;
  struct KeyHash {
    std::size_t operator()(const NodeKey& k) const;
    std::size_t operator()(const std::vector<std::uint32_t>& v) const;
  };

  std::uint32_t compute(std::uint32_t state, std::uint8_t byte);
  std::uint32_t push(std::uint32_t parent, const Element* top);
  void expand(std::uint32_t stack, std::vector<std::uint32_t>& out);
  std::uint32_t intern(std::vector<std::uint32_t> stacks);

  std::shared_ptr<const Grammar> grammar_;
  std::vector<Node> nodes_;  // nodes_[0] stands for the empty stack
  std::unordered_map<NodeKey, std::uint32_t, KeyHash> node_ids_;
  std::vector<State> states_;
  std::unordered_map<std::vector<std::uint32_t>, std::uint32_t, KeyHash> state_ids_;
  std::vector<std::uint32_t> transitions_;  // 256 per state
  // Bytes that every byte set of the grammar treats alike move every state alike: one
  // transition computed fills in the whole class (a string's content bytes are one class).
  std::array<std::uint8_t, 256> byte_class_{};
  std::vector<std::vector<std::uint8_t>> class_bytes_;
  std::vector<std::uint32_t> scratch_;
};

}  // namespace lmserve::grammar
