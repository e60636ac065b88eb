// Model's single-sequence convenience API, expressed through the batch seam.
#include "model/model.h"

#include <stdexcept>
#include <string>

namespace lmserve::model {
namespace {
constexpr int kPrivateBlockSize = 16;

int blocks_for(int positions, int block_size) { return (positions + block_size - 1) / block_size; }
}  // namespace

KvShape Model::kv_shape(KvType type, int block_size) const {
  const ModelConfig& c = config();
  return {.num_layers = c.num_layers,
          .num_kv_heads = c.num_kv_heads,
          .head_dim = c.head_dim,
          .block_size = block_size,
          .type = type};
}

KvCache::KvCache(const KvShape& shape, int capacity)
    : pool_(shape, blocks_for(capacity, shape.block_size)), capacity_(capacity) {
  for (int i = 0; i < pool_.num_blocks(); ++i) blocks_.push_back(*pool_.allocate());
}

void KvCache::truncate(int n) {
  if (n < 0 || n > size_) {
    throw std::invalid_argument("KvCache::truncate(" + std::to_string(n) + ") outside [0, " +
                                std::to_string(size_) + "]");
  }
  size_ = n;
}

std::unique_ptr<KvCache> Model::new_cache(int capacity, KvType type) const {
  if (capacity <= 0 || capacity > config().max_position_embeddings) {
    throw std::invalid_argument("KV cache capacity " + std::to_string(capacity) + " outside [1, " +
                                std::to_string(config().max_position_embeddings) + "]");
  }
  return std::make_unique<KvCache>(kv_shape(type, kPrivateBlockSize), capacity);
}

void Model::forward(std::span<const std::int32_t> tokens, KvCache& cache, std::span<float> logits) {
  if (tokens.empty()) throw std::invalid_argument("forward: no tokens to evaluate");
  if (tokens.size() > static_cast<std::size_t>(cache.capacity_ - cache.size_)) {
    throw std::invalid_argument(
        std::to_string(cache.size_) + " cached + " + std::to_string(tokens.size()) +
        " new tokens exceed the cache's capacity of " + std::to_string(cache.capacity_));
  }
  const BatchSequence seq{.n_rows = static_cast<int>(tokens.size()),
                          .start_pos = cache.size_,
                          .blocks = cache.blocks_,
                          .want_logits = true};
  forward(Batch{.tokens = tokens, .sequences = std::span(&seq, 1)}, cache.pool_, logits);
  cache.size_ += static_cast<int>(tokens.size());
}

}  // namespace lmserve::model
