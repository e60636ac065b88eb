// Fuzzes the safetensors reader: any bytes must either open or throw FileError; every
// tensor of an opened file is walked down to its first and last byte.
#include <cstddef>
#include <cstdint>

#include "formats/safetensors.h"
#include "fuzz_support.h"
#include "util/error.h"

namespace {
lmserve::fuzz::MemoryFile* file = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  file = new lmserve::fuzz::MemoryFile;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const lmserve::formats::SafetensorsFile st(file->write(data, size));
    unsigned sum = 0;
    for (const auto& [name, view] : st.tensors()) {
      if (st.find(name) == nullptr) __builtin_trap();
      (void)view.numel();
      (void)view.shape_string();
      (void)view.element_aligned();
      // A view that reaches past the mapping faults here.
      if (view.nbytes > 0) sum += view.data[0] + view.data[view.nbytes - 1];
    }
    for (const auto& [key, value] : st.metadata()) sum += static_cast<unsigned>(value.size());
    if (sum == 0xFFFFFFFFu) __builtin_trap();  // keeps the reads
  } catch (const lmserve::FileError&) {
  }
  return 0;
}
