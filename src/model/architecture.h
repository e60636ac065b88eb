// Architecture descriptions: what a model family's checkpoint is made of, as data.
// One shared runtime (transformer.cc) executes any description; a new family is a new entry.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace lmserve::model {

// Tensor names use "{layer}" for the block index. Today's runtime executes the pre-norm
// Llama block (RMSNorm -> GQA attention with RoPE -> residual -> RMSNorm -> gated MLP ->
// residual); families that differ (biases, q/k norms, post-norms, embedding scale) add
// fields here and the runtime branches on them, never a copy of the forward pass.
struct ArchitectureDescription {
  std::string_view name;                          // what ModelConfig::architecture reports
  std::span<const std::string_view> model_types;  // HF config.json "model_type" values

  std::string_view embed_tokens;
  std::string_view final_norm;
  std::string_view lm_head;  // absent in the checkpoint => tied to embed_tokens

  std::string_view attn_norm;
  std::string_view q_proj;
  std::string_view k_proj;
  std::string_view v_proj;
  std::string_view o_proj;
  std::string_view mlp_norm;
  std::string_view gate_proj;
  std::string_view up_proj;
  std::string_view down_proj;

  // True when config.json's "sliding_window" (if any) bounds attention, as in Mistral.
  bool has_sliding_window = false;
};

// nullptr when no description claims this model_type.
const ArchitectureDescription* find_architecture(std::string_view model_type);

// "llama, mistral": for error messages.
std::string supported_model_types();

// Expands "{layer}" in a tensor name pattern.
std::string layer_tensor_name(std::string_view pattern, int layer);

}  // namespace lmserve::model
