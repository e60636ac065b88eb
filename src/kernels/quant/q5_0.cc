// GGUF Q5_0: blocks of 32 five-bit values with an f16 scale, x = d * (q - 16).
#include "kernels/quant/legacy_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q5_0Layout {
  using Block = quant::BlockQ5_0;
  static constexpr int kOffset = 16;
  static constexpr bool kHasMin = false;
  static void unpack(const Block& b, std::int8_t* q) { unpack_nibbles_high_bit(b.qs, b.qh, q); }
  static constexpr bool kSigned = false;
#if LMSERVE_HAVE_AVX2
  static __m256i unpack_simd(const Block& b) { return unpack_nibbles_high_bit_simd(b.qs, b.qh); }
#endif
};
using Q5_0 = LegacyFormat<Q5_0Layout>;

}  // namespace

void dequantize_Q5_0(const WeightMatrix& w, int row, float* out) {
  Q5_0::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q5_0(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<Q5_0Layout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
