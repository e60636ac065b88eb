// The paged key/value pool: every layer's keys and values for every live or cached sequence,
// in fixed-size blocks that sequences reference through block tables and share by refcount.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/attention.h"

namespace lmserve::model {

// How cached keys/values are stored (kernels::KvElement). F16 halves the pool's memory at no
// visible cost to the logits (values are rounded once, when written); q8_0 nearly halves it
// again.
using KvType = kernels::KvElement;
const char* to_string(KvType type);  // "f32", "f16", "q8_0"
std::optional<KvType> parse_kv_type(std::string_view name);

struct KvShape {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;  // positions per block
  KvType type = KvType::kF16;

  // Bytes of one block of one layer's keys (values are the same size).
  std::size_t block_bytes() const {
    return static_cast<std::size_t>(num_kv_heads) * static_cast<std::size_t>(block_size) *
           kernels::kv_row_bytes(type, head_dim);
  }
  // Bytes one block costs across all layers, keys and values.
  std::size_t bytes_per_block() const {
    return 2 * static_cast<std::size_t>(num_layers) * block_bytes();
  }
};

using BlockId = std::int32_t;

// Storage plus a refcounted block allocator. Within one layer a block is laid out
// [kv_head][slot][head_dim], so one head's keys for a block are contiguous.
// Not thread-safe: the engine thread owns the pool; the model only reads and writes blocks.
class KvPool {
 public:
  // Throws std::invalid_argument for a non-positive shape or block count, std::bad_alloc when
  // the memory cannot be had.
  KvPool(const KvShape& shape, int num_blocks);

  const KvShape& shape() const { return shape_; }
  int num_blocks() const { return static_cast<int>(refcount_.size()); }
  int free_blocks() const { return static_cast<int>(free_.size()); }
  std::size_t bytes() const {
    return 2 * layer_stride_ * static_cast<std::size_t>(shape_.num_layers);
  }

  // A fresh block with refcount 1, or nullopt when every block is referenced.
  std::optional<BlockId> allocate();
  void retain(BlockId block);
  // Drops one reference; the block is free again when none is left.
  void release(BlockId block);
  int refcount(BlockId block) const { return refcount_[static_cast<std::size_t>(block)]; }
  // Copies every layer's keys and values of `from` into `to` (copy-on-write).
  void copy(BlockId from, BlockId to);

  // The first byte of (layer, block, kv_head, slot 0) of the keys / values.
  std::byte* keys(int layer, BlockId block, int kv_head) const {
    return at(keys_, layer, block, kv_head);
  }
  std::byte* values(int layer, BlockId block, int kv_head) const {
    return at(values_, layer, block, kv_head);
  }

 private:
  std::byte* at(const std::unique_ptr<std::byte[]>& data, int layer, BlockId block,
                int kv_head) const {
    return data.get() + static_cast<std::size_t>(layer) * layer_stride_ +
           static_cast<std::size_t>(block) * shape_.block_bytes() +
           static_cast<std::size_t>(kv_head) * head_bytes_;
  }

  KvShape shape_;
  std::size_t layer_stride_;  // bytes of one layer's keys (or values), all blocks
  std::size_t head_bytes_;    // bytes of one head's slots in one block
  // Left uninitialised: the kernel commits pages as blocks are first written, so an idle
  // pool costs address space, not memory.
  std::unique_ptr<std::byte[]> keys_;    // [layer][block][kv_head][slot][head_dim]
  std::unique_ptr<std::byte[]> values_;  // same layout
  std::vector<int> refcount_;
  std::vector<BlockId> free_;  // a stack: recently freed blocks are reused first
};

}  // namespace lmserve::model
