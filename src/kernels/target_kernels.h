// The kernels of one CPU target, as a table the dispatcher picks once at start-up (cpu.h).
// Each target (scalar, avx2, avx512) fills one from the same sources compiled for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/weight_format.h"
#include "util/thread_pool.h"

namespace lmserve::kernels {

// y[t * w.rows + r] for r in [r_begin, r_end) and t < n_tokens; activation row t starts at
// x + t * x_stride, in the form weight_format(w.type).activation names.
using MatmulRowsFn = void (*)(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                              int n_tokens, float* y, int r_begin, int r_end);
// Row `row` of w (w.cols values), widened to f32.
using DequantizeFn = void (*)(const WeightMatrix& w, int row, float* out);
// One f32 row of n values into the activation form (n a multiple of its block).
using QuantizeFn = void (*)(const float* x, std::byte* out, int n);
using PagedAttentionFn = void (*)(util::ThreadPool& pool, const AttentionShape& shape,
                                  const PagedKv& kv, std::span<const AttentionSequence> sequences,
                                  const float* q, float scale, float* out,
                                  const ScoreOptions& options);
// Groups [group_begin, group_end) of rows of w, a file format (groups of the interleaved
// layout's height), rewritten into the target's interleaved layout of it; out is laid out as the
// whole repacked matrix (quant/interleaved.h).
using RepackFn = void (*)(const WeightMatrix& w, std::byte* out, int group_begin, int group_end);
using ConvertFn16 = void (*)(const std::uint16_t* in, float* out, int n);
using ConvertToF16Fn = void (*)(const float* in, std::uint16_t* out, int n);
// The index of the first greatest of n values (ops.h argmax).
using ArgmaxFn = int (*)(const float* x, int n);
// The sum of exp(x[i] - shift) over n values (ops.h sum_exp).
using SumExpFn = double (*)(const float* x, int n, float shift);
// out[i] = silu(gate[i]) * up[i] (ops.h silu_mul).
using GateFn = void (*)(const float* gate, const float* up, float* out, int n);

struct TargetKernels {
  std::string_view name;
  MatmulRowsFn matmul_rows[kWeightTypeCount];
  DequantizeFn dequantize[kWeightTypeCount];
  QuantizeFn quantize[kActivationTypeCount];  // null for kF32
  // The layout this target multiplies each format fastest in, when not the file's own: matrices
  // are repacked into it at load. fn is null where the target computes the file's layout.
  struct Repack {
    WeightType type = WeightType::kF32;
    RepackFn fn = nullptr;
  } repack[kWeightTypeCount];
  PagedAttentionFn paged_attention;
  ConvertFn16 f16_to_f32;
  ConvertToF16Fn f32_to_f16;
  ArgmaxFn argmax;
  SumExpFn sum_exp;
  GateFn silu_mul;
};

namespace scalar {
const TargetKernels& target_kernels();
}
namespace avx2 {
const TargetKernels& target_kernels();
}
namespace avx512 {
const TargetKernels& target_kernels();
}

}  // namespace lmserve::kernels
