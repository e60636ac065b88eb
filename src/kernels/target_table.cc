// One target's kernel table, assembled from the functions its sources define (compiled once
// per target).
#include "kernels/target.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels::LMSERVE_TARGET_NS {

#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation, interleave)                 \
  void matmul_rows_##name(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, \
                          int n_tokens, float* y, int r_begin, int r_end);                 \
  void dequantize_##name(const WeightMatrix& w, int row, float* out);
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE

void repack_16bit_x4(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void repack_Q8_0x16(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void repack_Q4_0x16(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void repack_Q5_0x8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void repack_Q4_Kx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void repack_Q6_Kx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void repack_IQ4_NLx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void repack_IQ4_XSx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end);
void quantize_q8_32(const float* x, std::byte* out, int n);
void quantize_q8_256(const float* x, std::byte* out, int n);
void paged_attention(util::ThreadPool& pool, const AttentionShape& shape, const PagedKv& kv,
                     std::span<const AttentionSequence> sequences, const float* q, float scale,
                     float* out, const ScoreOptions& options);
void f16_to_f32(const std::uint16_t* in, float* out, int n);
void f32_to_f16(const float* in, std::uint16_t* out, int n);
int argmax(const float* x, int n);
double sum_exp(const float* x, int n, float shift);
void silu_mul(const float* gate, const float* up, float* out, int n);

const TargetKernels& target_kernels() {
  static const TargetKernels table = [] {
    TargetKernels t = {
        .name = LMSERVE_TARGET_STRINGIFY(LMSERVE_TARGET_NS),
        .matmul_rows =
            {
#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation, interleave) &matmul_rows_##name,
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE
            },
        .dequantize =
            {
#define LMSERVE_WEIGHT_TYPE(name, elements, bytes, activation, interleave) &dequantize_##name,
#include "kernels/weight_types.def"
#undef LMSERVE_WEIGHT_TYPE
            },
        .quantize = {nullptr, &quantize_q8_32, &quantize_q8_256},
        .paged_attention = &paged_attention,
        .f16_to_f32 = &f16_to_f32,
        .f32_to_f16 = &f32_to_f16,
        .argmax = &argmax,
        .sum_exp = &sum_exp,
        .silu_mul = &silu_mul,
    };
#if LMSERVE_HAVE_AVX2
    // A float tile's rows read as one stream: the hardware prefetcher keeps up with one stream a
    // tile where four rows a page apart leave decode at half the memory bandwidth.
    t.repack[static_cast<int>(WeightType::kF16)] = {WeightType::kF16x4, &repack_16bit_x4};
    t.repack[static_cast<int>(WeightType::kBF16)] = {WeightType::kBF16x4, &repack_16bit_x4};
#endif
#if LMSERVE_HAVE_AVX512
    // The interleaved layouts pay where VNNI's dpbusd takes 8 or 16 rows at once; the AVX2
    // target keeps the row-by-row kernels.
    t.repack[static_cast<int>(WeightType::kQ8_0)] = {WeightType::kQ8_0x16, &repack_Q8_0x16};
    t.repack[static_cast<int>(WeightType::kQ4_0)] = {WeightType::kQ4_0x16, &repack_Q4_0x16};
    t.repack[static_cast<int>(WeightType::kQ5_0)] = {WeightType::kQ5_0x8, &repack_Q5_0x8};
    t.repack[static_cast<int>(WeightType::kQ4_K)] = {WeightType::kQ4_Kx8, &repack_Q4_Kx8};
    t.repack[static_cast<int>(WeightType::kQ6_K)] = {WeightType::kQ6_Kx8, &repack_Q6_Kx8};
    t.repack[static_cast<int>(WeightType::kIQ4_NL)] = {WeightType::kIQ4_NLx8, &repack_IQ4_NLx8};
    t.repack[static_cast<int>(WeightType::kIQ4_XS)] = {WeightType::kIQ4_XSx8, &repack_IQ4_XSx8};
#endif
    return t;
  }();
  return table;
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
