// Rotary-embedding rotation for Q/K rows stored in Meta's interleaved order (GGUF llama).
// The HF rotate_half order is kernels::rope_rotate_half; which one runs is checkpoint data.
#pragma once

namespace lmserve::model {

// Rotates the first 2*half dims of each of n_heads heads (stride head_dim) in place, pairing
// element 2i with 2i+1 at angle i (cos_t/sin_t as from kernels::rope_cos_sin). On Q/K rows
// permuted from HF order by [0, 2, 4, ..., 1, 3, 5, ...] -> [0, 1, 2, ...] this equals
// kernels::rope_rotate_half on the unpermuted rows, so attention scores are identical.
void rope_rotate_adjacent_pairs(float* x, int n_heads, int head_dim, int half, const float* cos_t,
                                const float* sin_t);

}  // namespace lmserve::model
