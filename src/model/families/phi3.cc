// Phi-3: the Llama block with fused qkv and gate|up projections (kept fused in GGUF) and a
// sliding window on every layer.
#include <array>

#include "model/families/families.h"

namespace lmserve::model::families {

namespace {
constexpr std::array<std::string_view, 1> kPhi3 = {"phi3"};

constexpr CheckpointLayout fused(CheckpointLayout l, std::string_view qkv,
                                 std::string_view gate_up) {
  l.q_proj = l.k_proj = l.v_proj = "";
  l.gate_proj = l.up_proj = "";
  l.qkv_proj = qkv;
  l.gate_up_proj = gate_up;
  return l;
}

constexpr CheckpointLayout gguf_phi3() {
  CheckpointLayout l =
      fused(gguf_neox_layout(), "blk.{layer}.attn_qkv.weight", "blk.{layer}.ffn_up.weight");
  // HF's "longrope"/"su" rope_scaling factors.
  l.rope_factors_long = "rope_factors_long.weight";
  l.rope_factors_short = "rope_factors_short.weight";
  return l;
}
}  // namespace

const ArchitectureDescription& phi3() {
  static const ArchitectureDescription d{
      .name = "phi3",
      .model_types = kPhi3,
      .gguf_architectures = kPhi3,
      .hf = fused(kHfLlamaLayout, "model.layers.{layer}.self_attn.qkv_proj.weight",
                  "model.layers.{layer}.mlp.gate_up_proj.weight"),
      .gguf = gguf_phi3(),
      .has_sliding_window = true};
  return d;
}

}  // namespace lmserve::model::families
