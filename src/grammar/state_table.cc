#include "grammar/state_table.h"

#include <algorithm>

#include "grammar/matcher.h"

namespace lmserve::grammar {

std::size_t StateTable::KeyHash::operator()(const NodeKey& k) const {
  return std::hash<const void*>()(k.second) * 0x9E3779B97F4A7C15ull ^ k.first;
}

std::size_t StateTable::KeyHash::operator()(const std::vector<std::uint32_t>& v) const {
  std::size_t h = v.size();
  for (std::uint32_t x : v) h = (h ^ x) * 0x100000001B3ull;
  return h;
}

StateTable::StateTable(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  // Refine the partition of bytes by each byte set in turn.
  int classes = 1;
  for (const std::bitset<256>& set : grammar_->byte_sets) {
    std::array<int, 512> split;  // (old class, in set) -> new class
    split.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      int& to = split[byte_class_[b] * 2 + (set.test(b) ? 1 : 0)];
      if (to < 0) to = next++;
      byte_class_[b] = static_cast<std::uint8_t>(to);
    }
    classes = next;
  }
  class_bytes_.resize(static_cast<std::size_t>(classes));
  for (int b = 0; b < 256; ++b)
    class_bytes_[byte_class_[b]].push_back(static_cast<std::uint8_t>(b));
  nodes_.push_back({0, nullptr});
  std::vector<std::uint32_t> start;
  bool at_start = true;
  for (const Element& e : grammar_->rules[grammar_->root]) {
    if (at_start) expand(push(0, &e), start);
    at_start = e.ends_alternative();
  }
  intern(std::move(start));
}

// A finished alternative is never stored: pushing its end is returning to the parent.
std::uint32_t StateTable::push(std::uint32_t parent, const Element* top) {
  if (top->ends_alternative()) return parent;
  auto [it, inserted] =
      node_ids_.try_emplace({parent, top}, static_cast<std::uint32_t>(nodes_.size()));
  if (inserted) nodes_.push_back({parent, top});
  return it->second;
}

// Opens rule references until a byte set (or nothing) is on top; each way of opening a rule
// is a separate stack.
void StateTable::expand(std::uint32_t stack, std::vector<std::uint32_t>& out) {
  if (stack == 0 || nodes_[stack].top->kind == Element::Kind::kByteSet) {
    if (out.size() >= kMaxStacks) throw GrammarError("grammar too ambiguous (too many parses)");
    out.push_back(stack);
    return;
  }
  const Element* ref = nodes_[stack].top;
  const std::uint32_t resume = push(nodes_[stack].parent, ref + 1);
  bool at_start = true;
  for (const Element& e : grammar_->rules[ref->value]) {
    if (at_start) expand(push(resume, &e), out);
    at_start = e.ends_alternative();
  }
}

std::uint32_t StateTable::intern(std::vector<std::uint32_t> stacks) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  auto it = state_ids_.find(stacks);
  if (it != state_ids_.end()) return it->second;
  State state;
  for (std::uint32_t s : stacks) {
    if (s == 0) {
      state.accepting = true;
    } else {
      state.bytes |= grammar_->byte_sets[nodes_[s].top->value];
    }
  }
  const auto id = static_cast<std::uint32_t>(states_.size());
  // Bytes no stack takes are known dead now; the rest are computed on demand.
  for (int b = 0; b < 256; ++b) transitions_.push_back(state.bytes.test(b) ? kUnknown : kDead);
  state.stacks = stacks;
  states_.push_back(std::move(state));
  state_ids_.emplace(std::move(stacks), id);
  return id;
}

std::uint32_t StateTable::compute(std::uint32_t state, std::uint8_t byte) {
  scratch_.clear();
  for (std::uint32_t s : states_[state].stacks) {
    if (s == 0 || !grammar_->byte_sets[nodes_[s].top->value].test(byte)) continue;
    expand(push(nodes_[s].parent, nodes_[s].top + 1), scratch_);
  }
  const std::uint32_t id = scratch_.empty() ? kDead : intern(scratch_);
  for (std::uint8_t b : class_bytes_[byte_class_[byte]])
    transitions_[std::size_t{state} * 256 + b] = id;
  return id;
}

std::uint32_t StateTable::import(const StateTable& other, std::uint32_t state) {
  std::vector<std::uint32_t> stacks;
  for (std::uint32_t s : other.states_[state].stacks) {
    std::vector<const Element*> frames;  // innermost first
    for (; s != 0; s = other.nodes_[s].parent) frames.push_back(other.nodes_[s].top);
    std::uint32_t id = 0;
    for (auto it = frames.rbegin(); it != frames.rend(); ++it) id = push(id, *it);
    stacks.push_back(id);
  }
  return intern(std::move(stacks));
}

}  // namespace lmserve::grammar
