// Causal scaled-dot-product attention with grouped-query heads over a paged key/value cache.
// Knows nothing of models: it reads f32 query rows and f16/f32 key/value blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "util/thread_pool.h"

namespace lmserve::kernels {

struct AttentionShape {
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // n_heads % n_kv_heads == 0: query head h reads kv head h / group
  int head_dim = 0;
};

// How cached keys and values are stored. q8_0: groups of 32 values (a whole row when
// head_dim is not a multiple of 32) as one f16 scale and int8 quants, like GGUF's Q8_0.
enum class KvElement { kF32, kF16, kQ8_0 };

// Bytes of one head's row (head_dim values) in the given element type.
std::size_t kv_row_bytes(KvElement element, int head_dim);
// One row into its stored form and back (store_kv and the attention use these).
void store_kv_row(KvElement element, const float* in, std::byte* out, int head_dim);
void load_kv_row(KvElement element, const std::byte* in, float* out, int head_dim);

// One layer's keys and values, in blocks of block_size positions. Kv head h's part of the block
// holding position p (in a sequence whose block table is `blocks`) starts at
//   base + blocks[p / block_size] * block_stride + h * head_stride
// and holds block_size rows of kv_row_bytes(element, head_dim). Values, and q8_0 keys, are
// stored position-major: position p's row is the (p % block_size)-th. f16 and f32 keys are
// stored dimension-major: element i of position p is the (i * block_size + p % block_size)-th,
// so that a block's scores read one dimension of all its keys as one vector (no transpose).
struct PagedKv {
  std::byte* keys = nullptr;
  std::byte* values = nullptr;
  std::size_t block_stride = 0;  // bytes
  std::size_t head_stride = 0;   // bytes
  int block_size = 0;
  KvElement element = KvElement::kF16;
};

// The rows of one sequence in a batch of queries.
struct AttentionSequence {
  int first_row = 0;
  int n_rows = 0;
  int start_pos = 0;  // row i sits at position start_pos + i
  const std::int32_t* blocks = nullptr;
};

// What a layer changes in the scores: Gemma 2's soft-cap and sliding-window (local) layers.
struct ScoreOptions {
  float softcap = 0.0f;  // > 0: scores become softcap * tanh(score / softcap) after scaling
  int window = 0;        // > 0: a row at pos attends only to positions > pos - window
};

// Whether keys in this element type are stored dimension-major (see PagedKv).
inline bool keys_dimension_major(KvElement element) { return element != KvElement::kQ8_0; }

// Where kv head `head`'s part of the block holding `pos` starts in `base` (kv.keys or kv.values).
inline std::byte* kv_block(std::byte* base, const PagedKv& kv, const std::int32_t* blocks, int head,
                           int pos) {
  return base + static_cast<std::size_t>(blocks[pos / kv.block_size]) * kv.block_stride +
         static_cast<std::size_t>(head) * kv.head_stride;
}

// Where the position-major row of position `pos` of kv head `head` starts in `base`.
inline std::byte* kv_slot(std::byte* base, const PagedKv& kv, const std::int32_t* blocks, int head,
                          int pos, int head_dim) {
  return kv_block(base, kv, blocks, head, pos) +
         static_cast<std::size_t>(pos % kv.block_size) * kv_row_bytes(kv.element, head_dim);
}

// Stores one row's keys and values (n_kv_heads * head_dim f32 each) at position `pos`.
void store_kv(const PagedKv& kv, const AttentionShape& shape, const std::int32_t* blocks, int pos,
              const float* k, const float* v);

// For every row of every sequence and each head, attends over that sequence's positions
// [0, pos] (or its last `options.window` positions) and writes the weighted sum of values.
// q and out are [rows, n_heads * head_dim]. Sequences must be ordered by first_row. Scores
// are scaled by `scale` (then soft-capped) before the softmax. The softmax runs online, block
// by block in position order from the block holding the first visible position, so a row's
// result depends only on its own sequence and position (batch-invariant) and never needs a
// buffer as long as the context.
void paged_attention(util::ThreadPool& pool, const AttentionShape& shape, const PagedKv& kv,
                     std::span<const AttentionSequence> sequences, const float* q, float scale,
                     float* out, const ScoreOptions& options = {});

}  // namespace lmserve::kernels
