// Fuzzes the GGUF reader: any bytes must either open or throw FileError; an opened file is
// walked completely (every metadata value through every getter, every tensor's bytes), and
// its tokenizer.ggml.* vocabulary is loaded as a Tokenizer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "formats/gguf.h"
#include "fuzz_support.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace {

using lmserve::FileError;
using lmserve::formats::GgufFile;

lmserve::fuzz::MemoryFile* file = nullptr;

// Calls a getter that may legitimately refuse the value's type.
template <typename F>
void tolerate_file_error(F&& f) {
  try {
    f();
  } catch (const FileError&) {
  }
}

void walk(const GgufFile& gguf) {
  (void)gguf.version();
  (void)gguf.alignment();
  for (const auto& kv : gguf.metadata()) {
    const std::string_view key = kv.key;
    if (gguf.find(key) == nullptr) __builtin_trap();
    tolerate_file_error([&] { (void)gguf.get_string(key); });
    tolerate_file_error([&] { (void)gguf.get_uint(key); });
    tolerate_file_error([&] { (void)gguf.get_int(key); });
    tolerate_file_error([&] { (void)gguf.get_float(key); });
    tolerate_file_error([&] { (void)gguf.get_bool(key); });
    tolerate_file_error([&] { (void)gguf.get_array_size(key); });
    tolerate_file_error([&] { (void)gguf.get_array<std::string_view>(key); });
    tolerate_file_error([&] { (void)gguf.get_array<bool>(key); });
    tolerate_file_error([&] { (void)gguf.get_array<double>(key); });
    tolerate_file_error([&] { (void)gguf.get_array<float>(key); });
    tolerate_file_error([&] { (void)gguf.get_array<std::int32_t>(key); });
    tolerate_file_error([&] { (void)gguf.get_array<std::uint8_t>(key); });
    tolerate_file_error([&] { (void)gguf.get_array<std::uint64_t>(key); });
  }
  for (const auto& info : gguf.tensor_infos()) (void)gguf.find_tensor(info.name);
  unsigned sum = 0;
  for (const auto& [name, view] : gguf.tensors()) {
    (void)view.numel();
    (void)view.shape_string();
    (void)view.element_aligned();
    // Touch the first and last byte: a view that reaches past the mapping faults here.
    if (view.nbytes > 0) sum += view.data[0] + view.data[view.nbytes - 1];
  }
  if (sum == 0xFFFFFFFFu) __builtin_trap();  // keeps the reads
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  file = new lmserve::fuzz::MemoryFile;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& path = file->write(data, size);
  try {
    const GgufFile gguf(path);
    walk(gguf);
  } catch (const FileError&) {
    return 0;  // the tokenizer loader below would only refuse the same file
  }
  try {
    const auto tok = lmserve::tokenizer::Tokenizer::load(path);
    const auto ids = tok.encode("Hello world! <s> 123 日本語");
    (void)tok.decode(ids);
    (void)tok.end_of_generation_ids();
  } catch (const FileError&) {
  }
  return 0;
}
