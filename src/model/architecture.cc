#include "model/architecture.h"

#include <array>

namespace lmserve::model {

namespace {

constexpr std::array<std::string_view, 1> kLlamaTypes = {"llama"};
constexpr std::array<std::string_view, 1> kMistralTypes = {"mistral"};

constexpr ArchitectureDescription llama_like(std::string_view name,
                                             std::span<const std::string_view> types,
                                             bool sliding_window) {
  ArchitectureDescription d;
  d.name = name;
  d.model_types = types;
  d.embed_tokens = "model.embed_tokens.weight";
  d.final_norm = "model.norm.weight";
  d.lm_head = "lm_head.weight";
  d.attn_norm = "model.layers.{layer}.input_layernorm.weight";
  d.q_proj = "model.layers.{layer}.self_attn.q_proj.weight";
  d.k_proj = "model.layers.{layer}.self_attn.k_proj.weight";
  d.v_proj = "model.layers.{layer}.self_attn.v_proj.weight";
  d.o_proj = "model.layers.{layer}.self_attn.o_proj.weight";
  d.mlp_norm = "model.layers.{layer}.post_attention_layernorm.weight";
  d.gate_proj = "model.layers.{layer}.mlp.gate_proj.weight";
  d.up_proj = "model.layers.{layer}.mlp.up_proj.weight";
  d.down_proj = "model.layers.{layer}.mlp.down_proj.weight";
  d.has_sliding_window = sliding_window;
  return d;
}

// Mistral is the Llama block with the same tensor names; it differs only in its optional
// sliding window.
const std::array<ArchitectureDescription, 2> kArchitectures = {
    llama_like("llama", kLlamaTypes, false),
    llama_like("mistral", kMistralTypes, true),
};

}  // namespace

const ArchitectureDescription* find_architecture(std::string_view model_type) {
  for (const auto& a : kArchitectures) {
    for (auto t : a.model_types) {
      if (t == model_type) return &a;
    }
  }
  return nullptr;
}

std::string supported_model_types() {
  std::string out;
  for (const auto& a : kArchitectures) {
    for (auto t : a.model_types) {
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
