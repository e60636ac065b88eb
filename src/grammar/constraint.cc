#include "grammar/constraint.h"

namespace lmserve::grammar {
namespace {

constexpr std::size_t kMaxCachedMasks = 256;
constexpr std::size_t kMaxStates = 20000;  // beyond it the table starts afresh

}  // namespace

Constraint::Constraint(std::shared_ptr<const Grammar> grammar, const TokenTrie& trie)
    : grammar_(std::move(grammar)),
      trie_(trie),
      states_(std::make_unique<StateTable>(grammar_)),
      walk_states_(static_cast<std::size_t>(trie.max_depth()) + 1) {}

const TokenMask& Constraint::allowed() {
  if (current_) return *current_;
  if (states_->size() > kMaxStates) {
    auto fresh = std::make_unique<StateTable>(grammar_);
    state_ = fresh->import(*states_, state_);
    states_ = std::move(fresh);
    cache_.clear();
  }
  auto it = cache_.find(state_);
  if (it == cache_.end()) {
    if (cache_.size() >= kMaxCachedMasks) cache_.clear();
    auto mask = std::make_shared<TokenMask>();
    mask->words.assign((static_cast<std::size_t>(trie_.vocab_size()) + 63) / 64, 0);
    // One preorder pass: a node whose byte kills every parse skips its whole subtree.
    const std::vector<TokenTrie::Node>& nodes = trie_.nodes();
    const std::vector<std::int32_t>& ids = trie_.token_ids();
    walk_states_[0] = state_;
    const std::size_t n = nodes.size() - 1;  // the last node is a sentinel
    for (std::size_t i = 1; i < n;) {
      const TokenTrie::Node& node = nodes[i];
      const std::uint32_t next = states_->next(walk_states_[node.depth - 1u], node.byte);
      if (next == StateTable::kDead) {
        i = node.end;
        continue;
      }
      walk_states_[node.depth] = next;
      for (std::uint32_t t = node.tokens_begin; t < nodes[i + 1].tokens_begin; ++t) {
        const auto id = static_cast<std::size_t>(ids[t]);
        mask->words[id / 64] |= std::uint64_t{1} << (id % 64);
      }
      ++i;
    }
    it = cache_.emplace(state_, std::move(mask)).first;
  }
  current_ = it->second;
  return *current_;
}

void Constraint::accept(std::int32_t token) {
  std::uint32_t state = state_;
  if (token >= 0 && token < trie_.vocab_size() && !trie_.bytes(token).empty()) {
    for (char c : trie_.bytes(token)) {
      state = states_->next(state, static_cast<std::uint8_t>(c));
      if (state == StateTable::kDead) break;
    }
  } else {
    state = StateTable::kDead;
  }
  if (state == StateTable::kDead)
    throw GrammarError("token " + std::to_string(token) + " does not continue the grammar");
  state_ = state;
  current_.reset();
}

}  // namespace lmserve::grammar
