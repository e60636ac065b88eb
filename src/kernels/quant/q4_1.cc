// GGUF Q4_1: blocks of 32 four-bit values with an f16 scale and minimum, x = d * q + m.
#include "kernels/quant/legacy_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q4_1Layout {
  using Block = quant::BlockQ4_1;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  static void unpack(const Block& b, std::int8_t* q) { unpack_nibbles(b.qs, q); }
  static constexpr bool kSigned = false;
#if LMSERVE_HAVE_AVX2
  static __m256i unpack_simd(const Block& b) { return unpack_nibbles_simd(b.qs); }
#endif
};
using Q4_1 = LegacyFormat<Q4_1Layout>;

}  // namespace

void dequantize_Q4_1(const WeightMatrix& w, int row, float* out) {
  Q4_1::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q4_1(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<Q4_1Layout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
