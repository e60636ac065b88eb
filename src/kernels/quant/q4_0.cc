// GGUF Q4_0: blocks of 32 four-bit values with an f16 scale, x = d * (q - 8); and Q4_0x16, its
// groups of 16 rows interleaved (quant/interleaved.h).
#include "kernels/quant/interleaved.h"
#include "kernels/quant/legacy_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q4_0Layout {
  using Block = quant::BlockQ4_0;
  static constexpr int kOffset = 8;
  static constexpr bool kHasMin = false;
  static void unpack(const Block& b, std::int8_t* q) { unpack_nibbles(b.qs, q); }
  static constexpr bool kSigned = false;
#if LMSERVE_HAVE_AVX2
  static __m256i unpack_simd(const Block& b) { return unpack_nibbles_simd(b.qs); }
#endif
};
using Q4_0 = LegacyFormat<Q4_0Layout>;

// 16 rows a group on 512-bit vectors: each instruction unpacks and scales 16 rows, which pays
// even where a 512-bit operation runs as two 256-bit halves (Zen 4, against 8-row groups: pp512
// +13-19%, a one-token product from L2 +3-15%; decode from memory unchanged).
struct Q4_0x16Layout : NibbleGroupPacking<quant::BlockQ4_0, quant::BlockQ4_0x16, 16> {
  static constexpr int kRows = 16;
  using Block = quant::BlockQ4_0;
  using Group = quant::BlockQ4_0x16;
  using Format = Q4_0;
  static constexpr int kOffset = 8;
#if LMSERVE_HAVE_AVX512
  static void unpack_simd(const Group& g, __m512i w[8]) { nibble_vectors(g.qs, w); }
#endif
};

}  // namespace

void dequantize_Q4_0(const WeightMatrix& w, int row, float* out) {
  Q4_0::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q4_0(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<Q4_0Layout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

void repack_Q4_0x16(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  repack_groups<Q4_0x16Layout>(w, out, g_begin, g_end);
}

void dequantize_Q4_0x16(const WeightMatrix& w, int row, float* out) {
  dequantize_interleaved<Q4_0x16Layout>(w, row, out);
}

void matmul_rows_Q4_0x16(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                         int n_tokens, float* y, int r_begin, int r_end) {
  interleaved_matmul_rows<Q4_0x16Layout, InterleavedKernel<Q4_0x16Layout>>(
      w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
