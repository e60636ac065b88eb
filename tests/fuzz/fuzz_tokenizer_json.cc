// Fuzzes Tokenizer::load on tokenizer.json documents: any bytes must either load or throw
// FileError (anything else escaping is a crash); a tokenizer that loads must then encode,
// decode and stream a fixed text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace {

using lmserve::tokenizer::StreamingDetokenizer;
using lmserve::tokenizer::Tokenizer;

lmserve::fuzz::MemoryFile* file = nullptr;

constexpr const char* kText = "Hello world! <s>Ünïcödé 123\n\t  日本語 🐶 don't</s>";

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  file = new lmserve::fuzz::MemoryFile;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::optional<Tokenizer> tok;
  try {
    tok.emplace(Tokenizer::load(file->write(data, size)));
  } catch (const lmserve::FileError&) {
    return 0;
  }
  const std::vector<std::int32_t> ids = tok->encode(kText);
  (void)tok->encode(kText, false, false);
  (void)tok->decode(ids, false, true);
  StreamingDetokenizer stream(*tok, false, false);
  for (const std::int32_t id : ids) (void)stream.push(id);
  (void)stream.finish();
  for (std::int32_t id = 0; id < tok->vocab_size() && id < 64; ++id) {
    (void)tok->piece(id);
    (void)tok->token_bytes(id);
  }
  return 0;
}
