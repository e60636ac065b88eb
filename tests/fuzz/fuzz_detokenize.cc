// Fuzzes StreamingDetokenizer: the bytes pick a tokenizer, the decode flags and a sequence
// of ids; the pushed pieces plus finish() must equal Tokenizer::decode and each piece must
// be valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace {

using lmserve::tokenizer::StreamingDetokenizer;
using lmserve::tokenizer::Tokenizer;

std::vector<Tokenizer>* tokenizers = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using lmserve::fuzz::fixture;
  tokenizers = new std::vector<Tokenizer>;
  for (const char* path :
       {"models/stories260K", "tokenizers/mistral", "tokenizers/llama3", "tokenizers/qwen3",
        // GGUF vocabularies: llama.cpp's SPM model and a WordPiece decoder.
        "models/stories260K/stories260K.gguf", "vocab/ggml-vocab-bert-bge.gguf"}) {
    tokenizers->push_back(Tokenizer::load(fixture(path)));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Tokenizer& tok = (*tokenizers)[data[0] % tokenizers->size()];
  const bool skip_special = (data[0] >> 4) & 1;
  const bool clean_up = (data[0] >> 5) & 1;
  // Three bytes per id cover every vocabulary here (all under 2^24 ids).
  std::vector<std::int32_t> ids;
  for (std::size_t i = 1; i + 3 <= size; i += 3) {
    const std::uint32_t raw = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16);
    ids.push_back(static_cast<std::int32_t>(raw % static_cast<std::uint32_t>(tok.vocab_size())));
  }

  StreamingDetokenizer stream(tok, skip_special, clean_up);
  std::string streamed;
  for (const std::int32_t id : ids) {
    const std::string piece = stream.push(id);
    if (!lmserve::util::is_valid_utf8(piece)) __builtin_trap();
    streamed += piece;
  }
  const std::string rest = stream.finish();
  if (!lmserve::util::is_valid_utf8(rest)) __builtin_trap();
  streamed += rest;
  if (streamed != tok.decode(ids, skip_special, clean_up)) __builtin_trap();
  return 0;
}
