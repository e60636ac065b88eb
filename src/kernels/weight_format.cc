#include "kernels/weight_format.h"

#include <array>

#include "kernels/quant/blocks.h"

namespace lmserve::kernels {

namespace {

constexpr std::array<WeightFormat, kWeightTypeCount> kFormats = {{
#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation) \
  {#name, elements, bytes, ActivationType::k##activation},
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE
}};

}  // namespace

const WeightFormat& weight_format(WeightType type) {
  return kFormats[static_cast<std::size_t>(type)];
}

std::optional<WeightType> weight_type_named(std::string_view name) {
  for (std::size_t i = 0; i < kFormats.size(); ++i) {
    if (kFormats[i].name == name) return static_cast<WeightType>(i);
  }
  return std::nullopt;
}

std::string supported_weight_types() {
  std::string names;
  for (const auto& f : kFormats) {
    if (!names.empty()) names += ", ";
    names += f.name;
  }
  return names;
}

std::size_t weight_row_bytes(WeightType type, int cols) {
  const auto& f = weight_format(type);
  return static_cast<std::size_t>(cols / f.block_elements) *
         static_cast<std::size_t>(f.block_bytes);
}

std::size_t activation_row_bytes(ActivationType type, int cols) {
  const auto n = static_cast<std::size_t>(cols);
  switch (type) {
    case ActivationType::kF32:
      return n * sizeof(float);
    case ActivationType::kQ8_32:
      return (n + quant::kQ8_32Elements - 1) / quant::kQ8_32Elements * sizeof(quant::BlockQ8_32);
    case ActivationType::kQ8_256:
      return (n + quant::kQ8_256Elements - 1) / quant::kQ8_256Elements * sizeof(quant::BlockQ8_256);
  }
  return 0;
}

}  // namespace lmserve::kernels
