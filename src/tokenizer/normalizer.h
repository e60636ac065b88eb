// tokenizer.json "normalizer": text rewrites applied to each segment between added tokens
// before pre-tokenization (NFC/NFKC/NFD, Lowercase, Strip, Replace, Prepend, Sequence ...).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace lmserve::tokenizer::detail {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string_view text) const = 0;
};

// nullptr for a JSON null. Throws FileError naming any unsupported type.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config);

}  // namespace lmserve::tokenizer::detail
