// Qwen2/2.5 (q/k/v biases) and Qwen3 (per-head q/k RMSNorm, explicit head_dim).
#include <array>

#include "model/families/families.h"

namespace lmserve::model::families {

namespace {
constexpr std::array<std::string_view, 1> kQwen2 = {"qwen2"};
constexpr std::array<std::string_view, 1> kQwen3 = {"qwen3"};

constexpr CheckpointLayout with_biases(CheckpointLayout l, std::string_view q, std::string_view k,
                                       std::string_view v) {
  l.q_bias = q;
  l.k_bias = k;
  l.v_bias = v;
  return l;
}

constexpr CheckpointLayout with_qk_norm(CheckpointLayout l, std::string_view q,
                                        std::string_view k) {
  l.q_norm = q;
  l.k_norm = k;
  return l;
}
}  // namespace

const ArchitectureDescription& qwen2() {
  static const ArchitectureDescription d{
      .name = "qwen2",
      .model_types = kQwen2,
      .gguf_architectures = kQwen2,
      .hf = with_biases(kHfLlamaLayout, "model.layers.{layer}.self_attn.q_proj.bias",
                        "model.layers.{layer}.self_attn.k_proj.bias",
                        "model.layers.{layer}.self_attn.v_proj.bias"),
      .gguf = with_biases(gguf_neox_layout(), "blk.{layer}.attn_q.bias", "blk.{layer}.attn_k.bias",
                          "blk.{layer}.attn_v.bias"),
      .block = {.qkv_bias = true}};
  return d;
}

const ArchitectureDescription& qwen3() {
  static const ArchitectureDescription d{
      .name = "qwen3",
      .model_types = kQwen3,
      .gguf_architectures = kQwen3,
      .hf = with_qk_norm(kHfLlamaLayout, "model.layers.{layer}.self_attn.q_norm.weight",
                         "model.layers.{layer}.self_attn.k_norm.weight"),
      .gguf = with_qk_norm(gguf_neox_layout(), "blk.{layer}.attn_q_norm.weight",
                           "blk.{layer}.attn_k_norm.weight"),
      .block = {.qk_norm = true}};
  return d;
}

}  // namespace lmserve::model::families
