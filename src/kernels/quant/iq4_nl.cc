// GGUF IQ4_NL: blocks of 32 four-bit indices into a fixed non-linear table of levels with an
// f16 scale, x = d * kIq4Levels[q].
#include "kernels/quant/legacy_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct IQ4_NLLayout {
  using Block = quant::BlockIQ4_NL;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = false;
  static void unpack(const Block& b, std::int8_t* q) { unpack_iq4_levels(b.qs, q); }
  static constexpr bool kSigned = true;
#if LMSERVE_HAVE_AVX2
  static __m256i unpack_simd(const Block& b) { return iq4_levels_simd(b.qs); }
#endif
};
using IQ4_NL = LegacyFormat<IQ4_NLLayout>;

}  // namespace

void dequantize_IQ4_NL(const WeightMatrix& w, int row, float* out) {
  IQ4_NL::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_IQ4_NL(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                        int n_tokens, float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<IQ4_NLLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
