// GGUF IQ4_NL: blocks of 32 four-bit indices into a fixed non-linear table of levels with an
// f16 scale, x = d * kIq4Levels[q]; and IQ4_NLx8, its groups of 8 rows with Q4_0's nibble
// interleaving (quant/interleaved.h).
#include "kernels/quant/interleaved.h"
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

struct IQ4_NLx8Layout
    : NibbleGroupPacking<quant::BlockIQ4_NL, quant::BlockQ4_0x8, kGroupRows> {
  static constexpr int kRows = kGroupRows;
  using Block = quant::BlockIQ4_NL;
  using Group = quant::BlockQ4_0x8;
  using Format = IQ4_NL;
  static constexpr int kOffset = 128;  // levels + 128: unsigned bytes for dpbusd
#if LMSERVE_HAVE_AVX512
  static void unpack_simd(const Group& g, __m256i w[8]) {
    nibble_vectors(g.qs, w);
    const __m256i levels = iq4_levels_u8();
    for (int k = 0; k < 8; ++k) w[k] = _mm256_shuffle_epi8(levels, w[k]);
  }
#endif
};

}  // namespace

void dequantize_IQ4_NL(const WeightMatrix& w, int row, float* out) {
  IQ4_NL::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_IQ4_NL(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                        int n_tokens, float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<IQ4_NLLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

void repack_IQ4_NLx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  repack_groups<IQ4_NLx8Layout>(w, out, g_begin, g_end);
}

void dequantize_IQ4_NLx8(const WeightMatrix& w, int row, float* out) {
  dequantize_interleaved<IQ4_NLx8Layout>(w, row, out);
}

void matmul_rows_IQ4_NLx8(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                          int n_tokens, float* y, int r_begin, int r_end) {
  interleaved_matmul_rows<IQ4_NLx8Layout, InterleavedKernel<IQ4_NLx8Layout>>(
      w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
