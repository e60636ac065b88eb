// Model's single-sequence convenience API, expressed through the batch seam.
#include "model/model.h"

#include <stdexcept>
#include <string>

namespace lmserve::model {
namespace {
constexpr int kPrivateBlockSize = 16;

int blocks_for(int positions, int block_size) { return (positions + block_size - 1) / block_size; }

// The reference cache keeps every position of every kind.
std::vector<int> blocks_per_kind(const KvLayout& layout, int capacity) {
  return std::vector<int>(layout.kinds.size(), blocks_for(capacity, layout.block_size()));
}
}  // namespace

KvShape Model::kv_shape(KvType type, int block_size) const {
  const ModelConfig& c = config();
  return {.num_layers = c.num_layers,
          .num_kv_heads = c.num_kv_heads,
          .head_dim = c.head_dim,
          .block_size = block_size,
          .type = type};
}

KvLayout Model::kv_layout(KvType type, int block_size, int context) const {
  const ModelConfig& c = config();
  std::vector<int> windows(static_cast<std::size_t>(c.num_layers), 0);
  for (std::size_t l = 0; l < c.local_layers.size(); ++l) {
    if (c.local_layers[l]) windows[l] = c.sliding_window;
  }
  return make_kv_layout(kv_shape(type, block_size), windows, context);
}

KvCache::KvCache(const KvLayout& layout, int capacity)
    : pools_(layout, blocks_per_kind(layout, capacity)), capacity_(capacity) {
  for (int k = 0; k < pools_.num_kinds(); ++k) {
    auto& table = blocks_.emplace_back();
    for (int i = 0; i < pools_[k].num_blocks(); ++i) table.push_back(*pools_[k].allocate());
  }
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
  return std::make_unique<KvCache>(kv_layout(type, kPrivateBlockSize, capacity), capacity);
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
  forward(Batch{.tokens = tokens, .sequences = std::span(&seq, 1)}, cache.pools_, logits);
  cache.size_ += static_cast<int>(tokens.size());
}

}  // namespace lmserve::model
