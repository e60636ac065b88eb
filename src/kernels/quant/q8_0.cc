// GGUF Q8_0: blocks of 32 int8 quants with an f16 scale, x = d * q; and Q8_0x16, its groups of
// 16 rows interleaved (quant/interleaved.h).
#include <cstring>

#include "kernels/quant/interleaved.h"
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

struct Q8_0x16Layout {
  static constexpr int kRows = 16;
  using Block = quant::BlockQ8_0;
  using Group = quant::BlockQ8_0x16;
  using Format = Q8_0;
  static constexpr int kOffset = 128;
  static void pack(const Block* const* rows, Group& out) {
    for (int r = 0; r < kRows; ++r) {
      out.d[r] = rows[r]->d;
      for (int k = 0; k < 8; ++k)
        store_word(out.qs + 64 * k + 4 * r, load_word(rows[r]->qs + 4 * k) ^ 0x80808080u);
    }
  }
  static Block unpack(const Group& g, int r) {
    Block b;
    b.d = g.d[r];
    for (int k = 0; k < 8; ++k)
      store_word(b.qs + 4 * k, load_word(g.qs + 64 * k + 4 * r) ^ 0x80808080u);
    return b;
  }
#if LMSERVE_HAVE_AVX512
  static void unpack_simd(const Group& g, __m512i w[8]) {
    for (int k = 0; k < 8; ++k) w[k] = _mm512_loadu_si512(g.qs + 64 * k);
  }
#endif
};

}  // namespace

void dequantize_Q8_0(const WeightMatrix& w, int row, float* out) {
  Q8_0::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q8_0(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<Q8_0Layout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

void repack_Q8_0x16(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  repack_groups<Q8_0x16Layout>(w, out, g_begin, g_end);
}

void dequantize_Q8_0x16(const WeightMatrix& w, int row, float* out) {
  dequantize_interleaved<Q8_0x16Layout>(w, row, out);
}

void matmul_rows_Q8_0x16(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                         int n_tokens, float* y, int r_begin, int r_end) {
  interleaved_matmul_rows<Q8_0x16Layout, InterleavedKernel<Q8_0x16Layout>>(
      w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
