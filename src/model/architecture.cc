#include "model/architecture.h"

#include <array>

namespace lmserve::model {

namespace {

constexpr std::array<std::string_view, 1> kLlamaTypes = {"llama"};
constexpr std::array<std::string_view, 1> kMistralTypes = {"mistral"};
// llama.cpp converts Mistral (and other Llama-block models) to the "llama" GGUF architecture,
// so one description claims it.
constexpr std::array<std::string_view, 1> kLlamaGguf = {"llama"};

constexpr CheckpointLayout kHfLlamaLayout = {
    .embed_tokens = "model.embed_tokens.weight",
    .final_norm = "model.norm.weight",
    .lm_head = "lm_head.weight",
    .attn_norm = "model.layers.{layer}.input_layernorm.weight",
    .q_proj = "model.layers.{layer}.self_attn.q_proj.weight",
    .k_proj = "model.layers.{layer}.self_attn.k_proj.weight",
    .v_proj = "model.layers.{layer}.self_attn.v_proj.weight",
    .o_proj = "model.layers.{layer}.self_attn.o_proj.weight",
    .mlp_norm = "model.layers.{layer}.post_attention_layernorm.weight",
    .gate_proj = "model.layers.{layer}.mlp.gate_proj.weight",
    .up_proj = "model.layers.{layer}.mlp.up_proj.weight",
    .down_proj = "model.layers.{layer}.mlp.down_proj.weight",
    .rope_freqs = "",
    .rope_style = RopeStyle::kHalves,
};

// llama.cpp's names; its converter undoes HF's Q/K row permutation, so Q/K rows are in Meta's
// interleaved order and RoPE rotates adjacent pairs.
constexpr CheckpointLayout kGgufLlamaLayout = {
    .embed_tokens = "token_embd.weight",
    .final_norm = "output_norm.weight",
    .lm_head = "output.weight",
    .attn_norm = "blk.{layer}.attn_norm.weight",
    .q_proj = "blk.{layer}.attn_q.weight",
    .k_proj = "blk.{layer}.attn_k.weight",
    .v_proj = "blk.{layer}.attn_v.weight",
    .o_proj = "blk.{layer}.attn_output.weight",
    .mlp_norm = "blk.{layer}.ffn_norm.weight",
    .gate_proj = "blk.{layer}.ffn_gate.weight",
    .up_proj = "blk.{layer}.ffn_up.weight",
    .down_proj = "blk.{layer}.ffn_down.weight",
    .rope_freqs = "rope_freqs.weight",
    .rope_style = RopeStyle::kAdjacentPairs,
};

constexpr ArchitectureDescription llama_like(std::string_view name,
                                             std::span<const std::string_view> types,
                                             std::span<const std::string_view> gguf_archs,
                                             bool sliding_window) {
  ArchitectureDescription d;
  d.name = name;
  d.model_types = types;
  d.gguf_architectures = gguf_archs;
  d.hf = kHfLlamaLayout;
  d.gguf = kGgufLlamaLayout;
  d.has_sliding_window = sliding_window;
  return d;
}

// Mistral is the Llama block with the same tensor names; it differs only in its optional
// sliding window.
const std::array<ArchitectureDescription, 2> kArchitectures = {
    llama_like("llama", kLlamaTypes, kLlamaGguf, false),
    llama_like("mistral", kMistralTypes, {}, true),
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

const ArchitectureDescription* find_gguf_architecture(std::string_view gguf_architecture) {
  for (const auto& a : kArchitectures) {
    for (auto t : a.gguf_architectures) {
      if (t == gguf_architecture) return &a;
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

std::string supported_gguf_architectures() {
  std::string out;
  for (const auto& a : kArchitectures) {
    for (auto t : a.gguf_architectures) {
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
