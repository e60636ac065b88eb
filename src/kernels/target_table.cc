// One target's kernel table, assembled from the functions its sources define (compiled once
// per target).
#include "kernels/target.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels::LMSERVE_TARGET_NS {

#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation)                             \
  void matmul_rows_##name(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, \
                          int n_tokens, float* y, int r_begin, int r_end);                 \
  void dequantize_##name(const WeightMatrix& w, int row, float* out);
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE

void quantize_q8_32(const float* x, std::byte* out, int n);
void quantize_q8_256(const float* x, std::byte* out, int n);
void paged_attention(util::ThreadPool& pool, const AttentionShape& shape, const PagedKv& kv,
                     std::span<const AttentionSequence> sequences, const float* q, float scale,
                     float* out, const ScoreOptions& options);
void f16_to_f32(const std::uint16_t* in, float* out, int n);
void f32_to_f16(const float* in, std::uint16_t* out, int n);

const TargetKernels& target_kernels() {
  static const TargetKernels table = {
      .name = LMSERVE_TARGET_STRINGIFY(LMSERVE_TARGET_NS),
      .matmul_rows =
          {
#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation) &matmul_rows_##name,
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE
          },
      .dequantize =
          {
#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation) &dequantize_##name,
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE
          },
      .quantize = {nullptr, &quantize_q8_32, &quantize_q8_256},
      .paged_attention = &paged_attention,
      .f16_to_f32 = &f16_to_f32,
      .f32_to_f16 = &f32_to_f16,
  };
  return table;
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
