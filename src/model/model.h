// A loaded causal language model: config, weights and the forward pass on the CPU.
// The engine owns one Model and its KvPools; each step is one batched forward pass.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/checkpoint.h"
#include "model/kv_pool.h"
#include "util/thread_pool.h"

namespace lmserve::model {

// How rotary frequencies are rescaled for long contexts (HF config.json "rope_scaling", GGUF
// "<arch>.rope.scaling.*"), with HF transformers' semantics (modeling_rope_utils).
struct RopeScaling {
  // kDynamic (HF's dynamic NTK) changes the base only past max_position_embeddings, which
  // lmserve never evaluates, so inside the context it rotates exactly like kNone.
  enum class Type { kNone, kLinear, kLlama3, kDynamic, kYarn, kLongRope };
  Type type = Type::kNone;
  float factor = 1.0f;
  // llama3 only: the wavelength bands that are kept, smoothed or divided by `factor`.
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  // llama3, yarn and longrope: the context the model was pre-trained with.
  int original_max_position_embeddings = 8192;
  // yarn: the rotation counts bounding the band blended between interpolated (slow) and
  // original (fast) frequencies; `truncate` rounds the band to whole dimensions.
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  bool truncate = true;
  // yarn (DeepSeek): the default attention factor is mscale(factor, mscale) /
  // mscale(factor, mscale_all_dim) when both are set (0 = unset).
  float mscale = 0.0f;
  float mscale_all_dim = 0.0f;
  // longrope: per-frequency divisors (head_dim / 2 each); the long ones are used when the
  // model's context exceeds original_max_position_embeddings.
  std::vector<float> short_factor;
  std::vector<float> long_factor;
  // yarn and longrope: the cos and sin tables are multiplied by it; unset = the type's
  // default (see rope_attention_factor).
  std::optional<float> attention_factor;
};

// Hyper-parameters, read once from config.json (HF) or GGUF metadata and shared by every
// later stage.
// MLX affine quantization from config.json's "quantization" block (mlx-lm checkpoints):
// defaults plus per-module entries (module path -> parameters, or nullopt for a module kept in
// floating point). A module is quantized iff its entry is an object, or it has no entry and the
// checkpoint holds "<path>.scales" (mlx-lm's rule).
struct MlxQuantization {
  struct Params {
    int group_size = 64;  // 32, 64 or 128
    int bits = 4;         // 2, 3, 4, 5, 6 or 8
  };
  bool present = false;
  Params defaults;
  std::map<std::string, std::optional<Params>, std::less<>> modules;
};

struct ModelConfig {
  std::string architecture;  // e.g. "llama"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;  // the context length n_ctx
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool tie_word_embeddings = false;
  std::vector<std::int32_t> eos_token_ids;  // from config.json (and generation_config.json)
  std::int32_t bos_token_id = -1;           // -1 when unknown
  RopeScaling rope_scaling;
  // Per-frequency divisors of the rotary angles (head_dim / 2 of them), applied after
  // rope_scaling; empty for none. GGUF files store llama3 scaling this way (rope_freqs).
  std::vector<float> rope_freq_factors;

  // Local (sliding-window) attention: layers marked in local_layers attend only to their last
  // sliding_window positions and rotate with local_rope_theta. 0 / empty: every layer global.
  int sliding_window = 0;
  std::vector<bool> local_layers;  // num_layers entries when sliding_window > 0
  float local_rope_theta = 0.0f;   // 0: rope_theta (and its rope_scaling) for local layers too
  // Soft-caps (Gemma 2): cap * tanh(x / cap) on attention scores and on logits; 0 = none.
  float attn_logit_softcap = 0.0f;
  float final_logit_softcap = 0.0f;
  // Attention scores are scaled by 1 / sqrt(query_pre_attn_scalar) (Gemma); 0 = head_dim.
  float query_pre_attn_scalar = 0.0f;
  MlxQuantization quantization;
};

// Parses HF config.json text (and generation_config.json text, empty when absent) into a
// validated ModelConfig. Throws FileError naming the offending key and value: unknown
// model_type, non-integer or non-positive dims, hidden_size not divisible by heads, etc.
ModelConfig parse_model_config(std::string_view config_json,
                               std::string_view generation_config_json = {});

// Reads dir/config.json and, when present, dir/generation_config.json.
ModelConfig load_model_config(const std::filesystem::path& dir);

// Rotary inverse frequencies (head_dim / 2 of them) after rope_scaling is applied.
std::vector<float> rope_inv_freq(const ModelConfig& config);
// Those of local (sliding-window) layers: local_rope_theta, unscaled (as HF and llama.cpp do).
std::vector<float> local_rope_inv_freq(const ModelConfig& config);
// The factor on the cos and sin of the (global) rotary embedding: 1 except for yarn and
// longrope, which temper attention for the stretched context (HF's attention_scaling).
float rope_attention_factor(const ModelConfig& config);

// One sequence's share of a Batch: its rows are consecutive, in position order.
struct BatchSequence {
  int n_rows = 0;     // >= 1
  int start_pos = 0;  // position of its first row = positions already in its KV blocks
  // Its block tables, one per cache kind (KvPools order): entry i holds positions
  // [i * block_size, (i + 1) * block_size). Each covers at least start_pos + n_rows positions;
  // the rows' keys and values are written into it. A windowed kind's table needs real blocks
  // only from first_visible_block(start_pos) on: earlier entries are never read.
  std::span<const std::vector<BlockId>> blocks;
  bool want_logits = false;  // compute the logits of its last row
};

// The rows of one forward step, drawn from many sequences (decode rows and prefill chunks).
struct Batch {
  std::span<const std::int32_t> tokens;  // every row's token, sequence after sequence
  std::span<const BatchSequence> sequences;
};

class KvCache;

class Model {
 public:
  virtual ~Model() = default;

