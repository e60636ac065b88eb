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
// Tensor names use "{layer}" for the block index; an empty name means the family's block has
// no such tensor in this format.
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

  // Fused projections (Phi-3): q|k|v rows and gate|up rows in one matrix each. When set, they
  // replace q/k/v_proj and gate/up_proj; the runtime binds row ranges, never copies.
  std::string_view qkv_proj;
  std::string_view gate_up_proj;

  std::string_view q_bias, k_bias, v_bias;  // BlockSpec::qkv_bias
  std::string_view q_norm, k_norm;          // BlockSpec::qk_norm, one head_dim vector each
  std::string_view post_attn_norm;          // BlockSpec::post_norms: on the attention output
  std::string_view post_mlp_norm;           // BlockSpec::post_norms: on the MLP output

  // Added to every norm weight at load: HF Gemma stores w for a (1 + w) RMSNorm, GGUF stores
  // 1 + w already, so both run the plain RMSNorm.
  float norm_weight_offset = 0.0f;

  // Optional per-frequency RoPE divisors (GGUF stores llama3 rope scaling this way); empty
  // when the format has no such tensor.
  std::string_view rope_freqs;

  RopeStyle rope_style = RopeStyle::kHalves;

  // Optional longrope factors (Phi-3 GGUFs store HF's long_factor / short_factor this way);
  // empty when the format has none.
  std::string_view rope_factors_long;
  std::string_view rope_factors_short;
};

enum class Activation { kSilu, kGeluTanh };

// Which layers attend locally (within ModelConfig::sliding_window, with their own RoPE base)
// when the config sets a window. HF configs with "layer_types" say it per layer instead.
enum class LocalLayers {
  kAll,         // every layer (Mistral, Phi-3)
  kEvenLayers,  // layers 0, 2, 4, ... (Gemma 2)
  kFiveOfSix,   // all but every sixth layer (Gemma 3: llama.cpp's default pattern)
};

// The block every layer of a family runs: pre-norm RMSNorm -> GQA attention with RoPE ->
// [post-norm] -> residual -> RMSNorm -> gated MLP -> [post-norm] -> residual. Each field is a
// feature the shared runtime branches on; values that vary per checkpoint (window, soft-caps,
// RoPE bases) live in ModelConfig.
struct BlockSpec {
  Activation activation = Activation::kSilu;
  bool qkv_bias = false;          // q/k/v projections have biases (Qwen2)
  bool qk_norm = false;           // per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3)
  bool post_norms = false;        // RMSNorm on the attention and MLP outputs (Gemma 2/3)
  bool scale_embeddings = false;  // embeddings times sqrt(hidden_size) (Gemma)
  LocalLayers local_layers = LocalLayers::kAll;
  // RoPE base of local layers when the config names none; 0 = the global base.
  float default_local_rope_theta = 0.0f;
};

// A model family: its names in configs and GGUF files, its checkpoint layouts and its block.
// A family is one file under model/families/; the runtime never branches on its name.
struct ArchitectureDescription {
  std::string_view name;                                 // what ModelConfig::architecture reports
  std::span<const std::string_view> model_types;         // HF config.json "model_type" values
  std::span<const std::string_view> gguf_architectures;  // GGUF "general.architecture" values

  CheckpointLayout hf;    // safetensors with HF names
  CheckpointLayout gguf;  // GGUF with llama.cpp names

  BlockSpec block;
  // config.json's activation key ("hidden_act"; Gemma: "hidden_activation").
  std::string_view hf_activation_key = "hidden_act";
  // True when the config's "sliding_window" (if any) bounds attention.
  bool has_sliding_window = false;
};

// nullptr when no description claims this HF model_type.
const ArchitectureDescription* find_architecture(std::string_view model_type);

// The description whose name is `name` (ModelConfig::architecture); nullptr for none.
const ArchitectureDescription* find_architecture_named(std::string_view name);

// nullptr when no description claims this GGUF general.architecture.
const ArchitectureDescription* find_gguf_architecture(std::string_view gguf_architecture);

// "llama, mistral": for error messages.
std::string supported_model_types();
// "llama": for error messages.
std::string supported_gguf_architectures();

// Expands "{layer}" in a tensor name pattern.
std::string layer_tensor_name(std::string_view pattern, int layer);

}  // namespace lmserve::model
