#include "model/architecture.h"

#include <array>

#include "model/families/families.h"

namespace lmserve::model {

namespace {

// Every family, in the order error messages list them.
std::array<const ArchitectureDescription*, 7> all() {
  return {&families::llama(),  &families::mistral(), &families::qwen2(), &families::qwen3(),
          &families::gemma2(), &families::gemma3(),  &families::phi3()};
}

}  // namespace

const ArchitectureDescription* find_architecture(std::string_view model_type) {
  for (const auto* a : all()) {
    for (auto t : a->model_types) {
      if (t == model_type) return a;
    }
  }
  return nullptr;
}

const ArchitectureDescription* find_architecture_named(std::string_view name) {
  for (const auto* a : all()) {
    if (a->name == name) return a;
  }
  return nullptr;
}

const ArchitectureDescription* find_gguf_architecture(std::string_view gguf_architecture) {
  for (const auto* a : all()) {
    for (auto t : a->gguf_architectures) {
      if (t == gguf_architecture) return a;
    }
  }
  return nullptr;
}

std::string supported_model_types() {
  std::string out;
  for (const auto* a : all()) {
    for (auto t : a->model_types) {
      if (!out.empty()) out += ", ";
      out += t;
    }
  }
  return out;
}

std::string supported_gguf_architectures() {
  std::string out;
  for (const auto* a : all()) {
    for (auto t : a->gguf_architectures) {
      if (!out.empty()) out += ", ";
      out += t;
    }
  }
  return out;
}

std::string layer_tensor_name(std::string_view pattern, int layer) {
  constexpr std::string_view kToken = "{layer}";
  std::string out(pattern);
  auto pos = out.find(kToken);
  if (pos != std::string::npos) out.replace(pos, kToken.size(), std::to_string(layer));
  return out;
}

}  // namespace lmserve::model
