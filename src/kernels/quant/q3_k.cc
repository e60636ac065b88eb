// GGUF Q3_K: 3-bit values in 16 sub-blocks of 16 with signed 6-bit scales; the third bit of each
// value sits in hmask.
#include "kernels/quant/k_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q3_KLayout {
  using Block = quant::BlockQ3_K;
  static constexpr int kSubBlocks = 16;
  static constexpr bool kHasMin = false;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    std::int8_t s[16];
    quant::q3k_scales(b.scales, s);
    for (int j = 0; j < 16; ++j) scales[j] = s[j];
    // As Q2_K's planes; a value whose hmask bit is clear is 4 lower.
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* qs = b.qs + 32 * half;
      for (int plane = 0; plane < 4; ++plane) {
        const int bit = 4 * half + plane;
        for (int l = 0; l < 32; ++l) {
          const int low = (qs[l] >> (2 * plane)) & 3;
          const int high = (b.hmask[l] >> bit) & 1;
          q[128 * half + 32 * plane + l] = static_cast<std::int8_t>(low - (high ? 0 : 4));
        }
      }
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    std::int8_t s[16];
    quant::q3k_scales(b.scales, s);
    for (int j = 0; j < 16; ++j) {
      u.scales[j] = s[j];
      u.mins[j] = static_cast<std::int16_t>(4 * s[j]);  // values are (low | high << 2) - 4
    }
    const __m256i two = _mm256_set1_epi8(3), bit = _mm256_set1_epi8(1);
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.hmask));
    for (int half = 0; half < 2; ++half) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs) + half);
      for (int plane = 0; plane < 4; ++plane) {
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * half + plane), bit);
        u.q[4 * half + plane] = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(v, 2 * plane), two), _mm256_slli_epi16(high, 2));
      }
    }
  }
#endif
};
using Q3_K = KFormat<Q3_KLayout>;

}  // namespace

void dequantize_Q3_K(const WeightMatrix& w, int row, float* out) {
  Q3_K::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q3_K(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<Q3_KLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