  // Loads an HF-layout directory (config.json, model.safetensors or shards + index,
  // optional generation_config.json; float or MLX-quantized weights) or a .gguf file (config
  // from its metadata; float and GGUF-quantized tensors; split files from their first part).
  // Throws FileError with a precise message on any malformed, missing, inconsistent or
  // unsupported input.
  // `repack`: when the weights the CPU target multiplies faster in a layout of its own are
  // copied into it (both layouts give the same bits).
  enum class Repack {
    kAtLoad,        // before load() returns: every forward pass uses the final layout
    kInBackground,  // on a thread of the model's; adopt_repacked() swaps the copies in
  };
  static std::unique_ptr<Model> load(const std::filesystem::path& path, util::ThreadPool& pool,
                                     Repack repack = Repack::kAtLoad);
  // The same from a checkpoint already open (whose GGUF mapping the tokenizer shares).
  static std::unique_ptr<Model> load(const formats::Checkpoint& checkpoint, util::ThreadPool& pool,
                                     Repack repack = Repack::kAtLoad);

  virtual const ModelConfig& config() const = 0;
  // Bytes of the weights the forward pass reads (mapped from the checkpoint).
  virtual std::size_t weight_bytes() const = 0;
  // Of those, the bytes held in the CPU target's own layout (copies of file formats it
  // multiplies faster repacked).
  virtual std::size_t repacked_bytes() const { return 0; }

  // The KV block shape of this model for a pool of the given type and block size, every
  // layer in one block (what a model without windows has as its single kind).
  KvShape kv_shape(KvType type, int block_size) const;
  // The cache kinds of this model for contexts of `context` positions: its full-attention
  // layers, then its sliding-window layers grouped by window (see make_kv_layout).
  KvLayout kv_layout(KvType type, int block_size, int context) const;

  // Preallocates the per-step workspace for batches of up to max_rows rows, max_logit_rows
  // of them with logits, so that forward() does not allocate. Larger batches still work:
  // the workspace grows on first use.
  virtual void reserve(int max_rows, int max_logit_rows) = 0;
  // Bytes of the workspace reserved so far.
  virtual std::size_t workspace_bytes() const = 0;

  // One step: evaluates every row of `batch` at its position, writes its keys and values
  // into its sequence's blocks of `pool`, and writes the logits of each sequence that wants
  // them into consecutive rows of `logits` ([n, vocab_size], n = sequences with
  // want_logits, in batch order). Each row's result depends only on its own sequence's
  // tokens, never on the rest of the batch (batch invariance; see docs/architecture.md).
  // Throws std::invalid_argument for malformed batches (ids outside the vocabulary, block
  // tables too short, pools of another layout, logits of the wrong size). Calls on one
  // Model must not overlap: they share its thread pool and workspace.
  virtual void forward(const Batch& batch, KvPools& pools, std::span<float> logits) = 0;

  // With Repack::kInBackground: swaps in the weight copies finished so far and hands the file's
  // pages of them back. Call between forward passes, on the thread that runs them. True while
  // copies remain to be adopted.
  virtual bool adopt_repacked() { return false; }

  // Single-sequence convenience over the batch path (tests, tools): a cache with its own
  // small pool able to hold `capacity` positions (1..max_position_embeddings).
  std::unique_ptr<KvCache> new_cache(int capacity, KvType type = KvType::kF32) const;
  // Evaluates `tokens` after the cache's positions, appends them, and writes the logits of
  // the last one (vocab_size floats). Throws std::invalid_argument (and leaves the cache
  // unchanged) when tokens is empty, holds ids outside the vocabulary or does not fit.
  void forward(std::span<const std::int32_t> tokens, KvCache& cache, std::span<float> logits);
};

// One sequence's key/value cache in private pools that keep every position of every kind
// (see Model::new_cache): the reference the paged engine path is compared with.
class KvCache {
 public:
  KvCache(const KvLayout& layout, int capacity);
  int size() const { return size_; }
  int capacity() const { return capacity_; }
  // Drops every position >= n (0 <= n <= size()).
  void truncate(int n);

 private:
  friend class Model;
  KvPools pools_;
  std::vector<std::vector<BlockId>> blocks_;  // per kind
  int capacity_;
  int size_ = 0;
};

}  // namespace lmserve::model
