// Products of f32 activations with weight matrices in any format of the weight-format table
// (f32, f16, bf16, GGUF's block-quantized types, MLX affine). Weights are read in place (e.g. from
// an mmap'd checkpoint); quantized formats get their activations quantized once per product.
#pragma once

#include <atomic>
#include <cstddef>
#include <span>
#include <cstdint>
#include <optional>

#include "kernels/weight_format.h"
#include "util/thread_pool.h"

namespace lmserve::kernels {

struct TargetKernels;

// A row-major [rows, cols] matrix, laid out like a PyTorch Linear weight [out, in]; each row is
// weight_row_bytes(type, cols) bytes (cols is a multiple of the format's block).
struct WeightMatrix {
  WeightType type = WeightType::kF32;
  const void* data = nullptr;
  int rows = 0;
  int cols = 0;
  // Formats with per-group parameters stored apart from the codes (MLX affine): row r's group g
  // uses scales[r * cols / group_size + g] and biases[...], both of scale_type (F32/F16/BF16).
  const void* scales = nullptr;
  const void* biases = nullptr;
  WeightType scale_type = WeightType::kF32;
  int group_size = 0;
};

// The stored bytes of row `row`.
inline const std::byte* weight_row(const WeightMatrix& w, int row) {
  return static_cast<const std::byte*>(w.data) +
         static_cast<std::size_t>(row) * weight_row_bytes(w.type, w.cols);
}

// y[t, r] = sum_c w[r, c] * x[t, c] for t in [0, n_tokens): x is [n_tokens, cols] and y is
// [n_tokens, rows], both dense. Parallel over output rows; tiny products run on the caller.
// Runs on the CPU target chosen at start-up (cpu.h).
void matmul(util::ThreadPool& pool, const WeightMatrix& w, const float* x, int n_tokens, float* y);
// The same on a given target (tests compare targets).
void matmul(const TargetKernels& target, util::ThreadPool& pool, const WeightMatrix& w,
            const float* x, int n_tokens, float* y);

// One of several products of the same input: y = w x.
struct Product {
  const WeightMatrix* w;
  float* y;
};
// Every product of `products` (matrices of x's width) on x, as one parallel job over all their
// rows, with x quantized once per activation form: a layer's q/k/v or gate/up projections wake
// the pool once. Each output gets the same bits as its own matmul.
void matmul(util::ThreadPool& pool, std::span<const Product> products, const float* x,
            int n_tokens);
void matmul(const TargetKernels& target, util::ThreadPool& pool,
            std::span<const Product> products, const float* x, int n_tokens);

// Rows [first, first + n) of w: one part of a fused projection, read in place (first and n
// whole groups of an interleaved format).
WeightMatrix weight_rows(const WeightMatrix& w, int first, int n);

// The layout `target` multiplies w fastest in when it is not w's own (a target's interleaved
// repack of a file format, quant/interleaved.h), else nullopt.
std::optional<WeightType> repacked_type(const TargetKernels& target, const WeightMatrix& w);
// w rewritten into that layout in `out` (as many bytes as w's rows, 64-byte aligned), in
// parallel: the matrix over out.
WeightMatrix repack(const TargetKernels& target, util::ThreadPool& pool, const WeightMatrix& w,
                    std::byte* out);
// The same on the calling thread, a slice of rows at a time (a copy made in the background):
// nullopt, with `out` part written, once `stop` is set.
std::optional<WeightMatrix> repack(const TargetKernels& target, const WeightMatrix& w,
                                   std::byte* out, const std::atomic<bool>& stop);

// Row `row` of w widened to f32 (an embedding lookup).
void weight_row_to_f32(const WeightMatrix& w, int row, float* out);

}  // namespace lmserve::kernels
