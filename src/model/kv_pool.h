// The paged key/value pools: the layers' keys and values for every live or cached sequence, in
// fixed-size blocks that sequences reference through block tables and share by refcount; one
// pool per cache kind (full-attention layers, sliding-window layers of one window).
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
// A block-table entry a sequence does not hold (a window block no later row can see).
inline constexpr BlockId kNoBlock = -1;

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

// A group of layers cached alike, in one pool with its own block table per sequence.
// Full-attention layers keep every position; sliding-window layers keep only the blocks a
// later row can still see, so a sequence holds at most ceil(window / block_size) + 1 of them
// between steps whatever its length.
struct KvKind {
  int window = 0;           // 0: full attention; > 0: a row at p sees positions > p - window
  std::vector<int> layers;  // the model layers it holds, ascending (shape.num_layers of them)
  KvShape shape;

  // The first block a row at `pos` reads (0 for full attention).
  int first_visible_block(int pos) const {
    return window > 0 && pos + 1 > window ? (pos + 1 - window) / shape.block_size : 0;
  }
  // The most blocks that `positions` consecutive positions of one kind-wide block table can
  // span, however they are aligned (never more than a context of `context` positions has).
  int span_blocks(int positions, int context) const;
};

// A model's layers grouped into kinds: the full-attention kind first (if any), then one
// windowed kind per window, ascending.
struct KvLayout {
  std::vector<KvKind> kinds;
  std::vector<int> kind_of;  // per model layer: its kind
  std::vector<int> slot_of;  // per model layer: its index among its kind's layers

  int block_size() const { return kinds.front().shape.block_size; }
};

// Groups layers by window (layer_windows: one entry per layer, 0 = full attention). A window
// of `context` positions or more hides nothing inside the context, so such layers join the
// full-attention kind: a model without effective windows has exactly one kind.
// `layer_shape` is one layer's shape (its num_layers is ignored).
KvLayout make_kv_layout(const KvShape& layer_shape, std::span<const int> layer_windows,
                        int context);

// One pool per kind of a layout.
class KvPools {
 public:
  // num_blocks: one count per kind. Throws like KvPool.
  KvPools(KvLayout layout, std::span<const int> num_blocks);

  const KvLayout& layout() const { return layout_; }
  int num_kinds() const { return static_cast<int>(pools_.size()); }
  KvPool& operator[](int kind) { return pools_[static_cast<std::size_t>(kind)]; }
  const KvPool& operator[](int kind) const { return pools_[static_cast<std::size_t>(kind)]; }
  std::size_t bytes() const;

 private:
  KvLayout layout_;
  std::vector<KvPool> pools_;
};

}  // namespace lmserve::model
