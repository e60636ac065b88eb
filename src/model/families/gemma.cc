// Gemma 2 and Gemma 3 (text): embeddings scaled by sqrt(hidden), (1 + w) RMSNorm, GELU-tanh
// gate, norms before and after both attention and MLP, alternating local (sliding-window)
// and global layers. Gemma 2 soft-caps attention scores and logits; Gemma 3 adds q/k norms
// and gives local layers their own RoPE base.
#include <array>

#include "model/families/families.h"

namespace lmserve::model::families {

namespace {
constexpr std::array<std::string_view, 1> kGemma2 = {"gemma2"};
constexpr std::array<std::string_view, 1> kGemma3Hf = {"gemma3_text"};
constexpr std::array<std::string_view, 1> kGemma3Gguf = {"gemma3"};

constexpr CheckpointLayout gemma_hf(bool qk_norm) {
  CheckpointLayout l = kHfLlamaLayout;
  l.lm_head = "";  // always tied
  l.post_attn_norm = "model.layers.{layer}.post_attention_layernorm.weight";
  l.mlp_norm = "model.layers.{layer}.pre_feedforward_layernorm.weight";
  l.post_mlp_norm = "model.layers.{layer}.post_feedforward_layernorm.weight";
  if (qk_norm) {
    l.q_norm = "model.layers.{layer}.self_attn.q_norm.weight";
    l.k_norm = "model.layers.{layer}.self_attn.k_norm.weight";
  }
  l.norm_weight_offset = 1.0f;
  return l;
}

constexpr CheckpointLayout gemma_gguf(bool qk_norm) {
  CheckpointLayout l = gguf_neox_layout();
  l.lm_head = "";
  l.post_attn_norm = "blk.{layer}.post_attention_norm.weight";
  l.post_mlp_norm = "blk.{layer}.post_ffw_norm.weight";
  if (qk_norm) {
    l.q_norm = "blk.{layer}.attn_q_norm.weight";
    l.k_norm = "blk.{layer}.attn_k_norm.weight";
  }
  return l;
}

constexpr BlockSpec gemma_block(bool qk_norm, LocalLayers local, float local_theta) {
  return {.activation = Activation::kGeluTanh,
          .qk_norm = qk_norm,
          .post_norms = true,
          .scale_embeddings = true,
          .local_layers = local,
          .default_local_rope_theta = local_theta};
}
}  // namespace

const ArchitectureDescription& gemma2() {
  static const ArchitectureDescription d{
      .name = "gemma2",
      .model_types = kGemma2,
      .gguf_architectures = kGemma2,
      .hf = gemma_hf(false),
      .gguf = gemma_gguf(false),
      .block = gemma_block(false, LocalLayers::kEvenLayers, 0.0f),
      .hf_activation_key = "hidden_activation",
      .has_sliding_window = true};
  return d;
}

const ArchitectureDescription& gemma3() {
  static const ArchitectureDescription d{
      .name = "gemma3",
      .model_types = kGemma3Hf,
      .gguf_architectures = kGemma3Gguf,
      .hf = gemma_hf(true),
      .gguf = gemma_gguf(true),
      // Gemma3TextConfig's default rope_local_base_freq, also llama.cpp's for older GGUFs.
      .block = gemma_block(true, LocalLayers::kFiveOfSix, 10000.0f),
      .hf_activation_key = "hidden_activation",
      .has_sliding_window = true};
  return d;
}

}  // namespace lmserve::model::families
