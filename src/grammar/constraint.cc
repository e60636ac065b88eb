#include "grammar/constraint.h"

namespace lmserve::grammar {
namespace {

constexpr std::size_t kMaxCachedMasks = 256;
constexpr std::size_t kMaxStates = 20000;  // beyond it the table starts afresh

// Marks every token whose bytes lead from `state` to a live state.
void walk(StateTable& table, const TokenTrie& trie, std::uint32_t node, std::uint32_t state,
          TokenMask& mask) {
  const std::bitset<256> bytes = table.bytes(state);  // a copy: next() may grow the table
  const TokenTrie::Node& n = trie.nodes()[node];
  for (std::uint32_t e = n.edges_begin; e < n.edges_end; ++e) {
    const TokenTrie::Edge& edge = trie.edges()[e];
    if (!bytes.test(edge.byte)) continue;
    const std::uint32_t next = table.next(state, edge.byte);
    if (next == StateTable::kDead) continue;
    const TokenTrie::Node& child = trie.nodes()[edge.node];
    for (std::uint32_t t = child.tokens_begin; t < child.tokens_end; ++t) {
      const auto id = static_cast<std::size_t>(trie.token_ids()[t]);
      mask.words[id / 64] |= std::uint64_t{1} << (id % 64);
    }
    if (child.edges_begin != child.edges_end) walk(table, trie, edge.node, next, mask);
  }
}

}  // namespace

std::uint32_t StateTable::intern(Stacks stacks) {
  auto it = ids_.find(stacks);
  if (it != ids_.end()) return it->second;
  State state;
  for (const Stack& s : stacks)
    if (!s.empty()) state.bytes |= grammar_.byte_sets[s.back()->value];
  state.next.assign(256, kUnknown);
  state.stacks = stacks;
  const auto id = static_cast<std::uint32_t>(states_.size());
  states_.push_back(std::move(state));
  ids_.emplace(std::move(stacks), id);
  return id;
}

std::uint32_t StateTable::next(std::uint32_t state, std::uint8_t byte) {
  std::uint32_t& slot = states_[state].next[byte];
  if (slot != kUnknown) return slot;
  Stacks out;
  advance(grammar_, states_[state].stacks, byte, out);
  const std::uint32_t id = out.empty() ? kDead : intern(std::move(out));
  states_[state].next[byte] = id;  // `slot` may dangle: intern() can grow states_
  return id;
}

Constraint::Constraint(std::shared_ptr<const Grammar> grammar, const TokenTrie& trie)
    : matcher_(std::move(grammar)), trie_(trie) {}

const TokenMask& Constraint::allowed() {
  if (current_) return *current_;
  if (!states_ || states_->size() > kMaxStates) {
    states_ = std::make_unique<StateTable>(matcher_.grammar());
    cache_.clear();
  }
  const std::uint32_t state = states_->intern(matcher_.stacks());
  auto it = cache_.find(state);
  if (it == cache_.end()) {
    if (cache_.size() >= kMaxCachedMasks) cache_.clear();
    auto mask = std::make_shared<TokenMask>();
    mask->words.assign((static_cast<std::size_t>(trie_.vocab_size()) + 63) / 64, 0);
    walk(*states_, trie_, 0, state, *mask);
    it = cache_.emplace(state, std::move(mask)).first;
  }
  current_ = it->second;
  return *current_;
}

void Constraint::accept(std::int32_t token) {
  if (token < 0 || token >= trie_.vocab_size() || trie_.bytes(token).empty() ||
      !matcher_.accept(trie_.bytes(token))) {
    throw GrammarError("token " + std::to_string(token) + " does not continue the grammar");
  }
  current_.reset();
}

}  // namespace lmserve::grammar
