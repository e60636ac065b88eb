// A loaded causal language model: config, weights and the forward pass on the CPU.
// The engine owns one Model and one KvCache per live sequence.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/thread_pool.h"

namespace lmserve::model {

// How rotary frequencies are rescaled for long contexts (HF config.json "rope_scaling").
struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  float factor = 1.0f;
  // llama3 only: the wavelength bands that are kept, smoothed or divided by `factor`.
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

// Hyper-parameters, read once from config.json (HF) or GGUF metadata and shared by every
// later stage.
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

// Per-sequence key/value cache: the positions already evaluated.
class KvCache {
 public:
  virtual ~KvCache() = default;
  // Number of positions whose keys/values are stored.
  virtual int size() const = 0;
  // Maximum number of positions this cache can hold.
  virtual int capacity() const = 0;
  // Drops every position >= n (n <= size()).
  virtual void truncate(int n) = 0;
};

class Model {
 public:
  virtual ~Model() = default;

  // Loads an HF-layout directory (config.json, model.safetensors or shards + index,
  // optional generation_config.json) or a single .gguf file (config from its metadata; F32,
  // F16 and BF16 tensors). Throws FileError with a precise message on any malformed, missing,
  // inconsistent or unsupported (e.g. quantized) input.
  static std::unique_ptr<Model> load(const std::filesystem::path& path, util::ThreadPool& pool);

  virtual const ModelConfig& config() const = 0;

  // A fresh, empty cache able to hold `capacity` positions (<= max_position_embeddings).
  virtual std::unique_ptr<KvCache> new_cache(int capacity) const = 0;

  // Evaluates `tokens` at positions cache.size() .. cache.size()+tokens.size()-1, appends
  // their keys/values to `cache`, and writes the logits of the last token into
  // `logits` (vocab_size floats). tokens must be non-empty, ids in [0, vocab_size), and
  // fit in the cache's capacity: otherwise it throws ApiError (invalid_request; code
  // "context_length_exceeded" for capacity) and leaves the cache unchanged. A cache from
  // another model or a wrongly sized `logits` is std::invalid_argument. Calls on one Model
  // must not overlap: they share its thread pool.
  virtual void forward(std::span<const std::int32_t> tokens, KvCache& cache,
                       std::span<float> logits) = 0;
};

}  // namespace lmserve::model
