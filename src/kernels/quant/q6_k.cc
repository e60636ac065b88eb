// GGUF Q6_K: 6-bit values (biased by 32) in 16 sub-blocks of 16 with int8 scales; low nibbles in
// ql, high two bits in qh.
#include "kernels/quant/k_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q6_KLayout {
  using Block = quant::BlockQ6_K;
  static constexpr int kSubBlocks = 16;
  static constexpr bool kHasMin = false;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    for (int j = 0; j < 16; ++j) scales[j] = b.scales[j];
    // Each half of 128 values: 64 bytes of ql and 32 of qh; value 32 * k + l (k < 4, l < 32)
    // takes nibble k / 2 of ql[l + 32 * (k % 2)] and bits 2k, 2k + 1 of qh[l].
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* ql = b.ql + 64 * half;
      const std::uint8_t* qh = b.qh + 32 * half;
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const int low = (ql[l + 32 * (k % 2)] >> (4 * (k / 2))) & 0xF;
          const int high = (qh[l] >> (2 * k)) & 3;
          q[128 * half + 32 * k + l] = static_cast<std::int8_t>((low | (high << 4)) - 32);
        }
      }
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    for (int j = 0; j < 16; ++j) {
      u.scales[j] = b.scales[j];
      u.mins[j] = static_cast<std::int16_t>(32 * b.scales[j]);  // values are q - 32
    }
    const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3);
    for (int half = 0; half < 2; ++half) {
      const auto* ql = reinterpret_cast<const __m256i*>(b.ql + 64 * half);
      const __m256i a = _mm256_loadu_si256(ql), c = _mm256_loadu_si256(ql + 1);
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * half));
      auto high = [&](int k) {
        return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * k), two), 4);
      };
      u.q[4 * half] = _mm256_or_si256(_mm256_and_si256(a, low4), high(0));
      u.q[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(c, low4), high(1));
      u.q[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), high(2));
      u.q[4 * half + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4), high(3));
    }
  }
#endif
};
using Q6_K = KFormat<Q6_KLayout>;

}  // namespace

void dequantize_Q6_K(const WeightMatrix& w, int row, float* out) {
  Q6_K::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q6_K(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<Q6_KLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
