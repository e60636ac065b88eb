// The model families, one file each (model/families/<family>.cc). architecture.cc lists them;
// the Llama layouts here are the base the other families edit.
#pragma once

#include "model/architecture.h"

namespace lmserve::model::families {

// HF's Llama tensor names (HF Q/K row order: RoPE rotates halves).
inline constexpr CheckpointLayout kHfLlamaLayout = {
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
};

// llama.cpp's names. Its converter undoes HF's Q/K row permutation for the llama
// architecture only, so llama GGUFs rotate adjacent pairs; families whose GGUF keeps HF's
// row order (Qwen, Gemma, Phi-3: llama.cpp's NEOX RoPE) set kHalves.
inline constexpr CheckpointLayout kGgufLlamaLayout = {
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

// kGgufLlamaLayout for GGUF families that keep HF's Q/K row order and have no rope_freqs.
inline constexpr CheckpointLayout gguf_neox_layout() {
  CheckpointLayout l = kGgufLlamaLayout;
  l.rope_freqs = "";
  l.rope_style = RopeStyle::kHalves;
  return l;
}

const ArchitectureDescription& llama();
const ArchitectureDescription& mistral();
const ArchitectureDescription& qwen2();
const ArchitectureDescription& qwen3();
const ArchitectureDescription& gemma2();
const ArchitectureDescription& gemma3();
const ArchitectureDescription& phi3();

}  // namespace lmserve::model::families
