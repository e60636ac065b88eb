#include "model/kv_pool.h"

#include <cstring>
#include <stdexcept>

namespace lmserve::model {

const char* to_string(KvType type) {
  switch (type) {
    case KvType::kF32:
      return "f32";
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
  }
  return "?";
}

std::optional<KvType> parse_kv_type(std::string_view name) {
  if (name == "f16") return KvType::kF16;
  if (name == "f32") return KvType::kF32;
  if (name == "q8_0") return KvType::kQ8_0;
  return std::nullopt;
}

KvPool::KvPool(const KvShape& shape, int num_blocks) : shape_(shape) {
  if (shape.num_layers <= 0 || shape.num_kv_heads <= 0 || shape.head_dim <= 0 ||
      shape.block_size <= 0 || num_blocks <= 0) {
    throw std::invalid_argument("KvPool: every dimension and the block count must be positive");
  }
  head_bytes_ = shape.block_bytes() / static_cast<std::size_t>(shape.num_kv_heads);
  layer_stride_ = static_cast<std::size_t>(num_blocks) * shape.block_bytes();
  const std::size_t total = layer_stride_ * static_cast<std::size_t>(shape.num_layers);
  keys_.reset(new std::byte[total]);
  values_.reset(new std::byte[total]);
  refcount_.assign(static_cast<std::size_t>(num_blocks), 0);
  free_.reserve(static_cast<std::size_t>(num_blocks));
  for (BlockId b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

std::optional<BlockId> KvPool::allocate() {
  if (free_.empty()) return std::nullopt;
  BlockId block = free_.back();
  free_.pop_back();
  refcount_[static_cast<std::size_t>(block)] = 1;
  return block;
}

void KvPool::retain(BlockId block) {
  int& rc = refcount_.at(static_cast<std::size_t>(block));
  if (rc <= 0) throw std::logic_error("KvPool::retain of a free block");
  ++rc;
}

void KvPool::release(BlockId block) {
  int& rc = refcount_.at(static_cast<std::size_t>(block));
  if (rc <= 0) throw std::logic_error("KvPool::release of a free block");
  if (--rc == 0) free_.push_back(block);
}

void KvPool::copy(BlockId from, BlockId to) {
  for (int layer = 0; layer < shape_.num_layers; ++layer) {
    std::memcpy(keys(layer, to, 0), keys(layer, from, 0), shape_.block_bytes());
    std::memcpy(values(layer, to, 0), values(layer, from, 0), shape_.block_bytes());
  }
}

}  // namespace lmserve::model
