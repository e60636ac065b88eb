// A typed, shaped, read-only view of one tensor's bytes inside a mapped checkpoint file.
// Every format reader (safetensors, GGUF) produces these, so the model never sees the format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/dtype.h"

namespace lmserve::formats {

// Valid while the file (or TensorStore) that produced it is alive.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // outermost first, as in PyTorch (GGUF dims reversed)
  const std::uint8_t* data = nullptr;
  std::size_t nbytes = 0;

  int rank() const { return static_cast<int>(shape.size()); }
  std::int64_t numel() const;
  // "[512, 64]": for error messages.
  std::string shape_string() const;
  // True when data is aligned to the element size, so it can be read as T* directly. Always
  // true for block-quantized types, whose kernels read blocks bytewise.
  bool element_aligned() const;
};

}  // namespace lmserve::formats
