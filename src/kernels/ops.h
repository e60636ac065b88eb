// Element-wise and per-row operations of a transformer block on f32 activations:
// RMSNorm, rotary embeddings (rotate_half or adjacent pairs), SwiGLU and GELU gating, soft-capping,
// softmax, residual add.
#pragma once

namespace lmserve::kernels {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]; out may alias x.
void rms_norm(const float* x, const float* weight, int n, float eps, float* out);

// The rotation angles of one position: angle_i = pos * inv_freq[i] for i < half, as
// cos/sin tables of `half` entries each.
void rope_cos_sin(int pos, const float* inv_freq, int half, float* cos_out, float* sin_out);

// Rotates the first 2*half dims of each of n_heads heads (stride head_dim) in place, pairing
// element i with element i + half (HF's rotate_half, not the interleaved GPT-J layout).
void rope_rotate_half(float* x, int n_heads, int head_dim, int half, const float* cos_t,
                      const float* sin_t);

// The same rotation for Q/K rows stored in Meta's interleaved order (GGUF llama): pairs
// element 2i with 2i+1 at angle i. On rows permuted from HF order by
// [0, 2, 4, ..., 1, 3, 5, ...] this equals rope_rotate_half on the unpermuted rows, so
// attention scores are identical and GGUF weights need no reordering.
void rope_rotate_adjacent_pairs(float* x, int n_heads, int head_dim, int half, const float* cos_t,
                                const float* sin_t);

// out[i] = silu(gate[i]) * up[i]; out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int n);

// out[i] = gelu_tanh(gate[i]) * up[i] (PyTorch's GELU, approximate="tanh"; Gemma's gate);
// out may alias gate or up.
void gelu_tanh_mul(const float* gate, const float* up, float* out, int n);

// x[i] = cap * tanh(x[i] / cap): Gemma 2's soft-capping of logits.
void softcap(float* x, int n, float cap);

// The index of the first greatest of n >= 1 values: the greedy pick over a vocabulary. NaNs
// are never the greatest (0 when every value is NaN).
int argmax(const float* x, int n);

// The sum of exp(x[i] - shift) over n values, in double (a softmax's normaliser over a long row,
// shift its maximum), with exp_approx.h's exp: within 1e-6 of the exact sum, the same bits on
// every CPU target.
double sum_exp(const float* x, int n, float shift);

// In-place numerically stable softmax over n values.
void softmax(float* x, int n);

// y[i] += x[i].
void add_inplace(float* y, const float* x, int n);

}  // namespace lmserve::kernels
