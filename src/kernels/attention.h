// Causal scaled-dot-product attention with grouped-query heads over a key/value cache.
// Knows nothing of models: it reads dense f32 rows of queries, keys and values.
#pragma once

#include "util/thread_pool.h"

namespace lmserve::kernels {

struct AttentionShape {
  int n_heads = 0;  // query heads
  int n_kv_heads =
      0;  // key/value heads; n_heads % n_kv_heads == 0 (query head h reads kv head h / group)
  int head_dim = 0;
};

// For each of n_tokens queries (token t sits at position start_pos + t) and each head,
// attends over cached positions [0, start_pos + t] and writes the weighted sum of values.
//   q:   [n_tokens, n_heads * head_dim]
//   k,v: [>= start_pos + n_tokens, n_kv_heads * head_dim], rows kv_stride floats apart
//   out: [n_tokens, n_heads * head_dim]
// Scores are scaled by `scale` (usually 1/sqrt(head_dim)) before the softmax.
void attention(util::ThreadPool& pool, const AttentionShape& shape, const float* q, int n_tokens,
               int start_pos, const float* k, const float* v, long kv_stride, float scale,
               float* out);

}  // namespace lmserve::kernels
