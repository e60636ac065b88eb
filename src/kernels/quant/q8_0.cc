// GGUF Q8_0: blocks of 32 int8 quants with an f16 scale, x = d * q.
#include <cstring>

#include "kernels/quant/legacy_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q8_0Layout {
  using Block = quant::BlockQ8_0;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = false;
  static void unpack(const Block& b, std::int8_t* q) { std::memcpy(q, b.qs, 32); }
  static constexpr bool kSigned = true;
#if LMSERVE_HAVE_AVX2
  static __m256i unpack_simd(const Block& b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
  }
#endif
};
using Q8_0 = LegacyFormat<Q8_0Layout>;

}  // namespace

void dequantize_Q8_0(const WeightMatrix& w, int row, float* out) {
  Q8_0::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q8_0(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<Q8_0Layout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
