// GGUF IQ4_XS: super-blocks of 256 four-bit indices into IQ4_NL's table of levels, in 8
// sub-blocks of 32 with six-bit scales under an f16 scale d (quant/blocks.h).
#include <algorithm>
#include <iterator>

#include "kernels/quant/k_quants.h"
#include "kernels/quant/legacy_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct IQ4_XSLayout {
  using Block = quant::BlockIQ4_XS;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = false;
  static constexpr bool kSigned = true;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    for (int j = 0; j < 8; ++j) {
      scales[j] = quant::iq4xs_scale(b, j);
      unpack_iq4_levels(b.qs + 16 * j, q + 32 * j);
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    for (int j = 0; j < 8; ++j) {
      u.q[j] = iq4_levels_simd(b.qs + 16 * j);
      u.scales[2 * j] = u.scales[2 * j + 1] = static_cast<std::int16_t>(quant::iq4xs_scale(b, j));
    }
    std::fill(std::begin(u.mins), std::end(u.mins), std::int16_t{0});
  }
#endif
};
using IQ4_XS = KFormat<IQ4_XSLayout>;

}  // namespace

void dequantize_IQ4_XS(const WeightMatrix& w, int row, float* out) {
  IQ4_XS::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_IQ4_XS(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                        int n_tokens, float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<IQ4_XSLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
