#include "model/kv_pool.h"

#include <algorithm>
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

int KvKind::span_blocks(int positions, int context) const {
  const int b = shape.block_size;
  const int whole = (context + b - 1) / b;
  if (positions <= 0) return 0;
  // Starting in a block's last slot costs one block more than starting in its first.
  return std::min(whole, (positions + b - 2) / b + 1);
}

KvLayout make_kv_layout(const KvShape& layer_shape, std::span<const int> layer_windows,
                        int context) {
  std::vector<int> windows;
  for (int w : layer_windows) windows.push_back(w >= context ? 0 : w);
  std::vector<int> distinct = windows;
  std::sort(distinct.begin(), distinct.end());  // 0 (full attention) first
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  KvLayout layout;
  layout.kind_of.resize(windows.size());
  layout.slot_of.resize(windows.size());
  for (int w : distinct) {
    KvKind kind{.window = w, .layers = {}, .shape = layer_shape};
    for (std::size_t l = 0; l < windows.size(); ++l) {
      if (windows[l] != w) continue;
      layout.kind_of[l] = static_cast<int>(layout.kinds.size());
      layout.slot_of[l] = static_cast<int>(kind.layers.size());
      kind.layers.push_back(static_cast<int>(l));
    }
    kind.shape.num_layers = static_cast<int>(kind.layers.size());
    layout.kinds.push_back(std::move(kind));
  }
  return layout;
}

KvPools::KvPools(KvLayout layout, std::span<const int> num_blocks) : layout_(std::move(layout)) {
  if (layout_.kinds.empty() || num_blocks.size() != layout_.kinds.size()) {
    throw std::invalid_argument("KvPools: one block count per cache kind, at least one kind");
  }
  pools_.reserve(layout_.kinds.size());
  for (std::size_t k = 0; k < layout_.kinds.size(); ++k)
    pools_.emplace_back(layout_.kinds[k].shape, num_blocks[k]);
}

std::size_t KvPools::bytes() const {
  std::size_t total = 0;
  for (const KvPool& pool : pools_) total += pool.bytes();
  return total;
}

}  // namespace lmserve::model
