// Fuzzes Tokenizer::encode/decode with the fixture tokenizers: arbitrary bytes must encode
// and decode without crashing, and the byte-level BPE tokenizers must give back exactly the
// text they were given whenever it is valid UTF-8 (and NFC, for qwen3's NFC normalizer).
#include <utf8proc.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace {

using lmserve::tokenizer::Tokenizer;

struct Subject {
  Tokenizer tokenizer;
  bool byte_level;  // ByteLevel pre-tokenizer + decoder: every valid UTF-8 text round-trips
  bool nfc;         // the normalizer applies NFC, so only NFC text round-trips
};

std::vector<Subject>* subjects = nullptr;

bool is_nfc(std::string_view text) {
  utf8proc_uint8_t* nfc = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(
      std::string(text).c_str()));  // NUL-terminated copy: utf8proc_NFC stops at NUL
  if (nfc == nullptr) return false;
  const bool same = text == reinterpret_cast<const char*>(nfc);
  std::free(nfc);
  return same;
}

void check_round_trip(const Subject& s, const std::string& text, bool parse_special) {
  const std::vector<std::int32_t> ids = s.tokenizer.encode(text, false, parse_special);
  if (s.tokenizer.decode(ids) != text) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using lmserve::fuzz::fixture;
  subjects = new std::vector<Subject>;
  subjects->push_back({Tokenizer::load(fixture("models/stories260K")), false, false});
  subjects->push_back({Tokenizer::load(fixture("tokenizers/mistral")), false, false});
  subjects->push_back({Tokenizer::load(fixture("tokenizers/llama3")), true, false});
  subjects->push_back({Tokenizer::load(fixture("tokenizers/qwen3")), true, true});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool valid = lmserve::util::is_valid_utf8(text);
  // NUL ends the C string utf8proc normalizes, so text with NUL is not checked against NFC.
  const bool nfc = valid && text.find('\0') == std::string::npos && is_nfc(text);
  for (const Subject& s : *subjects) {
    const std::vector<std::int32_t> ids = s.tokenizer.encode(text, true, true);
    (void)s.tokenizer.decode(ids);
    (void)s.tokenizer.decode(ids, true, true);
    if (s.byte_level && valid && (!s.nfc || nfc)) {
      check_round_trip(s, text, true);
      check_round_trip(s, text, false);
    } else {
      (void)s.tokenizer.decode(s.tokenizer.encode(text, false, false));
    }
  }
  return 0;
}
