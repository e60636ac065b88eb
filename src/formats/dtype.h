// Element types of tensors stored in checkpoint files, with their names and sizes.
// Shared by every file format reader so that a "BF16" means the same thing everywhere.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace lmserve::formats {

enum class DType {
  kF64,
  kF32,
  kF16,
  kBF16,
  kI64,
  kI32,
  kI16,
  kI8,
  kU64,
  kU32,
  kU16,
  kU8,
  kBool,
  kF8E4M3,
  kF8E5M2,
};

// The safetensors spelling ("F32", "BF16", "U32", ...).
std::string_view dtype_name(DType dtype);
// Bytes per element.
std::size_t dtype_size(DType dtype);
// Parses the safetensors spelling; nullopt for anything unknown.
std::optional<DType> parse_dtype(std::string_view name);
// True for the float types the model runtime computes with today (F32, F16, BF16).
bool is_float_weight(DType dtype);

}  // namespace lmserve::formats
