// Products of f32 activations with weight matrices stored as f32, f16 or bf16.
// Weights are read in place (e.g. from an mmap'd checkpoint); 16-bit ones are widened on the fly.
#pragma once

#include <cstdint>

#include "util/thread_pool.h"

namespace lmserve::kernels {

enum class WeightType { kF32, kF16, kBF16 };

// A row-major [rows, cols] matrix, laid out like a PyTorch Linear weight [out, in].
struct WeightMatrix {
  WeightType type = WeightType::kF32;
  const void* data = nullptr;
  int rows = 0;
  int cols = 0;
};

// y[t, r] = sum_c w[r, c] * x[t, c] for t in [0, n_tokens): x is [n_tokens, cols] and y is
// [n_tokens, rows], both dense. Parallel over output rows; tiny products run on the caller.
void matmul(util::ThreadPool& pool, const WeightMatrix& w, const float* x, int n_tokens, float* y);

// Row `row` of w widened to f32 (an embedding lookup).
void weight_row_to_f32(const WeightMatrix& w, int row, float* out);

// Dot product of one stored row with f32 x (length n), using the fastest available path.
float dot(WeightType type, const void* row, const float* x, int n);

namespace detail {
// Portable reference path, always compiled, so tests can check it on SIMD machines too.
float dot_scalar(WeightType type, const void* row, const float* x, int n);
}  // namespace detail

}  // namespace lmserve::kernels
