#include "formats/dtype.h"

#include <array>
#include <utility>

namespace lmserve::formats {

namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;            // bytes per block
  std::size_t block_elements;  // 1 for plain types
};

// Block layouts of the ggml types (bytes per block of 32 or 256 values) are part of the GGUF
// format: a reader must know them to check that a tensor's bytes fit, even for types it cannot
// compute with.
constexpr std::array<DTypeInfo, 39> kDTypes = {{
    {DType::kF64, "F64", 8, 1},           {DType::kF32, "F32", 4, 1},
    {DType::kF16, "F16", 2, 1},           {DType::kBF16, "BF16", 2, 1},
    {DType::kI64, "I64", 8, 1},           {DType::kI32, "I32", 4, 1},
    {DType::kI16, "I16", 2, 1},           {DType::kI8, "I8", 1, 1},
    {DType::kU64, "U64", 8, 1},           {DType::kU32, "U32", 4, 1},
    {DType::kU16, "U16", 2, 1},           {DType::kU8, "U8", 1, 1},
    {DType::kBool, "BOOL", 1, 1},         {DType::kF8E4M3, "F8_E4M3", 1, 1},
    {DType::kF8E5M2, "F8_E5M2", 1, 1},    {DType::kQ4_0, "Q4_0", 18, 32},
    {DType::kQ4_1, "Q4_1", 20, 32},       {DType::kQ5_0, "Q5_0", 22, 32},
    {DType::kQ5_1, "Q5_1", 24, 32},       {DType::kQ8_0, "Q8_0", 34, 32},
    {DType::kQ8_1, "Q8_1", 36, 32},       {DType::kQ2_K, "Q2_K", 84, 256},
    {DType::kQ3_K, "Q3_K", 110, 256},     {DType::kQ4_K, "Q4_K", 144, 256},
    {DType::kQ5_K, "Q5_K", 176, 256},     {DType::kQ6_K, "Q6_K", 210, 256},
    {DType::kQ8_K, "Q8_K", 292, 256},     {DType::kIQ2_XXS, "IQ2_XXS", 66, 256},
    {DType::kIQ2_XS, "IQ2_XS", 74, 256},  {DType::kIQ3_XXS, "IQ3_XXS", 98, 256},
    {DType::kIQ1_S, "IQ1_S", 50, 256},    {DType::kIQ4_NL, "IQ4_NL", 18, 32},
    {DType::kIQ3_S, "IQ3_S", 110, 256},   {DType::kIQ2_S, "IQ2_S", 82, 256},
    {DType::kIQ4_XS, "IQ4_XS", 136, 256}, {DType::kIQ1_M, "IQ1_M", 56, 256},
    {DType::kTQ1_0, "TQ1_0", 54, 256},    {DType::kTQ2_0, "TQ2_0", 66, 256},
    {DType::kMXFP4, "MXFP4", 17, 32},
}};

const DTypeInfo& info(DType dtype) {
  for (const auto& i : kDTypes) {
    if (i.dtype == dtype) return i;
  }
  return kDTypes[1];  // unreachable: every enumerator is listed
}

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }

std::size_t dtype_size(DType dtype) { return info(dtype).size; }

std::size_t dtype_block_elements(DType dtype) { return info(dtype).block_elements; }

bool is_block_quantized(DType dtype) { return info(dtype).block_elements > 1; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& i : kDTypes) {
    if (i.name == name && i.block_elements == 1) return i.dtype;
  }
  return std::nullopt;
}

bool is_float_weight(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

}  // namespace lmserve::formats
