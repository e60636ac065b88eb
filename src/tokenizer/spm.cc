#include "tokenizer/spm.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace lmserve::tokenizer::detail {

SpmModel::SpmModel(std::vector<std::string> pieces, std::vector<float> scores,
                   std::optional<std::int32_t> unk_id)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), unk_id_(unk_id) {
  ids_.reserve(pieces_.size());
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    ids_.emplace(pieces_[i], static_cast<std::int32_t>(i));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[static_cast<std::size_t>(b)] = token_to_id(name).value_or(-1);
  }
}

std::optional<std::int32_t> SpmModel::token_to_id(std::string_view token) const {
  const auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string* SpmModel::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size()) return nullptr;
  return &pieces_[static_cast<std::size_t>(id)];
}

void SpmModel::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  // A doubly linked list of symbols, each a byte range of `word`; merging grows the left
  // symbol and unlinks the right one.
  struct Symbol {
    std::size_t begin;
    std::size_t size;  // 0 once merged into its left neighbour
    int prev;
    int next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t start = i;
    i += std::min(utf8_sequence_length(static_cast<unsigned char>(word[i])), word.size() - i);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({start, i - start, index - 1, i == word.size() ? -1 : index + 1});
  }

  struct Candidate {
    float score;
    int left;
    int right;
    std::size_t size;  // bytes of the merged text when the candidate was made
  };
  // Highest score first; among equal scores the leftmost pair.
  auto lower = [](const Candidate& a, const Candidate& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower)> queue(lower);
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<std::size_t>(left)];
    const Symbol& r = symbols[static_cast<std::size_t>(right)];
    const auto id = token_to_id(word.substr(l.begin, l.size + r.size));
    if (!id) return;
    queue.push({scores_[static_cast<std::size_t>(*id)], left, right, l.size + r.size});
  };
  for (int k = 1; k < static_cast<int>(symbols.size()); ++k) consider(k - 1, k);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<std::size_t>(top.left)];
    Symbol& right = symbols[static_cast<std::size_t>(top.right)];
    // Stale when either side has merged since: the left one grew or the right one is gone.
    if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.left;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  for (int k = 0; k >= 0; k = symbols[static_cast<std::size_t>(k)].next) {
    const Symbol& s = symbols[static_cast<std::size_t>(k)];
    const std::string_view text = word.substr(s.begin, s.size);
    if (const auto id = token_to_id(text)) {
      out.push_back(*id);
      continue;
    }
    // Only single characters can be left without a piece: every merge made a piece.
    bool bytes = true;
    for (char c : text) bytes = bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
    if (bytes) {
      for (char c : text) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    } else if (unk_id_) {
      out.push_back(*unk_id_);
    }
  }
}

}  // namespace lmserve::tokenizer::detail
