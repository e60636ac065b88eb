#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

namespace lmserve::cli {

int run_tokenize(const TokenizeOptions& o) {
  const auto tok = tokenizer::Tokenizer::load(o.tokenizer);
  const auto ids = tok.encode(o.text, !o.no_special, !o.no_parse_special);
  if (o.json) {
    nlohmann::json pieces = nlohmann::json::array();
    for (auto id : ids) pieces.push_back(tok.piece(id));
    // Pieces are vocabulary strings; a byte-level vocabulary may hold non-UTF-8 bytes.
    std::cout << nlohmann::json{{"ids", ids}, {"pieces", pieces}}.dump(
                     -1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  } else {
    std::cout << nlohmann::json(ids).dump() << "\n";
  }
  return 0;
}

int run_detokenize(const DetokenizeOptions& o) {
  const auto tok = tokenizer::Tokenizer::load(o.tokenizer);
  std::vector<std::int32_t> ids;
  ids.reserve(o.ids.size());
  for (auto id : o.ids) {
    if (id < 0 || id >= tok.vocab_size()) {
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                       std::to_string(tok.vocab_size()) + ")");
    }
    ids.push_back(static_cast<std::int32_t>(id));
  }
  std::cout << tok.decode(ids, o.skip_special) << "\n";
  return 0;
}

}  // namespace lmserve::cli
