// A loaded causal language model: config, weights and the forward pass on the CPU.
// The engine owns one Model and one KvCache per live sequence.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "util/thread_pool.h"

namespace lmserve::model {

// Hyper-parameters, read once from config.json (HF) and shared by every later stage.
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
};

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
  // optional generation_config.json). Throws FileError with a precise message on any
  // malformed, missing or inconsistent input.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, util::ThreadPool& pool);

  virtual const ModelConfig& config() const = 0;

  // A fresh, empty cache able to hold `capacity` positions (<= max_position_embeddings).
  virtual std::unique_ptr<KvCache> new_cache(int capacity) const = 0;

  // Evaluates `tokens` at positions cache.size() .. cache.size()+tokens.size()-1, appends
  // their keys/values to `cache`, and writes the logits of the last token into
  // `logits` (vocab_size floats). tokens must be non-empty, ids in [0, vocab_size), and
  // fit in the cache's capacity.
  virtual void forward(std::span<const std::int32_t> tokens, KvCache& cache,
                       std::span<float> logits) = 0;
};

}  // namespace lmserve::model
