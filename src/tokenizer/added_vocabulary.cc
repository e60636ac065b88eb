#include "tokenizer/added_vocabulary.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace lmserve::tokenizer::detail {
namespace {

bool is_word_char(char32_t cp) { return cp == '_' || is_alphanumeric(cp); }

// The code point that ends just before byte offset `pos` (pos > 0).
char32_t code_point_before(std::string_view text, std::size_t pos) {
  std::size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return next_code_point(text, start);
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens,
                                 const std::vector<std::string>& match_forms)
    : tokens_(std::move(tokens)) {
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    if (match_forms[i].empty()) continue;  // an empty token can never be found in text
    insert(tries_[tokens_[i].normalized ? 1 : 0], match_forms[i], static_cast<int>(i));
  }
}

void AddedVocabulary::insert(Trie& trie, std::string_view form, int token) {
  if (trie.nodes.empty()) trie.nodes.emplace_back();
  trie.first_byte[static_cast<unsigned char>(form[0])] = true;
  int node = 0;
  for (char ch : form) {
    const auto c = static_cast<unsigned char>(ch);
    auto& children = trie.nodes[static_cast<std::size_t>(node)].children;
    auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(c, 0),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it != children.end() && it->first == c) {
      node = it->second;
    } else {
      const int next = static_cast<int>(trie.nodes.size());
      children.insert(it, {c, next});
      trie.nodes.emplace_back();
      node = next;
    }
  }
  // When two added tokens share a content, the first one listed wins.
  if (trie.nodes[static_cast<std::size_t>(node)].token < 0) {
    trie.nodes[static_cast<std::size_t>(node)].token = token;
  }
}

std::vector<Segment> AddedVocabulary::split(std::string_view text, bool normalized,
                                            bool parse_special) const {
  std::vector<Segment> segments;
  const Trie& trie = tries_[normalized ? 1 : 0];
  std::size_t text_start = 0;  // where the pending text segment begins
  if (!trie.nodes.empty()) {
    for (std::size_t i = 0; i < text.size();) {
      if (!trie.first_byte[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      // Longest match starting at i (leftmost-longest, as HF's Aho-Corasick setup).
      int best = -1;
      std::size_t best_end = 0;
      int node = 0;
      for (std::size_t j = i; j < text.size(); ++j) {
        const auto c = static_cast<unsigned char>(text[j]);
        const auto& children = trie.nodes[static_cast<std::size_t>(node)].children;
        auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(c, 0),
                                   [](const auto& a, const auto& b) { return a.first < b.first; });
        if (it == children.end() || it->first != c) break;
        node = it->second;
        const int token = trie.nodes[static_cast<std::size_t>(node)].token;
        if (token >= 0 && (parse_special || !tokens_[static_cast<std::size_t>(token)].special)) {
          best = token;
          best_end = j + 1;
        }
      }
      if (best < 0) {
        ++i;
        continue;
      }
      const AddedToken& token = tokens_[static_cast<std::size_t>(best)];
      if (token.single_word) {
        const bool word_before = i > 0 && is_word_char(code_point_before(text, i));
        std::size_t k = best_end;
        const bool word_after = best_end < text.size() && is_word_char(next_code_point(text, k));
        if (word_before || word_after) {
          ++i;
          continue;
        }
      }
      std::size_t begin = i;
      std::size_t end = best_end;
      if (token.lstrip) {
        while (begin > text_start && is_whitespace(code_point_before(text, begin))) {
          std::size_t s = begin - 1;
          while (s > text_start && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
          begin = s;
        }
      }
      if (token.rstrip) {
        while (end < text.size()) {
          std::size_t k = end;
          if (!is_whitespace(next_code_point(text, k))) break;
          end = k;
        }
      }
      if (begin > text_start) segments.push_back({text_start, begin, -1});
      segments.push_back({begin, end, token.id});
      text_start = end;
      i = end;
    }
  }
  if (text_start < text.size()) segments.push_back({text_start, text.size(), -1});
  return segments;
}

}  // namespace lmserve::tokenizer::detail
