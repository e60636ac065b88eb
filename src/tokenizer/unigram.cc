#include "tokenizer/unigram.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

// What an unknown character costs relative to the rarest piece (HF's K_UNK_PENALTY).
constexpr double kUnkPenalty = 10.0;

}  // namespace

UnigramModel::UnigramModel(const nlohmann::json& model) {
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_array()) {
    throw FileError("tokenizer.json: Unigram model has no \"vocab\" array");
  }
  vocab_.reserve(vocab_it->size());
  scores_.reserve(vocab_it->size());
  trie_piece_.push_back(-1);  // the root
  double min_score = std::numeric_limits<double>::infinity();
  std::int32_t id = 0;
  for (const auto& entry : *vocab_it) {
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
      throw FileError("tokenizer.json: Unigram vocab entry #" + std::to_string(id) +
                      " is not [\"piece\", score]");
    }
    const std::string& piece = entry[0].get_ref<const std::string&>();
    const double score = entry[1].get<double>();
    vocab_.add(piece, id);
    scores_.push_back(score);
    min_score = std::min(min_score, score);
    std::int32_t node = 0;
    for (const char c : piece) {
      std::int32_t next = child(node, static_cast<unsigned char>(c));
      if (next < 0) {
        next = static_cast<std::int32_t>(trie_piece_.size());
        trie_piece_.push_back(-1);
        trie_edges_.insert_or_assign(
            (static_cast<std::uint64_t>(node) << 8) | static_cast<unsigned char>(c), next);
      }
      node = next;
    }
    // A repeated piece resolves to its last id, as the string -> id map does.
    if (!piece.empty()) trie_piece_[static_cast<std::size_t>(node)] = id;
    ++id;
  }
  // Look ups of repeated pieces must agree with the trie.
  for (std::size_t node = 0; node < trie_piece_.size(); ++node) {
    if (trie_piece_[node] >= 0) {
      trie_piece_[node] = *vocab_.find(*vocab_.token(trie_piece_[node]));
    }
  }
  unk_score_ = (vocab_it->empty() ? 0.0 : min_score) - kUnkPenalty;
  if (const auto it = model.find("unk_id"); it != model.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<long long>() < 0 ||
        it->get<long long>() >= static_cast<long long>(scores_.size())) {
      throw FileError("tokenizer.json: Unigram unk_id is not an id of the vocab");
    }
    unk_id_ = it->get<std::int32_t>();
  }
  byte_fallback_ = json_bool(model, "byte_fallback", false);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[static_cast<std::size_t>(b)] = vocab_.find(name).value_or(-1);
  }
}

void UnigramModel::emit_unknown(std::string_view text, std::vector<std::int32_t>& out) const {
  // A fused run is looked up as a whole first, as HF does.
  if (auto id = vocab_.find(text)) {
    out.push_back(*id);
    return;
  }
  if (byte_fallback_ && std::all_of(text.begin(), text.end(), [&](char c) {
        return byte_ids_[static_cast<unsigned char>(c)] >= 0;
      })) {
    for (const char c : text) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    return;
  }
  // Without an unk id HF fails the whole encode; dropping the text cannot crash a server.
  if (unk_id_) out.push_back(*unk_id_);
}

void UnigramModel::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  struct Best {
    double score = 0;
    std::int32_t start = -1;  // -1: not reached
    std::int32_t id = -1;     // -1: an unknown character
  };
  const std::size_t n = word.size();
  thread_local std::vector<Best> best;
  best.assign(n + 1, Best{});
  best[0].start = 0;
  // Forward pass over character starts. Ties keep the first path found (earlier start,
  // then shorter piece, then the unknown-character node), as HF does.
  for (std::size_t start = 0; start < n;) {
    std::size_t next_char = start;
    next_code_point(word, next_char);
    const double here = best[start].score;
    bool single = false;
    std::int32_t node = 0;
    for (std::size_t end = start; end < n;) {
      node = child(node, static_cast<unsigned char>(word[end]));
      if (node < 0) break;
      ++end;
      const std::int32_t id = trie_piece_[static_cast<std::size_t>(node)];
      if (id < 0) continue;
      const double candidate = here + scores_[static_cast<std::size_t>(id)];
      Best& target = best[end];
      if (target.start < 0 || candidate > target.score) {
        target = {candidate, static_cast<std::int32_t>(start), id};
      }
      if (end == next_char) single = true;
    }
    if (!single) {
      const double candidate = here + unk_score_;
      Best& target = best[next_char];
      if (target.start < 0 || candidate > target.score) {
        target = {candidate, static_cast<std::int32_t>(start), unk_id_.value_or(-1)};
      }
    }
    start = next_char;
  }
  // Backtrack; runs of unknown characters (the unk piece included) fuse into one.
  thread_local std::vector<std::pair<std::size_t, std::size_t>> spans;  // reversed order
  thread_local std::vector<bool> unknown;
  spans.clear();
  unknown.clear();
  for (std::size_t end = n; end > 0;) {
    const Best& node = best[end];
    const auto start = static_cast<std::size_t>(node.start);
    const bool is_unk = node.id < 0 || (unk_id_ && node.id == *unk_id_);
    if (is_unk && !unknown.empty() && unknown.back()) {
      spans.back().first = start;
    } else {
      spans.emplace_back(start, end);
      unknown.push_back(is_unk);
    }
    end = start;
  }
  for (std::size_t k = spans.size(); k-- > 0;) {
    const auto [b, e] = spans[k];
    if (!unknown[k]) {
      out.push_back(best[e].id);
    } else {
      emit_unknown(word.substr(b, e - b), out);
    }
  }
}

}  // namespace lmserve::tokenizer::detail
