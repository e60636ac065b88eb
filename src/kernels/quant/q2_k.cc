// GGUF Q2_K: 2-bit values in 16 sub-blocks of 16, each with a 4-bit scale and minimum.
#include "kernels/quant/k_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q2_KLayout {
  using Block = quant::BlockQ2_K;
  static constexpr int kSubBlocks = 16;
  static constexpr bool kHasMin = true;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    for (int j = 0; j < 16; ++j) {
      scales[j] = b.scales[j] & 0xF;
      mins[j] = b.scales[j] >> 4;
    }
    // Each half of 128 values is 32 bytes of four 2-bit planes; a plane is two sub-blocks.
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* qs = b.qs + 32 * half;
      for (int plane = 0; plane < 4; ++plane) {
        for (int l = 0; l < 32; ++l) {
          q[128 * half + 32 * plane + l] = static_cast<std::int8_t>((qs[l] >> (2 * plane)) & 3);
        }
      }
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    for (int j = 0; j < 16; ++j) {
      u.scales[j] = b.scales[j] & 0xF;
      u.mins[j] = b.scales[j] >> 4;
    }
    const __m256i two = _mm256_set1_epi8(3);
    for (int half = 0; half < 2; ++half) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs) + half);
      for (int plane = 0; plane < 4; ++plane)
        u.q[4 * half + plane] = _mm256_and_si256(_mm256_srli_epi16(v, 2 * plane), two);
    }
  }
#endif
};
using Q2_K = KFormat<Q2_KLayout>;

}  // namespace

void dequantize_Q2_K(const WeightMatrix& w, int row, float* out) {
  Q2_K::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q2_K(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<Q2_KLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
