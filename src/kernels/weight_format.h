// The table of weight formats: how many values a block holds, its bytes, and which form the
// activations take when multiplied with it (f32, or int8 blocks quantized once per product).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lmserve::kernels {

enum class WeightType : std::uint8_t {
#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation) k##name,
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE
};
inline constexpr int kWeightTypeCount = 0
#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation) +1
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE
    ;

// Activation rows as the integer kernels read them (quant/blocks.h has the layouts):
// Q8_32 is blocks of 32 int8 with a scale and the block's sum (llama.cpp's Q8_0/Q8_1);
// Q8_256 is blocks of 256 int8 with a scale and sums of each 16 (llama.cpp's Q8_K).
enum class ActivationType : std::uint8_t { kF32, kQ8_32, kQ8_256 };
inline constexpr int kActivationTypeCount = 3;

struct WeightFormat {
  std::string_view name;  // GGUF's spelling: "F16", "Q4_K"
  int block_elements = 1;
  int block_bytes = 4;
  ActivationType activation = ActivationType::kF32;
};

const WeightFormat& weight_format(WeightType type);
// The format named like GGUF's type ("Q4_K"); nullopt for formats without kernels.
std::optional<WeightType> weight_type_named(std::string_view name);
// "F32, F16, ..., Q6_K": the formats with kernels, for error messages.
std::string supported_weight_types();
// Bytes of one row of `cols` values (cols must be a multiple of the block).
std::size_t weight_row_bytes(WeightType type, int cols);
// Bytes of one activation row of `cols` values in the form `type` expects.
std::size_t activation_row_bytes(ActivationType type, int cols);

}  // namespace lmserve::kernels
