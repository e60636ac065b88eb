// What a GGUF `tokenizer.ggml.pre` name stands for: the split regexes of that model family's
// tokenizer.json (as a tokenizer.json pre_tokenizer) and the flags llama.cpp attaches to it.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

namespace lmserve::tokenizer::detail {

struct BpePreset {
  // A tokenizer.json "pre_tokenizer" object: the family's Split regexes (Isolated, applied in
  // sequence, each one to the pieces left by the previous) then a ByteLevel byte mapping.
  nlohmann::json pre_tokenizer;
  bool ignore_merges = false;  // a pre-token that is itself a vocab entry skips the merges
  bool add_bos = false;        // default of tokenizer.ggml.add_bos_token
  bool clean_spaces = true;    // transformers' clean_up_tokenization_spaces
};

// The preset for a byte-level BPE vocabulary (`tokenizer.ggml.model` = "gpt2"). An empty
// name is llama.cpp's "default". Throws FileError naming an unknown pre-tokenizer.
BpePreset bpe_preset(std::string_view pre);

// Every name bpe_preset() knows, in table order.
std::vector<std::string_view> bpe_preset_names();

}  // namespace lmserve::tokenizer::detail
