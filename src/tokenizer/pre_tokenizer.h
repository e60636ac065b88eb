// tokenizer.json "pre_tokenizer": splits a normalized segment into the words the model
// tokenizes independently (Split regexes, ByteLevel, Metaspace, Digits, Whitespace ...).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace lmserve::tokenizer::detail {

struct PreToken {
  std::string text;
  // Starts at offset 0 of the original input (what Metaspace's prepend_scheme "first" checks).
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits or rewrites every piece in place; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

// nullptr for a JSON null. Throws FileError naming any unsupported type.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config);

}  // namespace lmserve::tokenizer::detail
