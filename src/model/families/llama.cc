// Llama (1/2/3.x) and Mistral: the plain pre-norm block the other families extend.
#include <array>

#include "model/families/families.h"

namespace lmserve::model::families {

namespace {
constexpr std::array<std::string_view, 1> kLlamaTypes = {"llama"};
constexpr std::array<std::string_view, 1> kMistralTypes = {"mistral"};
// llama.cpp converts Mistral (and other Llama-block models) to the "llama" GGUF
// architecture, which has no sliding window; the llama description claims it.
constexpr std::array<std::string_view, 1> kLlamaGguf = {"llama"};
}  // namespace

const ArchitectureDescription& llama() {
  static const ArchitectureDescription d{.name = "llama",
                                         .model_types = kLlamaTypes,
                                         .gguf_architectures = kLlamaGguf,
                                         .hf = kHfLlamaLayout,
                                         .gguf = kGgufLlamaLayout};
  return d;
}

// The Llama block whose config's "sliding_window" limits every layer's attention.
const ArchitectureDescription& mistral() {
  static const ArchitectureDescription d{.name = "mistral",
                                         .model_types = kMistralTypes,
                                         .gguf_architectures = {},
                                         .hf = kHfLlamaLayout,
                                         .gguf = kGgufLlamaLayout,
                                         .has_sliding_window = true};
  return d;
}

}  // namespace lmserve::model::families
