#include "formats/tensor.h"

namespace lmserve::formats {

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;  // validated against overflow when the view was made
  return n;
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

bool TensorView::element_aligned() const {
  if (is_block_quantized(dtype)) return true;
  return reinterpret_cast<std::uintptr_t>(data) % dtype_size(dtype) == 0;
}

}  // namespace lmserve::formats
