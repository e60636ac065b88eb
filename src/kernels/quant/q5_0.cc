// GGUF Q5_0: blocks of 32 five-bit values with an f16 scale, x = d * (q - 16); and Q5_0x8, its
// groups of 8 rows interleaved (quant/interleaved.h).
#include <cstring>

#include "kernels/quant/interleaved.h"
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

struct Q5_0x8Layout {
  static constexpr int kRows = kGroupRows;
  using Block = quant::BlockQ5_0;
  using Group = quant::BlockQ5_0x8;
  using Format = Q5_0;
  static constexpr int kOffset = 16;
  static void pack(const Block* const* rows, Group& out) {
    const std::uint8_t* qs[kGroupRows];
    for (int k = 0; k < 8; ++k) out.qh[k] = 0;
    for (int r = 0; r < kGroupRows; ++r) {
      out.d[r] = rows[r]->d;
      qs[r] = rows[r]->qs;
      std::uint32_t qh;
      std::memcpy(&qh, rows[r]->qh, 4);
      for (int k = 0; k < 8; ++k) out.qh[k] |= (qh >> (4 * k) & 0xF) << (4 * r);
    }
    interleave_nibbles<kGroupRows>(qs, out.qs);
  }
  static Block unpack(const Group& g, int r) {
    Block b;
    b.d = g.d[r];
    std::uint32_t qh = 0;
    for (int k = 0; k < 8; ++k) qh |= (g.qh[k] >> (4 * r) & 0xF) << (4 * k);
    std::memcpy(b.qh, &qh, 4);
    deinterleave_nibbles<kGroupRows>(g.qs, r, b.qs);
    return b;
  }
#if LMSERVE_HAVE_AVX512
  static void unpack_simd(const Group& g, __m256i w[8]) {
    nibble_vectors(g.qs, w);
    const __m256i fifth = _mm256_set1_epi8(0x10);
    for (int k = 0; k < 8; ++k) {
      const auto* mask = reinterpret_cast<const std::uint8_t*>(&g.qh[k]);
      w[k] = _mm256_or_si256(w[k], _mm256_and_si256(bits_to_bytes(mask), fifth));
    }
  }
#endif
};

}  // namespace

void dequantize_Q5_0(const WeightMatrix& w, int row, float* out) {
  Q5_0::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q5_0(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<LegacyKernel<Q5_0Layout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

void repack_Q5_0x8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  repack_groups<Q5_0x8Layout>(w, out, g_begin, g_end);
}

void dequantize_Q5_0x8(const WeightMatrix& w, int row, float* out) {
  dequantize_interleaved<Q5_0x8Layout>(w, row, out);
}

void matmul_rows_Q5_0x8(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                        int n_tokens, float* y, int r_begin, int r_end) {
  interleaved_matmul_rows<Q5_0x8Layout, InterleavedKernel<Q5_0x8Layout>>(w, x, x_stride, n_tokens,
                                                                         y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
