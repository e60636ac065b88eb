// Element types of tensors stored in checkpoint files, with their names and sizes.
// Shared by every file format reader so that a "BF16" means the same thing everywhere.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace lmserve::formats {

// Plain element types (safetensors, GGUF's F32/F16/BF16/I*) and ggml's block-quantized
// types (GGUF only). A block type stores `dtype_block_elements` consecutive values of a row in
// `dtype_size` bytes; a plain type is a block of one element.
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
  // ggml block-quantized types.
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ8_0,
  kQ8_1,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kQ8_K,
  kIQ2_XXS,
  kIQ2_XS,
  kIQ3_XXS,
  kIQ1_S,
  kIQ4_NL,
  kIQ3_S,
  kIQ2_S,
  kIQ4_XS,
  kIQ1_M,
  kTQ1_0,
  kTQ2_0,
  kMXFP4,
};

// The safetensors spelling ("F32", "BF16", "U32", ...); ggml's for block types ("Q4_K", ...).
std::string_view dtype_name(DType dtype);
// Bytes per block (per element for plain types).
std::size_t dtype_size(DType dtype);
// Elements per block: 1 for plain types, 32 or 256 for ggml's block types.
std::size_t dtype_block_elements(DType dtype);
// True for ggml's block-quantized types.
bool is_block_quantized(DType dtype);
// Parses the safetensors spelling of a plain type; nullopt for anything else (block types
// are never valid in safetensors).
std::optional<DType> parse_dtype(std::string_view name);
// True for the float types the model runtime computes with today (F32, F16, BF16).
bool is_float_weight(DType dtype);

}  // namespace lmserve::formats
