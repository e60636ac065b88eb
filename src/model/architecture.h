// Architecture descriptions: what a model family's checkpoint is made of, as data.
// One shared runtime (transformer.cc) executes any description; a new family is a new entry.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace lmserve::model {

// Which elements of a head rotary embeddings rotate together. The two are the same rotation
// applied to differently ordered Q/K rows, so each checkpoint layout names the order its
// q/k projection rows are stored in and the runtime rotates accordingly (no weight copies).
enum class RopeStyle {
  kHalves,         // element i with i + head_dim/2: HF's rotate_half (Q/K rows HF-permuted)
  kAdjacentPairs,  // element 2i with 2i+1: Meta's original order, kept by llama.cpp's GGUF
};

// How one checkpoint format (HF safetensors, GGUF) names and orders a family's weights.
// Tensor names use "{layer}" for the block index.
struct CheckpointLayout {
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

  // Optional per-frequency RoPE divisors (GGUF stores llama3 rope scaling this way); empty
  // when the format has no such tensor.
  std::string_view rope_freqs;

  RopeStyle rope_style = RopeStyle::kHalves;
};

// Today's runtime executes the pre-norm Llama block (RMSNorm -> GQA attention with RoPE ->
// residual -> RMSNorm -> gated MLP -> residual); families that differ (biases, q/k norms,
// post-norms, embedding scale) add fields here and the runtime branches on them, never a copy
// of the forward pass.
struct ArchitectureDescription {
  std::string_view name;                                 // what ModelConfig::architecture reports
  std::span<const std::string_view> model_types;         // HF config.json "model_type" values
  std::span<const std::string_view> gguf_architectures;  // GGUF "general.architecture" values

  CheckpointLayout hf;    // safetensors with HF names
  CheckpointLayout gguf;  // GGUF with llama.cpp names

  // True when config.json's "sliding_window" (if any) bounds attention, as in Mistral.
  bool has_sliding_window = false;
};

// nullptr when no description claims this HF model_type.
const ArchitectureDescription* find_architecture(std::string_view model_type);

// nullptr when no description claims this GGUF general.architecture.
const ArchitectureDescription* find_gguf_architecture(std::string_view gguf_architecture);

// "llama, mistral": for error messages.
std::string supported_model_types();
// "llama": for error messages.
std::string supported_gguf_architectures();

// Expands "{layer}" in a tensor name pattern.
std::string layer_tensor_name(std::string_view pattern, int layer);

}  // namespace lmserve::model
