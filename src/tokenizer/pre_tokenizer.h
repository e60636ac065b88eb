// tokenizer.json "pre_tokenizer": splits a normalized segment into the words the model
// tokenizes independently (Split regexes, ByteLevel, Metaspace, Digits, Whitespace ...).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmserve::tokenizer::detail {

// The pieces of one segment as byte ranges of a shared buffer, so that splitting copies
// nothing; steps that rewrite text (ByteLevel, Metaspace) build a new buffer. The scratch
// members let one instance be reused across calls without allocating.
struct PreTokenized {
  struct Piece {
    std::size_t begin = 0;
    std::size_t end = 0;
    // Starts at offset 0 of the original input (what Metaspace's prepend_scheme "first" checks).
    bool at_origin = false;
  };
  std::string text;
  std::vector<Piece> pieces;

  // Starts over with `segment` as the only piece.
  void reset(std::string_view segment, bool at_origin) {
    text.assign(segment);
    pieces.assign(1, {0, text.size(), at_origin});
  }
  std::string_view view(const Piece& p) const {
    return std::string_view(text).substr(p.begin, p.end - p.begin);
  }

  std::string scratch_text;
  std::vector<Piece> scratch_pieces;
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits or rewrites every piece in place; empty pieces are dropped.
  virtual void pre_tokenize(PreTokenized& p) const = 0;
};

// nullptr for a JSON null. Throws FileError naming any unsupported type.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config);

}  // namespace lmserve::tokenizer::detail
