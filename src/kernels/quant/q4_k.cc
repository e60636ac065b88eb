// GGUF Q4_K: 4-bit values in 8 sub-blocks of 32, each with a 6-bit scale and minimum.
#include "kernels/quant/k_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q4_KLayout {
  using Block = quant::BlockQ4_K;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = true;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    for (int j = 0; j < 8; ++j) quant::k4_scale_min(b.scales, j, scales[j], mins[j]);
    // Each 64 values: 32 bytes, low nibbles first.
    for (int chunk = 0; chunk < 4; ++chunk) {
      const std::uint8_t* qs = b.qs + 32 * chunk;
      for (int l = 0; l < 32; ++l) {
        q[64 * chunk + l] = static_cast<std::int8_t>(qs[l] & 0xF);
        q[64 * chunk + 32 + l] = static_cast<std::int8_t>(qs[l] >> 4);
      }
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    k4_unpacked_scales(b.scales, u);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs) + c);
      u.q[2 * c] = _mm256_and_si256(v, low4);
      u.q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
  }
#endif
};
using Q4_K = KFormat<Q4_KLayout>;

}  // namespace

void dequantize_Q4_K(const WeightMatrix& w, int row, float* out) {
  Q4_K::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q4_K(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<Q4_KLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
